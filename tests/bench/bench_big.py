"""bench_big.py: the figures of workloads M (a million messages in one
folder) and F (thousands of nested folders), for bench.py.

bench.py owns the run (Bench: mounts, figures, the table); this module
adds what M and F need: their Dovecots (bench_store, kept between runs), a
fast raw client for their baselines, a sampler of the daemon's memory and
the measurements themselves. Each figure is measured with its baseline in
the same run; errors are recorded by Bench.step, never raised out of a run.

Baselines:
  (e) one connection: EXAMINE, then UID FETCH 1:* (UID RFC822.SIZE
      INTERNALDATE ENVELOPE), read to the tagged answer (bytes counted, not
      parsed); its time to the first FETCH answer is the baseline of the
      first-entries figures
  (f) ls -l of the folder's own Maildir cur/ on local disk (the files
      Dovecot serves), page cache warm: run twice, the second is timed
  (g) one connection: LIST "" "*", then STATUS f (MESSAGES UIDNEXT
      UIDVALIDITY) of every folder, all sent before the answers are read
  (h) the floor of any client that shows every folder's messages: one
      connection, LIST "" "*", then EXAMINE f and UID FETCH 1:* of the
      items the daemon lists with, for every folder, all sent before the
      answers are read
"""

import os
import re
import socket
import ssl
import subprocess
import threading
import time

import bench_store as store

KiB = 1024
LC_C = dict(os.environ, LC_ALL="C")
META_ITEMS = "(UID RFC822.SIZE INTERNALDATE ENVELOPE)"
# What the daemon asks when it lists a folder (imap/ops.c), for warm-up.
DAEMON_ITEMS = ("(UID RFC822.SIZE INTERNALDATE FLAGS "
                "BODY.PEEK[HEADER.FIELDS (SUBJECT CONTENT-TYPE)])")
# Seconds the memory sampler goes on after a command: "during and after".
AFTER = 2.0

# Figure groups of --figures and the workload each needs.
GROUPS = {"mcold": "M", "mremount": "M", "mfirst": "M", "ftree": "F"}

# key: (title, unit, baseline)
FIGURES = {
    "m_cold_ls": ("cold ls -l M (s)", "s",
                  "(e) one-connection metadata stream"),
    "m_cold_anon": ("daemon peak RssAnon, cold ls -l M", "KiB", ""),
    "m_cold_hwm": ("daemon VmHWM, cold ls -l M", "KiB", ""),
    "m_remount_ls": ("ls -l M after remount (s)", "s",
                     "(f) ls -l local Maildir cur/"),
    "m_remount_anon": ("daemon peak RssAnon, ls -l M after remount", "KiB",
                       ""),
    "m_remount_hwm": ("daemon VmHWM, ls -l M after remount", "KiB", ""),
    "m20_remount_ls": ("ls -l M20k after remount (s)", "s",
                       "(f) ls -l local Maildir cur/"),
    "m_first": ("first entry of cold M, readdir (s)", "s",
                "(e) its first FETCH answer"),
    "m_first_find": ("find M -mindepth 1 -maxdepth 1 -print -quit, cold "
                     "(s)", "s", "(e) its first FETCH answer"),
    "f_mount_ls": ("F: mount + ls of the root (s)", "s", ""),
    "f_find": ("F: find -type d, cold (s)", "s",
               "(g) LIST + pipelined STATUS"),
    "f_find_remount": ("F: find -type d after remount (s)", "s",
                       "(g) LIST + pipelined STATUS"),
    "f_find_floor": ("F: find -type d, cold (s)", "s",
                     "(h) LIST + pipelined EXAMINE and listing FETCH"),
}
TARGETS = {
    "m_cold_ls": ("ratio<=", 1.25),
    "m_cold_anon": ("value<=", 64 * KiB),
    "m_remount_ls": ("ratio<=", 1.0),
    "m_remount_anon": ("value<=", 64 * KiB),
    "m20_remount_ls": ("ratio<=", 1.0),
    "m_first": ("value<=", 1.0),
    "m_first_find": ("value<=", 1.0),
    "f_mount_ls": ("value<=", 2.0),
    "f_find": ("ratio<=", 2.0),
}
ORDER = list(FIGURES)
LEGEND = [
    "(e): one connection, EXAMINE then UID FETCH 1:* (UID RFC822.SIZE "
    "INTERNALDATE ENVELOPE), read to the end; its first FETCH answer: the "
    "time from EXAMINE to the first one",
    "(f): ls -l of the folder's own Maildir cur/ on local disk (the files "
    "Dovecot serves), page cache warm (second of two runs)",
    "(g): one connection, LIST \"\" \"*\" then STATUS (MESSAGES UIDNEXT "
    "UIDVALIDITY) of every folder, all sent before the answers are read; "
    "the second of two rounds",
    "(h): one connection, LIST \"\" \"*\" then EXAMINE and UID FETCH 1:* "
    "(the daemon's listing items) of every folder, all sent before the "
    "answers are read: what listing every folder costs at least",
    "RssAnon: peak of the daemon's anonymous memory sampled every 50 ms from "
    "/proc/PID/status during the ls -l and 2 s after; VmHWM: the kernel's "
    "peak of its resident set (file-backed pages too, e.g. mmap'd files)",
]


