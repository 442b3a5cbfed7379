#!/usr/bin/env python3
"""test_cache_limits: --cache-size bounds the cache; a full disk does not
break reads.

1. --cache-size=1M, through faultproxy: read 40 messages of 30 to 120 kB
   (about 3 MB) one by one; after every read the body files under the cache
   dir total at most 1 MiB plus the largest message read; some were
   evicted. After a remount on the same cache dir every evicted message
   reads correctly again, and the proxy carried at least their bytes (they
   were fetched again); the bound still holds; every body file left equals
   the server's.
2. The cache dir is a 2 MB tmpfs: reading every message (5 MB for the large
   one, about 4 MB in all besides) returns the server's bytes every time
   (served without caching when the body does not fit), every body file that
   made it to the disk is complete, and the daemon's stderr has exactly one
   line saying that the disk is full.
"""

import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import faultlib as fl  # noqa: E402
from faultlib import h  # noqa: E402

SIZE = 1 << 20
SIZED = "Sized"
TMPFS = "2m"
FULL_RE = re.compile(r"no space|disk (is )?full|ENOSPC|cache (is )?full|"
                     r"out of space", re.I)


def read_one(t, m, data, k, names):
    folder, uid = k
    p = os.path.join(m.mountpoint, *folder.split("/"), names[k])
    rc, out, err, el = fl.cat(p, timeout=60, on_hang=fl.hang_handler(m))
    if rc != 0:
        return "%s: exit %s after %.1fs: %s" % (p, rc, el, err.strip())
    if out != data.bodies[k]:
        return "%s: %d bytes, server has %d%s" % (
            p, len(out), len(data.bodies[k]),
            "" if len(out) != len(data.bodies[k]) else " (content differs)")
    return None


def file_names(m, data, folders):
    names = {}
    for f in folders:
        d = os.path.join(m.mountpoint, *f.split("/"))
        for uid, n in h.list_message_files(d).items():
            names[(f, uid)] = n
    return names


def part_size(t, dc, data, proxy):
    work = h.make_tempdir("imapfs-faults-size-")
    cache = os.path.join(work, "cache")
    m = fl.proxied_mount(dc, proxy, cache_dir=cache,
                         args=["--cache-size=1M"])
    r = m.attempt(timeout=30)
    if not t.check(r.mounted, "--cache-size=1M is accepted and mounts",
                   "exit %s: %s" % (r.rc, r.stderr.strip()[-500:])):
        m.cleanup()
        return
    keys = sorted(k for k in data.bodies if k[0] == SIZED)
    names = file_names(m, data, [SIZED])
    problems = []
    over = []
    largest = 0
    read = 0
    for k in keys:
        err = read_one(t, m, data, k, names)
        if err:
            problems.append(err)
        largest = max(largest, len(data.bodies[k]))
        read += len(data.bodies[k])
        total = fl.cache_body_bytes(cache)
        if total > SIZE + largest:
            over.append("after %d bytes read: %d bytes of bodies cached "
                        "(limit %d)" % (read, total, SIZE + largest))
    t.all_ok("--cache-size: every message reads correctly (%d messages, "
             "%d bytes)" % (len(keys), read), problems)
    t.all_ok("--cache-size: after every read the cached bodies total at "
             "most 1 MiB + the largest message (%d)" % (SIZE + largest),
             over)
    cached = {(data.by_key.get(kk.split("-", 1)[0]), uid)
              for kk, uv, uid, p in fl.cache_body_files(cache)}
    evicted = [k for k in keys if k not in cached]
    h.log("#   %d of %d messages evicted, %d bytes of bodies cached" % (
        len(evicted), len(keys), fl.cache_body_bytes(cache)))
    t.check(len(evicted) > 0, "--cache-size: messages were evicted (%d)" %
            len(evicted))
    t.equal(m.unmount(), 0, "--cache-size: unmount, the daemon exits 0")

    m2 = fl.proxied_mount(dc, proxy, cache_dir=cache,
                          args=["--cache-size=1M"]).start()
    names = file_names(m2, data, [SIZED])
    before = proxy.counters()["s2c"]
    problems = [e for e in (read_one(t, m2, data, k, names)
                            for k in evicted) if e]
    moved = proxy.counters()["s2c"] - before
    want = sum(len(data.bodies[k]) for k in evicted)
    t.all_ok("--cache-size: after a remount every evicted message reads "
             "correctly (%d)" % len(evicted), problems)
    t.check(moved >= want, "--cache-size: they were fetched again (%d "
            "bytes from the server, their bodies are %d)" % (moved, want))
    total = fl.cache_body_bytes(cache)
    t.check(total <= SIZE + largest, "--cache-size: the bound still holds "
            "(%d bytes of bodies)" % total)
    t.equal(m2.unmount(), 0, "--cache-size: unmount, the daemon exits 0")
    fl.check_cache(t, "--cache-size", cache, data)


def part_full(t, dc, data):
    work = h.make_tempdir("imapfs-faults-full-")
    cache = os.path.join(work, "tmpfs")
    os.mkdir(cache)
    h.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0700" % TMPFS,
           "imapfs-faults", cache])
    h.add_cleanup(lambda: subprocess.run(
        ["umount", "-l", cache], stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30))
    m = fl.mount(dc, cache_dir=cache).start()
    folders = sorted(data.view["messages"])
    names = file_names(m, data, folders)
    problems = [e for e in (read_one(t, m, data, k, names)
                            for k in sorted(data.bodies)) if e]
    t.all_ok("full disk: every message reads correctly (%d messages, %d "
             "bytes, cache on a %s tmpfs)" % (len(data.bodies), data.total,
                                               TMPFS), problems)
    st = os.statvfs(cache)
    h.log("#   tmpfs: %d of %d kB free" % (st.f_bavail * st.f_frsize // 1024,
                                           st.f_blocks * st.f_frsize //
                                           1024))
    # A second pass: the bodies that did not fit are fetched again.
    problems = [e for e in (read_one(t, m, data, k, names)
                            for k in sorted(data.bodies)) if e]
    t.all_ok("full disk: a second pass reads correctly too", problems)
    t.check(m.proc.poll() is None, "full disk: the daemon is still running")
    lines = [x for x in m.stderr_text().splitlines() if FULL_RE.search(x)]
    h.log("#   stderr lines about the full disk: %r" % lines[:5])
    t.check(len(lines) == 1, "full disk: the daemon logs exactly one clear "
            "line about it (%d)" % len(lines), "\n      ".join(lines[:10]))
    t.equal(m.unmount(), 0, "full disk: unmount, the daemon exits 0")
    fl.check_cache(t, "full disk", cache, data)
    t.all_ok("full disk: no temp file left", fl.cache_temp_files(cache))


def body(t):
    dc = h.Dovecot()
    h.seed_core(dc)
    fl.seed_bulk(dc, per_folder=40, folders=[SIZED], seed=21,
                 sizes=((30000, 120000, 1.0),))
    dc.start()
    data = fl.ServerData(dc)
    h.log("# server: %d messages, %d bytes, largest %d" % (
        len(data.bodies), data.total, data.largest))
    proxy = fl.start_proxy(dc)
    part_size(t, dc, data, proxy)
    part_full(t, dc, data)


if __name__ == "__main__":
    h.Test("faults: cache size bound and full disk").run(body)
