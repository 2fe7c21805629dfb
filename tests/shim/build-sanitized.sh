#!/bin/sh
# pop3-retentiond built with AddressSanitizer + UndefinedBehaviorSanitizer
# (clang), for a second run of tests/shim: tests/shim/out/pop3-retentiond.
# Needs the product configured (pop3-retention-config.h), not built.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
out="$top/tests/shim/out"
mkdir -p "$out"
cflags="-g -O1 -fsanitize=address,undefined -fno-sanitize-recover=undefined
	-fno-omit-frame-pointer -I$top -I$top/plugin/core -I$top/shim
	$(pkg-config --cflags libevent_openssl libcurl jansson)"
libs="$(pkg-config --libs libevent_core libevent_openssl libcrypt libssl libcrypto libcurl jansson) -pthread"
# shellcheck disable=SC2086
clang $cflags -o "$out/pop3-retentiond" "$top"/plugin/core/*.c \
	"$top"/shim/*.c $libs
