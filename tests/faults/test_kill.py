#!/usr/bin/env python3
"""test_kill: kill -9 of the daemon while it fetches, then remount.

Through faultproxy (throttled, so that a large literal takes a while), three
times on the same cache dir: mount, start a cold `grep -rc` (or a cat of the
5 MB message), SIGKILL the daemon once the proxy has carried a given number
of bytes from the server (so the kill lands inside a transfer), unmount the
dead mount with fusermount3 -u (umount -l as a fallback). After each kill
every body file under the cache dir equals the server's BODY.PEEK[] (a
temp file may remain, never a short body under a final name). Finally a
remount on the same cache dir removes the stale temp files, every file reads
byte-identical to the server's, and grep -rc gives the exact output.
"""

import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import faultlib as fl  # noqa: E402
from faultlib import h  # noqa: E402

RATE = 3_000_000  # bytes per second per connection and direction


def unmount_dead(t, label, m):
    r = subprocess.run(["fusermount3", "-u", m.mountpoint],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=30)
    how = "fusermount3 -u"
    if r.returncode != 0:
        h.log("#   %s: fusermount3 -u: exit %d: %s" % (
            label, r.returncode, r.stdout.decode().strip()))
        subprocess.run(["umount", "-l", m.mountpoint],
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=30)
        how = "umount -l"
    gone = h.wait_for(lambda: h.mount_info(m.mountpoint) is None, 10)
    t.check(gone, "%s: the dead mount is gone (%s)" % (label, how))
    t.check(r.returncode == 0, "%s: fusermount3 -u unmounts the dead "
            "mount" % label, r.stdout.decode().strip())


def kill_round(t, dc, proxy, data, cache, label, cmd, threshold):
    m = fl.proxied_mount(dc, proxy, cache_dir=cache).start()
    start = proxy.counters()["s2c"]
    p = subprocess.Popen(cmd, cwd=m.mountpoint, stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         env=dict(os.environ, LC_ALL="C"))
    reached = h.wait_for(
        lambda: proxy.counters()["s2c"] - start >= threshold or
        p.poll() is not None, 120, interval=0.002)
    moved = proxy.counters()["s2c"] - start
    running = p.poll() is None
    pid = fl.daemon_pid(m)
    os.kill(pid, signal.SIGKILL)
    t_kill = time.monotonic()
    temps = fl.cache_temp_files(cache)
    h.log("#   %s: SIGKILL after %d bytes from the server; %d temp "
          "file(s) in the cache: %s" % (
              label, moved, len(temps),
              ", ".join("%d bytes" % os.path.getsize(x) for x in temps
                        if os.path.exists(x))))
    t.check(reached and running, "%s: the daemon was killed during the "
            "transfer (%d bytes moved, reader still running)" % (label,
                                                                 moved))
    try:
        m.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass
    t.check(m.proc.poll() == -signal.SIGKILL, "%s: the daemon died of "
            "SIGKILL" % label, "exit %s" % m.proc.poll())
    try:
        _, err = p.communicate(timeout=30)
        h.log("#   %s: the reader ended %.1fs after the kill (exit %s)%s" % (
            label, time.monotonic() - t_kill, p.returncode,
            ": " + err.decode(errors="replace").splitlines()[0]
            if err.strip() else ""))
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        t.check(False, "%s: the reader ends after the kill" % label)
    unmount_dead(t, label, m)
    m.cleanup()
    fl.check_cache(t, label, cache, data, min_files=0)


def body(t):
    dc = h.Dovecot()
    msgs = h.seed_core(dc)
    fl.seed_bulk(dc, per_folder=80)
    dc.start()
    data = fl.ServerData(dc)
    large = [x for x in msgs if x.key == "large"][0]
    h.log("# server: %d messages, %d bytes" % (len(data.bodies), data.total))
    proxy = fl.start_proxy(dc)
    proxy.throttle(RATE)
    work = h.make_tempdir("imapfs-faults-kill-")
    cache = os.path.join(work, "cache")

    grep = ["grep", "-rc", "--", fl.NEEDLE, "."]
    # The whole-account grep meets the 5 MB message early (readdir order),
    # so the first kill lands among the generated messages instead.
    kill_round(t, dc, proxy, data, cache, "kill 1 (cold grep of Bulk and "
               "Lists)", grep[:-1] + ["Bulk", "Lists"], 1_200_000)
    kill_round(t, dc, proxy, data, cache, "kill 2 (cat of the 5 MB "
               "message)", ["cat", "--", os.path.join(
                   "Archive", "2024", "%d Large attachment.eml" %
                   large.uid)], 2_500_000)
    kill_round(t, dc, proxy, data, cache, "kill 3 (grep again)", grep,
               2_000_000)

    proxy.throttle(None)
    m = fl.proxied_mount(dc, proxy, cache_dir=cache).start()
    temps = fl.cache_temp_files(cache)
    t.all_ok("remount: no stale temp file left in the cache", temps)
    files = h.compare_tree(t, m, data.view)
    t.equal(len(files), len(data.bodies), "remount: every message has a "
            "file")
    fl.read_all_via_mount(t, "remount", m, data)
    expected = fl.expected_grep(m.mountpoint, data)
    r = fl.run_grep(m.mountpoint, on_hang=fl.hang_handler(m))
    t.all_ok("remount: grep -rc gives the exact output",
             fl.grep_problems(r, expected, False))
    t.equal(m.unmount(), 0, "remount: unmount, the daemon exits 0")
    fl.check_cache(t, "at the end", cache, data, min_files=len(data.bodies))


if __name__ == "__main__":
    h.Test("faults: kill -9 during a cold grep, remount").run(body)
