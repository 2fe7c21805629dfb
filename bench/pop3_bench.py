#!/usr/bin/python3
"""POP3 RETR load generator (Python stdlib only).

N concurrent clients, each in its own process (no GIL sharing), run POP3
sessions back to back against host:port:

    connect, greeting, USER, PASS            -> "login" latency
    (STAT, first session of a client only: learns the message count)
    RETR n  x M                              -> one "RETR" latency each:
                                                from sending "RETR n\\r\\n" to
                                                receiving the final ".\\r\\n"
    QUIT

Client i logs in as users[i % len(users)] and picks its M message numbers
with random.Random(seed, i): two runs with the same seed issue the same
RETR sequence, so two servers with the same maildir get the same work.

Stops after --seconds (sessions running at the deadline finish; their RETRs
count for the latencies but not for the throughput, which is RETRs completed
inside the window / window) or after --sessions sessions in total (then
throughput = RETRs / wall time).

Usage:
    bench/pop3_bench.py --port 1110 --users u1,u2 --clients 8 --seconds 20
    bench/pop3_bench.py --port 1110 --users u1 --sessions 1000 --json

Importable: run_load(...) returns the result dict that --json prints.
"""

from __future__ import annotations

import argparse
import array
import json
import math
import multiprocessing as mp
import os
import random
import resource
import signal
import socket
import sys
import time
from typing import Dict, List, Optional, Sequence

RECV_SIZE = 256 * 1024


class POP3Error(Exception):
    pass


class Conn:
    """Minimal POP3 client: line replies and RETR bodies, no dot-unstuffing
    (the body is only counted, the terminator is what matters)."""

    def __init__(self, host: str, port: int, timeout: float):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()

    def _recv(self) -> None:
        data = self.sock.recv(RECV_SIZE)
        if not data:
            raise POP3Error("connection closed by server")
        self.buf += data

    def line(self) -> bytes:
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                out = bytes(self.buf[:i])
                del self.buf[:i + 2]
                return out
            self._recv()

    def ok(self, what: str) -> bytes:
        st = self.line()
        if not st.startswith(b"+OK"):
            raise POP3Error(f"{what}: {st[:200]!r}")
        return st

    def cmd(self, cmd: str) -> bytes:
        self.sock.sendall(cmd.encode() + b"\r\n")
        return self.ok(cmd.split(" ")[0])

    def retr(self, n: int) -> int:
        """RETR n; returns the bytes received after the status line, up to
        and including the terminating ".\\r\\n"."""
        self.sock.sendall(b"RETR %d\r\n" % n)
        buf = self.buf
        # status line
        while True:
            i = buf.find(b"\r\n")
            if i >= 0:
                break
            self._recv()
        if not buf.startswith(b"+OK"):
            raise POP3Error(f"RETR {n}: {bytes(buf[:i])[:200]!r}")
        start = i   # the "\r\n" of the status line begins a possible
        pos = start  # "\r\n.\r\n" (empty body)
        while True:
            j = buf.find(b"\r\n.\r\n", pos)
            if j >= 0:
                end = j + 5
                if end != len(buf):
                    raise POP3Error(f"RETR {n}: {len(buf) - end} unexpected "
                                    "bytes after the terminator")
                size = end - start - 2
                buf.clear()
                return size
            pos = max(start, len(buf) - 4)
            self._recv()

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def _pct(sorted_vals: Sequence[float], q: float) -> Optional[float]:
    """Nearest-rank percentile (q in 0..100) of an ascending sequence."""
    n = len(sorted_vals)
    if n == 0:
        return None
    k = max(1, math.ceil(q / 100.0 * n))
    return sorted_vals[min(n, k) - 1]


def summarize(values: Sequence[float]) -> Dict[str, Optional[float]]:
    """count, mean, p50, p95, p99, max (inputs and outputs in seconds)."""
    s = sorted(values)
    return {
        "count": len(s),
        "mean": (sum(s) / len(s)) if s else None,
        "p50": _pct(s, 50), "p95": _pct(s, 95), "p99": _pct(s, 99),
        "max": s[-1] if s else None,
    }


