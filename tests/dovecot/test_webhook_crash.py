"""Removal events across a crash of the pop3 process: the QUIT commit
removes messages, and their message.deleted / message.expired events
are handed over after it. A pop3 process killed between the two must
not lose them: they are recorded as pending before the commit, and a
later session reconciles them against the mailbox (docs/webhooks.md,
"Delivery guarantees"). The kill point is the plugin's test hook,
POP3_RETENTION_TEST_KILL, imported into the pop3 processes."""

import os
import time

from dovecot_harness import make_message, wait_until
from test_webhooks import webhooks  # noqa: F401 (fixture)


def wait_service(s):
    """The service reads the drop directory: sessions hand their events
    to it, not to their outboxes."""
    s.wait_log("webhook delivery to")


def kill_conf(point):
    return ("import_environment = $import_environment "
            f"POP3_RETENTION_TEST_KILL={point}\n")


def killed_session(s, retr=(), dele=()):
    """A session whose QUIT kills its pop3 process: the client sees the
    connection drop instead of the QUIT reply."""
    p = s.inst.pop3("alice")
    for i in retr:
        p.retr(i)
    for i in dele:
        p.dele(i)
    try:
        p.quit()
    except Exception:
        pass
    else:
        raise AssertionError("QUIT answered: the pop3 process was not "
                             "killed")
    wait_until(lambda: not s.pop3_pids(), timeout=20,
               message="pop3 process still running")


def login_without_quit(s):
    """A session that logs in and goes away without QUIT (so it commits
    nothing and no kill point is reached)."""
    p = s.inst.pop3("alice")
    p.stat()
    p.close()
    wait_until(lambda: not s.pop3_pids(), timeout=20,
               message="pop3 process still running")


def removal_events(s):
    return sorted((r.type, r.data["uid"]) for r in s.rx.delivered()
                  if r.type != "message.retrieved")


def test_quit_killed_after_its_commit_loses_no_removal_event(webhooks):
    s = webhooks(policy="delete-after-download",
                 extra_conf=kill_conf("quit-after-commit"))
    wait_service(s)
    s.deliver(4)
    killed_session(s, retr=(1, 2), dele=(3,))
    s.rx.wait_for(lambda rx: len(rx.delivered()) >= 2)
    # the next session of the user reports what the first one removed
    # (the commit expunged 1 and 2, downloaded, and 3, DELEd; the files
    # go at the next sync)
    login_without_quit(s)
    assert s.inst.maildir("alice").count() == 1
    s.rx.wait_for(lambda rx: len(removal_events(s)) >= 3, timeout=20)
    time.sleep(1)
    assert removal_events(s) == [("message.deleted", 3),
                                 ("message.expired", 1),
                                 ("message.expired", 2)]
    assert sorted(r.data["uid"] for r in s.rx.delivered()
                  if r.type == "message.retrieved") == [1, 2]
    # the events are those of the first session: its id, its time
    first = [r for r in s.rx.delivered() if r.type == "message.retrieved"]
    for r in s.rx.delivered():
        assert r.data["session"] == first[0].data["session"]
    assert "pending event" in s.log()
    s.check()


def test_quit_killed_before_its_commit_reports_no_removal(webhooks):
    s = webhooks(policy="delete-after-download",
                 extra_conf=kill_conf("quit-before-commit"))
    wait_service(s)
    s.deliver(3)
    killed_session(s, retr=(1,), dele=(2,))
    assert s.inst.maildir("alice").count() == 3
    login_without_quit(s)
    s.rx.wait_for(lambda rx: len(rx.delivered()) >= 1)
    time.sleep(1.5)
    assert removal_events(s) == []
    assert [r.data["uid"] for r in s.rx.delivered()] == [1]
    s.check()


def test_sweep_killed_after_its_commit_loses_no_removal_event(webhooks):
    """doveadm's sweep records its events as pending as well; the
    user's next POP3 session reconciles what it left."""
    s = webhooks(max="1d")
    wait_service(s)
    md = s.inst.maildir("alice")
    md.deliver(make_message("old"), mtime=time.time() - 3 * 86400)
    md.deliver(make_message("new"))
    r = s.inst.doveadm_plugin("pop3-retention", "sweep", "-u", "alice",
                              env=dict(os.environ,
                                       POP3_RETENTION_TEST_KILL=
                                       "sweep-after-commit"))
    assert r.returncode != 0
    s.rx.wait_for(lambda rx: True, timeout=1)
    time.sleep(1)
    assert removal_events(s) == []
    login_without_quit(s)
    assert md.count() == 1
    s.rx.wait_for(lambda rx: len(removal_events(s)) >= 1, timeout=20)
    time.sleep(1)
    assert removal_events(s) == [("message.expired", 1)]
    s.check()


def test_pending_record_is_gone_after_a_normal_quit(webhooks):
    s = webhooks(policy="delete-after-download")
    wait_service(s)
    s.deliver(2)
    s.session(retr=(1,), dele=(2,))
    s.rx.wait_for(lambda rx: len(rx.delivered()) >= 3)
    pending = s.outbox() / "pending"
    assert not pending.is_dir() or os.listdir(pending) == []
    s.check()


def deleted_fields(uid, user, uidvalidity):
    now = int(time.time())
    return "\t".join([
        "message.deleted", str(now), user, "INBOX", f"uidl{uid}", str(uid),
        str(uidvalidity), "", "123", str(now - 60), "", "0", "off", "dele",
        "", "planted", "127.0.0.1", "0", "1"])


def test_left_over_pending_files_are_checked(webhooks):
    """A pending file is in the user's own directory: its lines must
    name the user, and only regular files are read."""
    s = webhooks()
    wait_service(s)
    s.deliver(1)
    s.session()
    pending = s.outbox() / "pending"
    pending.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chown(s.outbox(), 65534, 65534)
    os.chown(pending, 65534, 65534)
    now_ms = int(time.time() * 1000)
    lines = [f"{now_ms}\t{deleted_fields(77, 'bob', 1)}",
             f"{now_ms}\tgarbage"]
    planted = pending / "1.2.abcdef"
    planted.write_text("pop3-retention-pending 1\n" + "\n".join(lines) +
                       "\n")
    os.chown(planted, 65534, 65534)
    link = pending / "3.4.abcdef"
    link.symlink_to("/etc/passwd")
    login_without_quit(s)
    s.wait_log("Pending event not reconciled: it names another user")
    s.wait_log("is a symbolic link, not a pending file: deleted")
    time.sleep(1)
    assert s.rx.all() == []
    assert os.listdir(pending) == []
    s.check()
