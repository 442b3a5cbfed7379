#!/usr/bin/env python3
"""test_fresh: with neither IDLE nor NOTIFY on the server, a poll interval
of an hour and no STATUS polling, a folder's listing is fresh for 30 s after a sync:
listing it again within that time sends nothing to the server; opening it
after that resyncs, so the first `ls` after 30 s shows mail appended and
expunged meanwhile (seen in the -d log)."""

import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import livelib as L  # noqa: E402
from livelib import h  # noqa: E402

FRESH = 30.0
# Commands of a connection's own life, not about a folder.
SESSION = ("AUTHENTICATE", "LOGIN", "CAPABILITY", "ID ", "ENABLE ", "LOGOUT",
           "NOOP")
LOGINS = ("AUTHENTICATE", "LOGIN")


def commands(m, start=0):
    lines = m.stderr_text().splitlines()[start:]
    return [re.sub(r"^.*?\bC: A\d+ ", "", ln) for ln in lines
            if re.search(r"\bC: A\d+ ", ln)]


def body(t):
    dc = L.LiveDovecot()
    dc.start()
    caps = dc.without_caps("NOTIFY", "IDLE")
    t.check("NOTIFY" not in caps and "IDLE" not in caps,
            "Dovecot offers neither NOTIFY nor IDLE")
    L.seed_imap(dc, [("INBOX", [("inbox-%d" % i, "Inbox %d" % i)
                                for i in (1, 2, 3)])])
    admin = L.Admin(dc)
    h.add_cleanup(admin.close)
    # STATUS polling (--status-interval) would see the change within
    # seconds: this test is about the freshness window alone.
    m = h.Mount(dc, args=["--poll-interval=3600", "--status-interval=0",
                          "-d"]).start()
    L.keep_logs(dc, m, "fresh")
    inbox = m.path("INBOX")
    t.equal(L.uids_in(L.ls(inbox)), {1, 2, 3}, "INBOX lists UIDs 1-3")
    t_sync = time.monotonic()

    mark = len(m.stderr_text().splitlines())
    uid = admin.append("INBOX", L.message("inbox-4", "While fresh"))
    admin.expunge("INBOX", [2])
    for _ in range(3):
        L.ls(inbox)
        time.sleep(1)
    sent = [c for c in commands(m, mark) if not c.startswith(SESSION)]
    t.check(not sent, "listing INBOX again within 30 s sends nothing "
            "about it", h.short(sent, 600))

    time.sleep(max(0.0, FRESH + 1.0 - (time.monotonic() - t_sync)))
    names = L.ls(inbox)
    t.equal(L.uids_in(names), {1, 3, uid}, "the first ls after 30 s shows "
            "the appended and not the expunged message")
    sent = commands(m, mark)
    t.check(any(c.startswith('EXAMINE "INBOX"') for c in sent),
            "that ls resynced INBOX (EXAMINE)", h.short(sent, 600))
    # At the start the pool may open a second connection for work that
    # overlaps, as it should; what must not happen is logging in again and
    # again later to look for IDLE. Since the first listing: at most one.
    logins = [c for c in commands(m) if c.startswith(LOGINS)]
    later = [c for c in commands(m, mark) if c.startswith(LOGINS)]
    t.check(len(later) <= 1, "a server without IDLE is not logged into "
            "again and again to look for IDLE (%d logins in the %.0f s "
            "after the first listing, %d in all)" % (
                len(later), time.monotonic() - t_sync, len(logins)))
    t.check(m.proc.poll() is None, "the daemon is still running")
    L.unmount(t, m)


if __name__ == "__main__":
    h.Test("live: listings are fresh for 30 s").run(body)
