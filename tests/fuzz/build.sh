#!/bin/sh
# Build the libFuzzer targets with clang (Debian's clang-14 and its
# libclang-rt): ASan + UBSan + libFuzzer. Output: tests/fuzz/out/.
# Needs the product configured (pop3-retention-config.h), not built.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
out="$top/tests/fuzz/out"
mkdir -p "$out"
cflags="-g -O1 $(pkg-config --cflags libcurl jansson) -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
	-I$top -I$top/plugin/core -I$top/shim $(pkg-config --cflags libevent_openssl)"
libs="$(pkg-config --libs libevent_core libevent_openssl libcrypt libssl libcrypto libcurl jansson) -pthread"
core=$(ls "$top"/plugin/core/*.c)
shim="$top/shim/shim-config.c $top/shim/shim-passwd.c $top/shim/shim-crypt.c
	$top/shim/shim-maildir.c $top/shim/shim-maildir-read.c
	$top/shim/shim-maildir-move.c $top/shim/shim-state.c $top/shim/shim-log.c
	$top/shim/shim-proto.c $top/shim/shim-auth.c $top/shim/shim-trans.c
	$top/shim/shim-session.c $top/shim/shim-tls.c $top/shim/shim-webhook.c"
# shellcheck disable=SC2086
clang $cflags -o "$out/fuzz-shim-session" \
	"$top/tests/fuzz/fuzz-shim-session.c" $core $shim $libs
