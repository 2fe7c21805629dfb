"""Dovecot 2.3 or 2.4: which one the tests run against, and the config
the harness writes for it (write(): conf_23() or conf_24()).

The tests describe an instance in 2.3 syntax (the settings dict, extra_conf,
protocol_pop3_extra fragments, userdb fields); against 2.4 the harness
passes every fragment through to_24(), which rewrites what 2.4 renamed or
restructured (docs/dovecot.md "Moving from Dovecot 2.3 to 2.4" lists the
same changes for admins).  Fragments already in 2.4 syntax pass unchanged.

Against 2.4 the plugin's settings must be declared: config and doveconf
load them from the settings module directory compiled into Dovecot
(<moduledir>/settings).  The harness shows them our built settings module
by bind-mounting a directory of symlinks (the stock modules + ours) over
that path in a private mount namespace, as it does for doveadm modules:
wrap() returns the argv prefix that does it.
"""

from __future__ import annotations

import functools
import re
import subprocess
from pathlib import Path
from typing import List, Optional, Tuple

# first line of what 2.4's config must start with (the version of the
# config syntax and of the storage format this config was written for)
CONFIG_VERSION = "2.4.1"


@functools.lru_cache(maxsize=None)
def version() -> Tuple[int, int]:
    """(major, minor) of the `dovecot` on PATH, e.g. (2, 3) or (2, 4)."""
    out = subprocess.run(["dovecot", "--version"], capture_output=True,
                         text=True, timeout=30).stdout
    m = re.match(r"(\d+)\.(\d+)", out.strip())
    if not m:
        raise RuntimeError(f"cannot parse `dovecot --version`: {out!r}")
    return int(m.group(1)), int(m.group(2))


def is_24() -> bool:
    return version() >= (2, 4)


# -- pop3_uidl_format ---------------------------------------------------------

_UIDL_VARS = {"v": "uidvalidity", "u": "uid", "m": "md5", "f": "filename",
              "g": "guid"}
_UIDL_RE = re.compile(r"%(0?\d*)([Xx]?)([vumfg])|%%")


def uidl_format_24(fmt: str) -> str:
    """A 2.3 pop3_uidl_format (%08Xu%08Xv, %g, %f, %v.%u, ...) in 2.4
    syntax (%{uid | hex(8)}%{uidvalidity | hex(8)}, %{guid}, ...)."""
    if "%{" in fmt:
        return fmt

    def one(m):
        if m.group(0) == "%%":
            return "%%"
        width, hexa, var = m.groups()
        name = _UIDL_VARS[var]
        if hexa:
            return "%{" + name + " | hex(" + (width.lstrip("0") or "0") + ")}" \
                if width else "%{" + name + " | hex}"
        if width:
            raise ValueError(f"no 2.4 form known for {m.group(0)!r} in {fmt!r}")
        return "%{" + name + "}"
    return _UIDL_RE.sub(one, fmt)


# -- config fragments -----------------------------------------------------------

_ASSIGN = re.compile(r"^(\s*)([A-Za-z0-9_/.-]+)\s*=\s*(.*?)\s*$")
_BLOCK = re.compile(r"^(\s*)([A-Za-z0-9_-]+)(\s+\S+)?\s*\{\s*$")
# boollists that 2.3 wrote as "name = $name a b"
_BOOLLISTS = ("mail_plugins", "login_plugins", "protocols")
_RENAMED_IN_SERVICE = {"service_count": "restart_request_count",
                       "idle_kill": "idle_kill_interval"}
_VARIABLES = ("default_internal_user", "default_internal_group",
              "default_login_user")


def _boollist(ind: str, name: str, value: str) -> List[str]:
    items = value.split()
    if items and items[0] == "$" + name:
        out = [f"{ind}{name} {{"]
        out += [f"{ind}  {it} = yes" for it in items[1:]]
        return out + [f"{ind}}}"]
    return [f"{ind}{name} = {value}"]


def _import_environment(ind: str, value: str) -> List[str]:
    items = value.split()
    if items and items[0] == "$import_environment":
        items = items[1:]
    else:
        # a plain list replaces 2.4's defaults as it replaced 2.3's
        return [f"{ind}import_environment = {value}"]
    out = [f"{ind}import_environment {{"]
    for it in items:
        key, eq, val = it.partition("=")
        out.append(f"{ind}  {key} = {val if eq else '%{env:' + key + '}'}")
    return out + [f"{ind}}}"]


# mail_location's :KEY=value parameters that 2.4 made settings
_LOCATION_KEYS = {"INBOX": "mail_inbox_path", "INDEX": "mail_index_path",
                  "CONTROL": "mail_control_path",
                  "LAYOUT": "mailbox_list_layout"}


