#!/usr/bin/env python3
"""ls_layouts.py: ls -l of one large folder in the eml, parts and maildir
layouts (L/cur in maildir), side by side in the same run (a fresh cache
each mount, so every ls -l is cold: the listing comes from the server),
interleaved and repeated so that the noise of a shared machine hits all
three; prints medians.

    python3 tests/bench/ls_layouts.py [N]     (default 100000 messages)

Needs what the integration tests need (root, /dev/fuse, dovecot-imapd);
IMAPFS_BIN names the daemon (default build/fs/imapfs)."""

import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "integration"))
import imapfs_harness as h  # noqa: E402

RUNS = 3


def ls_l(path):
    t0 = time.monotonic()
    r = subprocess.run(["ls", "-l", path], stdout=subprocess.PIPE,
                       check=True)
    return time.monotonic() - t0, len(r.stdout.splitlines())


def body(t):
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100000
    dc = h.Dovecot()
    w = h.MaildirWriter(dc)
    for i in range(n):
        w.add("L", h.make_message("m%d" % i, "Message number %d" % i,
                                  1_700_000_000 + i, body="x" * 2000))
    w.finish()
    dc.start()
    with dc.client() as c:  # Dovecot builds its indexes before timing
        c.metadata("L")
    times = {"eml": [], "parts": [], "maildir": []}
    for run in range(RUNS):
        order = list(times)[run % 3:] + list(times)[:run % 3]
        for layout in order:
            m = h.Mount(dc, args=["--layout=" + layout]).start()
            d = m.path("L", "cur") if layout == "maildir" else m.path("L")
            cold, lines = ls_l(d)
            warm, _ = ls_l(d)
            times[layout].append((cold, warm))
            h.log("# %-7s run %d: ls -l %.2fs (%d lines), again %.2fs" %
                  (layout, run, cold, lines, warm))
            m.unmount()
    for layout, v in times.items():
        h.log("# median %-7s: ls -l %.2fs, again %.2fs" % (
            layout, statistics.median(x[0] for x in v),
            statistics.median(x[1] for x in v)))


if __name__ == "__main__":
    h.Test("ls-layouts").run(body)
