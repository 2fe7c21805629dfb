"""./quickstart demo: the README's first command.

`--check` starts the demo, runs the commands it prints (list, retrieve,
CAPA with EXPIRE before and after login, doveadm status, the per-user
override, and with a short window the removal at the next login), checks
that its local webhook sink got the matching events with verified
signatures (message.retrieved for the download, message.expired for the
strict user's removal) and stops.  Without --check it stays in the
foreground, printing the sink's event lines, until SIGINT/SIGTERM.
Either way nothing it started may be left: no process of its Dovecot
master's session, no directory, no listening port (Dovecot's, the sink's).

Other dovecot processes may come and go on the machine meanwhile (other
test instances), so "nothing left" is checked on the processes that are
new since the test began AND belong to the demo (its master's session, or
a command line naming its directory).
"""

import os
import re
import select
import signal
import subprocess
import time
from pathlib import Path

import pytest

import dovecot_harness as h

QUICKSTART = h.REPO_ROOT / "quickstart"


def dovecot_procs():
    """{pid: command line} of every process whose command line says dovecot
    (the master: `dovecot -F -c ...`, its children: `dovecot/<service>`)."""
    r = subprocess.run(["pgrep", "-af", "dovecot"], capture_output=True,
                       text=True)
    procs = {}
    for line in r.stdout.splitlines():
        pid, _, cmd = line.partition(" ")
        if int(pid) != os.getpid():
            procs[int(pid)] = cmd
    return procs


def session_of(pid):
    st = h._proc_stat(pid)
    return st[2] if st else None


def demo_leftovers(before, master_pid, demo_dir):
    """Processes that appeared since `before` and belong to the demo, plus
    any live process of the master's session."""
    left = {}
    for pid, cmd in dovecot_procs().items():
        if pid in before:
            continue
        if session_of(pid) == master_pid or str(demo_dir) in cmd:
            left[pid] = cmd
    for pid in h.session_pids(master_pid):
        left.setdefault(pid, h._cmdline(pid))
    return left


def master_pid_of(demo_dir):
    for name in os.listdir("/proc"):
        if name.isdigit() and f"{demo_dir}/dovecot.conf" in h._cmdline(int(name)):
            return int(name)
    return None


def event_line(type_, user, rest=""):
    """A line the sink prints for a verified event about user's uid 1."""
    return re.compile(rf"^\w+ +\d+ [\d:]+ webhook-sink: {re.escape(type_)} "
                      rf"user={user} uid=1 .*{rest}.*  signature OK$", re.M)


def sink_port(text):
    return int(re.search(r"^  webhooks\s+http://127\.0\.0\.1:(\d+)/hook",
                         text, re.M).group(1))


def assert_gone(before, master_pid, demo_dir, *ports):
    # the master's children exit as it stops; allow a moment for reaping
    try:
        h.wait_until(lambda: not demo_leftovers(before, master_pid, demo_dir),
                     timeout=5)
    except AssertionError:
        pass
    assert not demo_leftovers(before, master_pid, demo_dir), \
        "demo left processes running"
    assert not Path(demo_dir).exists(), f"{demo_dir} left behind"
    assert not Path(demo_dir).parent.exists(), \
        f"{Path(demo_dir).parent} left behind"
    for port in ports:
        assert not h.port_is_listening(port), f"port {port} still listening"


@pytest.mark.parametrize("extra", [[], ["--keep", "3s"]],
                         ids=["default", "short-window"])
