#!/usr/bin/env python3
"""Real device and dashboard peers for IoTHTTPTests.

Every subcommand prints one event per line on stdout (flushed), so the Swift test can read them with
ChildProcess.readLine():
  STATUS <http status>                      the WebSocket upgrade was refused
  CONNECTED                                 the WebSocket is open
  ACK <json> / FRAME <json>                 an ack or another text frame from the server
  REPLY <text>                              a TCP reply (line, or the body of a length-prefixed frame)
  READY                                     the scripted part is done; now waiting for the server
  PINGS <n>                                 pings received from the server
  CLOSED <code> <elapsed since READY, s> <reason>
  TIMEOUT                                   nothing happened within --wait seconds
  ERROR <text>
  TLSERROR <text>                           the TLS handshake (or the first read after it) failed
  STATUS <code> / BODY <text>               an HTTPS answer (https subcommand)
"""
import argparse
import base64
import json
import logging
import select
import os
import socket
import struct
import ssl
import sys
import time


def tls_context(args):
    """A client TLS context trusting --ca, presenting --cert/--key when given; None without --ca."""
    if not getattr(args, "ca", None):
        return None
    ctx = ssl.create_default_context(cafile=args.ca)
    ctx.check_hostname = False
    if args.cert:
        ctx.load_cert_chain(args.cert, args.key)
    return ctx


def out(*parts):
    print(" ".join(str(p) for p in parts), flush=True)


def ws_headers(args):
    headers = {}
    if args.token:
        headers["Authorization"] = "Bearer " + args.token
    if args.basic:
        headers["Authorization"] = "Basic " + base64.b64encode(args.basic.encode()).decode()
    if args.api_key:
        headers["X-API-Key"] = args.api_key
    return headers


