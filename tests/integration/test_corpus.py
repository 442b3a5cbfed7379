#!/usr/bin/env python3
"""test_corpus (extended): load the real mail corpus (../shared/corpus next
to the source tree, or $IMAPFS_CORPUS) into Dovecot, in nested folders that
mirror the corpus tree; mount; check every message byte for byte against
BODY.PEEK[], the tree, sizes and dates, that flags are unchanged, and that
the daemon's RSS grows by less than 16 MB while it reads the largest
message. Skips (77) when the corpus is absent."""

import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import imapfs_harness as h  # noqa: E402

RSS_LIMIT_KB = 16 * 1024


def corpus_dir():
    d = os.environ.get("IMAPFS_CORPUS")
    if d:
        return d
    return os.path.normpath(os.path.join(h.SOURCE_ROOT, "..", "shared",
                                         "corpus"))


def folder_name(rel):
    """A corpus directory (relative path) as a folder name. Maildir++ keeps
    '.' as its own separator, so a dot in a name becomes '_'."""
    return "/".join(p.replace(".", "_") for p in rel.split(os.sep))


def load(dc, corpus):
    w = h.MaildirWriter(dc)
    t0 = 1_000_000_000
    n = 0
    size = 0
    for root, dirs, files in os.walk(corpus):
        dirs.sort()
        rel = os.path.relpath(root, corpus)
        if rel == ".":
            continue
        folder = folder_name(rel)
        for f in sorted(files):
            with open(os.path.join(root, f), "rb") as fh:
                data = fh.read()
            flags = ""
            if n % 3 == 0:
                flags += "S"
            if n % 7 == 0:
                flags += "F"
            if n % 11 == 0:
                flags += "R"
            w.add(folder, data, flags, t0 + n * 631)
            n += 1
            size += len(data)
    w.finish()
    return n, size


def body(t):
    corpus = corpus_dir()
    if not os.path.isdir(corpus):
        raise h.Skip("no corpus at %s (set IMAPFS_CORPUS)" % corpus)
    sanitized = os.environ.get("IMAPFS_SANITIZE", "none") not in ("", "none")
    dc = h.Dovecot()
    t1 = time.monotonic()
    n, size = load(dc, corpus)
    dc.start()
    h.log("# loaded %d messages (%d bytes) from %s in %.1fs" % (
        n, size, corpus, time.monotonic() - t1))
    client = dc.client()
    h.add_cleanup(client.close)
    view = h.server_view(client)
    flags_before = client.flags_snapshot()
    total = sum(len(v) for v in view["messages"].values())
    t.equal(total, n, "Dovecot holds every corpus message")

    t1 = time.monotonic()
    m = h.Mount(dc).start()
    h.log("# mounted in %.2fs" % (time.monotonic() - t1))
    # RSS from just after the mount, while listing the folder of the
    # largest message and reading that message (not read before).
    biggest = max(((md["size"], (name, uid))
                   for name, msgs in view["messages"].items()
                   for uid, md in msgs.items()))
    big_size, big_key = biggest
    pid = m.pid
    before = h.rss_kb(pid) if pid else None
    peak = [before or 0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            v = h.rss_kb(pid)
            if v:
                peak[0] = max(peak[0], v)
            time.sleep(0.005)

    if before:
        th = threading.Thread(target=sample, daemon=True)
        th.start()
    big_dir = h.folder_path(m, big_key[0])
    big_name = h.list_message_files(big_dir).get(big_key[1])
    big_path = big_name and os.path.join(big_dir, big_name)
    if big_path and before:
        t1 = time.monotonic()
        data = h.read_file(big_path, chunk=128 * 1024)
        el = time.monotonic() - t1
        done.set()
        th.join()
        after = h.rss_kb(pid)
        peak[0] = max(peak[0], after or 0)
        growth = peak[0] - before
        h.log("# largest message: %s UID %d, %d bytes, read in %.2fs; daemon "
              "RSS after mounting %d KiB, peak %d KiB, after %d KiB, "
              "growth %d KiB" %
              (big_key[0], big_key[1], big_size, el, before, peak[0],
               after or 0, growth))
        t.equal(data, client.fetch_body(
            [f["raw"] for f in view["folders"]
             if f["name"] == big_key[0]][0], big_key[1]),
            "the largest message reads byte for byte")
        if sanitized:
            h.log("# sanitizer build: RSS growth reported, not checked")
        else:
            t.check(growth < RSS_LIMIT_KB, "daemon RSS growth while reading "
                    "the largest message: %d KiB < %d KiB" %
                    (growth, RSS_LIMIT_KB))
    else:
        done.set()
        t.check(False, "found the largest message and the daemon's pid")

    t1 = time.monotonic()
    files = h.compare_tree(t, m, view)
    h.log("# tree and attributes checked in %.1fs" % (time.monotonic() - t1))
    t.equal(len(files), total, "one file per message")

    t1 = time.monotonic()
    t.equal(h.compare_bodies(t, client, view, files), total,
            "every message was compared")
    el = time.monotonic() - t1
    h.log("# compared %d messages in %.1fs (first read through the mount, "
          "plus the server fetch)" % (total, el))
    t1 = time.monotonic()
    r = h.run(["grep", "-rlF", "Message-ID", m.mountpoint], timeout=600,
              check=False, env=dict(os.environ, LC_ALL="C"))
    h.log("# warm grep -rl over the mount: %.2fs, %d files" % (
        time.monotonic() - t1, len(r.stdout.splitlines())))
    r = h.run(["find", m.mountpoint, "-type", "f"], timeout=300, check=False)
    t.equal(len(r.stdout.splitlines()), total,
            "find -type f | wc -l equals the number of messages")
    t.all_ok("flags of every message unchanged after reading everything",
             h.diff_flags(flags_before, client.flags_snapshot()))
    t.equal(m.unmount(), 0, "unmount: the daemon exits 0")
    t.check(h.mount_info(m.mountpoint) is None, "no mount left")


if __name__ == "__main__":
    h.Test("test_corpus").run(body)
