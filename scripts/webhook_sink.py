"""A local Standard Webhooks sink for ./quickstart demo (standard library only).

Listens on 127.0.0.1 (a free port) in a thread.  Every POST is checked the
way docs/webhooks.md describes, with nothing but hmac/hashlib/base64:
HMAC-SHA256 of "<webhook-id>.<webhook-timestamp>.<raw body>" with the
secret's key, one of the "v1,<base64>" entries of webhook-signature must
match, and the timestamp must be within 5 minutes.  A valid request is
answered 204, anything else 401 (so the sender retries it).  Each request
becomes an Event, is kept in `events` and handed to `on_event`.

    sink = WebhookSink(make_secret(), on_event=lambda e: print(e.line()))
    sink.url                          # http://127.0.0.1:<port>/hook
    sink.wait_for(lambda e: e.verified and e.type == "message.retrieved")
    sink.stop()
"""

import base64
import hashlib
import hmac
import http.server
import json
import os
import threading
import time
from dataclasses import dataclass

TOLERANCE_SECS = 300


def make_secret():
    """A fresh secret: "whsec_" + base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


def verify(secret, headers, body):
    """True if `headers` carry a valid, fresh signature of the raw `body`."""
    msg_id = headers.get("webhook-id", "")
    ts = headers.get("webhook-timestamp", "")
    try:
        if abs(time.time() - int(ts)) > TOLERANCE_SECS:
            return False
    except ValueError:
        return False
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256)
    expected = "v1," + base64.b64encode(mac.digest()).decode()
    return any(hmac.compare_digest(expected, sig)
               for sig in headers.get("webhook-signature", "").split())


@dataclass
class Event:
    received: float
    id: str
    type: str
    data: dict
    verified: bool

    def line(self):
        """One readable line: time, type, the event's facts, the verdict."""
        def v(key):
            x = self.data.get(key)
            return "-" if x is None else json.dumps(x).strip('"')
        facts = " ".join(f"{k}={v(k)}" for k in (
            "user", "uid", "uidl", "reason", "first_retrieval", "dry_run"))
        when = time.strftime("%b %d %H:%M:%S", time.localtime(self.received))
        verdict = "signature OK" if self.verified else "SIGNATURE INVALID"
        return f"{when} webhook-sink: {self.type} {facts}  {verdict}"


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, fmt, *args):  # quiet: the demo prints events
        pass

    def do_POST(self):
        sink = self.server.sink
        try:
            length = max(0, int(self.headers.get("Content-Length", 0)))
            body = self.rfile.read(length)
        except ValueError:
            body = b""
        ok = verify(sink.secret, self.headers, body)
        try:
            event = json.loads(body)
        except ValueError:
            event = None
        if not isinstance(event, dict):
            event = {}
        self.send_response(204 if ok else 401)
        self.send_header("Content-Length", "0")
        self.end_headers()
        sink._add(Event(received=time.time(),
                        id=self.headers.get("webhook-id", ""),
                        type=str(event.get("type", "?")),
                        data=event.get("data") or {}, verified=ok))


class WebhookSink:
    def __init__(self, secret, on_event=None, path="/hook"):
        self.secret = secret
        self.on_event = on_event
        self.events = []
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                                       _Handler)
        self._server.sink = self
        self.url = f"http://127.0.0.1:{self._server.server_port}{path}"
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.1},
                                        daemon=True)
        self._thread.start()

    def _add(self, event):
        self.events.append(event)
        if self.on_event:
            self.on_event(event)

    def wait_for(self, predicate, timeout=15.0, between=None):
        """The first event that satisfies `predicate`, waiting up to
        `timeout` seconds for it (calling `between()` every 0.1 s); None
        if none came."""
        deadline = time.monotonic() + timeout
        while True:
            found = next((e for e in list(self.events) if predicate(e)), None)
            if found or time.monotonic() > deadline:
                return found
            if between:
                between()
            time.sleep(0.1)

    def stop(self):
        """Stop listening and end the thread; idempotent."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(5)
        self._server.server_close()
