#!/usr/bin/env python3
"""test_remount: the folder listing and the message index persist in the
cache dir, so a remount resyncs incrementally. A counting TCP proxy between
the daemon and Dovecot (imaps, TLS passing through) counts the bytes the
server sends.

For a 5,000-message folder:
- cold: a fresh cache dir, mount, `ls -l` the folder;
- unchanged: unmount, remount on the same cache dir, `ls -l`: under 1% of
  the cold bytes;
- changed: unmount, 100 messages appended and 100 expunged by another
  client, remount, `ls -l`: under 10% of the cold bytes, and the listing is
  exactly the server's.
Each figure is the bytes from the start of the mount until the traffic is
quiet after the listing, minus a baseline: the bytes of a mount that lists
nothing (greeting, TLS, login, folder list, watcher), measured the same way,
so the comparison is about the folder and not the connections.
"""

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import livelib as L  # noqa: E402
from livelib import h  # noqa: E402

N = 5000
CHANGED = 100
FOLDER = "Big"


def ls_l(path, timeout=120):
    t0 = time.monotonic()
    r = subprocess.run(["ls", "-l", "--time-style=+%s", "--", path],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout, env=L.C_ENV)
    lines = [ln for ln in r.stdout.decode("utf-8", "replace").splitlines()
             if ln.endswith(".eml")]
    return r.returncode, lines, r.stderr.decode("utf-8", "replace"), \
        time.monotonic() - t0


class Session:
    """One mount through the proxy; bytes counted from its start until
    the traffic is quiet after what it did."""

    def __init__(self, t, dc, proxy, cache, label, listing=True):
        self.label = label
        before = proxy.counts()[0]
        self.m = h.Mount(dc, url=dc.url("imaps", port=proxy.port),
                         cache_dir=cache).start()
        L.keep_logs(dc, self.m, "remount-" + label)
        proxy.wait_quiet()
        self.after_mount = proxy.counts()[0] - before
        self.lines = None
        self.ls_secs = None
        if listing:
            rc, self.lines, err, self.ls_secs = ls_l(self.m.path(FOLDER))
            t.check(rc == 0, "[%s] ls -l %s works (%.2fs)" % (
                label, FOLDER, self.ls_secs), err.strip())
            proxy.wait_quiet()
        self.total = proxy.counts()[0] - before

    def uids(self):
        return sorted(h.uid_of_name(ln.split(None, 6)[6])
                      for ln in self.lines)

    def close(self, t):
        L.unmount(t, self.m, self.label)


def body(t):
    dc = L.LiveDovecot()
    w = h.MaildirWriter(dc)
    w.add("INBOX", L.message("inbox-1", "Inbox one"))
    w.add("Doomed", L.message("doomed-1", "Doomed one"))
    t0 = 1_700_000_000
    for i in range(1, N + 1):
        w.add(FOLDER, h.make_message(
            "big-%05d" % i, "Message %05d of the big folder, about topic %d"
            % (i, i % 97), t0 + i * 60,
            body="Body of message %d.\n" % i), date=t0 + i * 60)
    w.finish()
    dc.start()  # opens every folder once, so Dovecot has indexed Big
    proxy = L.CountingProxy(dc.imaps_port)
    work = h.make_tempdir("imapfs-remount-")

    # The cost of a mount that lists nothing (fresh cache dir).
    base = Session(t, dc, proxy, os.path.join(work, "cache-base"),
                   "baseline", listing=False)
    base.close(t)
    baseline = base.total

    cache = os.path.join(work, "cache")
    cold = Session(t, dc, proxy, cache, "cold")
    t.equal(len(cold.lines), N, "[cold] ls -l lists %d messages" % N)
    cold.close(t)

    same = Session(t, dc, proxy, cache, "unchanged")
    t.equal(sorted(L.ls(same.m.mountpoint)), [FOLDER, "Doomed", "INBOX"],
            "[unchanged] the root lists the folders")
    t.equal(same.uids(), cold.uids(), "[unchanged] the same messages")
    t.equal(same.lines, cold.lines, "[unchanged] ls -l prints the same "
            "lines")
    same.close(t)

    admin = L.Admin(dc)
    h.add_cleanup(admin.close)
    admin.expunge(FOLDER, "%d:%d" % (N // 2, N // 2 + CHANGED - 1))
    for i in range(CHANGED):
        admin.append(FOLDER, L.message("new-%03d" % i, "Appended %03d" % i))
    admin.delete("Doomed")
    admin.create("Fresh")
    server_uids = admin.uids(FOLDER)
    t.equal(len(server_uids), N, "the server has %d messages after the "
            "changes" % N)
    changed = Session(t, dc, proxy, cache, "changed")
    t.equal(changed.uids(), server_uids, "[changed] ls -l lists exactly "
            "the server's UIDs")
    ok, secs, names = L.wait_ls(changed.m.mountpoint, lambda n: sorted(n) == [
        FOLDER, "Fresh", "INBOX"], 5.0)
    t.check(ok, "[changed] the root shows the folder created and not the "
            "one deleted while unmounted, within 5 s (%.1fs)" % secs,
            h.short(names))
    changed.close(t)

    def net(s):
        return s.total - baseline

    h.log("# server->client bytes: baseline mount %d; cold %d (%d net, "
          "ls -l %.2fs); unchanged %d (%d net, ls -l %.2fs); "
          "%d new + %d expunged %d (%d net, ls -l %.2fs)" % (
              baseline, cold.total, net(cold), cold.ls_secs, same.total,
              net(same), same.ls_secs, CHANGED, CHANGED, changed.total,
              net(changed), changed.ls_secs))
    t.check(net(cold) > 100 * N // 2, "the cold listing moved a plausible "
            "amount (%d bytes net for %d messages)" % (net(cold), N))
    t.check(net(same) < net(cold) / 100, "unchanged remount: under 1%% of "
            "the cold bytes (%d vs %d, %.2f%%)" % (
                net(same), net(cold), 100.0 * net(same) / net(cold)))
    t.check(net(changed) < net(cold) / 10, "remount after %d new and %d "
            "expunged: under 10%% of the cold bytes (%d vs %d, %.2f%%)" % (
                CHANGED, CHANGED, net(changed), net(cold),
                100.0 * net(changed) / net(cold)))


if __name__ == "__main__":
    h.Test("live: remount resyncs incrementally").run(body)