def test_demo_check(extra):
    before = dovecot_procs()
    r = subprocess.run([str(QUICKSTART), "demo", "--check", *extra],
                       capture_output=True, text=True, timeout=180)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    m = re.search(r"demo --check: (\d+) passed, (\d+) failed", out)
    assert m and m.group(2) == "0" and int(m.group(1)) >= 10, out
    # the sink's checks ran and passed, and it printed verified events
    for check in (r"webhook: message\.retrieved user=demo uid=1 .*"
                  r"signature verified",
                  r"webhook: message\.expired user=strict uid=1 "
                  r"reason=downloaded .*signature verified",
                  r"the sink got \d+ events, every signature verified"):
        assert re.search(rf"^  ok    {check}$", out, re.M), out
    assert event_line("message.retrieved", "demo",
                      "first_retrieval=true").search(out), out
    assert event_line("message.expired", "strict",
                      "reason=downloaded").search(out), out
    assert "SIGNATURE INVALID" not in out, out
    assert not re.search(r"whsec_[A-Za-z0-9+/]{16}", out), "secret printed"
    if extra:
        assert "reason=keep-expired" in out, out
        assert event_line("message.expired", "demo",
                          "reason=keep-expired").search(out), out
    else:
        assert "skipped waiting 2m" in out, out
    demo_dir = re.search(r"^  files\s+(\S+)", out, re.M).group(1)
    port = int(re.search(r"on 127\.0\.0\.1:(\d+)", out).group(1))
    master = int(re.search(r"dovecot master pid (\d+)", out).group(1))
    assert "nothing left running" in out, out
    assert_gone(before, master, demo_dir, port, sink_port(out))


class Output:
    """Everything a process wrote to its stdout pipe so far."""

    def __init__(self, proc):
        self.proc = proc
        self.buf = b""

    def until(self, needle, timeout):
        """Read until `needle` (a string or a compiled regex) is in the
        output; return the whole text."""
        def seen():
            text = self.buf.decode(errors="replace")
            return (needle.search(text) if isinstance(needle, re.Pattern)
                    else needle in text)
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while not seen():
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                raise AssertionError(
                    f"{needle!r} not seen (rc={self.proc.poll()}):\n"
                    + self.buf.decode(errors="replace"))
            ready, _, _ = select.select([fd], [], [], min(left, 0.5))
            if ready:
                self.buf += os.read(fd, 65536)
        return self.buf.decode(errors="replace")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM],
                         ids=["SIGINT", "SIGTERM"])
def test_demo_foreground_stops_on_signal(sig):
    before = dovecot_procs()
    proc = subprocess.Popen([str(QUICKSTART), "demo"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        output = Output(proc)
        text = output.until("Ctrl-C stops", timeout=120)
        port = int(re.search(r"on 127\.0\.0\.1:(\d+)", text).group(1))
        demo_dir = re.search(r"^  files\s+(\S+)", text, re.M).group(1)
        assert re.search(rf"^  port\s+{port}$", text, re.M), text
        sink = sink_port(text)
        assert h.port_is_listening(sink), text
        master = master_pid_of(demo_dir)
        assert master, f"no dovecot master for {demo_dir}"
        assert h.port_is_listening(port)
        assert Path(demo_dir, "dovecot.log").is_file()

        # it serves what it says: 5 messages for demo/demo
        r = subprocess.run(["curl", "-sS", "--max-time", "10",
                            f"pop3://demo:demo@127.0.0.1:{port}/"],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0 and len(r.stdout.splitlines()) == 5, \
            r.stdout + r.stderr
        # the strict user's removal shows up on the demo's terminal
        r = subprocess.run(["curl", "-sS", "--max-time", "10",
                            f"pop3://strict:strict@127.0.0.1:{port}/1"],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        text = output.until("reason=downloaded", timeout=10)
        # ... and so do its webhooks, verified by the sink
        output.until(event_line("message.retrieved", "strict",
                                "first_retrieval=true"), timeout=15)
        text = output.until(event_line("message.expired", "strict",
                                       "reason=downloaded"), timeout=15)
        assert "SIGNATURE INVALID" not in text, text

        proc.send_signal(sig)
        rest, _ = proc.communicate(timeout=60)
        rest = rest.decode(errors="replace")
    finally:
        if proc.poll() is None:  # a check failed: let the demo clean up
            proc.terminate()
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    assert proc.returncode == 0, text + rest
    assert f"{signal.Signals(sig).name}: stopping" in rest, rest
    assert "nothing left running" in rest, rest
    assert_gone(before, master, demo_dir, port, sink)
