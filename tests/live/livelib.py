"""livelib: helpers for the live-update tests (Python 3 standard library).

Built on tests/integration/imapfs_harness.py (imported as h):

- LiveDovecot: the harness's Dovecot, whose CAPABILITY can be narrowed
  (without_caps("NOTIFY") writes `imap_capability` = the server's own list
  minus those names, and checks that a client no longer sees them).
- Admin: a second IMAP client (the "other client" that changes the mailbox
  while it is mounted): APPEND, STORE \\Deleted + EXPUNGE, CREATE, DELETE,
  RENAME.
- CountingProxy: forwards TCP to a port byte for byte (TLS passes through)
  and counts the bytes in each direction.
- ls(), wait_ls(): list a directory in a child process, with a timeout, and
  poll until a condition holds.
"""

import errno
import imaplib
import os
import re
import select
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))
import imapfs_harness as h  # noqa: E402

log = h.log


def quote(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


# ---------------------------------------------------------------------------
# Dovecot with a narrowed capability list

# Dovecot 2.3.19's NOTIFY sessions can read a corrupt mailbox list index
# ("name_id=N not in index header"), go deaf, and later die with SIGSEGV,
# when folders are renamed or deleted while other sessions have folders
# open. With a plain client (folders seeded into the Maildir, then a
# rename) listing INBOX in the list index and opening every folder once
# before anyone listens avoided it; in longer sequences it still happens,
# which is why test_folders.py gives each folder change a Dovecot of its
# own. Neither setting changes what a client sees.
WORKAROUND_CONF = "mailbox_list_index_include_inbox = yes\n"


class LiveDovecot(h.Dovecot):
    """h.Dovecot plus an optional imap_capability override; start() opens
    every folder once (see WORKAROUND_CONF)."""

    def __init__(self, extra_conf="", **kw):
        self.capability_override = None
        self.extra_conf = WORKAROUND_CONF + (extra_conf or os.environ.get(
            "IMAPFS_LIVE_DOVECOT_CONF", ""))
        super().__init__(**kw)

    def start(self, timeout=30):
        was_running = self.running()
        super().start(timeout)
        if not was_running:
            self.warm()

    def warm(self):
        """EXAMINE every selectable folder once."""
        with self.client() as c:
            for f in c.list_folders():
                if f["selectable"]:
                    c.examine(f["raw"])

    def _write_conf(self):
        super()._write_conf()
        with open(self.conf, "a") as f:
            if self.capability_override:
                f.write("imap_capability = %s\n" % self.capability_override)
            if self.extra_conf:
                f.write(self.extra_conf.rstrip("\n") + "\n")

    def capabilities(self):
        """The capabilities a client sees after logging in."""
        with self.client() as c:
            typ, data = c.conn.capability()
            if typ != "OK":
                raise h.TestFailure("CAPABILITY failed: %r" % data)
            return data[0].decode().split()

    def without_caps(self, *names):
        """Restart (if running) with names removed from the capability
        list. The server must have been started once to learn the list."""
        was_running = self.running()
        if not was_running:
            self.start()
        caps = self.capabilities()
        drop = {n.upper() for n in names}
        keep = [c for c in caps if c.upper() not in drop and
                not c.upper().startswith("AUTH=") and
                c.upper() not in ("STARTTLS", "LOGINDISABLED")]
        self.capability_override = " ".join(keep)
        self._reconfigure()
        if not was_running:
            self.start()
        after = {c.upper() for c in self.capabilities()}
        missing = drop & after
        if missing:
            raise h.TestFailure("imap_capability did not remove %s: %s" % (
                sorted(missing), sorted(after)))
        # The pre-login list is what a client sees before it authenticates.
        conn = imaplib.IMAP4_SSL(
            "localhost", self.imaps_port, timeout=20,
            ssl_context=ssl.create_default_context(cafile=self.cafile))
        pre = {c.upper() for c in conn.capabilities}
        conn.shutdown()
        if drop & pre:
            raise h.TestFailure("pre-login CAPABILITY still offers %s" %
                                sorted(drop & pre))
        return sorted(after)


# ---------------------------------------------------------------------------
# The other client

# Dovecot keeps a session's index of a folder open for a while after the
# session used it. When the folder is deleted and created again, the first
# session to open it next finds the new index files unlike its own ("Mailbox
# X: Corrupted transaction log file ...: indexid changed" in its log),
# answers that command NO [SERVERBUG] and repairs the index on the way; a
# repair by one session can do the same to another's, and the same session
# may then answer "Mailbox was deleted under us" from the old index it
# still holds. A new session opens the folder as it is now, so Admin logs
# in again and tries the command again, up to SERVERBUG_TRIES times in all
# (logged).
SERVERBUG_TRIES = 5
SERVER_RACES = ("[SERVERBUG]", "Mailbox was deleted under us")


def retry_serverbug(what, fn, reconnect):
    """fn(), tried again after reconnect() (SERVERBUG_TRIES in all) while
    it fails with one of SERVER_RACES; other failures raise at once."""
    for attempt in range(1, SERVERBUG_TRIES + 1):
        try:
            return fn()
        except h.TestFailure as e:
            race = [r for r in SERVER_RACES if r in str(e)]
            if not race or attempt == SERVERBUG_TRIES:
                raise
            log("# %s: Dovecot answered %s (its index of a recreated "
                "folder, see its log); logging in again, try %d of %d" % (
                    what, race[0], attempt + 1, SERVERBUG_TRIES))
            time.sleep(0.2 * attempt)
            reconnect()


class Admin:
    """An IMAP client that changes the mailbox (read-write SELECT)."""

    def __init__(self, dovecot):
        self.dc = dovecot
        self.client = dovecot.client()
        self.conn = self.client.conn

    def close(self):
        self.client.close()

    def reconnect(self):
        try:
            self.client.close()
        except Exception:
            pass
        self.client = self.dc.client()
        self.conn = self.client.conn

    def _ok(self, res, what):
        typ, data = res
        if typ != "OK":
            raise h.TestFailure("IMAP %s failed: %s %r" % (what, typ, data))
        return data

    def append(self, folder_raw, data, date=None):
        """APPEND; returns the new UID (from APPENDUID)."""
        date_arg = imaplib.Time2Internaldate(date) if date else None
        typ, resp = self.conn.append(quote(folder_raw), None, date_arg, data)
        if typ != "OK":
            raise h.TestFailure("APPEND to %s failed: %r" % (folder_raw, resp))
        m = re.search(rb"APPENDUID \d+ (\d+)", resp[0] or b"")
        return int(m.group(1)) if m else None

    def append_many(self, folder_raw, datas):
        return [self.append(folder_raw, d) for d in datas]

    def expunge(self, folder_raw, uids):
        """STORE \\Deleted on the UIDs, then EXPUNGE, then UNSELECT."""
        self._ok(self.conn.select(quote(folder_raw)), "SELECT")
        uidset = ",".join(str(u) for u in uids) if not isinstance(
            uids, str) else uids
        self._ok(self.conn.uid("STORE", uidset, "+FLAGS.SILENT",
                               "(\\Deleted)"), "STORE")
        self._ok(self.conn.expunge(), "EXPUNGE")
        self._ok(self.conn.close(), "CLOSE")

    def create(self, folder_raw):
        self._ok(self.conn.create(quote(folder_raw)), "CREATE")

    def delete(self, folder_raw):
        self._ok(self.conn.delete(quote(folder_raw)), "DELETE")

    def rename(self, old_raw, new_raw):
        self._ok(self.conn.rename(quote(old_raw), quote(new_raw)), "RENAME")

    def uidvalidity(self, folder_raw):
        data = retry_serverbug(
            "STATUS " + folder_raw, lambda: self._ok(self.conn.status(
                quote(folder_raw), "(UIDVALIDITY UIDNEXT MESSAGES)"),
                "STATUS"), self.reconnect)
        m = re.search(rb"UIDVALIDITY (\d+)", data[0])
        return int(m.group(1))

    def uids(self, folder_raw):
        retry_serverbug("EXAMINE " + folder_raw, lambda: self._ok(
            self.conn.select(quote(folder_raw), readonly=True), "EXAMINE"),
            self.reconnect)
        data = self._ok(self.conn.uid("SEARCH", None, "ALL"), "UID SEARCH")
        self.conn.close()
        return sorted(int(x) for x in data[0].split())

    def body(self, folder_raw, uid):
        return retry_serverbug(
            "EXAMINE and FETCH in " + folder_raw,
            lambda: self.client.fetch_body(folder_raw, uid), self.reconnect)


def seed_imap(dovecot, folders):
    """Create folders and APPEND messages over IMAP (the server must run):
    folders is a list of (folder, [(key, subject), ...]). Returns
    {folder: [uid, ...]}."""
    out = {}
    a = Admin(dovecot)
    try:
        for folder, msgs in folders:
            if folder != "INBOX":
                a.create(folder)
            out[folder] = [a.append(folder, message(k, s)) for k, s in msgs]
    finally:
        a.close()
    return out


def message(key, subject, body="", date=None):
    return h.make_message(key, subject, date or time.time(),
                          body=body or ("Body of %s.\n" % key))


# ---------------------------------------------------------------------------
# Listing through the mount

C_ENV = dict(os.environ, LC_ALL="C")


def ls(path, timeout=10):
    """Names in path via ls(1) in a child process (a hung FUSE request
    cannot hang the test), sorted by bytes. Returns a list, or a string
    saying what failed."""
    try:
        r = subprocess.run(["ls", "-1", "-A", "--", path],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=timeout,
                           env=C_ENV)
    except subprocess.TimeoutExpired:
        return "ls timed out after %ds" % timeout
    if r.returncode != 0:
        return "ls failed: " + r.stderr.decode("utf-8", "replace").strip()
    out = r.stdout.decode("utf-8", "surrogateescape").split("\n")
    return sorted(n for n in out if n)


def uids_in(names):
    if isinstance(names, str):
        return None
    return {h.uid_of_name(n) for n in names if h.uid_of_name(n) is not None}


def wait_ls(path, pred, timeout, interval=0.1):
    """Poll ls(path) until pred(names) holds. Returns (ok, seconds, names)."""
    t0 = time.monotonic()
    while True:
        names = ls(path)
        if not isinstance(names, str) and pred(names):
            return True, time.monotonic() - t0, names
        if time.monotonic() - t0 >= timeout:
            return False, time.monotonic() - t0, names
        time.sleep(interval)


def open_errno(path):
    """0 when path opens and reads, else the errno of the failure."""
    try:
        with open(path, "rb") as f:
            f.read(1)
        return 0
    except OSError as e:
        return e.errno


def errname(e):
    return errno.errorcode.get(e, str(e)) if e else "success"


def files_containing(root, data):
    """Regular files under root whose content equals data, and pack records
    of a cache dir at root (cache/pack.h) that hold it."""
    out = sorted(where for where, body in h.cache_bodies(root).values()
                 if "#" in where and body == data)
    for d, _, names in os.walk(root):
        for n in names:
            p = os.path.join(d, n)
            try:
                if os.path.getsize(p) != len(data):
                    continue
                with open(p, "rb") as f:
                    if f.read() == data:
                        out.append(p)
            except OSError:
                pass
    return out


# ---------------------------------------------------------------------------
# A counting TCP proxy

def _loopback_hosts():
    return ["127.0.0.1"] + (["::1"] if h.HAVE_IPV6 else [])


class CountingProxy:
    """Forwards connections on a free loopback port (127.0.0.1 and ::1, so
    'localhost' works) to target_port on 127.0.0.1, counting bytes."""

    def __init__(self, target_port):
        self.target = target_port
        self.port = h.free_port()
        self.lock = threading.Lock()
        self.s2c = 0
        self.c2s = 0
        self.connections = 0
        self.last_activity = time.monotonic()
        self.stopping = False
        self.listeners = []
        self.socks = set()
        for host in _loopback_hosts():
            fam = socket.AF_INET6 if ":" in host else socket.AF_INET
            s = socket.socket(fam, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, self.port))
            s.listen(64)
            self.listeners.append(s)
        self.thread = threading.Thread(target=self._accept_loop,
                                       daemon=True)
        self.thread.start()
        self._cleanup = h.add_cleanup(self.stop)

    def counts(self):
        with self.lock:
            return self.s2c, self.c2s

    def _accept_loop(self):
        while not self.stopping:
            try:
                r, _, _ = select.select(self.listeners, [], [], 0.2)
            except (OSError, ValueError):
                return
            for ls_ in r:
                try:
                    c, _ = ls_.accept()
                except OSError:
                    continue
                try:
                    up = socket.create_connection(("127.0.0.1", self.target),
                                                  timeout=10)
                except OSError:
                    c.close()
                    continue
                with self.lock:
                    self.connections += 1
                    self.socks.update((c, up))
                threading.Thread(target=self._pump, args=(c, up),
                                 daemon=True).start()

    def _pump(self, c, up):
        peers = {c: up, up: c}
        try:
            while not self.stopping:
                r, _, _ = select.select([c, up], [], [], 0.2)
                for s in r:
                    data = s.recv(65536)
                    if not data:
                        return
                    peers[s].sendall(data)
                    with self.lock:
                        if s is up:
                            self.s2c += len(data)
                        else:
                            self.c2s += len(data)
                        self.last_activity = time.monotonic()
        except OSError:
            pass
        finally:
            for s in (c, up):
                try:
                    s.close()
                except OSError:
                    pass
            with self.lock:
                self.socks.discard(c)
                self.socks.discard(up)

    def wait_quiet(self, quiet=1.5, timeout=60):
        """Wait until no byte moved for quiet seconds. Returns s2c."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                idle = time.monotonic() - self.last_activity
            if idle >= quiet:
                break
            time.sleep(0.1)
        return self.counts()[0]

    def stop(self):
        self.stopping = True
        for s in self.listeners:
            try:
                s.close()
            except OSError:
                pass
        self.thread.join(5)
        with self.lock:
            socks = list(self.socks)
        for s in socks:
            try:
                s.close()
            except OSError:
                pass


def keep_logs(dovecot, mount, tag):
    """With $IMAPFS_LIVE_LOGS set to a directory, copy the daemon's stderr
    and Dovecot's log there at cleanup (for bug reports)."""
    dest = os.environ.get("IMAPFS_LIVE_LOGS")
    if not dest:
        return

    def copy():
        os.makedirs(dest, exist_ok=True)
        for src, name in ((mount.log_path, "imapfs"),
                          (dovecot.log_path, "dovecot")):
            if os.path.exists(src):
                shutil.copy(src, os.path.join(dest, "%s-%s.log" % (tag,
                                                                   name)))
    h.add_cleanup(copy)


def unmount(t, m, label=""):
    """Unmount; check that the daemon exits 0 and reported no bug (a
    sanitizer report or a GLib critical, see the harness)."""
    prefix = "[%s] " % label if label else ""
    t.equal(m.unmount(), 0, prefix + "unmount, the daemon exits 0")
    bad = m.bug_reports()
    t.check(not bad, prefix + "the daemon reported no bug",
            h.short(bad, 600))
