"""pop3_retention in a real Dovecot 2.3: what only the Dovecot host has
(pop3 processes, \\Seen, index state, pop3_delete_type, pop3_lock_session,
named events, the login plugin, IMAP beside POP3). The retention cases
both hosts share (downloads, policies, floor, ceiling, hold, move:,
visible_since, dry run, RFC 1939 section 6, per-user overrides) are in
tests/behaviour, run against Dovecot and pop3-retentiond alike. Every
test runs on each mail storage of conftest.STORAGES unless marked
@pytest.mark.storages(...) (docs/testing.md, "Mail storages")."""

import os
import re
import signal
import socket
import time

import pytest

import dovecot_conf
from dovecot_harness import (big_message, deliver, make_message,
                             session_end_logged, wait_until)

DAY = 86400
P = "pop3_retention_"


# Sessions that change nothing log their summary at debug level only;
# the tests wait for that line to know a session's changes are on disk.
DEBUG_LOG = "log_debug = category=pop3-retention\n"


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




def plugin(dovecot, users=None, **settings):
    conf = {P + k: v for k, v in settings.items()}
    return dovecot(plugin=True, settings=conf, users=users)


def pop3_pids(inst, user):
    """pop3 processes of this instance serving user (never another
    instance's: other tests and benchmarks may run on the machine)."""
    from dovecot_harness import _cmdline
    return [pid for pid in inst.pids()
            if _cmdline(pid) == "dovecot/pop3"
            or _cmdline(pid).startswith(f"dovecot/pop3 [{user} ")]


# ---------------------------------------------------------------- retrieval


def test_session_killed_mid_retr_is_not_a_download(dovecot):
    inst = plugin(dovecot, policy="keep", keep="1s")
    md = inst.mailbox("alice")
    big = md.deliver(big_message("big", 8))
    c = inst.raw("alice")
    c.sendline("RETR 1")
    c.readline()
    pids = pop3_pids(inst, "alice")
    assert pids, "no pop3 process of this instance found"
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    c.close()
    time.sleep(1.5)
    p = inst.pop3("alice")
    assert p.stat()[0] == 1
    p.quit()
    session_end_logged(inst, 1)
    assert md.exists(big)


def test_seen_is_not_the_signal(dovecot):
    """\\Seen set elsewhere (e.g. IMAP) does not count as a download."""
    inst = plugin(dovecot, policy="keep", keep="1s")
    bases = deliver(inst, n=1)
    r = inst.doveadm("flags", "add", "-u", "alice", "\\Seen", "mailbox",
                     "INBOX", "all")
    assert r.returncode == 0, r.stderr
    time.sleep(1.5)
    p = inst.pop3("alice")
    assert p.stat()[0] == 1
    p.quit()
    session_end_logged(inst, 1)
    assert inst.mailbox("alice").exists(bases[0])


# ----------------------------------------------------------------- policies

SCRIPT = [b"CAPA", b"STAT", b"LIST", b"UIDL", b"TOP 1 1", b"RETR 1",
          b"DELE 2", b"RETR 3", b"RSET", b"DELE 3", b"NOOP", b"QUIT"]


def transcript(inst):
    s = socket.create_connection(("127.0.0.1", inst.port), timeout=10)
    f = s.makefile("rb")
    out = [f.readline()]
    s.sendall(b"USER alice\r\n")
    out.append(f.readline())
    s.sendall(b"PASS pass\r\n")
    out.append(f.readline())
    for cmd in SCRIPT:
        s.sendall(cmd + b"\r\n")
        line = f.readline()
        out.append(line)
        multi = cmd.split()[0] in (b"CAPA", b"LIST", b"UIDL", b"TOP",
                                   b"RETR") and line.startswith(b"+OK")
        while multi:
            line = f.readline()
            out.append(line)
            if line == b".\r\n":
                break
    s.close()
    return b"".join(out)


def test_policy_off_sessions_are_byte_identical(dovecot, storage):
    # the file name on Maildir; elsewhere the GUID, which the harness's
    # import keeps from the staged file's name
    extra = "pop3_uidl_format = %s\n" % ("%f" if storage == "maildir"
                                           else "%g")
    vanilla = dovecot(plugin=False, extra_conf=extra)
    off = dovecot(plugin=True, extra_conf=extra,
                  settings={P + "policy": "off"})
    names = []
    for inst in (vanilla, off):
        md = inst.mailbox("alice")
        for i in range(4):
            name = f"1700000000.M{i}P1.test"
            md.deliver(make_message(f"m{i}", msgid=f"<m{i}@x>",
                                    body=f"body {i}\n.dot\n",
                                    date="Mon, 01 Jan 2024 00:00:00 +0000"),
                       name=name, mtime=1700000000 + i)
            if inst is vanilla:
                names.append(name)
    a = transcript(vanilla)
    b = transcript(off)
    assert a == b
    assert sorted(vanilla.mailbox("alice").bases()) == \
        sorted(off.mailbox("alice").bases())
    assert b"EXPIRE" not in b


