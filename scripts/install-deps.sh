#!/usr/bin/env bash
# Install what imapfs needs to build and test on Debian 12, if missing.
# Idempotent and non-interactive: installs nothing (and does not touch the
# network) when everything is there already. Run as root, or with sudo
# available.
set -euo pipefail

packages=(
	build-essential gcc clang meson ninja-build pkg-config
	libfuse3-dev fuse3 libglib2.0-dev libssl-dev
	dovecot-imapd openssl attr isync python3
	libclang-rt-14-dev clang-format
	libsystemd-dev
	libjson-glib-dev libcurl4-openssl-dev
	libgmime-3.0-dev
	# readers of the maildir layout in tests/integration/test_maildir.py
	notmuch mutt
	# Cyrus in tests/integration/harness_servers.py (fetched, not
	# installed) finds its password plugin only at the system's path.
	libsasl2-modules
)

missing=()
for p in "${packages[@]}"; do
	status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	if [ "$status" != "install ok installed" ]; then
		missing+=("$p")
	fi
done

if [ ${#missing[@]} -eq 0 ]; then
	echo "install-deps: all ${#packages[@]} packages are installed"
	exit 0
fi

echo "install-deps: installing ${missing[*]}"
sudo=()
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1; then
		sudo=(sudo -n)
	else
		echo "install-deps: run as root to install: ${missing[*]}" >&2
		exit 1
	fi
fi

export DEBIAN_FRONTEND=noninteractive
apt_opts=(-y -q -o Dpkg::Options::=--force-confdef
	-o Dpkg::Options::=--force-confold)
# Retry once: a mirror may be briefly unreachable.
for attempt in 1 2; do
	if "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
		apt-get update -q </dev/null &&
		"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
			apt-get install "${apt_opts[@]}" --no-install-recommends \
			"${missing[@]}" </dev/null; then
		break
	fi
	if [ "$attempt" -eq 2 ]; then
		echo "install-deps: apt-get failed" >&2
		exit 1
	fi
	sleep 5
done

still=()
for p in "${missing[@]}"; do
	status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	[ "$status" = "install ok installed" ] || still+=("$p")
done
if [ ${#still[@]} -ne 0 ]; then
	echo "install-deps: still missing: ${still[*]}" >&2
	exit 1
fi
echo "install-deps: done"
