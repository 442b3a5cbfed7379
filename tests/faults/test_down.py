#!/usr/bin/env python3
"""test_down: the server goes away while mounted, then comes back.

A first mount (through faultproxy, --timeout=3) reads some messages and
lists some folders, and is unmounted. A second mount on the same cache dir
then sees the server go away in two ways:

- refused: the proxy stops listening and resets the open connections;
- stalled: the proxy forwards nothing, on old and new connections, without
  closing anything (a black hole: the case that hangs sshfs).

Each time: every message read before still reads correctly from the cache;
an uncached message and a folder never listed before fail with EIO in less
than timeout + 3 s (each tool runs in a child process with a timeout of its
own: a hang fails the test instead of hanging it); while stalled the daemon
does not reconnect in a tight loop. When the proxy forwards again, the same
reads succeed without a remount (polled for up to 60 s).
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import faultlib as fl  # noqa: E402
from faultlib import h  # noqa: E402

TIMEOUT = 3
LIMIT = TIMEOUT + 3
RECOVER = 60


def ls(path, timeout=20, on_hang=None):
    """(rc, stdout bytes, stderr text, elapsed); rc None when killed."""
    rc, out, err, el = fl.run(["ls", "-1", "--", path], timeout,
                              on_hang=on_hang)
    return rc, out, err.decode("utf-8", "replace"), el


def body(t):
    dc = h.Dovecot()
    msgs = h.seed_core(dc, large=False)
    dc.start()
    data = fl.ServerData(dc)
    proxy = fl.start_proxy(dc)
    work = h.make_tempdir("imapfs-faults-down-")
    cache = os.path.join(work, "cache")
    args = ["--timeout=%d" % TIMEOUT]

    def key(k):
        m = [x for x in msgs if x.key == k][0]
        return (m.folder, m.uid)

    # Read while the server is up: all of INBOX and Projects. Q&A and
    # Entwürfe are listed but none of their messages is read (a message
    # next to ones read in order may be prefetched); Projects/Alpha and
    # 日本語 are never listed.
    uncached = [key("qa"), key("draft")]
    never_listed = ["Projects/Alpha", "日本語"]
    # (--list-ahead=0: reading Projects would list Projects/Alpha ahead)
    m1 = fl.proxied_mount(dc, proxy, cache_dir=cache,
                          args=args + ["--list-ahead=0"]).start()
    names = {}
    for folder in ("INBOX", "Projects", "Q&A", "Entwürfe"):
        d = os.path.join(m1.mountpoint, folder)
        for uid, n in h.list_message_files(d).items():
            names[(folder, uid)] = os.path.join(folder, n)
    cached = sorted(k for k in names if k[0] in ("INBOX", "Projects"))
    problems = []
    for k in cached:
        if h.read_file(os.path.join(m1.mountpoint, names[k])) != \
                data.bodies[k]:
            problems.append(names[k])
    t.all_ok("server up: %d messages read correctly" % len(cached),
             problems)
    t.equal(m1.unmount(), 0, "first mount: unmount, the daemon exits 0")
    present = {(data.by_key.get(kk.split("-", 1)[0]), uid)
               for kk, uv, uid, p in fl.cache_body_files(cache)}
    t.check(not present & set(uncached), "the messages never read are not "
            "in the cache", "cached: %s" % sorted(present & set(uncached)))
    t.check(set(cached) <= present, "every message read is in the cache "
            "after the unmount", "missing: %s" % sorted(set(cached) - present))

    m = fl.proxied_mount(dc, proxy, cache_dir=cache, args=args).start()
    hang = fl.hang_handler(m)

    def path(k):
        return os.path.join(m.mountpoint, names[k])

    def check_cached(label):
        problems = []
        times = []
        for k in cached:
            rc, out, err, el = fl.cat(path(k), timeout=20, on_hang=hang)
            times.append(el)
            if rc != 0 or out != data.bodies[k]:
                problems.append("%s: exit %s after %.1fs, %d bytes (want "
                                "%d) %s" % (names[k], rc, el, len(out),
                                            len(data.bodies[k]),
                                            err.strip()))
            elif el >= LIMIT:
                problems.append("%s: took %.1fs" % (names[k], el))
        t.all_ok("%s: every message read before reads correctly from the "
                 "cache, each within %ds (%d files, slowest %.1fs)" % (
                     label, LIMIT, len(cached), max(times)), problems)
        for folder in ("INBOX", "Projects"):
            rc, out, err, el = ls(os.path.join(m.mountpoint, folder),
                                  on_hang=hang)
            t.check(rc == 0 and el < LIMIT, "%s: ls %s (listed before) "
                    "works (exit %s after %.1fs)" % (label, folder, rc, el),
                    err.strip())

    def check_fails(label, k, folder):
        for attempt in (1, 2):
            rc, out, err, el = fl.cat(path(k), timeout=LIMIT + 20,
                                    on_hang=hang)
            h.log("#   %s: uncached %s, attempt %d: exit %s after %.1fs: %s"
                  % (label, names[k], attempt, rc, el, err.strip()))
            t.check(rc is not None and rc != 0 and el < LIMIT and
                    "Input/output error" in err and not out,
                    "%s: an uncached message fails with EIO within %ds "
                    "(attempt %d: %.1fs)" % (label, LIMIT, attempt, el),
                    "exit %s, %d bytes, %r" % (rc, len(out), err.strip()))
            d = os.path.join(m.mountpoint, *folder.split("/"))
            rc, out, err, el = ls(d, timeout=LIMIT + 20, on_hang=hang)
            h.log("#   %s: ls never-listed %s, attempt %d: exit %s after "
                  "%.1fs: %s" % (label, folder, attempt, rc, el,
                                 err.strip()))
            t.check(rc is not None and rc != 0 and el < LIMIT and
                    "Input/output error" in err,
                    "%s: listing %s (never listed) fails with EIO within "
                    "%ds (attempt %d: %.1fs)" % (label, folder, LIMIT,
                                                 attempt, el),
                    "exit %s, %r, %r" % (rc, out[:200], err.strip()))

    def check_recovers(label, k, folder):
        d = os.path.join(m.mountpoint, *folder.split("/"))
        want_uids = sorted(data.view["messages"][folder])
        t0 = time.monotonic()
        tries = 0
        while True:
            tries += 1
            rc, out, err, el = fl.cat(path(k), timeout=LIMIT + 20,
                                    on_hang=hang)
            ok_read = rc == 0 and out == data.bodies[k]
            rc2, lsout, err2, el2 = ls(d, timeout=LIMIT + 20, on_hang=hang)
            uids = sorted(h.uid_of_name(n) for n in
                          lsout.decode("utf-8", "replace").splitlines())
            ok_ls = rc2 == 0 and uids == want_uids
            if (ok_read and ok_ls) or time.monotonic() - t0 > RECOVER:
                break
            time.sleep(1)
        el = time.monotonic() - t0
        h.log("#   %s: recovered after %.1fs (%d tries)" % (label, el, tries))
        t.check(ok_read, "%s: after the server is back the uncached "
                "message reads correctly without a remount (within %ds)" %
                (label, RECOVER), "exit %s, %d bytes (want %d): %s" % (
                    rc, len(out), len(data.bodies[k]), err.strip()))
        t.check(ok_ls, "%s: after the server is back %s lists its "
                "messages without a remount (within %ds)" % (
                    label, folder, RECOVER),
                "exit %s, UIDs %s (want %s): %s" % (rc2, uids, want_uids,
                                                    err2.strip()))

    # 1. Refused: nothing listens any more.
    proxy.refuse()
    check_cached("refused")
    check_fails("refused", uncached[0], never_listed[0])
    check_cached("refused, later")
    proxy.resume()
    check_recovers("refused", uncached[0], never_listed[0])
    t.check(m.proc.poll() is None, "refused: the daemon is still running")

    # 2. Stalled: connections stay open, nothing is forwarded.
    before = proxy.counters()["connections"]
    t_stall = time.monotonic()
    proxy.stall()
    # The uncached read first: it is the one that meets the stall.
    check_fails("stalled", uncached[1], never_listed[1])
    check_cached("stalled")
    # Give the daemon time to reconnect a few times, then count.
    time.sleep(max(0.0, 10 - (time.monotonic() - t_stall)))
    n = proxy.counters()["connections"] - before
    stalled_for = time.monotonic() - t_stall
    t.check(n < 50, "stalled: no reconnect storm (%d connections in %.0fs)"
            % (n, stalled_for))
    proxy.resume()
    check_recovers("stalled", uncached[1], never_listed[1])
    check_cached("after both outages")
    t.check(m.proc.poll() is None, "the daemon is still running")
    t.equal(m.unmount(), 0, "unmount, the daemon exits 0")
    fl.check_cache(t, "at the end", cache, data)


if __name__ == "__main__":
    h.Test("faults: server down while mounted").run(body)
