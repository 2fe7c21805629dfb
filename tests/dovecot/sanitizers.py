"""Sanitizer reports from a private Dovecot running our ASan + UBSan build
(P3R_SANITIZE=1, docs/testing.md "Sanitizers"); dovecot_harness.py wires
it into each instance.

Dovecot's binaries are not built with ASan, so its runtime is preloaded
into every process that may load our code (it must come first): the
master passes it to its children through import_environment, doveadm
gets it in its environment. ASan reports go to <instance>/sanitizer/, and
one whose stack names our code fails the test (conftest.py). UBSan (gcc's
libubsan ignores log_path next to ASan) writes to stderr: Dovecot logs its
children's, the harness keeps doveadm's; only our code is instrumented,
so every "runtime error" is ours. Leak checking stays off there: Dovecot
leaves its pools to exit, and LSan cannot stop the world in a process
that dropped privileges; the unit tests and the shim's run check leaks.
"""

import re
import subprocess
from pathlib import Path
from typing import Dict, List, Optional

REPO_ROOT = Path(__file__).resolve().parents[2]
DIR_NAME = "sanitizer"
# a frame in our modules or binaries, or in one of our sources
OURS = re.compile("|".join(
    [r"pop3[-_]retention"] + sorted(re.escape(c.name) for c in
                                    (REPO_ROOT / "plugin").rglob("*.c"))))
UBSAN_LINE = re.compile(r"(?m)^.*: runtime error: .*$")
_runtime: Dict[str, str] = {}


def runtime(so: Path) -> Optional[str]:
    """The ASan runtime that `so` links (from ldd), None if none."""
    if str(so) not in _runtime:
        r = subprocess.run(["ldd", str(so)], capture_output=True, text=True,
                           timeout=30)
        m = re.search(r"=>\s*(\S*libasan\.so\S*)", r.stdout)
        if not m:
            return None
        _runtime[str(so)] = m.group(1)
    return _runtime[str(so)]


def env(asan_runtime: str, san_dir: Path) -> Dict[str, str]:
    """Variables that make a process report into san_dir; fatal on any
    report, like the build (-fno-sanitize-recover=undefined)."""
    return {
        "LD_PRELOAD": asan_runtime,
        "ASAN_OPTIONS": f"log_path={san_dir}/asan:verify_asan_link_order=0"
                        ":detect_leaks=0",
        "UBSAN_OPTIONS": f"log_path={san_dir}/ubsan:print_stacktrace=1"
                         ":halt_on_error=1",
    }


def reports(san_dir: Path, log_text: str, log_name: str) -> List[str]:
    """The reports from our code ("where:\\ntext"): those in san_dir whose
    stack names our code, every UBSan one there, and UBSan's lines in the
    instance's log."""
    out = []
    for f in sorted(san_dir.glob("*")) if san_dir.is_dir() else []:
        text = f.read_text(errors="replace")
        if f.name.startswith("ubsan") or OURS.search(text):
            out.append(f"{f}:\n{text}")
    ub = UBSAN_LINE.findall(log_text)
    if ub:
        out.append(f"{log_name}:\n" + "\n".join(ub))
    return out
