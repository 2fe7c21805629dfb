"""doveadm pop3-retention status / sweep against a private Dovecot.

The doveadm plugin is independent of the pop3 plugin (doveadm never loads
protocol pop3's mail_plugins), so these instances run without it.  The
built doveadm plugin is taken from plugin/dovecot/.libs, or from
$P3R_DOVEADM_PLUGIN when set (a .so compiled outside the autotools build).
"""

import calendar
import os
import subprocess
import time
from pathlib import Path

import pytest

import dovecot_harness as h

DAY = 86400


@pytest.fixture(autouse=True)
def doveadm_plugin_so(monkeypatch):
    so = Path(os.environ.get("P3R_DOVEADM_PLUGIN", h.DOVEADM_PLUGIN_SO))
    if not so.is_file():
        pytest.fail(f"built doveadm plugin missing: {so} (build it, or set "
                    "P3R_DOVEADM_PLUGIN)", pytrace=False)
    monkeypatch.setattr(h, "DOVEADM_PLUGIN_SO", so)
    return so


def rfc3339(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(t)))


def parse_time(s):
    return calendar.timegm(time.strptime(s, "%Y-%m-%dT%H:%M:%SZ"))


def table(r):
    """`doveadm -f tab` output -> list of dicts keyed by lower-case title."""
    lines = r.stdout.splitlines()
    assert lines, (r.stdout, r.stderr)
    keys = [k.lower() for k in lines[0].split("\t")]
    return [dict(zip(keys, l.split("\t"))) for l in lines[1:]]


def status(inst, *args):
    r = inst.doveadm_plugin("-f", "tab", "pop3-retention", "status", *args)
    assert r.returncode == 0, r.stderr
    return table(r)


def sweep(inst, *args, rc=0):
    r = inst.doveadm_plugin("-f", "tab", "pop3-retention", "sweep", *args)
    assert r.returncode == rc, (r.stdout, r.stderr)
    return r


def audit_lines(stderr):
    return [l.split("pop3-retention: ", 1)[1] for l in stderr.splitlines()
            if "pop3-retention: user=" in l]


def deliver_aged(inst, user, days_list, make_message):
    """Deliver one message per age (days before now); return
    [(base, mtime)] in delivery (= UID) order."""
    md = inst.maildir(user)
    now = int(time.time())
    out = []
    for days in days_list:
        t = now - int(days * DAY)
        out.append((md.deliver(make_message(f"{days} days old"), mtime=t), t))
    return out


def test_status_ceiling(dovecot, make_message):
    inst = dovecot(settings={"pop3_retention_max": "30d"})
    msgs = deliver_aged(inst, "alice", (40, 31, 29, 1), make_message)
    rows = status(inst, "-u", "alice")
    assert [r["uid"] for r in rows] == ["1", "2", "3", "4"]
    for row, (base, t), days in zip(rows, msgs, (40, 31, 29, 1)):
        assert row["arrived"] == rfc3339(t), row
        assert row["first_retrieved"] == "-", row
        assert row["removable_at"] == rfc3339(t + 30 * DAY), row
        assert row["why"] == "max-exceeded", row
        assert row["state"] == ("removable-now" if days > 30 else "keep"), row
        # pop3_uidl_format default %08Xu%08Xv
        assert row["uidl"].startswith("%08X" % int(row["uid"])), row
    # status changes nothing
    assert inst.maildir("alice").count() == 4


def test_status_keep_policy(dovecot, make_message):
    inst = dovecot(settings={"pop3_retention_policy": "keep",
                             "pop3_retention_keep": "30d"})
    deliver_aged(inst, "alice", (40, 1), make_message)
    # \Seen without a recorded retrieval: read elsewhere, state unknown
    r = inst.doveadm("flags", "add", "-u", "alice", "\\Seen", "uid", "1")
    assert r.returncode == 0, r.stderr
    rows = status(inst, "-u", "alice")
    assert [(r["uid"], r["first_retrieved"], r["state"], r["removable_at"])
            for r in rows] == [("1", "unknown", "keep", "never"),
                               ("2", "-", "keep", "never")]
    assert rows[0]["why"] == "unknown-state"


def test_status_all_users_has_user_column(dovecot, make_message):
    inst = dovecot(settings={"pop3_retention_max": "30d"})
    deliver_aged(inst, "alice", (40, 1), make_message)
    deliver_aged(inst, "bob", (50,), make_message)
    rows = status(inst, "-A")
    assert [(r["username"], r["uid"], r["state"]) for r in rows] == [
        ("alice", "1", "removable-now"), ("alice", "2", "keep"),
        ("bob", "1", "removable-now")]


def test_sweep_removes_exactly_what_is_past_the_ceiling(dovecot, make_message):
    inst = dovecot(settings={"pop3_retention_max": "30d"})
    msgs = deliver_aged(inst, "alice", (40, 31, 29, 1), make_message)
    md = inst.maildir("alice")
    r = sweep(inst, "-u", "alice")
    assert table(r) == [{"username": "alice", "removed": "2", "retained": "0",
                         "hidden": "0", "failed": "0"}]
    assert md.bases() == sorted(b for b, _ in msgs[2:])
    lines = audit_lines(r.stderr)
    assert len(lines) == 2, r.stderr
    for uid, line in zip((1, 2), lines):
        assert line.startswith(f"user=alice action=remove uid={uid} "), line
        assert "reason=max-exceeded" in line and "uidl=" in line, line
    # idempotent
    r = sweep(inst, "-u", "alice")
    assert table(r)[0]["removed"] == "0"
    assert md.count() == 2
    # no lock left behind
    assert not (md.path / "dovecot-pop3-session.lock").exists()


