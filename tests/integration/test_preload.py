#!/usr/bin/env python3
"""test_preload: the mount-time STATUS of every folder and the listing of
small subfolders ahead (fs/preload.c), seen in the -d log.

  remount  a second mount on the same cache lists an unchanged folder
           without an EXAMINE of it (one STATUS batch at mount proves it
           current); a folder recreated on the server while unmounted, with
           the same UIDs, subjects, sizes and dates (only UIDVALIDITY and
           the bytes differ), lists and reads the new bytes, never the old
  ahead    on a fresh cache, reading a directory lists its small
           subfolders and theirs in pipelined batches: find shows every
           directory, each folder lists exactly the server's messages and
           reads its bytes, no folder is examined twice, and a folder above
           the size bound is left for its visit
  off      --list-ahead=0 lists only what is visited
  gone     a folder deleted after the mount fails its EXAMINE inside a
           batch; the others still list their own messages"""

import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import imapfs_harness as h  # noqa: E402
from harness_mail import maildir_folder_dir  # noqa: E402

BIG = 501  # one more than fs/preload.c lists ahead
TREE = ["Tree/t%d" % a for a in range(3)] + [
    "Tree/t%d/u%d" % (a, b) for a in range(3) for b in range(4)]


def message(subject, text):
    return ("From: Preload <preload@example.org>\r\n"
            "To: imapfs-test@localhost\r\n"
            "Subject: %s\r\n"
            "Date: Mon, 01 Jan 2024 00:00:00 +0000\r\n"
            "Message-ID: <%s@imapfs.test>\r\n\r\n"
            "%s\r\n" % (subject, re.sub(r"\W", "-", subject), text)).encode()


def shelf(w, version):
    """Shelf's three messages; versions differ in the bytes alone."""
    for i in range(1, 4):
        w.add("Shelf", message("shelf %d" % i, "%s body %d" % (version, i)),
              "S", 1_700_000_000 + i)


def commands(m):
    """The commands the daemon sent, from its -d log."""
    return [re.sub(r"^.*?\bC: A\d+ ", "", ln)
            for ln in m.stderr_text().splitlines()
            if re.search(r"\bC: A\d+ ", ln)]


def examined(m, folder):
    return sum(1 for c in commands(m)
               if c.startswith('EXAMINE "%s"' % folder))


def uids(names):
    return sorted(int(n.split(" ", 1)[0]) for n in names
                  if n.endswith(".eml"))


def remount_part(t, dc, w, work):
    cache = os.path.join(work, "cache-remount")
    m = h.Mount(dc, cache_dir=cache, args=["-d"]).start()
    shelf_dir, keep_dir = m.path("Shelf"), m.path("Keep")
    keep_names = sorted(os.listdir(keep_dir))
    t.equal(uids(keep_names), [1, 2, 3], "[remount] Keep lists UIDs 1-3")
    old = {n: h.read_file(os.path.join(shelf_dir, n))
           for n in os.listdir(shelf_dir)}
    t.check(len(old) == 3 and all(b"old body" in b for b in old.values()),
            "[remount] Shelf reads the old bytes (now cached)")
    t.equal(m.unmount(), 0, "[remount] first mount: the daemon exits 0")

    # Shelf made anew while unmounted: same UIDs, subjects, sizes and
    # dates; only UIDVALIDITY (and the bytes) tell.
    dc.stop()
    shutil.rmtree(maildir_folder_dir(dc.maildir, "Shelf"))
    w2 = h.MaildirWriter(dc, uidvalidity=w.uidvalidity + 1000)
    shelf(w2, "new")
    w2.finish()
    dc.start()

    m = h.Mount(dc, cache_dir=cache, args=["-d"]).start()
    keep_dir, shelf_dir = m.path("Keep"), m.path("Shelf")
    t.equal(sorted(os.listdir(keep_dir)), keep_names,
            "[remount] Keep lists the same names")
    t.equal(examined(m, "Keep"), 0, "[remount] Keep was listed without an "
            "EXAMINE of its own")
    n_status = sum(1 for c in commands(m) if c.startswith("STATUS "))
    t.check(n_status >= 2 + len(TREE), "[remount] one STATUS of every folder "
            "at mount (%d)" % n_status)
    names = sorted(os.listdir(shelf_dir))
    t.equal(names, sorted(old), "[remount] Shelf lists the same names")
    now = {n: h.read_file(os.path.join(shelf_dir, n)) for n in names}
    t.all_ok("[remount] every Shelf file reads the new bytes, never the old",
             ["%s: %r" % (n, b[-20:]) for n, b in sorted(now.items())
              if b"new body" not in b or b in old.values()])
    t.check(examined(m, "Shelf") >= 1, "[remount] Shelf was examined anew")
    t.equal(m.unmount(), 0, "[remount] second mount: the daemon exits 0")
    t.all_ok("[remount] the daemon reported no bug", m.bug_reports())


