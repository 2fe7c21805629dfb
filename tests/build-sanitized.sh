#!/usr/bin/env bash
# The whole product (core, Dovecot modules, the delivery service, the shim,
# the unit tests) built with ASan + UBSan, ./configure --enable-sanitizers,
# in a copy of the sources: build-sanitized/ (gitignored). The checkout is
# configured in-tree, which rules out a VPATH build next to it. The copy
# keeps the files' times, so a second run rebuilds only what changed.
# Used by ./quickstart test and docs/testing.md "Sanitizers".
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
dir="$top/build-sanitized"
cd "$top"
git rev-parse --git-dir >/dev/null 2>&1 || {
	echo "$0: needs a git checkout (git ls-files names the sources)" >&2
	exit 1
}
mkdir -p "$dir"
# tracked and new files, none that .gitignore names (build outputs, and
# build-sanitized/ itself); a tracked file deleted here is left out
git ls-files -z -co --exclude-standard |
	while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
	tar --null -T - -cf - | tar -xf - -C "$dir"
cd "$dir"
if [ ! -x configure ] || [ configure.ac -nt configure ]; then
	autoreconf -fi >/dev/null 2>&1 || autoreconf -fi
fi
if [ ! -f Makefile ] || [ configure -nt config.status ]; then
	./configure -q --enable-sanitizers
fi
make -s -j"$(nproc)"
make -s -j"$(nproc)" check TESTS=
