"""Retention behaviour, the same on both hosts: what counts as a download,
every policy, floor, ceiling, hold, move:, visible_since, top_counts, dry
run, RFC 1939 section 6, per-user overrides, CAPA EXPIRE. Short windows
(seconds) stand in for days; back-dated mtimes for old arrivals."""

import os
import poplib
import re
import signal
import time

import pytest

from dovecot_harness import (big_message, deliver, drop, make_message,
                             session_end_logged)

DAY = 86400


def kill_sessions(inst, user):
    """kill -9 whatever serves user's session (Dovecot: its pop3
    process; the shim: the daemon, then started again)."""
    if inst.kind == "shim":
        inst.kill9()
        inst.start()
        return
    from dovecot_harness import _cmdline
    pids = [pid for pid in inst.pids()
            if _cmdline(pid).startswith(f"dovecot/pop3 [{user} ")
            or _cmdline(pid) == "dovecot/pop3"]
    assert pids, "no pop3 process found"
    for pid in pids:
        os.kill(pid, signal.SIGKILL)


def archive_contents(inst, user="alice"):
    """The messages in the folder Archive (Dovecot copies under a new
    name, the shim moves the file); on Maildir, the Maildir++ folder
    .Archive, read directly."""
    if getattr(inst, "storage", "maildir") != "maildir":
        return inst.mailbox(user).headers("Archive")
    d = inst.mailbox(user).path / ".Archive"
    return [(d / sub / n).read_bytes() for sub in ("cur", "new")
            if (d / sub).is_dir() for n in sorted(os.listdir(d / sub))]


# ---------------------------------------------------------------- retrieval

def test_complete_retr_is_a_download(host):
    inst = host(policy="delete-after-download")
    bases = deliver(inst)
    p = inst.pop3("alice")
    p.retr(2)
    p.quit()
    session_end_logged(inst, 1)
    md = inst.mailbox("alice")
    assert md.exists(bases[0]) and md.exists(bases[2])
    assert not md.exists(bases[1])
    assert "reason=downloaded" in inst.log_text()


def test_top_is_not_a_download(host):
    inst = host(policy="delete-after-download")
    bases = deliver(inst, n=2)
    p = inst.pop3("alice")
    p.top(1, 9999)
    p.top(2, 0)
    p.quit()
    session_end_logged(inst, 1)
    assert inst.mailbox("alice").bases() == sorted(bases)


def test_top_counts_when_configured(host):
    inst = host(policy="delete-after-download", top_counts="yes")
    md = inst.mailbox("alice")
    whole = md.deliver(make_message("whole", body="a\nb\nc\n"))
    partial = md.deliver(make_message("partial", body="a\nb\nc\nd\ne\n"))
    p = inst.pop3("alice")
    p.top(1, 100)
    p.top(2, 1)
    p.quit()
    session_end_logged(inst, 1)
    assert md.bases() == [partial]
    assert not md.exists(whole)


def test_aborted_retr_is_not_a_download(host):
    inst = host(policy="keep", keep="2s")
    md = inst.mailbox("alice")
    big = md.deliver(big_message("big", 4), mtime=time.time() - 10)
    small = md.deliver(make_message("small"))
    c = inst.raw("alice")
    c.sendline("RETR 1")
    c.readline()
    c.abort()
    session_end_logged(inst, 1)
    p = inst.pop3("alice")
    p.retr(2)
    drop(p)
    session_end_logged(inst, 2)
    time.sleep(2.5)
    p = inst.pop3("alice")
    count, _ = p.stat()
    p.quit()
    session_end_logged(inst, 3)
    assert md.exists(big), "aborted RETR started the keep clock"
    assert not md.exists(small), "complete RETR did not start the keep clock"
    assert count == 1


def test_killed_session_after_a_complete_retr_is_a_download(host):
    inst = host(policy="keep", keep="2s")
    md = inst.mailbox("alice")
    bases = deliver(inst, n=1)
    p = inst.pop3("alice")
    p.retr(1)
    # the download is recorded once the whole response left the
    # server's buffer, which is just after the client has it
    time.sleep(0.5)
    kill_sessions(inst, "alice")
    time.sleep(2.5)
    p = inst.pop3("alice")
    assert p.stat()[0] == 0          # the keep window ran from the RETR
    p.quit()
    assert not md.exists(bases[0])


# ----------------------------------------------------------------- policies

