"""A seeded fault-injection campaign against a private Dovecot with the
plugin, its delivery service and a real webhook receiver
(test_faults.py runs it; docs/testing.md, "Fault injection").

Each iteration draws, from random.Random(seed), a user (each user has
one policy, set in the userdb), the messages to deliver, RETR and DELE,
and a fault:

    retr-mid     kill -9 of the session's pop3 process mid-RETR of a
                 large message (the client has read a random prefix)
    after-retr   kill -9 right after the client read a whole RETR
    after-dele   kill -9 right after a DELE's +OK
    quit-race    QUIT sent on the raw socket, kill -9 after a busy-wait
                 of 0-300 us from sending it or from reading its +OK,
                 or of 0.2-1.2 times the median QUIT latency (the QUIT
                 commit and the event hand-off race in there)
    service-kill kill -9 of the pop3-retention service at a random
                 point of a session (the master restarts it)
    outage       the receiver goes away for this and the next 0-2
                 iterations
    clean        a session that ends with QUIT

The ground truth is what the client saw: which RETRs it read whole,
which DELEs were answered +OK, whether QUIT was sent and answered, and
when each message was last seen on disk. At the end the receiver is
up, the outboxes are flushed, every user logs in once more (which
reconciles pending removal events, docs/webhooks.md, "Delivery
guarantees") and the service drains; then violations() lists every
broken invariant. Duplicates are counted (figures()), not failures.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from dovecot_harness import HOST, RawPOP3, make_message, wait_until

P = "pop3_retention_"
KEEP_SECS = 3
# one user per policy (userdb overrides, docs/dovecot.md "Settings")
USERS = {
    "dad": {P + "policy": "delete-after-download"},
    "keep": {P + "policy": "keep", P + "keep": f"{KEEP_SECS}s"},
    "floor": {P + "policy": "delete-after-download", P + "min": "1d"},
    "hold": {P + "policy": "delete-after-download", P + "hold": "yes"},
    "off": {P + "policy": "off"},
}
KINDS = ("retr-mid", "after-retr", "after-dele", "quit-race",
         "service-kill", "outage", "clean")
WEIGHTS = (2, 2, 2, 4, 1, 1, 1)
# large enough that the server cannot have written it all into the
# socket buffers (4 MiB send buffer at most here, 64 KiB receive)
BIG_BYTES = 6 * 1024 * 1024
RCVBUF = 64 * 1024
# 16 attempts at most; an outage lasts a few seconds
SCHEDULE = "0s 1s 1s 1s 1s 1s 1s 2s 2s 2s 2s 5s 5s 10s 10s 20s"
REMOVALS = ("message.deleted", "message.expired")
# Dovecot's maildir dotlocks (the plugin's own lock is an fcntl lock)
DOTLOCKS = ("dovecot-uidlist.lock", "dovecot-keywords.lock")


class Client(RawPOP3):
    """RawPOP3 with a small receive buffer, so that a large RETR is
    still being written when the client stops reading."""

    def __init__(self, port: int, timeout: float = float(
            os.environ.get("P3R_FAULT_CLIENT_TIMEOUT", "30"))):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        self.sock.settimeout(timeout)
        self.sock.connect((HOST, port))
        self.timeout = timeout
        self.buf = b""
        self.greeting = self.readline()

    def read_until_close(self, timeout=None) -> bytes:
        """Everything up to the close; a process killed with input it had
        not read resets the connection."""
        try:
            while self._fill(timeout):
                pass
        except ConnectionResetError:
            pass
        data, self.buf = self.buf, b""
        return data


@dataclass
class Msg:
    user: str
    msgid: str
    base: str
    big: bool = False
    uidl: Optional[str] = None
    downloads: List[float] = field(default_factory=list)  # RETR sent at
    quit_dele: bool = False       # DELE +OK in a session that sent QUIT
    quit_download: bool = False   # read whole in a session that sent QUIT
    must_go: bool = False         # a QUIT answered +OK removes it
    last_seen: float = 0.0
    missing_since: Optional[float] = None


def _pop3_pid(s, sock) -> int:
    """The pop3 process holding the server end of this connection."""
    lport = sock.getsockname()[1]
    want_l = "%08X:%04X" % (int.from_bytes(socket.inet_aton(HOST),
                                           "little"), s.inst.port)
    want_r = "%08X:%04X" % (int.from_bytes(socket.inet_aton(HOST),
                                           "little"), lport)
    inode = None
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            parts = line.split()
            if parts[1] == want_l and parts[2] == want_r:
                inode = parts[9]
    assert inode, "no server socket for the client's connection"
    link = f"socket:[{inode}]"
    for pid in s.pop3_pids():
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}") == link:
                    return pid
        except OSError:
            pass
    raise AssertionError(f"no pop3 process holds {link}")


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True


def diagnose(s, pid: Optional[int], user: str) -> str:
    """What a stuck session's process waits for (on a failure only)."""
    out = [f"--- diagnosis of pop3 {pid} ({user}) ---"]
    if pid is not None and not _gone(pid):
        for name in ("wchan", "stack"):
            try:
                out.append(open(f"/proc/{pid}/{name}").read())
            except OSError:
                pass
        r = subprocess.run(["gdb", "-p", str(pid), "-batch", "-ex", "bt"],
                           capture_output=True, text=True, timeout=60)
        out.append(r.stdout[-3000:])
    md = s.inst.maildir(user).path
    out.append(" ".join(sorted(os.listdir(md))))
    for name in DOTLOCKS:
        lock = md / name
        try:
            st = lock.stat()
            out.append(f"{name}: {st.st_size} bytes, mtime "
                       f"{time.time() - st.st_mtime:.1f}s ago, starts "
                       f"with {lock.read_bytes()[:80]!r}")
        except OSError:
            pass
    return "\n".join(out)


