"""pop3-retentiond speaks POP3 (RFC 1939, 2449, 2595, 5034, 3206, 8314)
to real clients: Python's poplib, curl, and raw sockets for what clients
never send (overlong lines, NUL octets, 10,000 pipelined commands)."""

import ctypes
import ctypes.util
import os
import poplib
import socket
import ssl
import subprocess
import time

import pytest

from shim_harness import HOST, RawPOP3, certificate_files, wait_until


def crlf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def deliver(inst, user="alice", n=3, **kw):
    from dovecot_harness import make_message
    md = inst.maildir(user)
    return [md.deliver(make_message(f"message {i}"), **kw) for i in range(n)]


# ----------------------------------------------------------- the basics

def test_capa_before_and_after_login(shim):
    inst = shim(settings={"pop3_retention_policy": "keep",
                          "pop3_retention_keep": "30d"},
                users={"alice": {}, "bob": {"pop3_retention_keep": "2d"}})
    c = inst.raw()
    assert c.greeting.startswith(b"+OK")
    st, caps = c.command("CAPA", multiline=True)
    assert st.startswith(b"+OK")
    for cap in (b"TOP", b"UIDL", b"USER", b"SASL PLAIN", b"RESP-CODES",
                b"AUTH-RESP-CODE", b"PIPELINING", b"STLS",
                b"EXPIRE 30 USER"):
        assert cap in caps, caps
    assert any(c_.startswith(b"IMPLEMENTATION pop3-retentiond")
               for c_ in caps)
    c.login("bob")
    st, caps = c.command("CAPA", multiline=True)
    assert b"EXPIRE 2" in caps and b"USER" not in caps, caps
    assert b"STLS" not in caps
    c.quit()


def test_login_stat_list_uidl_retr_top(shim):
    inst = shim()
    from dovecot_harness import make_message
    md = inst.maildir("alice")
    raw = [make_message("one", body="line\n.dot line\n..two dots\n"),
           make_message("two", crlf=True)]
    bases = [md.deliver(m) for m in raw]
    p = inst.pop3("alice")
    count, size = p.stat()
    assert count == 2 and size == sum(len(crlf(m)) for m in raw)
    _, listing, _ = p.list()
    assert listing == [b"%d %d" % (i + 1, len(crlf(m)))
                       for i, m in enumerate(raw)]
    _, uidls, _ = p.uidl()
    assert uidls == [b"%d %s" % (i + 1, b.encode())
                     for i, b in enumerate(bases)]
    _, lines, octets = p.retr(1)
    assert b"\r\n".join(lines) + b"\r\n" == crlf(raw[0])
    _, lines, _ = p.top(2, 0)
    assert lines[-1] == b"" and b"Subject: two" in lines
    p.quit()
    # UIDLs are stable across sessions (the base name)
    p = inst.pop3("alice")
    assert p.uidl()[1] == uidls
    p.quit()


def test_dele_quit_removes_and_without_quit_nothing(shim):
    inst = shim()
    bases = deliver(inst, n=3)
    md = inst.maildir("alice")
    c = inst.raw("alice")
    assert c.command("DELE 1")[0].startswith(b"+OK")
    c.close()                       # no QUIT: RFC 1939 section 6
    inst.wait_log("quit=no")
    assert sorted(md.bases()) == sorted(bases)
    p = inst.pop3("alice")
    p.dele(1)
    p.dele(2)
    p.rset()
    p.dele(3)
    assert p.quit().startswith(b"+OK")
    inst.wait_log("quit=yes")
    assert sorted(md.bases()) == sorted(bases[:2])


def test_bad_logins_are_delayed_and_answered_alike(shim):
    inst = shim()
    c = inst.raw()
    for user in ("alice", "nosuchuser"):
        c.command(f"USER {user}")
        t0 = time.monotonic()
        st, _ = c.command("PASS wrong")
        assert st.startswith(b"-ERR [AUTH]"), st
        assert time.monotonic() - t0 >= 1.5
    # the good password still works on this connection
    assert c.login("alice").startswith(b"+OK")
    c.quit()


def test_auth_plain_with_and_without_initial_response(shim):
    import base64
    inst = shim()
    ir = base64.b64encode(b"\0alice\0pass").decode()
    c = inst.raw()
    assert c.command(f"AUTH PLAIN {ir}")[0].startswith(b"+OK")
    c.quit()
    c = inst.raw()
    assert c.command("AUTH PLAIN")[0] == b"+ "
    assert c.command(ir)[0].startswith(b"+OK")
    c.quit()
    c = inst.raw()
    assert c.command("AUTH PLAIN")[0] == b"+ "
    assert c.command("*")[0].startswith(b"-ERR")
    assert c.command("AUTH PLAIN !!!")[0].startswith(b"-ERR")
    c.quit()


def test_in_use(shim):
    inst = shim()
    p = inst.pop3("alice")
    c = inst.raw()
    c.command("USER alice")
    st, _ = c.command("PASS pass")
    assert st.startswith(b"-ERR [IN-USE]"), st
    p.quit()
    inst.wait_log("quit=yes")
    assert c.login("alice").startswith(b"+OK")
    c.quit()


