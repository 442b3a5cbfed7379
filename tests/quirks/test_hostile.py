#!/usr/bin/env python3
"""test_hostile: answers meant to exhaust the daemon. A literal that claims
2^63 bytes, 10,000 nested lists, a line that never ends, a list of half a
million atoms, and one response carrying hundreds of literals too large to
keep in memory. Each time: the affected operation fails with EIO (or, where
the answer is within the limits, succeeds with the right bytes), the daemon
stays alive with bounded memory (peak RSS) and open files, other folders
still work, and the mount unmounts cleanly.

Cases: hostile (one mount, all the answers in turn, one message fetched
at a time), hostile_batch (the same answers to the batch a walk starts
with: a folder listed, then its first message read)
"""

import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import quirk_common as q  # noqa: E402

h = q.h
fk = q.fk

RSS_LIMIT_KB = 100 * 1024
FD_LIMIT = 64


def endless_line():
    yield b"* OK "
    chunk = b"x" * 65536
    for _ in range(64 * 16):   # at most 64 MiB, then stall
        yield chunk


def huge_literal(prefix):
    def gen():
        yield prefix + b"{9223372036854775808}\r\n"
        chunk = b"y" * 65536
        for _ in range(8 * 16):  # 8 MiB of it, then stall
            yield chunk
    return gen


def many_literals(ctx):
    msg = ctx.folder.by_uid(1)

    def gen():
        yield b"* XHUGE ("
        part = b"z" * 70000
        for i in range(600):
            yield b"{70000}\r\n" + part + b" "
        yield b")\r\n"
        yield ctx.fetch_line(msg, ["UID", "BODY[]"])
        yield ctx.tag + b" OK done\r\n"
    return [fk.Stream(gen)]


def wide_list(ctx):
    msg = ctx.folder.by_uid(1)
    return [b"* XWIDE (" + b"1 " * 450000 + b")\r\n",
            ctx.fetch_line(msg, ["UID", "BODY[]"]), b"{tag} OK done\r\n"]


class Watch:
    """Samples the daemon's open files while an operation runs."""

    def __init__(self, pid):
        self.pid = pid
        self.max_fds = 0
        self.max_tmp = 0

    def sample(self, cache_dir):
        try:
            n = len(os.listdir("/proc/%d/fd" % self.pid))
        except OSError:
            n = 0
        self.max_fds = max(self.max_fds, n)
        self.max_tmp = max(self.max_tmp, len(q.temp_files(cache_dir)))


def timed(fn, watch, cache_dir, timeout=60):
    """fn() starts a child process (a Popen); poll it until it ends,
    sampling the daemon meanwhile. Returns (rc, stdout, stderr); rc is
    None when it had to be killed."""
    p = fn()
    deadline = time.monotonic() + timeout
    while p.poll() is None and time.monotonic() < deadline:
        watch.sample(cache_dir)
        time.sleep(0.02)
    killed = p.poll() is None
    if killed:
        p.kill()
    out, err = p.communicate()
    return (None if killed else p.returncode), out, \
        err.decode("utf-8", "replace")


