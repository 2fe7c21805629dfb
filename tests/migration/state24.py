"""The Dovecot 2.4 half of tests/migration/test_upgrade_23_24.py.

Runs inside the Debian 13 tree (tests/run-dovecot24 --exec) on the mail
that Dovecot 2.3 and the plugin wrote on the host:

    python3 tests/migration/state24.py HOME_ROOT

starts a private Dovecot 2.4 with the plugin built here and the users'
homes under HOME_ROOT, asks `doveadm pop3-retention status` what it knows
about each message, then logs alice and bob in (a login applies what is
due), and prints one JSON object with what it saw as the last line of
stdout.  It asserts nothing: the host test does.
"""

import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "dovecot"))

import dovecot_harness as h  # noqa: E402

P = "pop3_retention_"
# the same users as the 2.3 half, but alice's keep window is now 1 s: a
# download that 2.3 recorded is then long expired, one 2.4 does not know
# about is "state unknown" and never expires
SETTINGS = {P + "policy": "keep", P + "keep": "1s"}
USERS = {"alice": {}, "bob": {P + "min": "30d"}}


def files(inst, user):
    return sorted([f.base, f.flags] for f in inst.maildir(user).files())


def main():
    home_root = Path(sys.argv[1])
    out = {"dovecot": h.subprocess.run(["dovecot", "--version"],
                                       capture_output=True,
                                       text=True).stdout.strip()}
    inst = h.DovecotInstance(plugin=True, settings=SETTINGS, users=USERS,
                             home_root=home_root,
                             extra_conf="log_debug = category=pop3-retention\n",
                             start=False)
    try:
        inst.start()
        for user in USERS:
            out[f"files_before_{user}"] = files(inst, user)
            r = inst.doveadm_plugin("-f", "tab", "pop3-retention", "status",
                                    "-u", user)
            out[f"status_{user}"] = [r.returncode, r.stdout, r.stderr]
        time.sleep(1.5)     # past alice's 1 s window in any case
        for user in USERS:
            p = inst.pop3(user)
            out[f"uidl_{user}"] = [l.decode() for l in p.uidl()[1]]
            p.quit()
        h.session_end_logged(inst, len(USERS))
        for user in USERS:
            out[f"files_after_{user}"] = files(inst, user)
        keywords = home_root / "bob" / "Maildir" / "dovecot-keywords"
        out["keywords_bob"] = keywords.read_text() if keywords.exists() else ""
    except Exception as e:  # reported to the host test, which fails on it
        out["error"] = f"{type(e).__name__}: {e}"
    finally:
        inst.stop(fast=True)
        out["log"] = inst.log_text()[-6000:]
        if not os.environ.get("P3R_KEEP"):
            inst.remove()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
