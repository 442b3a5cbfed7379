#!/usr/bin/env bash
# Build the libFuzzer targets with clang (ASan + UBSan) and run each for a
# bounded time on a copy of its seed corpus. Exits non-zero when a target
# does not build or finds a crash, a leak or a sanitizer report.
#
# Environment: IMAPFS_FUZZ_SECONDS (per target, default 60),
# IMAPFS_BUILD_DIR (where binaries and working corpora go).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
seconds=${IMAPFS_FUZZ_SECONDS:-60}
out=${IMAPFS_BUILD_DIR:-$root/build-fuzz}
mkdir -p "$out"

cflags=(-std=gnu17 -g -O1 -fsanitize=fuzzer,address,undefined
	-fno-sanitize-recover=all -Wall -Wextra -Werror -Wno-unused-parameter
	-D_FILE_OFFSET_BITS=64 -DG_LOG_DOMAIN=\"imapfs\" -I"$root")
read -r -a glib <<<"$(pkg-config --cflags --libs glib-2.0)"

# target : sources it needs besides itself
declare -A sources=(
	[parser]="imap/parser.c"
	[names]="fs/names.c imap/mutf7.c"
	[cache-index]="cache/index.c cache/crc32.c"
)

status=0
for target in parser names cache-index; do
	bin="$out/fuzz-$target"
	srcs=()
	for s in ${sources[$target]}; do srcs+=("$root/$s"); done
	echo "== building fuzz-$target"
	if ! clang "${cflags[@]}" "$root/tests/fuzz/fuzz-$target.c" \
		"${srcs[@]}" "${glib[@]}" -o "$bin"; then
		echo "fuzz-$target: build failed"
		status=1
		continue
	fi
	work="$out/corpus-$target"
	rm -rf "$work"
	mkdir -p "$work"
	if [ -d "$root/tests/fuzz/corpus-$target" ]; then
		cp "$root/tests/fuzz/corpus-$target"/* "$work"/ 2>/dev/null || true
	fi
	echo "== running fuzz-$target for ${seconds}s"
	if ! (cd "$out" && ASAN_OPTIONS=detect_leaks=1:quarantine_size_mb=16 \
		"$bin" -max_total_time="$seconds" -max_len=65536 \
		-rss_limit_mb=2048 -print_final_stats=1 "$work" \
		>"$out/fuzz-$target.log" 2>&1); then
		echo "fuzz-$target: FAILED; last lines of $out/fuzz-$target.log:"
		tail -n 40 "$out/fuzz-$target.log"
		status=1
	else
		grep -E '^stat::number_of_executed_units' "$out/fuzz-$target.log" || true
	fi
done
exit $status