# --------------------------------------------------------------- compliance


# ------------------------------------------------------------ RFC 1939 s. 6


# ------------------------------------------------------- per-user overrides


def test_bad_site_value_fails_logins_removes_nothing(dovecot):
    import poplib
    if dovecot_conf.is_24():
        # 2.4 checks the value when it reads the config: Dovecot does not
        # start (so nobody logs in and nothing is removed)
        inst = plugin(dovecot, policy="delete-after-download")
        md = inst.mailbox("alice")
        old = md.deliver(make_message("old"), mtime=time.time() - 90 * DAY)
        good = dict(inst.settings)
        inst.stop()
        err = dovecot_conf.config_refused(
            inst, {P + "policy": "delete-after-download", P + "max": "1 month"})
        assert "pop3_retention_max: invalid value '1 month'" in err, err
        # dbox and mbox are seen through doveadm, which needs a running
        # instance with a config that parses
        inst.settings = good
        inst._write_conf()
        inst.start()
        assert md.bases() == [old]
        return
    inst = plugin(dovecot, policy="delete-after-download", max="1 month")
    md = inst.mailbox("alice")
    old = md.deliver(make_message("old"), mtime=time.time() - 90 * DAY)
    with pytest.raises(poplib.error_proto):
        inst.pop3("alice")
    inst.wait_log("pop3_retention_max: invalid value '1 month'")
    assert md.bases() == [old]


# -------------------------------------------------------------------- state

def index_files(inst, user="alice"):
    """INBOX's index files (not the mailbox list's)."""
    d = inst.mailbox(user).path
    d = {"maildir": d, "mbox": d / ".imap" / "INBOX"}.get(
        inst.storage, d / "mailboxes" / "INBOX" / "dbox-Mails")
    return [d / n for n in os.listdir(d) if n.startswith("dovecot.index")]


def lose_index(inst, user="alice"):
    """Delete INBOX's index. Maildir and mbox rebuild it from the mail
    files at the next open; dbox keeps its message list in the index,
    so it needs the admin's `doveadm force-resync`, run here."""
    for f in index_files(inst, user):
        f.unlink()
    if inst.storage in ("mdbox", "sdbox"):
        r = inst.doveadm("force-resync", "-u", user, "INBOX")
        assert r.returncode == 0, r.stderr


def test_lost_index_delays_removal_never_hastens(dovecot):
    inst = plugin(dovecot, policy="keep", keep="2s")
    bases = deliver(inst, n=1)
    md = inst.mailbox("alice")
    p = inst.pop3("alice")
    p.retr(1)
    p.quit()
    session_end_logged(inst, 1)
    lose_index(inst)          # the extension record is gone
    time.sleep(2.5)
    p = inst.pop3("alice")
    assert p.stat()[0] == 1, "removed on lost state"
    p.retr(1)                 # the clock restarts now
    p.quit()
    session_end_logged(inst, 2)
    assert md.exists(bases[0])
    time.sleep(2.5)
    p = inst.pop3("alice")
    assert p.stat()[0] == 0
    p.quit()
    session_end_logged(inst, 3)
    assert md.bases() == []


def test_retained_state_survives_index_loss(dovecot):
    """The retained keyword lives in the maildir file name (mbox: the
    X-Keywords header): a rebuilt index still hides the message. dbox
    keeps keywords in the index only: after force-resync the message is
    listed again, still kept, and a new DELE is retained again."""
    inst = plugin(dovecot, min="1d")
    bases = deliver(inst, n=2)
    p = inst.pop3("alice")
    p.dele(1)
    p.quit()
    session_end_logged(inst, 1)
    lose_index(inst)
    p = inst.pop3("alice")
    if inst.storage in ("mdbox", "sdbox"):
        assert p.stat()[0] == 2
        p.dele(1)
        p.quit()
        session_end_logged(inst, 2)
        assert inst.log_text().count("action=retain") == 2
        p = inst.pop3("alice")
    assert p.stat()[0] == 1
    p.quit()
    assert sorted(inst.mailbox("alice").bases()) == sorted(bases)


@pytest.mark.storages("mdbox")
def test_mdbox_removal_leaves_bytes_until_purge(dovecot):
    """An expunge on mdbox drops the message's reference; its bytes stay
    in the shared m.* files until `doveadm purge` (docs/dovecot.md)."""
    inst = plugin(dovecot, policy="delete-after-download")
    md = inst.mailbox("alice")
    gone = md.deliver(make_message("secret 7d1f"))
    kept = md.deliver(make_message("other"))
    p = inst.pop3("alice")
    p.retr(1)
    p.quit()
    session_end_logged(inst, 1)
    assert md.bases() == [kept] and gone != kept

    def on_disk():
        return [f for f in (md.path / "storage").glob("m.*")
                if b"secret 7d1f" in f.read_bytes()]
    assert on_disk()
    r = inst.doveadm("purge", "-u", "alice")
    assert r.returncode == 0, r.stderr
    assert not on_disk()
    assert md.bases() == [kept]


