"""pop3-retentiond's webhooks: the core's spool and delivery engine in the
server's libevent loop, the same events, bodies and signatures as the
Dovecot plugin, verified by a real receiver; nothing lost across a
receiver outage or kill -9; sweep events handed to the running server."""

import os
import time

from dovecot_harness import MAIL_GID, MAIL_UID, make_message
from shim_harness import ShimInstance, wait_until
from webhook_receiver import WebhookReceiver, make_secret

DAY = 86400


def webhook_shim(shim, rx_secret=None, **settings):
    secret = rx_secret or make_secret()
    rx = WebhookReceiver(secret)
    inst = shim(start=False, settings={})
    secret_file = inst.dir / "webhook.secret"
    secret_file.write_text(secret + "\n")
    os.chown(secret_file, MAIL_UID, MAIL_GID)
    os.chmod(secret_file, 0o600)
    conf = {"pop3_retention_webhook_url": rx.url,
            "pop3_retention_webhook_secret_file": str(secret_file),
            "pop3_retention_webhook_allow_private": "yes",
            "pop3_retention_webhook_retry_schedule": "0s 1s 1s 2s"}
    conf.update({"pop3_retention_" + k: v for k, v in settings.items()})
    inst.settings = conf
    inst.write_conf()
    inst.start()
    inst.rx = rx
    inst.secret = secret
    return inst


def by_type(reqs, type_):
    return [r for r in reqs if r.type == type_]


def test_downloads_and_removals_are_signed_events(shim):
    inst = webhook_shim(shim, policy="delete-after-download")
    md = inst.maildir("alice")
    bases = [md.deliver(make_message(f"m{i}", msgid=f"<m{i}@test>"))
             for i in range(3)]
    p = inst.pop3("alice")
    p.retr(1)
    p.retr(1)
    p.dele(3)
    p.quit()
    rx = inst.rx
    rx.wait_for(lambda r: len(r.delivered()) == 4)
    # requests go out concurrently (16 in flight): any arrival order
    retrieved = sorted(by_type(rx.delivered(), "message.retrieved"),
                       key=lambda r: not r.data["first_retrieval"])
    assert [r.data["first_retrieval"] for r in retrieved] == [True, False]
    assert {r.data["uidl"] for r in retrieved} == {bases[0]}
    assert retrieved[0].data["message_id"] == "<m0@test>"
    assert retrieved[0].data["user"] == "alice"
    expired = by_type(rx.delivered(), "message.expired")
    deleted = by_type(rx.delivered(), "message.deleted")
    assert [e.data["reason"] for e in expired] == ["downloaded"]
    assert [d.data["uidl"] for d in deleted] == [bases[2]]
    assert len({r.id for r in rx.delivered()}) == 4
    rx.check_invariants()
    assert inst.secret not in inst.log_text()
    rx.stop()


def test_receiver_down_then_up_delivers_each_once(shim):
    inst = webhook_shim(shim)
    inst.rx.stop()
    inst.maildir("alice").deliver(make_message("one"))
    p = inst.pop3("alice")
    p.retr(1)
    p.quit()
    inst.wait_log("attempt 1 of")
    inst.rx.start()
    inst.rx.wait_for(lambda r: len(r.delivered()) == 1, timeout=20)
    time.sleep(1.5)
    assert len(inst.rx.delivered()) == 1
    inst.rx.check_invariants()
    inst.rx.stop()


def test_kill9_after_retr_delivers_after_restart(shim):
    inst = webhook_shim(shim)
    inst.rx.stop()                     # nothing can leave before the kill
    inst.maildir("alice").deliver(make_message("one"))
    c = inst.raw("alice")
    c.command("RETR 1", multiline=True)
    time.sleep(0.3)
    inst.kill9()
    inst.rx.start()
    inst.start()
    inst.rx.wait_for(lambda r: len(by_type(r.delivered(),
                                           "message.retrieved")) == 1,
                     timeout=20)
    inst.rx.check_invariants()
    inst.rx.stop()


def test_sweep_beside_the_server_hands_its_events_over(shim):
    inst = webhook_shim(shim, max="30d")
    md = inst.maildir("alice")
    old = md.deliver(make_message("old"), mtime=time.time() - 40 * DAY)
    r = inst.command("sweep", "-u", "alice")
    assert r.returncode == 0, r.stderr
    assert not md.exists(old)
    inst.rx.wait_for(lambda rx: len(by_type(rx.delivered(),
                                            "message.expired")) == 1,
                     timeout=20)
    e = by_type(inst.rx.delivered(), "message.expired")[0]
    assert e.data["reason"] == "max-exceeded" and e.data["uidl"] == old
    assert os.listdir(inst.state_dir / "incoming") == []
    inst.rx.check_invariants()
    inst.rx.stop()


def test_bad_secret_file_keeps_events(shim):
    inst = webhook_shim(shim)
    secret_file = inst.dir / "webhook.secret"
    inst.stop()
    os.chmod(secret_file, 0o644)
    inst.start()
    inst.wait_log("must be a regular file owned by")
    inst.maildir("alice").deliver(make_message("one"))
    p = inst.pop3("alice")
    p.retr(1)
    p.quit()
    time.sleep(1)
    assert inst.rx.delivered() == []
    inst.stop()
    os.chmod(secret_file, 0o600)
    inst.start()
    inst.rx.wait_for(lambda r: len(r.delivered()) == 1, timeout=20)
    inst.rx.check_invariants()
    inst.rx.stop()


def test_kill9_between_removals_and_their_events(shim):
    """The process dies right after UPDATE removed the messages, before
    their events reached the spool: the events were recorded as pending
    first, and the next session of the maildrop hands over those whose
    removal happened, with their original webhook-ids."""
    inst = webhook_shim(shim, policy="delete-after-download")
    md = inst.maildir("alice")
    bases = [md.deliver(make_message(f"m{i}")) for i in range(3)]
    inst.stop()
    os.environ["POP3_RETENTIOND_TEST_KILL"] = "after-removals"
    try:
        inst.start()
    finally:
        del os.environ["POP3_RETENTIOND_TEST_KILL"]
    c = inst.raw("alice")
    c.command("RETR 1", multiline=True)
    c.command("DELE 2")
    c.sendline("QUIT")
    wait_until(lambda: not inst.running, timeout=10)
    assert md.bases() == [bases[2]]          # the removals happened
    inst.rx.wait_for(lambda r: len(r.delivered()) == 1)  # the RETR only
    time.sleep(0.5)
    assert [r.type for r in inst.rx.delivered()] == ["message.retrieved"]
    inst.start()
    p = inst.pop3("alice")                   # reconciles
    p.quit()
    # the kill may also cut the RETR event's answer: it goes out again
    # (at-least-once, the same webhook-id)
    inst.rx.wait_for(lambda r: len(set(r.delivered_ids())) == 3,
                     timeout=20)
    got = {r.type: r.data["uidl"] for r in inst.rx.delivered()}
    assert got == {"message.retrieved": bases[0],
                   "message.expired": bases[0],
                   "message.deleted": bases[1]}, got
    assert "reconciled: 2 sent, 0 dropped" in inst.log_text()
    assert not (md.path / "pop3-retentiond.pending").exists()
    assert all(r.verified for r in inst.rx.hook_requests())
    inst.rx.stop()