def _client_setup(idx: int, cfg: dict):
    """A client process's start: default signal handling, its user and
    its random sequence (the same for the same seed and index)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    users: List[str] = cfg["users"]
    return (users[idx % len(users)],
            random.Random(cfg["seed"] * 100003 + idx))


def _session_failed(res: dict, what: str, c: Optional[Conn]) -> None:
    """A client's session failed: count it, keep a few samples, close."""
    res["errors"] += 1
    if len(res["error_samples"]) < 5:
        res["error_samples"].append(what)
    if c is not None:
        c.close()
    time.sleep(0.01)


def _worker(idx: int, cfg: dict, start_at: float, conn) -> None:
    """One client: sessions back to back; sends its raw results on conn."""
    user, rng = _client_setup(idx, cfg)
    m = cfg["messages_per_session"]
    count = cfg.get("message_count") or 0
    deadline = start_at + cfg["seconds"] if cfg["seconds"] else None
    sessions_quota = cfg["sessions_per_worker"][idx] if cfg["sessions"] else None

    retr_lat = array.array("d")
    first_lat = array.array("d")    # first RETR of each session
    later_lat = array.array("d")    # the other RETRs
    login_lat = array.array("d")
    session_lat = array.array("d")
    res = {"sessions": 0, "sessions_in_window": 0, "retr": 0,
           "retr_in_window": 0, "bytes": 0, "bytes_in_window": 0,
           "errors": 0, "error_samples": []}

    now = time.monotonic()
    if start_at > now:
        time.sleep(start_at - now)
    last_end = time.monotonic()
    try:
        while True:
            if deadline is not None and time.monotonic() >= deadline:
                break
            if sessions_quota is not None and res["sessions"] >= sessions_quota:
                break
            c = None
            try:
                t0 = time.perf_counter()
                c = Conn(cfg["host"], cfg["port"], cfg["timeout"])
                c.ok("greeting")
                c.cmd(f"USER {user}")
                c.cmd(f"PASS {cfg['password']}")
                t1 = time.perf_counter()
                if not count:
                    st = c.cmd("STAT").split()
                    count = int(st[1])
                    if count == 0:
                        raise POP3Error(f"mailbox of {user} is empty")
                if m <= count:
                    nums = rng.sample(range(1, count + 1), m)
                else:
                    nums = [rng.randint(1, count) for _ in range(m)]
                lats = []
                ends = []
                sizes = []
                for n in nums:
                    r0 = time.perf_counter()
                    sizes.append(c.retr(n))
                    r1 = time.perf_counter()
                    lats.append(r1 - r0)
                    ends.append(time.monotonic())
                nbytes = sum(sizes)
                c.cmd("QUIT")
                t2 = time.perf_counter()
                c.close()
            except (OSError, POP3Error, ValueError, IndexError) as e:
                _session_failed(res, f"{user}: {e!r}", c)
                continue
            end = time.monotonic()
            last_end = end
            login_lat.append(t1 - t0)
            session_lat.append(t2 - t0)
            retr_lat.extend(lats)
            if lats:
                first_lat.append(lats[0])
                later_lat.extend(lats[1:])
            res["sessions"] += 1
            res["retr"] += len(lats)
            res["bytes"] += nbytes
            if deadline is None or end <= deadline:
                res["sessions_in_window"] += 1
                res["retr_in_window"] += len(lats)
                res["bytes_in_window"] += nbytes
            else:
                # the session straddles the deadline: its RETRs that
                # completed inside the window count for the throughput
                for e_t, size in zip(ends, sizes):
                    if e_t <= deadline:
                        res["retr_in_window"] += 1
                        res["bytes_in_window"] += size
    except KeyboardInterrupt:
        os._exit(130)
    ru = resource.getrusage(resource.RUSAGE_SELF)
    res["cpu"] = ru.ru_utime + ru.ru_stime
    res["last_end"] = last_end
    res["retr_lat"] = retr_lat.tobytes()
    res["first_lat"] = first_lat.tobytes()
    res["later_lat"] = later_lat.tobytes()
    res["login_lat"] = login_lat.tobytes()
    res["session_lat"] = session_lat.tobytes()
    conn.send(res)
    conn.close()