def _mail_location_24(value: str) -> List[str]:
    """2.3's mail_location (driver:path[:KEY=value...]) as 2.4 settings."""
    driver, _, rest = value.partition(":")
    out = [f"mail_driver = {driver}"]
    parts = rest.split(":") if rest else []
    if parts:
        out.append(f"mail_path = {parts[0]}")
    for kv in parts[1:]:
        key, _, val = kv.partition("=")
        if key not in _LOCATION_KEYS:
            raise ValueError(f"no 2.4 form known for {kv!r} in {value!r}")
        out.append(f"{_LOCATION_KEYS[key]} = {val}")
    return out


def to_24(text: str) -> str:
    """Rewrite a 2.3 config fragment in 2.4 syntax (see the module doc)."""
    out: List[str] = []
    stack: List[str] = []          # names of the open blocks
    for line in text.split("\n"):
        b = _BLOCK.match(line)
        if b:
            name = b.group(2)
            stack.append(name)
            if name == "plugin":   # 2.4: plugin settings are top level
                continue
            out.append(line)
            continue
        if line.strip() == "}":
            name = stack.pop() if stack else ""
            if name != "plugin":
                out.append(line)
            continue
        a = _ASSIGN.match(line)
        if not a:
            out.append(line)
            continue
        ind, key, value = a.groups()
        if "plugin" in stack:
            ind = ind[2:] if ind.startswith("  ") else ind
        for var in _VARIABLES:
            value = value.replace("$" + var, "$SET:" + var)
        inside = stack[-1] if stack else ""
        if key in _BOOLLISTS:
            out += _boollist(ind, key, value)
        elif key == "import_environment":
            out += _import_environment(ind, value)
        elif key == "pop3_uidl_format":
            out.append(f"{ind}{key} = {uidl_format_24(value)}")
        elif key == "disable_plaintext_auth":
            allow = "no" if value == "yes" else "yes"
            out.append(f"{ind}auth_allow_cleartext = {allow}")
        elif key == "mail_location":
            out += [ind + x for x in _mail_location_24(value)]
        elif inside == "service" and key in _RENAMED_IN_SERVICE:
            out.append(f"{ind}{_RENAMED_IN_SERVICE[key]} = {value}")
        elif inside == "inet_listener" and key == "address":
            out.append(f"{ind}listen = {value}")
        elif key in ("ssl_cert", "ssl_key") and value.startswith("<"):
            out.append(f"{ind}ssl_server_{key[4:]}_file = {value[1:]}")
        else:
            out.append(f"{ind}{key} = {value}")
    return "\n".join(out)


# -- the whole config ----------------------------------------------------------

def write(inst) -> str:
    """The config of DovecotInstance `inst`, in the syntax of the Dovecot
    the tests run against."""
    return conf_24(inst) if is_24() else conf_23(inst)


def conf_23(inst) -> str:
    """DovecotInstance `inst`'s config in Dovecot 2.3 syntax."""
    L = [
        "# generated by tests/dovecot/dovecot_harness.py",
        f"base_dir = {inst.base_dir}",
        f"state_dir = {inst.state_dir}",
        f"log_path = {inst.log}",
        "protocols = pop3",
        "listen = 127.0.0.1",
        "ssl = no",
        "disable_plaintext_auth = no",
        "auth_mechanisms = plain",
        "default_internal_user = dovecot",
        "default_internal_group = dovecot",
        "default_login_user = dovenull",
        "first_valid_uid = 100",
        f"mail_location = {inst.mail_location}",
        "mail_max_userip_connections = 1000",
    ]
    L += inst._sanitizer_conf()
    if inst.plugin:
        L += [f"mail_plugin_dir = {inst.module_dir}",
              f"login_plugin_dir = {inst.login_module_dir}"]
    L += [
        "passdb {",
        "  driver = passwd-file",
        f"  args = scheme=PLAIN {inst.users_file}",
        "}",
        "userdb {",
        "  driver = passwd-file",
        f"  args = {inst.users_file}",
        "}",
        "service pop3-login {",
        "  inet_listener pop3 {",
        "    address = 127.0.0.1",
        f"    port = {inst.port}",
        "  }",
        "  inet_listener pop3s {",
        "    port = 0",
        "  }",
        "}",
        "plugin {",
    ]
    L += [f"  {k} = {v}" for k, v in inst.settings.items()]
    L += ["}"]
    if inst.extra_conf:
        L += [inst.extra_conf.rstrip("\n")]
    if inst.plugin or inst.protocol_pop3_extra:
        L += ["protocol pop3 {"]
        if inst.plugin:
            L += ["  mail_plugins = $mail_plugins pop3_retention"]
        if inst.protocol_pop3_extra:
            L += [inst.protocol_pop3_extra.rstrip("\n")]
        L += ["}"]
    return "\n".join(L)


