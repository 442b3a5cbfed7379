#!/usr/bin/env python3
"""test_examine_refused: the server refuses EXAMINE of a folder because it
failed, not because the folder is gone: NO [SERVERBUG] (what Dovecot
answers while a folder is deleted and created again under an open
session), NO [UNAVAILABLE]. The daemon must say so (EIO and a log line,
never ENOENT, which would say that the folder or the message does not
exist), keep serving the rest, and ask again later: once the server
answers, the folder lists and reads the right bytes.

A plain NO (no code: the folder is gone) still means that: no such
message (ENOENT); the folder lists empty until the tree forgets it.

Cases (run one with: test_examine_refused.py CASE ...):
  serverbug, unavailable, plain_no
"""

import errno
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import quirk_common as q  # noqa: E402

h = q.h
fk = q.fk


def errno_of(fn, *args):
    try:
        fn(*args)
        return 0
    except OSError as e:
        return e.errno


def errname(e):
    return "success" if e == 0 else errno.errorcode.get(e, str(e))


def refused_case(t, label, answer, want, want_list=None):
    """EXAMINE INBOX answered with answer; looking up a message name in
    INBOX fails with want (an errno), and listing INBOX with want_list
    (default: want; 0: it lists)."""
    acct = q.small_account()
    srv = fk.FakeImap(acct).start()
    rule = srv.add_rule(r'^EXAMINE "?INBOX"?', [b"{tag} " + answer +
                                                b"\r\n"])
    m = q.mount(srv).start()
    inbox = os.path.join(m.mountpoint, "INBOX")
    name = os.path.join(inbox, "1 Hello quirks.eml")
    for what, fn, arg, w in (
            ("listing INBOX", os.listdir, inbox,
             want if want_list is None else want_list),
            ("a message name in INBOX", os.stat, name, want)):
        t.equal(errname(errno_of(fn, arg)), errname(w), "%s: %s gives %s" % (
            label, what, errname(w)))
    t.check(rule.hits >= 1, "%s: the refusal was played" % label)
    with open(m.log_path, "rb") as f:
        logged = f.read()
    t.check(b"cannot list folder INBOX" in logged,
            "%s: the daemon logs that it cannot list INBOX" % label,
            h.short(logged[-600:]))
    t.check(q.daemon_alive(m) and m.mounted(), "%s: the daemon is alive "
            "and mounted" % label)
    p = q.message_path(m, "Work/Projects", 1)
    rc, data, err, _ = h.cat(p) if p else (None, b"", "not listed", 0)
    t.check(rc == 0 and data == acct.folder("Work/Projects").by_uid(1).body,
            "%s: another folder still works" % label, err)
    # The server answers again: the next access asks it again.
    srv.clear_rules()
    q.compare_account(t, m, acct, "%s (server fixed)" % label)
    q.check_read_only(t, srv, label)
    q.check_unmount(t, m, label)


def case_serverbug(t):
    refused_case(t, "serverbug", b"NO [SERVERBUG] Internal error occurred. "
                 b"Refer to server log for more information.", errno.EIO)


def case_unavailable(t):
    refused_case(t, "unavailable", b"NO [UNAVAILABLE] Try again later",
                 errno.EIO)


def case_plain_no(t):
    refused_case(t, "plain_no", b"NO Mailbox doesn't exist: INBOX",
                 errno.ENOENT, want_list=0)


CASES = [case_serverbug, case_unavailable, case_plain_no]

if __name__ == "__main__":
    q.run_cases("test_examine_refused", CASES)
