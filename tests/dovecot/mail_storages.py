"""Test-side view of a user's INBOX on the mail storages other than
Maildir (DovecotInstance(storage="mdbox"|"sdbox"|"mbox").mailbox(user)),
through doveadm. See docs/testing.md, "Mail storages"."""

from __future__ import annotations

import os
import subprocess
from typing import List, Optional, Union

import dovecot_conf
from dovecot_harness import MAIL_LOCATIONS, HarnessError, Maildir, _chown_mail


class DoveadmMailbox:
    """Test-side view of a user's INBOX on any storage, through doveadm:
    the same deliver/files/bases/count/exists interface as Maildir, with
    the message GUID as the "base" (on Maildir the GUID is the base
    name). path is the storage's root directory (where the retention
    lock lives)."""

    def __init__(self, inst: "DovecotInstance", user: str):
        self.inst = inst
        self.user = user
        self.home = inst.home(user)
        root = MAIL_LOCATIONS[inst.storage].split(":")[1]
        self.path = self.home / root.replace("~/", "", 1)
        self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        _chown_mail(self.path)
        # a one-message Maildir that `doveadm import` copies from: the
        # copy keeps the file's mtime as the received date, which
        # `doveadm save` cannot set
        self.stage = Maildir(self.home / ".p3r-stage")

    def _doveadm(self, *args) -> str:
        r = self.inst.doveadm(*args)
        if r.returncode != 0:
            raise HarnessError(f"doveadm {' '.join(args)}: rc={r.returncode}"
                               f"\n{r.stderr}")
        return r.stdout

    def deliver(self, message: Union[str, bytes], mtime: Optional[float] = None,
                name: Optional[str] = None) -> str:
        """Save a message into INBOX with the received date `mtime`
        (default now); returns its GUID. name: the staged file's base
        name, which dbox keeps as the GUID."""
        base = self.stage.deliver(message, mtime=mtime, name=name)
        # the config file, not the config socket: import reads the
        # config again after dropping privileges to the mail user
        # (2.4 takes only mail_driver:mail_path there: the staging
        # Maildir keeps an index of its own)
        source = f"maildir:{self.stage.path}" + \
            ("" if dovecot_conf.is_24() else ":INDEX=MEMORY")
        argv = ["doveadm", "-c", str(self.inst.conf), "import", "-u",
                self.user, source, "", "mailbox", "INBOX", "all"]
        try:
            r = subprocess.run([*self.inst._wrap(), *argv],
                               capture_output=True, text=True, timeout=30)
        finally:
            os.unlink(self.stage.find(base).path)
        if r.returncode != 0:
            raise HarnessError(f"{argv}: rc={r.returncode}\n{r.stderr}")
        # UIDs only grow: the new message has the highest
        return max(self.files(), key=lambda f: int(f[0]))[1]

    def files(self, mailbox: str = "INBOX") -> List[List[str]]:
        """[uid, guid, received date (unix time)] of every message."""
        out = self._doveadm("-f", "tab", "fetch", "-u", self.user,
                            "uid guid date.received.unixtime", "mailbox",
                            mailbox, "all")
        return [l.split("\t") for l in out.splitlines()[1:] if l]

    def bases(self, mailbox: str = "INBOX") -> List[str]:
        return sorted(f[1] for f in self.files(mailbox))

    def count(self) -> int:
        return len(self.files())

    def exists(self, base: str) -> bool:
        return base in self.bases()

    def headers(self, mailbox: str) -> List[bytes]:
        """The header of every message in `mailbox` ([] if it does not
        exist)."""
        r = self.inst.doveadm("-f", "pager", "fetch", "-u", self.user,
                              "hdr", "mailbox", mailbox, "all")
        if r.returncode != 0:
            return []
        return [m.encode() for m in r.stdout.split("\f\n") if m.strip()]
