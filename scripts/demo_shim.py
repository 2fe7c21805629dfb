#!/usr/bin/python3
"""./quickstart demo --shim: pop3-retentiond on 127.0.0.1.

Starts the built pop3-retentiond (as root; it drops to nobody) with an
embedded config: plain POP3 with STLS and implicit TLS on free ports, a
self-signed certificate, the 'keep' policy, a demo user with a few
messages and a 'strict' user under delete-after-download, and its
webhooks to a local sink (scripts/webhook_sink.py) that verifies and
prints each event. Prints how to connect and what to try, then follows
the log until Ctrl-C; on the way out it stops the server and the sink
and removes its directory.

    demo_shim.py [--keep INTERVAL]            interactive (default 2m)
    demo_shim.py --check [--keep INTERVAL]    run the printed commands,
                                              report, stop
"""

import argparse
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

TOP = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TOP / "tests" / "dovecot"))
sys.path.insert(0, str(TOP / "tests" / "shim"))
sys.path.insert(0, str(TOP / "scripts"))

import shim_harness as sh  # noqa: E402
import webhook_sink  # noqa: E402
from dovecot_harness import make_message  # noqa: E402
from demo import (DEMO_MESSAGES, STRICT_MESSAGES, Stop, check_stop,  # noqa
                  human, interval_seconds, out, sleep, _on_signal)

HOST = sh.HOST


class ShimDemo:
    def __init__(self, keep_s):
        self.keep_s = keep_s
        self.keep = human(keep_s)
        self.inst = None
        self.sink = None

    def start(self):
        secret = webhook_sink.make_secret()
        self.sink = webhook_sink.WebhookSink(
            secret, on_event=lambda event: out(event.line()))
        self.inst = sh.ShimInstance(
            settings={"pop3_retention_policy": "keep",
                      "pop3_retention_keep": self.keep},
            users={"demo": {"password": "{PLAIN}demo"},
                   "strict": {"password": "{PLAIN}strict",
                              "pop3_retention_policy":
                              "delete-after-download"}},
            tls=True, start=False)
        secret_file = self.inst.dir / "webhook.secret"
        fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                     0o600)
        try:
            os.fchown(fd, sh.MAIL_UID, sh.MAIL_GID)
            os.write(fd, (secret + "\n").encode())
        finally:
            os.close(fd)
        self.inst.settings.update({
            "pop3_retention_webhook_url": self.sink.url,
            "pop3_retention_webhook_secret_file": str(secret_file),
            # loopback targets are refused unless allowed
            "pop3_retention_webhook_allow_private": "yes"})
        self.inst.write_conf()
        for user, msgs in (("demo", DEMO_MESSAGES),
                           ("strict", STRICT_MESSAGES)):
            md = self.inst.maildir(user)
            for subject, body in msgs:
                md.deliver(make_message(subject, body=body))
        self.inst.start()
        os.chmod(sh.certificate_files()[0], 0o644)

    def url(self, user, path="", tls=False):
        scheme, port = (("pop3s", self.inst.tls_port) if tls
                        else ("pop3", self.inst.port))
        return f"{scheme}://{user}:{user}@{HOST}:{port}/{path}"

    def instructions(self):
        cert = sh.certificate_files()[0]
        return f"""
pop3-retentiond is running on {HOST} (pid {self.inst.proc.pid}):
  POP3 + STLS   port {self.inst.port}
  implicit TLS  port {self.inst.tls_port} (self-signed: --cacert {cert})
users: demo/demo (keep {self.keep} after the first download),
       strict/strict (delete-after-download)
webhooks: {self.sink.url}, a local sink that verifies and prints each event

Try:
  curl {self.url('demo')}                  list
  curl {self.url('demo', '1')}                 download message 1
  curl --cacert {cert} {self.url('demo', '1', tls=True)}
  curl {self.url('demo')} -X CAPA          EXPIRE after login
  curl {self.url('strict', '1')}               removed at QUIT
  {sh.SHIM_BIN} -c {self.inst.conf} status -u demo
After {self.keep}, the next login removes message 1 (reason=keep-expired).

pop3-retentiond log (Ctrl-C stops the demo):"""

    def stop(self):
        if self.inst is not None:
            self.inst.stop()
            self.inst.remove()
        if self.sink is not None:
            self.sink.stop()


