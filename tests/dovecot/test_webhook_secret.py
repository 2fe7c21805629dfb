"""The signing secret's trust boundary in a real Dovecot 2.3: the service
runs as its own user, is not dumpable, keeps no raw key bytes once its
signer is keyed, refuses short secrets, and never logs a URL's userinfo
or query."""

import os
import time

import dovecot_conf
from dovecot_harness import SANITIZE, SERVICE_USER, wait_until
from test_webhooks import SERVICE_PW, webhooks  # noqa: F401 (fixture)
from webhook_receiver import make_secret, secret_key


def proc_uid(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Uid:"):
                return int(line.split()[1])
    raise AssertionError(f"no Uid in /proc/{pid}/status")


def memory_contains(pid, needles):
    """The needles found in the process's readable memory (root reads
    /proc/PID/mem whatever the process's dumpable flag)."""
    found = set()
    with open(f"/proc/{pid}/maps") as maps, \
            open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
        for line in maps:
            fields = line.split()
            start, end = (int(x, 16) for x in fields[0].split("-"))
            if not fields[1].startswith("r") or \
                    (len(fields) > 5 and fields[5] == "[vvar]"):
                continue
            # P3R_SANITIZE=1: ASan's shadow memory (x86-64), terabytes
            # that hold shadow bytes, never the process's own data
            if SANITIZE and 0x7fff8000 <= start < 0x10007fff8000:
                continue
            try:
                mem.seek(start)
                data = mem.read(end - start)
            except (OSError, ValueError, OverflowError):
                continue
            found.update(n for n in needles if n in data)
    return found


def test_service_runs_as_its_own_user_and_is_not_dumpable(webhooks):
    # where fs.suid_dumpable allows it, the master asks the processes it
    # starts to stay dumpable (PR_SET_DUMPABLE in their environment);
    # import_environment sets the same on a host where it does not
    s = webhooks(extra_conf="import_environment = $import_environment "
                 "PR_SET_DUMPABLE=1\n")
    s.wait_log("started (")
    [pid] = s.service_pids()
    assert SERVICE_USER != "dovecot"
    assert proc_uid(pid) == SERVICE_PW.pw_uid
    # a dumpable process's /proc files belong to its user, a process
    # that is not dumpable keeps them root's: its user can neither
    # ptrace it nor read its memory, and it writes no core file
    for name in ("environ", "mem", "status"):
        assert os.stat(f"/proc/{pid}/{name}").st_uid == 0, name
    s.check()


def test_service_memory_holds_no_raw_key(webhooks):
    s = webhooks()
    s.wait_log("webhook delivery to")
    s.deliver(2)
    s.session(retr=(1, 2))
    s.rx.wait_for(lambda rx: len(rx.delivered()) >= 2)
    [pid] = s.service_pids()
    key = secret_key(s.secret)
    text = s.secret[len("whsec_"):].encode()
    assert len(key) == 32
    assert memory_contains(pid, [key, text]) == set()
    s.check()


def test_short_secret_is_refused_naming_the_file(webhooks):
    s = webhooks(start=False)
    short = make_secret(23)
    st = os.stat(s.secret_file)
    s.secret_file.write_text(short + "\n")
    os.chown(s.secret_file, st.st_uid, st.st_gid)
    s.inst.start()
    s.wait_log(f"The webhook secret file {s.secret_file}: webhook secret "
               "is too short (at least 24 bytes of key")
    s.wait_log("Webhooks are not delivered until the secret file is fixed")
    s.deliver(1)
    s.session(retr=(1,))
    wait_until(lambda: s.spool_pending() == 1, timeout=20)
    q, _ = s.queue()
    assert q["state"] == "no-secret"
    assert s.rx.all() == []
    assert short not in s.log()
    s.check()


USERINFO = "u53rname:pa55w0rd"
TOKEN = "t0k3n-s3cr3t"


def assert_redacted(text):
    for needle in ("u53rname", "pa55w0rd", TOKEN):
        assert needle not in text, (needle, text[-3000:])


def test_valid_url_userinfo_and_query_never_logged(webhooks):
    s = webhooks(start=False,
                 extra_conf="log_debug = category=pop3-retention\n"
                 "mail_debug = yes\n")
    url = s.rx.url.replace("://", f"://{USERINFO}@", 1) + "?token=" + TOKEN
    settings = dict(s.inst.settings)
    settings["pop3_retention_webhook_url"] = url
    s.inst.reconfigure(settings=settings, restart=False)
    s.inst.start()
    s.wait_log("webhook delivery to")
    s.rx.respond("500", "200", per_id=True)
    s.deliver(2)
    s.session(retr=(1, 2), dele=(1,))
    s.rx.wait_for(lambda rx: len(rx.delivered()) >= 3)
    s.wait_log("delivered: attempt 2")
    _, r = s.queue()
    assert_redacted(s.log() + r.stdout + r.stderr)
    s.check()


def test_invalid_url_userinfo_and_query_never_logged(webhooks):
    """A URL that is refused is named in the error, redacted, by the
    service (fatal; only the service validates the URL: a pop3 process
    and doveadm only see that one is set, and go on)."""
    s = webhooks(start=False)
    url = f"ftp://{USERINFO}@hooks.example.com/pop3?token={TOKEN}"
    settings = dict(s.inst.settings)
    settings["pop3_retention_webhook_url"] = url
    shown = ("pop3_retention_webhook_url: invalid value 'ftp://[redacted]"
             "@hooks.example.com/pop3?[redacted]'")
    if dovecot_conf.is_24():
        # refused when the config is read, named and redacted there
        err = dovecot_conf.config_refused(s.inst, settings)
        assert shown in err, err
        assert_redacted(err + s.log())
        return
    s.inst.reconfigure(settings=settings, restart=False)
    s.inst.start()
    s.wait_log("Fatal: Invalid setting in plugin {}: " + shown)
    s.deliver(1)
    s.session(retr=(1,))
    r = s.inst.doveadm_plugin("pop3-retention", "status", "-u", "alice")
    assert r.returncode == 0, (r.stdout, r.stderr)
    time.sleep(0.5)
    assert_redacted(s.log() + r.stdout + r.stderr)
    s.check()


def test_url_redaction_of_a_url_with_a_space(webhooks):
    s = webhooks(start=False)
    url = f"https://{USERINFO}@hooks.example.com/a b?token={TOKEN}"
    settings = dict(s.inst.settings)
    settings["pop3_retention_webhook_url"] = url
    if dovecot_conf.is_24():
        err = dovecot_conf.config_refused(s.inst, settings)
        assert "pop3_retention_webhook_url: invalid value" in err, err
        assert "contains a space or control character" in err, err
        assert_redacted(err + s.log())
        return
    s.inst.reconfigure(settings=settings, restart=False)
    s.inst.start()
    s.wait_log("pop3_retention_webhook_url")
    time.sleep(0.5)
    log = s.log()
    assert "contains a space or control character" in log, log[-3000:]
    assert_redacted(log)
    s.check()