def conf_24(inst) -> str:
    """The same in Dovecot 2.4 syntax; the tests' fragments
    (2.3 or 2.4 syntax) go through to_24()."""
    L = first_line() + [
        "# generated by tests/dovecot/dovecot_harness.py",
        f"base_dir = {inst.base_dir}",
        f"state_dir = {inst.state_dir}",
        f"log_path = {inst.log}",
        "protocols = pop3",
        "listen = 127.0.0.1",
        "ssl = no",
        "auth_allow_cleartext = yes",
        "auth_mechanisms = plain",
        "default_internal_user = dovecot",
        "default_internal_group = dovecot",
        "default_login_user = dovenull",
        "first_valid_uid = 100",
        *_mail_location_24(inst.mail_location),
        "mail_max_userip_connections = 1000",
    ]
    if inst._sanitizer_conf():
        L += [to_24("\n".join(inst._sanitizer_conf()))]
    if inst.plugin:
        L += [f"mail_plugin_dir = {inst.module_dir}",
              f"login_plugin_dir = {inst.login_module_dir}"]
    L += [
        "passdb passwd-file {",
        f"  passwd_file_path = {inst.users_file}",
        "  default_password_scheme = PLAIN",
        "}",
        "userdb passwd-file {",
        f"  passwd_file_path = {inst.users_file}",
        "}",
        "service pop3-login {",
        "  inet_listener pop3 {",
        "    listen = 127.0.0.1",
        f"    port = {inst.port}",
        "  }",
        "  inet_listener pop3s {",
        "    port = 0",
        "  }",
        "}",
    ]
    # no plugin {}: the plugin's settings are top-level settings
    L += [to_24(f"{k} = {v}") for k, v in inst.settings.items()]
    if inst.extra_conf:
        L += [to_24(inst.extra_conf.rstrip("\n"))]
    if inst.plugin or inst.protocol_pop3_extra:
        L += ["protocol pop3 {"]
        if inst.plugin:
            L += ["  mail_plugins {", "    pop3_retention = yes", "  }"]
        if inst.protocol_pop3_extra:
            L += [to_24(inst.protocol_pop3_extra.rstrip("\n"))]
        L += ["}"]
    return "\n".join(L)


# -- a config that 2.4 refuses ------------------------------------------------------

def config_refused(inst, settings) -> str:
    """Dovecot 2.4 checks the plugin's declared settings when it reads the
    config (the settings module's check), where 2.3 left them to the
    plugin at run time: give DovecotInstance `inst` (stopped) `settings`,
    check that doveconf and dovecot both refuse the config, and return
    doveconf's error text (for the setting and value it must name)."""
    assert is_24() and not inst.running
    inst.settings = dict(settings)
    inst._write_conf()
    r = inst.doveconf("-n")
    assert r.returncode != 0, "2.4 accepted the config:\n" + r.stdout
    try:
        inst.start()
    except RuntimeError as e:          # HarnessError: did not start
        assert "did not listen" in str(e) or "doveconf" in str(e), str(e)
    else:
        raise AssertionError("dovecot started with a refused config")
    return r.stderr


# -- the settings module ----------------------------------------------------------

def settings_module_dir(stock_module_dir: Path) -> Path:
    """Where config and doveconf look for settings modules."""
    return stock_module_dir / "settings"


def built_settings_modules(libs: Path) -> List[Path]:
    """The settings module(s) of our build (plugin/dovecot/.libs)."""
    return sorted(p for p in libs.glob("*settings*.so") if not p.is_symlink()
                  or p.resolve().is_file())


def ns_script(n_mounts: int) -> str:
    """sh script: bind-mount n pairs of (src, dst) given as "$1".."$2n",
    then exec the rest of the arguments."""
    mounts = " && ".join(f'mount --bind "${{{2 * i + 1}}}" "${{{2 * i + 2}}}"'
                         for i in range(n_mounts))
    return f'{mounts} && shift {2 * n_mounts} && exec "$@"'


def wrap(mounts: List[Tuple[Path, Path]]) -> List[str]:
    """argv prefix that runs a command in a private mount namespace with
    each (src, dst) of `mounts` bind-mounted in order; [] for no mounts."""
    if not mounts:
        return []
    argv = ["unshare", "-m", "--propagation", "private", "sh", "-c",
            ns_script(len(mounts)), "sh"]
    for src, dst in mounts:
        argv += [str(src), str(dst)]
    return argv


def first_line(conf_path: Optional[Path] = None) -> List[str]:
    return [f"dovecot_config_version = {CONFIG_VERSION}",
            f"dovecot_storage_version = {CONFIG_VERSION}"]