def cat_proc(path):
    return subprocess.Popen(["cat", "--", path], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def ls_proc(path):
    return subprocess.Popen(["ls", "--", path], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def case_hostile(t):
    acct = fk.Account()
    names = ["Huge", "Nested", "Endless", "Wide", "Literals", "Good"]
    for i, n in enumerate(names):
        f = acct.add_folder(n)
        f.add(q.message("%s one" % n, ("%s body line\n" % n) * 200),
              date=q.T0 + i)
        f.add(q.message("%s two" % n, "Second of %s.\n" % n), date=q.T0 + 50)
    srv = fk.FakeImap(acct).start()

    def when(name):
        return lambda c: c.folder is not None and c.folder.raw == name

    srv.add_rule(r"^UID FETCH 1 \(UID BODY", [fk.Stream(huge_literal(
        b"* 1 FETCH (UID 1 BODY[] "))], when=when(b"Huge"))
    srv.add_rule(r"^UID FETCH 1:\* ", [
        b"* 1 FETCH (UID 1 X " + b"(" * 10000 + b")" * 10000 + b")\r\n"
        b"{tag} OK done\r\n"], when=when(b"Nested"))
    srv.add_rule(r"^UID FETCH 1 \(UID BODY", [fk.Stream(endless_line)],
                 when=when(b"Endless"))
    srv.add_rule(r"^UID FETCH 1 \(UID BODY", wide_list, when=when(b"Wide"))
    srv.add_rule(r"^UID FETCH 1 \(UID BODY", many_literals,
                 when=when(b"Literals"))

    env = {}
    if q.SANITIZED:
        # ASan keeps freed memory in quarantine (256 MB by default): keep
        # it small so that RSS says something about live memory.
        env["ASAN_OPTIONS"] = ":".join(x for x in (
            os.environ.get("ASAN_OPTIONS", ""),
            "quarantine_size_mb=16") if x)
    # The hostile answers are for the fetch of UID 1 alone: without
    # prefetch the first read of a folder is that fetch (with it, a walk
    # start asks for 1:2, which these rules do not play).
    m = q.mount(srv, args=["--prefetch=off"], timeout_s=5, env=env).start()
    pid = m.pid
    base_kb = q.vm_kb(pid, "VmRSS")
    limit_kb = RSS_LIMIT_KB + (base_kb if q.SANITIZED else 0)
    h.log("#   daemon RSS after mount: %d KiB; limit for the peak: %d KiB"
          % (base_kb, limit_kb))

    def good_still_works(label):
        f = acct.folder("Good")
        bad = None
        for msg in f.messages:
            p = q.message_path(m, "Good", msg.uid)
            rc, data, err, _ = h.cat(p) if p else (None, b"", "no file", 0)
            if rc != 0 or data != msg.body:
                bad = "UID %d: rc %s, %d bytes, %s" % (msg.uid, rc,
                                                       len(data), err)
                break
        t.check(bad is None, "after %s: folder Good still reads" % label,
                bad)

    def after(label, watch, t0):
        t.check(q.daemon_alive(m) and m.mounted(), "%s: the daemon is alive "
                "and mounted" % label)
        hwm = q.vm_kb(pid, "VmHWM") or 0
        t.check(hwm < limit_kb, "%s: peak RSS %d KiB stays under %d KiB" % (
            label, hwm, limit_kb))
        t.check(watch.max_fds <= FD_LIMIT, "%s: at most %d open files "
                "meanwhile (saw %d)" % (label, FD_LIMIT, watch.max_fds))
        t.check(watch.max_tmp <= 8, "%s: at most 8 temp files in the cache "
                "meanwhile (saw %d)" % (label, watch.max_tmp))
        t.check(time.monotonic() - t0 < 40, "%s: done in %.1fs" % (
            label, time.monotonic() - t0))
        good_still_works(label)

    # 1. A literal that claims 2^63 bytes: EIO, nothing cached.
    for name, label in (("Huge", "literal of 2^63 bytes"),
                        ("Endless", "line without end")):
        p = q.message_path(m, name, 1)
        t.require(p is not None, "%s: file listed" % label)
        w = Watch(pid)
        t0 = time.monotonic()
        rc, out, err = timed(lambda: cat_proc(p), w, m.cache_dir)
        t.check(q.is_eio(rc, err) and out == b"", "%s: the read fails "
                "with EIO" % label, "rc %s, %d bytes, %r" % (rc, len(out),
                                                             err.strip()))
        t.equal(q.cached_bodies(m.cache_dir, acct.folder(name).uidvalidity,
                                1), [], "%s: nothing cached" % label)
        after(label, w, t0)
        p2 = q.message_path(m, name, 2)
        rc, data, err, _ = h.cat(p2)
        t.check(rc == 0 and data == acct.folder(name).by_uid(2).body,
                "%s: another message of the same folder reads" % label,
                "rc %s %s" % (rc, err.strip()))

    # 2. 10,000 nested lists in a folder listing: that listing fails.
    label = "10,000 nested lists"
    w = Watch(pid)
    t0 = time.monotonic()
    rc, out, err = timed(lambda: ls_proc(os.path.join(m.mountpoint,
                                                      "Nested")),
                         w, m.cache_dir)
    t.check(rc not in (0, None) and ("Input/output error" in err),
            "%s: listing the folder fails with EIO" % label,
            "rc %s, out %r, err %r" % (rc, out[:200], err.strip()))
    after(label, w, t0)

    # 3. Within the limits, but large: must not cost unbounded memory;
    # the read either works or fails with EIO.
    for name, label in (("Wide", "450,000 atoms in one list"),
                        ("Literals", "600 streamed literals in one "
                         "response")):
        p = q.message_path(m, name, 1)
        t.require(p is not None, "%s: file listed" % label)
        w = Watch(pid)
        t0 = time.monotonic()
        rc, out, err = timed(lambda: cat_proc(p), w, m.cache_dir)
        body = acct.folder(name).by_uid(1).body
        t.check((rc == 0 and out == body) or
                (q.is_eio(rc, err) and out == b""),
                "%s: the read returns the right bytes or EIO" % label,
                "rc %s, %d bytes, %r" % (rc, len(out), err.strip()))
        outcome = "worked" if rc == 0 else "failed with EIO"
        h.log("#   %s: read %s" % (label, outcome))
        after(label, w, t0)

    t.equal(q.temp_files(m.cache_dir), [], "no temp file left in the cache")
    q.check_read_only(t, srv, "hostile")
    t.equal(srv.errors, [], "no server script errors")
    q.check_unmount(t, m, "hostile")


def case_hostile_batch(t):
    """With prefetch on (the default), reading a listed folder's first
    message asks for a batch (UID FETCH 1:N): the hostile answers go to
    that batch."""
    acct = fk.Account()
    names = ["Huge", "Endless", "Good"]
    for i, n in enumerate(names):
        f = acct.add_folder(n)
        for k in range(1, 4):
            f.add(q.message("%s %d" % (n, k), ("%s line %d\n" % (n, k)) * 50),
                  date=q.T0 + i * 10 + k)
    srv = fk.FakeImap(acct).start()

    def when(name):
        return lambda c: c.folder is not None and c.folder.raw == name

    # A fetch of bodies whose UID set starts at 1, alone or as a batch.
    first = r"^UID FETCH 1([:,][0-9:,*]*)? \(UID BODY"
    srv.add_rule(first, [fk.Stream(huge_literal(
        b"* 1 FETCH (UID 1 BODY[] "))], when=when(b"Huge"))
    srv.add_rule(first, [fk.Stream(endless_line)], when=when(b"Endless"))
    m = q.mount(srv, timeout_s=5).start()
    pid = m.pid
    base_kb = q.vm_kb(pid, "VmRSS")
    for name, label in (("Huge", "batch: literal of 2^63 bytes"),
                        ("Endless", "batch: line without end")):
        folder = acct.folder(name)
        rc, out, err = timed(lambda: ls_proc(os.path.join(m.mountpoint,
                                                          name)),
                             Watch(pid), m.cache_dir)
        t.check(rc == 0, "%s: the folder lists" % label, err.strip())
        p = q.message_path(m, name, 1)
        t.require(p is not None, "%s: file listed" % label)
        w = Watch(pid)
        t0 = time.monotonic()
        rc, out, err = timed(lambda: cat_proc(p), w, m.cache_dir)
        t.check(q.is_eio(rc, err) and out == b"", "%s: the first read "
                "fails with EIO" % label, "rc %s, %d bytes, %r" % (
                    rc, len(out), err.strip()))
        t.equal(q.cached_bodies(m.cache_dir, folder.uidvalidity, 1), [],
                "%s: nothing cached for UID 1" % label)
        t.check(q.daemon_alive(m) and m.mounted(), "%s: the daemon is "
                "alive and mounted" % label)
        t.check(time.monotonic() - t0 < 40, "%s: done in %.1fs" % (
            label, time.monotonic() - t0))
        t.check(w.max_fds <= FD_LIMIT, "%s: at most %d open files "
                "meanwhile (saw %d)" % (label, FD_LIMIT, w.max_fds))
        bad = []
        for uid in (2, 3):
            rc, data, err, _ = h.cat(q.message_path(m, name, uid))
            if rc != 0 or data != folder.by_uid(uid).body:
                bad.append("UID %d: rc %s %s" % (uid, rc, err.strip()))
        t.all_ok("%s: the folder's other messages read" % label, bad)
    hwm = q.vm_kb(pid, "VmHWM") or 0
    limit_kb = RSS_LIMIT_KB + (base_kb if q.SANITIZED else 0)
    t.check(q.SANITIZED or hwm < limit_kb,
            "batch: peak RSS %d KiB stays under %d KiB" % (hwm, limit_kb))
    good = acct.folder("Good")
    bad = [msg.uid for msg in good.messages
           if h.cat(q.message_path(m, "Good", msg.uid))[1] != msg.body]
    t.equal(bad, [], "batch: folder Good still reads")
    t.equal(q.temp_files(m.cache_dir), [], "batch: no temp file left")
    batches = [cmd for c in srv.conns for (_, _, cmd) in c.commands
               if re.match(rb"UID FETCH 1[:,]", cmd)]
    t.check(batches, "batch: the hostile answers went to a batch fetch",
            "no UID FETCH 1:N was sent")
    q.check_read_only(t, srv, "hostile_batch")
    t.equal(srv.errors, [], "batch: no server script errors")
    q.check_unmount(t, m, "hostile_batch")


CASES = [case_hostile, case_hostile_batch]

if __name__ == "__main__":
    q.run_cases("test_hostile", CASES)