class PingCounter(logging.Handler):
    """Counts the pings the websockets library logs at debug level ("< PING ...")."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.pings = 0

    def emit(self, record):
        try:
            if "< PING" in record.getMessage():
                self.pings += 1
        except Exception:
            pass


def ws(args):
    from websockets.exceptions import ConnectionClosed, InvalidStatus
    from websockets.sync.client import connect

    counter = PingCounter()
    logger = logging.getLogger("websockets.client")
    logger.setLevel(logging.DEBUG)
    logger.addHandler(counter)
    import warnings
    warnings.simplefilter("ignore", DeprecationWarning)
    try:
        extra = {"ssl": tls_context(args)} if args.url.startswith("wss:") else {}
        conn = connect(args.url, additional_headers=ws_headers(args), open_timeout=10, max_size=None,
                       ping_interval=None, logger=logger, **extra)
    except InvalidStatus as e:
        out("STATUS", e.response.status_code)
        body = e.response.body.decode(errors="replace") if e.response.body else ""
        out("BODY", body.replace("\n", " "))
        return
    except (ssl.SSLError, ConnectionResetError) as e:
        out("TLSERROR", type(e).__name__, str(e).replace("\n", " "))
        return
    except Exception as e:  # noqa: BLE001
        response = getattr(e, "response", None)
        if response is not None and getattr(response, "status_code", None):
            out("STATUS", response.status_code)
        out("ERROR", type(e).__name__, str(e).replace("\n", " "))
        return
    out("CONNECTED")
    ready_at = None
    try:
        for message in args.send:
            if message.startswith("@size:"):
                message = '{"temp":' + " " * int(message[6:]) + "1}"
            if message.startswith("@frag:"):  # @frag:<fragments>:<bytes each>: one message in many frames
                count, each = (int(x) for x in message[6:].split(":"))
                body = '{"temp":' + " " * (count * each - 10) + "1}"
                message = iter([body[i * each:(i + 1) * each] for i in range(count)])
            conn.send(message)
            if args.no_wait_ack:
                continue
            out("ACK", conn.recv(timeout=10))
        out("READY")
        ready_at = time.monotonic()
        deadline = ready_at + args.wait
        frames = 0
        while time.monotonic() < deadline:
            try:
                frame = conn.recv(timeout=max(0.05, deadline - time.monotonic()))
            except TimeoutError:
                break
            out("FRAME", frame if isinstance(frame, str) else frame.decode(errors="replace"))
            frames += 1
            if args.frames and frames >= args.frames:
                out("PINGS", counter.pings)
                conn.close()
                return
        out("PINGS", counter.pings)
        out("TIMEOUT")
        conn.close()
    except ConnectionClosed as e:
        elapsed = time.monotonic() - (ready_at or time.monotonic())
        out("PINGS", counter.pings)
        rcvd = e.rcvd
        out("CLOSED", rcvd.code if rcvd else "none", "%.3f" % elapsed, rcvd.reason if rcvd else "")


def ws_nopong(args):
    """A raw WebSocket client that never answers pings: the server must close it."""
    host, port, path = args.host, args.port, args.path
    s = socket.create_connection((host, port), timeout=30)
    key = base64.b64encode(os.urandom(16)).decode()
    req = (f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer {args.token}\r\n\r\n")
    s.sendall(req.encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        if not chunk:
            out("ERROR", "closed during handshake")
            return
        head += chunk
    status = head.split(b" ", 2)[1].decode()
    if status != "101":
        out("STATUS", status)
        return
    out("CONNECTED")
    out("READY")
    start = time.monotonic()
    pings = 0
    buf = head.split(b"\r\n\r\n", 1)[1]
    while True:
        while len(buf) < 2:
            chunk = s.recv(4096)
            if not chunk:
                out("PINGS", pings)
                out("CLOSED", "eof", "%.3f" % (time.monotonic() - start), "")
                return
            buf += chunk
        opcode = buf[0] & 0x0F
        length = buf[1] & 0x7F
        header = 2
        if length == 126:
            length = struct.unpack(">H", buf[2:4])[0]
            header = 4
        elif length == 127:
            length = struct.unpack(">Q", buf[2:10])[0]
            header = 10
        while len(buf) < header + length:
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
        payload = buf[header:header + length]
        buf = buf[header + length:]
        if opcode == 0x9:
            pings += 1  # and do not answer
        elif opcode == 0x8:
            code = struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else "none"
            out("PINGS", pings)
            out("CLOSED", code, "%.3f" % (time.monotonic() - start), payload[2:].decode(errors="replace"))
            return


def tcp(args):
    s = socket.create_connection((args.host, args.port), timeout=30)
    ctx = tls_context(args)
    if ctx:
        try:
            s = ctx.wrap_socket(s)
        except (ssl.SSLError, ConnectionResetError, BrokenPipeError) as e:
            out("TLSERROR", type(e).__name__, str(e).replace("\n", " "))
            return
    f = s.makefile("rb")

    def reply():
        if args.framing == "lines" or reply.in_handshake:
            line = f.readline()
            if not line:
                raise EOFError()
            return line.decode(errors="replace").rstrip("\r\n")
        head = f.read(4)
        if len(head) < 4:
            raise EOFError()
        (n,) = struct.unpack(">I", head)
        return f.read(n).decode(errors="replace")

    reply.in_handshake = True
    ready_at = None
    try:
        if args.handshake is not None:
            s.sendall(args.handshake.encode() + b"\n")
            out("REPLY", reply())
        reply.in_handshake = False
        for message in args.send:
            if message.startswith("@header:"):  # @header:<n>: a length header announcing n bytes, and no body
                data = struct.pack(">I", int(message[8:]))
            else:
                if message.startswith("@size:"):
                    body = b'{"temp":' + b" " * int(message[6:]) + b"1}"
                else:
                    body = message.encode()
                data = body + b"\n" if args.framing == "lines" else struct.pack(">I", len(body)) + body
            if args.slow:
                for i in range(len(data)):
                    s.sendall(data[i:i + 1])
                    time.sleep(args.slow / len(data))
            else:
                s.sendall(data)
            out("REPLY", reply())
        out("READY")
        ready_at = time.monotonic()
        deadline = ready_at + args.wait
        while time.monotonic() < deadline:
            readable, _, _ = select.select([s], [], [], 0.05)
            if readable:
                out("REPLY", reply())
        out("TIMEOUT")
    except ssl.SSLError as e:
        out("TLSERROR", type(e).__name__, str(e).replace("\n", " "))
    except (EOFError, ConnectionResetError, BrokenPipeError):
        elapsed = time.monotonic() - (ready_at or time.monotonic())
        out("CLOSED", "eof", "%.3f" % elapsed, "")


def tcp_flood(args):
    """Sends one-byte malformed lines as fast as the server takes them and never reads the replies, until
    nothing more goes out for --stall seconds or --limit bytes are out: prints SENT <bytes>. Small socket
    buffers, so that the server's unread acks fill them soon."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
    s.settimeout(30)
    s.connect((args.host, args.port))
    s.sendall(args.handshake.encode() + b"\n")
    line = b""
    while not line.endswith(b"\n"):
        chunk = s.recv(1)
        if not chunk:
            out("CLOSED", "eof", "0", "")
            return
        line += chunk
    out("REPLY", line.decode(errors="replace").rstrip("\r\n"))
    s.setblocking(False)
    block = b"x\n" * 32768
    sent = 0
    last = time.monotonic()
    while sent < args.limit and time.monotonic() - last < args.stall:
        _, writable, _ = select.select([], [s], [], 0.05)
        if not writable:
            continue
        try:
            n = s.send(block)
        except BlockingIOError:
            continue
        except (ConnectionResetError, BrokenPipeError):
            out("CLOSED", "eof", "0", "")
            break
        if n > 0:
            sent += n
            last = time.monotonic()
    out("SENT", sent)
    sys.stdout.flush()
    time.sleep(args.hold)


