"""The service's trust boundaries towards its producers: what a local
user who can write an outbox, the drop directory or the socket can (not)
make the product do. Each test failed on the code before its fix."""

import os
import socket
import subprocess
import sys
import time

import pytest

from dovecot_harness import wait_until
from test_webhooks import (DROP_MAGIC, V2, Client, event_line,
                           plant_drop_file, sample_event_line)
from test_webhooks import webhooks  # noqa: F401 (the fixture)

OUTBOX_MAGIC = "pop3-retention-outbox 1\n"
NOBODY = 65534


def with_field(line, index, value):
    """An outbox/drop line ("<created_ms> TAB <event fields>") with field
    `index` (0: created_ms, 3: user, 6: uid) replaced."""
    f = line.split("\t")
    f[index] = str(value)
    return "\t".join(f)


def outbox_line(s):
    """alice's download of message 1, left in her outbox by a pop3
    process that found no service: (the outbox's new/, the line)."""
    s.deliver(1)
    s.session(retr=(1,))
    s.wait_log("1 event(s) written to the outbox")
    new = s.outbox() / "new"
    (name,) = s.outbox_files()
    text = (new / name).read_text()
    assert text.startswith(OUTBOX_MAGIC)
    (line,) = text[len(OUTBOX_MAGIC):].splitlines()
    assert line.split("\t")[3] == "alice"
    return new, line


def flush(s, timeout=20):
    try:
        return s.inst.doveadm_plugin("pop3-retention", "flush", "-u",
                                     "alice", timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"doveadm pop3-retention flush hung (> {timeout} s)")


def delivered_uids(s):
    return sorted(r.data["uid"] for r in s.rx.delivered())


# ------------------------------------------------------------- outbox

def test_flush_sets_aside_an_outbox_file_with_another_users_event(webhooks):
    """Whoever can write alice's outbox (a shell or SFTP user) must not
    get the service to sign events about someone else: a file holding an
    event whose user is not the outbox's owner is logged and set aside in
    rejected/, none of its events sent; her own file goes as before."""
    s = webhooks(service=False)
    new, line = outbox_line(s)
    forged = new / "1700000000.forged"
    forged.write_text(OUTBOX_MAGIC + with_field(line, 6, 78) + "\n" +
                      with_field(with_field(line, 6, 77), 3, "bob") + "\n")
    os.chown(forged, NOBODY, NOBODY)
    s.enable_service()
    r = flush(s)
    s.rx.wait_for(lambda rx: len(rx.delivered()) >= 1)
    time.sleep(1.5)
    assert delivered_uids(s) == [1], "an event of another user was sent"
    assert r.returncode != 0
    assert "user bob, not alice" in r.stderr, r.stderr
    assert (s.outbox() / "rejected" / "1700000000.forged").is_file()
    assert s.outbox_files() == []
    s.check()


def test_flush_does_not_follow_a_symlink_in_the_outbox(webhooks):
    """A symbolic link in outbox/new is not followed (its target, an
    outbox file somewhere else, is neither sent nor removed): it is
    reported and set aside."""
    s = webhooks(service=False)
    new, line = outbox_line(s)
    elsewhere = s.inst.dir / "elsewhere"
    elsewhere.write_text(OUTBOX_MAGIC + with_field(line, 6, 55) + "\n")
    os.symlink(elsewhere, new / "1700000000.link")
    os.lchown(new / "1700000000.link", NOBODY, NOBODY)
    s.enable_service()
    r = flush(s)
    s.rx.wait_for(lambda rx: len(rx.delivered()) >= 1)
    time.sleep(1.5)
    assert delivered_uids(s) == [1], "flush followed the symbolic link"
    assert r.returncode != 0
    assert "not a regular file" in r.stderr, r.stderr
    assert (s.outbox() / "rejected" / "1700000000.link").is_symlink()
    assert elsewhere.read_text() == OUTBOX_MAGIC + with_field(line, 6, 55) \
        + "\n"
    assert s.outbox_files() == []
    s.check()


def test_flush_is_not_hung_by_a_fifo_in_the_outbox(webhooks):
    """A FIFO in outbox/new (nobody writes to it) neither hangs flush nor
    stops the other files: it is reported and set aside."""
    s = webhooks(service=False)
    new, _line = outbox_line(s)
    os.mkfifo(new / "1700000000.fifo")
    os.chown(new / "1700000000.fifo", NOBODY, NOBODY)
    s.enable_service()
    r = flush(s)
    s.rx.wait_for(lambda rx: len(rx.delivered()) >= 1)
    assert delivered_uids(s) == [1]
    assert r.returncode != 0
    assert "not a regular file" in r.stderr, r.stderr
    assert (s.outbox() / "rejected" / "1700000000.fifo").exists()
    assert s.outbox_files() == []
    s.check()


# ------------------------------------------------------- drop directory

