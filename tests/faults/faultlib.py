"""Shared pieces of the fault-injection tests (Python 3 standard library).

Builds on tests/integration/imapfs_harness.py (Dovecot, seeding, IMAP client,
mounts, Test runner) and faultproxy.py next to this file:

- seed_bulk(): extra generated messages in folders of their own, some with
  the needle on a few lines, so that a grep -r over the account takes a few
  seconds and cuts land inside literals of every size.
- ServerData: what the server holds (folders, metadata, UIDVALIDITY and
  every body), fetched directly with the harness client.
- grep helpers: run grep -rc in a child process with a timeout, compute
  the exact expected output from the server's bodies, and judge a result
  (exact, or missing lines only under paths that failed with EIO).
- cache helpers: find the body files under a cache dir and compare each
  with the server's BODY.PEEK[].
- run() / cat(): tools in child processes with a bounded wait even when a
  FUSE request never gets an answer (a child stuck in one survives
  SIGKILL): hang_handler(mount) then prints the daemon's stacks and kills
  it, so that the test fails instead of hanging.
- IMAPFS_FAULTS_LOGS=DIR keeps each daemon's whole stderr in DIR.
"""

import hashlib
import os
import random
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))
sys.path.insert(0, HERE)

import imapfs_harness as h  # noqa: E402
from faultproxy import FaultProxy  # noqa: E402

NEEDLE = h.NEEDLE
BULK_FOLDERS = ["Bulk", "Lists/Daily"]

_WORDS = ("imap fetch literal cache folder message header body mailbox "
          "server client proxy socket stream offset byte window retry "
          "timeout quarterly report meeting agenda invoice budget alpha "
          "beta gamma delta status notes draft reply forward").split()


def _text_body(rnd, size, needles):
    """About size bytes of text lines; needles of them carry NEEDLE."""
    lines = []
    n = 0
    while n < size:
        k = rnd.randint(4, 14)
        line = " ".join(rnd.choice(_WORDS) for _ in range(k))
        lines.append(line)
        n += len(line) + 2
    for _ in range(needles):
        i = rnd.randrange(len(lines))
        lines[i] = lines[i] + " " + NEEDLE
    return "\n".join(lines) + "\n"


def seed_bulk(dc, per_folder=200, folders=BULK_FOLDERS, seed=7,
              sizes=((1000, 30000, 0.85), (30000, 250000, 0.13),
                     (250000, 900000, 0.02))):
    """Write per_folder generated messages into each of folders (which must
    not be core folders). sizes: (lo, hi, share). Returns [Msg]."""
    rnd = random.Random(seed)
    w = h.MaildirWriter(dc)
    t0 = 1717200000
    msgs = []
    i = 0
    for f in folders:
        w.folder(f)
        for _ in range(per_folder):
            i += 1
            r = rnd.random()
            acc = 0.0
            lo, hi = sizes[-1][:2]
            for a, b, share in sizes:
                acc += share
                if r < acc:
                    lo, hi = a, b
                    break
            size = rnd.randint(lo, hi)
            needles = rnd.choice((0, 0, 0, 1, 1, 2, 5))
            key = "bulk-%d" % i
            date = t0 + i * 611
            data = h.make_message(key, "Bulk message %d about %s" % (
                i, rnd.choice(_WORDS)), date,
                body=_text_body(rnd, size, needles),
                eol=rnd.choice((b"\r\n", b"\n")))
            m = h.Msg(f, key, data, flags=rnd.choice(("", "S", "FS")),
                      date=date)
            m.uid = w.add(f, m.data, m.flags, m.date)
            msgs.append(m)
    w.finish()
    return msgs


def seed_small(dc, folders, per_folder, seed=11):
    """Many small messages (0.5 to 4 kB) for the load test."""
    return seed_bulk(dc, per_folder=per_folder, folders=folders, seed=seed,
                     sizes=((500, 4000, 1.0),))