def test_sweep_dry_run_removes_nothing_and_audits_the_same(dovecot,
                                                            make_message):
    inst = dovecot(settings={"pop3_retention_max": "30d"})
    deliver_aged(inst, "alice", (40, 31, 29, 1), make_message)
    md = inst.maildir("alice")
    before = md.files()
    dry = sweep(inst, "--dry-run", "-u", "alice")
    assert table(dry)[0]["removed"] == "2"
    assert md.files() == before
    dry2 = sweep(inst, "-n", "-u", "alice")
    assert audit_lines(dry2.stderr) == audit_lines(dry.stderr)
    assert md.files() == before
    real = sweep(inst, "-u", "alice")
    assert md.count() == 2
    dry_lines = audit_lines(dry.stderr)
    assert dry_lines and all(l.endswith(" dry_run=yes") for l in dry_lines)
    assert [l[:-len(" dry_run=yes")] for l in dry_lines] == \
        audit_lines(real.stderr)


def test_bad_setting_names_it_and_removes_nothing(dovecot, make_message):
    inst = dovecot(settings={"pop3_retention_max": "30d"},
                   users={"alice": {}, "bob": {"pop3_retention_keep": "30"}})
    deliver_aged(inst, "alice", (40,), make_message)
    deliver_aged(inst, "bob", (40,), make_message)
    for cmd in ("status", "sweep"):
        r = inst.doveadm_plugin("pop3-retention", cmd, "-u", "bob")
        assert r.returncode == 64, (cmd, r.stdout, r.stderr)  # EX_USAGE
        assert "pop3_retention_keep" in r.stderr and "'30'" in r.stderr, \
            r.stderr
        assert "pop3-retention: user=" not in r.stderr
    assert inst.maildir("bob").count() == 1
    # -A: bob fails, alice is still swept; the exit code reports bob
    r = sweep(inst, "-A", rc=64)
    rows = {row["username"]: row for row in table(r)}
    assert rows["alice"]["removed"] == "1"
    assert rows["bob"]["removed"] == "-"
    assert inst.maildir("alice").count() == 0
    assert inst.maildir("bob").count() == 1


# Sweeps beside live POP3 sessions (the retention lock, which the pop3
# plugin takes): tests/dovecot/test_fail_closed.py.


def test_sweep_progress_line_on_a_terminal(dovecot, make_message):
    inst = dovecot(settings={"pop3_retention_max": "30d"})
    deliver_aged(inst, "alice", (40, 35), make_message)
    deliver_aged(inst, "bob", (40,), make_message)
    # without a terminal: no progress line (this also sets up the module
    # dirs that the namespace below binds)
    r = sweep(inst, "-n", "-A")
    assert "pop3-retention sweep:" not in r.stderr
    # script(1) gives doveadm a pty; run_in_doveadm_ns() decodes in text
    # mode, which turns \r into \n, so run the same namespace here
    cmd = " ".join(inst._doveadm_argv(["pop3-retention", "sweep", "-A"]))
    r = subprocess.run(
        inst.doveadm_ns_prefix() + ["script", "-qec", cmd, "/dev/null"],
        capture_output=True, timeout=60, env=inst.doveadm_env())
    out = r.stdout.decode(errors="replace")
    assert r.returncode == 0, out
    assert "\rpop3-retention sweep: 1 users, 2 removed" in out, repr(out)
    # the final newline comes before the table
    end = out.index("\rpop3-retention sweep: 2 users, 3 removed\r\n")
    assert out.index("Username") > end, repr(out)
    assert inst.maildir("alice").count() == 0


def test_user_column_for_u_a_and_f_alike(dovecot, make_message):
    """sweep and flush print a row per user, naming the user, for -u, -A
    and -F alike; status names the user only when there are several.
    (Dovecot 2.4 adds the username column only when it iterates users:
    the plugin adds it for -u, as add_username_header does on 2.3.)"""
    inst = dovecot(settings={"pop3_retention_max": "30d"})
    deliver_aged(inst, "alice", (40,), make_message)
    deliver_aged(inst, "bob", (40, 41), make_message)
    users = inst.dir / "sweep-users"
    users.write_text("bob\nalice\n")
    r = sweep(inst, "-n", "-F", str(users))
    assert [(row["username"], row["removed"]) for row in table(r)] == [
        ("bob", "2"), ("alice", "1")]
    r = sweep(inst, "-n", "-A")
    assert sorted((row["username"], row["removed"]) for row in table(r)) \
        == [("alice", "1"), ("bob", "2")]
    # no outbox: nothing to hand over, the service is not asked
    r = inst.doveadm_plugin("-f", "tab", "pop3-retention", "flush", "-u",
                            "alice")
    assert r.returncode == 0, r.stderr
    assert table(r) == [{"username": "alice", "flushed": "0", "kept": "0"}]
    assert "username" not in status(inst, "-u", "alice")[0]
    assert inst.maildir("bob").count() == 2