def test_drop_file_owner_must_be_the_user_its_events_name(webhooks):
    """Where users have their own uids, a drop file's owner must be the
    user its events name: a file owned by nobody (uid 65534) with an
    event of the system user daemon (uid 1) is refused and kept aside.
    Events of nobody itself go, and so do events of users without a
    system account (alice: virtual users sharing one uid, trusted like
    the mail store)."""
    s = webhooks()
    good = sample_event_line(s)
    content = (DROP_MAGIC + with_field(with_field(good, 6, 11), 3, "daemon")
               + "\n" + with_field(with_field(good, 6, 12), 3, "nobody")
               + "\n" + with_field(good, 6, 13) + "\n")
    plant_drop_file(s, "1700000000.1.00000000000000ab", content.encode(),
                    owner=(NOBODY, NOBODY))
    s.rx.wait_for(lambda rx: len(rx.delivered()) >= 2)
    wait_until(lambda: s.drop_files() == [], timeout=10)
    time.sleep(1.5)
    assert delivered_uids(s) == [12, 13], \
        "an event of another system user was sent"
    s.wait_log("owned by uid 65534, not by daemon (uid 1)")
    kept = s.spool_dir() / "drop-rejected" / "1700000000.1.00000000000000ab"
    assert kept.read_text().count("\tdaemon\t") == 1
    s.check()


def test_drop_names_not_of_the_products_form_are_ignored(webhooks):
    """Only "<time>.<pid>.<16 hex digits>" files are drop files: others
    are neither read nor removed, and their names never reach the log
    raw (a terminal escape in a name stays out of it)."""
    s = webhooks()
    good = sample_event_line(s)
    names = ["x\x1b]0;pwned\x07" + "A" * 150, "1700000000.1.zz",
             "1700000000.1.00000000000000ABC", "1700000000..0000000000000000"]
    for i, name in enumerate(names):
        plant_drop_file(s, name, (DROP_MAGIC + with_field(good, 6, 40 + i)
                                  + "\n").encode())
    time.sleep(3)
    assert s.rx.all() == [], "a file with another name was read"
    assert sorted(s.drop_files()) == sorted(names)
    log = s.log()
    assert "\x1b" not in log and "pwned\x07" not in log
    assert "A" * 100 not in log
    for name in names:
        os.unlink(s.drop_dir() / name)
    s.check()


# ----------------------------------------------------------------- .alive

ATTACKER = r"""
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_CREAT, 0o644)
fcntl.flock(fd, fcntl.LOCK_EX)
try:
    fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
except OSError:
    pass
print("locked", flush=True)
time.sleep(300)
"""