# ------------------------------------------------------------------- safety

def test_global_mail_plugins_does_not_break_doveadm(dovecot):
    inst = dovecot(plugin=True, extra_conf="mail_plugins = pop3_retention\n",
                   settings={P + "policy": "delete-after-download"})
    deliver(inst, n=1)
    r = inst.doveadm("fetch", "-u", "alice", "uid", "mailbox", "INBOX", "all")
    assert r.returncode == 0, r.stderr
    assert "uid: 1" in r.stdout
    assert "works only in the pop3 process" in r.stderr + inst.log_text()
    # pop3 still enforces it
    p = inst.pop3("alice")
    p.retr(1)
    p.quit()
    session_end_logged(inst, 1)
    assert inst.mailbox("alice").bases() == []


def test_pop3_delete_type_flag_is_honoured(dovecot):
    inst = dovecot(plugin=True, settings={P + "policy": "delete-after-download"},
                   extra_conf="pop3_deleted_flag = POP3Deleted\n"
                              "pop3_delete_type = flag\n")
    bases = deliver(inst, n=2)
    p = inst.pop3("alice")
    p.retr(1)
    p.quit()
    session_end_logged(inst, 1)
    md = inst.mailbox("alice")
    assert sorted(md.bases()) == sorted(bases)   # flagged, not expunged
    r = inst.doveadm("fetch", "-u", "alice", "uid flags", "mailbox",
                     "INBOX", "all")
    assert "POP3Deleted" in r.stdout
    p = inst.pop3("alice")
    assert p.stat()[0] == 1
    p.quit()


def test_pop3_lock_session(dovecot):
    inst = dovecot(plugin=True, settings={P + "max": "1d"},
                   extra_conf="pop3_lock_session = yes\n")
    md = inst.mailbox("alice")
    old = md.deliver(make_message("old"), mtime=time.time() - 2 * DAY)
    deliver(inst, n=1)
    p = inst.pop3("alice")
    assert p.stat()[0] == 1
    c = inst.raw()
    c.sendline("USER alice")
    c.readline()
    c.sendline("PASS pass")
    # pop3 waits up to 10 s for the session lock before [IN-USE]
    assert b"[IN-USE]" in c.readline(timeout=30)
    p.quit()
    session_end_logged(inst, 1)
    assert not md.exists(old)


# -------------------------------------------------------------------- audit

def test_audit_lines_and_named_events(dovecot):
    inst = dovecot(plugin=True, settings={P + "policy": "delete-after-download"},
                   extra_conf='metric pop3_retention_removed {\n'
                              '  filter = event=pop3_retention_removed\n'
                              '}\n')
    deliver(inst, n=3)
    p = inst.pop3("alice")
    uidls = dict(l.decode().split() for l in p.uidl()[1])
    p.retr(1)
    p.retr(2)
    p.quit()
    session_end_logged(inst, 1)
    lines = [l for l in inst.log_text().splitlines() if "action=remove" in l]
    assert len(lines) == 2
    for n, line in zip(("1", "2"), lines):
        assert "pop3(alice)" in line and "user=alice" in line
        assert f"uid={n} " in line and f"uidl={uidls[n]} " in line
        assert "reason=downloaded" in line
    # the events handed to the delivery service (logged at debug level,
    # type uidl... tab-separated) carry the same uid and uidl
    events = [l.split("pop3-retention: event ", 1)[1].split("\t")
              for l in inst.log_text().splitlines()
              if "pop3-retention: event message." in l]
    for kind in ("message.retrieved", "message.expired"):
        assert sorted((e[5], e[4]) for e in events if e[0] == kind) == \
            [("1", uidls["1"]), ("2", uidls["2"])], events

    def counted():
        r = inst.doveadm("stats", "dump")
        m = re.search(r"^pop3_retention_removed\s+duration\s+(\d+)", r.stdout,
                      re.M)
        return m and int(m.group(1)) == 2
    wait_until(counted, timeout=10, message="metric did not count 2 removals: "
               + inst.doveadm("stats", "dump").stdout)


# --------------------------------------------------------------------- CAPA

LOGIN_PLUGIN = "login_plugins = $login_plugins pop3_retention_login"


def capa_lines(raw_bytes):
    return [l for l in raw_bytes.split(b"\r\n") if l.startswith(b"EXPIRE")]