# ------------------------------------------------------- hostile input

def test_overlong_nul_and_garbage_get_err(shim):
    inst = shim()
    c = inst.raw()
    assert c.command("X" * 300)[0] == b"-ERR Command line too long."
    assert c.command("NOOP" + "x" * 100000)[0] == \
        b"-ERR Command line too long."
    assert c.command(b"US\0ER alice")[0].startswith(b"-ERR")
    assert c.command(bytes(range(1, 250)).replace(b"\n", b"")
                     .replace(b"\r", b""))[0].startswith(b"-ERR")
    assert c.command("RETR 1")[0].startswith(b"-ERR")
    assert c.login("alice").startswith(b"+OK")
    assert c.command("RETR 99999999999")[0].startswith(b"-ERR")
    assert c.command("TOP 1 -1")[0].startswith(b"-ERR")
    assert c.command("LIST a")[0].startswith(b"-ERR")
    assert c.command("NOOP")[0] == b"+OK"
    c.quit()


def test_ten_thousand_pipelined_commands_in_order(shim):
    inst = shim()
    deliver(inst, n=1)
    c = inst.raw("alice")
    cmds = []
    for i in range(10000):
        cmds.append(b"NOOP" if i % 3 else b"LIST 1")
    c.send(b"\r\n".join(cmds) + b"\r\n")
    for i in range(10000):
        line = c.readline(timeout=30)
        if i % 3:
            assert line == b"+OK", (i, line)
        else:
            assert line.startswith(b"+OK 1 "), (i, line)
    c.quit()


# ---------------------------------------------------------------- TLS

def test_stls_then_login_and_plaintext_policy(shim):
    inst = shim(extra_conf="plaintext_auth = tls\n")
    deliver(inst, n=1)
    c = inst.raw()
    st, _ = c.command("USER alice")
    assert st.startswith(b"-ERR [AUTH]"), st
    st, caps = c.command("CAPA", multiline=True)
    assert b"USER" not in caps and b"STLS" in caps
    c.close()
    p = poplib.POP3(HOST, inst.port, timeout=10)
    p.stls(ssl.create_default_context(cafile=str(certificate_files()[0])))
    p.user("alice")
    p.pass_("pass")
    assert p.stat()[0] == 1
    p.quit()


def test_stls_discards_pipelined_plaintext(shim):
    inst = shim()
    c = RawPOP3(inst.port)
    c.send(b"STLS\r\nUSER injected\r\nPASS pass\r\n")
    assert c.readline().startswith(b"+OK")
    ctx = ssl.create_default_context(cafile=str(certificate_files()[0]))
    s = ctx.wrap_socket(c.sock, server_hostname="localhost")
    s.settimeout(5)
    s.sendall(b"PASS pass\r\n")
    assert s.recv(512).startswith(b"-ERR No username given")
    s.close()


def test_implicit_tls_and_tls_versions(shim):
    inst = shim()
    deliver(inst, n=2)
    p = inst.pop3_ssl("alice")
    assert p.stat()[0] == 2
    p.quit()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    # the client allows TLS 1.0/1.1: a refusal is the server's
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    ctx.minimum_version = ssl.TLSVersion.TLSv1
    ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    with socket.create_connection((HOST, inst.tls_port), timeout=5) as s:
        with pytest.raises(ssl.SSLError):
            ctx.wrap_socket(s).recv(100)


def test_curl_pop3_and_pop3s(shim):
    inst = shim()
    bases = deliver(inst, n=2)
    r = inst.curl("alice")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0].startswith(b"1 ")
    r = inst.curl("alice", "2", tls=True)
    assert r.returncode == 0, r.stderr
    assert b"message 1" in r.stdout
    r = inst.curl("alice", "1", extra=["-X", "DELE", "-I"])
    assert r.returncode == 0, r.stderr
    inst.wait_log("quit=yes")
    wait_until(lambda: inst.maildir("alice").count() == 1)
    assert inst.maildir("alice").bases() == [bases[1]]


# ----------------------------------------------------------- passwords

def _libcrypt():
    lib = ctypes.CDLL(ctypes.util.find_library("crypt"))
    lib.crypt_gensalt.restype = ctypes.c_char_p
    lib.crypt_gensalt.argtypes = [ctypes.c_char_p, ctypes.c_ulong,
                                  ctypes.c_char_p, ctypes.c_int]
    lib.crypt.restype = ctypes.c_char_p
    lib.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    return lib


def hash_password(prefix: bytes, password: str) -> str:
    lib = _libcrypt()
    salt = lib.crypt_gensalt(prefix, 0, None, 0)
    assert salt, prefix
    return lib.crypt(password.encode(), salt).decode()


