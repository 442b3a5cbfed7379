"""bench_store.py: the benchmark's big workloads, generated once and kept.

Workload M (one folder of a million small messages, plus a folder of
20,000 for the remount figure) and workload F (5,000 nested folders of two
messages each) take minutes to write and Dovecot takes a while to index
them the first time, so both live under a store directory
(/var/tmp/imapfs-bench by default, --store) in a subdirectory named after
their parameters, and are reused when those match. A file "complete" in
that subdirectory is written last: without it the tree is written again.

Each workload gets a Dovecot of its own (BigDovecot) whose home holds a
symlink to the kept Maildir, so Dovecot's index files (kept in the Maildir)
stay warm between runs too and the harness never walks the million files.
Messages are written as Maildir files directly (no APPEND), with ,S= and ,W=
in their names so that Dovecot need not open them for their sizes.
"""

import fcntl
import os
import random
import secrets
import shutil
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))
import imapfs_harness as h  # noqa: E402

# Bump when the generated content changes: old trees are then not reused.
GEN_VERSION = 1
DEFAULT_STORE = os.environ.get("IMAPFS_BENCH_STORE") or \
    "/var/tmp/imapfs-bench"
UIDVALIDITY = 1_700_000_000
F_FANOUT = 17

_WORDS = ("the of and to in is for on that with as by this from at be are "
          "report meeting budget quarterly invoice project release server "
          "client cache folder message network latency mount kernel page "
          "review draft schedule update please thanks regards team notes "
          "imap fetch index listing archive weekly status summary").split()


def log(*a):
    print(*a, flush=True)


_POOL = []


def _pool():
    """256 KiB of CRLF lines of 76 characters from random words (made
    once: message bodies are slices of it)."""
    if _POOL:
        return _POOL[0]
    rng = random.Random(7)
    size = 256 * 1024
    lines = []
    total = 0
    while total < size:
        line = " ".join(rng.choice(_WORDS) for _ in range(14))[:76]
        lines.append(line.ljust(76))
        total += 78
    _POOL.append(("\r\n".join(lines) + "\r\n").encode())
    return _POOL[0]


class FolderWriter:
    """Writes one Maildir++ folder: files in cur/ owned by uid:gid, then
    its dovecot-uidlist (UIDs 1..n in the order written)."""

    def __init__(self, maildir, name, uid, gid):
        self.dir = h.maildir_folder_dir(maildir, name)
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(self.dir, sub), exist_ok=True)
        open(os.path.join(self.dir, "maildirfolder"), "a").close()
        self.cur = os.path.join(self.dir, "cur")
        self.uid, self.gid = uid, gid
        self.bases = []

    def add(self, data, date, seen):
        base = "%d.M%dP1.imapfs-bench,S=%d,W=%d" % (
            date, len(self.bases), len(data), len(data))
        fd = os.open(os.path.join(self.cur, base + ":2," +
                                  ("S" if seen else "")),
                     os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, data)
            os.fchown(fd, self.uid, self.gid)
            os.utime(fd, (date, date))
        finally:
            os.close(fd)
        self.bases.append(base)

    def finish(self):
        with open(os.path.join(self.dir, "dovecot-uidlist"), "w") as f:
            f.write("3 V%d N%d G%s\n" % (UIDVALIDITY, len(self.bases) + 1,
                                         secrets.token_hex(16)))
            f.writelines("%d :%s\n" % (i, b)
                         for i, b in enumerate(self.bases, 1))
        for root, dirs, files in os.walk(self.dir):
            for n in dirs + files:
                if root == self.cur:
                    continue  # chowned when written
                os.lchown(os.path.join(root, n), self.uid, self.gid)
        os.lchown(self.dir, self.uid, self.gid)


def gen_messages(fw, count, seed, tag):
    """count messages of about 0.5-1 KB (headers for ENVELOPE, a text
    body) into FolderWriter fw."""
    rng = random.Random(seed)
    pool = _pool()
    nlines = len(pool) // 78
    t0 = 1_500_000_000
    for i in range(count):
        date = t0 + i * 61
        subj = "%s %s %d" % (rng.choice(_WORDS).capitalize(), " ".join(
            rng.choice(_WORDS) for _ in range(rng.randint(1, 6))), i)
        head = ("From: Sender %d <sender%d@example.org>\r\n"
                "To: imapfs-test@localhost\r\n"
                "Date: %s\r\n"
                "Message-ID: <%s-%d@imapfs.test>\r\n"
                "Subject: %s\r\n"
                "MIME-Version: 1.0\r\n"
                "Content-Type: text/plain; charset=us-ascii\r\n\r\n" % (
                    i % 97, i % 97,
                    time.strftime("%a, %d %b %Y %H:%M:%S +0000",
                                  time.gmtime(date)), tag, i, subj)).encode()
        nbody = rng.randint(2, 8)  # 2..8 lines of 78: ~0.45-1 KB in all
        start = rng.randrange(nlines - nbody) * 78
        fw.add(head + pool[start:start + nbody * 78], date, i % 2)
    fw.finish()


