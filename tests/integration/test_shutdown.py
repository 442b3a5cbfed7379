#!/usr/bin/env python3
"""test_shutdown: the daemon stops cleanly whatever it is doing. Each round
mounts a fresh cache and ends the mount in another way while work is in
flight: an unmount right after listing every folder (the kernel may drop the
RELEASEDIR of those listings), a SIGTERM while directories are held open
(their handles are never released by the kernel), a SIGTERM in the middle of
a cold grep -r and ls -lR (fetches, prefetch, pushes into the page cache,
listing saves, the watcher), and a lazy unmount under the same load. Every
time the daemon must exit 0 within 30 s and report no bug: under the
sanitizer build a leak, a use after free or a GLib critical fails the round
that caused it. Rounds repeat, with seeded random delays, to catch races."""

import os
import random
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import imapfs_harness as h  # noqa: E402

ROUNDS = int(os.environ.get("IMAPFS_SHUTDOWN_ROUNDS", "6"))
BULK = 400  # small messages in one folder, for prefetch and pushes


def bulk_message(i):
    text = "".join("line %d of bulk message %d\n" % (n, i)
                   for n in range(20 + i % 50))
    return h.make_message("bulk%d" % i, "Bulk %d" % i, 1700000000 + i * 60,
                          body=text)


def all_dirs(top):
    out = []
    for d, subdirs, _ in os.walk(top):
        out.append(d)
    return out


def start_load(m):
    """A cold grep -r and an ls -lR of the whole mount, in the background."""
    procs = []
    for argv in (["grep", "-rl", h.NEEDLE, m.mountpoint],
                 ["ls", "-lR", m.mountpoint]):
        procs.append(subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                      stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL))
    return procs


def stop_load(t, procs, label):
    """Wait for the readers; one still stuck after a kill (a FUSE request
    nobody will answer) fails the round instead of hanging the test."""
    stuck = []
    for p in procs:
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                stuck.append(" ".join(p.args[:2]))
    t.check(not stuck, "%s: no reader is left stuck" % label,
            ", ".join(stuck))


def end_round(t, m, label, rc):
    t.equal(rc, 0, "%s: the daemon exits 0 within 30 s" % label)
    t.check(not m.mounted(), "%s: the mount is gone" % label)
    bad = m.bug_reports()
    t.check(not bad, "%s: the daemon reported no bug" % label,
            h.short(bad, 2000))
    m.cleanup()


def signal_daemon(m):
    m.proc.send_signal(15)  # SIGTERM
    return m.wait_exit(30)


def body(t):
    seed = int(os.environ.get("IMAPFS_TEST_SEED", "0")) or \
        random.randrange(1, 1 << 30)
    rng = random.Random(seed)
    h.log("# seed %d (IMAPFS_TEST_SEED repeats it), %d rounds" %
          (seed, ROUNDS))
    dc = h.Dovecot()
    h.seed_core(dc, large=False)
    w = h.MaildirWriter(dc)
    for i in range(BULK):
        w.add("Bulk", bulk_message(i))
    w.finish()
    dc.start()

    for r in range(ROUNDS):
        # 1. Every folder listed, then an unmount at once.
        m = h.Mount(dc).start()
        for d in all_dirs(m.mountpoint):
            os.listdir(d)
        end_round(t, m, "round %d, unmount right after listing" % r,
                  m.unmount())

        # 2. Directories held open (listed or not) when SIGTERM comes.
        m = h.Mount(dc).start()
        fds = []
        for i, d in enumerate(all_dirs(m.mountpoint)):
            fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
            fds.append(fd)
            if i % 2:
                os.listdir(fd)
        rc = signal_daemon(m)
        for fd in fds:
            os.close(fd)
        end_round(t, m, "round %d, SIGTERM with %d directories open" %
                  (r, len(fds)), rc)

        # 3. SIGTERM in the middle of a cold grep -r and ls -lR.
        m = h.Mount(dc).start()
        procs = start_load(m)
        delay = rng.uniform(0.05, 1.5)
        time.sleep(delay)
        rc = signal_daemon(m)
        label = "round %d, SIGTERM %.2f s into a cold grep -r" % (r, delay)
        stop_load(t, procs, label)
        end_round(t, m, label, rc)

        # 4. A lazy unmount under the same load: the readers finish, then
        # the daemon gets DESTROY and exits.
        m = h.Mount(dc).start()
        procs = start_load(m)
        delay = rng.uniform(0.05, 1.0)
        time.sleep(delay)
        h.run(["fusermount3", "-u", "-z", m.mountpoint], check=False)
        label = "round %d, lazy unmount %.2f s into a cold grep -r" % (
            r, delay)
        stop_load(t, procs, label)
        end_round(t, m, label, m.wait_exit(30))


if __name__ == "__main__":
    h.Test("shutdown").run(body)
