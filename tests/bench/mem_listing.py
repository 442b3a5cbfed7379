#!/usr/bin/env python3
"""Anonymous memory of the daemon while it lists one large folder.

Generates N small messages (Maildir files) in folder M of a throwaway
Dovecot (kept in --work between runs when N matches), mounts it on an empty
cache, times `find M -mindepth 1 -maxdepth 1 -print -quit` (the first entry;
without -mindepth find prints M itself and never reads it), runs
`ls -l M` while sampling /proc/PID/status (RssAnon, VmHWM) every
20 ms, then unmounts and does the same after a remount on the same cache.
Prints peak RssAnon and VmHWM, in MB and in bytes per message.

  sudo python3 tests/bench/mem_listing.py --count 200000 [--work DIR]

Not a test: it asserts nothing (issue 11's memory target is <= 64 MB at
1,000,000 messages).
"""

import argparse
import os
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

import imapfs_harness as h  # noqa: E402
import bench  # noqa: E402  (its streaming raw client, for the warm-up)


status_kib = bench.status_kib


def generate(dc, count):
    marker = os.path.join(dc.dir, "generated-%d" % count)
    if os.path.exists(marker):
        return
    w = h.MaildirWriter(dc, uidvalidity=1234567)
    t0 = 1_600_000_000
    for i in range(count):
        data = ("From: Sender %d <s%d@example.org>\r\n"
                "Subject: Message number %d of the big folder\r\n"
                "Message-ID: <m%d@mem.test>\r\n\r\n"
                "Body of message %d.\r\n" % (i % 97, i % 97, i, i, i)
                ).encode()
        w.add("M", data, "S" if i % 2 else "", t0 + i)
    w.finish()
    h.chown_tree(dc.home, dc.uid, dc.gid)
    open(marker, "w").close()


def measure(dc, cache, count, what):
    m = h.Mount(dc, cache_dir=cache)
    m.start(timeout=300)
    peak = {"RssAnon": 0}
    done = threading.Event()

    def sample():
        while not done.is_set():
            v = status_kib(m.pid, "RssAnon")
            if v:
                peak["RssAnon"] = max(peak["RssAnon"], v)
            time.sleep(0.02)

    try:
        base = status_kib(m.pid, "RssAnon")
        th = threading.Thread(target=sample, daemon=True)
        th.start()
        first = ""
        if what == "cold" and os.environ.get("FIRST_SCANDIR"):
            # The first getdents() batch, as a program that shows entries
            # as they come sees it.
            t = time.monotonic()
            with os.scandir(m.path("M")) as it:
                next(it)
            first = "first entry (scandir) in %.2fs; " % (
                time.monotonic() - t)
        elif what == "cold":
            # What a file manager shows first: the listing streams on.
            t = time.monotonic()
            subprocess.run(["find", m.path("M"), "-mindepth", "1", "-maxdepth", "1",
                            "-print", "-quit"], stdout=subprocess.DEVNULL)
            first = "first entry in %.2fs; " % (time.monotonic() - t)
        t = time.monotonic()
        r = subprocess.run(["ls", "-l", "--color=never", m.path("M")],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        el = time.monotonic() - t
        n = len(r.stdout.splitlines()) - 1
        time.sleep(2)  # the background save of the listing
        done.set()
        th.join()
        after = status_kib(m.pid, "RssAnon")
        hwm = status_kib(m.pid, "VmHWM")
        print("%s: %sls -l of %d entries (exit %d) in %.2fs; RssAnon before "
              "%.1f MB, peak %.1f MB (%.0f B/msg), after %.1f MB; VmHWM "
              "%.1f MB (%.0f B/msg)" % (
                  what, first, n, r.returncode, el, base / 1024,
                  peak["RssAnon"] / 1024, peak["RssAnon"] * 1024 / count,
                  after / 1024, hwm / 1024, hwm * 1024 / count), flush=True)
    finally:
        m.unmount(timeout=120)
        m.cleanup()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=100000)
    ap.add_argument("--work", default="/var/tmp/imapfs-mem-listing")
    a = ap.parse_args()
    dc = h.Dovecot(workdir=os.path.join(a.work, "dovecot-%d" % a.count),
                   keep=True)
    with open(dc.conf, "a") as f:
        f.write("service imap {\n  vsz_limit = 4G\n}\n")
    t = time.monotonic()
    generate(dc, a.count)
    print("# %d messages ready in %.1fs" % (a.count, time.monotonic() - t),
          flush=True)
    dc.start()
    try:
        # Dovecot indexes a new Maildir on its first EXAMINE (minutes for
        # a million files): once here, outside what is measured.
        t = time.monotonic()
        bench.raw_pass(dc, ["M"], bench.LIST_ITEMS)
        print("# warm-up pass in %.1fs" % (time.monotonic() - t), flush=True)
        cache = os.path.join(a.work, "cache-%d" % a.count)
        subprocess.run(["rm", "-rf", cache])
        measure(dc, cache, a.count, "cold")
        measure(dc, cache, a.count, "remount")
    finally:
        dc.stop()


if __name__ == "__main__":
    main()
