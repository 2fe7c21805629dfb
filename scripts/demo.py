#!/usr/bin/python3
"""./quickstart demo: a private Dovecot 2.3 with pop3-retention on 127.0.0.1.

Starts a Dovecot master (as root) on a free port with the pop3 plugin,
the pop3-login plugin and the webhook delivery service, two users with a
few messages, and a local webhook sink (scripts/webhook_sink.py, a thread
on 127.0.0.1) that verifies each event's signature and prints it.  Prints
how to try it, then follows the pop3-retention log lines, interleaved with
the sink's event lines, until Ctrl-C (SIGINT), SIGTERM or SIGHUP.  On the
way out it stops Dovecot, every process it started and the sink, and
removes its directory.

    demo.py [--keep INTERVAL]            interactive (default window 2m)
    demo.py --check [--keep INTERVAL]    start, run the printed commands,
                                         report, stop; exit 0 if all passed

Reuses tests/dovecot/dovecot_harness.py (DovecotInstance).  Run it through
./quickstart demo, which installs and builds first.
"""

import argparse
import grp
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

TOP = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TOP / "tests" / "dovecot"))

import dovecot_harness as h  # noqa: E402
import webhook_sink  # noqa: E402  (scripts/, next to this file)

HOST = h.HOST
SERVICE_BIN = TOP / "plugin" / "dovecot" / "pop3-retention"
# docs/dovecot.md "Webhook delivery service"; the socket is for the mail
# users' group (the demo's users are all 65534:65534)
SERVICE_BLOCK = """\
service pop3-retention {{
  executable = {bin}
  user = {user}
  process_limit = 1
  process_min_avail = 1
  unix_listener pop3-retention {{
    mode = 0660
    user = {user}
    group = {group}
  }}
}}"""
DEMO_MESSAGES = [
    ("Welcome to the pop3-retention demo",
     "This mailbox is under the 'keep' policy: a message stays on the\n"
     "server for the keep window after its first complete download (RETR),\n"
     "then it is removed at the next login.\n"),
    ("Invoice 1001", "Amount due: 42.00 EUR.\n"),
    ("Meeting notes", "1. Retention policies\n2. Webhooks\n3. Any other business\n"),
    ("Your weekly report", "Nothing to report.\n"),
    ("Lunch?", "Tomorrow at noon?\n"),
]
STRICT_MESSAGES = [
    ("Strict 1", "delete-after-download: removed at QUIT once downloaded.\n"),
    ("Strict 2", "Not downloaded yet: stays.\n"),
    ("Strict 3", "Not downloaded yet: stays.\n"),
]
UNITS = {"s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1,
         "m": 60, "min": 60, "mins": 60, "minute": 60, "minutes": 60,
         "h": 3600, "hour": 3600, "hours": 3600}
LOG_NEEDLES = ("pop3-retention", "pop3_retention", " Error: ", " Fatal: ",
               " Panic: ", " Warning: ")


_out_lock = threading.Lock()  # the sink prints from its own threads


def out(*args):
    try:
        with _out_lock:
            print(*args, flush=True)
    except OSError:  # stdout gone (closed pipe): keep going, clean up
        pass


def interval_seconds(text):
    m = re.fullmatch(r"\s*(\d+)\s*([a-z]+)\s*", text)
    if not m or m.group(2) not in UNITS or int(m.group(1)) == 0:
        raise argparse.ArgumentTypeError(
            f"{text!r}: want a number and s, m or h (e.g. 90s, 2m)")
    return int(m.group(1)) * UNITS[m.group(2)]


def human(seconds):
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    if seconds % 60 == 0:
        return f"{seconds // 60}m"
    return f"{seconds}s"


# --------------------------------------------------------------- signals
class Stop(Exception):
    pass


_stop_signal = None


def _on_signal(signum, frame):
    global _stop_signal
    _stop_signal = signum


def check_stop():
    """Raise Stop if a stop signal arrived.  Signals only set a flag: the
    code checks it between steps, so no step is cut in half."""
    if _stop_signal is not None:
        raise Stop()


