#!/usr/bin/env python3
"""A local HTTP sink that plays every vendor the notifier channels talk to, and checks what they send.

Verifies, with each vendor's documented algorithm:
  /webhook         generic webhook, Standard Webhooks: verified by the `standardwebhooks` library (PyPI)
  /webhook-github  GitHub: X-Hub-Signature-256 = "sha256=" + hex(HMAC-SHA256(secret, body))
  /webhook-iot     the earlier scheme: X-IoT-Signature = "sha256=" + hex(HMAC-SHA256(secret, X-IoT-Timestamp + "." + body))
  /feishu    Feishu custom bot: sign = base64(HMAC-SHA256(key = f"{timestamp}\\n{secret}", msg = b"")), timestamp in s
  /dingtalk  DingTalk robot: ?timestamp=<ms>&sign=urlencode(base64(HMAC-SHA256(key = secret, msg = f"{ts}\\n{secret}")))
and checks the bodies of:
  /wecom?key=K                                   {"msgtype": "markdown", "markdown": {"content": …}}
  /wechat/cgi-bin/token, …/message/template/send WeChat Official Account access token + template message
  /slack                                         {"text": …}
  /sms, /voice                                   the configured gateway body {"to": …, "text": …} + Authorization

Prints "READY <port>", then one JSON line per request: {"channel", "ok", "reason"?, "payload"}.
A request that fails a check is answered the way the vendor answers (401, or 200 with an error code).
"""
import argparse, base64, hashlib, hmac, json, sys, threading, time, urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

p = argparse.ArgumentParser()
p.add_argument("--port", type=int, required=True)
p.add_argument("--webhook-secret", default="webhook-secret")
p.add_argument("--feishu-secret", default="feishu-secret")
p.add_argument("--dingtalk-secret", default="dingtalk-secret")
p.add_argument("--wecom-key", default="wecom-key")
p.add_argument("--wechat-appid", default="wx-app")
p.add_argument("--wechat-secret", default="wx-secret")
p.add_argument("--gateway-token", default="gateway-token")
p.add_argument("--delay-ms", type=int, default=0)
a = p.parse_args()
lock = threading.Lock()
WECHAT_TOKEN = "wechat-access-token-1"


