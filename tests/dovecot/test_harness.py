"""Self-tests of the Dovecot harness against VANILLA Dovecot (no plugin)."""

import os
import shutil
import stat
import time

import pytest

import dovecot_conf
import dovecot_harness as h


def _lines(msg: bytes):
    """Message bytes -> list of lines as poplib returns them."""
    return msg.replace(b"\r\n", b"\n").rstrip(b"\n").split(b"\n")


def _subject(lines):
    for l in lines:
        if l.lower().startswith(b"subject:"):
            return l.split(b":", 1)[1].strip().decode()
    return None


def _sessions_done(inst, n):
    """True once n pop3 sessions logged their Disconnected line."""
    return inst.log_text().count(": Info: Disconnected") >= n


@pytest.fixture
def inst3(dovecot, make_message):
    inst = dovecot(plugin=False)
    md = inst.maildir("alice")
    msgs = [make_message(f"msg {i}", body=f"body number {i}\n") for i in (1, 2, 3)]
    bases = [md.deliver(m) for m in msgs]
    return inst, md, msgs, bases


def test_instance_layout_and_processes(dovecot, wait_until):
    inst = dovecot()
    assert inst.running and h.port_is_listening(inst.port)
    assert len(str(inst.base_dir)) < 40
    # every parent of the instance dir is world-searchable (pitfall 2)
    for p in [inst.dir, *inst.dir.parents]:
        assert os.stat(p).st_mode & 0o001, p
    assert stat.S_IMODE(os.stat(inst.users_file).st_mode) == 0o644
    st = os.stat(inst.home("alice"))
    assert (st.st_uid, st.st_gid) == (65534, 65534)
    # anvil, log, config, ... are forked around the time the port listens
    pids = wait_until(lambda: len(inst.pids()) >= 3 and inst.pids(), 5)
    assert inst.master_pid in pids
    inst.stop()
    assert not inst.running
    assert inst.pids() == []
    assert not any(os.path.exists(f"/proc/{p}") and
                   h._proc_stat(p) and h._proc_stat(p)[0] != "Z" for p in pids)
    inst.stop()  # idempotent


def test_pop3_stat_and_retr(inst3):
    inst, md, msgs, bases = inst3
    p = inst.pop3("alice")
    count, size = p.stat()
    assert count == 3
    # POP3 sizes are CRLF sizes of the LF-ended files
    assert size == sum(len(m.replace(b"\n", b"\r\n")) for m in msgs)
    resp, lines, octets = p.retr(1)
    assert resp.startswith(b"+OK")
    assert lines == _lines(msgs[0])
    p.quit()
    assert md.count() == 3


def test_dele_quit_removes_exactly_one(inst3):
    inst, md, msgs, bases = inst3
    p = inst.pop3("alice")
    subj2 = _subject(p.top(2, 0)[1])
    assert subj2 in {"msg 1", "msg 2", "msg 3"}
    assert p.dele(2).startswith(b"+OK")
    p.quit()
    gone = [b for b, m in zip(bases, msgs) if _subject(_lines(m)) == subj2]
    assert md.count() == 2
    assert not md.exists(gone[0])
    assert all(md.exists(b) for b in bases if b != gone[0])


def test_dropped_connection_after_dele_removes_nothing(inst3, wait_until):
    inst, md, msgs, bases = inst3
    c = inst.raw("alice")
    st, _ = c.command("DELE 2")
    assert st.startswith(b"+OK")
    c.abort()  # RST, no QUIT
    wait_until(lambda: _sessions_done(inst, 1), 5)
    assert md.count() == 3
    assert all(md.exists(b) for b in bases)
    # and a fresh session still sees all three
    p = inst.pop3("alice")
    assert p.stat()[0] == 3
    p.quit()


def test_curl_pop3_list_and_retr(inst3, curl_pop3):
    inst, md, msgs, bases = inst3
    r = curl_pop3(inst, "alice")
    assert r.returncode == 0, r.stderr
    listing = r.stdout.split(b"\r\n")
    assert [l.split()[0] for l in listing if l] == [b"1", b"2", b"3"]
    r = inst.curl("alice", "1")
    assert r.returncode == 0
    assert r.stdout.replace(b"\r\n", b"\n") == msgs[0]


