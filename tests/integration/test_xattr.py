#!/usr/bin/env python3
"""test_xattr: with --xattr, every message file carries its IMAP metadata
and envelope as user.* extended attributes: each one equals what the server
answers to a direct FETCH (imaplib), flags follow a change made by another
client, non-ASCII subjects and names are decoded, the old user.imapfs.*
names still answer, and getfattr -d fetches no message body (bytes counted
by a proxy between the daemon and Dovecot, body files in the cache)."""

import email
import email.policy
import email.utils
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "faults"))
import imapfs_harness as h  # noqa: E402
from faultproxy import FaultProxy  # noqa: E402

BIG = 400 * 1024  # each message's body: a body fetch would show


def message(subject, sender, to, cc=None, extra=b"", size=BIG):
    head = [b"From: " + sender, b"To: " + to]
    if cc:
        head.append(b"Cc: " + cc)
    head += [b"Subject: " + subject,
             b"Date: Tue, 02 Jan 2024 10:00:00 +0100",
             b"Message-ID: <%d.test@example.org>" % len(subject),
             b"MIME-Version: 1.0",
             b"Content-Type: text/plain; charset=utf-8"]
    if extra:
        head.append(extra)
    line = b"x" * 76 + b"\r\n"
    return b"\r\n".join(head) + b"\r\n\r\n" + line * (size // len(line))


MESSAGES = [
    (message(b"=?UTF-8?B?R3LDvMOfZSBhdXMgS8O2bG4=?=",
             b"=?ISO-8859-1?Q?J=F6rg_M=FCller?= <joerg@example.org>",
             b"alice@example.org, Bob <bob@example.org>",
             cc=b"=?UTF-8?Q?=E5=B1=B1=E7=94=B0?= <yamada@example.jp>",
             extra=b"In-Reply-To: <parent@example.org>"), r"(\Seen)"),
    (message(b"plain ascii subject", b"carol@example.org",
             b"dave@example.org"), r"(\Flagged $Label1)"),
]


def getfattr_dump(path):
    r = subprocess.run(["getfattr", "-d", "--absolute-names", "-e", "text",
                        path], capture_output=True, timeout=60)
    out = {}
    for line in r.stdout.splitlines():
        m = re.match(rb'^([\w.-]+)="(.*)"$', line)
        if m:
            # getfattr escapes some bytes as \ooo; the rest is raw UTF-8.
            out[m.group(1).decode()] = m.group(2).decode("unicode_escape")\
                .encode("latin1").decode("utf-8", "replace")
    return r.returncode, out


def xattr(path, name):
    try:
        return os.getxattr(path, name).decode("utf-8")
    except OSError:
        return None


def server_truth(client, uid):
    """What a direct FETCH says about uid in INBOX."""
    client.examine("INBOX")
    typ, data = client.conn.uid(
        "FETCH", str(uid), "(UID FLAGS INTERNALDATE RFC822.SIZE "
        "BODY.PEEK[HEADER])")
    head = b""
    meta = b""
    for item in data:
        if isinstance(item, tuple):
            meta += item[0]
            head = item[1]
        elif item:
            meta += item
    msg = email.message_from_bytes(head, policy=email.policy.default)
    flags = re.search(rb"FLAGS \(([^)]*)\)", meta).group(1).decode().split()
    return {
        "flags": set(f for f in flags if f != "\\Recent"),
        "date": h.parse_internaldate(re.search(
            rb'INTERNALDATE "([^"]+)"', meta).group(1).decode()),
        "size": int(re.search(rb"RFC822\.SIZE (\d+)", meta).group(1)),
        "msg": msg,
    }


def addresses(s):
    return [(n, a.lower()) for n, a in email.utils.getaddresses([s or ""])]


def check_file(t, path, truth, uid, uidvalidity):
    rc, got = getfattr_dump(path)
    name = os.path.basename(path)
    t.equal(rc, 0, "%s: getfattr -d exits 0" % name)
    t.equal(got.get("user.imap.uid"), str(uid), "%s: user.imap.uid" % name)
    t.equal(got.get("user.imapfs.uid"), str(uid),
            "%s: the deprecated user.imapfs.uid still answers" % name)
    t.equal(got.get("user.imap.uidvalidity"), str(uidvalidity),
            "%s: user.imap.uidvalidity" % name)
    t.equal(got.get("user.imap.folder"), "INBOX", "%s: user.imap.folder"
            % name)
    t.equal(set(got.get("user.imap.flags", "-").split()), truth["flags"],
            "%s: user.imap.flags are the server's FLAGS" % name)
    t.equal(got.get("user.imap.size"), str(truth["size"]),
            "%s: user.imap.size is RFC822.SIZE" % name)
    d = got.get("user.imap.internaldate", "")
    t.equal(time.mktime(time.strptime(d, "%Y-%m-%dT%H:%M:%SZ"))
            - time.timezone if d else None, truth["date"],
            "%s: user.imap.internaldate (RFC 3339) is INTERNALDATE" % name)
    msg = truth["msg"]
    t.equal(got.get("user.mail.subject"), str(msg["subject"]),
            "%s: user.mail.subject is the decoded Subject" % name)
    for field in ("from", "to", "cc"):
        t.equal(addresses(got.get("user.mail." + field)),
                addresses(str(msg[field] or "")),
                "%s: user.mail.%s is the decoded %s" % (name, field, field))
    t.equal(got.get("user.mail.message-id"), msg["message-id"],
            "%s: user.mail.message-id" % name)
    t.equal(got.get("user.mail.in-reply-to"),
            str(msg["in-reply-to"]) if msg["in-reply-to"] else None,
            "%s: user.mail.in-reply-to" % name)
    t.equal(got.get("user.mail.date"), str(msg["date"]),
            "%s: user.mail.date" % name)
    return got


def cache_files(cache_dir):
    """How many message bodies the cache holds (files and pack records)."""
    return len(h.cache_bodies(cache_dir))


def body(t):
    dc = h.Dovecot()
    dc.start()
    client = dc.client()
    h.add_cleanup(client.close)
    for data, flags in MESSAGES:
        client.append("INBOX", data, flags=flags)
    uidvalidity = int(re.search(
        rb"UIDVALIDITY (\d+)",
        client.conn.status("INBOX", "(UIDVALIDITY)")[1][0]).group(1))
    proxy = FaultProxy(dc.imaps_port).start()
    h.add_cleanup(proxy.close)

    m = h.Mount(dc, url=dc.url("imaps", port=proxy.port),
                args=["--xattr", "--poll-interval=5"]).start()
    inbox = os.path.join(m.mountpoint, "INBOX")
    files = {int(n.split()[0].split(".")[0]): os.path.join(inbox, n)
             for n in os.listdir(inbox)}
    t.equal(sorted(files), [1, 2], "INBOX lists both messages")
    t.check("Grüße aus Köln" in os.path.basename(files[1]),
            "the file name carries the decoded subject",
            os.path.basename(files[1]))

    before_bytes = proxy.bytes_s2c
    before_files = cache_files(m.cache_dir)
    got = {}
    for uid, path in sorted(files.items()):
        got[uid] = check_file(t, path, server_truth(client, uid), uid,
                              uidvalidity)
    moved = proxy.bytes_s2c - before_bytes
    t.check(moved < BIG // 2, "getfattr -d of %d files moved %d bytes from "
            "the server: no body (each is %d bytes)" % (len(files), moved,
                                                        BIG))
    t.equal(cache_files(m.cache_dir), before_files,
            "getfattr -d wrote no body into the cache (%d before)"
            % before_files)
    t.equal(got[1].get("user.mail.subject"), "Grüße aus Köln",
            "a UTF-8 encoded-word subject is decoded")
    t.equal(addresses(got[1].get("user.mail.from")),
            [("Jörg Müller", "joerg@example.org")],
            "a latin1 encoded-word sender is decoded")
    t.equal(addresses(got[1].get("user.mail.cc")),
            [("山田", "yamada@example.jp")], "a UTF-8 Cc name is decoded")
    t.equal(set(got[2].get("user.imap.flags", "").split()),
            {"\\Flagged", "$Label1"}, "a keyword shows as the server "
            "spells it")

    names = os.listxattr(files[2])
    t.check("user.imap.flags" in names and "user.mail.from" in names and
            "user.imap.gmail-labels" not in names,
            "listxattr names the attributes (no Gmail ones on Dovecot)",
            repr(names))
    t.equal(xattr(inbox, "user.imap.folder"), "INBOX",
            "a folder directory has user.imap.folder")
    try:
        os.getxattr(files[2], "security.selinux")
        t.check(False, "security.* attributes are absent")
    except OSError as e:
        t.check(e.errno == 61, "security.* attributes are absent (ENODATA)",
                str(e))

    # Another client changes the flags: the attribute follows within the
    # live-update delay (NOTIFY FlagChange on Dovecot).
    client.examine("INBOX")
    client.conn.select("INBOX")
    client.conn.uid("STORE", "1", "+FLAGS", r"(\Flagged $Work)")
    client.conn.uid("STORE", "2", "-FLAGS", r"(\Flagged)")
    want1 = server_truth(client, 1)["flags"]
    want2 = server_truth(client, 2)["flags"]
    t.check({"\\Flagged", "$Work", "\\Seen"} <= want1,
            "the server took the change", repr(want1))
    ok = h.wait_for(lambda: set((xattr(files[1], "user.imap.flags") or "")
                                .split()) == want1 and
                    set((xattr(files[2], "user.imap.flags") or "")
                        .split()) == want2, timeout=60, interval=0.2)
    t.check(ok, "flags changed by another client show in user.imap.flags",
            "%r %r" % (xattr(files[1], "user.imap.flags"),
                       xattr(files[2], "user.imap.flags")))

    # After a remount on the same cache the persisted flags are there.
    t.equal(m.unmount(), 0, "the daemon exits 0")
    m2 = h.Mount(dc, cache_dir=m.cache_dir, args=["--xattr"]).start()
    p1 = os.path.join(m2.mountpoint, "INBOX", os.path.basename(files[1]))
    t.equal(set((xattr(p1, "user.imap.flags") or "").split()), want1,
            "after a remount, the flags are those last seen")
    t.equal(m2.unmount(), 0, "the second daemon exits 0")
    t.all_ok("no sanitizer report or GLib critical",
             m.bug_reports() + m2.bug_reports())


if __name__ == "__main__":
    sys.exit(h.Test("xattr").run(body))