def log(*a):
    print(*a, flush=True)


def _quote(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


# ---------------------------------------------------------------------------
# A fast raw client: answers are scanned for the tagged line in big chunks,
# not parsed line by line, so that the client is not what is measured.

class FastImap:
    def __init__(self, dc, timeout=1800):
        sock = socket.create_connection(("localhost", dc.imaps_port),
                                        timeout=timeout)
        ctx = ssl.create_default_context(cafile=dc.cafile)
        self.s = ctx.wrap_socket(sock, server_hostname="localhost")
        self.n = 0
        self.pending = b""
        self.command("LOGIN %s %s" % (_quote(dc.user), _quote(dc.password)),
                     expect_ok=True)

    def close(self):
        try:
            self.command("LOGOUT")
        except Exception:
            pass
        self.s.close()

    def tagged(self, texts):
        """Tags for texts and the commands as they go on the wire."""
        tags = []
        out = []
        for t in texts:
            self.n += 1
            tags.append(b"F%d" % self.n)
            out.append(tags[-1] + b" " + t.encode() + b"\r\n")
        return tags, b"".join(out)

    def send(self, texts):
        """Send commands; returns their tags."""
        tags, payload = self.tagged(texts)
        self.s.sendall(payload)
        return tags

    def read_to(self, tag, keep=False, t0=None):
        """Read until the tagged answer of tag. Returns status, bytes,
        FETCH answers counted, seconds from t0 to the first FETCH answer,
        and (keep) everything read."""
        needle = b"\r\n" + tag + b" "
        tail = b"\r\n"  # what came before data
        data = self.pending
        self.pending = b""
        res = {"bytes": 0, "fetch": 0, "first": None, "data": b""}
        kept = []
        while True:
            if data:
                res["bytes"] += len(data)
                window = tail[-7:] + data[:7]
                n = data.count(b" FETCH (") + window.count(b" FETCH (")
                if n and res["first"] is None and t0 is not None:
                    res["first"] = time.monotonic() - t0
                res["fetch"] += n
                if keep:
                    kept.append(data)
                scan = tail[-(len(needle) - 1):] + data
                i = scan.find(needle)
                if i >= 0:
                    rest = scan[i + len(needle):]
                    while b"\r\n" not in rest:
                        more = self.s.recv(65536)
                        if not more:
                            raise ConnectionError("server closed")
                        rest += more
                    line, _, self.pending = rest.partition(b"\r\n")
                    res["status"] = line.split(b" ", 1)[0].decode()
                    res["data"] = b"".join(kept)
                    return res
                tail = scan[-64:]
            data = self.s.recv(1 << 20)
            if not data:
                raise ConnectionError("raw client: server closed")

    def command(self, text, keep=False, expect_ok=False):
        (tag,) = self.send([text])
        r = self.read_to(tag, keep=keep)
        if expect_ok and r["status"] != "OK":
            raise RuntimeError("raw client: %s: %s" % (text.split()[0],
                                                       r["status"]))
        return r

    def pipeline(self, texts, keep=False):
        """Send every command without waiting for any answer, read to the
        last tagged answer. Between chunks of 32 KiB what has arrived is
        drained (not waited for), so that neither side blocks on a full
        socket buffer; one thread, as an SSL socket wants."""
        self.pending = b""
        tags, payload = self.tagged(texts)
        got = []
        for off in range(0, len(payload), 32 * KiB):
            self.s.sendall(payload[off:off + 32 * KiB])
            timeout = self.s.gettimeout()
            self.s.settimeout(0.0)
            try:
                while True:
                    d = self.s.recv(1 << 20)
                    if not d:
                        raise ConnectionError("raw client: server closed")
                    got.append(d)
            except (ssl.SSLWantReadError, BlockingIOError):
                pass
            finally:
                self.s.settimeout(timeout)
        self.pending = b"".join(got)
        return self.read_to(tags[-1], keep=keep)


def meta_stream(dc, folder, items=META_ITEMS):
    """(e): login outside the clock. Returns (seconds, seconds to the first
    FETCH answer, answers, bytes)."""
    c = FastImap(dc)
    try:
        t0 = time.monotonic()
        tags = c.send(["EXAMINE " + _quote(folder),
                       "UID FETCH 1:* " + items])
        ex = c.read_to(tags[0])
        if ex["status"] != "OK":
            raise RuntimeError("raw client: EXAMINE %s failed" % folder)
        r = c.read_to(tags[1], t0=t0)
        el = time.monotonic() - t0
        if r["status"] != "OK":
            raise RuntimeError("raw client: UID FETCH failed")
    finally:
        c.close()
    return el, r["first"] or el, r["fetch"], r["bytes"]


_LIST_RE = re.compile(rb'^\* LIST \(([^)]*)\) (?:NIL|"(?:[^"\\]|\\.)*") '
                      rb'(.*)$')


def list_status(dc):
    """(g): LIST "" "*" then STATUS of every selectable folder, pipelined.
    Returns (seconds, folders, seconds of the LIST alone)."""
    c = FastImap(dc)
    try:
        t0 = time.monotonic()
        r = c.command('LIST "" "*"', keep=True)
        t_list = time.monotonic() - t0
        names = []
        for line in r["data"].split(b"\r\n"):
            m = _LIST_RE.match(line)
            if m and b"\\noselect" not in m.group(1).lower():
                names.append(m.group(2).decode())
        st = c.pipeline(["STATUS %s (MESSAGES UIDNEXT UIDVALIDITY)" % n
                         for n in names])
        el = time.monotonic() - t0
        if st["status"] != "OK":
            raise RuntimeError("raw client: STATUS failed")
    finally:
        c.close()
    return el, names, t_list


def warm_folders(dc, names, items=DAEMON_ITEMS):
    """EXAMINE and fetch the listing of every folder, pipelined: Dovecot
    builds its index and cache files (kept with the Maildir). Returns the
    seconds from the first command sent to the last answer (login outside
    the clock): baseline (h) when the LIST is added."""
    c = FastImap(dc)
    try:
        cmds = []
        for n in names:
            cmds += ["EXAMINE " + n, "UID FETCH 1:* " + items]
        t0 = time.monotonic()
        r = c.pipeline(cmds)
        el = time.monotonic() - t0
        if r["status"] != "OK":
            raise RuntimeError("raw client: pipelined listing failed")
    finally:
        c.close()
    return el


# ---------------------------------------------------------------------------
# Memory of the daemon, sampled

def _status(pid):
    out = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(("RssAnon:", "VmHWM:")):
                    k, v = line.split(":", 1)
                    out[k] = int(v.split()[0])
    except OSError:
        pass
    return out


class MemSampler:
    """Peak RssAnon (sampled every 50 ms) and VmHWM (the kernel's own
    peak of the resident set) of one process, in KiB."""

    def __init__(self, pid, interval=0.05):
        self.pid = pid
        self.interval = interval
        self.anon = 0
        self.hwm = 0
        self.done = threading.Event()
        self.th = threading.Thread(target=self._run, daemon=True)

    def _take(self):
        s = _status(self.pid)
        self.anon = max(self.anon, s.get("RssAnon", 0))
        self.hwm = max(self.hwm, s.get("VmHWM", 0))

    def _run(self):
        while not self.done.is_set():
            self._take()
            self.done.wait(self.interval)

    def start(self):
        self.th.start()
        return self

    def stop(self, after=AFTER):
        time.sleep(after)
        self.done.set()
        self.th.join()
        self._take()
        return self.anon, self.hwm


# ---------------------------------------------------------------------------
# Helpers

def timed(cmd, timeout, expect_rc=0):
    t = time.monotonic()
    r = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout, env=LC_C)
    el = time.monotonic() - t
    if r.returncode != expect_rc:
        raise RuntimeError("%s: exit %d: %s" % (
            " ".join(cmd[:3]), r.returncode,
            r.stderr.decode(errors="replace")[-500:]))
    return el, r.stdout


