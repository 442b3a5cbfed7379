#!/usr/bin/env bash
# Quick start 2 and the CI entry point: install the dependencies, check
# the style gates (clang-format, file and function sizes; one test each),
# then
#   1. build with gcc, warnings as errors, and run every test suite;
#   2. build with clang under AddressSanitizer + UndefinedBehaviorSanitizer
#      and run the unit and integration suites;
#   3. run the fuzz targets for a bounded time, when tests/fuzz/run.sh exists
#      (it gets IMAPFS_FUZZ_SECONDS, per target, and IMAPFS_BUILD_DIR, a
#      build directory of its own; its exit status counts as one test).
# The last line is the total over all runs, "N passed, N failed" (plus
# ", N skipped" when any); a build that fails counts as one failed test.
# Exits non-zero when any build or test failed.
#
# Environment: IMAPFS_FUZZ_SECONDS (default 60), IMAPFS_TEST_SANITIZE=0
# skips step 2, IMAPFS_TEST_TIMEOUT_MULTIPLIER scales meson's test timeouts
# (default 1, and 3 under sanitizers).
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root" || exit 1
export PYTHONDONTWRITEBYTECODE=1

passed=0
failed=0
skipped=0
problems=()
hard_error=0

say() {
	printf '\n=== %s\n' "$*"
}

# Add the counts of meson test's summary in file $1; returns 1 when there
# is no summary (meson test could not run).
add_summary() {
	local file=$1 line key n found=0
	local ok=0 xfail=0 fail=0 xpass=0 skip=0 tmo=0
	while IFS= read -r line; do
		case $line in
		Ok:* | "Expected Fail:"* | Fail:* | "Unexpected Pass:"* | \
			Skipped:* | Timeout:*) ;;
		*) continue ;;
		esac
		key=${line%%:*}
		n=${line#*:}
		n=${n//[^0-9]/}
		[ -n "$n" ] || continue
		found=1
		case $key in
		Ok) ok=$n ;;
		"Expected Fail") xfail=$n ;;
		Fail) fail=$n ;;
		"Unexpected Pass") xpass=$n ;;
		Skipped) skip=$n ;;
		Timeout) tmo=$n ;;
		esac
	done <"$file"
	[ "$found" = 1 ] || return 1
	passed=$((passed + ok + xfail))
	failed=$((failed + fail + xpass + tmo))
	skipped=$((skipped + skip))
	return 0
}

# build DIR COMPILER [meson options...]: configure (once) and compile.
build() {
	local dir=$1 cc=$2
	shift 2
	if [ -f "$dir/build.ninja" ]; then
		meson setup --reconfigure "$dir" "$@" || return 1
	else
		CC=$cc meson setup "$dir" "$@" || return 1
	fi
	ninja -C "$dir"
}

# run_tests DIR LABEL [meson test options...]
run_tests() {
	local dir=$1 label=$2 out rc
	shift 2
	out=$(mktemp)
	meson test -C "$dir" --print-errorlogs "$@" 2>&1 | tee "$out"
	rc=${PIPESTATUS[0]}
	if ! add_summary "$out"; then
		echo "test.sh: no test summary from meson test ($label), exit $rc"
		failed=$((failed + 1))
		problems+=("$label: meson test did not run (exit $rc)")
	elif [ "$rc" -ne 0 ]; then
		hard_error=1
		problems+=("$label: meson test exited $rc, see $dir/meson-logs/testlog.txt")
	fi
	rm -f "$out"
}

say "dependencies"
if ! bash scripts/install-deps.sh </dev/null; then
	echo "test.sh: installing the dependencies failed; trying anyway"
	problems+=("install-deps.sh failed")
fi

# gate PROBLEM COMMAND...: run a check that counts as one test; PROBLEM
# is what the summary says when it fails.
gate() {
	local problem=$1
	shift
	if "$@"; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
		problems+=("$problem")
	fi
}

say "style: clang-format over every C file (scripts/check-format.sh)"
gate "C files not formatted: run scripts/check-format.sh --fix" \
	bash scripts/check-format.sh

say "size: files and functions within bounds (scripts/check-size.sh)"
gate "a file or a function is over its size bound (scripts/check-size.sh -v)" \
	bash scripts/check-size.sh

mult=${IMAPFS_TEST_TIMEOUT_MULTIPLIER:-1}

say "gcc build (warnings are errors)"
if build build-gcc gcc -Dwerror=true; then
	say "gcc: all test suites"
	run_tests build-gcc gcc -t "$mult"
else
	failed=$((failed + 1))
	problems+=("gcc build failed")
fi

if [ "${IMAPFS_TEST_SANITIZE:-1}" != 0 ]; then
	say "clang build with AddressSanitizer and UndefinedBehaviorSanitizer"
	# UBSan stops at its first finding instead of printing and going
	# on, so the test that caused it fails (the harness also fails a
	# test on any sanitizer report its daemons write).
	if build build-clang-asan clang -Dwerror=true \
		-Db_sanitize=address,undefined -Db_lundef=false \
		-Dc_args=-fno-sanitize-recover=all; then
		say "clang + sanitizers: unit and integration suites"
		run_tests build-clang-asan clang-asan --suite unit \
			--suite integration -t "${IMAPFS_TEST_TIMEOUT_MULTIPLIER:-3}"
	else
		failed=$((failed + 1))
		problems+=("clang sanitizer build failed")
	fi
fi

if [ -f tests/fuzz/run.sh ]; then
	say "fuzzing (tests/fuzz/run.sh, ${IMAPFS_FUZZ_SECONDS:-60}s per target)"
	gate "fuzzing failed (tests/fuzz/run.sh)" \
		env IMAPFS_FUZZ_SECONDS="${IMAPFS_FUZZ_SECONDS:-60}" \
		IMAPFS_BUILD_DIR="$root/build-fuzz" \
		timeout 1800 bash tests/fuzz/run.sh </dev/null
fi

say "summary"
for p in "${problems[@]+"${problems[@]}"}"; do
	echo "problem: $p"
done
summary="$passed passed, $failed failed"
if [ "$skipped" -gt 0 ]; then
	summary="$summary, $skipped skipped"
fi
echo "$summary"
[ "$failed" -eq 0 ] && [ "$hard_error" -eq 0 ]
