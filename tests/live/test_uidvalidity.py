#!/usr/bin/env python3
"""test_uidvalidity: a folder is deleted and created again under the same
name with other messages (a new UIDVALIDITY; UID 1 exists in both, with the
same subject and size but other bytes). Once the mount shows the new
listing, reading UID 1 gives the new bytes, never the old ones, and the old
body is gone from the cache directory.

1. While mounted (NOTIFY): the change shows within 5 s.
2. While mounted, Dovecot without NOTIFY and IDLE, --poll-interval=5, and
   the new folder has as many messages as the old one with the same names
   and sizes (UIDNEXT and EXISTS do not move; only UIDVALIDITY tells):
   within one poll interval plus 5 s, reading gives the new bytes.
3. While unmounted, the same kind of change: a remount on the same cache
   dir (whose index still has the old UIDVALIDITY) serves the new bytes at
   once.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import livelib as L  # noqa: E402
from livelib import h  # noqa: E402

SUBJECT = "Same subject"
FNAME = "1 %s.eml" % SUBJECT


def version(tag, date):
    # Same length for "old" and "new": only the bytes differ.
    return h.make_message("uv-%s" % tag, SUBJECT, date,
                          body="This is the %s body of UID 1.\n" % tag * 20)


def two(tag, date):
    return h.make_message("uv-%s2" % tag, "Old two", date,
                          body="Message two, %s version.\n" % tag)


def seed(admin, folder, date):
    admin.create(folder)
    admin.append(folder, version("old", date), date=date)
    admin.append(folder, two("old", date), date=date)


def recreate(admin, folder, date, same_shape=False):
    """Delete and create folder, then fill it. same_shape: two messages
    with the old names and sizes; else three with other names for 2 and 3.

    Dovecot keeps a Maildir folder's index files in its directory: a
    session that still has the folder open (the mount's) may write them
    again right after the DELETE, and then CREATE answers ALREADYEXISTS
    or APPEND "Mailbox was deleted under us". That is the server racing
    itself, so the whole step is tried again, a bounded number of times.
    So is a recreation that kept the old UIDVALIDITY (Dovecot 2.3.19 did
    once in about 40 runs, with nothing in its log; DELETE, CREATE and the
    APPENDs all said OK): no client can tell such new messages from the old
    ones, and the checks below need a new UIDVALIDITY."""
    v0 = admin.uidvalidity(folder)
    for attempt in range(5):
        try:
            out = fill_anew(admin, folder, date, same_shape)
            if admin.uidvalidity(folder) == v0:
                raise h.TestFailure("the server gave the new %s the old "
                                    "UIDVALIDITY %d" % (folder, v0))
            return out
        except h.TestFailure as e:
            if attempt == 4:
                raise
            h.log("# recreating %s: %s; trying again in a new session" % (
                folder, e))
            time.sleep(0.5)
            admin.reconnect()  # its index of the folder may be stale


def fill_anew(admin, folder, date, same_shape):
    try:
        admin.delete(folder)
    except h.TestFailure:
        pass  # gone already (an earlier attempt got that far)
    admin.create(folder)
    new = version("new", date)
    uids = [admin.append(folder, new, date=date)]
    if same_shape:
        uids.append(admin.append(folder, two("new", date), date=date))
    else:
        uids += [admin.append(folder, L.message("uv-n2", "New two"),
                              date=date),
                 admin.append(folder, L.message("uv-n3", "New three"),
                              date=date)]
    return new, uids


NOW = 1_700_000_000


def renumbered(admin, folder, uids):
    """Whether the server changed folder after recreate() left it with
    uids: a stale session's repair of the index ("duplicate transaction log
    sequence" in Dovecot's log) once gave the new messages other UIDs under
    the same UIDVALIDITY. Asked in a new session."""
    admin.reconnect()
    now = admin.uids(folder)
    if now != uids:
        h.log("# the server renumbered %s after it was recreated: UIDs %s, "
              "not %s (see its log); recreating it again" % (folder, now,
                                                             uids))
    return now != uids


def recreate_until(admin, folder, settled, **kw):
    """recreate(), then settled() (the mount shows it, bounded); again
    (3 times in all) while it does not and the server renumbered the
    folder. Returns (new, uids, settled())."""
    for attempt in range(3):
        new, uids = recreate(admin, folder, NOW, **kw)
        ok = settled()
        if ok or attempt == 2 or not renumbered(admin, folder, uids):
            return new, uids, ok


def same_shape(m, folder):
    return L.ls(m.path(folder)) == [FNAME, "2 Old two.eml"]


def check_after(t, tag, m, admin, folder, old, new, cache):
    path = os.path.join(m.path(folder), FNAME)
    rc, data, err, _ = h.cat(path)
    t.check(rc == 0 and data == new, "[%s] UID 1 reads the new bytes" % tag,
            "rc %s, %s" % (rc, "the OLD bytes" if data == old else
                           "%d other bytes %s" % (len(data), err.strip())))
    try:
        size = os.stat(path).st_size
    except OSError as e:
        size = str(e)
    t.equal(size, len(new), "[%s] UID 1 has the new size" % tag)
    # A second read, from whatever the kernel and the daemon cached now.
    rc, data2, err, _ = h.cat(path)
    t.check(rc == 0 and data2 == new, "[%s] UID 1 reads the new bytes "
            "again" % tag, "rc %s, %s" % (rc, "the OLD bytes" if data2 == old
                                          else err.strip()))
    t.equal(admin.body(folder, 1), new, "[%s] (the server has the new "
            "bytes)" % tag)
    t.equal(L.files_containing(cache, old), [],
            "[%s] the old body is gone from the cache dir" % tag)
    two_old, two_new = two("old", NOW), two("new", NOW)
    t.equal(L.files_containing(cache, two_old), [],
            "[%s] the old body of UID 2 is gone from the cache dir" % tag)
    if same_shape(m, folder):
        rc, data, err, _ = h.cat(os.path.join(m.path(folder),
                                              "2 Old two.eml"))
        t.check(rc == 0 and data == two_new, "[%s] UID 2 (same name and "
                "size) reads the new bytes" % tag, "rc %s, %s" % (
                    rc, "the OLD bytes" if data == two_old else err.strip()))
    t.check(len(L.files_containing(cache, new)) == 1,
            "[%s] the new body is in the cache dir" % tag)


def body(t):
    dc = L.LiveDovecot()
    dc.start()
    admin = L.Admin(dc)
    h.add_cleanup(admin.close)
    work = h.make_tempdir("imapfs-uidvalidity-")
    old = version("old", NOW)
    for folder in ("Box", "Shelf"):
        seed(admin, folder, NOW)
    t.equal(len(old), len(version("new", NOW)), "old and new UID 1 have "
            "the same size")
    t.equal(len(two("old", NOW)), len(two("new", NOW)), "old and new UID 2 "
            "have the same size")
    old_names = [FNAME, "2 Old two.eml"]

    # 1. While mounted, NOTIFY.
    cache = os.path.join(work, "cache1")
    m = h.Mount(dc, cache_dir=cache).start()
    L.keep_logs(dc, m, "uidvalidity")
    box = m.path("Box")
    t.equal(L.ls(box), old_names, "[notify] Box lists the old messages")
    for p in (FNAME, "2 Old two.eml", FNAME):
        rc, data, err, _ = h.cat(os.path.join(box, p))
    t.check(rc == 0 and data == old, "[notify] UID 1 reads the old bytes",
            err)
    t.check(len(L.files_containing(cache, old)) == 1,
            "[notify] the old body is in the cache dir")
    v0 = admin.uidvalidity("Box")
    want = [FNAME, "2 New two.eml", "3 New three.eml"]
    seen = []

    def shows():
        seen[:] = L.wait_ls(box, lambda n: n == want, 5.0)
        return seen[0]

    new, uids, ok = recreate_until(admin, "Box", shows)
    t.check(admin.uidvalidity("Box") != v0 and uids == [1, 2, 3],
            "[notify] the server recreated Box: UIDVALIDITY %d -> %d, "
            "UIDs %s" % (v0, admin.uidvalidity("Box"), uids))
    t.check(ok, "[notify] the new listing shows within 5 s (%.1fs)" %
            seen[1], h.short(seen[2]))
    check_after(t, "notify", m, admin, "Box", old, new, cache)
    L.unmount(t, m, "notify")

    # 3. While unmounted (same shape), then a remount on the same cache dir.
    cache = os.path.join(work, "cache3")
    m = h.Mount(dc, cache_dir=cache).start()
    shelf = m.path("Shelf")
    t.equal(L.ls(shelf), old_names, "[remount] Shelf lists the old messages")
    for p in (FNAME, "2 Old two.eml", FNAME):
        rc, data, err, _ = h.cat(os.path.join(shelf, p))
    t.check(rc == 0 and data == old, "[remount] UID 1 reads the old bytes",
            err)
    L.unmount(t, m, "remount")
    t.check(len(L.files_containing(cache, old)) == 1,
            "[remount] the old body is in the cache dir")
    new, uids = recreate(admin, "Shelf", NOW, same_shape=True)
    t.equal(uids, [1, 2], "[remount] the server recreated Shelf with UIDs "
            "1 and 2")
    m = h.Mount(dc, cache_dir=cache).start()
    L.keep_logs(dc, m, "uidvalidity-remount")
    t.equal(L.ls(m.path("Shelf")), old_names, "[remount] Shelf lists the "
            "same names")
    check_after(t, "remount", m, admin, "Shelf", old, new, cache)
    L.unmount(t, m, "remount")
    admin.close()
    dc.stop()

    # 2. While mounted, no NOTIFY, no IDLE, same shape: only the poll.
    dc = L.LiveDovecot()
    dc.start()
    caps = dc.without_caps("NOTIFY", "IDLE")
    t.check("NOTIFY" not in caps and "IDLE" not in caps,
            "[poll] Dovecot offers neither NOTIFY nor IDLE")
    admin = L.Admin(dc)
    h.add_cleanup(admin.close)
    seed(admin, "Box", NOW)
    cache = os.path.join(work, "cache2")
    m = h.Mount(dc, cache_dir=cache, args=["--poll-interval=5"]).start()
    L.keep_logs(dc, m, "uidvalidity-poll")
    box = m.path("Box")
    t.equal(L.ls(box), old_names, "[poll] Box lists the old messages")
    for p in (FNAME, "2 Old two.eml", FNAME):
        rc, data, err, _ = h.cat(os.path.join(box, p))
    t.check(rc == 0 and data == old, "[poll] UID 1 reads the old bytes", err)
    path = os.path.join(box, FNAME)
    new = version("new", NOW)
    new, uids, ok = recreate_until(admin, "Box", lambda: h.wait_for(
        lambda: h.cat(path)[1] == new, 10.0, interval=0.5), same_shape=True)
    t.equal(uids, [1, 2], "[poll] the server recreated Box with UIDs 1 "
            "and 2")
    t.check(ok, "[poll] within one poll interval plus 5 s, UID 1 reads the "
            "new bytes")
    check_after(t, "poll", m, admin, "Box", old, new, cache)
    L.unmount(t, m, "poll")


if __name__ == "__main__":
    h.Test("live: UIDVALIDITY change").run(body)
