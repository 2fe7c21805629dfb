"""A real HTTP webhook receiver for the Dovecot integration tests.

Runs in the test process (threaded http.server on 127.0.0.1), records
every request and verifies its Standard Webhooks signature
independently of the C code: HMAC-SHA256 over "id.timestamp.body" with
Python's hmac/hashlib/base64, secrets "whsec_" + base64.

    rx = WebhookReceiver(secret)            # started, free port
    rx.url                                  # http://127.0.0.1:<port>/hook
    rx.respond("500", "200")                # the next requests' answers
    rx.respond("500", "200", per_id=True)   # per webhook-id: 1st 500, 2nd 200
    rx.default = "503 ra=2"                 # answer once the script is used up
    rx.stop(); rx.start()                   # down / up again on the same port
    WebhookReceiver(secret, tls=(cert, key))  # https, that certificate
    rx.wait_for(lambda rx: len(rx.delivered_ids()) >= 3)

Answers (strings):
    "200", "204", "500", "410", ...   that status, empty JSON body
    "503 ra=<n>"                      that status with "Retry-After: <n>"
    "302"                             302, Location: <base>/followed
    "stall <n>"                       read the request, wait n seconds,
                                      then close without answering
A request to any other path than the hook's is recorded too (so that a
followed redirect would show up) and answered 200.

Every request is a Request: path, id, timestamp, body (bytes), event
(parsed JSON or None), headers (lower-case names), verified (exactly
one valid v1 signature per secret, and nothing else counts), fresh
(timestamp within 5 minutes), answer, acknowledged (a 2xx written
completely), received (time.time()).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.server
import json
import os
import socket
import socketserver
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

TOLERANCE_SECS = 300


def make_secret(nbytes: int = 32) -> str:
    """A fresh Standard Webhooks secret, "whsec_" + base64 of the key."""
    return "whsec_" + base64.b64encode(os.urandom(nbytes)).decode()


def secret_key(secret: str) -> bytes:
    return base64.b64decode(secret[len("whsec_"):]
                            if secret.startswith("whsec_") else secret)


def sign(secret: str, msg_id: str, timestamp: str, body: bytes) -> str:
    """The v1 signature (without the "v1," prefix) as the spec defines it."""
    signed = msg_id.encode() + b"." + timestamp.encode() + b"." + body
    mac = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return base64.b64encode(mac).decode()


def verify(secrets: List[str], msg_id: str, timestamp: str, body: bytes,
           header: str) -> bool:
    """True if the header holds one valid v1 signature per secret and no
    other entry."""
    entries = [e for e in header.split(" ") if e]
    if not secrets or len(entries) != len(secrets):
        return False
    for secret in secrets:
        expected = "v1," + sign(secret, msg_id, timestamp, body)
        if not any(hmac.compare_digest(expected, e) for e in entries):
            return False
    return True


@dataclass
class Request:
    path: str
    id: str
    timestamp: str
    body: bytes
    event: Optional[dict]
    headers: Dict[str, str]
    verified: bool
    fresh: bool
    answer: str
    received: float
    acknowledged: bool = False
    connection: int = 0

    @property
    def type(self) -> Optional[str]:
        return self.event.get("type") if self.event else None

    @property
    def data(self) -> dict:
        return (self.event or {}).get("data") or {}


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "p3r-webhook-receiver"

    def log_message(self, fmt, *args):  # quiet
        pass

    def setup(self):
        super().setup()
        rx = self.server.receiver
        with rx.lock:
            rx.connections += 1
            self.connection_no = rx.connections

    def do_POST(self):
        rx: WebhookReceiver = self.server.receiver
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        body = self.rfile.read(length) if length > 0 else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        msg_id = headers.get("webhook-id", "")
        ts = headers.get("webhook-timestamp", "")
        ok = verify(rx.secrets, msg_id, ts, body,
                    headers.get("webhook-signature", ""))
        try:
            fresh = abs(time.time() - int(ts)) <= TOLERANCE_SECS
        except ValueError:
            fresh = False
        try:
            event = json.loads(body)
        except ValueError:
            event = None
        path = self.path.split("?")[0]
        with rx.lock:
            answer = rx._next_answer(path, msg_id)
            req = Request(path=path, id=msg_id, timestamp=ts, body=body,
                          event=event, headers=headers, verified=ok,
                          fresh=fresh, answer=answer, received=time.time(),
                          connection=self.connection_no)
            rx.requests.append(req)
        self._answer(rx, req, answer)

    def _answer(self, rx, req: Request, answer: str) -> None:
        words = answer.split()
        if words[0] == "stall":
            secs = float(words[1]) if len(words) > 1 else 3600.0
            rx._stall_event.wait(secs)
            self.close_connection = True
            return
        status = int(words[0])
        extra = {}
        for w in words[1:]:
            if w.startswith("ra="):
                extra["Retry-After"] = w[3:]
        if status in (301, 302, 303, 307, 308):
            extra["Location"] = rx.base_url + "/followed"
        payload = b"{}"
        try:
            self.send_response(status)
            for k, v in extra.items():
                self.send_header(k, v)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            self.wfile.flush()
        except OSError:
            return
        if 200 <= status <= 299:
            with rx.lock:
                req.acknowledged = True


class WebhookReceiver:
    """See the module docstring."""

    def __init__(self, secrets, path: str = "/hook", port: int = 0,
                 start: bool = True, tls=None):
        self.secrets = [secrets] if isinstance(secrets, str) else list(secrets)
        # (certificate file, key file): https, else http
        self.tls = tls
        self.path = path
        self.port = port
        self.lock = threading.Lock()
        self.requests: List[Request] = []
        self.connections = 0
        self.default = "200"
        self._script: List[str] = []
        self._per_id_script: Optional[List[str]] = None
        self._per_id_count: Dict[str, int] = {}
        self._stall_event = threading.Event()
        self._server: Optional[_Server] = None
        self._thread: Optional[threading.Thread] = None
        if start:
            self.start()

    # -- lifecycle ------------------------------------------------------
    def start(self) -> None:
        """Listen (again) on the port (a free one the first time)."""
        if self._server is not None:
            return
        self._stall_event.clear()
        deadline = time.monotonic() + 10
        while True:
            try:
                srv = _Server(("127.0.0.1", self.port), _Handler)
                break
            except OSError:
                if self.port == 0 or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        srv.receiver = self
        if self.tls is not None:
            # the handshake runs in accept(): one the client refuses is
            # an OSError there, which socketserver drops
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*self.tls)
            srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
        self.port = srv.server_address[1]
        self._server = srv
        self._thread = threading.Thread(target=srv.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop listening: new connections are refused. Stalled requests
        are released (closed without an answer)."""
        if self._server is None:
            return
        self._stall_event.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
        self._server = None
        self._thread = None

    close = stop

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def base_url(self) -> str:
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return self.base_url + self.path

    # -- behaviour ------------------------------------------------------
    def respond(self, *answers: str, per_id: bool = False) -> None:
        """Script the next answers: globally in request order, or per
        webhook-id (the n-th request of each id gets answers[n], the last
        one repeating)."""
        with self.lock:
            if per_id:
                self._per_id_script = list(answers)
                self._per_id_count = {}
            else:
                self._script = list(answers)

    def _next_answer(self, path: str, msg_id: str) -> str:
        if path != self.path:
            return "200"
        if self._per_id_script:
            n = self._per_id_count.get(msg_id, 0)
            self._per_id_count[msg_id] = n + 1
            return self._per_id_script[min(n, len(self._per_id_script) - 1)]
        if self._script:
            return self._script.pop(0)
        return self.default

    # -- results ----------------------------------------------------------
    def all(self) -> List[Request]:
        with self.lock:
            return list(self.requests)

    def hook_requests(self) -> List[Request]:
        return [r for r in self.all() if r.path == self.path]

    def delivered(self) -> List[Request]:
        """The acknowledged requests (a 2xx was written), in order."""
        return [r for r in self.hook_requests() if r.acknowledged]

    def delivered_ids(self) -> List[str]:
        return [r.id for r in self.delivered()]

    def events(self, type_: Optional[str] = None) -> List[Request]:
        """Acknowledged requests, optionally of one event type."""
        return [r for r in self.delivered()
                if type_ is None or r.type == type_]

    def attempts(self, msg_id: str) -> List[Request]:
        return [r for r in self.hook_requests() if r.id == msg_id]

    def wait_for(self, predicate: Callable[["WebhookReceiver"], object],
                 timeout: float = 15.0, message: str = "") -> object:
        deadline = time.monotonic() + timeout
        while True:
            value = predicate(self)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(
                    (message or "receiver condition not met") +
                    f" within {timeout}s; requests: " +
                    repr([(r.id, r.type, r.answer, r.acknowledged)
                          for r in self.all()]))
            time.sleep(0.05)

    def check_invariants(self) -> None:
        """What must hold for every test: every request to the hook was
        signed correctly and freshly, and no event was sent again after
        it had been acknowledged."""
        acked = {}
        for r in self.hook_requests():
            assert r.verified, f"bad signature on {r.id}: {r.headers}"
            assert r.fresh, f"stale webhook-timestamp on {r.id}"
            assert r.id not in acked or r.received < acked[r.id], \
                f"{r.id} sent again after it was acknowledged"
            if r.acknowledged and r.id not in acked:
                acked[r.id] = r.received


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def make_certificate(directory, name: str, san: str):
    """A self-signed certificate (also its own CA) for san, e.g.
    "IP:127.0.0.1" or "DNS:other.invalid", made with openssl(1).
    Returns (certificate file, key file)."""
    cert = os.path.join(str(directory), name + ".pem")
    key = os.path.join(str(directory), name + ".key")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
         "-keyout", key, "-out", cert, "-days", "2",
         "-subj", f"/CN={name}", "-addext", f"subjectAltName={san}"],
        check=True, capture_output=True, timeout=60)
    os.chmod(cert, 0o644)
    return cert, key