def https(args):
    """One HTTPS request: prints STATUS and BODY, or TLSERROR."""
    import http.client
    conn = http.client.HTTPSConnection(args.host, args.port, context=tls_context(args), timeout=30)
    headers = {"Content-Type": "application/json"}
    if args.token:
        headers["Authorization"] = "Bearer " + args.token
    try:
        conn.request("POST", args.path, body=args.body.encode(), headers=headers)
        response = conn.getresponse()
        out("STATUS", response.status)
        out("BODY", response.read().decode(errors="replace").replace("\n", " "))
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected) as e:
        out("TLSERROR", type(e).__name__, str(e).replace("\n", " "))


def serial(args):
    """The sensor's side of a pseudo-terminal pair: writes lines, prints each reply line."""
    import tty
    fd = os.open(args.path, os.O_RDWR | os.O_NOCTTY)
    tty.setraw(fd)
    time.sleep(args.delay)
    for line in args.send:
        os.write(fd, line.encode() + b"\n")
    deadline = time.monotonic() + args.wait
    buf = b""
    while time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], 0.1)
        if r:
            buf += os.read(fd, 1024)
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                out("REPLY", line.decode(errors="replace"))
    out("TIMEOUT")


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("ws")
    w.add_argument("url")
    w.add_argument("--token")
    w.add_argument("--basic")
    w.add_argument("--api-key")
    w.add_argument("--send", action="append", default=[])
    w.add_argument("--no-wait-ack", action="store_true")
    w.add_argument("--wait", type=float, default=0)
    w.add_argument("--frames", type=int, default=0)
    for cmd in (w,):
        cmd.add_argument("--ca")
        cmd.add_argument("--cert")
        cmd.add_argument("--key")
    n = sub.add_parser("ws-nopong")
    n.add_argument("host")
    n.add_argument("port", type=int)
    n.add_argument("path")
    n.add_argument("--token", required=True)
    t = sub.add_parser("tcp")
    t.add_argument("host")
    t.add_argument("port", type=int)
    t.add_argument("--handshake")
    t.add_argument("--framing", choices=["lines", "length"], default="lines")
    t.add_argument("--send", action="append", default=[])
    t.add_argument("--slow", type=float, default=0)
    t.add_argument("--wait", type=float, default=0)
    t.add_argument("--ca")
    t.add_argument("--cert")
    t.add_argument("--key")
    fl = sub.add_parser("tcp-flood")
    fl.add_argument("host")
    fl.add_argument("port", type=int)
    fl.add_argument("--handshake", required=True)
    fl.add_argument("--limit", type=int, default=64 << 20)
    fl.add_argument("--stall", type=float, default=1.5)
    fl.add_argument("--hold", type=float, default=0)
    h = sub.add_parser("https")
    h.add_argument("host")
    h.add_argument("port", type=int)
    h.add_argument("path")
    h.add_argument("--body", default="{}")
    h.add_argument("--token")
    h.add_argument("--ca", required=True)
    h.add_argument("--cert")
    h.add_argument("--key")
    r = sub.add_parser("serial")
    r.add_argument("path")
    r.add_argument("--send", action="append", default=[])
    r.add_argument("--delay", type=float, default=0.3)
    r.add_argument("--wait", type=float, default=3)
    args = p.parse_args()
    {"ws": ws, "ws-nopong": ws_nopong, "tcp": tcp, "serial": serial, "https": https, "tcp-flood": tcp_flood}[args.cmd](args)


if __name__ == "__main__":
    main()
