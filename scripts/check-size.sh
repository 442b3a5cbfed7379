#!/usr/bin/env bash
# The size rules of the Hacking section: no C file in fs/, imap/ or cache/
# over 1,200 lines, and no function there over 100 lines (from its opening
# brace to its closing one; in the house style both stand alone in column
# 0). Prints every offender and exits non-zero when there is one; with -v,
# also lists the ten longest functions.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

max_file=1200
max_func=100
status=0
all=$(mktemp)
trap 'rm -f "$all"' EXIT

for f in $(git ls-files 'fs/*.c' 'imap/*.c' 'cache/*.c'); do
	n=$(wc -l <"$f")
	if [ "$n" -gt "$max_file" ]; then
		echo "check-size: $f has $n lines (at most $max_file)"
		status=1
	fi
	# A function starts at a line "{" and ends at the next line "}";
	# its name is on the last line before the "{" that holds a "(".
	awk -v file="$f" '
		/\(/ && !/^[ \t]/ { sig = $0 }
		/^\{$/ { start = NR; name = sig }
		/^\}/ && start { print NR - start + 1, file ": " name; start = 0 }
	' "$f" >>"$all"
done

while read -r len where; do
	if [ "$len" -gt "$max_func" ]; then
		echo "check-size: $len lines in $where (at most $max_func)"
		status=1
	fi
done <"$all"

if [ "${1:-}" = -v ]; then
	echo "check-size: the ten longest functions"
	sort -rn "$all" | head -n 10
fi
[ "$status" = 0 ] && echo "check-size: every file and function within bounds"
exit $status
