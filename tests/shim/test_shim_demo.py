"""./quickstart demo --shim --check: what the README's quick start
promises, run as a new admin would."""

import subprocess
from pathlib import Path

QUICKSTART = Path(__file__).resolve().parents[2] / "quickstart"


def test_demo_shim_check():
    r = subprocess.run([str(QUICKSTART), "demo", "--shim", "--check",
                        "--keep", "5s"], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert "demo --shim --check: 11 passed, 0 failed" in r.stdout, r.stdout
    assert "FAIL" not in r.stdout
    assert "pop3-retentiond stopped, its directory removed" in r.stdout
