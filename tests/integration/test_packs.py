#!/usr/bin/env python3
"""test_packs: small bodies live in the folder's pack files (cache/pack.h),
large ones in files of their own, and a damaged cache never serves wrong
bytes: a flipped byte inside a record, or a record torn by a crash in the
middle of an append, makes the daemon fetch those messages again. Then a
reader going through a folder in order on a warm mount has the following
files pushed into the page cache: it reads them without a single request
to the daemon. On a fresh mount, listing the folder is enough for its
first files."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import imapfs_harness as h  # noqa: E402

SMALL = 60


def message(i, size):
    text = "".join("line %d of message %d, imapfs pack test\n" % (n, i)
                   for n in range(size // 40 + 1))
    return h.make_message("pack%d" % i, "Pack message %d" % i,
                          1700000000 + i * 60, body=text)


def read_folder(m, folder):
    """{uid: bytes} of every file of folder, read in UID order."""
    d = m.path(folder)
    names = sorted(os.listdir(d), key=h.uid_of_name)
    return {h.uid_of_name(n): h.read_file(os.path.join(d, n)) for n in names}


def daemon_reads(m, uids):
    """How many read requests the daemon logged (-d) for these UIDs."""
    n = 0
    for line in m.stderr_text().splitlines():
        if " read Seq UID " in line:
            uid = int(line.split(" read Seq UID ")[1].split(":")[0])
            n += uid in uids
    return n


def body(t):
    dc = h.Dovecot()
    w = h.MaildirWriter(dc)
    for i in range(SMALL):
        w.add("Seq", message(i, 500 + (i * 397) % 7000))
    large_uid = w.add("Seq", message(999, 300000))
    w.finish()
    dc.start()
    with dc.client() as client:
        server = dict(client.fetch_bodies("Seq"))
    t.equal(len(server), SMALL + 1, "the server holds %d messages" %
            (SMALL + 1))

    work = h.make_tempdir("imapfs-packtest-", 0o755)
    cache = os.path.join(work, "cache")

    # 1. Cold: everything reads right, small bodies land in packs.
    m = h.Mount(dc, cache_dir=cache).start()
    got = read_folder(m, "Seq")
    t.all_ok("cold mount: every message reads correctly",
             [u for u in server if got.get(u) != server[u]])
    t.equal(m.unmount(), 0, "cold mount: unmount, the daemon exits 0")
    cached = {uid: (where, data) for (k, uv, uid), (where, data)
              in h.cache_bodies(cache).items()}
    t.equal(sorted(cached), sorted(server), "every message is cached")
    t.all_ok("the cached bytes are the server's",
             [u for u in cached if cached[u][1] != server[u]])
    in_packs = [u for u in cached if "#" in cached[u][0]]
    t.equal(len(in_packs), SMALL, "the %d small bodies are in packs" % SMALL)
    t.check("#" not in cached[large_uid][0],
            "the large body has a file of its own")

    # 2. Damage: one flipped byte inside a record, and the last record of
    # the last segment torn (cut in the middle of its body).
    flipped = sorted(in_packs)[SMALL // 3]
    path, off = cached[flipped][0].rsplit("#", 1)
    with open(path, "r+b") as f:
        f.seek(int(off) + 100)
        c = f.read(1)
        f.seek(int(off) + 100)
        f.write(bytes([c[0] ^ 0x20]))
    records = h.read_pack(path)
    torn_uid, torn_off, torn_data = records[-1]
    os.truncate(path, torn_off + len(torn_data) // 2)
    t.check(flipped != torn_uid, "two different messages are damaged")

    m = h.Mount(dc, cache_dir=cache).start()
    got = read_folder(m, "Seq")
    t.all_ok("after the damage: every message still reads correctly",
             [u for u in server if got.get(u) != server[u]])
    log = m.stderr_text()
    t.check("damaged" in log, "the flipped byte was noticed",
            log[-600:])
    t.check("cutting off" in log, "the torn tail was cut off", log[-600:])
    t.equal(m.unmount(), 0, "unmount, the daemon exits 0")
    again = {uid: data for (k, uv, uid), (where, data)
             in h.cache_bodies(cache).items()}
    t.check(again.get(flipped) == server[flipped] and
            again.get(torn_uid) == server[torn_uid],
            "both damaged messages are cached again, right")

    # 3. Warm mount: after two reads in order, the next files are pushed
    # into the page cache and read without asking the daemon.
    m = h.Mount(dc, cache_dir=cache, args=["-d"]).start()
    d = m.path("Seq")
    names = sorted(os.listdir(d), key=h.uid_of_name)
    for n in names[:2]:
        h.read_file(os.path.join(d, n))
    ahead = [h.uid_of_name(n) for n in names[2:40]]
    time.sleep(1.0)  # let the pusher finish, without racing it
    before = daemon_reads(m, ahead)
    problems = [n for n in names[2:40]
                if h.read_file(os.path.join(d, n)) !=
                server[h.uid_of_name(n)]]
    time.sleep(0.2)
    asked = daemon_reads(m, ahead) - before
    t.all_ok("warm mount: the files read in order are right", problems)
    t.check(asked <= 2, "warm mount: %d of the next %d files were read "
            "from the page cache without a request to the daemon" % (
                len(ahead) - asked, len(ahead)),
            "%d requests" % asked)
    t.equal(m.unmount(), 0, "warm mount: unmount, the daemon exits 0")

    # 4. Fresh warm mount: listing the folder (a readdirplus, as grep -r
    # and ls do) is enough to push the bodies of its first messages; the
    # first files read, the very first included, are read from the page
    # cache without a request to the daemon.
    m = h.Mount(dc, cache_dir=cache, args=["-d"]).start()
    d = m.path("Seq")
    names = sorted(os.listdir(d), key=h.uid_of_name)
    first = [h.uid_of_name(n) for n in names[:40]]
    time.sleep(1.0)  # let the pusher finish, without racing it
    problems = [n for n in names[:40]
                if h.read_file(os.path.join(d, n)) !=
                server[h.uid_of_name(n)]]
    time.sleep(0.2)
    asked = daemon_reads(m, first)
    t.all_ok("listed: the first files read are right", problems)
    t.check(asked == 0, "listed: %d of the first %d files were read from "
            "the page cache without a request to the daemon" % (
                len(first) - asked, len(first)), "%d requests" % asked)
    t.equal(m.unmount(), 0, "listed: unmount, the daemon exits 0")


if __name__ == "__main__":
    h.Test("test_packs").run(body)