def _run_clients(worker, cfg: dict, clients: int):
    """Runs worker(i, cfg, start_at, conn) in `clients` processes that
    start together at start_at; returns start_at and their results."""
    ctx = mp.get_context("fork")
    start_at = time.monotonic() + 0.2 + 0.005 * clients
    procs, pipes, results = [], [], []
    try:
        for i in range(clients):
            r, w = ctx.Pipe(duplex=False)
            p = ctx.Process(target=worker, args=(i, cfg, start_at, w),
                            daemon=True)
            p.start()
            w.close()
            procs.append(p)
            pipes.append(r)
        for p, r in zip(procs, pipes):
            try:
                results.append(r.recv())
            except EOFError:
                p.join(5)
                if p.exitcode in (-signal.SIGINT, -signal.SIGTERM, 130):
                    raise KeyboardInterrupt(f"load worker {p.pid} "
                                            "interrupted")
                raise RuntimeError(f"load worker {p.pid} died "
                                   f"(exit code {p.exitcode})")
        for p in procs:
            p.join()
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join()
    return start_at, results


def run_load(host: str, port: int, users: Sequence[str], password: str = "pass",
             clients: int = 8, seconds: float = 20.0, sessions: int = 0,
             messages_per_session: int = 10, seed: int = 1,
             message_count: int = 0, timeout: float = 30.0,
             keep_samples: bool = False) -> dict:
    """Run the load and return the summary (latencies in seconds).

    seconds > 0: time-bounded run; else sessions > 0: that many sessions in
    total, spread over the clients.  keep_samples=True adds the raw
    latency lists (retr_samples, login_samples) for pooling."""
    if not users:
        raise ValueError("no users")
    if clients < 1:
        raise ValueError("clients must be >= 1")
    if not seconds and sessions <= 0:
        raise ValueError("need seconds > 0 or sessions > 0")
    per = [sessions // clients + (1 if i < sessions % clients else 0)
           for i in range(clients)] if not seconds else None
    cfg = dict(host=host, port=port, users=list(users), password=password,
               seconds=seconds if seconds else 0, sessions=0 if seconds else sessions,
               sessions_per_worker=per, messages_per_session=messages_per_session,
               seed=seed, message_count=message_count, timeout=timeout)
    start_at, results = _run_clients(_worker, cfg, clients)

    retr, login, sess = array.array("d"), array.array("d"), array.array("d")
    first, later = array.array("d"), array.array("d")
    tot = {k: 0 for k in ("sessions", "sessions_in_window", "retr",
                          "retr_in_window", "bytes", "bytes_in_window",
                          "errors")}
    samples: List[str] = []
    cpu = 0.0
    last_end = start_at
    for res in results:
        for k in tot:
            tot[k] += res[k]
        samples += res["error_samples"]
        cpu += res["cpu"]
        last_end = max(last_end, res["last_end"])
        a = array.array("d"); a.frombytes(res["retr_lat"]); retr.extend(a)
        a = array.array("d"); a.frombytes(res["first_lat"]); first.extend(a)
        a = array.array("d"); a.frombytes(res["later_lat"]); later.extend(a)
        a = array.array("d"); a.frombytes(res["login_lat"]); login.extend(a)
        a = array.array("d"); a.frombytes(res["session_lat"]); sess.extend(a)
    wall = last_end - start_at
    if seconds:
        window = float(seconds)
        n_retr, n_sess, n_bytes = (tot["retr_in_window"], tot["sessions_in_window"],
                                   tot["bytes_in_window"])
    else:
        window = wall
        n_retr, n_sess, n_bytes = tot["retr"], tot["sessions"], tot["bytes"]
    out = {
        "host": host, "port": port, "clients": clients,
        "seconds": seconds, "sessions_requested": sessions,
        "messages_per_session": messages_per_session, "seed": seed,
        "window_s": window, "wall_s": wall,
        "sessions": tot["sessions"], "retr": tot["retr"], "bytes": tot["bytes"],
        "errors": tot["errors"], "error_samples": samples,
        "sessions_per_s": n_sess / window if window > 0 else 0.0,
        "retr_per_s": n_retr / window if window > 0 else 0.0,
        "mbytes_per_s": n_bytes / window / 1e6 if window > 0 else 0.0,
        "retr_latency": summarize(retr),
        # the first RETR of a session and the others, separately: work done
        # once per session (lazy initialisation) shows up in the first
        "retr_first_latency": summarize(first),
        "retr_later_latency": summarize(later),
        "login_latency": summarize(login),
        "session_latency": summarize(sess),
        "loadgen_cpu_s": cpu,
    }
    if keep_samples:
        out["retr_samples"] = list(retr)
        out["login_samples"] = list(login)
    return out


