#!/usr/bin/env python3
"""test_parts_nobinary: --layout=parts by section against a Dovecot
without BINARY (RFC 3516; imap_capability drops it). Attachments are then
fetched as BODY.PEEK[n] and decoded by the daemon: every part of the
generated mail of test_parts equals Python's email decoding, and stat,
done before any read, gives the exact decoded size. For one attachment of
a large message, a proxy counts what the server sends: about the
section's encoded size (base64 included), not the whole message, and the
read after the stat costs nothing more. Without --xattr, a POSIX ACL
name gets EOPNOTSUPP, so that ls -l asks once a mount, not once a file
and twice a message directory."""

import base64
import errno
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "live"))
import imapfs_harness as h  # noqa: E402
import livelib  # noqa: E402
import test_parts as tp  # noqa: E402
from test_parts import FaultProxy  # noqa: E402

ATT = 6 << 20  # 8 MB as base64
OTHER = 3 << 20  # 4 MB as base64
QP = b"line one =\r\n\x00\x01 tail\xff\r\n" * 20


def msg_qp():
    """A quoted-printable attachment with soft breaks and 8-bit bytes."""
    enc = b"".join(b"=%02X" % c if c > 126 or c < 32 and c not in (13, 10)
                   or c == 61 else bytes([c]) for c in QP)
    enc = enc.replace(b"\r\n", b"=0D=0A=\r\n")
    parts = [b"Content-Type: text/plain\r\n\r\nqp inside\r\n",
             b"Content-Type: application/octet-stream\r\n"
             b"Content-Disposition: attachment; filename=qp.bin\r\n"
             b"Content-Transfer-Encoding: quoted-printable\r\n\r\n" + enc]
    return tp.mime(tp.HEAD + [b"Subject: QP",
                              b"Content-Type: multipart/mixed; "
                              b"boundary=\"qq\""], parts, b"qq")


def msg_large():
    att = bytes((i * 13 + 5) & 0xff for i in range(256)) * (ATT // 256)
    parts = [b"Content-Type: text/plain\r\n\r\nthe large one\r\n",
             b"Content-Type: application/octet-stream\r\n"
             b"Content-Disposition: attachment; filename=big.bin\r\n"
             b"Content-Transfer-Encoding: base64\r\n\r\n" + tp.b64(att),
             b"Content-Type: application/octet-stream\r\n"
             b"Content-Disposition: attachment; filename=other.bin\r\n"
             b"Content-Transfer-Encoding: base64\r\n\r\n" +
             tp.b64(os.urandom(OTHER))]
    return tp.mime(tp.HEAD + [b"Subject: Large",
                              b"Content-Type: multipart/mixed; "
                              b"boundary=\"ll\""], parts, b"ll"), att


def stat_all(d, out):
    """Sizes of every file under d, by stat alone (nothing read)."""
    for n in os.listdir(d):
        p = os.path.join(d, n)
        if os.path.isdir(p):
            stat_all(p, out)
        else:
            out[p] = os.stat(p).st_size


def check_generated(t, dc, client):
    m = h.Mount(dc, args=["--layout=parts", "-d"],
                env={"IMAPFS_PARTS_LAZY_MIN": "0"}).start()
    view = {uid: data for uid, data in client.fetch_bodies("INBOX")}
    sizes, problems = {}, []
    for uid in sorted(view):
        if uid != 6:  # the 1,000-deep nesting: not by section
            stat_all(tp.parts_dir(m, "INBOX", uid), sizes)
    for uid, raw in sorted(view.items()):
        if uid != 6:
            tp.check_dir(t, tp.parts_dir(m, "INBOX", uid), raw,
                         "no BINARY, UID %d" % uid, problems)
    wrong = [(p, s, os.path.getsize(p)) for p, s in sorted(sizes.items())
             if s != os.path.getsize(p)]
    t.all_ok("no BINARY: each part equals Python's decoding", problems)
    t.equal(wrong, [], "no BINARY: stat before any read gives the exact "
            "decoded size (%d files)" % len(sizes))
    text = m.stderr_text()
    t.check("BODY.PEEK[2]" in text and "BINARY.PEEK" not in text and
            "BINARY.SIZE" not in text,
            "attachments came as BODY.PEEK, never BINARY")
    t.equal(m.unmount(), 0, "no BINARY: unmount, exit 0")


def check_large(t, dc, client):
    proxy = FaultProxy(dc.imaps_port).start()
    h.add_cleanup(proxy.close)
    m = h.Mount(dc, url=dc.url("imaps", port=proxy.port),
                args=["--layout=parts"]).start()
    d = m.path("Large")
    name = os.listdir(d)[0]
    raw = client.fetch_body("Large", 1)
    section = raw.split(b"filename=big.bin\r\n")[1].split(b"\r\n\r\n", 1)[1]
    section = section.split(b"\r\n--ll")[0]
    t.equal(base64.b64decode(section), ATT_DATA[0], "the test's section")
    path = os.path.join(d, name, "big.bin")
    before = proxy.counters()["s2c"]
    size = os.stat(path).st_size
    moved_stat = proxy.counters()["s2c"] - before
    with open(path, "rb") as f:
        data = f.read()
    moved = proxy.counters()["s2c"] - before
    h.log("# no BINARY: one attachment (%.1f MB as base64, %.1f MB "
          "decoded) of a %.1f MB message: %.2f MB from the server for "
          "stat, %.2f MB for stat and read" % (
              len(section) / 1e6, ATT / 1e6, len(raw) / 1e6,
              moved_stat / 1e6, moved / 1e6))
    t.equal(size, ATT, "no BINARY: stat gives the decoded size")
    t.check(data == ATT_DATA[0], "no BINARY: big.bin holds the decoded "
            "bytes")
    t.check(len(section) <= moved_stat < len(section) + (1 << 20),
            "no BINARY: stat fetched the section's encoded bytes, not the "
            "whole message (%d bytes, section %d, message %d)" % (
                moved_stat, len(section), len(raw)))
    t.check(moved - moved_stat < 64 << 10, "the read after the stat "
            "fetched nothing more (%d bytes)" % (moved - moved_stat))
    for p in (d, os.path.join(d, name), path):
        for attr in ("system.posix_acl_access", "system.posix_acl_default"):
            try:
                os.getxattr(p, attr)
                t.check(False, "%s of %s is absent" % (attr, p))
            except OSError as e:
                t.equal(e.errno, errno.EOPNOTSUPP, "%s of %s: EOPNOTSUPP "
                        "(ls -l stops asking)" % (attr, os.path.relpath(
                            p, m.path())))
    t.equal(m.unmount(), 0, "unmount, exit 0")


ATT_DATA = []


def body(t):
    dc = livelib.LiveDovecot()
    w = h.MaildirWriter(dc)
    for data in (tp.msg_attachments(), tp.msg_html_only(), tp.msg_nested(),
                 tp.msg_alternative(), tp.msg_broken(), tp.msg_deep(),
                 msg_qp()):
        w.add("INBOX", data, "", 1_700_000_000)
    large, att = msg_large()
    ATT_DATA.append(att)
    w.add("Large", large, "", 1_700_000_000)
    w.finish()
    dc.start()
    caps = dc.without_caps("BINARY")
    t.check("BINARY" not in caps, "Dovecot does not offer BINARY", caps)
    client = dc.client()
    h.add_cleanup(client.close)
    check_generated(t, dc, client)
    check_large(t, dc, client)


if __name__ == "__main__":
    h.Test("parts_nobinary").run(body)
