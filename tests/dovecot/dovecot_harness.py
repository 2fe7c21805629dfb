"""Private Dovecot 2.3 instances for the pop3-retention integration tests.

Everything here is plain Python (no pytest dependency); conftest.py wraps it
into fixtures.  See conftest.py for the fixture API summary.

Layout of one instance (kept short: unix sockets live in base_dir and are
limited to ~108 bytes):

    /tmp/p3r/<8 chars>/            0755, root
        dovecot.conf               the generated config
        dovecot.log                log_path
        master.out                 stdout/stderr of `dovecot -F` (early errors)
        users                      passwd-file (passdb + userdb), 0644
        run/                       base_dir: a symlink to /dev/shm/p3r-run.*
        state/                     state_dir
        home/<user>/Maildir/       owned by 65534:65534 (storage="maildir";
                                   mdbox/, sdbox/ or mail/ for the others,
                                   .p3r-stage/ the import source for those)
        modules/                   mail_plugin_dir (plugin=True): symlinks
        login-modules/             login_plugin_dir (plugin=True)
        doveadm-modules/           bind-mounted over the doveadm module dir
        doveadm-stock/             mount point for the stock doveadm modules
        sanitizer/                 ASan reports (P3R_SANITIZE=1, 1777)
"""

from __future__ import annotations

import atexit
import itertools
import os
import poplib
import pwd
import random
import shutil
import tempfile
import signal
import socket
import string
import subprocess
import time
from collections import namedtuple
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Union

import dovecot_conf
import sanitizers

REPO_ROOT = Path(__file__).resolve().parents[2]
# The build whose modules and service the tests load: the checkout, or
# another tree, e.g. the sanitized one (tests/build-sanitized.sh) with
# P3R_BUILD_DIR=build-sanitized P3R_SANITIZE=1 (docs/testing.md).
BUILD_ROOT = Path(os.environ.get("P3R_BUILD_DIR") or REPO_ROOT).resolve()
SANITIZE = os.environ.get("P3R_SANITIZE") == "1"
PLUGIN_LIBS = BUILD_ROOT / "plugin" / "dovecot" / ".libs"
SERVICE_BIN = BUILD_ROOT / "plugin" / "dovecot" / "pop3-retention"
PLUGIN_SO = PLUGIN_LIBS / "lib20_pop3_retention_plugin.so"
LOGIN_PLUGIN_SO = PLUGIN_LIBS / "lib20_pop3_retention_login_plugin.so"
DOVEADM_PLUGIN_SO = PLUGIN_LIBS / "lib10_doveadm_pop3_retention_plugin.so"

STOCK_MODULE_DIR = Path("/usr/lib/dovecot/modules")
STOCK_DOVEADM_DIR = STOCK_MODULE_DIR / "doveadm"

INSTANCE_ROOT = Path(os.environ.get("P3R_ROOT", "/tmp/p3r"))
HOST = "127.0.0.1"
MAIL_UID = 65534
MAIL_GID = 65534
DEFAULT_PASSWORD = "pass"
DEFAULT_USERS = ("alice", "bob")
# The delivery service's own user (docs/dovecot.md): not
# default_internal_user, which auth, dict, stats... share.
SERVICE_USER = "pop3-retention"


class HarnessError(RuntimeError):
    """Raised when the harness cannot set up or drive an instance."""


# ---------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------

def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_until(predicate: Callable[[], object], timeout: float = 10.0,
               interval: float = 0.05, message: Optional[str] = None):
    """Poll predicate() until it returns a truthy value; return that value.

    Raises AssertionError (with `message`, or a default) on timeout.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(message or
                                 f"condition not met within {timeout}s: {predicate!r}")
        time.sleep(interval)


def port_is_listening(port: int, host: str = HOST) -> bool:
    """True if /proc/net/tcp has a LISTEN socket on host:port (no connect)."""
    want = "%08X:%04X" % (int.from_bytes(socket.inet_aton(host), "little"), port)
    try:
        with open("/proc/net/tcp") as f:
            next(f)
            for line in f:
                parts = line.split()
                if parts[1] == want and parts[3] == "0A":
                    return True
    except OSError:
        pass
    return False


def _proc_stat(pid: int):
    """(state, ppid, sid, starttime) from /proc/<pid>/stat, or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return None
    rest = data[data.rindex(")") + 2:].split()
    # rest[0]=state rest[1]=ppid rest[2]=pgrp rest[3]=session ... rest[19]=starttime
    return rest[0], int(rest[1]), int(rest[3]), int(rest[19])


