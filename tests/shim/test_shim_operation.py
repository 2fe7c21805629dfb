"""pop3-retentiond's commands (sweep, status) and what survives kill -9:
nothing removed without a completed QUIT, state never corrupt."""

import os
import time

import pytest

from dovecot_harness import make_message
from shim_harness import wait_until

DAY = 86400
STATE = "pop3-retentiond.state"


def status_rows(inst, user="alice"):
    r = inst.command("status", "-u", user)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    keys = lines[0].split("\t")
    return [dict(zip(keys, l.split("\t"))) for l in lines[1:]]


def test_sweep_removes_what_is_due_for_every_user(shim):
    inst = shim(settings={"pop3_retention_max": "30d"},
                users={"alice": {}, "bob": {}, "carol": {"pop3_retention_max": "60d"}})
    old = {u: inst.maildir(u).deliver(make_message("old"),
                                      mtime=time.time() - 40 * DAY)
           for u in ("alice", "bob", "carol")}
    new = inst.maildir("alice").deliver(make_message("new"))
    r = inst.command("sweep", "-u", "alice")
    assert r.returncode == 0, r.stderr
    assert "reason=max-exceeded" in r.stderr
    assert inst.maildir("alice").bases() == [new]
    assert inst.maildir("bob").exists(old["bob"])
    r = inst.command("sweep")
    assert r.returncode == 0, r.stderr
    assert "3 user(s), 1 message(s) removed" in r.stderr, r.stderr
    assert not inst.maildir("bob").exists(old["bob"])
    assert inst.maildir("carol").exists(old["carol"])   # its own 60d


def test_sweep_skips_a_maildrop_in_use(shim):
    inst = shim(settings={"pop3_retention_max": "1d"})
    md = inst.maildir("alice")
    soon = md.deliver(make_message("due soon"),
                      mtime=time.time() - DAY + 2)
    p = inst.pop3("alice")
    assert p.stat()[0] == 1
    time.sleep(3)
    r = inst.command("sweep", "-u", "alice")
    assert "POP3 session in progress, skipped" in r.stderr, r.stderr
    assert md.exists(soon)
    assert b"due soon" in b"\n".join(p.retr(1)[1])
    p.quit()
    inst.wait_log("quit=yes")


def test_sweep_with_a_bad_user_setting_removes_nothing(shim):
    inst = shim(settings={"pop3_retention_max": "30d"},
                users={"alice": {"pop3_retention_keep": "30"}, "bob": {}})
    old = inst.maildir("alice").deliver(make_message("old"),
                                        mtime=time.time() - 40 * DAY)
    r = inst.command("sweep")
    assert r.returncode != 0
    assert "pop3_retention_keep" in r.stderr and "'30'" in r.stderr
    assert inst.maildir("alice").bases() == [old]


def test_status_says_what_is_kept_until_when_and_why(shim):
    inst = shim(settings={"pop3_retention_policy": "keep",
                          "pop3_retention_keep": "30d",
                          "pop3_retention_min": "7d"})
    md = inst.maildir("alice")
    md.deliver(make_message("downloaded"), mtime=time.time() - 2 * DAY)
    md.deliver(make_message("new"))
    p = inst.pop3("alice")
    p.retr(1)
    p.quit()
    inst.wait_log("quit=yes")
    rows = status_rows(inst)
    assert [r["state"] for r in rows] == ["keep", "keep"]
    assert rows[0]["first_retrieved"] != "-"
    assert rows[0]["why"] == "keep-expired", rows
    assert rows[0]["removable_at"] != "never"
    assert rows[1]["first_retrieved"] == "-"
    assert rows[1]["removable_at"] == "never"


def test_unreadable_state_withholds_every_removal(shim):
    inst = shim(settings={"pop3_retention_hold": "yes"})
    md = inst.maildir("alice")
    bases = [md.deliver(make_message(f"m{i}")) for i in range(2)]
    (md.path / STATE).write_text("this is not a state file\n")
    p = inst.pop3("alice")
    p.dele(1)
    p.quit()
    inst.wait_log("removals withheld")
    assert sorted(md.bases()) == sorted(bases)
    assert "Session begin failed, every removal is withheld" in \
        inst.log_text()


@pytest.mark.parametrize("when", ["mid-retr", "after-retr", "after-dele"])
def test_kill9_without_quit_removes_nothing(shim, when):
    inst = shim(settings={"pop3_retention_policy": "delete-after-download"})
    md = inst.maildir("alice")
    line = b"x" * 74 + b"\n"
    big = md.deliver(make_message("big", body=line * 100000))
    small = md.deliver(make_message("small"))
    c = inst.raw("alice")
    if when == "mid-retr":
        c.sendline("RETR 1")
        c.readline()
    elif when == "after-retr":
        c.command("RETR 2", multiline=True)
        time.sleep(0.3)
    else:
        c.command("RETR 2", multiline=True)
        c.command("DELE 1")
    inst.kill9()
    assert sorted(md.bases()) == sorted([big, small])
    inst.start()
    rows = status_rows(inst)
    assert len(rows) == 2
    if when != "mid-retr":
        # the download was recorded, the removal waits for a QUIT
        assert rows[1]["first_retrieved"] != "-"
    p = inst.pop3("alice")
    assert p.stat()[0] == 2
    p.quit()


def test_state_file_is_never_torn(shim):
    """kill -9 at random points of many downloads: the state file always
    parses (atomic replace), or the session would log its failure."""
    inst = shim(settings={"pop3_retention_policy": "keep",
                          "pop3_retention_keep": "30d"})
    md = inst.maildir("alice")
    for i in range(30):
        md.deliver(make_message(f"m{i}"))
    for round_ in range(5):
        c = inst.raw("alice")
        c.send(b"".join(b"RETR %d\r\n" % (i + 1) for i in range(30)))
        time.sleep(0.02 * round_)
        inst.kill9()
        inst.start()
        rows = status_rows(inst)
        assert len(rows) == 30
    assert "Session begin failed" not in inst.log_text()


def test_kill9_during_the_quit_update(shim):
    """kill -9 from 0 to 2 ms after QUIT, while UPDATE removes: what
    is gone was DELEd (QUIT was sent: RFC 1939 allows it), what was not
    DELEd stays, and the state file always loads."""
    import random
    inst = shim()
    md = inst.maildir("alice")
    rng = random.Random(7)
    gone = 0
    for round_ in range(8):
        kept = [md.deliver(make_message(f"keep {round_}.{i}"))
                for i in range(3)]
        doomed = [md.deliver(make_message(f"dele {round_}.{i}"))
                  for i in range(150)]
        c = inst.raw("alice")
        _, lines = c.command("UIDL", multiline=True)
        for line in lines:
            n, uidl = line.decode().split()
            if uidl in doomed:
                c.sendline(f"DELE {n}")
                assert c.readline().startswith(b"+OK")
        c.sendline("QUIT")
        time.sleep(rng.uniform(0, 0.002))
        inst.kill9()
        inst.start()
        assert all(md.exists(b) for b in kept), round_
        gone += sum(not md.exists(b) for b in doomed)
        p = inst.pop3("alice")         # the state loads, the lock is free
        p.quit()
        inst.wait_log("quit=yes")
    assert "Session begin failed" not in inst.log_text()
    assert "Saving the retention state failed" not in inst.log_text()
    print(f"DELEd messages removed before the kill: {gone} of {8 * 150}")