class ServerData:
    """The server's view and every body, fetched once."""

    def __init__(self, dc):
        with dc.client() as c:
            self.view = h.server_view(c)
            self.bodies = h.server_bodies(c, self.view)
            self.uidvalidity = {}
            for f in self.view["folders"]:
                if not f["selectable"]:
                    continue
                typ, data = c.conn.status(h._quote(f["raw"]),
                                          "(UIDVALIDITY)")
                m = re.search(rb"UIDVALIDITY (\d+)", data[0] or b"")
                if typ == "OK" and m:
                    self.uidvalidity[f["name"]] = int(m.group(1))
        self.raw = {f["name"]: f["raw"] for f in self.view["folders"]}
        self.by_key = {}
        for f in self.view["folders"]:
            for s in (f["raw"], f["name"]):
                self.by_key[hashlib.sha256(s.encode()).hexdigest()[:16]] = \
                    f["name"]
        self.total = sum(len(b) for b in self.bodies.values())
        self.largest = max((len(b) for b in self.bodies.values()),
                           default=0)


# ---------------------------------------------------------------------------
# Proxy and mounts


def start_proxy(dc):
    p = FaultProxy(dc.imaps_port).start()
    h.add_cleanup(p.close)
    h.add_diagnostic(lambda: "--- proxy: %r, last events:\n%s" % (
        p.counters(), "\n".join("  %.3f %s" % e for e in p.log[-25:])))
    return p


_kept = [0]


def keep_log(m):
    """With IMAPFS_FAULTS_LOGS=DIR, copy the daemon's whole stderr there at
    cleanup (the harness prints only its last lines on failure)."""
    dest = os.environ.get("IMAPFS_FAULTS_LOGS")
    if not dest:
        return m

    _kept[0] += 1
    name = "%s-%d-imapfs.log" % (
        os.path.basename(sys.argv[0]).rsplit(".", 1)[0], _kept[0])

    def copy():
        os.makedirs(dest, exist_ok=True)
        with open(os.path.join(dest, name), "w") as f:
            f.write(m.stderr_text())

    h.add_cleanup(copy)
    return m


def mount(dc, **kw):
    return keep_log(h.Mount(dc, **kw))


def proxied_mount(dc, proxy, **kw):
    """A Mount whose URL goes through the proxy (host name localhost, so the
    certificate still matches)."""
    return mount(dc, url=dc.url("imaps", port=proxy.port), **kw)


def daemon_pid(m):
    return m.proc.pid if m.foreground and m.proc else m.pid


# ---------------------------------------------------------------------------
# grep


def grep_count(body, needle=NEEDLE):
    """What grep -c counts in body: lines holding needle."""
    n = needle.encode()
    return sum(1 for line in body.split(b"\n") if n in line)


def expected_grep(mountpoint, data, needle=NEEDLE):
    """The exact sorted output of `grep -rc needle .` run in mountpoint,
    from the file names of the mount (listed once, without faults) and
    the server's bodies."""
    lines = []
    for (folder, uid), body in data.bodies.items():
        d = os.path.join(mountpoint, *folder.split("/"))
        names = listing(d)
        name = names.get(uid)
        if name is None:
            raise h.TestFailure("no file for %s UID %d in the mount" % (
                folder, uid))
        lines.append("./%s/%s:%d" % (folder, name, grep_count(body, needle)))
    return sorted(lines)


_list_cache = {}


def listing(d):
    if d not in _list_cache:
        _list_cache[d] = h.list_message_files(d)
    return _list_cache[d]


class GrepResult:
    def __init__(self, rc, out, err, elapsed):
        self.rc = rc            # None: killed after the timeout
        self.lines = sorted(x for x in out.splitlines() if x)
        self.errors = [x for x in err.splitlines() if x.strip()]
        self.elapsed = elapsed

    def error_paths(self):
        """(path, message) of each 'grep: PATH: MESSAGE' line."""
        out = []
        for e in self.errors:
            m = re.match(r"^grep: (.*): ([^:]+)$", e)
            out.append((m.group(1), m.group(2)) if m else (None, e))
        return out

    def summary(self):
        return "exit %s after %.1fs, %d lines, %d errors" % (
            self.rc, self.elapsed, len(self.lines), len(self.errors))