def session_pids(sid: int) -> List[int]:
    """Live (non-zombie) pids whose session id is `sid`."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        st = _proc_stat(int(name))
        if st and st[2] == sid and st[0] not in ("Z", "X"):
            out.append(int(name))
    return out


def session_zombies(sid: int) -> List[int]:
    """Zombie pids of session `sid` (dead, not yet reaped by their parent)."""
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = _proc_stat(int(name))
            if st and st[2] == sid and st[0] == "Z":
                out.append(int(name))
    return out


_subreaper = False


def become_subreaper() -> None:
    """prctl(PR_SET_CHILD_SUBREAPER): orphaned dovecot children (e.g. after
    the master is SIGKILLed) get re-parented to this process instead of
    pid 1, so stop() can reap them itself and leave no <defunct> entries."""
    global _subreaper
    if _subreaper:
        return
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(36, 1, 0, 0, 0) == 0:  # PR_SET_CHILD_SUBREAPER
        _subreaper = True


def reap_session(sid: int) -> None:
    """waitpid() every zombie of session `sid` that is our child, except the
    session leader itself (the master; its Popen object reaps it)."""
    me = os.getpid()
    for pid in session_zombies(sid):
        if pid == sid:
            continue
        st = _proc_stat(pid)
        if st and st[1] == me:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


def _ensure_world_searchable(path: Path) -> None:
    """Make `path` and every parent up to / at least o+x (pitfall 2)."""
    p = path
    while True:
        st = p.stat()
        if not st.st_mode & 0o001:
            os.chmod(p, (st.st_mode & 0o7777) | 0o055)
        if p.parent == p:
            break
        p = p.parent


def _readable_by_others(path: Path) -> bool:
    """True if `path` is o+r and every parent dir is o+x (so uid 65534 can
    read it, assuming root ownership of the chain)."""
    path = path.resolve()
    if not os.stat(path).st_mode & 0o004:
        return False
    for parent in path.parents:
        if not os.stat(parent).st_mode & 0o001:
            return False
    return True


def ensure_service_user() -> "pwd.struct_passwd":
    """The delivery service's user, created as a system user (no home,
    no shell) if this host has none yet. Concurrent callers may race on
    /etc/passwd: retry until the user exists."""
    for _ in range(50):
        try:
            return pwd.getpwnam(SERVICE_USER)
        except KeyError:
            pass
        subprocess.run(["useradd", "--system", "--user-group",
                        "--no-create-home", "--home-dir", "/nonexistent",
                        "--shell", "/usr/sbin/nologin", SERVICE_USER],
                       capture_output=True, timeout=30)
        time.sleep(0.1)
    raise HarnessError(f"cannot create the system user {SERVICE_USER}")


def _chown_mail(path: Union[str, Path]) -> None:
    os.chown(path, MAIL_UID, MAIL_GID)


_msg_counter = itertools.count(1)


def make_message(subject: str = "test message", size_kb: Optional[float] = None,
                 body: Union[str, bytes, None] = None, crlf: bool = False,
                 msgid: Optional[str] = None, sender: str = "sender@example.com",
                 to: str = "alice@example.com", date: Optional[str] = None,
                 headers: Optional[Dict[str, str]] = None) -> bytes:
    """Build an RFC 5322 message (bytes) with Date, From, To, Subject, Message-ID.

    body: text of the body (line endings are normalised to the chosen one).
    size_kb: if given, the body is padded so the whole message is exactly
      int(size_kb*1024) bytes (in its own line-ending form), if it is not
      already larger.
    crlf: use CRLF line endings (default LF, as on-disk Maildir usually is).
    """
    nl = b"\r\n" if crlf else b"\n"
    n = next(_msg_counter)
    if msgid is None:
        msgid = "<p3r.%d.%d.%s@test.invalid>" % (
            os.getpid(), n, "".join(random.choices(string.ascii_lowercase, k=8)))
    if date is None:
        date = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime())
    hdrs = [("Date", date), ("From", sender), ("To", to),
            ("Subject", subject), ("Message-ID", msgid)]
    if headers:
        hdrs += list(headers.items())
    head = b"".join(f"{k}: {v}".encode() + nl for k, v in hdrs)
    if body is None:
        body = f"Body of message {n}: {subject}\n"
    if isinstance(body, str):
        body = body.encode()
    body_lines = body.replace(b"\r\n", b"\n").split(b"\n")
    if body_lines and body_lines[-1] == b"":
        body_lines.pop()
    msg = head + nl + b"".join(l + nl for l in body_lines)
    if size_kb is not None:
        target = int(size_kb * 1024)
        fill = b"x" * 74
        while len(msg) + len(fill) + len(nl) <= target:
            msg += fill + nl
        remaining = target - len(msg)
        if remaining > len(nl):
            msg += b"y" * (remaining - len(nl)) + nl
        elif remaining > 0:
            # pad with spaces on the last body line to hit the size exactly
            msg = msg[:-len(nl)] + b" " * remaining + nl
    return msg



# ---------------------------------------------------------------------------
# helpers of the retention tests (both hosts)
# ---------------------------------------------------------------------------

def deliver(inst, user: str = "alice", n: int = 3, **kw) -> List[str]:
    """n messages "message 0".. into user's INBOX; their base names
    (GUIDs on other storages than Maildir)."""
    md = inst.mailbox(user) if hasattr(inst, "mailbox") else inst.maildir(user)
    return [md.deliver(make_message(f"message {i}"), **kw) for i in range(n)]


def session_end_logged(inst, count: int) -> None:
    """Both hosts log 'session end:' when a session is over (Dovecot's
    pop3 when it frees the mailbox): after that its changes are on disk."""
    wait_until(lambda: inst.log_text().count("session end:") >= count,
               timeout=10, message="session end not logged:\n"
               + inst.log_text()[-3000:])


def big_message(subject: str, mbytes: int) -> bytes:
    line = b"x" * 74 + b"\n"
    return make_message(subject, body=line * (mbytes * 1024 * 1024 // 75))


def drop(p: poplib.POP3) -> None:
    """Lose a poplib connection without QUIT."""
    p.sock.shutdown(socket.SHUT_RDWR)
    p.file.close()
    p.sock.close()

# ---------------------------------------------------------------------------
# Maildir
# ---------------------------------------------------------------------------

MaildirFile = namedtuple("MaildirFile", "base flags subdir name path")
MaildirFile.__doc__ = """One message file: base name (before ':'), maildir flags
(the letters after ':2,', '' for new/ or no info), subdir ('new' or 'cur'),
file name, full path."""


class Maildir:
    """Test-side view of ~<user>/Maildir (INBOX only)."""

    def __init__(self, home: Path):
        self.home = Path(home)
        self.path = self.home / "Maildir"
        for d in (self.home, self.path, self.path / "cur", self.path / "new",
                  self.path / "tmp"):
            d.mkdir(mode=0o700, exist_ok=True)
            _chown_mail(d)

    def deliver(self, message: Union[str, bytes], mtime: Optional[float] = None,
                name: Optional[str] = None) -> str:
        """Write a message into new/ (via tmp/ + rename), owned by 65534.

        mtime: arrival time to set (atime and mtime) - back-date with
        time.time() - N*86400.  Returns the file base name.
        """
        if isinstance(message, str):
            message = message.encode()
        when = time.time() if mtime is None else mtime
        if name is None:
            name = "%d.M%06dP%dQ%dR%s.p3rtest" % (
                int(when), int((when % 1) * 1e6), os.getpid(), next(_msg_counter),
                "".join(random.choices("0123456789abcdef", k=8)))
        tmp = self.path / "tmp" / name
        with open(tmp, "wb") as f:
            f.write(message)
        os.chmod(tmp, 0o600)
        _chown_mail(tmp)
        if mtime is not None:
            os.utime(tmp, (mtime, mtime))
        os.rename(tmp, self.path / "new" / name)
        return name

    def files(self) -> List[MaildirFile]:
        """All message files in new/ and cur/, sorted by name."""
        out = []
        for sub in ("new", "cur"):
            d = self.path / sub
            if not d.is_dir():
                continue
            for name in os.listdir(d):
                if name.startswith("."):
                    continue
                base, sep, info = name.partition(":")
                flags = info[2:] if info.startswith("2,") else ""
                out.append(MaildirFile(base, flags, sub, name, d / name))
        out.sort(key=lambda f: f.name)
        return out

    def bases(self) -> List[str]:
        return [f.base for f in self.files()]

    def count(self) -> int:
        return len(self.files())

    def find(self, base: str) -> Optional[MaildirFile]:
        for f in self.files():
            if f.base == base:
                return f
        return None

    def exists(self, base: str) -> bool:
        return self.find(base) is not None

    def read(self, base: str) -> bytes:
        f = self.find(base)
        if f is None:
            raise FileNotFoundError(base)
        return f.path.read_bytes()


# ---------------------------------------------------------------------------
# other mail storages
# ---------------------------------------------------------------------------

# mail_location per storage (DovecotInstance(storage=...)); every root
# is in the user's home, so each instance's mail stays in its own dir.
# mail_storages.DoveadmMailbox inspects the ones other than Maildir.
MAIL_LOCATIONS = {
    "maildir": "maildir:~/Maildir",
    "mdbox": "mdbox:~/mdbox",
    "sdbox": "sdbox:~/sdbox",
    "mbox": "mbox:~/mail:INBOX=~/mail/inbox",
}


# ---------------------------------------------------------------------------
# raw POP3 socket
# ---------------------------------------------------------------------------

class RawPOP3:
    """Unbuffered-ish raw POP3 client: send arbitrary (pipelined) bytes and
    read replies line by line.  Lines are returned without CRLF."""

    def __init__(self, port: int, host: str = HOST, timeout: float = 10.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.timeout = timeout
        self.buf = b""
        self.greeting = self.readline()

    # -- sending
    def send(self, data: Union[str, bytes]) -> None:
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def sendline(self, line: Union[str, bytes]) -> None:
        if isinstance(line, str):
            line = line.encode()
        self.send(line + b"\r\n")

    # -- receiving
    def _fill(self, timeout: Optional[float]) -> bool:
        self.sock.settimeout(self.timeout if timeout is None else timeout)
        data = self.sock.recv(65536)
        if not data:
            return False
        self.buf += data
        return True

    def readline(self, timeout: Optional[float] = None) -> bytes:
        while b"\n" not in self.buf:
            if not self._fill(timeout):
                raise EOFError("connection closed; partial=%r" % self.buf)
        line, _, self.buf = self.buf.partition(b"\n")
        return line[:-1] if line.endswith(b"\r") else line

    def read_multiline(self, timeout: Optional[float] = None) -> List[bytes]:
        """Read a multi-line body up to the '.' line, dot-unstuffed."""
        lines = []
        while True:
            line = self.readline(timeout)
            if line == b".":
                return lines
            if line.startswith(b".."):
                line = line[1:]
            lines.append(line)

    def read_response(self, multiline: bool = False,
                      timeout: Optional[float] = None):
        """Read a status line; if multiline and it is +OK also read the body.
        Returns (status_line, body_lines) (body_lines is [] for single-line)."""
        status = self.readline(timeout)
        if multiline and status.startswith(b"+OK"):
            return status, self.read_multiline(timeout)
        return status, []

    def command(self, cmd: Union[str, bytes], multiline: bool = False):
        self.sendline(cmd)
        return self.read_response(multiline)

    def login(self, user: str, password: str = DEFAULT_PASSWORD) -> bytes:
        st, _ = self.command(f"USER {user}")
        if not st.startswith(b"+OK"):
            raise HarnessError(f"USER {user}: {st!r}")
        st, _ = self.command(f"PASS {password}")
        if not st.startswith(b"+OK"):
            raise HarnessError(f"PASS for {user}: {st!r}")
        return st

    def read_available(self, timeout: float = 0.5) -> bytes:
        """Return everything buffered + whatever arrives within `timeout`."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0 or not self._fill(left):
                    break
        except (socket.timeout, TimeoutError):
            pass
        data, self.buf = self.buf, b""
        return data

    def read_until_close(self, timeout: Optional[float] = None) -> bytes:
        while self._fill(timeout):
            pass
        data, self.buf = self.buf, b""
        return data

    # -- closing
    def close(self) -> None:
        """Close the socket without QUIT (a 'dropped' connection)."""
        try:
            self.sock.close()
        except OSError:
            pass

    def abort(self) -> None:
        """Reset the connection (SO_LINGER 0 -> RST) without QUIT."""
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                 b"\x01\x00\x00\x00\x00\x00\x00\x00")
        except OSError:
            pass
        self.close()

    def quit(self) -> bytes:
        st, _ = self.command("QUIT")
        self.close()
        return st

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---------------------------------------------------------------------------
# the instance
# ---------------------------------------------------------------------------

