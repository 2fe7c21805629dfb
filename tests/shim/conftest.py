"""Fixtures of the shim's tests: `shim` is a factory of ShimInstance
(stopped and removed after the test; kept with its log on failure)."""

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "dovecot"))

from shim_harness import HarnessError, ShimInstance  # noqa: E402
from dovecot_harness import make_message as _make_message  # noqa: E402


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture
def shim(request):
    created = []

    def factory(**kw):
        try:
            inst = ShimInstance(**kw)
        except HarnessError as e:
            pytest.fail(str(e), pytrace=False)
        created.append(inst)
        return inst

    yield factory
    rep = getattr(request.node, "rep_call", None)
    failed = rep is None or rep.failed
    reports = []
    for inst in created:
        inst.stop()
        reports += inst.sanitizer_reports()
        if failed or reports:
            print(f"\n--- {inst.log} ---\n{inst.log_text()[-8000:]}")
        elif not os.environ.get("P3R_KEEP"):
            inst.remove()
    if reports:
        pytest.fail("sanitizer reports:\n" + "\n".join(reports)[-8000:],
                    pytrace=False)


@pytest.fixture
def make_message():
    return _make_message
