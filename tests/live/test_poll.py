#!/usr/bin/env python3
"""test_poll: Dovecot without IDLE and NOTIFY (imap_capability override),
--poll-interval=5: new and expunged mail in INBOX and in another listed
folder shows within one poll interval plus 5 s, and the polls are
incremental (seen in the -d log): a poll that finds nothing new fetches
nothing, new mail is fetched alone (UID FETCH <old UIDNEXT>:*), and
nothing is ever listed again from UID 1.

    test_poll.py              expunges found through QRESYNC (VANISHED)
    test_poll.py noqresync    a server without CONDSTORE and QRESYNC either:
                              expunges found with UID SEARCH"""

import errno
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import livelib as L  # noqa: E402
from livelib import h  # noqa: E402

POLL = 5
LIVE = POLL + 5.0


def commands(m, start=0):
    """Commands the daemon sent (from its -d log), from line start on."""
    lines = m.stderr_text().splitlines()[start:]
    return [re.sub(r"^.*?\bC: A\d+ ", "", ln) for ln in lines
            if re.search(r"\bC: A\d+ ", ln)]


def log_len(m):
    return len(m.stderr_text().splitlines())


NO_QRESYNC = sys.argv[1:2] == ["noqresync"]


def body(t):
    dc = L.LiveDovecot()
    dc.start()
    drop = ["NOTIFY", "IDLE"] + (["QRESYNC", "CONDSTORE"] if NO_QRESYNC
                                 else [])
    caps = dc.without_caps(*drop)
    t.check(not set(drop) & set(caps),
            "Dovecot offers none of %s" % " ".join(drop), " ".join(caps))
    L.seed_imap(dc, [
        ("INBOX", [("inbox-%d" % i, "Inbox %d" % i) for i in range(1, 21)]),
        ("Lists", [("lists-%d" % i, "Lists %d" % i) for i in range(1, 6)])])
    admin = L.Admin(dc)
    h.add_cleanup(admin.close)
    m = h.Mount(dc, args=["--poll-interval=%d" % POLL, "-d"]).start()
    L.keep_logs(dc, m, "poll")
    inbox, lists = m.path("INBOX"), m.path("Lists")
    t.equal(L.uids_in(L.ls(inbox)), set(range(1, 21)), "INBOX lists UIDs "
            "1-20")
    t.equal(L.uids_in(L.ls(lists)), set(range(1, 6)), "Lists lists UIDs 1-5")

    # A quiet stretch longer than one interval: polls, but no fetches.
    mark = log_len(m)
    time.sleep(POLL + 1.5)
    cmds = commands(m, mark)
    # With CONDSTORE one pipelined STATUS finds both unchanged (the
    # connection's selected folder gets NOOP and EXAMINE); without, each
    # is examined.
    asked = [c for c in cmds if c.startswith(("EXAMINE ", "STATUS "))]
    fetches = [c for c in cmds if c.startswith(("UID FETCH", "UID SEARCH",
                                                "FETCH", "SEARCH"))]
    t.check(any('"INBOX"' in c for c in asked) and
            any('"Lists"' in c for c in asked),
            "a poll asks about both listed folders", h.short(cmds, 600))
    t.check(not fetches, "a poll that finds nothing new fetches nothing",
            h.short(fetches, 600))

    mark = log_len(m)
    uid = admin.append("INBOX", L.message("inbox-21", "Polled in"))
    t.equal(uid, 21, "APPEND to INBOX got UID 21")
    ok, secs, names = L.wait_ls(inbox, lambda n: 21 in L.uids_in(n), LIVE)
    t.check(ok, "new INBOX mail shows within %.0f s (%.1fs)" % (LIVE, secs),
            h.short(names))
    cmds = commands(m, mark)
    t.check(any(c.startswith("UID FETCH 21:* ") for c in cmds),
            "the new message was fetched alone (UID FETCH 21:*)",
            h.short(cmds, 600))
    rc, data, err, _ = h.cat(os.path.join(inbox, "21 Polled in.eml"))
    t.check(rc == 0 and data == admin.body("INBOX", 21),
            "the new message reads", err)

    L.ls(lists)
    uid = admin.append("Lists", L.message("lists-6", "Lists six"))
    ok, secs, names = L.wait_ls(lists, lambda n: uid in L.uids_in(n), LIVE)
    t.check(ok, "new mail in another listed folder shows within %.0f s "
            "(%.1fs)" % (LIVE, secs), h.short(names))

    mark = log_len(m)
    admin.expunge("INBOX", [5, 6])
    ok, secs, names = L.wait_ls(inbox, lambda n: not {5, 6} & L.uids_in(n),
                                LIVE)
    t.check(ok, "expunged mail vanishes within %.0f s (%.1fs)" % (LIVE, secs),
            h.short(names))
    t.equal(L.uids_in(names), set(range(1, 22)) - {5, 6},
            "INBOX lists exactly the server's UIDs")
    e = L.open_errno(os.path.join(inbox, "5 Inbox 5.eml"))
    t.check(e == errno.ENOENT, "an expunged message's path fails with "
            "ENOENT", "got %s" % L.errname(e))
    cmds = commands(m, mark)
    if NO_QRESYNC:
        t.check(any(c.startswith("UID SEARCH") for c in cmds),
                "expunges were found with UID SEARCH", h.short(cmds, 600))
        t.check(not any("QRESYNC" in c or "CONDSTORE" in c for c in cmds),
                "no QRESYNC or CONDSTORE was sent", h.short(cmds, 600))
    else:
        t.check(any(c.startswith("EXAMINE") and "QRESYNC" in c
                    for c in cmds) and
                not any(c.startswith("UID SEARCH") for c in cmds),
                "expunges were found with QRESYNC alone (no UID SEARCH)",
                h.short(cmds, 600))

    # One appended and one expunged between two polls: MESSAGES does not
    # move, only UIDNEXT does.
    L.ls(inbox)
    before = admin.uids("INBOX")
    uid = admin.append("INBOX", L.message("inbox-swap", "Swapped in"))
    admin.expunge("INBOX", [before[0]])
    want = set(before[1:]) | {uid}
    ok, secs, names = L.wait_ls(inbox, lambda n: L.uids_in(n) == want, LIVE)
    t.check(ok, "one appended and one expunged (same count) show within "
            "%.0f s (%.1fs)" % (LIVE, secs), h.short(names))

    everything = commands(m)
    full = [c for c in everything if c.startswith("UID FETCH 1:* ")]
    t.equal(len(full), 2, "only the first listing of each folder fetched "
            "from UID 1")
    t.check(not [c for c in everything if c in ("IDLE",) or
                 c.startswith("NOTIFY")],
            "the daemon sent neither IDLE nor NOTIFY")
    t.check(m.proc.poll() is None, "the daemon is still running")
    L.unmount(t, m)


if __name__ == "__main__":
    h.Test("live: polling without IDLE and NOTIFY%s" %
           (", CONDSTORE and QRESYNC" if NO_QRESYNC else "")).run(body)