def run_check(demo):
    inst = demo.inst
    results = []

    def curl(url, *extra):
        r = subprocess.run(["curl", "-sS", "--max-time", "10", url, *extra],
                           capture_output=True, text=True, timeout=30)
        check_stop()
        return r

    def ok(name, cond, detail=""):
        results.append(bool(cond))
        out(f"  {'ok  ' if cond else 'FAIL'}  {name}"
            + (f"\n        {detail.strip()}" if detail and not cond else ""))

    n = len(DEMO_MESSAGES)
    r = curl(demo.url("demo"))
    ok(f"curl {demo.url('demo')}  lists {n} messages",
       r.returncode == 0 and len(r.stdout.splitlines()) == n,
       r.stdout + r.stderr)
    r = curl(demo.url("demo", "1"))
    retrieved_at = time.time()
    ok("curl .../1 returns message 1",
       r.returncode == 0 and f"Subject: {DEMO_MESSAGES[0][0]}" in r.stdout,
       r.stdout[:300] + r.stderr)
    r = curl(demo.url("demo", "2", tls=True), "--cacert",
             str(sh.certificate_files()[0]))
    ok("curl pop3s://.../2 over implicit TLS returns message 2",
       r.returncode == 0 and f"Subject: {DEMO_MESSAGES[1][0]}" in r.stdout,
       r.stdout[:300] + r.stderr)
    r = curl(demo.url("demo"), "-X", "CAPA")
    expire = str(demo.keep_s // 86400)
    ok(f"CAPA after login shows EXPIRE {expire}",
       re.search(rf"^EXPIRE {expire}$", r.stdout, re.M), r.stdout)
    r = subprocess.run([str(sh.SHIM_BIN), "-c", str(inst.conf), "status",
                        "-u", "demo"], capture_output=True, text=True,
                       timeout=30)
    rows = [l.split("\t") for l in r.stdout.splitlines()[1:]]
    ok("status -u demo shows message 1's first download and window",
       r.returncode == 0 and len(rows) == n and rows[0][3] != "-"
       and rows[0][5] != "never", r.stdout + r.stderr)
    curl(demo.url("strict", "1"))
    r = curl(demo.url("strict"))
    left = len(STRICT_MESSAGES) - 1
    ok(f"strict: after downloading message 1 the list has {left}",
       r.returncode == 0 and len(r.stdout.splitlines()) == left,
       r.stdout + r.stderr)
    if demo.keep_s <= 30:
        sleep(max(0.0, retrieved_at + demo.keep_s + 1.5 - time.time()))
        r = curl(demo.url("demo"))
        ok(f"after {demo.keep}: the next login removes messages 1 and 2 "
           "(both downloaded)",
           r.returncode == 0 and len(r.stdout.splitlines()) == n - 2
           and "reason=keep-expired" in inst.log_text(),
           r.stdout + inst.log_text()[-2000:])
    else:
        out(f"  (skipped waiting {demo.keep}; --keep 5s checks it)")
    def webhook(type_, user, **facts):
        def match(e):
            return (e.verified and e.type == type_
                    and e.data.get("user") == user
                    and all(e.data.get(k) == v for k, v in facts.items()))
        what = " ".join(f"{k}={str(v).lower()}" for k, v in facts.items())
        ok(f"webhook: {type_} user={user} {what}, signature verified",
           demo.sink.wait_for(match, timeout=15, between=check_stop),
           "the sink got: " + "; ".join(e.line() for e in demo.sink.events))

    webhook("message.retrieved", "demo", first_retrieval=True)
    webhook("message.expired", "strict", reason="downloaded")
    if demo.keep_s <= 30:
        webhook("message.expired", "demo", reason="keep-expired")
    bad = [l for l in inst.log_text().splitlines() if "Error:" in l]
    ok("no Error in the log", not bad, "\n".join(bad))
    out("log lines:")
    for line in inst.log_text().splitlines():
        if "Debug:" not in line:
            out("  " + line)
    passed = sum(results)
    out(f"demo --shim --check: {passed} passed, {len(results) - passed} "
        "failed")
    return all(results)


def follow(demo):
    off = 0
    while True:
        check_stop()
        text = demo.inst.log_text()
        for line in text[off:].splitlines():
            if "Debug:" not in line:
                out(line)
        off = len(text)
        if not demo.inst.running:
            out("demo: pop3-retentiond exited")
            return 1
        time.sleep(0.3)


def main():
    ap = argparse.ArgumentParser(prog="./quickstart demo --shim")
    ap.add_argument("--shim", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--keep", type=interval_seconds, default=120,
                    metavar="INTERVAL")
    args = ap.parse_args()
    if os.geteuid() != 0:
        out("demo: run as root (pop3-retentiond binds, then drops to nobody)")
        return 1
    if not sh.SHIM_BIN.is_file():
        out(f"demo: {sh.SHIM_BIN} is missing: build first")
        return 1
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, _on_signal)
    demo = ShimDemo(args.keep)
    rc = 1
    try:
        demo.start()
        if args.check:
            out(demo.instructions().rsplit("\n\npop3-retentiond log", 1)[0])
            rc = 0 if run_check(demo) else 1
        else:
            out(demo.instructions())
            rc = follow(demo)
    except Stop:
        rc = 0
    except sh.HarnessError as e:
        out(f"demo: {e}")
    finally:
        demo.stop()
        out("demo: pop3-retentiond stopped, its directory removed")
    return rc


if __name__ == "__main__":
    sys.exit(main())
