"""pytest fixtures for integration tests against a private Dovecot 2.3.

Run as root with the system interpreter:
    cd <repo> && /usr/bin/python3 -m pytest -q tests/dovecot

Fixtures
--------
dovecot             factory: dovecot(plugin=False, settings=None, users=None,
                    extra_conf="", protocol_pop3_extra="", strict_conf=True,
                    start=True, storage="maildir") -> DovecotInstance.
                    storage: maildir, mdbox, sdbox or mbox (mail_location;
                    inst.mailbox(user) inspects any).  Every call makes a new
                    instance (own dir under /tmp/p3r/, own port); all are
                    stopped at teardown and their dirs removed unless the test
                    failed or P3R_KEEP=1.
dovecot_vanilla     a started instance without the plugin (users alice, bob).
dovecot_plugin      a started instance with the plugin (fails if not built).
curl_pop3           the curl_pop3(inst, user, path="", extra=(), password="pass")
                    function.
wait_until          the wait_until(predicate, timeout=10, interval=0.05,
                    message=None) function.
make_message        the make_message(subject, size_kb=None, body=None,
                    crlf=False, ...) function.

Everything is also importable from dovecot_harness.
"""

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import dovecot_harness as h  # noqa: E402
from dovecot_harness import (  # noqa: E402,F401
    DovecotInstance, HarnessError, Maildir, RawPOP3, free_port,
    make_message as _make_message, wait_until as _wait_until,
)

_ALL_INSTANCES = []


def pytest_configure(config):
    if os.geteuid() != 0:
        raise pytest.UsageError("tests/dovecot must run as root "
                                "(private dovecot master + mount namespaces)")
    config.addinivalue_line(
        "markers", "storages(*names): run this test only on these mail "
        "storages (default: STORAGES)")


# The storages a test that asks for the `storage` fixture runs on;
# P3R_STORAGES=maildir,mbox (say) for another set (docs/testing.md).
STORAGES = tuple(os.environ.get("P3R_STORAGES",
                                "maildir,mdbox,sdbox").split(","))


def pytest_generate_tests(metafunc):
    """A test that uses `storage` (directly or through a fixture) runs
    once per storage; @pytest.mark.storages("maildir") narrows it."""
    if "storage" in metafunc.fixturenames:
        m = metafunc.definition.get_closest_marker("storages")
        metafunc.parametrize("storage", [s for s in STORAGES
                                         if not m or s in m.args])


def pytest_collection_modifyitems(config, items):
    """Deselect a test none of whose storages is in STORAGES (pytest
    would skip it, and ./quickstart test counts a skip as a failure)."""
    def off(item):
        m = item.get_closest_marker("storages")
        return m is not None and not set(m.args) & set(STORAGES)
    gone = [i for i in items if off(i)]
    if gone:
        config.hook.pytest_deselected(items=gone)
        items[:] = [i for i in items if not off(i)]


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def pytest_sessionfinish(session, exitstatus):
    # belt and braces: nothing we started may outlive the session
    for inst in _ALL_INSTANCES:
        try:
            inst.stop(fast=True)
        except Exception:
            pass


@pytest.fixture
def dovecot(request):
    """Factory fixture: inst = dovecot(plugin=True, settings={...}, ...)."""
    created = []

    def factory(plugin=False, settings=None, users=None, extra_conf="",
                protocol_pop3_extra="", strict_conf=True, start=True,
                storage="maildir"):
        try:
            inst = DovecotInstance(plugin=plugin, settings=settings, users=users,
                                   extra_conf=extra_conf,
                                   protocol_pop3_extra=protocol_pop3_extra,
                                   strict_conf=strict_conf, start=False,
                                   storage=storage)
        except HarnessError as e:
            pytest.fail(str(e), pytrace=False)
        created.append(inst)
        _ALL_INSTANCES.append(inst)
        if start:
            try:
                inst.start()
            except HarnessError as e:
                pytest.fail(str(e), pytrace=False)
        return inst

    yield factory

    rep = getattr(request.node, "rep_call", None)
    failed = (rep is None or rep.failed or
              getattr(request.node, "rep_setup", None) is not None
              and request.node.rep_setup.failed)
    errors = []
    san_reports = []
    graceful = bool(os.environ.get("P3R_GRACEFUL_STOP"))
    for inst in created:
        try:
            # SIGKILL the whole instance (the graceful SIGTERM path costs
            # ~1.1 s per instance); P3R_GRACEFUL_STOP=1 to use SIGTERM.
            inst.stop(fast=not graceful)
        except Exception as e:  # report, but stop the others too
            errors.append(f"{inst}: {e}")
        if inst.leftovers_killed:
            errors.append(f"{inst}: had to SIGKILL leftovers: "
                          f"{inst.leftovers_killed}")
        # P3R_SANITIZE=1: a report from our code fails the test
        reports = inst.sanitizer_reports() if h.SANITIZE else []
        san_reports += reports
        if failed or reports:
            print(f"\n--- {inst.log} (kept; port {inst.port}) ---\n"
                  f"{inst.log_text()[-8000:]}")
        elif not os.environ.get("P3R_KEEP"):
            inst.remove()
    if san_reports:
        pytest.fail(f"{len(san_reports)} sanitizer reports from our code, "
                    "the first ones:\n"
                    + "\n".join(r[:4000] for r in san_reports[:3]),
                    pytrace=False)
    if errors:
        pytest.fail("dovecot teardown: " + "; ".join(errors), pytrace=False)
    for inst in created:
        assert not inst.pids(), f"{inst}: processes left: {inst.pids()}"


@pytest.fixture
def dovecot_vanilla(dovecot):
    return dovecot(plugin=False)


@pytest.fixture
def dovecot_plugin(dovecot):
    return dovecot(plugin=True)


@pytest.fixture
def curl_pop3():
    return h.curl_pop3


@pytest.fixture
def wait_until():
    return _wait_until


@pytest.fixture
def make_message():
    return _make_message
