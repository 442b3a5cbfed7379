#!/usr/bin/env python3
"""test_mixed: single connections fail, the mount does not.

1. A cold grep -rc over a few thousand messages, through faultproxy with
   --timeout=3, while each new connection draws a fault from a seeded mix:
   a cut, a reset, or a stall of that connection alone for longer than
   the timeout (the others go on). Faults are spaced so that a retry on a
   fresh connection can succeed. The grep output must be exactly the
   fault-free one, with no Input/output error at all; every cached body
   equals the server's; the daemon exits 0.

2. After an outage a folder reads as fast as before it: a reader going
   through a folder in order meets an outage (the proxy refuses, the pool's
   prefetch jobs are dropped), the server comes back, and the reader goes
   on. From then on the daemon must fetch in batches again, not one message
   per round trip (it did, until the reader passed the old prefetch mark).
   Counted from the daemon's -d log: UID FETCH commands per message read.

IMAPFS_TEST_SEED sets the fault seed (default: random, printed).
"""

import os
import random
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import faultlib as fl  # noqa: E402
from faultlib import h  # noqa: E402

TIMEOUT = 3
GREP_LIMIT = 150
FOLDERS = ["Bulk", "Lists/Daily", "Lists/Weekly"]
PER_FOLDER = 900
SEQ = 400  # messages of the folder read in order in part 2
WEIGHTS = {"close": 1, "reset": 1, "stall": 2}


def part_mixed(t, dc, proxy, data, expected, seed):
    m = fl.proxied_mount(dc, proxy, args=["--timeout=%d" % TIMEOUT]).start()
    before = proxy.counters()
    proxy.mix(seed=seed, lo=20_000, hi=400_000, weights=WEIGHTS,
              hold=TIMEOUT + 2.0, spacing=350_000, limit=14)
    try:
        r = fl.run_grep(m.mountpoint, timeout=GREP_LIMIT,
                        on_hang=fl.hang_handler(m))
    finally:
        proxy.resume()
    after = proxy.counters()
    fired = {k: after[k] - before[k] for k in ("cuts", "resets", "stalls")}
    h.log("#   grep with faults: %s; faults %r; %d connections" % (
        r.summary(), fired, after["connections"] - before["connections"]))
    t.check(fired["stalls"] >= 1 and sum(fired.values()) >= 4,
            "mixed: faults were injected during the grep (%r)" % fired)
    t.all_ok("mixed: grep -rc with one connection at a time failing gives "
             "exactly the fault-free output, no EIO (%s)" % r.summary(),
             fl.grep_problems(r, expected, False))
    fl.check_cache(t, "mixed", m.cache_dir, data)
    t.check(m.proc.poll() is None, "mixed: the daemon is still running")
    t.equal(m.unmount(), 0, "mixed: unmount, the daemon exits 0")


def fetches_in(log_text):
    """UID FETCH commands of bodies in a piece of the daemon's -d log."""
    return len(re.findall(r"C: \S+ UID FETCH \S+ \(UID BODY\.PEEK\[\]",
                          log_text))


def part_prefetch(t, dc, proxy, data):
    m = fl.proxied_mount(dc, proxy, args=["--timeout=%d" % TIMEOUT,
                                          "-d"]).start()
    d = os.path.join(m.mountpoint, "Seq")
    names = [n for _, n in sorted(h.list_message_files(d).items())]
    t.equal(len(names), SEQ, "prefetch: Seq lists %d messages" % SEQ)
    hang = fl.hang_handler(m)

    def read(i):
        rc, out, err, el = fl.cat(os.path.join(d, names[i]), timeout=30,
                                  on_hang=hang)
        return rc == 0

    # In order: the prefetch window opens.
    for i in range(12):
        read(i)
    # The outage: the queued prefetch jobs fail; the reader goes on and
    # gets what was cached, EIO for the rest.
    proxy.refuse()
    failed = sum(not read(i) for i in range(12, 40))
    h.log("#   prefetch: %d of 28 reads failed during the outage" % failed)
    proxy.resume()
    # The pool's backoff ends; then the same reader goes on in order.
    deadline = time.monotonic() + 30
    while not read(40) and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(0.5)  # let the retries' own log lines land first
    offset = len(m.stderr_text())
    ok = sum(read(i) for i in range(41, SEQ))
    n = fetches_in(m.stderr_text()[offset:])
    reads = SEQ - 41
    t.equal(ok, reads, "prefetch: after the outage every message reads")
    t.check(n <= reads // 4,
            "prefetch: after the outage %s messages took %s body FETCH "
            "commands (batches, at most %d)" % (reads, n, reads // 4))
    bad = [names[i] for i in range(SEQ)
           if h.read_file(os.path.join(d, names[i])) !=
           data.bodies[("Seq", h.uid_of_name(names[i]))]]
    t.all_ok("prefetch: every message of Seq equals the server's", bad)
    t.equal(m.unmount(), 0, "prefetch: unmount, the daemon exits 0")


def body(t):
    seed = int(os.environ.get("IMAPFS_TEST_SEED", "0")) or \
        random.randrange(1, 1 << 30)
    h.log("# seed %d (IMAPFS_TEST_SEED repeats it)" % seed)
    dc = h.Dovecot()
    h.seed_core(dc, large=False)
    fl.seed_small(dc, FOLDERS, PER_FOLDER)
    fl.seed_small(dc, ["Seq"], SEQ, seed=5)
    dc.start()
    data = fl.ServerData(dc)
    h.log("# server: %d messages, %d bytes" % (len(data.bodies), data.total))
    proxy = fl.start_proxy(dc)

    m0 = fl.proxied_mount(dc, proxy, args=["--timeout=%d" % TIMEOUT]).start()
    expected = fl.expected_grep(m0.mountpoint, data)
    r = fl.run_grep(m0.mountpoint, timeout=GREP_LIMIT,
                    on_hang=fl.hang_handler(m0))
    h.log("#   baseline grep: %s" % r.summary())
    t.all_ok("baseline: grep -rc through the proxy without faults is exact",
             fl.grep_problems(r, expected, False))
    t.equal(m0.unmount(), 0, "baseline: unmount, the daemon exits 0")

    part_mixed(t, dc, proxy, data, expected, seed)
    part_prefetch(t, dc, proxy, data)


if __name__ == "__main__":
    h.Test("faults: one connection at a time fails").run(body)