def _new_instance_dir() -> Path:
    INSTANCE_ROOT.mkdir(parents=True, exist_ok=True)
    os.chmod(INSTANCE_ROOT, 0o755)
    _ensure_world_searchable(INSTANCE_ROOT)
    alphabet = string.ascii_lowercase + string.digits
    for _ in range(100):
        d = INSTANCE_ROOT / "".join(random.choices(alphabet, k=8))
        try:
            d.mkdir(mode=0o755)
        except FileExistsError:
            continue
        os.chmod(d, 0o755)
        return d
    raise HarnessError(f"cannot create an instance dir under {INSTANCE_ROOT}")


# base_dirs made in /dev/shm by this process: removed at exit whoever
# removed (or kept) the instance directories
_SHM_DIRS: List[Path] = []


@atexit.register
def _remove_shm_dirs() -> None:
    for d in _SHM_DIRS:
        shutil.rmtree(d, ignore_errors=True)


class POP3Clients:
    """Real clients of a server on HOST:self.port (its connections are
    kept in self._conns, closed when the server stops)."""

    def pop3(self, user: str, password: str = DEFAULT_PASSWORD,
             timeout: float = 10.0) -> poplib.POP3:
        p = poplib.POP3(HOST, self.port, timeout=timeout)
        self._conns.append(p)
        p.user(user)
        p.pass_(password)
        return p

    def raw(self, user: Optional[str] = None, password: str = DEFAULT_PASSWORD,
            timeout: float = 10.0) -> RawPOP3:
        c = RawPOP3(self.port, timeout=timeout)
        self._conns.append(c)
        if user is not None:
            c.login(user, password)
        return c