def emit(channel, ok, payload, reason=None):
    line = {"channel": channel, "ok": ok, "payload": payload, "received_ms": int(time.time() * 1000)}
    if reason:
        line["reason"] = reason
    with lock:
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body, content_type="application/json"):
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        q = dict(urllib.parse.parse_qsl(url.query))
        if url.path == "/wechat/cgi-bin/token":
            if q.get("grant_type") != "client_credential" or q.get("appid") != a.wechat_appid:
                emit("wechat", False, q, "bad appid or grant_type")
                return self.reply(200, {"errcode": 40013, "errmsg": "invalid appid"})
            if q.get("secret") != a.wechat_secret:
                emit("wechat", False, {"appid": q.get("appid")}, "bad appsecret")
                return self.reply(200, {"errcode": 40125, "errmsg": "invalid appsecret"})
            return self.reply(200, {"access_token": WECHAT_TOKEN, "expires_in": 7200})
        self.reply(404, {"error": "not found"})

    def do_POST(self):
        if a.delay_ms:
            time.sleep(a.delay_ms / 1000)
        url = urllib.parse.urlparse(self.path)
        q = dict(urllib.parse.parse_qsl(url.query))
        raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        path = url.path
        if path in ("/webhook", "/webhook-github", "/webhook-iot"):
            channel = path[1:]
            if path == "/webhook":
                from standardwebhooks.webhooks import Webhook, WebhookVerificationError
                secret = a.webhook_secret if a.webhook_secret.startswith("whsec_") else a.webhook_secret.encode()
                try:
                    Webhook(secret).verify(raw, dict(self.headers.items()))
                except WebhookVerificationError as e:
                    emit(channel, False, body, "standard webhooks: " + str(e))
                    return self.reply(401, {"error": str(e)})
            elif path == "/webhook-github":
                want = "sha256=" + hmac.new(a.webhook_secret.encode(), raw, hashlib.sha256).hexdigest()
                if not hmac.compare_digest(want, self.headers.get("X-Hub-Signature-256", "")):
                    emit(channel, False, body, "signature mismatch")
                    return self.reply(401, {"error": "bad signature"})
            else:
                ts = self.headers.get("X-IoT-Timestamp", "")
                want = "sha256=" + hmac.new(a.webhook_secret.encode(), ts.encode() + b"." + raw, hashlib.sha256).hexdigest()
                got = self.headers.get("X-IoT-Signature", "")
                if not ts or not hmac.compare_digest(want, got):
                    emit(channel, False, body, "signature mismatch")
                    return self.reply(401, {"error": "bad signature"})
                if abs(int(ts) - time.time() * 1000) > 300_000:
                    emit(channel, False, body, "stale timestamp")
                    return self.reply(401, {"error": "stale timestamp"})
            if not isinstance(body, dict) or not {"id", "body", "messageIDs", "count"} <= body.keys():
                emit(channel, False, body, "missing fields")
                return self.reply(400, {"error": "missing fields"})
            emit(channel, True, body)
            return self.reply(200, {"ok": True})
        if path == "/feishu":
            ts = (body or {}).get("timestamp", "")
            string_to_sign = f"{ts}\n{a.feishu_secret}"
            want = base64.b64encode(hmac.new(string_to_sign.encode(), b"", hashlib.sha256).digest()).decode()
            if not ts or body.get("sign") != want or abs(int(ts) - time.time()) > 3600:
                emit("feishu", False, body, "sign mismatch")
                return self.reply(200, {"code": 19021, "msg": "sign match fail or timestamp is not within one hour from current time"})
            card = body.get("card") or {}
            if body.get("msg_type") != "interactive" or not card.get("elements") or card["elements"][0].get("tag") != "markdown":
                emit("feishu", False, body, "not an interactive markdown card")
                return self.reply(200, {"code": 9499, "msg": "Bad Request"})
            emit("feishu", True, body)
            return self.reply(200, {"code": 0, "msg": "success", "data": {}})
        if path == "/dingtalk":
            ts = q.get("timestamp", "")
            string_to_sign = f"{ts}\n{a.dingtalk_secret}"
            want = base64.b64encode(hmac.new(a.dingtalk_secret.encode(), string_to_sign.encode(), hashlib.sha256).digest()).decode()
            # The sign arrives URL-encoded in the query; parse_qsl decoded it once. Check the raw encoding too.
            raw_sign = [v for k, v in (kv.split("=", 1) for kv in url.query.split("&") if "=" in kv) if k == "sign"]
            encoded_ok = raw_sign and raw_sign[0] == urllib.parse.quote_plus(want)
            if not ts or q.get("access_token") != "dt-token" or q.get("sign") != want or not encoded_ok \
                    or abs(int(ts) - time.time() * 1000) > 3_600_000:
                emit("dingtalk", False, {"query": q, "body": body}, "sign not match")
                return self.reply(200, {"errcode": 310000, "errmsg": "sign not match"})
            md = (body or {}).get("markdown") or {}
            if body.get("msgtype") != "markdown" or not md.get("title") or not md.get("text"):
                emit("dingtalk", False, body, "bad markdown body")
                return self.reply(200, {"errcode": 40035, "errmsg": "missing parameter"})
            emit("dingtalk", True, body)
            return self.reply(200, {"errcode": 0, "errmsg": "ok"})
        if path == "/wecom":
            if q.get("key") != a.wecom_key:
                emit("wecom", False, body, "invalid webhook key")
                return self.reply(200, {"errcode": 93000, "errmsg": "invalid webhook url"})
            md = (body or {}).get("markdown") or {}
            if body.get("msgtype") != "markdown" or not md.get("content") or len(md["content"].encode()) > 4096:
                emit("wecom", False, body, "bad markdown body")
                return self.reply(200, {"errcode": 40008, "errmsg": "invalid message type"})
            emit("wecom", True, body)
            return self.reply(200, {"errcode": 0, "errmsg": "ok"})
        if path == "/wechat/cgi-bin/message/template/send":
            if q.get("access_token") != WECHAT_TOKEN:
                emit("wechat", False, body, "invalid access token")
                return self.reply(200, {"errcode": 40001, "errmsg": "invalid credential"})
            data = (body or {}).get("data") or {}
            if not body.get("touser") or not body.get("template_id") or not all(
                    isinstance(v, dict) and "value" in v for v in data.values()) or not data:
                emit("wechat", False, body, "bad template message")
                return self.reply(200, {"errcode": 47001, "errmsg": "data format error"})
            emit("wechat", True, body)
            return self.reply(200, {"errcode": 0, "errmsg": "ok", "msgid": 200228332})
        if path == "/slack":
            if not isinstance(body, dict) or not body.get("text"):
                emit("slack", False, body, "no text")
                return self.reply(400, "invalid_payload", "text/plain")
            emit("slack", True, body)
            return self.reply(200, "ok", "text/plain")
        if path in ("/sms", "/voice"):
            channel = path[1:]
            if self.headers.get("Authorization") != f"Bearer {a.gateway_token}":
                emit(channel, False, body, "bad gateway token")
                return self.reply(401, {"error": "unauthorized"})
            if self.headers.get("Content-Type") != "application/json" or not isinstance(body, dict) \
                    or not body.get("to") or not body.get("text"):
                emit(channel, False, body, "bad gateway body")
                return self.reply(400, {"error": "bad body"})
            emit(channel, True, body)
            return self.reply(200, {"ok": True})
        emit("unknown", False, {"path": self.path}, "unknown path")
        self.reply(404, {"error": "not found"})


server = ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
server.daemon_threads = True
print(f"READY {a.port}", flush=True)
server.serve_forever()
