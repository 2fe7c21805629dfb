"""The behaviour suite: the same retention cases against both hosts.

`host` is a factory parametrized over "dovecot" (a private Dovecot
with the built plugin, Maildir), "dovecot-mdbox", "dovecot-sdbox" and
"dovecot-mbox" (the same on those storages), against Dovecot 2.3 or 2.4,
and "shim" (the built pop3-retentiond); P3R_BEHAVIOUR_HOSTS="dovecot shim"
(any of those names) runs those only, as tests/run-dovecot24 does for 2.4.
Every instance offers mailbox(user) (deliver, bases, count, exists),
pop3(user), raw(user), log_text() and wait_log(); settings are given
without the pop3_retention_ prefix."""

import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "dovecot"))
sys.path.insert(0, str(HERE.parent / "shim"))

import dovecot_harness as dh  # noqa: E402
import shim_harness as sh  # noqa: E402

P = "pop3_retention_"
# Dovecot logs a session that changed nothing at debug level only
DEBUG_LOG = "log_debug = category=pop3-retention\n"


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def _prefixed(d):
    return {(k if k.startswith(P) else P + k): v for k, v in d.items()}


# host kind -> Dovecot mail storage
STORAGES = {"dovecot": "maildir", "dovecot-mdbox": "mdbox",
            "dovecot-sdbox": "sdbox", "dovecot-mbox": "mbox"}
HOSTS = os.environ.get("P3R_BEHAVIOUR_HOSTS", " ".join([*STORAGES, "shim"])).split()


@pytest.fixture(params=HOSTS)
def host(request):
    kind = request.param
    made = []

    def factory(users=None, **settings):
        settings = _prefixed(settings)
        if users is not None:
            users = {u: _prefixed(f or {}) for u, f in users.items()}
        try:
            if kind in STORAGES:
                inst = dh.DovecotInstance(plugin=True, settings=settings,
                                          users=users, extra_conf=DEBUG_LOG,
                                          storage=STORAGES[kind])
            else:
                inst = sh.ShimInstance(settings=settings, users=users,
                                       tls=False)
                inst.mailbox = inst.maildir
        except dh.HarnessError as e:
            pytest.fail(str(e), pytrace=False)
        inst.kind = kind
        made.append(inst)
        return inst

    factory.kind = kind
    yield factory
    rep = getattr(request.node, "rep_call", None)
    failed = rep is None or rep.failed
    for inst in made:
        if kind in STORAGES:
            inst.stop(fast=True)
        else:
            inst.stop()
        if failed:
            print(f"\n--- {inst} log ---\n{inst.log_text()[-8000:]}")
        elif not os.environ.get("P3R_KEEP"):
            inst.remove()