def ls_l(path, expect, timeout=3600):
    """Seconds of ls -l of path, which must show expect files."""
    el, out = timed(["ls", "-l", "--color=never", path], timeout)
    n = out.count(b"\n") - 1  # "total N" first
    if n != expect:
        raise RuntimeError("ls -l %s: %d entries, not %d" % (path, n, expect))
    return el


def local_ls(path, expect):
    """(f): the second of two runs (page cache and dentries warm)."""
    ls_l(path, expect)
    return ls_l(path, expect)


def fmt_mib(kib):
    return "%.1f MiB" % (kib / KiB)


# ---------------------------------------------------------------------------
# Workload M

class WorkloadM:
    def __init__(self, bench, count, small, store_dir):
        self.b = bench
        self.count = count
        self.small = small
        t = time.monotonic()
        self.maildir, gen = store.prepare_m(store_dir, count, small)
        log("# M: %s (%s)" % (self.maildir, "written in %.0fs" % gen
                              if gen else "kept from an earlier run"))
        had_index = os.path.exists(os.path.join(self.maildir, ".M",
                                                "dovecot.index"))
        self.dc = store.BigDovecot(self.maildir)
        self.dc.start()
        c = FastImap(self.dc)
        try:
            t1 = time.monotonic()
            c.command("EXAMINE M", expect_ok=True)
            first_open = time.monotonic() - t1
            c.command("EXAMINE M20k", expect_ok=True)
        finally:
            c.close()
        log("# M: Dovecot's first EXAMINE of M took %.1fs (its index %s)"
            % (first_open, "was kept" if had_index else "was new"))
        self.b.info.append("M: Dovecot's first EXAMINE of M after its start "
                           "took %.1fs (index %s)" % (
                               first_open, "kept from an earlier run"
                               if had_index else "built then"))
        t1 = time.monotonic()
        for items in (META_ITEMS, DAEMON_ITEMS):
            for f in ("M", "M20k"):
                meta_stream(self.dc, f, items)
        log("# M: warm-up (two full metadata fetches of M and M20k) %.1fs; "
            "set-up %.1fs" % (time.monotonic() - t1, time.monotonic() - t))

    def mount(self, cache):
        return self.b.mount(cache, dc=self.dc)

    def run_cold_remount(self, groups):
        b = self.b
        el_e, first_e, n, nbytes = meta_stream(self.dc, "M")
        if n != self.count:
            raise RuntimeError("(e) streamed %d answers, not %d" % (
                n, self.count))
        log("# (e) metadata stream of M: %.2fs (first answer %.3fs), %d "
            "answers, %.1f MB" % (el_e, first_e, n, nbytes / 1e6))
        self.first_e = first_e
        cache = b.fresh_cache("m")
        m = self.mount(cache)
        try:
            smp = MemSampler(m.pid).start()
            cold = ls_l(m.path("M"), self.count)
            anon, hwm = smp.stop()
            cold20 = ls_l(m.path("M20k"), self.small)
        finally:
            b.unmount(m, "cold ls M")
        log("# imapfs: cold ls -l M %.2fs (peak RssAnon %s, VmHWM %s); "
            "cold ls -l M20k %.2fs" % (cold, fmt_mib(anon), fmt_mib(hwm),
                                       cold20))
        b.fig("m_cold_ls").add(cold, el_e)
        b.fig("m_cold_anon").add(anon, None)
        b.fig("m_cold_hwm").add(hwm, None)
        if "mremount" not in groups:
            b.discard(cache)
            return
        cur = os.path.join(self.maildir, ".M", "cur")
        cur20 = os.path.join(self.maildir, ".M20k", "cur")
        loc = local_ls(cur, self.count)
        loc20 = local_ls(cur20, self.small)
        m = self.mount(cache)
        try:
            smp = MemSampler(m.pid).start()
            again = ls_l(m.path("M"), self.count)
            anon, hwm = smp.stop()
        finally:
            b.unmount(m, "remount ls M")
        m = self.mount(cache)
        try:
            again20 = ls_l(m.path("M20k"), self.small)
        finally:
            b.unmount(m, "remount ls M20k")
        log("# imapfs: ls -l M after remount %.2fs (peak RssAnon %s, VmHWM "
            "%s), local %.2fs; M20k %.3fs, local %.3fs" % (
                again, fmt_mib(anon), fmt_mib(hwm), loc, again20, loc20))
        b.fig("m_remount_ls").add(again, loc)
        b.fig("m_remount_anon").add(anon, None)
        b.fig("m_remount_hwm").add(hwm, None)
        b.fig("m20_remount_ls").add(again20, loc20)
        b.discard(cache)

    def _first(self, key, fn):
        cache = self.b.fresh_cache("mfirst")
        m = self.mount(cache)
        try:
            el = fn(m.path("M"))
        finally:
            self.b.unmount(m, key)
        self.b.fig(key).add(el, getattr(self, "first_e", None))
        self.b.discard(cache)
        return el

    def run_first(self):
        def readdir(path):
            t = time.monotonic()
            with os.scandir(path) as it:
                next(it)
                return time.monotonic() - t

        def find(path):
            el, out = timed(["find", path, "-mindepth", "1", "-maxdepth", "1",
                             "-print", "-quit"], 3600)
            if not out.strip():
                raise RuntimeError("find printed nothing")
            return el
        if not hasattr(self, "first_e"):
            self.first_e = meta_stream(self.dc, "M")[1]
        a = self._first("m_first", readdir)
        f = self._first("m_first_find", find)
        log("# imapfs: first entry of cold M: readdir %.3fs, find %.3fs "
            "((e) first FETCH answer %.3fs)" % (a, f, self.first_e))


