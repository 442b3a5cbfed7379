#!/usr/bin/env python3
"""test_quirks: the daemon against a scripted server that answers oddly but
legally (or at least survivably), checked with real tools on the mount.

Cases (run one with: test_quirks.py CASE ...):
  size_smaller, size_larger, size_smaller_big, size_larger_big, size_zero
                                          RFC822.SIZE differs from the body
  body_nil, body_empty_quoted, body_empty_literal, body_ok_no_data,
  body_fetch_without_body, body_other_uid
                                          no usable BODY[]: EIO, nothing
                                          cached, right bytes once fixed
  literal_strings                        literals (and atoms) where strings
                                          stand: LIST names, header blocks
  untagged_in_fetch                      EXISTS, EXPUNGE, FETCH flags,
                                          * OK, * NO, unknown responses
                                          around bodies and listings
  bye_before_body_once, bye_after_body, bye_mid_literal,
  close_mid_literal_once, bye_in_listing   BYE or close in a fetch
  stall_mid_literal, slow_but_steady      silence versus slow progress
  connection_limit                       a server that allows 3 connections
                                          and says BYE [UNAVAILABLE] to more:
                                          the pool shrinks, no read fails
  body_new_to_session, body_new_to_examine, envelope_new_to_session,
  search_new_to_session                   a message new to the connection
                                          (OK without data until NOOP, or
                                          until EXAMINE): read, and found
                                          by a search, at once
"""

import errno
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import quirk_common as q  # noqa: E402

h = q.h
fk = q.fk

BODY2 = rb"^UID FETCH 2 \(UID BODY\.PEEK\[\]\)"


def setup(acct=None, **kw):
    acct = acct or q.small_account()
    srv = fk.FakeImap(acct, **kw).start()
    m = q.mount(srv).start()
    return acct, srv, m


def inbox(acct):
    return acct.folder("INBOX")


# ---------------------------------------------------------------------------
# RFC822.SIZE is a hint

def size_case(t, label, claimed_of, partial_first, uid=2):
    acct = q.small_account(big=True)
    msg = inbox(acct).by_uid(uid)
    real = len(msg.body)
    msg.size = claimed_of(real)
    acct, srv, m = setup(acct)
    p = q.message_path(m, "INBOX", uid)
    t.require(p is not None, "%s: the file of UID %d is listed" % (label,
                                                                   uid))
    before = os.stat(p).st_size
    if msg.size == 0:
        # A zero claim may be checked against the server at stat time
        # (an empty message file is never right); a listing must not
        # fetch bodies otherwise.
        t.check(before in (0, real), "%s: before any read, st_size is 0 "
                "or already exact" % label, "got %d" % before)
    else:
        t.equal(before, msg.size,
                "%s: before any read, st_size is RFC822.SIZE" % label)
    if partial_first == "head":
        r = h.run(["head", "-c", "10", p], check=False, timeout=30)
        t.equal(r.stdout, msg.body[:10], "%s: head -c 10 reads the first "
                "10 bytes" % label)
        t.equal(os.stat(p).st_size, real, "%s: after the first (partial) "
                "read, st_size is exact (%d)" % (label, real))
    elif partial_first == "beyond":
        # First read between the real end and the claimed end.
        r = h.run(["dd", "if=" + p, "bs=1", "skip=%d" % (real + 100),
                   "count=10", "status=none"], check=False, timeout=30)
        t.check(r.returncode == 0 and r.stdout == b"", "%s: a first read "
                "past the real end returns nothing" % label,
                "rc %d, %r %r" % (r.returncode, r.stdout[:40], r.stderr))
        t.equal(os.stat(p).st_size, real, "%s: after it, st_size is exact "
                "(%d)" % (label, real))
    rc, data, err, _ = h.cat(p)
    t.check(rc == 0 and data == msg.body, "%s: cat returns exactly the "
            "%d real bytes (RFC822.SIZE said %d)" % (label, real, msg.size),
            "rc %s, %d bytes%s %s" % (rc, len(data), "" if rc else ",",
                                      err.strip()))
    t.equal(os.stat(p).st_size, real, "%s: st_size is exact after the "
            "read" % label)
    # st_size is right at once (the short read or the daemon's immediate
    # invalidation sets it); st_blocks follows when the daemon refreshes
    # the kernel's attributes just after the read (200 ms).
    want_blocks = (real + 511) // 512
    h.wait_for(lambda: os.stat(p).st_blocks == want_blocks, 3)
    st = os.stat(p)
    t.equal(st.st_blocks, want_blocks,
            "%s: st_blocks follows the exact size within 3 s" % label)
    rc, data, err, _ = h.cat(p)
    t.check(rc == 0 and data == msg.body, "%s: a second cat (page cache) "
            "returns the same bytes" % label)
    r = h.run(["wc", "-c", p], check=False)
    t.equal(r.stdout.split()[:1], [str(real).encode()],
            "%s: wc -c counts the real length" % label)
    q.compare_account(t, m, acct, label)
    q.check_read_only(t, srv, label)
    q.check_unmount(t, m, label)