def test_doveadm_fetch(inst3):
    inst, md, msgs, bases = inst3
    r = inst.doveadm("fetch", "-u", "alice", "uid flags guid", "all")
    assert r.returncode == 0, r.stderr
    assert [l for l in r.stdout.splitlines() if l.startswith("uid: ")] == \
        ["uid: 1", "uid: 2", "uid: 3"]
    assert sorted(l.split(": ")[1] for l in r.stdout.splitlines()
                  if l.startswith("guid: ")) == sorted(bases)
    # the config file path works too (re-exec through doveconf)
    r2 = h.subprocess.run(["doveadm", "-c", str(inst.conf), "fetch", "-u",
                           "alice", "uid", "all"], capture_output=True, text=True)
    assert r2.returncode == 0 and r2.stdout.count("uid: ") == 3, r2.stderr
    # and it works when the instance is stopped?  No: userdb lookups need
    # the running auth service (base_dir/auth-userdb).
    inst.stop(fast=True)
    r3 = inst.doveadm("fetch", "-u", "alice", "uid", "all")
    assert r3.returncode != 0


def test_backdated_delivery_is_received_date(dovecot, make_message):
    inst = dovecot()
    md = inst.maildir("alice")
    t = int(time.time()) - 10 * 86400
    base = md.deliver(make_message("old"), mtime=t)
    assert int(os.stat(md.find(base).path).st_mtime) == t
    r = inst.doveadm("fetch", "-u", "alice", "date.received.unixtime", "all")
    assert r.returncode == 0, r.stderr
    assert f"date.received.unixtime: {t}" in r.stdout


def test_pipelined_capa_user_pass(inst3):
    inst, md, msgs, bases = inst3
    c = inst.raw()
    assert c.greeting.startswith(b"+OK")
    c.send(b"CAPA\r\nUSER alice\r\nPASS pass\r\n")
    st, capa = c.read_response(multiline=True)
    assert st.startswith(b"+OK") and b"UIDL" in capa and b"USER" in capa
    assert c.readline().startswith(b"+OK")          # USER
    assert c.readline().startswith(b"+OK Logged in")  # PASS
    c.send(b"STAT\r\nLIST\r\nNOOP\r\n")
    assert c.readline().startswith(b"+OK 3 ")
    st, listing = c.read_response(multiline=True)
    assert len(listing) == 3
    assert c.readline().startswith(b"+OK")
    assert c.quit().startswith(b"+OK")
    assert md.count() == 3


def test_users_passwords_userdb_fields_and_plugin_settings(dovecot):
    # declared settings: 2.4 refuses unknown ones (and knows these only
    # from the built settings module)
    inst = dovecot(users={"carol": {"password": "s3cret",
                                    "pop3_retention_keep": "7d"},
                          "dave": {}},
                   settings={"pop3_retention_policy": "keep"})
    text = inst.users_file.read_text()
    assert "carol:s3cret:65534:65534::" in text
    assert "userdb_pop3_retention_keep=7d" in text
    shown = ("\npop3_retention_policy = keep\n" if dovecot_conf.is_24() else
             "plugin {\n  pop3_retention_policy = keep\n}")
    assert shown in inst.doveconf("-n").stdout
    p = inst.pop3("carol", "s3cret")
    assert p.stat()[0] == 0
    p.quit()
    inst.pop3("dave").quit()
    r = inst.doveadm("user", "carol")
    assert r.returncode == 0, r.stderr
    assert "pop3_retention_keep" in r.stdout and "7d" in r.stdout


def test_restart_keeps_port_and_mail(dovecot, make_message):
    inst = dovecot()
    md = inst.maildir("bob")
    md.deliver(make_message("x"))
    port, old = inst.port, inst.master_pid
    inst.restart()
    assert inst.port == port and inst.master_pid != old
    p = inst.pop3("bob")
    assert p.stat()[0] == 1
    p.quit()


def test_reconfigure(dovecot):
    inst = dovecot(settings={"pop3_retention_keep": "1d"})
    inst.reconfigure(settings={"pop3_retention_keep": "2d"},
                     users={"erin": {"password": "pw"}})
    assert inst.running
    out = inst.doveconf("-n").stdout
    assert "pop3_retention_keep = 2d" in out
    inst.pop3("erin", "pw").quit()


def test_two_instances_side_by_side(dovecot):
    a, b = dovecot(), dovecot()
    assert a.port != b.port and a.dir != b.dir
    a.pop3("alice").quit()
    b.pop3("alice").quit()