@pytest.mark.parametrize("scheme,prefix", [
    ("{SHA512-CRYPT}", b"$6$"),
    ("{SHA256-CRYPT}", b"$5$"),
    ("{BLF-CRYPT}", b"$2b$"),
    ("", b"$y$"),              # yescrypt, no scheme: CRYPT
    ("{CRYPT}", b"$6$"),
])
def test_password_schemes(shim, scheme, prefix):
    stored = scheme + hash_password(prefix, "s3cret")
    inst = shim(users={"alice": {"password": stored}})
    c = inst.raw()
    c.command("USER alice")
    assert c.command("PASS s3cret")[0].startswith(b"+OK")
    c.quit()
    c = inst.raw()
    c.command("USER alice")
    assert c.command("PASS wrong")[0].startswith(b"-ERR [AUTH]")
    c.close()


def test_plain_passwords_warn_at_start(shim):
    inst = shim()
    assert "{PLAIN} password" in inst.log_text()


# ------------------------------------------------------------ operation

def test_check_config_names_file_line_key_value(shim):
    inst = shim(start=False, extra_conf="idle_timeout = 5\nfrobnicate = 1\n")
    r = inst.command("check-config")
    assert r.returncode != 0
    assert f"{inst.conf}:" in r.stderr and "idle_timeout" in r.stderr \
        and "'5'" in r.stderr, r.stderr
    inst.extra_conf = "frobnicate = 1\n"
    inst.write_conf()
    r = inst.command("check-config")
    assert r.returncode != 0 and "frobnicate" in r.stderr, r.stderr
    inst.extra_conf = ""
    inst.write_conf()
    r = inst.command("check-config")
    assert r.returncode == 0, r.stderr


def test_sighup_reloads_users_without_dropping_sessions(shim):
    inst = shim()
    deliver(inst, n=1)
    p = inst.pop3("alice")
    inst.reconfigure(users={"alice": {}, "bob": {}, "carol": {}})
    assert p.stat()[0] == 1
    p.quit()
    c = inst.raw("carol")
    c.quit()


def test_sigterm_lets_sessions_finish(shim):
    inst = shim()
    bases = deliver(inst, n=2)
    p = inst.pop3("alice")
    inst.proc.send_signal(15)
    inst.wait_log("stopping")
    p.dele(1)
    assert p.quit().startswith(b"+OK")
    inst.proc.wait(10)
    assert inst.maildir("alice").bases() == [bases[1]]


def test_kill9_removes_nothing_without_quit(shim):
    inst = shim()
    bases = deliver(inst, n=2)
    p = inst.pop3("alice")
    p.dele(1)
    p.dele(2)
    inst.kill9()
    assert sorted(inst.maildir("alice").bases()) == sorted(bases)
    inst.start()
    p = inst.pop3("alice")        # the lock died with the process
    assert p.stat()[0] == 2
    p.quit()


def test_connections_per_ip_and_privileges(shim):
    inst = shim(extra_conf="connections_per_ip = 2\n")
    a, b = inst.raw(), inst.raw()
    c = socket.create_connection((HOST, inst.port), timeout=5)
    assert c.recv(100) == b""          # refused: closed without a word
    c.close()
    inst.wait_log("connections_per_ip reached")
    a.close()
    wait_until(lambda: "closed" in inst.log_text().split(
        "connections_per_ip reached")[-1], timeout=5)
    d = inst.raw()
    assert d.greeting.startswith(b"+OK")
    for x in (b, d):
        x.close()
    # bound as root, serving as the configured user
    status = open(f"/proc/{inst.proc.pid}/status").read()
    uid_line = [l for l in status.splitlines() if l.startswith("Uid:")][0]
    assert set(uid_line.split()[1:]) == {"65534"}, uid_line


def test_login_delay_is_advertised(shim):
    inst = shim(extra_conf="login_delay = 5m\n")
    c = inst.raw()
    _, caps = c.command("CAPA", multiline=True)
    assert b"LOGIN-DELAY 300 USER" in caps, caps
    c.login("alice")
    _, caps = c.command("CAPA", multiline=True)
    assert b"LOGIN-DELAY 300" in caps, caps
    c.quit()


def test_idle_autologout_ends_the_session_without_update(shim):
    """RFC 1939 section 3: the autologout timer ends an idle session
    without entering UPDATE. The configuration refuses less than 10
    minutes; the test shortens it through the test-only environment
    variable POP3_RETENTIOND_TEST_IDLE_SECS."""
    inst = shim(start=False)
    bases = deliver(inst, n=2)
    os.environ["POP3_RETENTIOND_TEST_IDLE_SECS"] = "2"
    try:
        inst.start()
    finally:
        del os.environ["POP3_RETENTIOND_TEST_IDLE_SECS"]
    c = inst.raw("alice")
    assert c.command("DELE 1")[0].startswith(b"+OK")
    time.sleep(1)
    assert c.command("NOOP")[0] == b"+OK"      # activity resets the timer
    t0 = time.monotonic()
    rest = c.read_until_close(timeout=10)
    assert 1.5 < time.monotonic() - t0 < 6
    assert rest.startswith(b"-ERR Disconnected for inactivity."), rest
    inst.wait_log("idle timeout, closed without UPDATE")
    assert "quit=no" in inst.log_text()
    assert sorted(inst.maildir("alice").bases()) == sorted(bases)
