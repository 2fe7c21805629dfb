"""Fault injection (issue 19): a seeded campaign of POP3 sessions whose
pop3 process is killed with SIGKILL mid-RETR, after a RETR, after a
DELE or around the QUIT commit, of kill -9s of the delivery service
and of receiver outages, against a private Dovecot with the
plugin, its service and a real receiver (fault_campaign.py says what
is checked).

Short mode (the test command): P3R_FAULT_ITERATIONS, default 30.
Long mode, documented in docs/testing.md "Fault injection":
    P3R_FAULT_ITERATIONS=300 P3R_FAULT_SEED=1 \\
        /usr/bin/python3 -m pytest -q -s tests/dovecot/test_faults.py
A failing run prints the command that replays its seed."""

import os
import random

import pytest

import fault_campaign as fc
from test_webhooks import webhooks  # noqa: F401 (fixture)

ITERATIONS = int(os.environ.get("P3R_FAULT_ITERATIONS", "30"))
SEED = int(os.environ.get("P3R_FAULT_SEED", "19"))


def rerun(seed, iterations):
    return (f"re-run: P3R_FAULT_SEED={seed} "
            f"P3R_FAULT_ITERATIONS={iterations} /usr/bin/python3 -m "
            "pytest -q -s tests/dovecot/test_faults.py")


def test_fault_campaign_loses_nothing(webhooks):
    s = webhooks(schedule=fc.SCHEDULE, users=fc.USERS)
    camp = fc.Campaign(s, random.Random(SEED), SEED)
    try:
        for _ in range(ITERATIONS):
            camp.iteration()
        camp.finish()
    except BaseException:
        print("\n".join(camp.history[-20:]))
        print(rerun(SEED, ITERATIONS))
        raise
    bad = camp.violations()
    figures = camp.figures()
    print(f"\nfault campaign: {figures}")
    if bad:
        print("\n".join(camp.history))
        pytest.fail(f"{len(bad)} invariant(s) broken:\n" +
                    "\n".join(bad[:40]) + "\n" + rerun(SEED, ITERATIONS),
                    pytrace=False)
    assert sum(n for k, n in figures["kills"].items()
               if "had exited" not in k) > 0
    s.check(duplicates_ok=True)