def f_folder_names(n, fanout=F_FANOUT):
    """n folder names, a tree filled breadth-first with fanout children
    per folder: a00 .. a16, a00/b00 .. a16/b16, a00/b00/c00 .."""
    names = []
    level = [""]
    depth = 0
    while len(names) < n:
        nxt = []
        for parent in level:
            for k in range(fanout):
                name = "%s%s%02d" % (parent + "/" if parent else "",
                                     "abcdefgh"[depth], k)
                nxt.append(name)
                names.append(name)
                if len(names) == n:
                    return names
        level = nxt
        depth += 1
    return names


def _prepare(store, key, fill):
    """The kept Maildir for key, written by fill(maildir, uid, gid) unless
    a complete one is there. Returns (maildir, seconds spent writing).
    Several benchmarks may start at once: one writes, the others wait on
    the store's lock."""
    os.makedirs(store, exist_ok=True)
    with open(os.path.join(store, ".lock-" + key), "w") as lk:
        fcntl.flock(lk, fcntl.LOCK_EX)
        return _prepare_locked(store, key, fill)


def _prepare_locked(store, key, fill):
    uid, gid = h.ensure_test_user()
    top = os.path.join(store, key)
    maildir = os.path.join(top, "Maildir")
    stamp = os.path.join(top, "complete")
    if os.path.exists(stamp):
        return maildir, 0.0
    if os.path.exists(top):
        log("# %s: incomplete, written again" % top)
        shutil.rmtree(top)
    os.makedirs(store, exist_ok=True)
    os.chmod(store, 0o755)
    os.makedirs(maildir)
    os.chmod(top, 0o755)
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(maildir, sub), exist_ok=True)
    t = time.monotonic()
    fill(maildir, uid, gid)
    for p in (maildir, os.path.join(maildir, "cur"),
              os.path.join(maildir, "new"), os.path.join(maildir, "tmp")):
        os.lchown(p, uid, gid)
    os.chmod(maildir, 0o700)
    el = time.monotonic() - t
    with open(stamp, "w") as f:
        f.write("written in %.1fs\n" % el)
    return maildir, el


def prepare_m(store, count, small):
    """Folders M (count messages) and M20k (small messages)."""
    key = "M-%d-%d-v%d" % (count, small, GEN_VERSION)

    def fill(maildir, uid, gid):
        gen_messages(FolderWriter(maildir, "M", uid, gid), count, 11, "m")
        gen_messages(FolderWriter(maildir, "M20k", uid, gid), small, 12,
                     "s")
    return _prepare(store, key, fill)


def prepare_f(store, nfolders, per=2):
    key = "F-%d-%d-%d-v%d" % (nfolders, per, F_FANOUT, GEN_VERSION)

    def fill(maildir, uid, gid):
        for i, name in enumerate(f_folder_names(nfolders)):
            gen_messages(FolderWriter(maildir, name, uid, gid), per,
                         1000 + i, "f%d" % i)
    return _prepare(store, key, fill)


class BigDovecot(h.Dovecot):
    """A throwaway Dovecot serving a kept Maildir (symlinked into its
    home), its imap processes allowed 4 GB of address space: the default
    256 MB is not enough to open a folder of a million messages. No fsync
    of its index files: on a shared machine they made its answers wait on
    other people's disk traffic (the Maildir can always be written
    again)."""

    def __init__(self, maildir):
        work = h.make_tempdir("imapfs-bench-dovecot-")
        os.makedirs(os.path.join(work, "home"))
        os.symlink(maildir, os.path.join(work, "home", "Maildir"))
        super().__init__(workdir=work)

    def _write_conf(self):
        super()._write_conf()
        with open(self.conf, "a") as f:
            f.write("service imap {\n  vsz_limit = 4G\n}\n"
                    "mail_fsync = never\n")