@pytest.mark.storages("maildir")   # CAPA is not about the storage
@pytest.mark.parametrize("settings,users,expect", [
    ({"policy": "keep", "keep": "30d"}, {}, b"EXPIRE 30"),
    ({"policy": "delete-after-download"}, {}, b"EXPIRE 0"),
    ({"hold": "yes", "policy": "keep", "keep": "1d"}, {}, b"EXPIRE NEVER"),
    ({"policy": "keep", "keep": "2d", "min": "5d"}, {}, b"EXPIRE 5"),
    ({"max": "90d"}, {}, b"EXPIRE 90"),
    ({"policy": "keep", "keep": "30d"}, {P + "keep": "7d"}, b"EXPIRE 7"),
])
def test_capa_expire_after_login(dovecot, settings, users, expect):
    inst = plugin(dovecot, users={"alice": users, "bob": {}}, **settings)
    deliver(inst, n=1)
    c = inst.raw()
    # pipelined: login, CAPA, RETR, CAPA in one write
    c.send(b"USER alice\r\nPASS pass\r\nCAPA\r\nRETR 1\r\nCAPA\r\nQUIT\r\n")
    data = c.read_until_close()
    assert capa_lines(data) == [expect, expect], data
    assert data.count(b"\r\n.\r\n") == 3   # two CAPA lists and the message


@pytest.mark.storages("maildir")   # CAPA is not about the storage
def test_capa_expire_before_login(dovecot):
    inst = dovecot(plugin=True, protocol_pop3_extra=LOGIN_PLUGIN,
                   settings={P + "policy": "keep", P + "keep": "30d"},
                   users={"alice": {P + "keep": "3d"}, "bob": {}})
    c = inst.raw()
    assert c.greeting.startswith(b"+OK")
    # pre-login CAPA pipelined with the login and a post-login CAPA
    c.send(b"CAPA\r\nUSER alice\r\nPASS pass\r\nCAPA\r\nQUIT\r\n")
    data = c.read_until_close()
    assert capa_lines(data) == [b"EXPIRE 30 USER", b"EXPIRE 3"], data
    assert b"+OK Logged in." in data


def test_curl_pop3_retrieve_then_quit_removes(dovecot):
    inst = plugin(dovecot, policy="delete-after-download")
    bases = deliver(inst, n=2)
    listing = inst.curl("alice")
    assert listing.returncode == 0, listing.stderr
    assert [l.split()[0] for l in listing.stdout.splitlines()] == [b"1", b"2"]
    r = inst.curl("alice", "1")      # curl sends RETR 1, then QUIT
    assert r.returncode == 0, r.stderr
    assert b"message 0" in r.stdout
    session_end_logged(inst, 2)
    assert inst.mailbox("alice").bases() == [bases[1]]


def test_imap_unaffected_by_global_listing(dovecot):
    import imaplib
    from dovecot_harness import free_port
    port = free_port()
    inst = dovecot(plugin=True, extra_conf=(
        "protocols = pop3 imap\n"
        "mail_plugins = pop3_retention\n"
        "service imap-login {\n"
        "  inet_listener imap {\n"
        "    address = 127.0.0.1\n"
        f"    port = {port}\n"
        "  }\n"
        "  inet_listener imaps {\n"
        "    port = 0\n"
        "  }\n"
        "}\n"), settings={P + "policy": "delete-after-download"})
    deliver(inst, n=2)
    m = imaplib.IMAP4("127.0.0.1", port)
    m.login("alice", "pass")
    typ, data = m.select("INBOX")
    assert typ == "OK" and data == [b"2"]
    m.logout()
    log = inst.log_text()
    assert "works only in the pop3 process, not in imap" in log
    assert "Fatal" not in log and "Panic" not in log


def test_session_statistics_match_vanilla(dovecot):
    """The EXPIRE filter steps aside while a message streams; pop3's own
    byte counters (its logout line) must still be exact."""
    vanilla = dovecot(plugin=False)
    keep = plugin(dovecot, policy="keep", keep="30d")
    for inst in (vanilla, keep):
        md = inst.mailbox("alice")
        for i in range(4):
            md.deliver(make_message(f"m{i}", msgid=f"<s{i}@x>",
                                    body=f"line\n.dot\n{'x' * 90}\n" * 40,
                                    date="Mon, 01 Jan 2024 00:00:00 +0000"),
                       name=f"1700000000.M{i}P1.stat", mtime=1700000000 + i)
        c = inst.raw("alice")
        c.send(b"CAPA\r\nRETR 1\r\nCAPA\r\nTOP 2 3\r\nRETR 3\r\nCAPA\r\n"
               b"RETR 4\r\nQUIT\r\n")
        c.read_until_close()
    logout = re.compile(r"Disconnected: Logged out (top=\S+ retr=\S+)")
    a = wait_until(lambda: logout.search(vanilla.log_text()))
    b = wait_until(lambda: logout.search(keep.log_text()))
    assert a.group(1) == b.group(1)