def _message_id(lines) -> Optional[str]:
    for line in lines:
        if not line:
            break
        if line.lower().startswith(b"message-id:"):
            return line.split(b":", 1)[1].strip().decode()
    return None


class Campaign:
    def __init__(self, s, rng, seed: int):
        self.s = s
        self.rng = rng
        self.seed = seed
        self.msgs: Dict[str, Msg] = {}
        self.by_uidl: Dict[tuple, str] = {}
        self.kills = Counter()
        self.outages = 0
        self.stale_locks = 0
        self.leaked_locks: List[str] = []
        self.quit_lat: List[float] = []
        self.outage_left = -1
        self.iterations = 0
        self.history: List[str] = []
        self.n = 0
        self.started = time.monotonic()

    # -- mail ------------------------------------------------------------
    def deliver(self, user: str, big: bool = False) -> Msg:
        self.n += 1
        msgid = f"<fault.{self.seed}.{self.n}@test.invalid>"
        if big:
            line = b"x" * 74 + b"\n"
            data = make_message(f"big {self.n}", msgid=msgid,
                                body=line * (BIG_BYTES // 75))
        else:
            data = make_message(f"m {self.n}", msgid=msgid,
                                size_kb=self.rng.choice((1, 4, 40)))
        base = self.s.inst.maildir(user).deliver(data)
        m = self.msgs[msgid] = Msg(user, msgid, base, big,
                                   last_seen=time.time())
        return m

    def snapshot(self, user: str) -> None:
        now = time.time()
        present = set(self.s.inst.maildir(user).bases())
        for m in self.msgs.values():
            if m.user != user:
                continue
            if m.base in present:
                m.last_seen = now
            elif m.missing_since is None:
                m.missing_since = now

    # -- one session -------------------------------------------------------
    def listing(self, c: Client, user: str) -> List[tuple]:
        """[(number, Msg)] of the listing, by UIDL (TOP n 0 names a
        message seen for the first time; TOP is not a download)."""
        st, lines = c.command("UIDL", multiline=True)
        assert st.startswith(b"+OK"), st
        out = []
        for line in lines:
            num, uidl = line.decode().split()
            key = (user, uidl)
            if key not in self.by_uidl:
                st, head = c.command(f"TOP {num} 0", multiline=True)
                assert st.startswith(b"+OK"), st
                msgid = _message_id(head)
                assert msgid in self.msgs, (user, num, msgid)
                self.by_uidl[key] = msgid
                self.msgs[msgid].uidl = uidl
            out.append((int(num), self.msgs[self.by_uidl[key]]))
        return out

    def retr(self, c: Client, num: int, m: Msg, done: list) -> None:
        t = time.time()
        c.sendline(f"RETR {num}")
        st, lines = c.read_response(multiline=True)
        assert st.startswith(b"+OK"), (num, st)
        assert _message_id(lines) == m.msgid, (num, m.msgid)
        m.downloads.append(t)
        done.append(m)

    def pick(self, items: list, k: int) -> list:
        """k distinct items; draws k numbers whatever len(items) is, so
        that the seed's sequence does not depend on the listing."""
        draws = [self.rng.random() for _ in range(k)]
        pool = list(items)
        out = []
        for d in draws:
            if pool:
                out.append(pool.pop(int(d * len(pool))))
        return out

    def kill(self, pid: int, what: str) -> None:
        os.kill(pid, signal.SIGKILL)
        self.kills[what] += 1
        wait_until(lambda: _gone(pid), timeout=20,
                   message=f"pid {pid} survives SIGKILL")

    def kill_service(self) -> None:
        old = wait_until(self.s.service_pids, timeout=30,
                         message="no pop3-retention service process")
        self.kill(old[0], "service")

    def iteration(self) -> None:
        rng = self.rng
        self.iterations += 1
        kind = rng.choices(KINDS, WEIGHTS)[0]
        user = rng.choice(sorted(USERS))
        new = rng.randint(0, 2)
        k_retr, k_dele = rng.randint(0, 3), rng.randint(0, 2)
        delay_us = rng.uniform(0, 300)
        quit_ref = rng.choice(("sent", "reply", "commit"))
        commit_frac = rng.uniform(0.2, 1.2)
        prefix = rng.randint(0, 1024 * 1024)
        svc_step = rng.randint(0, 6)
        outage_len = rng.randint(0, 2)
        note = f"#{self.iterations} {kind} user={user}"

        if kind == "outage" and self.s.rx.running:
            self.s.rx.stop()
            self.outages += 1
            self.outage_left = outage_len
        if kind in ("after-retr", "after-dele"):
            new, k_retr = max(new, 1), max(k_retr, 1)
            k_dele = max(k_dele, 1) if kind == "after-dele" else k_dele
        for _ in range(new):
            self.deliver(user)
        if kind == "retr-mid" and not any(
                m.big and m.user == user and m.missing_since is None
                and not m.downloads for m in self.msgs.values()):
            self.deliver(user, big=True)

        c = Client(self.s.inst.port)
        pid = None
        try:
            c.login(user)
            pid = _pop3_pid(self.s, c.sock)
            listed = self.listing(c, user)
            small = [(n, m) for n, m in listed if not m.big]
            done, deled = [], []
            steps = 0

            def step():
                nonlocal steps
                if kind == "service-kill" and steps == svc_step:
                    self.kill_service()
                steps += 1

            step()

            for num, m in sorted(self.pick(small, k_retr),
                                 key=lambda x: x[0]):
                self.retr(c, num, m, done)
                step()
            if kind == "after-retr" and done:
                self.kill(pid, kind)
                note += f" retr={len(done)}"
                return self.end(c, user, note, done, deled, False, None)
            if kind == "retr-mid":
                big = [(n, m) for n, m in listed if m.big and not
                       m.downloads]
                if big:
                    num, m = big[0]
                    t = time.time()
                    c.sendline(f"RETR {num}")
                    while len(c.buf) < prefix:
                        if not c._fill(None):
                            break
                    self.kill(pid, kind)
                    rest = c.buf + c.read_until_close()
                    complete = rest.endswith(b"\r\n.\r\n")
                    if complete:
                        m.downloads.append(t)
                    note += f" prefix={prefix} complete={complete}"
                    return self.end(c, user, note, done, deled, False,
                                    None)
            for num, m in self.pick(small, k_dele):
                st, _ = c.command(f"DELE {num}")
                assert st.startswith(b"+OK"), (num, st)
                deled.append(m)
                step()
            if kind == "after-dele" and deled:
                self.kill(pid, kind)
                note += f" retr={len(done)} dele={len(deled)}"
                return self.end(c, user, note, done, deled, False, None)
            if kind == "quit-race":
                if quit_ref == "commit":
                    # around the commit and hand-off, which take longer
                    # than 300 us here: a fraction of a QUIT's latency
                    lat = sorted(self.quit_lat[-15:]) or [1000.0]
                    delay_us = lat[len(lat) // 2] * commit_frac
                c.sock.sendall(b"QUIT\r\n")
                if quit_ref == "reply":
                    # the commit is done, the hand-off may not be
                    reply = c.readline()
                t0 = time.perf_counter_ns()
                while time.perf_counter_ns() - t0 < delay_us * 1000:
                    pass
                alive = not _gone(pid)
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    alive = False
                self.kills[f"quit-race ({quit_ref})" if alive else
                           f"quit-race ({quit_ref}, had exited)"] += 1
                wait_until(lambda: _gone(pid), timeout=20)
                if quit_ref != "reply":
                    reply = c.read_until_close()
                ok = reply.startswith(b"+OK")
                note += (f" retr={len(done)} dele={len(deled)} "
                         f"after {quit_ref} +{delay_us:.0f}us "
                         f"quit_ok={ok}")
                return self.end(c, user, note, done, deled, True, ok)
            t0 = time.perf_counter_ns()
            st, _ = c.command("QUIT")
            if done or deled:
                self.quit_lat.append((time.perf_counter_ns() - t0) / 1000)
            if kind == "service-kill" and steps <= svc_step:
                self.kill_service()
            note += f" retr={len(done)} dele={len(deled)} quit={st[:3]!r}"
            return self.end(c, user, note, done, deled, True,
                            st.startswith(b"+OK"), pid)
        except Exception:
            self.history.append(note + " FAILED")
            self.history.append(diagnose(self.s, pid, user))
            raise
        finally:
            c.close()

    def end(self, c, user, note, done, deled, quit_sent, quit_ok,
            pid=None) -> None:
        """Record what the client saw; wait for the session's process."""
        c.close()
        if pid is not None:
            wait_until(lambda: _gone(pid), timeout=30,
                       message=f"pop3 {pid} did not exit after QUIT")
        self.stale_dotlocks(user, killed=pid is None)
        policy = USERS[user][P + "policy"]
        hold = P + "hold" in USERS[user] or P + "min" in USERS[user]
        for m in deled:
            m.quit_dele |= quit_sent
            if quit_ok and not hold and (policy != "keep" or
                                         not m.downloads):
                m.must_go = True
        for m in done:
            m.quit_download |= quit_sent
            if quit_ok and not hold and policy == "delete-after-download":
                m.must_go = True
        self.snapshot(user)
        self.history.append(note)
        if self.outage_left >= 0:
            if self.outage_left == 0:
                self.s.rx.start()
            self.outage_left -= 1

    def stale_dotlocks(self, user: str, killed: bool) -> None:
        """Dovecot's maildir, not the plugin: a pop3 process killed
        between creating dovecot-uidlist.lock (or dovecot-keywords.lock)
        with O_EXCL and writing its pid into it leaves a lock that names
        no process, and the next session waits for Dovecot's stale
        timeout (2 minutes for the uidlist) before it overrides it. No
        process of the instance is in a session now, so the lock is
        stale: remove it, as Dovecot would later. A lock that names its
        (dead) writer is left: Dovecot overrides it within seconds."""
        for name in DOTLOCKS:
            lock = self.s.inst.maildir(user).path / name
            try:
                data = lock.read_bytes()
            except FileNotFoundError:
                continue
            if not killed:
                self.leaked_locks.append(f"{user}: {name} left by a "
                                         "session that ended with QUIT")
            if re.fullmatch(rb"[0-9]+:[^\n]*", data):
                continue
            lock.unlink()
            self.stale_locks += 1
            self.history.append(f"  removed {name} naming no process "
                                f"({len(data)} bytes)")

    # -- the end -------------------------------------------------------------
    def flush(self) -> None:
        r = self.s.inst.doveadm_plugin("pop3-retention", "flush", "-A")
        assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)

    def finish(self, drain_timeout: float = 120) -> None:
        s = self.s
        if not s.rx.running:
            s.rx.start()
        wait_until(s.service_pids, timeout=30,
                   message="the service was not restarted")
        s.wait_service_ready()
        self.flush()
        for user in sorted(USERS):
            c = Client(s.inst.port)
            pid = None
            try:
                c.login(user)
                pid = _pop3_pid(s, c.sock)
                st, _ = c.command("QUIT")
                assert st.startswith(b"+OK"), st
                c.close()
                wait_until(lambda: _gone(pid), timeout=30,
                           message=f"pop3 {pid} did not exit after QUIT")
            except Exception:
                self.history.append(f"final login of {user} FAILED")
                self.history.append(diagnose(s, pid, user))
                raise
            self.snapshot(user)
        self.flush()
        deadline = time.monotonic() + drain_timeout
        while time.monotonic() < deadline:
            if not self.violations(final=False) and \
                    s.spool_pending() == 0:
                break
            time.sleep(0.5)
        # late duplicates of the last transfers, if any
        time.sleep(1)
        self.duration = time.monotonic() - self.started

    # -- checks ----------------------------------------------------------------
    def events(self):
        out = defaultdict(list)
        for r in self.s.rx.delivered():
            if r.event is not None:
                out[r.data.get("message_id")].append(r)
        return out

    def violations(self, final: bool = True) -> List[str]:
        """Every broken invariant, one line each. final=False: only the
        ones that waiting for delivery may still mend."""
        bad = []
        ev = self.events()
        for m in self.msgs.values():
            got = ev.get(m.msgid, [])
            removal = [r for r in got if r.type in REMOVALS]
            sessions = {r.data["session"] for r in got
                        if r.type == "message.retrieved"}
            gone = m.missing_since is not None
            if len(sessions) < len(m.downloads):
                bad.append(f"{m.user} {m.msgid}: {len(m.downloads)} "
                           f"complete download(s), message.retrieved "
                           f"from {len(sessions)} session(s)")
            if gone and not removal:
                bad.append(f"{m.user} {m.msgid}: removed, no "
                           "message.deleted/expired delivered")
            if not final:
                continue
            if sessions and not m.downloads:
                bad.append(f"{m.user} {m.msgid}: message.retrieved "
                           "without a complete download")
            if removal and not gone:
                bad.append(f"{m.user} {m.msgid}: {removal[0].type} but "
                           "the message is still there")
            if m.must_go and not gone:
                bad.append(f"{m.user} {m.msgid}: a QUIT answered +OK "
                           "should have removed it")
            if gone:
                why = self.removal_unlicensed(m)
                if why:
                    bad.append(f"{m.user} {m.msgid}: removed, but {why}")
        if final:
            bad += self.leaked_locks
            q, _ = self.s.queue()
            if q.get("pending") != "0" or q.get("dead_lettered") != "0":
                bad.append(f"the spool is not drained: {q}")
            for line in self.s.log().splitlines():
                if "An event was lost" in line:
                    bad.append(line)
            for r in self.s.rx.all():
                if r.path != self.s.rx.path:
                    bad.append(f"request to {r.path}")
                elif not (r.verified and r.fresh):
                    bad.append(f"unverifiable request {r.id} "
                               f"(verified={r.verified} fresh={r.fresh})")
                elif r.event is None or \
                        r.data.get("message_id") not in self.msgs:
                    bad.append(f"event {r.id} names no message of the "
                               "campaign")
        return bad

    def removal_unlicensed(self, m: Msg) -> Optional[str]:
        policy = USERS[m.user][P + "policy"]
        if P + "hold" in USERS[m.user]:
            return "the user is under legal hold"
        if P + "min" in USERS[m.user]:
            return "the floor (1d) keeps it"
        if policy == "off":
            return None if m.quit_dele else \
                "no session that sent QUIT DELEd it"
        if policy == "delete-after-download":
            return None if m.quit_dele or m.quit_download else \
                "no session that sent QUIT DELEd or downloaded it"
        if not m.downloads:
            return None if m.quit_dele else \
                "never downloaded whole nor DELEd before a QUIT"
        # the index stores whole seconds: allow 1 s
        earliest = m.downloads[0] + KEEP_SECS - 1
        if m.missing_since < earliest:
            return (f"gone at {m.missing_since:.3f}, before the keep "
                    f"window from the download sent at "
                    f"{m.downloads[0]:.3f} ended")
        return None

    def figures(self) -> Dict[str, object]:
        acked = self.s.rx.delivered()
        log = self.s.log()
        ids = Counter(r.id for r in acked)
        logical = defaultdict(set)
        for r in acked:
            if r.event is None:
                continue
            d = r.data
            if r.type == "message.retrieved":
                key = (r.type, d.get("message_id"), d.get("session"))
            elif r.type in REMOVALS:
                key = ("removal", d.get("message_id"))
            else:
                key = (r.type, d.get("message_id"), d.get("session"))
            logical[key].add(r.id)
        return {
            "seed": self.seed,
            "iterations": self.iterations,
            "kills": dict(sorted(self.kills.items())),
            "outages": self.outages,
            "messages": len(self.msgs),
            "removed": sum(m.missing_since is not None
                           for m in self.msgs.values()),
            "downloads": sum(len(m.downloads) for m in self.msgs.values()),
            "requests": len(self.s.rx.hook_requests()),
            "delivered": len(acked),
            "events": len(ids),
            "by_type": dict(sorted(Counter(r.type for r in acked).items())),
            "dup_same_id": sum(n - 1 for n in ids.values()),
            "dup_other_id": sum(len(v) - 1 for v in logical.values()),
            "pending_handed_over": log.count("committed, handed over now"),
            "pending_dropped": log.count("dropped (its change was not "
                                         "committed)"),
            "stale_dotlocks": self.stale_locks,
            "quit_latency_us_median": round(sorted(self.quit_lat)[
                len(self.quit_lat) // 2]) if self.quit_lat else None,
            "outbox_writes": log.count("written to the outbox"),
            "duration_s": round(getattr(self, "duration", 0), 1),
        }
