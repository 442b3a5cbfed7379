#!/usr/bin/env python3
"""test_new_mail: while mounted (default --poll-interval, 60 s), another
client APPENDs to INBOX and to another listed folder, and expunges from
both: each change shows in `ls` within 5 s, for the process that listed the
folder just before too; new messages read all at once read right (no
fetch fails on a connection that selected INBOX before they came); an
expunged file's old path fails with ENOENT, also when its body had been
read (cached) before."""

import errno
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import livelib as L  # noqa: E402
from livelib import h  # noqa: E402

LIVE = 5.0  # seconds a change may take to show
# Folder names that NOTIFY reports in other forms than an atom: modified
# UTF-7, a quoted string with a space, with a quote and a backslash.
ODD = ["Entwürfe", "Two words", 'Say "hi"', "Back\\slash"]


def body(t):
    dc = L.LiveDovecot()
    w = h.MaildirWriter(dc)
    for i in range(1, 4):
        w.add("INBOX", L.message("inbox-%d" % i, "Inbox seed %d" % i))
    for i in range(1, 3):
        w.add("Lists", L.message("lists-%d" % i, "Lists seed %d" % i))
    w.add("Quiet", L.message("quiet-1", "Quiet seed 1"))
    for f in ODD:
        w.add(f, L.message("odd-1", "Odd seed 1"))
    w.finish()
    dc.start()
    admin = L.Admin(dc)
    h.add_cleanup(admin.close)

    m = h.Mount(dc).start()
    inbox = m.path("INBOX")
    lists = m.path("Lists")
    t.equal(L.uids_in(L.ls(inbox)), {1, 2, 3}, "INBOX lists UIDs 1-3")
    t.equal(L.uids_in(L.ls(lists)), {1, 2}, "Lists lists UIDs 1-2")

    # 1. New mail in INBOX, right after this process listed it.
    uid = admin.append("INBOX", L.message("inbox-new", "Fresh in inbox"))
    t.equal(uid, 4, "APPEND to INBOX got UID 4")
    ok, secs, names = L.wait_ls(inbox, lambda n: 4 in L.uids_in(n), LIVE)
    t.check(ok, "INBOX: the appended message shows within %.0f s "
            "(%.1fs)" % (LIVE, secs), h.short(names))
    if ok:
        name = [n for n in names if h.uid_of_name(n) == 4][0]
        t.equal(name, "4 Fresh in inbox.eml", "INBOX: its file name")
        rc, data, err, _ = h.cat(os.path.join(inbox, name))
        t.check(rc == 0 and data == admin.body("INBOX", 4),
                "INBOX: the new file reads the server's bytes",
                "rc %s, %d bytes, %s" % (rc, len(data), err.strip()))

    # 2. A second one, again right after a listing (the listing is fresh:
    # only the live update can bring it).
    L.ls(inbox)
    uid = admin.append("INBOX", L.message("inbox-new2", "Second fresh"))
    ok, secs, names = L.wait_ls(inbox, lambda n: uid in L.uids_in(n), LIVE)
    t.check(ok, "INBOX: a second appended message shows within %.0f s "
            "(%.1fs)" % (LIVE, secs), h.short(names))

    # 3. New mail in another folder that was listed (NOTIFY covers it).
    L.ls(lists)
    uid = admin.append("Lists", L.message("lists-new", "Fresh in lists"))
    t.equal(uid, 3, "APPEND to Lists got UID 3")
    ok, secs, names = L.wait_ls(lists, lambda n: 3 in L.uids_in(n), LIVE)
    t.check(ok, "Lists: the appended message shows within %.0f s "
            "(%.1fs)" % (LIVE, secs), h.short(names))

    # 4. Expunge from INBOX a message whose body was read (page cache,
    # body cache and dentry all warm).
    names = L.ls(inbox)
    old = os.path.join(inbox, [n for n in names
                               if h.uid_of_name(n) == 2][0])
    rc, data, err, _ = h.cat(old)
    t.check(rc == 0 and data == admin.body("INBOX", 2),
            "INBOX UID 2 reads before the expunge")
    admin.expunge("INBOX", [2])
    t.equal(admin.uids("INBOX"), [1, 3, 4, 5], "the server expunged UID 2")
    ok, secs, names = L.wait_ls(inbox, lambda n: 2 not in L.uids_in(n),
                                LIVE)
    t.check(ok, "INBOX: the expunged message vanishes within %.0f s "
            "(%.1fs)" % (LIVE, secs), h.short(names))
    t.equal(L.uids_in(names), {1, 3, 4, 5}, "INBOX lists UIDs 1, 3, 4, 5")
    e = L.open_errno(old)
    t.check(e == errno.ENOENT, "INBOX: opening the expunged file's old path "
            "fails with ENOENT", "got %s" % L.errname(e))
    try:
        os.stat(old)
        e = 0
    except OSError as ex:
        e = ex.errno
    t.check(e == errno.ENOENT, "INBOX: stat of the old path fails with "
            "ENOENT", "got %s" % L.errname(e))

    # 5. Expunge from the other folder (never read: only listed).
    names = L.ls(lists)
    old = os.path.join(lists, [n for n in names
                               if h.uid_of_name(n) == 1][0])
    os.stat(old)
    admin.expunge("Lists", [1])
    ok, secs, names = L.wait_ls(lists, lambda n: 1 not in L.uids_in(n),
                                LIVE)
    t.check(ok, "Lists: the expunged message vanishes within %.0f s "
            "(%.1fs)" % (LIVE, secs), h.short(names))
    e = L.open_errno(old)
    t.check(e == errno.ENOENT, "Lists: opening the expunged file's old path "
            "fails with ENOENT", "got %s" % L.errname(e))

    # 6. Append and expunge together in INBOX.
    L.ls(inbox)
    uid = admin.append("INBOX", L.message("inbox-new3", "Third fresh"))
    admin.expunge("INBOX", [1])
    ok, secs, names = L.wait_ls(
        inbox, lambda n: L.uids_in(n) == {3, 4, 5, uid}, LIVE)
    t.check(ok, "INBOX: an append and an expunge together show within "
            "%.0f s (%.1fs)" % (LIVE, secs), h.short(names))

    # A process that keeps the directory open and reads it again.
    fd = os.open(inbox, os.O_RDONLY | os.O_DIRECTORY)
    try:
        before = L.uids_in(os.listdir(fd))
        uid = admin.append("INBOX", L.message("inbox-new4", "Open dir"))
        ok = h.wait_for(lambda: uid in L.uids_in(os.listdir(fd)), LIVE, 0.1)
        t.check(ok, "INBOX: a process holding the directory open sees the "
                "new message on its next read within %.0f s" % LIVE,
                "before %s, now %s" % (sorted(before),
                                       sorted(L.uids_in(os.listdir(fd)))))
    finally:
        os.close(fd)

    # New mail and its metadata: size and date as the server says.
    with dc.client() as c:
        md = c.metadata("INBOX")
    problems = []
    for n in L.ls(inbox):
        u = h.uid_of_name(n)
        st = os.stat(os.path.join(inbox, n))
        if u not in md:
            problems.append("%s: not on the server" % n)
        elif (st.st_size, int(st.st_mtime)) != (md[u]["size"],
                                                md[u]["date"]):
            problems.append("%s: size %d date %d, server %d %d" % (
                n, st.st_size, int(st.st_mtime), md[u]["size"],
                md[u]["date"]))
    t.all_ok("INBOX: every file (new ones too) has the server's size and "
             "date", problems)

    # A burst: 30 messages appended back to back all show.
    L.ls(inbox)
    burst = [admin.append("INBOX", L.message("burst-%d" % i, "Burst %d" % i))
             for i in range(30)]
    ok, secs, names = L.wait_ls(inbox, lambda n: set(burst) <= L.uids_in(n),
                                LIVE)
    t.check(ok, "INBOX: a burst of 30 appends shows within %.0f s (%.1fs)"
            % (LIVE, secs), "missing %s" % sorted(
                set(burst) - (L.uids_in(names) or set()))[:10])

    # New mail read all at once, in two rounds: the reads spread over the
    # pool's connections, and in the second one most of them selected
    # INBOX before the new messages arrived (Dovecot answers the first
    # FETCH of such a message with OK, no data and the EXISTS: the daemon
    # must catch up and ask again, not fail the read).
    log_before = len(m.stderr_text())
    for n in (1, 2):
        uids = burst if n == 1 else [
            admin.append("INBOX", L.message("again-%d" % i, "Again %d" % i))
            for i in range(8)]
        ok, secs, names = L.wait_ls(
            inbox, lambda ns: set(uids) <= L.uids_in(ns), LIVE)
        paths = {h.uid_of_name(x): os.path.join(inbox, x)
                 for x in names or [] if h.uid_of_name(x) in uids}
        got = h.read_files_at_once(list(paths.values()))
        t.all_ok("INBOX: %d new messages read all at once read the server's "
                 "bytes (round %d)" % (len(uids), n),
                 ["UID %d: %s" % (u, h.short(got[p]))
                  for u, p in sorted(paths.items())
                  if got[p] != admin.body("INBOX", u)] +
                 ["UID %d: not listed" % u for u in uids if u not in paths])
    t.all_ok("INBOX: no body fetch failed while reading new messages",
             h.fetch_errors(m.stderr_text()[log_before:]))

    # Folders with names that are not atoms on the wire.
    for f in ODD:
        d = h.folder_path(m, f)
        t.equal(L.uids_in(L.ls(d)), {1}, "%r lists UID 1" % f)
        raw = h.mutf7_encode(f)
        uid = admin.append(raw, L.message("odd-2", "Odd two"))
        ok, secs, names = L.wait_ls(d, lambda n: uid in L.uids_in(n), LIVE)
        t.check(ok, "%r: new mail shows within %.0f s (%.1fs)" % (
            f, LIVE, secs), h.short(names))

    # Every message of a listed folder expunged: it lists empty.
    L.ls(lists)
    admin.expunge("Lists", "1:*")
    ok, secs, names = L.wait_ls(lists, lambda n: n == [], LIVE)
    t.check(ok, "Lists: all its mail expunged, it lists empty within "
            "%.0f s (%.1fs)" % (LIVE, secs), h.short(names))
    uid = admin.append("Lists", L.message("lists-again", "Lists again"))
    ok, secs, names = L.wait_ls(lists, lambda n: L.uids_in(n) == {uid},
                                LIVE)
    t.check(ok, "Lists: then new mail in the empty folder shows within "
            "%.0f s (%.1fs)" % (LIVE, secs), h.short(names))

    # The folder nobody listed still lists correctly on first use.
    admin.append("Quiet", L.message("quiet-2", "Quiet two"))
    t.equal(L.uids_in(L.ls(m.path("Quiet"))), {1, 2},
            "a folder listed for the first time shows all its mail")

    t.check(m.proc.poll() is None, "the daemon is still running")
    L.unmount(t, m)


if __name__ == "__main__":
    h.Test("live: new and expunged mail").run(body)