def case_size_smaller(t):
    size_case(t, "size_smaller", lambda n: n - 137, partial_first=None)


def case_size_larger(t):
    size_case(t, "size_larger", lambda n: n + 5000, partial_first="head")


def case_size_smaller_big(t):
    # A claim far below the real size: more than one page is missing.
    size_case(t, "size_smaller_big", lambda n: 1000, partial_first=None,
              uid=4)


def case_size_larger_big(t):
    size_case(t, "size_larger_big", lambda n: n * 2 + 12345,
              partial_first="beyond", uid=4)


def case_size_zero(t):
    size_case(t, "size_zero", lambda n: 0, partial_first=None)


# ---------------------------------------------------------------------------
# Partial fetch of a head (a small first read of a large message)

HEAD4 = rb"^UID FETCH 4 \(UID BODY\.PEEK\[\]<0\.65536>\)"


def read_head(p, n=4096):
    """A small first read with readahead off, as a file manager sniffing
    the type does: the kernel asks for one page."""
    fd = os.open(p, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
        return os.pread(fd, n, 0)
    finally:
        os.close(fd)


def head_case(t, label, script):
    acct = q.small_account(big=True)
    box = inbox(acct)
    msg = box.by_uid(4)
    acct, srv, m = setup(acct)
    p = q.message_path(m, "INBOX", 4)
    t.require(p is not None, "%s: the file of UID 4 is listed" % label)
    rule = srv.add_rule(HEAD4, lambda ctx: script(ctx, msg))
    try:
        head = read_head(p)
        err = None
    except OSError as e:
        head, err = b"", e
    t.require(rule.hits >= 1, "%s: the daemon asked for the head alone "
              "(the quirk was played)" % label)
    t.check(err is None and head == msg.body[:4096],
            "%s: the first 4 KiB are the message's, whatever the head "
            "answer" % label, "%r, %d bytes" % (err, len(head)))
    rc, data, err, el = h.cat(p)
    t.check(rc == 0 and data == msg.body, "%s: cat returns exactly the %d "
            "bytes of the message" % (label, len(msg.body)),
            "rc %s, %d bytes, %r" % (rc, len(data), err.strip()))
    t.equal(os.stat(p).st_size, len(msg.body),
            "%s: st_size is the message's" % label)
    q.check_read_only(t, srv, label)
    q.check_unmount(t, m, label)


def case_head_as_asked(t):
    # The plain case: the server answers BODY[]<0> with 65536 bytes.
    head_case(t, "head_as_asked", lambda ctx, msg: [
        b"* 4 FETCH (UID 4 BODY[]<0> {65536}\r\n" + msg.body[:65536] +
        b")\r\n{tag} OK UID FETCH completed\r\n"])


def case_head_short(t):
    # Fewer bytes than asked although the message is larger: not a head
    # to trust, the whole body is fetched instead.
    head_case(t, "head_short", lambda ctx, msg: [
        b"* 4 FETCH (UID 4 BODY[]<0> {100}\r\n" + msg.body[:100] +
        b")\r\n{tag} OK UID FETCH completed\r\n"])


def case_head_long(t):
    # More bytes than asked: a mislabelled answer, refused.
    head_case(t, "head_long", lambda ctx, msg: [
        b"* 4 FETCH (UID 4 BODY[]<0> {70000}\r\n" + msg.body[:70000] +
        b")\r\n{tag} OK UID FETCH completed\r\n"])


def case_head_mislabelled(t):
    # An answer for another offset, and one without an offset: neither
    # is the head that was asked for.
    head_case(t, "head_mislabelled", lambda ctx, msg: [
        b"* 4 FETCH (UID 4 BODY[]<5> {65536}\r\n" + msg.body[5:65541] +
        b")\r\n* 4 FETCH (UID 4 BODY[] {65536}\r\n" + msg.body[:65536] +
        b")\r\n{tag} OK UID FETCH completed\r\n"])


def case_head_nil(t):
    head_case(t, "head_nil", lambda ctx, msg: [
        b"* 4 FETCH (UID 4 BODY[]<0> NIL)\r\n"
        b"{tag} OK UID FETCH completed\r\n"])


# ---------------------------------------------------------------------------
# No usable body

def no_body_case(t, label, script):
    acct = q.small_account()
    msg = inbox(acct).by_uid(2)
    uidv = inbox(acct).uidvalidity
    acct, srv, m = setup(acct)
    srv.add_rule(BODY2, script)
    p = q.message_path(m, "INBOX", 2)
    t.require(p is not None, "%s: the file of UID 2 is listed" % label)
    for attempt in (1, 2):
        rc, data, err, el = h.cat(p)
        t.check(q.is_eio(rc, err) and data == b"",
                "%s: read #%d fails with EIO and returns nothing" % (
                    label, attempt),
                "rc %s, %d bytes, stderr %r after %.1fs" % (
                    rc, len(data), err.strip(), el))
    t.equal(q.cached_bodies(m.cache_dir, uidv, 2), [],
            "%s: no body file in the cache" % label)
    left = h.wait_for(lambda: not q.temp_files(m.cache_dir), 2)
    t.check(left, "%s: no temp file left in the cache (2 s after the "
            "failure)" % label, repr(q.temp_files(m.cache_dir)))
    t.check(q.daemon_alive(m) and m.mounted(), "%s: the daemon is alive "
            "and mounted" % label)
    p1 = q.message_path(m, "INBOX", 1)
    rc, data, err, _ = h.cat(p1)
    t.check(rc == 0 and data == inbox(acct).by_uid(1).body,
            "%s: another message of the folder still reads" % label)
    srv.clear_rules()
    rc, data, err, _ = h.cat(p)
    t.check(rc == 0 and data == msg.body, "%s: once the server is fixed, "
            "the read returns the right %d bytes" % (label, len(msg.body)),
            "rc %s, %d bytes, %s" % (rc, len(data), err.strip()))
    t.equal(os.stat(p).st_size, len(msg.body), "%s: then st_size is exact"
            % label)
    t.equal(len(q.cached_bodies(m.cache_dir, uidv, 2)), 1,
            "%s: and the body is cached" % label)
    q.check_read_only(t, srv, label)
    q.check_unmount(t, m, label)


def case_body_nil(t):
    no_body_case(t, "body_nil", [b"* 2 FETCH (UID 2 BODY[] NIL)\r\n"
                                 b"{tag} OK UID FETCH completed\r\n"])


def case_body_empty_quoted(t):
    no_body_case(t, "body_empty_quoted", [
        b'* 2 FETCH (UID 2 BODY[] "")\r\n{tag} OK UID FETCH completed\r\n'])


def case_body_empty_literal(t):
    no_body_case(t, "body_empty_literal", [
        b"* 2 FETCH (UID 2 BODY[] {0}\r\n)\r\n"
        b"{tag} OK UID FETCH completed\r\n"])


def case_body_ok_no_data(t):
    no_body_case(t, "body_ok_no_data", [b"{tag} OK UID FETCH completed\r\n"])


def case_body_fetch_without_body(t):
    no_body_case(t, "body_fetch_without_body", [
        b"* 2 FETCH (UID 2 FLAGS (\\Seen))\r\n"
        b"{tag} OK UID FETCH completed\r\n"])


def case_body_other_uid(t):
    # The body of another message must not be stored under UID 2.
    def script(ctx):
        other = ctx.folder.by_uid(3)
        return [ctx.fetch_line(other, ["UID", "BODY[]"]),
                b"{tag} OK UID FETCH completed\r\n"]
    no_body_case(t, "body_other_uid", script)


# ---------------------------------------------------------------------------
# Literals (and atoms) where strings stand

def case_literal_strings(t):
    acct = q.small_account()
    for f in acct.folders:
        f.form = "literal"
    acct.folder("INBOX").form = "atom"
    acct.folder("Work").form = "atom"
    acct.add_folder("Q&-A", form="literal").add(
        q.message("Ampersand", "In Q&A.\n"), date=q.T0 + 5)
    acct.add_folder("&ZeVnLIqe-/Sub &- more", form="literal").add(
        q.message("Nested", "Nested under Japanese.\n"), date=q.T0 + 6)
    acct.add_folder("&ZeVnLIqe-", form="literal", attrs=["\\Noselect"])
    one = acct.add_folder("Oneliner", form="quoted")
    one.add(b"Subject: one line, no end of line", date=q.T0 + 7)
    acct, srv, m = setup(acct)

    # The header block of the message without a subject as "" and of the
    # others as the literal; the one-line body as a quoted string.
    def listing(ctx):
        out = []
        for x in ctx.folder.messages:
            line = ctx.fetch_line(x, ["UID", "RFC822.SIZE", "INTERNALDATE"])
            block = fk.literal(fk.header_fields(x.body)) \
                if b"Subject" in x.body else b'""'
            out.append(line[:-3] + b" BODY[HEADER.FIELDS (SUBJECT)] " +
                       block + b")\r\n")
        return out + [b"{tag} OK done\r\n"]

    rules = [srv.add_rule(r"^UID FETCH \S+ \(UID RFC822\.SIZE", listing),
             srv.add_rule(r"^UID FETCH 1 \(UID BODY", [
                 b'* 1 FETCH (UID 1 BODY[] "Subject: one line, no end of '
                 b'line")\r\n{tag} OK done\r\n'],
                 when=lambda c: c.folder.raw == b"Oneliner")]
    q.compare_account(t, m, acct, "literal_strings")
    t.check(all(r.hits for r in rules), "literal_strings: every quirk was "
            "played (%s times)" % [r.hits for r in rules])
    names = {("INBOX", 1): "1 Hello quirks.eml",
             ("INBOX", 2): "2 Second message.eml",
             ("INBOX", 3): "3.eml",
             ("Q&A", 1): "1 Ampersand.eml",
             ("日本語/Sub & more", 1): "1 Nested.eml",
             ("Oneliner", 1): "1 one line, no end of line.eml",
             ("Work/Projects", 1): "1 Project plan.eml",
             ("Entwürfe", 1): "1 Draft.eml"}
    t.all_ok("literal_strings: file names from the subjects",
             q.subject_name_problems(m, acct, names))
    q.check_read_only(t, srv, "literal_strings")
    q.check_unmount(t, m, "literal_strings")


# ---------------------------------------------------------------------------
# Untagged data at any time

NOISE_BEFORE = (b"* 9 EXISTS\r\n* 1 EXPUNGE\r\n* 3 RECENT\r\n"
                b"* 1 FETCH (FLAGS (\\Seen \\Answered))\r\n"
                b"* OK Still here\r\n"
                b"* OK [ALERT] Maintenance tonight\r\n"
                b"* NO [OVERQUOTA] You are over quota\r\n"
                b"* XWHATEVER a (b {3}\r\nc)d) \"e\" NIL\r\n"
                b"* CAPABILITY IMAP4rev1 LITERAL+\r\n"
                b"* 2 XFUTURE [CODE 1 2] text\r\n")
NOISE_AFTER = (b"* 2 FETCH (FLAGS (\\Seen) MODSEQ (12))\r\n"
               b"* OK [HIGHESTMODSEQ 12] changed\r\n"
               b"* 1 EXPUNGE\r\n* 8 EXISTS\r\n"
               b"* BAD [PARSE] a complaint about nothing\r\n"
               b"* XLITERAL {5}\r\n\r\n\r\n)\r\n")


def case_untagged_in_fetch(t):
    acct = q.small_account(big=True)
    acct, srv, m = setup(acct)

    def body(ctx):
        uid = int(ctx.text.split()[2])
        msg = ctx.folder.by_uid(uid)
        line = ctx.fetch_line(msg, ["FLAGS", "UID", "INTERNALDATE",
                                    "BODY[]", "RFC822.SIZE"])
        return [NOISE_BEFORE, line, NOISE_AFTER,
                b"{tag} OK UID FETCH completed\r\n"]

    def listing(ctx):
        items = ["INTERNALDATE", "BODY.PEEK[HEADER.FIELDS (SUBJECT)]",
                 "FLAGS", "RFC822.SIZE", "UID"]
        out = [NOISE_BEFORE]
        for x in ctx.folder.messages:
            out.append(b"* %d FETCH (FLAGS ())\r\n" % (
                ctx.folder.messages.index(x) + 1))
            out.append(ctx.fetch_line(x, items))
            out.append(b"* OK Still here\r\n")
        out.append(NOISE_AFTER)
        out.append(b"{tag} OK UID FETCH completed\r\n")
        return out

    def examine(ctx):
        d = b"".join(ctx.default())
        return [NOISE_BEFORE, d.replace(ctx.tag + b" OK",
                                        NOISE_AFTER + ctx.tag + b" OK")]

    rules = [srv.add_rule(r"^UID FETCH \d+ \(UID BODY\.PEEK\[\]\)", body),
             srv.add_rule(r"^UID FETCH 1:\* \(UID RFC822", listing),
             srv.add_rule(r"^EXAMINE ", examine)]
    q.compare_account(t, m, acct, "untagged_in_fetch")
    t.check(all(r.hits for r in rules), "untagged_in_fetch: every quirk "
            "was played (%s times)" % [r.hits for r in rules])
    t.check(q.daemon_alive(m) and m.mounted(), "untagged_in_fetch: the "
            "daemon is alive and mounted")
    q.check_read_only(t, srv, "untagged_in_fetch")
    q.check_unmount(t, m, "untagged_in_fetch")


# ---------------------------------------------------------------------------
# BYE or a closed connection in the middle of a fetch

def read_never_wrong(t, label, m, p, msg, must_succeed=False):
    """A read that may fail with EIO but never returns wrong bytes."""
    rc, data, err, el = h.cat(p)
    # On EIO, what was read before the error must be a true prefix (the
    # head of a large message may come alone, before the whole body).
    ok = (rc == 0 and data == msg.body) or \
        (not must_succeed and q.is_eio(rc, err) and
         data == msg.body[:len(data)])
    t.check(ok, "%s: the read returns the right %d bytes%s" % (
        label, len(msg.body), "" if must_succeed else " or fails with EIO"),
        "rc %s, %d bytes, %r after %.1fs" % (rc, len(data), err.strip(), el))
    return rc == 0


def bye_case(t, label, script, times, transparent_ok=True):
    acct = q.small_account(big=True)
    box = inbox(acct)
    msg = box.by_uid(4)
    acct, srv, m = setup(acct)
    p = q.message_path(m, "INBOX", 4)
    t.require(p is not None, "%s: the file of UID 4 is listed" % label)
    rule = srv.add_rule(r"^UID FETCH 4 \(UID BODY\.PEEK\[\]\)", script,
                        times=times)
    got = read_never_wrong(t, label, m, p, msg)
    t.check(rule.hits >= 1, "%s: the quirk was played (%d times)" % (
        label, rule.hits))
    if not got:
        files = q.cached_bodies(m.cache_dir, box.uidvalidity, 4)
        t.equal(files, [], "%s: after the failure no body is cached" % label)
        # The partial temp file may be removed a moment later, not never.
        left = h.wait_for(lambda: not q.temp_files(m.cache_dir), 2)
        t.check(left, "%s: no temp file left in the cache (2 s after the "
                "failure)" % label, repr(q.temp_files(m.cache_dir)))
    t.check(q.daemon_alive(m) and m.mounted(), "%s: the daemon is alive "
            "and mounted" % label)
    srv.clear_rules()
    read_never_wrong(t, label + " (server fixed)", m, p, msg,
                     must_succeed=True)
    for uid in (1, 2):
        read_never_wrong(t, "%s: UID %d" % (label, uid), m,
                         q.message_path(m, "INBOX", uid), box.by_uid(uid),
                         must_succeed=True)
    read_never_wrong(t, label + ": another folder", m,
                     q.message_path(m, "Work/Projects", 1),
                     acct.folder("Work/Projects").by_uid(1),
                     must_succeed=True)
    q.check_read_only(t, srv, label)
    q.check_unmount(t, m, label)


def half_literal(ctx):
    msg = ctx.folder.by_uid(4)
    line = ctx.fetch_line(msg, ["UID", "BODY[]"])
    cut = len(line) // 2
    return [line[:cut], fk.Sleep(0.1), b"\r\n* BYE shutting down\r\n",
            fk.CLOSE]


def case_bye_before_body_once(t):
    bye_case(t, "bye_before_body_once",
             [b"* BYE Server shutting down\r\n", fk.CLOSE], times=1)


def case_bye_after_body(t):
    # The whole FETCH arrives, then BYE instead of the tagged OK.
    bye_case(t, "bye_after_body", lambda ctx: [
        ctx.fetch_line(ctx.folder.by_uid(4), ["UID", "BODY[]"]),
        b"* BYE Autologout; idle for too long\r\n", fk.CLOSE], times=None)


def case_bye_mid_literal(t):
    bye_case(t, "bye_mid_literal", half_literal, times=None)


def case_close_mid_literal_once(t):
    bye_case(t, "close_mid_literal_once", lambda ctx: [
        ctx.fetch_line(ctx.folder.by_uid(4), ["UID", "BODY[]"])[:5000],
        fk.CLOSE], times=1)


def case_bye_in_listing(t):
    acct = q.small_account()
    acct, srv, m = setup(acct)
    rule = srv.add_rule(r"^UID FETCH 1:\* ", lambda ctx: [
        ctx.fetch_line(ctx.folder.messages[0], [
            "UID", "RFC822.SIZE", "INTERNALDATE",
            "BODY.PEEK[HEADER.FIELDS (SUBJECT)]"]),
        b"* BYE going down\r\n", fk.CLOSE],
        when=lambda c: c.folder.raw == b"INBOX")
    d = os.path.join(m.mountpoint, "INBOX")
    try:
        names = os.listdir(d)
        err = None
    except OSError as e:
        names, err = None, e
    t.check(err is not None and err.errno == errno.EIO,
            "bye_in_listing: listing the folder fails with EIO",
            "listed %r" % (names,) if err is None else str(err))
    t.check(rule.hits >= 1, "bye_in_listing: the quirk was played")
    t.check(q.daemon_alive(m) and m.mounted(), "bye_in_listing: the daemon "
            "is alive and mounted")
    p = q.message_path(m, "Work/Projects", 1)
    rc, data, e2, _ = h.cat(p) if p else (None, b"", "not listed", 0)
    t.check(rc == 0 and data == acct.folder("Work/Projects").by_uid(1).body,
            "bye_in_listing: another folder still works", e2)
    srv.clear_rules()
    q.compare_account(t, m, acct, "bye_in_listing (server fixed)")
    q.check_read_only(t, srv, "bye_in_listing")
    q.check_unmount(t, m, "bye_in_listing")


# ---------------------------------------------------------------------------
# Delays

def case_stall_mid_literal(t):
    # Half a literal, then silence: the read fails with EIO in bounded
    # time, and a later read after the server recovers works.
    label = "stall_mid_literal"
    acct = q.small_account()
    box = inbox(acct)
    msg = box.by_uid(2)
    srv = fk.FakeImap(acct).start()
    m = q.mount(srv, timeout_s=2).start()
    srv.add_rule(BODY2, lambda ctx: [
        ctx.fetch_line(msg, ["UID", "BODY[]"])[:200], fk.Sleep(30)])
    p = q.message_path(m, "INBOX", 2)
    rc, data, err, el = h.cat(p, timeout=40)
    t.check(q.is_eio(rc, err) and data == b"", "%s: the read fails with EIO"
            % label, "rc %s, %d bytes, %r" % (rc, len(data), err.strip()))
    t.check(el < 15, "%s: within 15 s with --timeout=2 (%.1fs)" % (label, el))
    t.equal(q.cached_bodies(m.cache_dir, box.uidvalidity, 2), [],
            "%s: nothing cached" % label)
    srv.clear_rules()
    # A stall marks the server down for a short backoff (reads fail fast
    # meanwhile instead of each waiting for the timeout again); the mount
    # must recover by itself within a few seconds, and any read in between
    # fails with EIO or returns the right bytes.
    deadline = time.monotonic() + 10
    while True:
        rc, data, err, _ = h.cat(p)
        t.require(rc == 0 and data == msg.body or
                  (q.is_eio(rc, err) and data == b""),
                  "%s (recovering): a read returns the right bytes or EIO"
                  % label, "rc %s, %d bytes" % (rc, len(data)))
        if rc == 0 or time.monotonic() >= deadline:
            break
        time.sleep(0.2)
    read_never_wrong(t, label + " (server recovered, within 10 s)", m, p,
                     msg, must_succeed=True)
    q.check_read_only(t, srv, label)
    q.check_unmount(t, m, label)


def case_slow_but_steady(t):
    # One byte every 10 ms: slower in total than --timeout, but always
    # progressing, so the read must succeed.
    label = "slow_but_steady"
    acct = q.small_account()
    msg = inbox(acct).by_uid(1)
    srv = fk.FakeImap(acct).start()
    # The slow answer is for the fetch of UID 1 alone (prefetch off: a
    # walk start would ask for 1:3).
    m = q.mount(srv, args=["--prefetch=off"], timeout_s=2).start()

    def slow(ctx):
        data = ctx.fetch_line(msg, ["UID", "BODY[]"]) + ctx.tag + \
            b" OK done\r\n"

        def gen():
            for i in range(len(data)):
                time.sleep(0.01)
                yield data[i:i + 1]
        return [fk.Stream(gen)]

    srv.add_rule(r"^UID FETCH 1 \(UID BODY", slow,
                 when=lambda c: c.folder.raw == b"INBOX")
    p = q.message_path(m, "INBOX", 1)
    rc, data, err, el = h.cat(p, timeout=60)
    t.check(rc == 0 and data == msg.body, "%s: the read returns the right "
            "%d bytes after %.1fs" % (label, len(msg.body), el),
            "rc %s, %d bytes, %r" % (rc, len(data), err.strip()))
    t.check(el > 2, "%s: the answer took longer than --timeout" % label)
    q.check_read_only(t, srv, label)
    q.check_unmount(t, m, label)


def case_connection_limit(t):
    label = "connection_limit"
    limit = 3
    acct = q.small_account()
    many = acct.add_folder("Many", attrs=["\\HasNoChildren"])
    for i in range(120):
        many.add(q.message("Many %d" % i, "Body of message %d\n" % i * 30,
                           "many%d" % i), date=q.T0 + i)
    srv = fk.FakeImap(acct)
    refused = []

    def greeting(ctx):
        live = [c for c in ctx.server.conns if not c.closed.is_set()]
        if len(live) > limit:
            refused.append(ctx.conn.index)
            return [b"* BYE [UNAVAILABLE] Too many connections from your "
                    b"address\r\n", fk.CLOSE]
        return ctx.default()
    srv.add_rule(r"^\*GREETING$", greeting)
    srv.start()
    m = q.mount(srv, args=["--connections=8"]).start()
    d = os.path.join(m.mountpoint, "Many")
    names = sorted(os.listdir(d))
    results = {}

    def reader(k):
        # Eight readers at once, each on its own stretch of the folder,
        # want more connections than the server allows.
        for n in names[k::8]:
            results[n] = h.cat(os.path.join(d, n), timeout=60)

    threads = [threading.Thread(target=reader, args=(k,)) for k in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(120)
    # A reader that died or hangs leaves names unread: those fail too.
    bad = ["%s: not read" % n for n in names if n not in results]
    bad += ["%s: exit %s %s" % (n, r[0], r[2].strip())
            for n, r in sorted(results.items()) if r[0] != 0]
    want = {h.uid_of_name(n): many.by_uid(h.uid_of_name(n)).body
            for n in names}
    wrong = [n for n, r in results.items()
             if r[0] == 0 and r[1] != want[h.uid_of_name(n)]]
    h.log("#   %s: %d greetings refused" % (label, len(refused)))
    t.check(len(refused) >= 1, "%s: the server refused connections over "
            "its limit (%d)" % (label, len(refused)))
    t.all_ok("%s: all %d reads by 8 readers succeeded, none got EIO" % (
        label, len(names)), bad + wrong)
    t.check(len(refused) <= 10, "%s: the pool shrank instead of "
            "hammering the server (%d refused greetings)" % (label,
                                                              len(refused)))
    said = [x for x in m.stderr_text().splitlines()
            if "limits connections" in x]
    t.check(len(said) >= 1 and not any("authentication" in x.lower()
                                      for x in m.stderr_text().splitlines()),
            "%s: the daemon says the server limits connections, not that "
            "the login failed" % label, repr(said[:3]))
    q.check_read_only(t, srv, label)
    q.check_unmount(t, m, label)


# ---------------------------------------------------------------------------
# A message new to the session that fetches it

ENVELOPE2 = (b'("Fri, 01 Mar 2024 09:00:00 +0000" "New to the session" '
             b'(("Fake Sender" NIL "sender" "example.org")) NIL NIL '
             b'((NIL NIL "fake-user" "localhost")) NIL NIL NIL "<m2@x>")')


def new_to_session_case(t, label, news, what="body"):
    """UID 2 arrives after the pool's one connection selected INBOX: like
    Courier, the server answers a FETCH of it (what: its body, or its
    envelope for an extended attribute) with OK and no data until that
    connection sends one of the commands in news (NOOP shows new mail on
    Courier; a server may show it only to a new EXAMINE). The daemon must
    catch up and answer at once, never fail the read."""
    acct = q.small_account()
    msg = inbox(acct).by_uid(2)
    msg.extra["ENVELOPE"] = ENVELOPE2
    srv = fk.FakeImap(acct).start()
    m = q.mount(srv, args=["--connections=1", "--xattr"]).start()
    p = q.message_path(m, "INBOX", 2)  # the pool's connection selects INBOX
    t.require(p is not None, "%s: the file of UID 2 is listed" % label)

    def caught_up(ctx):
        ctx.conn.caught_up = True
        return [fk.DEFAULT]
    for cmd in news:
        srv.add_rule(r"^%s\b" % cmd, caught_up)
    examines = srv.count(r"^EXAMINE")
    if what == "search":
        # The search answer of a session that has not seen UID 2.
        unseen = srv.add_rule(
            r"^UID SEARCH", lambda ctx: ctx.conn.do_search(
                ctx.tag, ctx.cmd + b" UID 1,3:*"),
            when=lambda ctx: not getattr(ctx.conn, "caught_up", False))
    else:
        unseen = srv.add_rule(
            BODY2 if what == "body" else rb"^UID FETCH 2 \(UID ENVELOPE",
            [b"{tag} OK UID FETCH completed\r\n"],
            when=lambda ctx: not getattr(ctx.conn, "caught_up", False))
    if what == "search":
        d = os.path.join(os.path.dirname(p), ".search", "ALL")
        try:
            got = sorted(h.uid_of_name(os.readlink(os.path.join(d, n))
                                       .split("/")[-1])
                         for n in os.listdir(d))
        except OSError as e:
            got = "error %s" % errno.errorcode.get(e.errno, e.errno)
        want = sorted(x.uid for x in inbox(acct).messages)
        t.equal(got, want, "%s: the first search finds UID 2 too" % label)
    elif what == "body":
        rc, data, err, el = h.cat(p)
        t.check(rc == 0 and data == msg.body, "%s: the first read returns "
                "the right %d bytes" % (label, len(msg.body)),
                "rc %s, %d bytes, stderr %r after %.1fs" % (
                    rc, len(data), err.strip(), el))
    else:
        try:
            got = os.getxattr(p, "user.mail.subject").decode()
        except OSError as e:
            got = "error %s" % errno.errorcode.get(e.errno, e.errno)
        t.equal(got, "New to the session", "%s: user.mail.subject comes "
                "from the envelope at the first try" % label)
    if what == "search":
        # NOOP before the SEARCH keeps the rule from answering: the case
        # was exercised if no new EXAMINE refreshed the session instead.
        t.equal(srv.count(r"^EXAMINE"), examines, "%s: the search ran on "
                "the connection that selected INBOX before" % label)
    else:
        t.check(unseen.hits >= 1, "%s: the server did answer a FETCH of "
                "UID 2 without it (the case was exercised)" % label,
                "hits %d" % unseen.hits)
    t.all_ok("%s: the daemon logs no failed fetch" % label,
             h.fetch_errors(m.stderr_text()))
    q.check_read_only(t, srv, label)
    q.check_unmount(t, m, label)


def case_body_new_to_session(t):
    new_to_session_case(t, "body_new_to_session", ["NOOP", "EXAMINE"])


def case_body_new_to_examine(t):
    new_to_session_case(t, "body_new_to_examine", ["EXAMINE"])


def case_envelope_new_to_session(t):
    new_to_session_case(t, "envelope_new_to_session", ["NOOP", "EXAMINE"],
                        what="envelope")


def case_search_new_to_session(t):
    new_to_session_case(t, "search_new_to_session", ["NOOP", "EXAMINE"],
                        what="search")


CASES = [case_size_smaller, case_size_larger, case_size_smaller_big,
         case_size_larger_big, case_size_zero,
         case_head_as_asked, case_head_short, case_head_long,
         case_head_mislabelled, case_head_nil,
         case_body_nil, case_body_empty_quoted, case_body_empty_literal,
         case_body_ok_no_data, case_body_fetch_without_body,
         case_body_other_uid, case_literal_strings, case_untagged_in_fetch,
         case_bye_before_body_once, case_bye_after_body,
         case_bye_mid_literal, case_close_mid_literal_once,
         case_bye_in_listing, case_stall_mid_literal, case_slow_but_steady,
         case_connection_limit, case_body_new_to_session,
         case_body_new_to_examine, case_envelope_new_to_session,
         case_search_new_to_session]

if __name__ == "__main__":
    q.run_cases("test_quirks", CASES)