def test_make_message_and_maildir_helpers(dovecot, make_message):
    m = make_message("big", size_kb=10)
    assert len(m) == 10240 and b"\r\n" not in m
    assert b"\nMessage-ID: <" in m and b"\nSubject: big\n" in m
    m2 = make_message("crlf", size_kb=3, crlf=True)
    assert len(m2) == 3072 and m2.count(b"\n") == m2.count(b"\r\n")
    inst = dovecot(start=False)
    md = inst.maildir("alice")
    for d in ("cur", "new", "tmp"):
        st = os.stat(md.path / d)
        assert (st.st_uid, st.st_gid) == (65534, 65534)
    b1 = md.deliver("Subject: s\n\nbody\n")
    b2 = md.deliver(m)
    assert md.count() == 2 and md.exists(b1) and md.exists(b2) and b1 != b2
    assert [f.subdir for f in md.files()] == ["new", "new"]
    assert os.stat(md.find(b2).path).st_uid == 65534
    assert md.read(b2) == m
    assert os.listdir(md.path / "tmp") == []


def test_plugin_conf_generation_without_starting(dovecot, monkeypatch):
    """plugin=True layout/config, using a dummy file as the plugin .so."""
    probe = dovecot(start=False)
    fake = probe.dir / "lib20_pop3_retention_plugin.so"
    fake.write_bytes(b"not really a plugin")
    os.chmod(fake, 0o644)
    monkeypatch.setattr(h, "PLUGIN_SO", fake)
    inst = dovecot(plugin=True, start=False, settings={"pop3_retention_policy": "keep"},
                   extra_conf="mail_debug = yes",
                   protocol_pop3_extra="pop3_uidl_format = %g")
    mods = sorted(os.listdir(inst.module_dir))
    assert "lib20_pop3_retention_plugin.so" in mods
    assert "lib15_notify_plugin.so" in mods
    assert os.readlink(inst.module_dir / "lib20_pop3_retention_plugin.so") == str(fake)
    conf = inst.conf.read_text()
    assert conf.index("mail_debug = yes") < conf.index("protocol pop3 {")
    if dovecot_conf.is_24():
        assert "  mail_plugins {\n    pop3_retention = yes\n  }\n" in conf
    else:
        assert "  mail_plugins = $mail_plugins pop3_retention\n" in conf
    out = inst.validate()  # strict: no doveconf warnings either
    assert f"mail_plugin_dir = {inst.module_dir}" in out
    assert f"login_plugin_dir = {inst.login_module_dir}" in out
    assert ("pop3_uidl_format = %{guid}" if dovecot_conf.is_24()
            else "pop3_uidl_format = %g") in out


def test_plugin_missing_fails_loudly(dovecot, monkeypatch, tmp_path):
    monkeypatch.setattr(h, "PLUGIN_SO", tmp_path / "nope.so")
    with pytest.raises(pytest.fail.Exception, match="built plugin is missing"):
        dovecot(plugin=True)


def test_bad_config_fails_with_doveconf_error(dovecot):
    with pytest.raises(pytest.fail.Exception, match="doveconf"):
        dovecot(extra_conf="no_such_setting_xyz = 1")


def test_doveadm_plugin_namespace(dovecot, monkeypatch):
    """The mount-namespace trick, with a copy of the stock quota doveadm
    plugin standing in for the (maybe not yet built) pop3_retention one."""
    inst = dovecot()
    stand_in_dir = inst.dir / "standin"
    stand_in_dir.mkdir(mode=0o755)
    stand_in = stand_in_dir / "lib10_doveadm_quota_plugin.so"
    shutil.copy2(h.STOCK_DOVEADM_DIR / "lib10_doveadm_quota_plugin.so", stand_in)
    monkeypatch.setattr(h, "DOVEADM_PLUGIN_SO", stand_in)
    host_before = sorted(os.listdir(h.STOCK_DOVEADM_DIR))

    # the command exists only because the stand-in plugin got loaded (it
    # then complains that no quota root is configured - fine)
    r = inst.doveadm_plugin("-o", "mail_plugins=quota", "quota", "get", "-u", "alice")
    assert "Unknown command" not in r.stderr, r.stderr
    assert r.stdout.startswith("Quota name"), (r.stdout, r.stderr)
    # inside the namespace the module dir is ours: the stand-in is a link to
    # the copy and the stock links resolve (no symlink loop)
    d = h.STOCK_DOVEADM_DIR
    r = inst.run_in_doveadm_ns(
        "sh", "-c", f"readlink {d}/lib10_doveadm_quota_plugin.so && "
                    f"test -r {d}/lib10_doveadm_acl_plugin.so && echo stock-ok")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [str(stand_in), "stock-ok"]
    # the host directory is untouched
    assert sorted(os.listdir(h.STOCK_DOVEADM_DIR)) == host_before
    assert not os.path.islink(h.STOCK_DOVEADM_DIR / "lib10_doveadm_quota_plugin.so")
    with open("/proc/mounts") as f:
        assert str(h.STOCK_DOVEADM_DIR) not in f.read()
