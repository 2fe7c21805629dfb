"""Private pop3-retentiond instances for the shim's tests: the built
binary, its own config, passwd-file, Maildirs (owned by 65534, the user
it drops to) and a self-signed certificate, on free ports of 127.0.0.1.

The API mirrors DovecotInstance where the two hosts do the same thing
(maildir(), pop3(), raw(), curl(), log_text(), wait_log()), so that the
behaviour suite runs the same cases on both."""

from __future__ import annotations

import os
import poplib
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, Iterable, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "dovecot"))
import dovecot_harness as dh  # noqa: E402
from dovecot_harness import (DEFAULT_PASSWORD, DEFAULT_USERS, HOST,  # noqa
                             MAIL_GID, MAIL_UID, HarnessError, Maildir,
                             RawPOP3, free_port, wait_until)

REPO_ROOT = Path(__file__).resolve().parents[2]
# P3R_SHIM_BIN: another build, e.g. tests/shim/build-sanitized.sh's
SHIM_BIN = Path(os.environ.get("P3R_SHIM_BIN",
                               REPO_ROOT / "shim" / "pop3-retentiond"))
RUN_USER = "nobody"
_CERT_DIR: Optional[Path] = None


def certificate_files() -> tuple:
    """A self-signed certificate for 127.0.0.1 / localhost (made once per
    test run with openssl(1))."""
    global _CERT_DIR
    if _CERT_DIR is None:
        _CERT_DIR = Path(tempfile.mkdtemp(prefix="p3r-shim-cert."))
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
             "-days", "2", "-subj", "/CN=localhost",
             "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
             "-keyout", str(_CERT_DIR / "key.pem"),
             "-out", str(_CERT_DIR / "cert.pem")],
            check=True, capture_output=True)
        os.chmod(_CERT_DIR, 0o755)
    return _CERT_DIR / "cert.pem", _CERT_DIR / "key.pem"