def daemon_stacks(pid):
    """Every thread's backtrace of a running daemon (gdb), for reports."""
    try:
        r = subprocess.run(["gdb", "-p", str(pid), "-batch", "-nx",
                            "-ex", "set pagination off",
                            "-ex", "thread apply all bt"],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=60)
        return r.stdout.decode("utf-8", "replace")
    except (OSError, subprocess.TimeoutExpired) as e:
        return "(gdb failed: %s)" % e


def hang_handler(m):
    """on_hang for run(): print the daemon's stacks and the end of its
    stderr, then SIGKILL it, so that a reader stuck in a FUSE request (which
    even SIGKILL cannot end while the daemon holds the request) comes
    back and the test can go on and fail."""
    def on_hang():
        pid = daemon_pid(m)
        h.log("#   HANG: a reader did not end after SIGKILL; daemon pid %s"
              % pid)
        if pid and h.pid_alive(pid):
            h.log(daemon_stacks(pid))
            h.log("--- imapfs stderr, last lines:\n" + "\n".join(
                m.stderr_text().splitlines()[-40:]))
            os.kill(pid, 9)
    return on_hang


def run(cmd, timeout, cwd=None, on_hang=None):
    """Run cmd in a child process: (rc, out bytes, err bytes, elapsed);
    rc None when it had to be killed after timeout. A child stuck in a FUSE
    request survives SIGKILL: then on_hang() (which should end the daemon)
    runs, and the wait is bounded all the same."""
    env = dict(os.environ, LC_ALL="C")
    t = time.monotonic()
    p = subprocess.Popen(cmd, cwd=cwd, stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=env)
    try:
        out, err = p.communicate(timeout=timeout)
        return p.returncode, out, err, time.monotonic() - t
    except subprocess.TimeoutExpired:
        pass
    el = time.monotonic() - t
    p.kill()
    try:
        out, err = p.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        if on_hang:
            on_hang()
        try:
            out, err = p.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            out, err = b"", b"(the child could not be ended)"
    return None, out, err, el


def cat(path, timeout=30, on_hang=None):
    """Like the harness's cat(), with a bounded wait: (rc, data, stderr
    text, elapsed)."""
    rc, out, err, el = run(["cat", "--", path], timeout, on_hang=on_hang)
    return rc, out, err.decode("utf-8", "replace"), el


def run_grep(mountpoint, needle=NEEDLE, timeout=120, on_hang=None):
    """grep -rc needle . in mountpoint, in a child process (killed after
    timeout: a hang must not hang the test)."""
    rc, out, err, el = run(["grep", "-rc", "--", needle, "."], timeout,
                           cwd=mountpoint, on_hang=on_hang)
    return GrepResult(rc, out.decode("utf-8", "surrogateescape"),
                      err.decode("utf-8", "surrogateescape"), el)


def grep_problems(r, expected, allow_eio):
    """What is wrong with grep result r. Exact output is always right; with
    allow_eio, errors may be EIO only, and the lines of the paths that
    failed (a file, or everything under a directory) may be missing or
    wrong (grep -c still prints a count for a file whose read failed, of
    the lines before the error). Every other line must be exactly right."""
    problems = []
    if r.rc is None:
        return ["grep did not finish (killed after %.0fs): a hang" %
                r.elapsed]
    failed = []
    for path, msg in r.error_paths():
        if path is None:
            problems.append("unexpected grep message %r" % msg)
        elif msg != "Input/output error" or not allow_eio:
            problems.append("error %r on %s" % (msg, path))
        else:
            failed.append(path)

    def excused(p):
        return any(p == f or p.startswith(f.rstrip("/") + "/")
                   for f in failed)

    want = {x.rsplit(":", 1)[0]: x for x in expected}
    got = {}
    for x in r.lines:
        if ":" not in x:
            problems.append("unexpected output line %r" % x)
            continue
        got[x.rsplit(":", 1)[0]] = x
    for p, line in got.items():
        if p not in want:
            problems.append("unexpected file %r" % line)
        elif line != want[p] and not excused(p):
            problems.append("wrong count: %r, want %r" % (line, want[p]))
    for p in want:
        if p not in got and not excused(p):
            problems.append("missing without an error: %r" % want[p])
    if not failed and r.rc != 0 and not problems:
        problems.append("exit %d without an error message" % r.rc)
    return problems