# ---------------------------------------------------------------------------
# Workload F

class WorkloadF:
    def __init__(self, bench, nfolders, store_dir):
        self.b = bench
        self.n = nfolders
        t = time.monotonic()
        self.maildir, gen = store.prepare_f(store_dir, nfolders)
        log("# F: %s (%s)" % (self.maildir, "written in %.0fs" % gen
                              if gen else "kept from an earlier run"))
        self.dc = store.BigDovecot(self.maildir)
        self.dc.start()
        t1 = time.monotonic()
        el, names, _ = list_status(self.dc)
        if len(names) < nfolders:
            raise RuntimeError("F: LIST shows %d folders, not %d" % (
                len(names), nfolders))
        warm_folders(self.dc, names)
        list_status(self.dc)
        log("# F: first LIST + STATUS %.1fs; warm-up of %d folders %.1fs; "
            "set-up %.1fs" % (el, len(names), time.monotonic() - t1,
                              time.monotonic() - t))
        self.folders = len(names)  # with INBOX

    def find_d(self, m):
        el, out = timed(["find", m.mountpoint, "-type", "d"], 3600)
        n = out.count(b"\n")
        # the root, INBOX and the tree
        if n < self.n + 1:
            raise RuntimeError("find -type d: %d directories, not %d" % (
                n, self.folders + 1))
        return el

    def run(self):
        b = self.b
        # Dovecot now and then answers the first STATUS round after a
        # while slowly (it refreshes its list index: up to 15 s here), the
        # next one at once: the baseline is the second of two.
        first, _, _ = list_status(self.dc)
        el_g, names, t_list = list_status(self.dc)
        log("# (g) LIST + pipelined STATUS of %d folders: %.3fs (LIST "
            "%.3fs; the round before: %.3fs)" % (len(names), el_g, t_list,
                                                  first))
        el_h = t_list + warm_folders(self.dc, names)
        log("# (h) LIST + pipelined EXAMINE and listing FETCH of %d "
            "folders: %.3fs" % (len(names), el_h))
        cache = b.fresh_cache("f")
        t = time.monotonic()
        m = b.mount(cache, dc=self.dc)
        try:
            timed(["ls", "--color=never", m.mountpoint], 600)
            mount_ls = time.monotonic() - t
            cold = self.find_d(m)
        finally:
            b.unmount(m, "F cold")
        m = b.mount(cache, dc=self.dc)
        try:
            again = self.find_d(m)
        finally:
            b.unmount(m, "F remount")
        log("# imapfs: F mount + ls of the root %.3fs; find -type d cold "
            "%.2fs, after remount %.2fs" % (mount_ls, cold, again))
        b.fig("f_mount_ls").add(mount_ls, None)
        b.fig("f_find").add(cold, el_g)
        b.fig("f_find_floor").add(cold, el_h)
        b.fig("f_find_remount").add(again, el_g)
        b.discard(cache)
