"""A real HTTP webhook receiver for test-webhook-delivery.

Usage: webhook-receiver.py LOG_FILE SECRET [SECRET]

Listens on 127.0.0.1 on a free port and prints the port on stdout. The
last path segment of a request is its script, comma-separated answers:
the n-th request to a path gets the n-th answer, the last one repeats.

  200, 410, 500, ...  that status
  <status>ra<n>       that status with "Retry-After: <n>"
  <status>radate<n>   that status with Retry-After: an HTTP-date n s ahead
  302                 302 with "Location: /followed/200"
  stall<n>            wait n seconds, then 200
  200big              200 with a 1 MiB body

Every request is appended to LOG_FILE as one JSON line before it is
answered: path, method, connection number, the webhook-* headers,
whether the signature header holds exactly one valid v1 signature per
secret (checked here with hmac and base64, independently of the C
code), whether the timestamp is within 5 minutes, and the body.

Exits when its stdin is closed (the test holds the other end), so that
a crashed test leaves no server behind. Standard library only.
"""

import base64
import email.utils
import hashlib
import hmac
import http.server
import json
import os
import sys
import threading
import time

LOG_LOCK = threading.Lock()
STATE_LOCK = threading.Lock()
REQUEST_COUNTS = {}
CONNECTIONS = [0]
TOLERANCE_SECS = 300


def verify_signature(secrets, msg_id, timestamp, body, header):
    """One valid v1 signature per secret, nothing else."""
    entries = [e for e in header.split(" ") if e]
    if len(entries) != len(secrets):
        return False
    signed = msg_id.encode() + b"." + timestamp.encode() + b"." + body
    for secret in secrets:
        key = base64.b64decode(secret[len("whsec_"):]
                               if secret.startswith("whsec_") else secret)
        mac = hmac.new(key, signed, hashlib.sha256).digest()
        expected = "v1," + base64.b64encode(mac).decode()
        if not any(hmac.compare_digest(expected, e) for e in entries):
            return False
    return True


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    secrets = []
    log_path = None

    def setup(self):
        super().setup()
        with STATE_LOCK:
            CONNECTIONS[0] += 1
            self.conn_id = CONNECTIONS[0]

    def log_message(self, format, *args):
        pass

    def answer_for(self, path):
        with STATE_LOCK:
            n = REQUEST_COUNTS.get(path, 0)
            REQUEST_COUNTS[path] = n + 1
        script = path.rstrip("/").split("/")[-1].split(",")
        return script[min(n, len(script) - 1)]

    def record(self, body):
        msg_id = self.headers.get("webhook-id", "")
        ts = self.headers.get("webhook-timestamp", "")
        sig = self.headers.get("webhook-signature", "")
        try:
            ts_ok = abs(int(ts) - time.time()) <= TOLERANCE_SECS
        except ValueError:
            ts_ok = False
        entry = {
            "path": self.path,
            "method": self.command,
            "conn": self.conn_id,
            "id": msg_id,
            "timestamp": ts,
            "ts_ok": ts_ok,
            "sig_ok": bool(msg_id and ts and sig) and
            verify_signature(self.secrets, msg_id, ts, body, sig),
            "content_type": self.headers.get("Content-Type", ""),
            "body": body.decode("utf-8", "replace"),
            "time": time.time(),
        }
        with LOG_LOCK:
            with open(self.log_path, "a", encoding="utf-8") as log:
                log.write(json.dumps(entry) + "\n")

    def respond(self, status, extra_headers=(), body=b""):
        self.send_response(status)
        for name, value in extra_headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)

    def handle_any(self):
        length = int(self.headers.get("Content-Length", "0") or "0")
        body = self.rfile.read(length) if length > 0 else b""
        self.record(body)
        answer = self.answer_for(self.path)
        try:
            if answer.startswith("stall"):
                time.sleep(float(answer[len("stall"):]))
                self.respond(200)
            elif answer == "200big":
                self.respond(200, body=b"x" * (1024 * 1024))
            elif answer == "302":
                self.respond(302, [("Location", "/followed/200")])
            elif "radate" in answer:
                status, secs = answer.split("radate")
                when = email.utils.formatdate(time.time() + float(secs),
                                              usegmt=True)
                self.respond(int(status), [("Retry-After", when)])
            elif "ra" in answer:
                status, secs = answer.split("ra")
                self.respond(int(status), [("Retry-After", secs)])
            else:
                self.respond(int(answer))
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    do_POST = handle_any
    do_GET = handle_any
    do_PUT = handle_any


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # the engine cuts transfers on purpose (timeouts, response cap)
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def main():
    if len(sys.argv) < 3:
        sys.stderr.write(__doc__)
        return 2
    Handler.log_path = sys.argv[1]
    Handler.secrets = sys.argv[2:]
    server = Server(("127.0.0.1", 0), Handler)

    def watch_stdin():
        while sys.stdin.buffer.read(4096):
            pass
        os._exit(0)

    threading.Thread(target=watch_stdin, daemon=True).start()
    sys.stdout.write("%d\n" % server.server_address[1])
    sys.stdout.flush()
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
