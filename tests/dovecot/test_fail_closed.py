"""Compliance fails closed: when the plugin cannot know a user's retention
state, or an action fails, the mail stays, and the log says why
(docs/dovecot.md, "What happens when something fails"). Sweeps skip a
user with a live POP3 session whatever pop3_lock_session says. A complete
download is recorded when it completes, so a killed session leaves the
same state as the event it announced. Every test runs on each mail
storage of conftest.STORAGES; where a test breaks something from
outside, it does so the way that storage lays its files out."""

import os
import signal
import time

import pytest

import dovecot_harness as h
from dovecot_harness import wait_until
# the fixtures doveadm_plugin_so (autouse) and webhooks are used by name
from test_doveadm import (doveadm_plugin_so, parse_time, status,  # noqa: F401
                          sweep, table)
from test_retention import (DEBUG_LOG, P, deliver, plugin, pop3_pids,
                            session_end_logged)
from test_webhooks import by_type, webhooks  # noqa: F401

DAY = 86400
LOCK = "dovecot-pop3-retention.lock"


@pytest.fixture
def dovecot(dovecot, storage):
    """The harness's factory on this test's mail storage (conftest.py
    STORAGES), with the plugin's debug lines logged."""
    def factory(plugin=False, extra_conf="", **kw):
        if plugin:
            extra_conf = DEBUG_LOG + extra_conf
        kw.setdefault("storage", storage)
        return dovecot(plugin=plugin, extra_conf=extra_conf, **kw)
    return factory


def mailbox_dir(inst, name, user="alice"):
    """Where mailbox `name` lives: Maildir++ folders on Maildir, the
    mailboxes/ tree on dbox, a file (INBOX: mail/inbox) on mbox."""
    md = inst.mailbox(user)
    if inst.storage == "maildir":
        return md.path if name == "INBOX" else md.path / ("." + name)
    if inst.storage == "mbox":
        return md.path / name.lower() if name == "INBOX" else md.path / name
    return md.path / "mailboxes" / name


def break_state(inst, user="alice"):
    """Make the user's retention state unusable from outside: the lock
    file that every session takes before it reads the state is a
    directory, so open() fails."""
    md = inst.mailbox(user)
    # the lock sits in the INBOX namespace's index root: mbox keeps its
    # indexes in .imap/ below the mail root
    d = md.path / ".imap" if inst.storage == "mbox" else md.path
    d.mkdir(parents=True, exist_ok=True)
    h._chown_mail(d)
    (d / LOCK).mkdir()
    h._chown_mail(d / LOCK)


# ------------------------------------------------- session begin failed

@pytest.mark.parametrize("settings", [
    {"hold": "yes"},
    {"min": "1d"},
    {"policy": "keep", "keep": "1d"},
    {"policy": "delete-after-download"},
], ids=["hold", "floor", "keep", "delete-after-download"])
def test_failed_session_begin_withholds_every_removal(dovecot, settings):
    inst = plugin(dovecot, **settings)
    bases = deliver(inst, n=3)
    break_state(inst)
    p = inst.pop3("alice")
    assert p.stat()[0] == 3
    p.retr(1)
    p.dele(1)
    p.dele(2)
    p.quit()
    wait_until(lambda: not pop3_pids(inst, "alice"), timeout=10)
    md = inst.mailbox("alice")
    assert sorted(md.bases()) == sorted(bases)
    # the pop3 process may be gone before the log process wrote its
    # last lines
    session_end_logged(inst, 1)
    log = inst.log_text()
    assert "Session begin failed, every removal is withheld" in log, log
    assert "Can't take the retention lock" in log
    assert log.count("reason=unknown-state (DELE withheld") == 2, log
    assert "removals withheld (session begin failed): 2 DELE(s)" in log
    assert "action=remove" not in log


def test_failed_session_begin_of_a_passive_user_is_plain_rfc1939(dovecot):
    """Policy off without floor, ceiling or hold: nothing to enforce, so
    the client's DELE works as in stock Dovecot (and no lock is taken)."""
    inst = plugin(dovecot, policy="off")
    bases = deliver(inst, n=2)
    break_state(inst)
    p = inst.pop3("alice")
    p.dele(1)
    p.quit()
    wait_until(lambda: not pop3_pids(inst, "alice"), timeout=10)
    assert inst.mailbox("alice").bases() == [bases[1]]


# ------------------------------------------ other error paths, from outside

def test_failed_move_keeps_the_message(dovecot):
    inst = plugin(dovecot, policy="delete-after-download",
                  remove="move:Archive")
    bases = deliver(inst, n=2)
    md = inst.mailbox("alice")
    # the target cannot be opened: the folder Archive is a file (on
    # mbox, where a mailbox is a file, a directory)
    archive = mailbox_dir(inst, "Archive")
    if inst.storage == "mbox":
        archive.mkdir()
    else:
        archive.write_text("not a folder\n")
    h._chown_mail(archive)
    p = inst.pop3("alice")
    p.retr(1)
    p.quit()
    session_end_logged(inst, 1)
    assert sorted(md.bases()) == sorted(bases)
    log = inst.log_text()
    assert "Archive" in log and "failed=1" in log, log
    assert "action=remove" in log  # the failed action, logged as an error
    assert "removed=0" in log