class DovecotInstance(POP3Clients):
    """One private Dovecot master.  Create via the `dovecot` fixture."""

    def __init__(self, plugin: bool = False, settings: Optional[Dict] = None,
                 users: Union[Dict[str, Dict], Iterable[str], None] = None,
                 extra_conf: str = "", protocol_pop3_extra: str = "",
                 strict_conf: bool = True, start: bool = True,
                 storage: str = "maildir",
                 home_root: Optional[Path] = None):
        """home_root: where the users' homes are (default: home/ in the
        instance dir); another instance's, to run a second server on the
        same mail (tests/migration)."""
        self.plugin = plugin
        if storage not in MAIL_LOCATIONS:
            raise HarnessError(f"unknown storage {storage!r}")
        self.storage = storage
        self.mail_location = MAIL_LOCATIONS[storage]
        self.settings = dict(settings or {})
        if users is None:
            users = {u: {} for u in DEFAULT_USERS}
        elif not isinstance(users, dict):
            users = {u: {} for u in users}
        self.users = {k: dict(v or {}) for k, v in users.items()}
        self.extra_conf = extra_conf
        self.protocol_pop3_extra = protocol_pop3_extra
        self.strict_conf = strict_conf

        if plugin and not PLUGIN_SO.is_file():
            raise HarnessError(
                f"plugin=True but the built plugin is missing: {PLUGIN_SO}\n"
                "Build it first (./configure && make in the repo root).")

        self.dir = _new_instance_dir()
        self.conf = self.dir / "dovecot.conf"
        self.log = self.dir / "dovecot.log"
        self.master_out = self.dir / "master.out"
        self.base_dir = self.dir / "run"
        self.state_dir = self.dir / "state"
        self.users_file = self.dir / "users"
        self.home_root = Path(home_root) if home_root else self.dir / "home"
        self.module_dir = self.dir / "modules"
        self.login_module_dir = self.dir / "login-modules"
        self.san_dir = self.dir / sanitizers.DIR_NAME
        self.port = free_port()
        self.proc: Optional[subprocess.Popen] = None
        self.master_pid: Optional[int] = None
        self._conns: List[object] = []
        self._maildirs: Dict[str, object] = {}
        self.leftovers_killed: List[str] = []
        self.slow_stops: List[List[str]] = []

        # base_dir in memory, as on Debian (/run/dovecot is a tmpfs):
        # run/ is a symlink to it (Dovecot accepts a symlinked base_dir)
        self.base_dir_target: Optional[Path] = None
        if Path("/dev/shm").is_dir():
            self.base_dir_target = Path(tempfile.mkdtemp(
                prefix="p3r-run.", dir="/dev/shm"))
            _SHM_DIRS.append(self.base_dir_target)
            os.chmod(self.base_dir_target, 0o755)
            os.symlink(self.base_dir_target, self.base_dir)
        for d in (self.base_dir, self.state_dir, self.home_root):
            if not d.exists():
                d.mkdir(mode=0o755)
            os.chmod(d, 0o755)
        self._write_users()
        if SANITIZE:
            # every process writes there, as whichever user it runs as
            self.san_dir.mkdir()
            os.chmod(self.san_dir, 0o1777)
        if plugin:
            self._make_module_dirs()
        self._write_conf()
        if start:
            self.start()

    # -- files ------------------------------------------------------------
    def home(self, user: str) -> Path:
        return self.home_root / user

    def _write_users(self) -> None:
        lines = []
        for name, fields in self.users.items():
            fields = dict(fields)
            password = fields.pop("password", DEFAULT_PASSWORD)
            extras = []
            for k, v in fields.items():
                key = k if k.startswith(("userdb_", "passdb_")) else "userdb_" + k
                if key.startswith("passdb_"):
                    key = key[len("passdb_"):]   # passdb extra field, unprefixed
                extras.append(f"{key}={'' if v is None else v}")
            home = self.home(name)
            home.mkdir(mode=0o700, exist_ok=True)
            _chown_mail(home)
            lines.append(f"{name}:{password}:{MAIL_UID}:{MAIL_GID}::{home}::"
                         + " ".join(extras))
        self.users_file.write_text("\n".join(lines) + "\n")
        os.chmod(self.users_file, 0o644)

    def _make_module_dirs(self) -> None:
        self.module_dir.mkdir(mode=0o755)
        for so in sorted(STOCK_MODULE_DIR.glob("*.so")):
            if so.name != PLUGIN_SO.name:
                (self.module_dir / so.name).symlink_to(so)
        self._link_built(PLUGIN_SO, self.module_dir)
        self.login_module_dir.mkdir(mode=0o755)
        if LOGIN_PLUGIN_SO.is_file():
            self._link_built(LOGIN_PLUGIN_SO, self.login_module_dir)

    def _link_built(self, so: Path, dest_dir: Path) -> None:
        """Symlink a built .so into dest_dir; copy it instead if uid 65534
        (pop3) / dovenull (login) could not read it through the symlink."""
        dest = dest_dir / so.name
        if _readable_by_others(so):
            dest.symlink_to(so.resolve())
        else:
            shutil.copy2(so, dest)
            os.chmod(dest, 0o755)

    def _write_conf(self) -> None:
        self.conf.write_text(dovecot_conf.write(self) + "\n")
        os.chmod(self.conf, 0o644)

    def _sanitizer_conf(self) -> List[str]:
        """P3R_SANITIZE=1: the runtime and its options for every process
        the master starts; no address-space limit (ASan reserves terabytes
        of shadow memory) and no chroot for pop3-login (its reports could
        not reach san_dir)."""
        if not SANITIZE:
            return []
        env = self._sanitizer_env()
        return ["import_environment = $import_environment "
                + " ".join(f"{k}={v}" for k, v in env.items()),
                "default_vsz_limit = 0",
                "service pop3-login {", "  chroot =", "}"]

    def _sanitizer_env(self) -> Dict[str, str]:
        # from the build, even where a test stands in for PLUGIN_SO
        so = PLUGIN_LIBS / "lib20_pop3_retention_plugin.so"
        rt = sanitizers.runtime(so)
        if rt is None:
            raise HarnessError(
                f"P3R_SANITIZE=1 but {so} does not link ASan: "
                "build with tests/build-sanitized.sh and set "
                "P3R_BUILD_DIR=<repo>/build-sanitized")
        return sanitizers.env(rt, self.san_dir)

    def sanitizer_reports(self) -> List[str]:
        """P3R_SANITIZE=1: the sanitizer reports from our code so far."""
        return sanitizers.reports(self.san_dir, self.log_text(),
                                  str(self.log))

    def _keep_ubsan(self, r: subprocess.CompletedProcess
                    ) -> subprocess.CompletedProcess:
        """doveadm's UBSan reports (on its stderr) into san_dir."""
        err = r.stderr if isinstance(r.stderr, str) else \
            (r.stderr or b"").decode(errors="replace")
        if SANITIZE and sanitizers.UBSAN_LINE.search(err):
            with tempfile.NamedTemporaryFile(
                    "w", dir=self.san_dir, prefix="ubsan-doveadm.",
                    delete=False) as f:
                f.write(err)
        return r

    def doveadm_env(self, env: Optional[Dict[str, str]] = None
                    ) -> Optional[Dict[str, str]]:
        """The environment for a doveadm that may load our plugin: `env`
        (None: this process's) plus, with P3R_SANITIZE=1, the runtime
        first in LD_PRELOAD and the report options."""
        if not SANITIZE:
            return env
        out = dict(os.environ if env is None else env)
        san = self._sanitizer_env()
        if out.get("LD_PRELOAD"):
            san["LD_PRELOAD"] += ":" + out["LD_PRELOAD"]
        out.update(san)
        return out

    def doveconf(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*self._wrap(), "doveconf", "-c", str(self.conf),
                               *args], capture_output=True, text=True,
                              timeout=30)

    def _settings_mounts(self) -> List[tuple]:
        """Dovecot 2.4 reads plugins' settings declarations from
        <moduledir>/settings only: (src, dst) bind mounts that put our
        built settings module there, next to the stock ones (none on 2.3
        or before the module is built)."""
        if not dovecot_conf.is_24():
            return []
        built = dovecot_conf.built_settings_modules(PLUGIN_LIBS)
        if not built:
            return []
        stock_dir = dovecot_conf.settings_module_dir(STOCK_MODULE_DIR)
        mods = self.dir / "settings-modules"
        stock = self.dir / "settings-stock"
        if not mods.is_dir():
            stock.mkdir(mode=0o755, exist_ok=True)
            tmp = self.dir / "settings-modules.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(mode=0o755)
            names = {so.name for so in built}
            for so in sorted(stock_dir.glob("*.so")):
                if so.name not in names:
                    (tmp / so.name).symlink_to(stock / so.name)
            for so in built:
                self._link_built(so, tmp)
            tmp.rename(mods)
        return [(stock_dir, stock), (mods, stock_dir)]

    def _wrap(self) -> List[str]:
        """argv prefix for dovecot, doveconf and doveadm (see
        _settings_mounts)."""
        return dovecot_conf.wrap(self._settings_mounts())

    def validate(self) -> str:
        r = self.doveconf("-n")
        if r.returncode != 0:
            raise HarnessError(f"doveconf -n failed (rc={r.returncode}):\n"
                               f"{r.stderr}{r.stdout}\n--- {self.conf} ---\n"
                               f"{self.conf.read_text()}")
        if self.strict_conf and "arning" in r.stderr:
            raise HarnessError(f"doveconf -n warnings (strict_conf=True):\n"
                               f"{r.stderr}\n--- {self.conf} ---\n"
                               f"{self.conf.read_text()}")
        return r.stdout

    # -- lifecycle --------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        if self.running:
            raise HarnessError("instance already running")
        become_subreaper()
        for attempt in range(3):
            self.validate()
            log_off = self.log.stat().st_size if self.log.exists() else 0
            out = open(self.master_out, "ab")
            try:
                self.proc = subprocess.Popen(
                    [*self._wrap(), "dovecot", "-F", "-c", str(self.conf)],
                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                    start_new_session=True, cwd=str(self.dir))
            finally:
                out.close()
            self.master_pid = self.proc.pid
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                if self._ready(log_off):
                    return
                time.sleep(0.02)
            new_log = self._read(self.log)[log_off:]
            if self.proc.poll() is not None and "Address already in use" in (
                    new_log + self._read(self.master_out)) and attempt < 2:
                self._cleanup_session()
                self.port = free_port()
                self._write_conf()
                continue
            rc = self.proc.poll()
            self.stop()
            raise HarnessError(
                f"dovecot did not listen on {HOST}:{self.port} within "
                f"{timeout}s (master rc={rc})\n--- master.out ---\n"
                f"{self._read(self.master_out)}\n--- {self.log} ---\n{new_log}")

    def _ready(self, log_off: int) -> bool:
        """Started = the listener is bound, master.pid holds our pid (the
        master writes it after installing its signal handlers - a SIGTERM
        before that kills it without any cleanup) and the master's
        'starting up' line went through the log process."""
        if not port_is_listening(self.port):
            return False
        try:
            pid = int((self.base_dir / "master.pid").read_text().strip() or 0)
        except (OSError, ValueError):
            return False
        if pid != self.proc.pid:
            return False
        return "starting up" in self._read(self.log)[log_off:]

    def stop(self, timeout: float = 10.0, fast: bool = False,
             term_wait: float = 3.0) -> None:
        """Stop the instance; idempotent.  Afterwards no process of its
        session (master + all children) is left.

        Graceful (default): SIGTERM the master, which shuts its children down
        (~1.1 s in 2.3.19, up to ~6 s when a child is slow to react); after
        `term_wait` s the rest of the session is SIGKILLed (noted in
        self.slow_stops).
        fast=True: SIGKILL every process of the instance at once (used at
        fixture teardown; in-flight sessions get no chance to finish, so do
        not use it where the shutdown behaviour matters)."""
        for c in self._conns:
            try:
                c.close() if isinstance(c, RawPOP3) else c.sock.close()
            except Exception:
                pass
        self._conns.clear()
        if self.proc is None:
            return
        if fast:
            self._kill_session()
            self.proc.wait(timeout)
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(term_wait)
            except subprocess.TimeoutExpired:
                self.slow_stops.append(
                    [f"{p} {_cmdline(p)}" for p in session_pids(self.master_pid)])
                self._kill_session()
                self.proc.wait(timeout)
        self._cleanup_session()
        self.proc = None

    def _session_gone(self) -> bool:
        """No live process of the session left; zombies that are our
        children (we are the subreaper) are reaped on the way."""
        reap_session(self.master_pid)
        return not session_pids(self.master_pid)

    def _kill_session(self, timeout: float = 5) -> None:
        """SIGKILL every live process of the session until none is left."""
        sid = self.master_pid

        def all_dead():
            reap_session(sid)
            pids = session_pids(sid)
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            return not pids
        wait_until(all_dead, timeout=timeout, interval=0.02,
                   message=f"processes of session {sid} survive SIGKILL")

    def _cleanup_session(self, grace: float = 5) -> None:
        """Wait up to `grace` s for the session to empty (after the master
        exited); SIGKILL and record whatever is still there."""
        sid = self.master_pid
        if sid is None:
            return
        try:
            wait_until(self._session_gone, timeout=grace, interval=0.02)
        except AssertionError:
            for pid in session_pids(sid):
                self.leftovers_killed.append(f"{pid} {_cmdline(pid)}")
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            wait_until(self._session_gone, timeout=5,
                       message=f"processes of session {sid} survive SIGKILL")
        # best effort: give reaping a moment so no <defunct> entry remains
        if _subreaper:
            try:
                wait_until(lambda: (reap_session(sid),
                                    not set(session_zombies(sid)) - {sid})[1],
                           timeout=0.5, interval=0.02)
            except AssertionError:
                pass

    def restart(self, fast: bool = False) -> None:
        self.stop(fast=fast)
        self.start()

    def reconfigure(self, settings: Optional[Dict] = None,
                    extra_conf: Optional[str] = None,
                    protocol_pop3_extra: Optional[str] = None,
                    users: Optional[Dict[str, Dict]] = None,
                    restart: bool = True) -> None:
        """Replace the given parts of the config (None = keep), rewrite the
        files and restart the instance if it was running."""
        if settings is not None:
            self.settings = dict(settings)
        if extra_conf is not None:
            self.extra_conf = extra_conf
        if protocol_pop3_extra is not None:
            self.protocol_pop3_extra = protocol_pop3_extra
        if users is not None:
            self.users = {k: dict(v or {}) for k, v in users.items()}
            self._write_users()
        self._write_conf()
        if restart and self.running:
            self.restart()
        else:
            self.validate()

    def pids(self) -> List[int]:
        """Live pids of this instance (master + children)."""
        return session_pids(self.master_pid) if self.master_pid else []

    # -- logs ---------------------------------------------------------------
    @staticmethod
    def _read(p: Path) -> str:
        try:
            return p.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_text(self) -> str:
        return self._read(self.log)

    def wait_log(self, needle: str, timeout: float = 5.0) -> str:
        """Wait until `needle` appears in the log; return the log text."""
        return wait_until(lambda: needle in self.log_text() and self.log_text(),
                          timeout, message=f"{needle!r} not in log:\n"
                          + self.log_text()[-4000:])

    # -- mail -----------------------------------------------------------------
    def maildir(self, user: str) -> Maildir:
        if self.storage != "maildir":
            raise HarnessError(f"maildir() on a {self.storage} instance: "
                               "use mailbox()")
        return self.mailbox(user)

    def mailbox(self, user: str):
        """user's INBOX: the Maildir view on maildir, else a DoveadmMailbox
        (same deliver/files/bases/count/exists/path interface)."""
        if user not in self.users:
            raise HarnessError(f"unknown user {user!r}")
        md = self._maildirs.get(user)
        if md is None:
            if self.storage == "maildir":
                md = Maildir(self.home(user))
            else:
                from mail_storages import DoveadmMailbox
                md = DoveadmMailbox(self, user)
            self._maildirs[user] = md
        return md


    def curl(self, user: str, path: str = "", extra: Iterable[str] = (),
             password: str = DEFAULT_PASSWORD) -> subprocess.CompletedProcess:
        return curl_pop3(self, user, path, extra, password)

    # -- doveadm --------------------------------------------------------------
    @property
    def config_socket(self) -> Path:
        return self.base_dir / "config"

    def _doveadm_argv(self, args) -> List[str]:
        # -c <base_dir>/config talks to the running instance's config service
        # and avoids the doveconf re-exec that wipes the environment
        # (pitfall 5).  Fall back to the file when the instance is stopped.
        cfg = self.config_socket if (self.running and self.config_socket.exists()) \
            else self.conf
        return ["doveadm", "-c", str(cfg), *map(str, args)]

    def doveadm(self, *args, input: Optional[str] = None, timeout: float = 30,
                env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess:
        return self._keep_ubsan(subprocess.run(
            [*self._wrap(), *self._doveadm_argv(args)],
            capture_output=True, text=True, input=input,
            timeout=timeout, env=self.doveadm_env(env)))

    def doveadm_plugin(self, *args, input: Optional[str] = None,
                       timeout: float = 30,
                       env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess:
        """Run doveadm with the built doveadm plugin visible in the compiled-in
        module dir, via a private mount namespace (root only)."""
        if not DOVEADM_PLUGIN_SO.is_file():
            raise HarnessError(f"built doveadm plugin missing: {DOVEADM_PLUGIN_SO}")
        mods = self.dir / "doveadm-modules"
        stock = self.dir / "doveadm-stock"
        if not mods.is_dir():
            stock.mkdir(mode=0o755, exist_ok=True)
            tmp = self.dir / "doveadm-modules.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(mode=0o755)
            # Symlinks must not point into STOCK_DOVEADM_DIR itself: inside the
            # namespace that path is our directory (symlink loop).  The stock
            # dir is bind-mounted on `stock` first and the links point there.
            for so in sorted(STOCK_DOVEADM_DIR.glob("*.so")):
                if so.name != DOVEADM_PLUGIN_SO.name:
                    (tmp / so.name).symlink_to(stock / so.name)
            self._link_built(DOVEADM_PLUGIN_SO, tmp)
            tmp.rename(mods)
        return self.run_in_doveadm_ns(*self._doveadm_argv(args), input=input,
                                      timeout=timeout, env=env)

    def run_in_doveadm_ns(self, *argv, input: Optional[str] = None,
                          timeout: float = 30,
                          env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess:
        """Run argv inside the private mount namespace used by
        doveadm_plugin() (the doveadm-modules dir must exist already)."""
        full = self.doveadm_ns_prefix() + list(map(str, argv))
        return self._keep_ubsan(subprocess.run(
            full, capture_output=True, text=True, input=input,
            timeout=timeout, env=self.doveadm_env(env)))

    def doveadm_ns_prefix(self) -> List[str]:
        """argv prefix of run_in_doveadm_ns(): unshare + the bind mounts
        (our doveadm modules; on 2.4 also our settings module)."""
        mods = self.dir / "doveadm-modules"
        stock = self.dir / "doveadm-stock"
        mounts = [(STOCK_DOVEADM_DIR, stock), (mods, STOCK_DOVEADM_DIR)]
        return dovecot_conf.wrap(mounts + self._settings_mounts())

    # -- misc -------------------------------------------------------------------
    def remove(self) -> None:
        """Stop (fast) and delete the instance directory."""
        self.stop(fast=True)
        shutil.rmtree(self.dir, ignore_errors=True)
        if self.base_dir_target is not None:
            shutil.rmtree(self.base_dir_target, ignore_errors=True)

    def __repr__(self):
        return f"<DovecotInstance {self.dir} port={self.port} running={self.running}>"


def curl_pop3(inst: DovecotInstance, user: str, path: str = "",
              extra: Iterable[str] = (), password: str = DEFAULT_PASSWORD
              ) -> subprocess.CompletedProcess:
    """curl -s --max-time 10 [extra] pop3://user:pass@127.0.0.1:port/<path>"""
    url = f"pop3://{user}:{password}@{HOST}:{inst.port}/{path}"
    return subprocess.run(["curl", "-s", "--max-time", "10", *extra, url],
                          capture_output=True, timeout=20)