def sleep(seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        check_stop()
        time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))
    check_stop()


# --------------------------------------------------------------- instance
class Demo:
    def __init__(self, keep_s):
        self.keep_s = keep_s
        self.keep = human(keep_s)
        self.root = None
        self.inst = None
        self.sink = None

    def start(self):
        # A directory of our own (short: unix sockets live in base_dir),
        # world-searchable: auth runs as dovecot, pop3 as 65534.
        self.root = Path(tempfile.mkdtemp(prefix="p3rdemo.", dir="/tmp"))
        os.chmod(self.root, 0o755)
        h.INSTANCE_ROOT = self.root
        settings = {
            "pop3_retention_policy": "keep",
            "pop3_retention_keep": self.keep,
        }
        users = {
            "demo": {"password": "demo"},
            "strict": {"password": "strict",
                       "pop3_retention_policy": "delete-after-download"},
        }
        self.inst = h.DovecotInstance(
            plugin=True, settings=settings, users=users,
            protocol_pop3_extra="  login_plugins = $login_plugins "
                                "pop3_retention_login",
            start=False)
        self._webhooks(settings)
        check_stop()
        for user, msgs in (("demo", DEMO_MESSAGES),
                           ("strict", STRICT_MESSAGES)):
            md = self.inst.maildir(user)
            for subject, body in msgs:
                md.deliver(h.make_message(subject, body=body,
                                          sender="postmaster@example.com",
                                          to=f"{user}@example.com"))
        self.inst.start()
        check_stop()
        self.expire = self._site_expire()
        self._write_doveadm_wrapper()
        check_stop()

    def _webhooks(self, settings):
        """A fresh secret in the instance dir (0600, owned by the service's
        user, as the service demands), the sink, and the service block."""
        secret = webhook_sink.make_secret()
        self.secret_file = self.dir / "webhook.secret"
        fd = os.open(self.secret_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                     0o600)
        try:
            # its own system user (docs/dovecot.md), created if missing
            service_user = h.ensure_service_user()
            os.fchown(fd, service_user.pw_uid, service_user.pw_gid)
            os.write(fd, (secret + "\n").encode())
        finally:
            os.close(fd)
        self.sink = webhook_sink.WebhookSink(
            secret, on_event=lambda event: out(event.line()))
        settings.update({
            "pop3_retention_webhook_url": self.sink.url,
            "pop3_retention_webhook_secret_file": str(self.secret_file),
            # the service refuses loopback/private targets by default
            "pop3_retention_webhook_allow_private": "yes",
        })
        block = SERVICE_BLOCK.format(bin=SERVICE_BIN, user=h.SERVICE_USER,
                                     group=grp.getgrgid(h.MAIL_GID).gr_name)
        self.inst.reconfigure(settings=settings, extra_conf=block,
                              restart=False)

    def _site_expire(self):
        """The EXPIRE value pop3-login announces before login (the login
        plugin's), e.g. "0"; "?" if it announces none."""
        c = h.RawPOP3(self.inst.port)
        try:
            _, capa = c.command("CAPA", multiline=True)
            c.quit()
        finally:
            c.close()
        for line in capa:
            m = re.fullmatch(rb"EXPIRE (\S+) USER", line)
            if m:
                return m.group(1).decode()
        return "?"

    @property
    def dir(self):
        return self.inst.dir

    def url(self, user, path=""):
        return f"pop3://{user}:{user}@{HOST}:{self.inst.port}/{path}"

    def _write_doveadm_wrapper(self):
        """The doveadm plugin loads only from the compiled-in module dir;
        the harness bind-mounts a directory over it in a private mount
        namespace.  The first call builds that directory; the wrapper
        replays the same command line for the user."""
        r = self.inst.doveadm_plugin("pop3-retention", "status", "-u", "demo")
        if r.returncode != 0:
            raise h.HarnessError("doveadm pop3-retention status failed:\n"
                                 + r.stdout + r.stderr)
        argv = self.inst.doveadm_ns_prefix() + [
            "doveadm", "-c", str(self.inst.config_socket)]
        self.doveadm = self.dir / "doveadm"
        self.doveadm.write_text(
            "#!/bin/sh\n"
            "# doveadm for the pop3-retention demo instance, with the\n"
            "# pop3-retention doveadm plugin visible (private mount namespace;\n"
            "# root only).  Removed when the demo stops.\n"
            f"exec {shlex.join(argv)} \"$@\"\n")
        os.chmod(self.doveadm, 0o755)

    def instructions(self):
        port = self.inst.port
        d = self.dir
        k = self.keep
        e = self.expire
        n = len(DEMO_MESSAGES)
        s = len(STRICT_MESSAGES)
        demo = f"pop3://demo:demo@{HOST}:{port}/"
        strict = f"pop3://strict:strict@{HOST}:{port}/"
        tries = [
            (f"curl {demo}", f"list: {n} messages"),
            (f"curl {demo}1", f"download message 1: its {k} window starts"),
            (f"curl {demo} -X CAPA", f"after login: EXPIRE {e} (RFC 2449, "
                                     "in days)"),
            (f"curl pop3://{HOST}:{port}/ -X CAPA",
             f"before login: EXPIRE {e} USER (login plugin)"),
            (f"curl {strict}1", "strict: message 1 is removed at QUIT"),
            (f"curl {strict}", f"... the list has {s - 1} left"),
        ]
        w = max(len(c) for c, _ in tries) + 3
        rows = "\n".join(f"  {c:<{w}}{m}" for c, m in tries)
        return f"""
pop3-retention demo: Dovecot 2.3 with the plugin on {HOST}:{port}
  port     {port}
  files    {d}  (removed on exit)
  config   {self.inst.conf}
  log      tail -f {self.inst.log}
  webhooks {self.sink.url}  the local sink: prints each event, verified
  secret   {self.secret_file}  whsec_..., 0600, owner dovecot
  users    demo/demo       {n} messages, policy keep, window {k} after the first download
           strict/strict   {s} messages, userdb override: delete-after-download

Try it from another terminal:
{rows}

What is kept, and until when (arrived, first download, removable_at):
  {d}/doveadm pop3-retention status -u demo

After {k} the next login removes message 1 ("reason=keep-expired" in the
log) and the list has {n - 1} messages: curl {demo}
Messages never downloaded stay.  Without a login, a sweep removes what is due:
  {d}/doveadm pop3-retention sweep -u demo

Webhooks: the pop3-retention service signs every event (Standard Webhooks)
and POSTs it to the sink at {self.sink.url}, which checks the
signature with Python's hmac and prints one line per event ("signature OK").
pop3_retention_webhook_allow_private = yes lets the service post to
127.0.0.1: that is for this local demo only; a real endpoint is a public
https:// URL and the setting stays off.

pop3-retention log lines and webhook events follow.  Ctrl-C stops Dovecot
and the sink and removes {d}.
"""

    def stop(self):
        """Stop Dovecot and everything it started, remove the directory.
        Returns a list of problems (empty: clean)."""
        problems = []
        if self.inst is not None:
            try:
                self.inst.stop()
            except Exception as e:  # fall back to SIGKILL below
                problems.append(f"graceful stop failed: {e}")
                try:
                    self.inst.stop(fast=True)
                except Exception as e2:
                    problems.append(f"fast stop failed: {e2}")
            if self.inst.master_pid and h.session_pids(self.inst.master_pid):
                problems.append("processes left: "
                                f"{h.session_pids(self.inst.master_pid)}")
        if self.sink is not None:
            self.sink.stop()
        if self.root is not None:
            self._kill_strays()
            shutil.rmtree(self.root, ignore_errors=True)
            if self.root.exists():
                problems.append(f"could not remove {self.root}")
        return problems

    def _kill_strays(self):
        """Belt and braces: any process whose command line names our
        directory (a master the harness lost track of), with its session."""
        needle = str(self.root)
        me = os.getpid()
        for name in os.listdir("/proc"):
            if not name.isdigit() or int(name) == me:
                continue
            if needle not in h._cmdline(int(name)):
                continue
            st = h._proc_stat(int(name))
            for pid in (h.session_pids(st[2]) if st else []) or [int(name)]:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