def slot_config(k: int) -> int:
    """Which target slot k of an interleaved run uses: pairs of slots
    in ABBA order (0 1, 1 0, 0 1, ...), so that a steady drift of the
    machine's speed favours neither target."""
    pair, second = divmod(k, 2)
    return second ^ (pair & 1)


def _iworker(idx: int, cfg: dict, start_at: float, conn) -> None:
    """One client of an interleaved run: sessions back to back, each to
    the target of the slot in which it starts; sends the completion
    times and latencies of its RETRs, per target."""
    user, rng = _client_setup(idx, cfg)
    m = cfg["messages_per_session"]
    count = cfg["message_count"]
    slot, nslots = cfg["slot"], cfg["slots"]
    done = (array.array("d"), array.array("d"))
    lat = (array.array("d"), array.array("d"))
    res = {"errors": 0, "error_samples": [], "sessions": [0, 0]}
    now = time.monotonic()
    if start_at > now:
        time.sleep(start_at - now)
    try:
        while True:
            k = int((time.monotonic() - start_at) // slot)
            if k >= nslots:
                break
            t = slot_config(k)
            host, port = cfg["targets"][t]
            c = None
            try:
                c = Conn(host, port, cfg["timeout"])
                c.ok("greeting")
                c.cmd(f"USER {user}")
                c.cmd(f"PASS {cfg['password']}")
                nums = rng.sample(range(1, count + 1), m)
                for n in nums:
                    t0 = time.monotonic()
                    c.retr(n)
                    t1 = time.monotonic()
                    done[t].append(t1)
                    lat[t].append(t1 - t0)
                c.cmd("QUIT")
                c.close()
                res["sessions"][t] += 1
            except (OSError, POP3Error, ValueError, IndexError) as e:
                _session_failed(res, f"{user}@{port}: {e!r}", c)
    except KeyboardInterrupt:
        os._exit(130)
    res["done"] = (done[0].tobytes(), done[1].tobytes())
    res["lat"] = (lat[0].tobytes(), lat[1].tobytes())
    conn.send(res)
    conn.close()


def run_interleaved(targets: Sequence[tuple], users: Sequence[str],
                    password: str = "pass", clients: int = 8,
                    slot: float = 1.0, pairs: int = 10,
                    messages_per_session: int = 10, seed: int = 1,
                    message_count: int = 0, timeout: float = 30.0) -> dict:
    """Throughput of two targets measured in alternating slots.

    The clients run without a pause for 2 x pairs slots of `slot`
    seconds; a session goes to the target of the slot in which it
    starts (slot_config()).  A slot's throughput is the RETRs of its
    own target's sessions completed inside it, per second: sessions of
    the previous slot's target that run into it count for neither
    (the same loss for both targets).  The machine's speed changes
    little from one second to the next, so the ratio of the two slots
    of a pair is much less noisy than that of two rounds of several
    seconds each.  Returns per-pair throughputs and ratios
    (target 1 / target 0), and per target the latencies (s) of the
    RETRs counted (retr_latencies)."""
    if len(targets) != 2 or not users or clients < 1 or pairs < 1:
        raise ValueError("need two targets, users, clients and pairs")
    if message_count < messages_per_session:
        raise ValueError("message_count must be at least messages_per_session")
    cfg = dict(targets=[tuple(t) for t in targets], users=list(users),
               password=password, slot=float(slot), slots=2 * pairs,
               messages_per_session=messages_per_session, seed=seed,
               message_count=message_count, timeout=timeout)
    start_at, results = _run_clients(_iworker, cfg, clients)
    counts = [0] * (2 * pairs)
    errors, samples, sessions = 0, [], [0, 0]
    latencies = ([], [])
    for res in results:
        errors += res["errors"]
        samples += res["error_samples"]
        for t in (0, 1):
            sessions[t] += res["sessions"][t]
            a = array.array("d")
            a.frombytes(res["done"][t])
            la = array.array("d")
            la.frombytes(res["lat"][t])
            for x, d in zip(a, la):
                k = int((x - start_at) // slot)
                if 0 <= k < 2 * pairs and slot_config(k) == t:
                    counts[k] += 1
                    latencies[t].append(d)
    retr = [0, 0]
    for res in results:
        for t in (0, 1):
            retr[t] += len(res["done"][t]) // array.array("d").itemsize
    per_pair = []
    for p in range(pairs):
        by = [0.0, 0.0]
        for k in (2 * p, 2 * p + 1):
            by[slot_config(k)] = counts[k] / slot
        per_pair.append(by)
    return {"slot_s": slot, "pairs": pairs, "clients": clients,
            "messages_per_session": messages_per_session,
            "retr_per_s": per_pair,
            "ratios": [b / a if a else None for a, b in per_pair],
            "retr_latencies": latencies,
            "sessions": sessions, "retr": retr, "errors": errors,
            "error_samples": samples}


def _ms(v: Optional[float]) -> str:
    return "-" if v is None else "%.2f" % (v * 1000.0)


def format_result(r: dict) -> str:
    L = [
        f"target {r['host']}:{r['port']}  clients={r['clients']}  "
        f"RETR/session={r['messages_per_session']}  window={r['window_s']:.1f}s "
        f"(wall {r['wall_s']:.1f}s)",
        f"sessions: {r['sessions']}  ({r['sessions_per_s']:.1f}/s)   "
        f"RETR: {r['retr']}  ({r['retr_per_s']:.1f} msg/s, "
        f"{r['mbytes_per_s']:.1f} MB/s)   errors: {r['errors']}",
    ]
    for name in ("retr_latency", "retr_first_latency", "retr_later_latency",
                 "login_latency", "session_latency"):
        s = r[name]
        L.append(f"{name.replace('_', ' '):20s} ms: p50 {_ms(s['p50'])}  "
                 f"p95 {_ms(s['p95'])}  p99 {_ms(s['p99'])}  "
                 f"max {_ms(s['max'])}  mean {_ms(s['mean'])}  (n={s['count']})")
    L.append(f"load generator CPU: {r['loadgen_cpu_s']:.1f}s")
    for e in r["error_samples"]:
        L.append(f"  error: {e}")
    return "\n".join(L)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--users", required=True,
                    help="comma-separated logins; client i uses users[i %% n]")
    ap.add_argument("--password", default="pass")
    ap.add_argument("--clients", type=int, default=8)
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--seconds", type=float, default=None,
                   help="duration of the run (default 20 unless --sessions)")
    g.add_argument("--sessions", type=int, default=0,
                   help="total number of sessions instead of a duration")
    ap.add_argument("--messages-per-session", type=int, default=10)
    ap.add_argument("--message-count", type=int, default=0,
                    help="messages in each mailbox (default: STAT once)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("--json", action="store_true", help="print JSON")
    a = ap.parse_args(argv)
    seconds = a.seconds if a.seconds is not None else (0 if a.sessions else 20.0)
    r = run_load(a.host, a.port, [u for u in a.users.split(",") if u],
                 a.password, a.clients, seconds, a.sessions,
                 a.messages_per_session, a.seed, a.message_count, a.timeout)
    print(json.dumps(r, indent=2) if a.json else format_result(r))
    return 1 if r["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
