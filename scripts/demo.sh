#!/usr/bin/env bash
# Quick start 1: install the dependencies, build imapfs, start a throwaway
# Dovecot on loopback with sample mail, and mount it.
#
#   scripts/demo.sh          start (again) and mount at /tmp/imapfs-demo/mail
#   scripts/demo.sh stop     unmount and stop the demo Dovecot
#
# Run as root on Debian 12 (the demo mailbox belongs to the system user
# imapfs-test, which the harness creates). IMAPFS_DEMO_DIR and
# IMAPFS_BUILD_DIR move the demo directory and the build directory.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
demo=${IMAPFS_DEMO_DIR:-/tmp/imapfs-demo}
mnt=$demo/mail
build=${IMAPFS_BUILD_DIR:-$root/build}
harness=$root/tests/integration/imapfs_harness.py
export PYTHONDONTWRITEBYTECODE=1

is_mounted() {
	# The mount point, with octal escapes, is field 5 of mountinfo.
	awk -v mp="$1" '$5 == mp { found = 1 } END { exit !found }' \
		/proc/self/mountinfo
}

stop_demo() {
	if is_mounted "$mnt"; then
		fusermount3 -u "$mnt" || fusermount3 -u -z "$mnt" || true
	fi
	if [ -f "$demo/demo.json" ]; then
		python3 "$harness" demo-stop --dir "$demo"
	fi
}

case ${1:-start} in
stop)
	stop_demo
	echo "demo stopped"
	exit 0
	;;
start) ;;
*)
	echo "usage: $0 [start|stop]" >&2
	exit 2
	;;
esac

bash "$root/scripts/install-deps.sh" </dev/null

if [ ! -f "$build/build.ninja" ]; then
	meson setup "$build" "$root"
fi
ninja -C "$build"

stop_demo
mkdir -p "$demo"
chmod 755 "$demo"
mkdir -p "$mnt"

vars=$(python3 "$harness" demo --dir "$demo")
eval "$vars"

"$build/fs/imapfs" \
	--cafile="$IMAPFS_DEMO_CAFILE" \
	--password-file="$IMAPFS_DEMO_PASSWORD_FILE" \
	--cache-dir="$demo/cache" \
	"$IMAPFS_DEMO_URL" "$mnt"

cat <<EOF

imapfs is mounted at $mnt
($IMAPFS_DEMO_MESSAGES sample messages on a throwaway Dovecot at
$IMAPFS_DEMO_URL)

Try:
  ls $mnt
  ls -l $mnt/INBOX
  cat "$mnt/INBOX/1 Hello from imapfs.eml"
  grep -rl imapfs-needle $mnt
  find $mnt -type f | wc -l

The same server over STARTTLS, mounted by hand:
  $build/fs/imapfs --cafile=$IMAPFS_DEMO_CAFILE \\
      --password-file=$IMAPFS_DEMO_PASSWORD_FILE \\
      $IMAPFS_DEMO_STARTTLS_URL /some/empty/dir

Stop (unmount and stop Dovecot):
  $0 stop
EOF
