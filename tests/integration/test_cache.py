#!/usr/bin/env python3
"""test_cache: read everything, unmount; with the server down a new mount
comes up offline; with the server up again, remount on the same cache dir and
stop the server while mounted: every file read before still reads the same
from the cache, listings still work, inode numbers are the same as before,
the cache dir is private (0700/0600) and holds no password."""

import errno
import os
import stat
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import imapfs_harness as h  # noqa: E402


def body(t):
    dc = h.Dovecot()
    msgs = h.seed_core(dc)
    dc.start()
    with dc.client() as client:
        view = h.server_view(client)
        flags_before = client.flags_snapshot()
        bodies = h.server_bodies(client, view)
    # One message is never read while the server is up.
    unread = [(x.folder, x.uid) for x in msgs if x.key == "budget"][0]

    work = h.make_tempdir("imapfs-cachetest-", 0o755)
    cache = os.path.join(work, "cache")

    # 1. Read everything (but one message) through a first mount; without
    # prefetch, which would fetch that one too (a folder read from its
    # first message on after a listing is a walk: fs/fetch.c).
    m1 = h.Mount(dc, cache_dir=cache, args=["--prefetch=off"]).start()
    files1 = h.compare_tree(t, m1, view)
    problems = []
    for key, p in sorted(files1.items()):
        if key == unread:
            continue
        if h.read_file(p) != bodies[key]:
            problems.append(p)
    t.all_ok("first mount: every file reads correctly (%d files)" %
             (len(files1) - 1), problems)
    ino1 = {k: os.lstat(p).st_ino for k, p in files1.items()}
    rel1 = {k: os.path.relpath(p, m1.mountpoint) for k, p in files1.items()}
    t.equal(m1.unmount(), 0, "first mount: unmount, the daemon exits 0")
    t.check(h.mount_info(m1.mountpoint) is None, "first mount: no mount left")

    # 2. Server down before the mount is ready: with this cache, the mount
    # comes up offline and says so in one line (tests/faults/test_offline.py
    # has the rest).
    dc.stop()
    m2 = h.Mount(dc, cache_dir=cache, foreground=False)
    r = m2.attempt(timeout=40)
    h.log("#   stderr: %r (after %.1fs)" % (r.stderr.strip(), r.elapsed))
    t.check(r.rc == 0 and r.mounted, "server down: the mount comes up "
            "offline (exit %s)" % r.rc)
    lines = [x for x in r.lines() if "offline" in x]
    t.check(len(lines) == 1 and "connect" in lines[0].lower(),
            "server down: one line says it is offline and why", repr(lines))
    if r.mounted:
        t.equal(m2.unmount(), 0, "server down: unmount, exit 0")
    m2.cleanup()

    # 3. Server up: remount on the same cache dir, then stop the server.
    dc.start()
    m3 = h.Mount(dc, cache_dir=cache).start()
    files3 = {}
    for k, rel in rel1.items():
        files3[k] = os.path.join(m3.mountpoint, rel)
    problems = []
    for k, p in sorted(files3.items()):
        try:
            ino = os.lstat(p).st_ino
        except OSError as e:
            problems.append("%s: %s" % (p, e))
            continue
        if ino != ino1[k]:
            problems.append("%s: st_ino %d, was %d" % (p, ino, ino1[k]))
    t.all_ok("after the remount every file has its old name and st_ino",
             problems)

    dc.stop()
    t.check(not dc.running() and
            not any(h.port_open(p) for p in dc.ports()) and m3.mounted(),
            "Dovecot stopped while mounted")
    problems = []
    slow = []
    for k, p in sorted(files3.items()):
        if k == unread:
            continue
        rc, data, err, el = h.cat(p, timeout=30)
        if rc != 0 or data != bodies[k]:
            problems.append("%s: exit %s, %d bytes (want %d) %s" % (
                p, rc, len(data), len(bodies[k]), err.strip()))
        if el > 5:
            slow.append("%s: %.1fs" % (p, el))
    t.all_ok("server down: every file read before reads correctly from the "
             "cache (%d files)" % (len(files3) - 1), problems)
    t.all_ok("server down: each of those reads took less than 5 s", slow)
    files_off = h.compare_tree(t, m3, view)
    t.equal(len(files_off), len(files1),
            "server down: listings and attributes come from the cache")
    rc, data, err, el = h.cat(files3[unread], timeout=40)
    h.log("#   never-read file: exit %s after %.1fs: %s" % (rc, el,
                                                           err.strip()))
    t.check(rc not in (0, None) and el < h.FAIL_DEADLINE,
            "server down: a never-read message fails within 15 s "
            "(%.1fs) instead of hanging" % el)
    t.check("Input/output error" in err,
            "server down: the error is EIO", err.strip())
    try:
        os.lstat(os.path.join(m3.mountpoint, "INBOX", "99999 x.eml"))
        t.check(False, "server down: an unknown name gives ENOENT")
    except OSError as e:
        t.equal(e.errno, errno.ENOENT,
                "server down: an unknown name gives ENOENT")
    t.equal(m3.unmount(), 0, "server down: unmount, the daemon exits 0")
    t.check(h.mount_info(m3.mountpoint) is None, "no mount left")

    # 4. The cache directory itself.
    problems = []
    nfiles = 0
    for root, dirs, fnames in os.walk(cache):
        st = os.lstat(root)
        if stat.S_IMODE(st.st_mode) != 0o700:
            problems.append("%s: dir mode %o" % (root,
                                                 stat.S_IMODE(st.st_mode)))
        for n in fnames:
            p = os.path.join(root, n)
            st = os.lstat(p)
            nfiles += 1
            if not stat.S_ISREG(st.st_mode):
                problems.append("%s: not a regular file" % p)
            elif stat.S_IMODE(st.st_mode) != 0o600:
                problems.append("%s: file mode %o" % (
                    p, stat.S_IMODE(st.st_mode)))
    t.check(nfiles > 0, "the cache dir holds files (%d)" % nfiles)
    t.all_ok("cache dirs are 0700 and files 0600", problems)
    leaks = []
    pw = dc.password.encode()
    for root, dirs, fnames in os.walk(cache):
        for n in dirs + fnames:
            if pw in n.encode():
                leaks.append(os.path.join(root, n))
        for n in fnames:
            p = os.path.join(root, n)
            if os.path.isfile(p) and pw in h.read_file(p):
                leaks.append(p)
    t.all_ok("the password appears in no file or name under the cache dir",
             leaks)

    # 5. Nothing changed on the server.
    dc.start()
    with dc.client() as client:
        t.all_ok("flags of every message unchanged",
                 h.diff_flags(flags_before, client.flags_snapshot()))


if __name__ == "__main__":
    h.Test("test_cache").run(body)