# --------------------------------------------------------------- modes
def follow_log(demo):
    """Print pop3-retention lines of the log as they arrive, until a stop
    signal (or the master dies)."""
    pos = 0
    partial = b""
    while True:
        check_stop()
        if not demo.inst.running:
            out("demo: the Dovecot master exited unexpectedly; see "
                f"{demo.inst.master_out} and {demo.inst.log}:")
            out(demo.inst.log_text()[-2000:])
            return 1
        try:
            with open(demo.inst.log, "rb") as f:
                f.seek(pos)
                data = f.read()
                pos = f.tell()
        except FileNotFoundError:
            data = b""
        if data:
            partial += data
            *lines, partial = partial.split(b"\n")
            for line in lines:
                text = line.decode(errors="replace")
                if any(n in text for n in LOG_NEEDLES):
                    out(text)
        sleep(0.2)


def run_check(demo):
    """Run what the instructions print; report; True if everything passed."""
    inst = demo.inst
    results = []

    def curl(user, path="", *extra):
        argv = ["curl", "-sS", "--max-time", "10", demo.url(user, path), *extra]
        r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        check_stop()
        return r

    def ok(name, cond, detail=""):
        results.append(bool(cond))
        out(f"  {'ok  ' if cond else 'FAIL'}  {name}"
            + (f"\n        {detail.strip()}" if detail and not cond else ""))

    def webhook(type_, user, **facts):
        """Wait for a verified event of that type about user's uid 1 at the
        sink; report it."""
        def match(e):
            return (e.verified and e.type == type_
                    and e.data.get("user") == user and e.data.get("uid") == 1
                    and all(e.data.get(k) == v for k, v in facts.items()))
        what = " ".join(f"{k}={str(v).lower()}" for k, v in facts.items())
        ok(f"webhook: {type_} user={user} uid=1 {what} at "
           f"{demo.sink.url}, signature verified",
           demo.sink.wait_for(match, timeout=15, between=check_stop),
           "the sink got: " + "; ".join(e.line() for e in demo.sink.events))

    n = len(DEMO_MESSAGES)
    out(f"\ndemo --check: dovecot master pid {inst.master_pid}, "
        f"port {inst.port}")
    r = curl("demo")
    ok(f"curl {demo.url('demo')}  lists {n} messages",
       r.returncode == 0 and len(r.stdout.splitlines()) == n,
       r.stdout + r.stderr)

    r = curl("demo", "1")
    ok(f"curl {demo.url('demo', '1')}  returns message 1",
       r.returncode == 0 and f"Subject: {DEMO_MESSAGES[0][0]}" in r.stdout,
       r.stdout[:500] + r.stderr)
    retrieved_at = time.time()
    webhook("message.retrieved", "demo", first_retrieval=True)

    r = curl("demo", "", "-X", "CAPA")
    ok(f"curl {demo.url('demo')} -X CAPA  shows EXPIRE {demo.expire}",
       r.returncode == 0
       and re.search(rf"^EXPIRE {re.escape(demo.expire)}$", r.stdout, re.M),
       r.stdout + r.stderr)

    url = f"pop3://{HOST}:{inst.port}/"
    r = subprocess.run(["curl", "-sS", "--max-time", "10", url, "-X", "CAPA"],
                       capture_output=True, text=True, timeout=30)
    check_stop()
    ok(f"curl {url} -X CAPA  (before login) shows EXPIRE {demo.expire} USER",
       r.returncode == 0
       and re.search(rf"^EXPIRE {re.escape(demo.expire)} USER$", r.stdout,
                     re.M), r.stdout + r.stderr)

    r = subprocess.run([str(demo.doveadm), "-f", "tab", "pop3-retention",
                        "status", "-u", "demo"],
                       capture_output=True, text=True, timeout=60)
    check_stop()
    rows = [l.split("\t") for l in r.stdout.splitlines()]
    head = rows[0] if rows else []
    table = [dict(zip(head, row)) for row in rows[1:]]
    first = next((t for t in table if t.get("uid") == "1"), {})
    ok(f"{demo.doveadm} pop3-retention status -u demo  shows message 1's "
       "window",
       r.returncode == 0 and len(table) == n
       and first.get("first_retrieved", "-") != "-"
       and first.get("removable_at", "never") != "never",
       r.stdout + r.stderr)

    r1 = curl("strict", "1")
    r2 = curl("strict")
    left = len(STRICT_MESSAGES) - 1
    ok(f"strict: curl {demo.url('strict', '1')}, then the list has {left}",
       r1.returncode == 0 and r2.returncode == 0
       and len(r2.stdout.splitlines()) == left
       and len(inst.maildir("strict").files()) == left,
       r1.stderr + r2.stdout + r2.stderr)
    webhook("message.expired", "strict", reason="downloaded")

    if demo.keep_s <= 30:
        sleep(max(0.0, retrieved_at + demo.keep_s + 1.5 - time.time()))
        r = curl("demo")
        try:  # the audit line is written as the session ends
            h.wait_until(lambda: "reason=keep-expired" in inst.log_text(),
                         timeout=5)
            expired = True
        except AssertionError:
            expired = False
        ok(f"after {demo.keep}: the next login removes message 1 "
           f"(list has {n - 1}, log says reason=keep-expired)",
           r.returncode == 0 and len(r.stdout.splitlines()) == n - 1
           and expired, r.stdout + r.stderr)
        webhook("message.expired", "demo", reason="keep-expired")
    else:
        out(f"  (skipped waiting {demo.keep} for the window; "
            "--keep 5s checks it)")

    bad = [l for l in inst.log_text().splitlines()
           if any(s in l for s in (" Error: ", " Fatal: ", " Panic: "))]
    ok("no Error/Fatal/Panic in the log", not bad, "\n".join(bad))
    events = list(demo.sink.events)
    ok(f"the sink got {len(events)} events, every signature verified",
       events and all(e.verified for e in events),
       "\n".join(e.line() for e in events))

    out("log lines:")
    for line in inst.log_text().splitlines():
        if "pop3-retention" in line:
            out("  " + line)
    passed = sum(results)
    out(f"demo --check: {passed} passed, {len(results) - passed} failed")
    return all(results)