class ShimInstance(dh.POP3Clients):
    """One pop3-retentiond serving a private set of users."""

    def __init__(self, settings: Optional[Dict] = None,
                 users=None, extra_conf: str = "", tls: bool = True,
                 start: bool = True):
        if not SHIM_BIN.is_file():
            raise HarnessError(f"{SHIM_BIN} is missing: build it (make)")
        self.settings = dict(settings or {})
        if users is None:
            users = {u: {} for u in DEFAULT_USERS}
        elif not isinstance(users, dict):
            users = {u: {} for u in users}
        self.users = {k: dict(v or {}) for k, v in users.items()}
        self.extra_conf = extra_conf
        self.tls = tls
        self.dir = Path(tempfile.mkdtemp(prefix="p3r-shim."))
        os.chmod(self.dir, 0o755)
        self.conf = self.dir / "pop3-retentiond.conf"
        self.log = self.dir / "pop3-retentiond.log"
        self.users_file = self.dir / "users"
        self.home_root = self.dir / "home"
        self.state_dir = self.dir / "state"
        self.home_root.mkdir(mode=0o755)
        self.state_dir.mkdir(mode=0o700)
        os.chown(self.state_dir, MAIL_UID, MAIL_GID)
        self.port = free_port()
        self.tls_port = free_port() if tls else None
        self.proc: Optional[subprocess.Popen] = None
        self._conns: List[object] = []
        self._maildirs: Dict[str, Maildir] = {}
        self._log_file = None
        self.write_users()
        self.write_conf()
        if start:
            self.start()

    # -- files ------------------------------------------------------------
    def home(self, user: str) -> Path:
        return self.home_root / user

    def write_users(self) -> None:
        lines = []
        for name, fields in self.users.items():
            fields = dict(fields)
            password = fields.pop("password", "{PLAIN}" + DEFAULT_PASSWORD)
            extras = []
            for k, v in fields.items():
                key = k if k.startswith(("userdb_", "pop3_")) \
                    else "userdb_" + k
                extras.append(f"{key}={'' if v is None else v}")
            home = self.home(name)
            home.mkdir(mode=0o700, exist_ok=True)
            os.chown(home, MAIL_UID, MAIL_GID)
            lines.append(f"{name}:{password}:{MAIL_UID}:{MAIL_GID}::{home}::"
                         + " ".join(extras))
        self.users_file.write_text("\n".join(lines) + "\n")
        os.chmod(self.users_file, 0o644)

    def write_conf(self) -> None:
        L = [f"listen = {HOST}:{self.port}",
             f"passwd_file = {self.users_file}",
             "mail = maildir:%h/Maildir",
             f"user = {RUN_USER}",
             f"state_dir = {self.state_dir}",
             "log = stderr"]
        if self.tls:
            cert, key = certificate_files()
            L += [f"listen_tls = {HOST}:{self.tls_port}",
                  f"ssl_cert = {cert}", f"ssl_key = {key}"]
        L += [f"{k} = {v}" for k, v in self.settings.items()]
        self.conf.write_text("\n".join(L) + "\n" + self.extra_conf)
        os.chmod(self.conf, 0o644)

    def reconfigure(self, settings: Optional[Dict] = None,
                    users=None, extra_conf: Optional[str] = None) -> None:
        """New config and users; sent SIGHUP when running."""
        if settings is not None:
            self.settings = dict(settings)
        if users is not None:
            self.users = {k: dict(v or {}) for k, v in users.items()}
        if extra_conf is not None:
            self.extra_conf = extra_conf
        self.write_users()
        self.write_conf()
        if self.running:
            off = len(self.log_text())
            self.proc.send_signal(signal.SIGHUP)
            wait_until(lambda: "reload" in self.log_text()[off:],
                       timeout=10, message="no reload logged")

    # -- process ----------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def sanitizer_reports(self) -> List[str]:
        """Reports a sanitized build wrote (see start())."""
        d = self.dir / "sanitizer"
        return [p.read_text(errors="replace") for p in sorted(d.iterdir())] \
            if d.is_dir() else []

    def start(self, timeout: float = 10.0) -> None:
        self._log_file = open(self.log, "ab")
        env = dict(os.environ)
        env.setdefault("POP3_RETENTIOND_DEBUG", "1")
        # a sanitized build writes its reports where the test finds them
        # (the directory is the served user's: the server drops to it)
        san = self.dir / "sanitizer"
        san.mkdir(mode=0o700, exist_ok=True)
        os.chown(san, MAIL_UID, MAIL_GID)
        env["ASAN_OPTIONS"] = f"log_path={san}/asan:detect_leaks=1"
        env["UBSAN_OPTIONS"] = f"log_path={san}/ubsan:print_stacktrace=1"
        self.proc = subprocess.Popen(
            [str(SHIM_BIN), "-c", str(self.conf), "serve"],
            stdout=self._log_file, stderr=self._log_file, env=env)
        wait_until(lambda: "started" in self.log_text() or not self.running,
                   timeout=timeout, message="pop3-retentiond did not start")
        if not self.running:
            raise HarnessError("pop3-retentiond exited:\n" + self.log_text())
        wait_until(lambda: dh.port_is_listening(self.port), timeout=timeout)

    def stop(self, timeout: float = 10.0, kill: bool = False) -> None:
        for c in self._conns:
            try:
                c.close()
            except Exception:
                pass
        self._conns.clear()
        if self.running:
            self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- logs -------------------------------------------------------------
    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_log(self, needle: str, timeout: float = 5.0) -> str:
        wait_until(lambda: needle in self.log_text(), timeout,
                   message=f"{needle!r} not in log:\n"
                   + self.log_text()[-4000:])
        return self.log_text()

    # -- mail ---------------------------------------------------------------
    def maildir(self, user: str) -> Maildir:
        if user not in self.users:
            raise HarnessError(f"unknown user {user!r}")
        md = self._maildirs.get(user)
        if md is None:
            md = self._maildirs[user] = Maildir(self.home(user))
        return md

    # -- clients ------------------------------------------------------------
    def pop3_ssl(self, user: Optional[str] = None,
                 password: str = DEFAULT_PASSWORD, timeout: float = 10.0):
        ctx = ssl.create_default_context(cafile=str(certificate_files()[0]))
        p = poplib.POP3_SSL(HOST, self.tls_port, timeout=timeout,
                            context=ctx)
        self._conns.append(p)
        if user is not None:
            p.user(user)
            p.pass_(password)
        return p

    def curl(self, user: str, path: str = "", extra: Iterable[str] = (),
             password: str = DEFAULT_PASSWORD, tls: bool = False
             ) -> subprocess.CompletedProcess:
        scheme, port = ("pop3s", self.tls_port) if tls else ("pop3", self.port)
        url = f"{scheme}://{user}:{password}@{HOST}:{port}/{path}"
        args = ["curl", "-s", "--max-time", "10"]
        if tls:
            args += ["--cacert", str(certificate_files()[0])]
        return subprocess.run([*args, *extra, url], capture_output=True,
                              timeout=20)

    # -- the command line -----------------------------------------------------
    def command(self, *args: str, timeout: float = 60
                ) -> subprocess.CompletedProcess:
        return subprocess.run([str(SHIM_BIN), "-c", str(self.conf), *args],
                              capture_output=True, text=True, timeout=timeout)

    def __repr__(self):
        return f"<ShimInstance {self.dir} port={self.port}>"