def ahead_part(t, dc, work):
    m = h.Mount(dc, cache_dir=os.path.join(work, "cache-ahead"),
                args=["-d"]).start()
    os.listdir(m.path("Tree"))
    # Reading Tree lists t* and their u* ahead (two levels below).
    t.check(h.wait_for(lambda: examined(m, "Tree/t2/u3") > 0, 30),
            "[ahead] reading Tree lists Tree/t2/u3 ahead")
    t.equal(examined(m, "Tree/big"), 0, "[ahead] Tree/big (%d messages) is "
            "not listed ahead" % BIG)
    r = subprocess.run(["find", m.mountpoint, "-type", "d"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=300)
    dirs = {os.path.relpath(p, m.mountpoint) for p in
            r.stdout.decode().splitlines()}
    want = {".", "INBOX", "Keep", "Shelf", "Tree", "Tree/big"} | set(TREE)
    t.equal(dirs, want, "[ahead] find -type d shows every directory")
    listed = {f: [n for n in os.listdir(m.path(f)) if n.endswith(".eml")]
              for f in TREE + ["Tree/big"]}
    # (before any body is read: a fetch examines its folder again)
    twice = ["%s: %d" % (f, examined(m, f)) for f in listed
             if examined(m, f) != 1]
    t.all_ok("[ahead] every folder was examined exactly once", twice)
    n_fetch = sum(1 for c in commands(m) if c.startswith("UID FETCH 1:* "))
    t.check(n_fetch <= len(listed) + 3, "[ahead] one listing fetch a folder "
            "(%d for %d folders and Keep, Shelf, INBOX)" % (
                n_fetch, len(listed)))
    problems = []
    with dc.client() as client:
        for f, names in sorted(listed.items()):
            md = client.metadata(f)
            if uids(names) != sorted(md):
                problems.append("%s: UIDs %s, server %s" % (
                    f, uids(names), sorted(md)))
                continue
            n = sorted(names)[0]
            uid = int(n.split(" ", 1)[0])
            data = h.read_file(os.path.join(m.path(f), n))
            if data != client.fetch_body(f, uid):
                problems.append("%s/%s: wrong bytes" % (f, n))
            if ("%s %d" % (f, uid)).replace("/", "-") not in n:
                problems.append("%s/%s: not the server's subject" % (f, n))
    t.all_ok("[ahead] every folder lists the server's UIDs and subjects and "
             "reads its bytes", problems)
    t.equal(m.unmount(), 0, "[ahead] unmount, the daemon exits 0")
    t.all_ok("[ahead] the daemon reported no bug", m.bug_reports())


def off_part(t, dc, work):
    m = h.Mount(dc, cache_dir=os.path.join(work, "cache-off"),
                args=["-d", "--list-ahead=0"]).start()
    os.listdir(m.path("Tree"))
    names = os.listdir(m.path("Tree/t0"))
    t.equal(sorted(uids(names)), [1, 2], "[off] Tree/t0 lists UIDs 1-2")
    t.equal([f for f in TREE if examined(m, f) and f != "Tree/t0"], [],
            "[off] with --list-ahead=0 no other folder was examined")
    t.equal(m.unmount(), 0, "[off] unmount, the daemon exits 0")


def gone_part(t, dc, work):
    """A folder deleted after the mount's STATUS fails its EXAMINE in the
    middle of a batch: the folders after it still list their own
    messages."""
    m = h.Mount(dc, cache_dir=os.path.join(work, "cache-gone"),
                args=["-d"]).start()
    with dc.client() as client:
        client._ok(*client.conn.delete('"Tree/t0/u1"'), what="DELETE")
    os.listdir(m.path("Tree/t0"))
    t.check(h.wait_for(lambda: examined(m, "Tree/t0/u3") > 0, 30),
            "[gone] reading Tree/t0 lists its subfolders ahead")
    problems = []
    for f in ("Tree/t0/u0", "Tree/t0/u2", "Tree/t0/u3"):
        names = sorted(n for n in os.listdir(m.path(f)) if n.endswith(".eml"))
        want = ["%d %s %d.eml" % (i, f.replace("/", "-"), i) for i in (1, 2)]
        if names != want:
            problems.append("%s: %s" % (f, names))
    t.all_ok("[gone] the folders around the deleted one list their own "
             "messages", problems)
    t.check(examined(m, "Tree/t0/u1") > 0, "[gone] the deleted folder's "
            "EXAMINE was sent (and refused)")
    t.equal(m.unmount(), 0, "[gone] unmount, the daemon exits 0")
    t.all_ok("[gone] the daemon reported no bug", m.bug_reports())


def body(t):
    dc = h.Dovecot()
    w = h.MaildirWriter(dc)
    for i in range(1, 4):
        w.add("Keep", message("keep %d" % i, "keep %d" % i), "",
              1_700_000_000 + i)
    shelf(w, "old")
    for f in TREE:
        for i in range(1, 3):
            w.add(f, message("%s %d" % (f.replace("/", "-"), i), f), "S",
                  1_700_000_000 + i)
    for i in range(1, BIG + 1):
        w.add("Tree/big", message("Tree-big %d" % i, "big"), "",
              1_700_000_000 + i)
    w.finish()
    dc.start()
    work = h.make_tempdir("imapfs-preload-", 0o755)
    remount_part(t, dc, w, work)
    ahead_part(t, dc, work)
    off_part(t, dc, work)
    gone_part(t, dc, work)  # last: it deletes a folder


if __name__ == "__main__":
    h.Test("test_preload").run(body)
