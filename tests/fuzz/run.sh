#!/usr/bin/env bash
# Configure a clang build with -Dfuzzing=true (ASan + UBSan, every object
# instrumented for libFuzzer; see tests/fuzz/meson.build), build the
# libFuzzer targets and run each for a bounded time on a copy of its seed
# corpus. Exits non-zero when a target does not build or finds a crash, a
# leak or a sanitizer report.
#
# Environment: IMAPFS_FUZZ_SECONDS (per target, default 60),
# IMAPFS_BUILD_DIR (the build directory, with the working corpora and logs).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
seconds=${IMAPFS_FUZZ_SECONDS:-60}
out=${IMAPFS_BUILD_DIR:-$root/build-fuzz}
targets=(parser names cache-index url search bodystructure)
mkdir -p "$out"

setup=(-Dfuzzing=true -Dwerror=true -Dbuildtype=debugoptimized
	-Db_sanitize=address,undefined -Db_lundef=false
	-Dc_args=-fno-sanitize-recover=all)
echo "== configuring $out"
if [ -f "$out/meson-private/coredata.dat" ]; then
	configure=(meson setup --reconfigure "${setup[@]}" "$out" "$root")
else
	configure=(meson setup "${setup[@]}" "$out" "$root")
fi
if ! CC=clang "${configure[@]}" >"$out/fuzz-setup.log" 2>&1; then
	echo "fuzzing: meson setup failed; last lines of $out.setup.log:"
	tail -n 40 "$out/fuzz-setup.log"
	exit 1
fi

status=0
for target in "${targets[@]}"; do
	bin="$out/tests/fuzz/fuzz-$target"
	echo "== building fuzz-$target"
	if ! ninja -C "$out" "tests/fuzz/fuzz-$target" >"$out/fuzz-$target.build.log" 2>&1; then
		echo "fuzz-$target: build failed; last lines of $out/fuzz-$target.build.log:"
		tail -n 40 "$out/fuzz-$target.build.log"
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
