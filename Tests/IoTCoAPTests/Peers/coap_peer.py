#!/usr/bin/env python3
"""aiocoap peers for the CoAP tests.

  coap_peer.py request METHOD URI PAYLOAD FORMAT   one request; prints "<code> <payload>" (FORMAT "-" = none).
      PAYLOAD "big:N" is a JSON array of {"ts","values"} records about N bytes long (block-wise).
  coap_peer.py server PORT                          an observable /temp resource that changes every 100 ms;
      prints "ready PORT" once listening. PORT 0 picks a free port here, right before binding it (a port
      picked by the test could be taken by another test's socket before this process starts); a given
      PORT that is still held (a device restarting on its old port) is tried again for up to 10 s.
"""
import asyncio
import errno
import json
import socket
import sys

import aiocoap
import aiocoap.resource as resource
from aiocoap import Code, Context, Message


def payload_bytes(spec):
    if spec.startswith("big:"):
        size = int(spec[4:])
        records, i = [], 0
        while len(json.dumps(records)) < size:
            records.append({"ts": 1700000000000 + i, "values": {"temp": 20 + (i % 10)}})
            i += 1
        return json.dumps(records).encode()
    return spec.encode()


async def request(method, uri, spec, fmt):
    ctx = await Context.create_client_context()
    try:
        msg = Message(code={"post": Code.POST, "put": Code.PUT, "get": Code.GET}[method], uri=uri,
                      payload=payload_bytes(spec) if method != "get" else b"")
        if fmt != "-":
            msg.opt.content_format = int(fmt)
        resp = await asyncio.wait_for(ctx.request(msg).response, 15)
        print(f"{resp.code.dotted} {resp.payload.decode(errors='replace')}", flush=True)
    finally:
        await ctx.shutdown()


class Temperature(resource.ObservableResource):
    def __init__(self):
        super().__init__()
        self.value = 20.0
        self.count = 0

    async def tick(self):
        while True:
            await asyncio.sleep(0.1)
            self.count += 1
            self.value = round(20.0 + self.count / 10, 1)
            try:
                self.updated_state()
            except Exception as error:  # one observer's failure must not stop the resource for the others
                print(f"updated_state failed: {error!r}", file=sys.stderr, flush=True)

    async def render_get(self, request):
        body = json.dumps({"temp": self.value}).encode()
        return Message(payload=body, content_format=50)


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def server(port):
    root = resource.Site()
    temp = Temperature()
    root.add_resource(["temp"], temp)
    for attempt in range(100):
        chosen = port or free_udp_port()
        try:
            await Context.create_server_context(root, bind=("127.0.0.1", chosen))
            break
        except OSError as error:
            if error.errno != errno.EADDRINUSE or attempt == 99:
                raise
            await asyncio.sleep(0.1)
    print(f"ready {chosen}", flush=True)
    asyncio.get_running_loop().create_task(temp.tick())
    await asyncio.get_running_loop().create_future()


if __name__ == "__main__":
    if sys.argv[1] == "request":
        asyncio.run(request(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]))
    elif sys.argv[1] == "server":
        asyncio.run(server(int(sys.argv[2])))