def test_delete_after_download_without_dele(host):
    inst = host(policy="delete-after-download")
    bases = deliver(inst, n=4)
    p = inst.pop3("alice")
    p.retr(1)
    p.retr(3)
    p.dele(3)
    p.quit()
    session_end_logged(inst, 1)
    assert inst.mailbox("alice").bases() == sorted([bases[1], bases[3]])


def test_keep_removes_after_first_download_not_earlier(host):
    inst = host(policy="keep", keep="3s")
    md = inst.mailbox("alice")
    bases = [md.deliver(make_message("one"), mtime=time.time() - 10),
             md.deliver(make_message("two"), mtime=time.time() - 5)]
    p = inst.pop3("alice")
    p.retr(1)
    p.quit()
    session_end_logged(inst, 1)
    time.sleep(1.5)
    p = inst.pop3("alice")
    assert p.stat()[0] == 2
    p.retr(1)
    p.quit()
    session_end_logged(inst, 2)
    time.sleep(2)
    p = inst.pop3("alice")
    assert p.stat()[0] == 1
    p.quit()
    session_end_logged(inst, 3)
    assert md.bases() == [bases[1]]
    assert "reason=keep-expired" in inst.log_text()


# --------------------------------------------------------------- compliance

def test_floor_hides_dele_then_removes(host):
    inst = host(min="3s")
    md = inst.mailbox("alice")
    bases = [md.deliver(make_message("one"), mtime=time.time() - 1),
             md.deliver(make_message("two"), mtime=time.time() - 1)]
    p = inst.pop3("alice")
    p.dele(1)
    p.quit()
    session_end_logged(inst, 1)
    assert md.exists(bases[0]), "removed under the floor"
    p = inst.pop3("alice")
    assert p.stat()[0] == 1, "a retained message is still listed"
    p.quit()
    session_end_logged(inst, 2)
    assert "action=retain" in inst.log_text()
    time.sleep(3.2)
    p = inst.pop3("alice")
    assert p.stat()[0] == 1
    p.quit()
    session_end_logged(inst, 3)
    assert md.bases() == [bases[1]]
    assert "reason=retention-ended" in inst.log_text()


def test_ceiling_removes_old_mail_before_the_listing(host):
    inst = host(max="30d")
    md = inst.mailbox("alice")
    md.deliver(make_message("old"), mtime=time.time() - 31 * DAY)
    new = md.deliver(make_message("new"), mtime=time.time() - 29 * DAY)
    p = inst.pop3("alice")
    count, _ = p.stat()
    uidls = p.uidl()[1]
    p.quit()
    session_end_logged(inst, 1)
    assert count == 1 and len(uidls) == 1
    assert md.bases() == [new]
    assert "reason=max-exceeded" in inst.log_text()


def test_hold_keeps_everything(host):
    inst = host(hold="yes", policy="delete-after-download", max="1d")
    md = inst.mailbox("alice")
    old = md.deliver(make_message("old"), mtime=time.time() - 10 * DAY)
    fresh = md.deliver(make_message("fresh"))
    p = inst.pop3("alice")
    assert p.stat()[0] == 2
    p.retr(1)
    p.dele(2)
    p.quit()
    session_end_logged(inst, 1)
    assert sorted(md.bases()) == sorted([old, fresh])
    p = inst.pop3("alice")
    assert p.stat()[0] == 0
    p.quit()
    session_end_logged(inst, 2)
    assert "reason=hold" in inst.log_text()


def test_move_removal(host):
    inst = host(policy="delete-after-download", remove="move:Archive")
    bases = deliver(inst, n=2)
    p = inst.pop3("alice")
    p.retr(1)
    p.quit()
    session_end_logged(inst, 1)
    assert inst.mailbox("alice").bases() == [bases[1]]
    moved = archive_contents(inst)
    assert len(moved) == 1 and b"Subject: message 0" in moved[0], moved


def test_visible_since_hides_older_mail(host):
    inst = host(visible_since="2025-01-01")
    md = inst.mailbox("alice")
    old = md.deliver(make_message("old"), mtime=1704067200)
    md.deliver(make_message("new"))
    p = inst.pop3("alice")
    assert p.stat()[0] == 1
    p.dele(1)
    p.quit()
    session_end_logged(inst, 1)
    assert md.bases() == [old]


