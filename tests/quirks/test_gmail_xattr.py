#!/usr/bin/env python3
"""test_gmail_xattr: on a server that offers X-GM-EXT-1 (the fake server,
scripted), the envelope fetch asks for X-GM-LABELS, X-GM-MSGID and
X-GM-THRID with the ENVELOPE (no body), and they show as
user.imap.gmail-labels, -msgid and -thrid; flags from the listing fetch
show as user.imap.flags."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import quirk_common as q  # noqa: E402
from quirk_common import fk, h  # noqa: E402

ENVELOPE = (b'ENVELOPE ("Fri, 01 Mar 2024 09:00:00 +0000" "Hello quirks" '
            b'(("Fake Sender" NIL "sender" "example.org")) NIL NIL '
            b'((NIL NIL "fake-user" "localhost")) NIL NIL NIL "<m1@x>")')


def case_gmail_items(t):
    acct = q.small_account()
    srv = fk.FakeImap(acct)
    srv.caps_post = srv.caps_post + ["X-GM-EXT-1"]
    srv.start()
    asked = []

    def envelope(ctx):
        asked.append(ctx.text)
        return [b"* 1 FETCH (UID 1 " + ENVELOPE +
                b" X-GM-LABELS (\\Inbox \\Important \"Work &- Play\") "
                b"X-GM-MSGID 1278455344230334865 "
                b"X-GM-THRID 1266894439832287888)\r\n",
                b"{tag} OK Success\r\n"]

    srv.add_rule(r"^UID FETCH 1 \(UID ENVELOPE", envelope)
    m = q.mount(srv, args=["--xattr"]).start()
    p = q.message_path(m, "INBOX", 1)
    t.require(p is not None, "INBOX UID 1 is listed")

    def get(name):
        try:
            return os.getxattr(p, name).decode()
        except OSError as e:
            return "error %d" % e.errno

    t.equal(get("user.imap.gmail-labels"),
            '\\Inbox \\Important "Work & Play"',
            "user.imap.gmail-labels: X-GM-LABELS, mUTF-7 decoded")
    t.equal(get("user.imap.gmail-msgid"), "1278455344230334865",
            "user.imap.gmail-msgid: X-GM-MSGID")
    t.equal(get("user.imap.gmail-thrid"), "1266894439832287888",
            "user.imap.gmail-thrid: X-GM-THRID")
    t.equal(get("user.mail.from"), "Fake Sender <sender@example.org>",
            "user.mail.from from the same ENVELOPE")
    t.equal(get("user.imap.flags"), "\\Seen",
            "user.imap.flags from the listing fetch")
    t.check("user.imap.gmail-labels" in os.listxattr(p),
            "listxattr names the Gmail attributes")
    t.equal(len(asked), 1, "one envelope fetch served every attribute")
    t.check(asked and "X-GM-LABELS X-GM-MSGID X-GM-THRID" in asked[0] and
            "BODY" not in asked[0], "the fetch asks for the Gmail items and "
            "no body", repr(asked))
    q.check_read_only(t, srv, "gmail")
    q.check_unmount(t, m, "gmail")


CASES = [case_gmail_items]

if __name__ == "__main__":
    q.run_cases("test_gmail_xattr", CASES)
