#!/usr/bin/env python3
"""test_split: every server response written one byte per send (over TLS
each byte is a TLS record of its own, so the daemon's reads return one byte
at a time; in clear, a pause between bytes does the same). The tree, the
names, the dates and every byte of every message must come out right.

Cases: split_implicit_tls, split_starttls, split_no_sasl_ir_login
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import quirk_common as q  # noqa: E402

h = q.h
fk = q.fk

NAMES = {("INBOX", 1): "1 Hello quirks.eml",
         ("INBOX", 2): "2 Second message.eml",
         ("INBOX", 3): "3.eml",
         ("Work/Projects", 1): "1 Project plan.eml",
         ("Work/Projects", 2): "2 Streamed.eml",
         ("Entwürfe", 1): "1 Draft.eml"}


def split_case(t, label, tls, tweak=None):
    acct = q.small_account()
    # A folder name and a subject that need a literal and an escape.
    acct.add_folder("Quo\"te\\d", form="quoted").add(
        q.message('Say "hi" {3}\r\n', "Braces {5}\r\nand CR LF.\n"),
        date=q.T0 + 11)
    # Above the parser's 64 KiB inline limit: streamed to the cache.
    acct.folder("Work/Projects").add(
        q.message("Streamed", "".join("line %05d of a streamed body\n" % i
                                      for i in range(2600))),
        date=q.T0 + 12)
    srv = fk.FakeImap(acct, tls=tls)
    srv.split = 1
    # In clear, pause between bytes so that each arrives alone.
    srv.split_delay = lambda conn: 0 if conn.tls else 0.002
    if tweak:
        tweak(srv)
    srv.start()
    m = q.mount(srv, timeout_s=10).start()
    q.compare_account(t, m, acct, label)
    names = dict(NAMES)
    t.all_ok("%s: file names from the subjects" % label,
             q.subject_name_problems(m, acct, names))
    p = q.message_path(m, "Quo\"te\\d", 1)
    t.check(p is not None and os.path.basename(p).startswith("1 Say "),
            "%s: the quoted folder name with escapes works" % label,
            repr(p))
    sends = sum(c.sends for c in srv.conns)
    out = sum(c.bytes_out for c in srv.conns)
    t.check(out > 3000 and sends == out, "%s: the server wrote %d bytes in "
            "%d sends" % (label, out, sends))
    q.check_read_only(t, srv, label)
    t.equal(srv.errors, [], "%s: no server script errors" % label)
    q.check_unmount(t, m, label)
    return srv


def case_split_implicit_tls(t):
    split_case(t, "split_implicit_tls", "implicit")


def case_split_starttls(t):
    srv = split_case(t, "split_starttls", "starttls")
    t.check(fk.find_secret(srv.clear_bytes(), srv.password, srv.user)
            is None, "split_starttls: no credential in the clear bytes")


def case_split_no_sasl_ir_login(t):
    # AUTHENTICATE PLAIN waits for a "+ " that arrives byte by byte; then a
    # server with LOGIN only (no AUTH=PLAIN).
    def no_ir(srv):
        srv.caps_pre = ["IMAP4rev1", "AUTH=PLAIN", "LITERAL+"]
    srv = split_case(t, "split_no_sasl_ir", "implicit", no_ir)
    t.check(srv.count(r"^AUTHENTICATE PLAIN$") >= 1,
            "split_no_sasl_ir: AUTHENTICATE PLAIN without an initial "
            "response was used")

    def login_only(srv):
        srv.caps_pre = ["IMAP4rev1", "LITERAL+"]
        srv.greeting_caps = False
        srv.login_caps = False
    srv = split_case(t, "split_login", "implicit", login_only)
    t.check(srv.count(r"^LOGIN ") >= 1, "split_login: LOGIN was used")


CASES = [case_split_implicit_tls, case_split_starttls,
         case_split_no_sasl_ir_login]

if __name__ == "__main__":
    q.run_cases("test_split", CASES)
