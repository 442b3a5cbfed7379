#!/usr/bin/env python3
"""test_servers_links: on a real Cyrus (OBJECTID, RFC 8474), a message
copied into a second folder keeps its EMAILID: the mount shows it as one
inode with st_nlink 2, reads the same bytes through both names, and the
daemon asks EMAILID with the listing. Skipped like test_servers with
IMAPFS_TEST_SERVERS=none."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness_servers as hs  # noqa: E402
import imapfs_harness as h  # noqa: E402


def body(t):
    if hs.servers_mode() == "none":
        raise h.Skip("IMAPFS_TEST_SERVERS=none")
    srv = hs.SERVERS["cyrus"]()
    srv.start()
    client = srv.client()
    h.add_cleanup(client.close)
    client.create("INBOX.Labels")
    client.append("INBOX", h.make_message(
        "shared", "One message in two folders", int(time.time()),
        eol=b"\r\n", body="Copied, not appended twice.\n"))
    c = client.conn
    typ, _ = c.select("INBOX")
    t.equal(typ, "OK", "SELECT INBOX (test client)")
    typ, data = c.uid("SEARCH", None, "ALL")
    uid = data[0].split()[-1].decode()
    typ, _ = c.uid("COPY", uid, "INBOX.Labels")
    t.equal(typ, "OK", "COPY into INBOX.Labels (test client)")
    c.close()
    m = h.Mount(srv, url=srv.url("imaps"), args=["-d"]).start()
    inbox = h.list_message_files(m.path("INBOX"))
    labels = h.list_message_files(m.path("Labels"))
    a = os.path.join(m.path("INBOX"), inbox[int(uid)])
    b = os.path.join(m.path("Labels"), next(iter(
        v for k, v in labels.items() if isinstance(k, int))))
    sa, sb = os.stat(a), os.stat(b)
    t.check(sa.st_ino == sb.st_ino and sa.st_nlink == 2 and
            sb.st_nlink == 2, "the copy is one inode with st_nlink 2",
            "inodes %d %d, st_nlink %d %d" % (sa.st_ino, sb.st_ino,
                                              sa.st_nlink, sb.st_nlink))
    ra, rb = h.cat(a), h.cat(b)
    t.check(ra[0] == 0 and ra[1] == rb[1] and b"Copied" in ra[1],
            "both names read the same bytes")
    log = m.stderr_text()
    t.check("EMAILID" in log, "EMAILID asked with the listing")
    fetches = [x for x in log.splitlines()
               if "BODY.PEEK[]" in x and "C: " in x]
    t.check(len(fetches) == 1, "the body was downloaded once",
            h.short(fetches, 400))
    t.equal(m.unmount(), 0, "unmount")


if __name__ == "__main__":
    h.Test("test_servers_links").run(body)
