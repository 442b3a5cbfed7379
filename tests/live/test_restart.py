#!/usr/bin/env python3
"""test_restart: Dovecot is stopped and started again on the same ports
while the mount stays up (default --poll-interval, 60 s). While it is down,
listings and cached messages still work. Afterwards, without a remount:
mail appended right after the restart shows once the watcher has
reconnected (within 15 s: its reconnect backoff), and from then on new and
expunged mail in INBOX and in another listed folder shows within 5 s;
messages never read before, and the new ones, read correctly."""

import errno
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import livelib as L  # noqa: E402
from livelib import h  # noqa: E402

DOWN = 3.0  # seconds the server stays down


def body(t):
    dc = L.LiveDovecot()
    dc.start()
    L.seed_imap(dc, [
        ("INBOX", [("inbox-%d" % i, "Inbox %d" % i) for i in (1, 2, 3)]),
        ("Other", [("other-%d" % i, "Other %d" % i) for i in (1, 2)])])
    m = h.Mount(dc, args=["--timeout=5"]).start()
    L.keep_logs(dc, m, "restart")
    inbox, other = m.path("INBOX"), m.path("Other")
    t.equal(L.uids_in(L.ls(inbox)), {1, 2, 3}, "INBOX lists UIDs 1-3")
    t.equal(L.uids_in(L.ls(other)), {1, 2}, "Other lists UIDs 1-2")
    with dc.client() as c:
        bodies = {("INBOX", u): b for u, b in c.fetch_bodies("INBOX")}
        bodies.update({("Other", u): b for u, b in c.fetch_bodies("Other")})
    rc, data, err, _ = h.cat(os.path.join(inbox, "1 Inbox 1.eml"))
    t.check(rc == 0 and data == bodies[("INBOX", 1)],
            "INBOX UID 1 reads (now cached)", err)

    # Down.
    dc.stop()
    t_down = time.monotonic()
    rc, data, err, secs = h.cat(os.path.join(inbox, "1 Inbox 1.eml"))
    t.check(rc == 0 and data == bodies[("INBOX", 1)],
            "server down: the cached message still reads (%.1fs)" % secs,
            err)
    names = L.ls(inbox)
    t.equal(L.uids_in(names), {1, 2, 3}, "server down: INBOX still lists")
    time.sleep(max(0.0, DOWN - (time.monotonic() - t_down)))

    # Up again, same ports.
    dc.start()
    admin = L.Admin(dc)
    h.add_cleanup(admin.close)
    t.check(m.proc.poll() is None, "the daemon survived the restart")
    uid = admin.append("INBOX", L.message("inbox-4", "After restart"))
    ok, secs, names = L.wait_ls(inbox, lambda n: uid in L.uids_in(n), 15.0)
    t.check(ok, "mail appended right after the restart shows within 15 s "
            "(%.1fs)" % secs, h.short(names))

    L.ls(inbox)
    uid = admin.append("INBOX", L.message("inbox-5", "Steady state"))
    ok, secs, names = L.wait_ls(inbox, lambda n: uid in L.uids_in(n), 5.0)
    t.check(ok, "then new INBOX mail shows within 5 s (%.1fs)" % secs,
            h.short(names))
    L.ls(other)
    uid = admin.append("Other", L.message("other-3", "Other three"))
    ok, secs, names = L.wait_ls(other, lambda n: uid in L.uids_in(n), 5.0)
    t.check(ok, "new mail in another listed folder shows within 5 s "
            "(%.1fs)" % secs, h.short(names))
    admin.expunge("INBOX", [3])
    ok, secs, names = L.wait_ls(inbox, lambda n: 3 not in L.uids_in(n), 5.0)
    t.check(ok, "an expunge shows within 5 s (%.1fs)" % secs,
            h.short(names))
    e = L.open_errno(os.path.join(inbox, "3 Inbox 3.eml"))
    t.check(e == errno.ENOENT, "the expunged message's path fails with "
            "ENOENT", "got %s" % L.errname(e))

    # Reads without a remount: never read before, and new.
    checks = [("INBOX", 2, "2 Inbox 2.eml"), ("Other", 1, "1 Other 1.eml")]
    for folder, u, name in checks:
        rc, data, err, _ = h.cat(os.path.join(m.path(folder), name))
        t.check(rc == 0 and data == bodies[(folder, u)],
                "%s UID %d (never read before) reads after the restart"
                % (folder, u), "rc %s, %d bytes, %s" % (rc, len(data),
                                                        err.strip()))
    names = L.ls(inbox)
    new = [n for n in names if h.uid_of_name(n) == 5]
    rc, data, err, _ = h.cat(os.path.join(inbox, new[0])) if new else \
        (None, b"", "missing", 0)
    t.check(rc == 0 and data == admin.body("INBOX", 5),
            "the mail appended after the restart reads", err)
    t.check(m.proc.poll() is None, "the daemon is still running")
    L.unmount(t, m)


if __name__ == "__main__":
    h.Test("live: server restart while mounted").run(body)