def main():
    ap = argparse.ArgumentParser(prog="./quickstart demo",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true",
                    help="start, run the printed commands, report, stop")
    ap.add_argument("--keep", type=interval_seconds, default=120,
                    metavar="INTERVAL",
                    help="the keep window (s, m or h; default 2m)")
    args = ap.parse_args()

    if os.geteuid() != 0:
        out("demo: run as root (the private Dovecot master binds, forks and "
            "drops privileges to dovecot, dovenull and nobody)")
        return 1
    for so in (h.PLUGIN_SO, h.LOGIN_PLUGIN_SO, h.DOVEADM_PLUGIN_SO,
               SERVICE_BIN):
        if not so.is_file():
            out(f"demo: {so} is missing: build first (./quickstart demo "
                "does)")
            return 1

    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, _on_signal)

    demo = Demo(args.keep)
    rc = 1
    try:
        demo.start()
        if args.check:
            out(demo.instructions().rsplit("\n\npop3-retention log", 1)[0])
            rc = 0 if run_check(demo) else 1
        else:
            out(demo.instructions())
            rc = follow_log(demo)
    except Stop:
        rc = 0
    except h.HarnessError as e:
        out(f"demo: {e}")
    except Exception as e:
        out(f"demo: {type(e).__name__}: {e}")
    finally:
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)
        if _stop_signal is not None:
            out(f"\ndemo: {signal.Signals(_stop_signal).name}: stopping")
        problems = demo.stop()
        if problems:
            out("demo: " + "; ".join(problems))
            rc = 1
        elif demo.root is not None:
            out(f"demo: Dovecot stopped, {demo.root} removed, nothing left "
                "running")
    return rc


if __name__ == "__main__":
    sys.exit(main())
