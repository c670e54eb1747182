#!/usr/bin/env python3
"""A real SMTP server (aiosmtpd) for the notification tests.

Prints "READY <port>" once listening, then one JSON line per received message:
{"from", "to", "subject", "message_id", "x_id", "content_type", "body", "parts" (of a multipart message: each
part's content type, file name, disposition and text), "auth_login", "tls"}.
--starttls CERT KEY offers STARTTLS (and requires it before AUTH and mail); --smtps CERT KEY is implicit TLS.
--login USER --password PASS requires that login (AUTH PLAIN or LOGIN); a wrong one is refused with 535.
Runs until killed.
"""
import argparse, email, json, ssl, sys, time
from email.policy import default
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

p = argparse.ArgumentParser()
p.add_argument("--port", type=int, required=True)
p.add_argument("--starttls", nargs=2, metavar=("CERT", "KEY"))
p.add_argument("--smtps", nargs=2, metavar=("CERT", "KEY"))
p.add_argument("--login")
p.add_argument("--password")
a = p.parse_args()


class Handler:
    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.original_content or envelope.content, policy=default)
        body = msg.get_content() if not msg.is_multipart() else ""
        parts = []
        if msg.is_multipart():
            for part in msg.iter_parts():
                content = part.get_content()
                parts.append({
                    "content_type": part.get_content_type(), "filename": part.get_filename(),
                    "disposition": part.get_content_disposition(),
                    "text": content if isinstance(content, str) else content.decode("latin-1"),
                })
        print(json.dumps({
            "from": envelope.mail_from, "to": envelope.rcpt_tos, "subject": str(msg["subject"]),
            "message_id": str(msg["message-id"]), "x_id": str(msg["X-IoT-Notification-ID"]),
            "content_type": msg.get_content_type(), "charset": msg.get_content_charset(), "body": body, "parts": parts,
            "date": str(msg["date"]), "from_header": str(msg["from"]), "to_header": str(msg["to"]),
            "auth_login": (session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None),
            "tls": session.ssl is not None or bool(a.smtps),  # an --smtps listener only speaks TLS
        }), flush=True)
        return "250 Message accepted for delivery"


def authenticator(server, session, envelope, mechanism, auth_data):
    if isinstance(auth_data, LoginPassword) and a.login is not None:
        if auth_data.login.decode() == a.login and auth_data.password.decode() == a.password:
            return AuthResult(success=True, auth_data=auth_data)
    return AuthResult(success=False, handled=False)


def context(pair):
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(pair[0], pair[1])
    return ctx


kwargs = dict(hostname="127.0.0.1", port=a.port, decode_data=False)
if a.login is not None:
    kwargs.update(authenticator=authenticator, auth_required=True, auth_require_tls=bool(a.starttls))  # implicit TLS is TLS from the start
if a.starttls:
    kwargs.update(tls_context=context(a.starttls), require_starttls=True)
if a.smtps:
    kwargs.update(server_kwargs={}, ssl_context=context(a.smtps))
controller = Controller(Handler(), **kwargs)
controller.start()
print(f"READY {a.port}", flush=True)
try:
    while True:
        time.sleep(3600)
except KeyboardInterrupt:
    pass
finally:
    controller.stop()
