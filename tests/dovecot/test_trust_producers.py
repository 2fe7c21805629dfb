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
from test_webhooks import (DOVECOT_USER, DROP_MAGIC, V2, Client,  # noqa: F401
                           event_fields, event_line, plant_drop_file,
                           sample_event_line, webhooks)

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