# ---------------------------------------------------------------------------
# The cache directory


def cache_body_files(cache_dir):
    """[(folder key, uidvalidity, uid, where)] of the bodies under cache_dir
    (files of their own and pack records; see h.cache_bodies)."""
    return [(k, uv, uid, where) for (k, uv, uid), (where, data)
            in sorted(h.cache_bodies(cache_dir).items())]


def cache_temp_files(cache_dir):
    return h.cache_temp_files(cache_dir)


def cache_body_bytes(cache_dir):
    return h.cache_body_disk_bytes(cache_dir)


def check_cache(t, label, cache_dir, data, min_files=1):
    """Every body file under cache_dir is exactly the server's body of its
    (folder, UIDVALIDITY, UID). Returns the number of files."""
    problems = []
    files = sorted(h.cache_bodies(cache_dir).items())
    for (key, uv, uid), (p, got) in files:
        folder = data.by_key.get(key.split("-", 1)[0])
        if folder is None:
            problems.append("%s: no server folder has key %s" % (p, key))
            continue
        if data.uidvalidity.get(folder) != uv:
            problems.append("%s: UIDVALIDITY %d, server has %s" % (
                p, uv, data.uidvalidity.get(folder)))
            continue
        want = data.bodies.get((folder, uid))
        if want is None:
            problems.append("%s: %s has no UID %d" % (p, folder, uid))
        elif got != want:
            problems.append("%s (%s UID %d): %d bytes, server has %d%s" % (
                p, folder, uid, len(got), len(want),
                "" if len(got) != len(want) else " (content differs)"))
    t.check(len(files) >= min_files, "%s: the cache holds %d body files" % (
        label, len(files)))
    t.all_ok("%s: every cached body file equals the server's BODY.PEEK[]" %
             label, problems)
    return len(files)


def read_all_via_mount(t, label, mount, data, timeout=30):
    """Read every message through the mount (cat in a child process) and
    compare with the server's bodies (stops after 3 reads that hang).
    Returns the list of problems."""
    problems = []
    hangs = 0
    for (folder, uid), body in sorted(data.bodies.items()):
        if hangs >= 3:
            problems.append("stopped after 3 reads that did not finish")
            break
        d = os.path.join(mount.mountpoint, *folder.split("/"))
        try:
            name = listing(d).get(uid)
        except OSError as e:
            problems.append("%s: cannot list: %s" % (folder, e))
            continue
        if name is None:
            problems.append("%s UID %d: no file" % (folder, uid))
            continue
        rc, got, err, el = cat(os.path.join(d, name), timeout=timeout,
                               on_hang=hang_handler(mount))
        if rc is None:
            hangs += 1
        if rc != 0:
            problems.append("%s/%s: exit %s after %.1fs: %s" % (
                folder, name, rc, el, err.strip()))
        elif got != body:
            problems.append("%s/%s: %d bytes, server has %d%s" % (
                folder, name, len(got), len(body),
                "" if len(got) != len(body) else " (content differs)"))
    t.all_ok("%s: every file read through the mount equals the server's "
             "BODY.PEEK[] (%d files)" % (label, len(data.bodies)), problems)
    return problems


def reset_listing_cache():
    _list_cache.clear()
