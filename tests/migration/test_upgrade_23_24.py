"""Upgrading Dovecot 2.3 to 2.4 keeps the retention state.

The plugin keeps its state in Dovecot's own files (docs/dovecot.md,
"State"): the first complete download of a message in the index extension
`pop3-retention`, "retained" (DELEd but kept) in the keyword
`$POP3Retained`.  This test writes both with Dovecot 2.3 and the plugin on
this (Debian 12) machine, then runs Dovecot 2.4 and the plugin built for
it in the Debian 13 tree (tests/run-dovecot24 --exec
tests/migration/state24.py) on the same mail directories, and checks that
2.4 reads them:

- alice retrieved message 1 under 2.3 (policy keep).  Under 2.4 with a
  1 s window, her next login removes it (the recorded download is older
  than 1 s) and keeps 2 and 3; had the record been lost, message 1 would
  be "state unknown" and never expire.  `doveadm pop3-retention status`
  shows the download time 2.3 recorded.
- bob DELEd message 1 under a 30-day floor: 2.3 kept it, hidden, with the
  keyword.  Under 2.4 it is still hidden from POP3 and still on disk.

Needs root, a 2.3 machine and the Debian 13 tree (quickstart runs it on
2.3 machines after the 2.4 suite, which builds the tree's copy).
"""

import json
import os
import poplib
import subprocess
import sys
import time
from pathlib import Path

import pytest

TOP = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(TOP / "tests" / "dovecot"))

import dovecot_conf  # noqa: E402
import dovecot_harness as h  # noqa: E402

P = "pop3_retention_"
ENV = TOP / "scripts" / "debian13-env"
RUNNER = TOP / "tests" / "run-dovecot24"
# the same users and settings as state24.py, but a 1 h keep window
SETTINGS = {P + "policy": "keep", P + "keep": "1h"}
USERS = {"alice": {}, "bob": {P + "min": "30d"}}


def rfc3339(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(t)))


def table(text):
    lines = text.splitlines()
    keys = [k.lower() for k in lines[0].split("\t")] if lines else []
    return [dict(zip(keys, l.split("\t"))) for l in lines[1:]]


@pytest.fixture(scope="module")
def upgraded():
    """Run 2.3 then 2.4 on the same mail; (what 2.3 left, what 2.4 saw)."""
    if os.geteuid() != 0:
        pytest.fail("needs root", pytrace=False)
    if dovecot_conf.is_24():
        pytest.fail("needs Dovecot 2.3 on this machine (the upgrade's "
                    "starting point)", pytrace=False)
    tree = subprocess.run([str(ENV), "create"], capture_output=True,
                          text=True, timeout=1800)
    assert tree.returncode == 0, tree.stderr
    tree = Path(tree.stdout.strip())
    # the 2.3 instance lives inside the tree, where 2.4 can see its mail
    root = tree / "tmp" / "p3r-migration"
    saved = h.INSTANCE_ROOT
    h.INSTANCE_ROOT = root
    try:
        inst = h.DovecotInstance(plugin=True, settings=SETTINGS, users=USERS,
                                 extra_conf="log_debug = category=pop3-retention\n")
    finally:
        h.INSTANCE_ROOT = saved
    before = {}
    try:
        h.deliver(inst, "alice", n=3)
        h.deliver(inst, "bob", n=2)
        p = inst.pop3("alice")
        t0 = int(time.time())
        p.retr(1)
        t1 = int(time.time()) + 1
        p.quit()
        p = inst.pop3("bob")
        p.dele(1)
        p.quit()
        h.session_end_logged(inst, 2)
        # what 2.3 itself shows now
        p = inst.pop3("bob")
        before["bob_stat"] = p.stat()[0]
        p.quit()
        before["files_alice"] = inst.maildir("alice").count()
        before["files_bob"] = inst.maildir("bob").count()
        before["log"] = inst.log_text()
        inst.stop()
        inside = "/" + str(inst.home_root.relative_to(tree))
        r = subprocess.run([str(RUNNER), "--exec", "python3",
                            "tests/migration/state24.py", inside],
                           capture_output=True, text=True, timeout=1800)
        last = r.stdout.strip().splitlines()[-1:] or [""]
        try:
            after = json.loads(last[0])
        except ValueError:
            # each 2.4 test fails on this; the 2.3 one stands alone
            after = {"error": "the 2.4 half printed no result (rc="
                     f"{r.returncode}):\n{r.stdout[-3000:]}\n"
                     f"{r.stderr[-3000:]}", "log": ""}
        yield {"t0": t0, "t1": t1, "before": before, "after": after}
    finally:
        inst.remove()


def test_state_written_by_23(upgraded):
    """The starting point: 2.3 recorded alice's download and hides bob's
    DELEd message (both mailboxes complete on disk)."""
    b = upgraded["before"]
    assert b["files_alice"] == 3 and b["files_bob"] == 2, b["log"]
    assert b["bob_stat"] == 1, b["log"]


def ran_24(upgraded):
    """What the 2.4 half saw; fails the test if it did not get through."""
    a = upgraded["after"]
    assert "error" not in a, a.get("error", "") + "\n" + a.get("log", "")
    return a


def test_24_runs_on_the_23_mail(upgraded):
    a = ran_24(upgraded)
    assert a["dovecot"].startswith("2.4"), a["dovecot"]


def test_download_record_carries_over(upgraded):
    """2.3's first-download record (index extension) is read by 2.4: the
    1 s window has expired on alice's message 1, not on 2 and 3."""
    a = ran_24(upgraded)
    assert len(a.get("files_before_alice", [])) == 3, a
    assert len(a.get("files_after_alice", [])) == 2, a.get("log")
    assert len(a["uidl_alice"]) == 2, a.get("log")
    assert "reason=keep-expired" in a["log"], a["log"]


def test_retained_keyword_carries_over(upgraded):
    """2.3's $POP3Retained keyword is read by 2.4: bob's DELEd message
    stays hidden from POP3 and on disk under the floor."""
    a = ran_24(upgraded)
    assert "$POP3Retained" in a.get("keywords_bob", ""), a
    assert len(a.get("files_after_bob", [])) == 2, a.get("log")
    assert len(a["uidl_bob"]) == 1, a.get("log")


def test_doveadm_status_shows_23_state(upgraded):
    """2.4's doveadm pop3-retention status shows what 2.3 recorded."""
    a = ran_24(upgraded)
    rc, out, err = a["status_alice"]
    assert rc == 0, err
    rows = table(out)
    assert rows and rows[0]["uid"] == "1", out
    got = rows[0]["first_retrieved"]
    assert got in {rfc3339(t) for t in range(upgraded["t0"],
                                              upgraded["t1"] + 1)}, out
    assert [r["first_retrieved"] for r in rows[1:]] == ["-", "-"], out
    rc, out, err = a["status_bob"]
    assert rc == 0, err
    rows = table(out)
    assert rows and rows[0]["state"] == "hidden", out