def attacker_lock(path):
    """Another local user (nobody) opens path (creating it if it is
    missing) and holds every lock it can get on it."""
    p = subprocess.Popen([sys.executable, "-c", ATTACKER, str(path)],
                         user=NOBODY, group=NOBODY, extra_groups=[],
                         stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "locked"
    return p


def restart(s, service):
    s.inst.stop()
    s.inst.reconfigure(extra_conf=s.conf(service), restart=False)
    s.inst.start()


def test_alive_cannot_be_faked_or_blocked_by_another_user(webhooks):
    """Another local user who may write to the drop directory pre-creates
    .alive and holds a lock on it, or holds a lock on the service's own
    .alive: pop3 processes still see that no service runs (they use the
    outbox), and a starting service is not blocked (it reads the drop
    files at once)."""
    s = webhooks()
    s.deliver(3)
    alive = s.drop_dir() / ".alive"
    wait_until(alive.exists, timeout=20)
    restart(s, False)
    os.unlink(alive)
    held = [attacker_lock(alive)]
    try:
        s.session(retr=(1,))
        assert s.drop_files() == [], \
            "a pop3 process took a lock held by another user for the service"
        assert len(s.outbox_files()) == 1

        restart(s, True)
        s.session(retr=(2,))
        s.rx.wait_for(lambda rx: delivered_uids(s) == [2], timeout=20)
        wait_until(lambda: s.drop_files() == [], timeout=10)

        # the service's own .alive, held by the other user while the
        # service is gone and when it starts again
        held.append(attacker_lock(alive))
        restart(s, False)
        s.session(retr=(3,))
        assert s.drop_files() == []
        assert len(s.outbox_files()) == 2
        restart(s, True)
        r = flush(s)
        assert r.returncode == 0, r.stderr
        s.rx.wait_for(lambda rx: delivered_uids(s) == [1, 2, 3], timeout=20)
    finally:
        for p in held:
            p.kill()
            p.wait()
    s.check()


def test_a_lock_held_on_alive_does_not_block_the_service_start(webhooks):
    """Another local user holds every lock it can on the service's .alive
    while Dovecot restarts: the new service process starts reading the
    drop files at once (the old code waited for that lock forever, and
    pop3 processes wrote drop files nobody read)."""
    s = webhooks()
    s.deliver(1)
    alive = s.drop_dir() / ".alive"
    wait_until(alive.exists, timeout=20)
    s.inst.stop()
    p = attacker_lock(alive)
    try:
        s.inst.start()
        s.wait_service_ready()
        s.session(retr=(1,))
        s.rx.wait_for(lambda rx: delivered_uids(s) == [1], timeout=20)
        assert s.outbox_files() == []
    finally:
        p.kill()
        p.wait()
    s.check()


# ----------------------------------------------------------------- limits

def test_rejected_drop_lines_are_bounded(webhooks):
    """Lines that are not events are kept aside and logged, within
    bounds: per file (64 KiB kept, 10 lines logged), and in total (the
    log lines per minute, the bytes in drop-rejected/)."""
    s = webhooks()
    good = sample_event_line(s)
    garbage = "".join(f"garbage {i:05d} " + "g" * 100 + "\n"
                      for i in range(2000))
    plant_drop_file(s, "1700000000.1.00000000000000c1",
                    (DROP_MAGIC + garbage + good + "\n").encode())
    s.rx.wait_for(lambda rx: delivered_uids(s) == [1])
    wait_until(lambda: s.drop_files() == [], timeout=10)
    kept = s.spool_dir() / "drop-rejected" / "1700000000.1.00000000000000c1"
    assert 0 < kept.stat().st_size <= 64 * 1024
    s.wait_log("further lines of this file are not kept")
    assert s.log().count("not an event") <= 10

    for i in range(80):
        plant_drop_file(s, f"1700000001.{i}.00000000000000c2",
                        (DROP_MAGIC + garbage).encode())
    wait_until(lambda: s.drop_files() == [], timeout=60)
    total = sum(p.stat().st_size
                for p in (s.spool_dir() / "drop-rejected").iterdir())
    assert total <= 4 * 1024 * 1024 + 64 * 1024
    assert s.log().count("not an event") <= 100 + 10
    s.check()


def test_sparse_or_oversized_drop_files_are_skipped(webhooks):
    """A sparse drop file (a huge size with hardly any blocks) and one
    over 64 MiB are not read: each is logged once and left alone."""
    s = webhooks()
    good = sample_event_line(s)
    # made sparse before it is renamed into place, as plant_drop_file()
    # does with the others
    tmp = s.drop_dir() / ".sparse"
    tmp.write_text(DROP_MAGIC + with_field(good, 6, 21) + "\n")
    os.truncate(tmp, 48 * 1024 * 1024)
    os.chown(tmp, NOBODY, NOBODY)
    os.rename(tmp, s.drop_dir() / "1700000000.1.00000000000000d1")
    line = (with_field(good, 6, 22) + "\n").encode()
    big = DROP_MAGIC.encode() + line * (65 * 1024 * 1024 // len(line))
    plant_drop_file(s, "1700000000.2.00000000000000d2", big)
    s.wait_log("1700000000.1.00000000000000d1 is sparse")
    s.wait_log("1700000000.2.00000000000000d2 is larger than")
    time.sleep(2)
    assert s.rx.all() == []
    assert len(s.drop_files()) == 2
    q, r = s.queue()
    assert r.returncode == 0 and q["pending"] == "0"
    for name in s.drop_files():
        os.unlink(s.drop_dir() / name)
    s.check()


def test_created_time_is_clamped_near_now(webhooks):
    """A producer's creation time far in the future (or at the end of
    int64) neither stalls the queue nor overflows the due time; one at
    the epoch is accepted too. Each is delivered at once."""
    s = webhooks()
    c = Client(s)
    assert c.line() == V2
    now = int(time.time() * 1000)
    c.send(V2 + "\n" +
           event_line("max", created=str(2**63 - 1), uid=1) +
           event_line("future", created=str(now + 10 * 365 * 86400000),
                      uid=2) +
           event_line("epoch", created="0", uid=3))
    answers = sorted(c.line() for _ in range(3))
    assert answers == ["A\tepoch", "A\tfuture", "A\tmax"], answers
    s.rx.wait_for(lambda rx: delivered_uids(s) == [1, 2, 3], timeout=15)
    q, _ = s.queue()
    assert q["pending"] == "0"
    s.check()


# ----------------------------------------------------------------- socket

def test_idle_connections_do_not_lock_doveadm_out(webhooks):
    """client_limit (100) idle connections to the service's socket, with
    or without a handshake (while they last, the master drops further
    connections): the service hangs up on them after its idle timeout
    (CLIENT_IDLE_TIMEOUT_MSECS, 10 s), and doveadm pop3-retention queue
    gets its answer from the service again."""
    s = webhooks()
    wait_until(s.service_pids, timeout=20)
    path = str(s.inst.base_dir / "pop3-retention")
    idle = []
    for i in range(100):
        c = socket.socket(socket.AF_UNIX)
        c.connect(path)
        if i % 2:
            c.sendall((V2 + "\n").encode())
        idle.append(c)
    try:
        time.sleep(12)
        q, r = s.queue()
        assert r.returncode == 0, r.stderr
        assert q["state"] == "delivering", (q, r.stderr)
        for c in idle:
            c.settimeout(5)
            data = b""
            while True:
                chunk = c.recv(4096)
                if not chunk:
                    break
                data += chunk
            assert data in (b"", V2.encode() + b"\n"), data
    finally:
        for c in idle:
            c.close()
    s.check()
