#!/usr/bin/env python3
"""test_name_format: --name-format against a real Dovecot: names carry the
date (INTERNALDATE, UTC), the sender and the subject as asked; {uid} must
come first (a bad format fails before mounting, saying what to write); a
raw 8-bit EUC-KR subject is read in its declared charset in the default
format too; a remount under another format lists the folder anew."""

import datetime
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import imapfs_harness as h  # noqa: E402

DATE = datetime.datetime(2024, 1, 2, 23, 30,
                         tzinfo=datetime.timezone(datetime.timedelta(
                             hours=-5)))  # 2024-01-03 in UTC

MESSAGES = [
    (b"From: =?ISO-8859-1?Q?J=F6rg_M=FCller?= <joerg@example.org>\r\n"
     b"To: a@example.org\r\nSubject: quarterly numbers\r\n"
     b"Content-Type: text/plain; charset=utf-8\r\n\r\nbody\r\n"),
    (b"From: alice@example.org\r\nTo: a@example.org\r\n"
     b"Subject: quarterly numbers\r\n\r\nbody\r\n"),
    # Raw EUC-KR bytes in the Subject, declared in Content-Type.
    (b"From: kim@example.kr\r\nTo: a@example.org\r\n"
     b"Subject: " + "[광고] 요즘 뭐해".encode("euc-kr") + b"\r\n"
     b"MIME-Version: 1.0\r\n"
     b"Content-Type: text/plain; charset=euc-kr\r\n\r\nbody\r\n"),
]


def names(m):
    return sorted(os.listdir(os.path.join(m.mountpoint, "INBOX")))


def body(t):
    dc = h.Dovecot()
    dc.start()
    client = dc.client()
    h.add_cleanup(client.close)
    for data in MESSAGES:
        client.append("INBOX", data, date=DATE)

    m = h.Mount(dc).start()
    t.equal(names(m), ["1 quarterly numbers.eml", "2 quarterly numbers.eml",
                       "3 [광고] 요즘 뭐해.eml"],
            "default format: '{uid} {subject}', the EUC-KR subject decoded")
    cache = m.cache_dir
    t.equal(m.unmount(), 0, "the daemon exits 0")

    fmt = "{uid} {date} {from} - {subject}"
    m = h.Mount(dc, cache_dir=cache, args=["--name-format=" + fmt]).start()
    want = ["1 2024-01-03 Jörg Müller - quarterly numbers.eml",
            "2 2024-01-03 alice@example.org - quarterly numbers.eml",
            "3 2024-01-03 kim@example.kr - [광고] 요즘 뭐해.eml"]
    t.equal(names(m), want, "--name-format='%s' on the same cache: date, "
            "sender and subject, the listing made anew" % fmt)
    p = os.path.join(m.mountpoint, "INBOX", want[0])
    with open(p, "rb") as f:
        data = f.read()
    t.check(b"quarterly numbers" in data, "a renamed file reads its message")
    t.equal(m.unmount(), 0, "the daemon exits 0")

    m = h.Mount(dc, cache_dir=cache, args=["-o", "name-format={uid}_{from}"])
    m.start()
    t.equal(names(m)[1], "2_alice@example.org.eml",
            "-o name-format= works too, and the cache follows it again")
    t.equal(m.unmount(), 0, "the daemon exits 0")

    r = subprocess.run([h.imapfs_bin(), "--name-format={subject} {uid}",
                        dc.url(), os.path.join(m.tmp, "mnt")],
                       capture_output=True, timeout=60)
    err = r.stderr.decode(errors="replace")
    t.check(r.returncode != 0 and "{uid} must come first" in err and
            "e.g." in err, "a format without {uid} first is refused, "
            "saying what to write", err.strip())


if __name__ == "__main__":
    sys.exit(h.Test("name_format").run(body))
