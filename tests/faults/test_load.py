#!/usr/bin/env python3
"""test_load: 16 parallel readers over --connections=4.

Three folders of 1000 small generated messages each (plus the core ones),
all uncached at first. For IMAPFS_FAULTS_LOAD_SECONDS (default 60; CI sets
20) sixteen readers each cat random files (and now and then list a folder),
every read in a child process with a timeout of --timeout + 5 s, and compare
the bytes with the server's. Meanwhile the daemon's RSS is sampled every
second. Checks: no error and no wrong byte; every reader finishes its last
read within the timeout (no deadlock); the RSS stays flat (the last sample
is within 20% + 8 MB of the sample after the first 10 s); the daemon exits
0 on unmount.
"""

import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import faultlib as fl  # noqa: E402
from faultlib import h  # noqa: E402

READERS = 16
CONNECTIONS = 4
TIMEOUT = 10
READ_LIMIT = TIMEOUT + 5
FOLDERS = ["Load/A", "Load/B", "Load/C"]
PER_FOLDER = 1000


def body(t):
    seconds = int(os.environ.get("IMAPFS_FAULTS_LOAD_SECONDS") or 60)
    dc = h.Dovecot()
    h.seed_core(dc, large=False)
    fl.seed_small(dc, FOLDERS, PER_FOLDER)
    dc.start()
    data = fl.ServerData(dc)
    h.log("# server: %d messages, %d bytes; %d readers for %ds" % (
        len(data.bodies), data.total, READERS, seconds))

    env = {}
    if "address" in os.environ.get("IMAPFS_SANITIZE", ""):
        # ASan's quarantine would look like growth: keep it small.
        env["ASAN_OPTIONS"] = ":".join(
            x for x in (os.environ.get("ASAN_OPTIONS"),
                        "quarantine_size_mb=8") if x)
    m = fl.mount(dc, args=["--connections=%d" % CONNECTIONS,
                          "--timeout=%d" % TIMEOUT], env=env).start()
    pid = fl.daemon_pid(m)
    hang = fl.hang_handler(m)
    files = []
    for (folder, uid) in sorted(data.bodies):
        d = os.path.join(m.mountpoint, *folder.split("/"))
        name = fl.listing(d).get(uid)
        if name is None:
            raise h.TestFailure("%s UID %d has no file" % (folder, uid))
        files.append((os.path.join(d, name), (folder, uid)))
    dirs = sorted({os.path.dirname(p) for p, _ in files})

    lock = threading.Lock()
    errors = []
    reads = [0]
    seen = set()
    slowest = [0.0, None]
    t0 = time.monotonic()
    deadline = t0 + seconds
    stop_sampling = threading.Event()
    series = []

    def reader(i):
        # A reader that dies would only read less: its death is an error.
        try:
            read_until_deadline(i)
        except Exception as e:
            with lock:
                errors.append("reader %d died: %r" % (i, e))

    def read_until_deadline(i):
        rnd = random.Random(1000 + i)
        while time.monotonic() < deadline:
            if rnd.random() < 0.03:
                d = rnd.choice(dirs)
                el0 = time.monotonic()
                try:
                    n = len(os.listdir(d))
                    if n == 0:
                        raise OSError("empty listing")
                except OSError as e:
                    with lock:
                        errors.append("reader %d: ls %s: %s" % (i, d, e))
                el = time.monotonic() - el0
                if el >= READ_LIMIT:
                    with lock:
                        errors.append("reader %d: ls %s took %.1fs" % (
                            i, d, el))
                continue
            p, k = rnd.choice(files)
            rc, out, err, el = fl.cat(p, timeout=READ_LIMIT, on_hang=hang)
            with lock:
                reads[0] += 1
                seen.add(k)
                if el > slowest[0]:
                    slowest[:] = [el, p]
                if rc is None:
                    errors.append("reader %d: %s: no answer within %ds" % (
                        i, p, READ_LIMIT))
                elif rc != 0:
                    errors.append("reader %d: %s: exit %d: %s" % (
                        i, p, rc, err.strip()))
                elif out != data.bodies[k]:
                    errors.append("reader %d: %s: %d bytes, server has %d" %
                                  (i, p, len(out), len(data.bodies[k])))

    def sampler():
        while not stop_sampling.is_set():
            series.append((time.monotonic() - t0, h.rss_kb(pid)))
            stop_sampling.wait(1.0)

    st = threading.Thread(target=sampler, daemon=True)
    st.start()
    threads = [threading.Thread(target=reader, args=(i,), daemon=True)
               for i in range(READERS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(max(0.1, deadline + READ_LIMIT + 10 - time.monotonic()))
    stop_sampling.set()
    st.join(5)
    stuck = [i for i, th in enumerate(threads) if th.is_alive()]
    elapsed = time.monotonic() - t0

    h.log("# %d reads in %.0fs (%.0f/s), %d distinct of %d files, slowest "
          "%.2fs (%s)" % (reads[0], elapsed, reads[0] / max(elapsed, 1),
                          len(seen), len(files), slowest[0], slowest[1]))
    h.log("# RSS (KiB) every second: " + " ".join(
        "%d" % kb if kb is not None else "-" for _, kb in series))
    t.check(not stuck, "every reader finished its last read within %ds "
            "(no deadlock)" % READ_LIMIT, "stuck readers: %s" % stuck)
    t.all_ok("no read failed and every read returned the server's bytes "
             "(%d reads)" % reads[0], errors)
    t.check(reads[0] >= READERS and len(seen) > len(files) // 4,
            "the readers read many files (%d reads, %d distinct)" % (
                reads[0], len(seen)))
    alive = m.proc.poll() is None
    t.check(alive, "the daemon is still running", "exit %s" % m.proc.poll())
    after10 = [kb for s, kb in series if s >= 10 and kb is not None]
    final = [kb for s, kb in series if kb is not None]
    if after10 and final:
        base = after10[0]
        last = final[-1]
        limit = base * 1.2 + 8 * 1024
        t.check(last <= limit, "RSS stays flat: %d KiB at the end, %d KiB "
                "after 10 s (limit %d KiB)" % (last, base, limit))
    else:
        t.check(False, "RSS sampled after 10 s", "series %r" % series)
    if alive:
        t.equal(m.unmount(), 0, "unmount, the daemon exits 0")


if __name__ == "__main__":
    h.Test("faults: 16 parallel readers").run(body)