def test_dry_run_changes_nothing(host):
    inst = host(policy="delete-after-download", dry_run="yes", max="1d")
    md = inst.mailbox("alice")
    old = md.deliver(make_message("old"), mtime=time.time() - 2 * DAY)
    bases = deliver(inst, n=2)
    p = inst.pop3("alice")
    assert p.stat()[0] == 3
    p.retr(2)
    p.dele(3)
    p.quit()
    session_end_logged(inst, 1)
    assert sorted(md.bases()) == sorted([old] + bases)
    log = inst.log_text()
    assert re.search(r"action=remove .*reason=max-exceeded dry_run=yes", log)
    assert re.search(r"action=remove .*reason=downloaded dry_run=yes", log)
    assert re.search(r"action=remove .*reason=dele dry_run=yes", log)


# ------------------------------------------------------------ RFC 1939 s. 6

@pytest.mark.parametrize("steps", [
    ["RETR 1"], ["DELE 1"], ["RETR 1", "DELE 1"],
    ["DELE 1", "DELE 2", "NOOP"], ["RETR 1", "RETR 2", "DELE 3", "STAT"],
])
def test_no_quit_removes_nothing(host, steps):
    inst = host(policy="delete-after-download", max="1d")
    md = inst.mailbox("alice")
    bases = deliver(inst, n=3)
    c = inst.raw("alice")
    for s in steps:
        c.sendline(s)
        resp = c.readline()
        assert resp.startswith(b"+OK"), resp
        if s.startswith("RETR"):
            c.read_multiline()
    c.close()
    session_end_logged(inst, 1)
    assert sorted(md.bases()) == sorted(bases)
    p = inst.pop3("alice")
    assert p.stat()[0] == 3
    p.quit()


def test_no_quit_with_a_floor_hides_nothing(host):
    inst = host(min="1d")
    deliver(inst, n=2)
    c = inst.raw("alice")
    c.sendline("DELE 1")
    c.readline()
    c.close()
    session_end_logged(inst, 1)
    p = inst.pop3("alice")
    assert p.stat()[0] == 2
    p.quit()
    assert "action=retain" not in inst.log_text()


# ------------------------------------------------------- per-user overrides

def test_userdb_override(host):
    inst = host(users={"alice": {}, "bob": {"policy":
                                             "delete-after-download"}})
    a = deliver(inst, "alice", n=1)
    deliver(inst, "bob", n=1)
    for user in ("alice", "bob"):
        p = inst.pop3(user)
        p.retr(1)
        p.quit()
    session_end_logged(inst, 2)
    assert inst.mailbox("alice").bases() == a
    assert inst.mailbox("bob").bases() == []


def test_bad_userdb_value_fails_only_that_login(host):
    inst = host(policy="delete-after-download",
                users={"alice": {"keep": "30"}, "bob": {}})
    a = deliver(inst, "alice", n=2)
    with pytest.raises(poplib.error_proto):
        p = inst.pop3("alice")
        p.retr(1)
        p.quit()
    log = inst.wait_log("pop3_retention_keep: invalid value '30'")
    assert "Panic" not in log and "Fatal" not in log
    assert inst.mailbox("alice").bases() == sorted(a)
    deliver(inst, "bob", n=1)
    p = inst.pop3("bob")
    p.retr(1)
    p.quit()
    session_end_logged(inst, 1)
    assert inst.mailbox("bob").bases() == []


# -------------------------------------------------------------- CAPA EXPIRE

@pytest.mark.parametrize("settings,expect", [
    ({"policy": "delete-after-download"}, b"EXPIRE 0"),
    ({"policy": "keep", "keep": "30d"}, b"EXPIRE 30"),
    ({"policy": "keep", "keep": "30d", "min": "60d"}, b"EXPIRE 60"),
    ({"hold": "yes", "max": "10d"}, b"EXPIRE NEVER"),
])
def test_capa_expire_after_login(host, settings, expect):
    inst = host(**settings)
    c = inst.raw("alice")
    st, caps = c.command("CAPA", multiline=True)
    c.quit()
    assert expect in caps, caps


def test_capa_expire_can_be_switched_off(host):
    inst = host(policy="delete-after-download", capa_expire="no")
    c = inst.raw("alice")
    st, caps = c.command("CAPA", multiline=True)
    c.quit()
    assert not any(x.startswith(b"EXPIRE") for x in caps), caps
