#!/usr/bin/env python3
"""test_large_listing: a folder large enough that its listing is written to
a file and mapped (cache/index-build.c), cold (handed out while it streams
in) and after a remount; new mail
merged in on a remount; an index in an older format is treated as absent
and the folder listed anew."""

import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import imapfs_harness as h  # noqa: E402

COUNT = 10000  # well above fs/sync.c's SPILL_MESSAGES and PREVIEW_FIRST


def message(i):
    return ("From: Sender <s%d@example.org>\r\n"
            "Subject: Big %d\r\n"
            "Message-ID: <big%d@imapfs.test>\r\n\r\n"
            "Body %d.\r\n" % (i, i, i, i)).encode()


def index_files(cache):
    return [os.path.join(d, f) for d, _, fs in os.walk(cache) for f in fs
            if f == "index"]


def check_listing(t, m, client, what):
    # First: on a cold mount this listing streams in (partial listings
    # handed out while the rest comes); each name exactly once.
    names = os.listdir(m.path("Big"))
    view = h.server_view(client)
    files = h.compare_tree(t, m, view)
    n = len(view["messages"]["Big"])
    t.equal(len(names), n, "%s: Big lists %d files" % (what, n))
    t.equal(len(set(names)), n, "%s: each name once" % what)
    t.check("1 Big 0.eml" in names and "%d Big %d.eml" % (COUNT, COUNT - 1)
            in names, "%s: first and last names as expected" % what)
    return files


def body(t):
    dc = h.Dovecot()
    w = h.MaildirWriter(dc)
    for i in range(COUNT):
        w.add("Big", message(i), "S" if i % 3 == 0 else "",
              1_600_000_000 + i)
    w.finish()
    dc.start()
    work = h.make_tempdir("imapfs-largelisting-", 0o755)
    cache = os.path.join(work, "cache")
    client = dc.client()

    m = h.Mount(dc, cache_dir=cache).start()
    files = check_listing(t, m, client, "cold")
    p = files[("Big", 17)]
    t.equal(h.read_file(p), message(16), "cold: a message reads right")
    # Every body read makes its size exact in place: past a few thousand
    # the listing is saved and mapped anew (fs/sync.c rebase_listing()),
    # under the reads.
    wrong = [p for k, p in sorted(files.items())
             if k[0] == "Big" and h.read_file(p) != message(k[1] - 1)]
    t.all_ok("cold: every message of Big reads right", wrong)
    check_listing(t, m, client, "after reading everything")
    ino = {k: os.lstat(v).st_ino for k, v in files.items()}
    t.equal(m.unmount(), 0, "cold: unmount, exit 0")
    idx = index_files(cache)
    t.check(len(idx) >= 1, "the listing was saved", repr(idx))
    big = max(idx, key=os.path.getsize)
    with open(big, "rb") as f:
        head = f.read(48)
    t.equal(head[:8], b"IMFSIDX1", "the index has the index magic")
    t.equal(struct.unpack("<I", head[8:12])[0], 3, "the index is version 3")
    t.equal(struct.unpack("<I", head[32:36])[0], COUNT,
            "the index holds every message")
    with open(big, "rb") as f:
        recs = f.read(48 + 40 * COUNT)[48:]
    inexact = [i for i in range(COUNT) if recs[40 * i + 4] != 1]
    t.all_ok("the index has every size exact (all were read)", inexact)

    # New mail while unmounted: the remount merges it into the mapped
    # listing.
    client.append("Big", message(COUNT), date=1_700_000_000)
    client.append("Big", message(COUNT + 1), date=1_700_000_001)
    m = h.Mount(dc, cache_dir=cache).start()
    files = check_listing(t, m, client, "remount")
    t.equal(len([k for k in files if k[0] == "Big"]), COUNT + 2,
            "remount: the two new messages are listed")
    same = [k for k in ino if files.get(k) and
            os.lstat(files[k]).st_ino != ino[k]]
    t.all_ok("remount: inode numbers unchanged", same)
    t.equal(m.unmount(), 0, "remount: unmount, exit 0")

    # An index of version 2 is not read: removed, and the folder is
    # listed anew, correctly.
    with open(big, "r+b") as f:
        f.seek(8)
        f.write(struct.pack("<I", 2))
    m = h.Mount(dc, cache_dir=cache).start()
    check_listing(t, m, client, "old index version")
    t.equal(m.unmount(), 0, "old index version: unmount, exit 0")
    with open(big, "rb") as f:
        head = f.read(12)
    t.equal(struct.unpack("<I", head[8:12])[0], 3,
            "old index version: replaced by a version 3 index")
    client.close()


if __name__ == "__main__":
    h.Test("test_large_listing").run(body)
