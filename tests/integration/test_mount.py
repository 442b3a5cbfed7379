#!/usr/bin/env python3
"""test_mount: mount the core suite's mailbox over imaps:// and check the
tree, names, modes, sizes, dates and contents against the server, grep and
find over the mount, that nothing changes on the server, that the mount is
read-only, parallel reads, and a clean unmount."""

import errno
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import imapfs_harness as h  # noqa: E402

WRITE_ERRNOS = (errno.EROFS, errno.EACCES)


def expect_write_error(t, what, fn):
    try:
        fn()
    except OSError as e:
        t.check(e.errno in WRITE_ERRNOS, "%s fails with EROFS or EACCES" %
                what, "got %s" % errno.errorcode.get(e.errno, e.errno))
        return
    t.check(False, "%s fails with EROFS or EACCES" % what, "it succeeded")


def body(t):
    dc = h.Dovecot()
    msgs = h.seed_core(dc)
    dc.start()
    client = dc.client()
    h.add_cleanup(client.close)
    view = h.server_view(client)
    flags_before = client.flags_snapshot()
    bodies = h.server_bodies(client, view)
    total = sum(len(v) for v in view["messages"].values())
    h.log("# server: %d folders, %d messages" % (len(view["folders"]),
                                                 total))

    m = h.Mount(dc).start()
    mp = m.mountpoint
    t.check(m.mounted() and h.pid_alive(m.pid),
            "mounted %s at %s" % (m.url, mp))
    fstype, source, opts = h.mount_info(mp)
    t.equal(fstype, "fuse.imapfs", "the mount's type is fuse.imapfs")
    t.check("ro" in opts, "the mount is read-only in mountinfo",
            ",".join(opts))
    t.check(dc.password not in source and dc.password not in
            ",".join(opts), "the password is not in the mount table")

    # The tree
    t.equal(set(os.listdir(mp)), h.CORE_TOP,
            "ls of the root shows exactly the top-level folders")
    t.equal(sorted(os.listdir(os.path.join(mp, "Archive"))), ["2024"],
            "Archive (a parent only) holds the directory 2024")
    t.equal(sorted(os.listdir(os.path.join(mp, "Empty"))), [],
            "the empty folder is an empty directory")
    proj = os.listdir(os.path.join(mp, "Projects"))
    t.check("Alpha" in proj and len(proj) == 3,
            "Projects holds its messages and its child Alpha", repr(proj))
    files = h.compare_tree(t, m, view)
    t.equal(len(files), total, "one file per message")

    # Names
    problems = []
    for msg in msgs:
        p = files.get((msg.folder, msg.uid))
        if p is None:
            problems.append("%s UID %d (%s): no file" % (msg.folder,
                                                         msg.uid, msg.key))
            continue
        why = msg.expected_name_problem(os.path.basename(p))
        if why:
            problems.append("%s: %r %s" % (msg.key, os.path.basename(p),
                                           why))
    t.all_ok("every file name is '<UID> <decoded, sanitised subject>.eml' "
             "or '<UID>.eml'", problems)
    for msg in msgs:
        if msg.key in ("slash-colon", "b-utf8", "long-utf8", "empty-subject"):
            p = files.get((msg.folder, msg.uid))
            h.log("#   %-14s -> %r" % (msg.key, p and os.path.basename(p)))

    # Lookups that must not exist
    for name in (".hidden", "desktop.ini", "999999.eml",
                 "999999 nothing.eml", "Nope"):
        try:
            os.lstat(os.path.join(mp, "INBOX", name))
            t.check(False, "INBOX/%s does not exist" % name)
        except OSError as e:
            t.equal(e.errno, errno.ENOENT, "INBOX/%s gives ENOENT" % name)

    # Inode numbers are unique
    inos = {}
    for p in list(files.values()):
        inos.setdefault(os.lstat(p).st_ino, []).append(p)
    dups = [v for v in inos.values() if len(v) > 1]
    t.all_ok("every message file has its own st_ino", [repr(d)
                                                       for d in dups])

    # ls -l and find
    r = h.run(["ls", "-lR", mp], timeout=120, check=False)
    t.equal(r.returncode, 0, "ls -lR of the mount exits 0")
    r = h.run(["find", mp, "-type", "f"], timeout=120, check=False)
    n = len([x for x in r.stdout.split(b"\n") if x])
    t.equal(n, total, "find -type f | wc -l equals the number of messages")

    # Without --xattr the mount has no extended attributes at all (so that
    # ls -l costs no xattr round trips): getfattr says so.
    some_key, some = sorted(files.items(), key=lambda kv: kv[1])[0]
    for p in (some, os.path.dirname(some), mp):
        r = h.run(["getfattr", "-d", "-m", "-", p], check=False)
        t.check(r.returncode != 0 and b"not supported" in r.stderr,
                "getfattr -d on %s: 'Operation not supported' without "
                "--xattr" % os.path.relpath(p, mp),
                r.stderr.decode(errors="replace"))

    # A partial read of an uncached message
    mp_msg = [x for x in msgs if x.key == "multipart"][0]
    p = files[(mp_msg.folder, mp_msg.uid)]
    b = bodies[(mp_msg.folder, mp_msg.uid)]
    with open(p, "rb") as fh:
        got = os.pread(fh.fileno(), 100, 5000)
        past = os.pread(fh.fileno(), 100, len(b) + 10)
    t.equal(got, b[5000:5100], "pread of 100 bytes at offset 5000 of an "
            "uncached message")
    t.equal(past, b"", "pread past the end returns nothing")

    # Eight parallel cats of different uncached messages
    keys = ["large", "plain", "latin1-body", "q-utf8", "archived-1",
            "draft", "japanese", "alpha"]
    pick = [x for k in keys for x in msgs if x.key == k]
    procs = []
    for x in pick:
        path = files[(x.folder, x.uid)]
        procs.append((x, subprocess.Popen(
            ["cat", path], stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)))
    problems = []
    for x, pr in procs:
        try:
            out, err = pr.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            pr.kill()
            out, err = pr.communicate()
            problems.append("%s: cat timed out" % x.key)
            continue
        if pr.returncode != 0 or out != bodies[(x.folder, x.uid)]:
            problems.append("%s: exit %d, %d bytes (want %d) %s" % (
                x.key, pr.returncode, len(out),
                len(bodies[(x.folder, x.uid)]), err.decode().strip()))
    t.all_ok("eight parallel cats of uncached messages give the right "
             "bytes", problems)

    # Every file, byte for byte
    n = h.compare_bodies(t, client, view, files)
    t.equal(n, total, "every message was compared")
    r = h.run(["cat"] + sorted(files.values()), timeout=300, check=False)
    want = b"".join(bodies[k] for k, _ in
                    sorted(files.items(), key=lambda kv: kv[1]))
    t.check(r.returncode == 0 and r.stdout == want,
            "cat of all files at once (cached now) gives the same bytes")

    # grep
    env = dict(os.environ, LC_ALL="C")
    r = h.run(["grep", "-rl", h.NEEDLE, mp], timeout=300, check=False,
              env=env)
    got = {os.path.normpath(x.decode()) for x in r.stdout.split(b"\n") if x}
    want = {os.path.normpath(files[(x.folder, x.uid)]) for x in msgs
            if x.needle}
    t.equal(r.returncode, 0, "grep -rl exits 0")
    t.equal(got, want, "grep -rl lists exactly the files with the needle")
    r = h.run(["grep", "-r", "-a", h.NEEDLE, mp], timeout=300, check=False,
              env=env)
    lines = [x for x in r.stdout.split(b"\n") if x]
    t.check(r.returncode == 0 and len(lines) == len(want),
            "grep -r finds the needle %d times" % len(want),
            "exit %d, %d lines" % (r.returncode, len(lines)))
    r = h.run(["grep", "-rlF", "no such string anywhere 8d1c", mp],
              timeout=300, check=False, env=env)
    t.equal(r.returncode, 1, "grep -rl for an absent string finds nothing")

    # Read-only
    victim = files[(msgs[0].folder, msgs[0].uid)]
    inbox = os.path.join(mp, "INBOX")
    expect_write_error(t, "open for writing",
                       lambda: open(victim, "r+b").close())
    expect_write_error(t, "open for appending",
                       lambda: open(victim, "ab").close())
    expect_write_error(t, "creating a file",
                       lambda: open(os.path.join(inbox, "new.eml"),
                                    "wb").close())
    expect_write_error(t, "creating a file in the root",
                       lambda: open(os.path.join(mp, "x"), "wb").close())
    expect_write_error(t, "mkdir", lambda: os.mkdir(os.path.join(inbox,
                                                                 "sub")))
    expect_write_error(t, "rmdir", lambda: os.rmdir(os.path.join(mp,
                                                                 "Empty")))
    expect_write_error(t, "unlink", lambda: os.unlink(victim))
    expect_write_error(t, "rename",
                       lambda: os.rename(victim, victim + ".moved"))
    expect_write_error(t, "chmod", lambda: os.chmod(victim, 0o644))
    expect_write_error(t, "truncate", lambda: os.truncate(victim, 0))
    expect_write_error(t, "utime", lambda: os.utime(victim, (0, 0)))
    expect_write_error(t, "setxattr",
                       lambda: os.setxattr(victim, "user.x", b"1"))
    expect_write_error(t, "symlink",
                       lambda: os.symlink("x", os.path.join(inbox, "l")))
    t.equal(h.read_file(victim), bodies[(msgs[0].folder, msgs[0].uid)],
            "the file still reads the same after the write attempts")

    # Nothing changed on the server
    flags_after = client.flags_snapshot()
    t.all_ok("flags of every message unchanged after reading everything "
             "(%d messages)" % len(flags_after),
             h.diff_flags(flags_before, flags_after))
    view_after = h.server_view(client)
    t.equal({k: sorted(v) for k, v in view_after["messages"].items()},
            {k: sorted(v) for k, v in view["messages"].items()},
            "no message was added or removed on the server")
    t.check(h.login_security(dc) and
            all(x == "TLS" for x in h.login_security(dc)),
            "every login to Dovecot was over TLS",
            repr(h.login_security(dc)))

    rc = m.unmount()
    t.equal(rc, 0, "fusermount3 -u: the daemon exits 0")
    t.check(h.mount_info(mp) is None, "no mount left")

    # With --xattr, every file says where it comes from.
    mx = h.Mount(dc, cache_dir=m.cache_dir, args=["--xattr"]).start()
    folder, uid = some_key
    px = os.path.join(mx.mountpoint, os.path.relpath(some, mp))
    r = h.run(["getfattr", "-d", "-m", "-", "--absolute-names", px],
              check=False)
    out = r.stdout.decode(errors="replace")
    t.check(r.returncode == 0, "--xattr: getfattr -d exits 0",
            r.stderr.decode(errors="replace"))
    t.check('user.imapfs.uid="%d"' % uid in out,
            "--xattr: user.imapfs.uid is the UID", out)
    t.check("user.imapfs.uidvalidity=" in out,
            "--xattr: user.imapfs.uidvalidity is there", out)
    t.check("user.imapfs.folder=" in out,
            "--xattr: user.imapfs.folder is there", out)
    r = h.run(["getfattr", "-n", "user.imapfs.folder", "--only-values",
               os.path.dirname(px)], check=False)
    t.check(r.returncode == 0 and r.stdout.decode() ==
            h.mutf7_encode(folder),
            "--xattr: a folder's user.imapfs.folder is its server name",
            repr(r.stdout))
    t.equal(mx.unmount(), 0, "--xattr mount: the daemon exits 0")


if __name__ == "__main__":
    h.Test("test_mount").run(body)
