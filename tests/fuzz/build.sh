#!/bin/sh
# Build the libFuzzer targets with clang (Debian's clang-14 and its
# libclang-rt): ASan + UBSan + libFuzzer. Output: tests/fuzz/out/.
# Needs the product configured (pop3-retention-config.h), not built.
# The code under test is compiled once (with fuzzer coverage, without
# libFuzzer's main) and linked into each target.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
out="$top/tests/fuzz/out"
obj="$out/obj"
mkdir -p "$out" "$obj"
san="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
cflags="-g -O1 $san $(pkg-config --cflags libcurl jansson)
	-I$top -I$top/plugin/core -I$top/shim $(pkg-config --cflags libevent_openssl)"
libs="$(pkg-config --libs libevent_core libevent_openssl libcrypt libssl libcrypto libcurl jansson) -pthread"
shim="$top/shim/shim-config.c $top/shim/shim-passwd.c $top/shim/shim-crypt.c
	$top/shim/shim-maildir.c $top/shim/shim-maildir-read.c
	$top/shim/shim-maildir-move.c $top/shim/shim-state.c $top/shim/shim-log.c
	$top/shim/shim-proto.c $top/shim/shim-auth.c $top/shim/shim-trans.c
	$top/shim/shim-session.c $top/shim/shim-tls.c $top/shim/shim-webhook.c"

rm -f "$obj"/*.o
for src in "$top"/plugin/core/*.c $shim; do
	# shellcheck disable=SC2086
	clang $cflags -fsanitize=fuzzer-no-link -c -o \
		"$obj/$(basename "$src" .c).o" "$src" &
	# two at a time: the machine is shared
	[ "$(jobs -p | wc -l)" -lt 2 ] || wait
done
wait
core=$(for src in "$top"/plugin/core/*.c; do
	echo "$obj/$(basename "$src" .c).o"; done)
shimobj=$(for src in $shim; do echo "$obj/$(basename "$src" .c).o"; done)

for src in "$top"/tests/fuzz/fuzz-*.c; do
	name=$(basename "$src" .c)
	extra=
	[ "$name" = fuzz-shim-session ] && extra=$shimobj
	# shellcheck disable=SC2086
	clang $cflags -fsanitize=fuzzer -o "$out/$name" "$src" $core $extra \
		$libs
done