def test_sweep_that_cannot_lock_removes_nothing(dovecot, make_message):
    inst = dovecot(plugin=True, settings={P + "max": "30d"})
    md = inst.mailbox("alice")
    old = md.deliver(make_message("old"), mtime=time.time() - 40 * DAY)
    break_state(inst)
    r = sweep(inst, "-u", "alice", rc=75)
    assert "Can't take the retention lock, skipped (nothing removed)" \
        in r.stderr, r.stderr
    assert table(r)[0]["removed"] == "-"
    assert md.bases() == [old]


def test_sweep_of_an_unreadable_inbox_removes_nothing(dovecot, make_message):
    inst = dovecot(plugin=True, settings={P + "max": "30d"})
    md = inst.mailbox("alice")
    old = md.deliver(make_message("old"), mtime=time.time() - 40 * DAY)
    inbox = mailbox_dir(inst, "INBOX")
    unreadable = inbox / "cur" if inst.storage == "maildir" else inbox
    os.chmod(unreadable, 0)
    try:
        r = inst.doveadm_plugin("-f", "tab", "pop3-retention", "sweep",
                                "-u", "alice")
    finally:
        os.chmod(unreadable, 0o700)
    assert r.returncode != 0, r.stdout
    assert "Syncing INBOX failed" in r.stderr, r.stderr
    assert md.bases() == [old]


# --------------------------------------- sweeps beside a live POP3 session

@pytest.mark.parametrize("lock_session", ["no", "yes"])
def test_sweep_skips_a_user_with_a_live_session(dovecot, make_message,
                                                lock_session):
    inst = dovecot(plugin=True, settings={P + "max": "1d"},
                   protocol_pop3_extra=f"  pop3_lock_session = {lock_session}")
    md = inst.mailbox("alice")
    # due 3 s from now: listed by the session, due during it
    soon = md.deliver(make_message("due soon"),
                      mtime=time.time() - DAY + 3)
    fresh = md.deliver(make_message("fresh"))
    p = inst.pop3("alice")
    assert p.stat()[0] == 2
    time.sleep(4)
    r = sweep(inst, "-u", "alice")
    assert "user alice: POP3 session in progress, skipped" in r.stderr, \
        r.stderr
    assert table(r)[0]["removed"] == "-"
    assert md.exists(soon)
    # the session's numbering still points at the messages it listed
    assert p.stat()[0] == 2
    assert b"due soon" in b"\n".join(p.retr(1)[1])
    p.quit()
    session_end_logged(inst, 1)
    # the lock is gone with the session: a sweep now removes what is due
    old = md.deliver(make_message("old"), mtime=time.time() - 2 * DAY)
    r = sweep(inst, "-u", "alice")
    assert table(r)[0]["removed"] == "1", r.stderr
    assert md.bases() == [fresh]
    assert not md.exists(old)


def test_lock_of_a_killed_session_does_not_block_sweeps(dovecot,
                                                       make_message):
    inst = dovecot(plugin=True, settings={P + "max": "30d"})
    md = inst.mailbox("alice")
    p = inst.pop3("alice")
    assert p.stat()[0] == 0
    [pid] = pop3_pids(inst, "alice")
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not pop3_pids(inst, "alice"), timeout=10)
    md.deliver(make_message("old"), mtime=time.time() - 40 * DAY)
    r = sweep(inst, "-u", "alice")
    assert table(r)[0]["removed"] == "1", r.stderr
    assert md.count() == 0


# ---------------------------------------------------- one truth about RETR

@pytest.mark.storages("maildir")   # the webhooks fixture reads Maildir
def test_kill9_after_a_complete_retr_records_the_download(webhooks):
    s = webhooks(policy="keep", keep="1d")
    s.deliver(1)
    before = int(time.time())
    p = s.inst.pop3("alice")
    p.retr(1)
    [pid] = s.pop3_pids()
    os.kill(pid, signal.SIGKILL)
    s.rx.wait_for(lambda rx: len(by_type(rx.delivered(),
                                         "message.retrieved")) == 1)
    first = by_type(s.rx.delivered(), "message.retrieved")[0]
    assert first.data["first_retrieval"] is True
    wait_until(lambda: not s.pop3_pids(), timeout=10)

    rows = status(s.inst, "-u", "alice")
    assert rows[0]["first_retrieved"] not in ("-", "unknown"), rows
    recorded = parse_time(rows[0]["first_retrieved"])
    assert before - 1 <= recorded <= time.time() + 1

    s.session(retr=[1])
    s.rx.wait_for(lambda rx: len(by_type(rx.delivered(),
                                         "message.retrieved")) == 2)
    again = [r for r in by_type(s.rx.delivered(), "message.retrieved")
             if r.id != first.id]
    assert [r.data["first_retrieval"] for r in again] == [False]
    assert status(s.inst, "-u", "alice")[0]["first_retrieved"] == \
        rows[0]["first_retrieved"]
    s.check()

