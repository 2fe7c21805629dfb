#!/bin/sh
# A long fuzzing campaign: every target in turn, SECONDS each (default
# 600), one process at a time under nice (the machine is shared).
# Each target's corpus grows in tests/fuzz/out/campaign/<name>/ (seeded
# from tests/fuzz/corpus/<name>/, kept for the next campaign); crashes
# go to tests/fuzz/out/campaign/crash/, logs to .../<name>.log. The
# last lines printed are one summary line per target.
#   usage: tests/fuzz/campaign.sh [SECONDS] [TARGET...]
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
secs=${1:-600}
[ $# -gt 0 ] && shift
out="$top/tests/fuzz/out"
camp="$out/campaign"
[ -x "$out/fuzz-settings" ] || "$top/tests/fuzz/build.sh"
mkdir -p "$camp/crash"
targets=$*
[ -n "$targets" ] ||
	targets=$(for t in "$out"/fuzz-*; do basename "$t" | sed 's/^fuzz-//'; done)
summary=
for name in $targets; do
	mkdir -p "$camp/$name"
	log="$camp/$name.log"
	status=ok
	# run from the crash directory: libFuzzer writes the work files of
	# a failing input there too
	(cd "$camp/crash" && nice -n 10 "$out/fuzz-$name" \
		-max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
		-print_final_stats=1 -artifact_prefix="$camp/crash/$name-" \
		"$camp/$name" "$top/tests/fuzz/corpus/$name") >"$log" 2>&1 ||
		status="FAILED, see $log"
	line=$(grep -E '^#[0-9]+[[:space:]]+(DONE|NEW|REDUCE|pulse|INITED)' \
		"$log" | tail -1 | sed 's/^#\([0-9]*\)[[:space:]]*[A-Z]*/\1 execs,/;
		s/ lim: [0-9]*//; s/ rss: .*//; s/[[:space:]][[:space:]]*/ /g')
	summary="$summary
fuzz-$name: $line; $status"
	echo "fuzz-$name: $line; $status"
done
echo "== summary ($secs s a target)$summary"
