#!/usr/bin/env python3
"""test_cuts: network faults during a cold `grep -rc` over the whole account.

The account is the core suite plus a few hundred generated messages (some
up to 900 kB, the core's large one about 5 MB). Through faultproxy, with
--timeout=3, each phase mounts with a fresh cache dir and greps while the
proxy cuts every connection at seeded random byte offsets (server to client,
client to server, both with RST), stalls all traffic for longer than the
timeout, or resets every connection. Then, for each phase:

- the grep ended (no hang) and its output is exactly the output without
  faults, except that files (or folders) grep reported as "Input/output
  error" may be missing: a line that is there is always exactly right;
- with the faults gone, a second grep on the same mount gives exactly the
  output without faults (retried for up to 30 s while the daemon's backoff
  still answers EIO);
- every body file in the cache equals the server's BODY.PEEK[], and every
  file read through the mount does too;
- the daemon is still running and exits 0 on unmount.

IMAPFS_FAULTS_PHASES=name,name limits the phases (for debugging).
"""

import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import faultlib as fl  # noqa: E402
from faultlib import h  # noqa: E402

TIMEOUT = 3
GREP_LIMIT = 90
REGREP_WINDOW = 30
CHAOS_ROUNDS = 8
BUDGET = 280  # seconds for the whole test (meson allows 400)

# name, kind, parameters
PHASES = [
    ("cut-s2c-small", "cut", dict(lo=1_000, hi=300_000, direction="s2c",
                                  seed=1)),
    ("cut-s2c-large", "cut", dict(lo=20_000, hi=8_000_000, direction="s2c",
                                  seed=2)),
    ("cut-s2c-mid", "cut", dict(lo=50_000, hi=1_500_000, direction="s2c",
                                seed=11)),
    ("cut-c2s", "cut", dict(lo=200, hi=3_000, direction="c2s", seed=3)),
    ("cut-c2s-wide", "cut", dict(lo=500, hi=2_500, direction="c2s",
                                 seed=12, mode="reset")),
    ("cut-both-rst", "cut", dict(lo=5_000, hi=2_000_000, direction="both",
                                 seed=4, mode="reset")),
    ("stalls", "stall", dict(every=600_000, hold=TIMEOUT + 1.5, count=4)),
    ("stalls-short", "stall", dict(every=350_000, hold=TIMEOUT + 0.5,
                                   count=5)),
    ("resets", "reset", dict(lo=150_000, hi=1_500_000, seed=6, count=12)),
]


class Chaos:
    """Stalls or resets triggered by progress (bytes from the server), so
    that they land during the grep however fast the machine is."""

    def __init__(self, proxy, kind, p):
        self.proxy = proxy
        self.kind = kind
        self.p = p
        self.stop = threading.Event()
        self.done = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def finish(self):
        self.stop.set()
        self.thread.join(30)
        self.proxy.resume()

    def _s2c(self):
        return self.proxy.counters()["s2c"]

    def _run(self):
        p = self.p
        rnd = random.Random(p.get("seed", 0))

        def gap():
            if self.kind == "stall":
                return p["every"]
            return rnd.randint(p["lo"], p["hi"])

        next_at = self._s2c() + gap()
        while not self.stop.is_set() and self.done < p["count"]:
            if self._s2c() >= next_at:
                if self.kind == "stall":
                    self.proxy.stall()
                    self.stop.wait(p["hold"])
                    self.proxy.resume()
                else:
                    self.proxy.reset_all()
                self.done += 1
                next_at = self._s2c() + gap()
            self.stop.wait(0.005)


def run_phase(t, dc, proxy, data, expected, base_time, name, kind, p):
    h.log("# phase %s: %s %r" % (name, kind, p))
    proxy.resume()
    m = fl.proxied_mount(dc, proxy, args=["--timeout=%d" % TIMEOUT]).start()
    before = proxy.counters()
    chaos = None
    if kind == "cut":
        proxy.cut(p["lo"], p["hi"], p["direction"], p["seed"],
                  p.get("mode", "close"))
    else:
        chaos = Chaos(proxy, kind, p).start()
    # Stalls and resets are spread over several greps: once the daemon
    # gives up (EIO), a grep ends early, and the next one, with more of
    # the account cached, meets the next faults further on.
    rounds = []
    try:
        for i in range(1 if chaos is None else CHAOS_ROUNDS):
            if i:
                time.sleep(2)  # let the daemon's reconnect backoff pass
            r = fl.run_grep(m.mountpoint, timeout=GREP_LIMIT,
                            on_hang=fl.hang_handler(m))
            rounds.append(r)
            eio = [x for x in r.error_paths()
                   if x[1] == "Input/output error"]
            h.log("#   grep %d with faults: %s; %d EIO%s" % (
                i + 1, r.summary(), len(eio),
                "; %d %ss so far" % (chaos.done, kind) if chaos else ""))
            if r.rc is None or m.proc.poll() is not None:
                break
            if chaos and (chaos.done >= p["count"] or
                          (r.rc == 0 and not r.errors)):
                break
    finally:
        if chaos:
            chaos.finish()
        proxy.resume()
    after = proxy.counters()
    h.log("#   proxy: %d connections, %d cuts, %d resets, %d bytes to the "
          "daemon%s" % (
              after["connections"] - before["connections"],
              after["cuts"] - before["cuts"],
              after["resets"] - before["resets"],
              after["s2c"] - before["s2c"],
              ", %d %ss" % (chaos.done, kind) if chaos else ""))
    faults = (after["cuts"] - before["cuts"] + after["resets"] -
              before["resets"] + (chaos.done if kind == "stall" else 0))
    t.check(faults > 0, "%s: faults were injected during the grep (%d)" %
            (name, faults))
    problems = []
    for i, r in enumerate(rounds):
        problems += ["grep %d: %s" % (i + 1, x)
                     for x in fl.grep_problems(r, expected, True)]
    t.all_ok("%s: %d grep(s) with faults each ended within %ds and showed "
             "only exact lines (missing ones only where it reported EIO)" %
             (name, len(rounds), GREP_LIMIT), problems)
    if kind == "stall":
        # Each stall may cost its length plus one timeout, no more.
        took = sum(r.elapsed for r in rounds)
        limit = (base_time * 3 * len(rounds) +
                 p["count"] * (p["hold"] + TIMEOUT) + 10)
        t.check(took < limit, "%s: the greps took %.1fs, less than %.0fs "
                "(%d stalls of %.1fs, --timeout=%d)" % (
                    name, took, limit, chaos.done, p["hold"], TIMEOUT))
    fl.check_cache(t, name + " (right after the faults)", m.cache_dir, data,
                   min_files=0)
    alive = m.proc.poll() is None
    t.check(alive, "%s: the daemon survived the faults" % name,
            "exit %s" % m.proc.poll())
    if not alive:
        m.cleanup()
        return

    # No faults now: the exact output, soon.
    deadline = time.monotonic() + REGREP_WINDOW
    tries = 0
    while True:
        tries += 1
        r2 = fl.run_grep(m.mountpoint, timeout=GREP_LIMIT,
                         on_hang=fl.hang_handler(m))
        only_eio = r2.rc is not None and r2.errors and not \
            fl.grep_problems(r2, expected, True)
        if not only_eio or time.monotonic() > deadline:
            break
        time.sleep(2)
    h.log("#   grep without faults: %s (attempt %d)" % (r2.summary(), tries))
    t.all_ok("%s: then a grep without faults gives exactly the output "
             "without faults" % name, fl.grep_problems(r2, expected, False))
    fl.read_all_via_mount(t, name, m, data)
    fl.check_cache(t, name + " (at the end)", m.cache_dir, data)
    t.equal(m.unmount(), 0, "%s: unmount, the daemon exits 0" % name)


def body(t):
    deadline = time.monotonic() + BUDGET
    dc = h.Dovecot()
    h.seed_core(dc)
    fl.seed_bulk(dc, per_folder=150)
    dc.start()
    data = fl.ServerData(dc)
    h.log("# server: %d messages, %d bytes, largest %d" % (
        len(data.bodies), data.total, data.largest))
    proxy = fl.start_proxy(dc)

    m0 = fl.proxied_mount(dc, proxy, args=["--timeout=%d" % TIMEOUT]).start()
    expected = fl.expected_grep(m0.mountpoint, data)
    c0 = proxy.counters()
    r = fl.run_grep(m0.mountpoint, timeout=GREP_LIMIT,
                    on_hang=fl.hang_handler(m0))
    c1 = proxy.counters()
    h.log("#   baseline grep: %s; %d files hold the needle; %d bytes to "
          "the server, %d from it" % (
              r.summary(), sum(1 for x in expected if not x.endswith(":0")),
              c1["c2s"] - c0["c2s"], c1["s2c"] - c0["s2c"]))
    t.all_ok("baseline: grep -rc through the proxy without faults is exact",
             fl.grep_problems(r, expected, False))
    t.equal(m0.unmount(), 0, "baseline: unmount, the daemon exits 0")

    only = os.environ.get("IMAPFS_FAULTS_PHASES")
    for name, kind, p in PHASES:
        if only and name not in only.split(","):
            continue
        if time.monotonic() > deadline:
            # Hangs cost GREP_LIMIT each: stop before meson's timeout
            # kills the test and its cleanup.
            t.check(False, "%s: not run, the test used up its %ds" % (
                name, BUDGET))
            continue
        run_phase(t, dc, proxy, data, expected, r.elapsed, name, kind, p)


if __name__ == "__main__":
    h.Test("faults: cuts, stalls and resets during grep -r").run(body)
