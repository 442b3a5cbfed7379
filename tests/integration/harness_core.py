"""The harness proper: what every daemon test runs on.

The test runner (Test: checks, exit codes 0 / 1 / 77, cleanup on exit and
on signals), process, port and file helpers, the daemon (Mount: start,
wait for the mount, unmount, always clean up), the sanitizer-report and
GLib-critical scan that fails a test whatever its checks said, and the
checks that compare a mount and its cache with what the server holds.

It knows nothing of Dovecot or of the messages: a Mount takes any object
with url(), password and cafile (harness_dovecot.Dovecot). Tests import it
through imapfs_harness, which re-exports it.
"""

import atexit
import os
import re
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback

SKIP = 77
HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_ROOT = os.environ.get("IMAPFS_SOURCE_ROOT") or os.path.dirname(
    os.path.dirname(HERE))

# The contract: a failure before the mount is ready ends within 15 s.
FAIL_DEADLINE = 15.0


def log(*args):
    print(*args, flush=True)


def short(value, limit=200):
    """repr() cut to a readable length, for failure messages."""
    text = repr(value)
    if len(text) > limit:
        text = text[:limit] + "...(%d chars)" % len(text)
    return text


class TestFailure(Exception):
    """The test cannot go on: it stops here, and fails. Test.require raises
    it for a failed check, already counted (counted is True); a helper
    raises it when it gives up (Dovecot or the mount did not come up), and
    the runner counts that as a failure."""

    counted = False


class Skip(Exception):
    """The test cannot run here (exit 77)."""


class Interrupted(BaseException):
    """A signal arrived: unwind so that finally blocks and cleanups run."""



# ---------------------------------------------------------------------------
# Cleanup: every resource registers an undo action; they run last-in
# first-out at the end of a test, at interpreter exit and on signals.

_cleanups = []
_cleanup_lock = threading.Lock()


def add_cleanup(fn, *args):
    entry = [fn, args]
    with _cleanup_lock:
        _cleanups.append(entry)
    return entry


def remove_cleanup(entry):
    with _cleanup_lock:
        if entry in _cleanups:
            _cleanups.remove(entry)


_cleaning = [False]


def run_cleanups():
    _cleaning[0] = True
    try:
        _run_cleanups()
    finally:
        _cleaning[0] = False


def _run_cleanups():
    while True:
        with _cleanup_lock:
            if not _cleanups:
                return
            fn, args = _cleanups.pop()
        try:
            fn(*args)
        except BaseException as e:  # keep cleaning up whatever happens
            log("cleanup: %s%s failed: %s" % (
                getattr(fn, "__qualname__", fn), short(args), e))


atexit.register(run_cleanups)

# Printed when a test failed, before cleanup removes the evidence.
_diagnostics = []


def add_diagnostic(fn):
    _diagnostics.append(fn)


# Failures that a cleanup finds after the test's own checks (a fake
# server's script raised, say): each fails the test (Test.run).
_late_failures = []


def fail_after_cleanup(what, detail):
    _late_failures.append((what, detail))


def print_diagnostics():
    for fn in _diagnostics:
        try:
            text = fn()
        except Exception as e:
            text = "(diagnostic failed: %s)" % e
        if text:
            log(text.rstrip())


def _on_signal(signum, frame):
    # Ignore further signals while unwinding, then unwind (unless the
    # cleanup is already running: let it finish).
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, signal.SIG_IGN)
    if _cleaning[0]:
        log("signal %d during cleanup: finishing the cleanup" % signum)
        return
    raise Interrupted("signal %d" % signum)


def install_signal_handlers():
    if threading.current_thread() is threading.main_thread():
        for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(s, _on_signal)



# ---------------------------------------------------------------------------
# Test runner

class Test:
    """Checks print one line each; failures are counted, and the exit code is
    0 (all passed), 1 (some failed) or 77 (skipped)."""

    def __init__(self, name):
        self.name = name
        self.checks = 0
        self.failures = 0

    def check(self, cond, what, detail=None):
        self.checks += 1
        if cond:
            log("ok   - %s" % what)
        else:
            self.failures += 1
            log("FAIL - %s%s" % (what, (": " + detail) if detail else ""))
        return bool(cond)

    def require(self, cond, what, detail=None):
        if not self.check(cond, what, detail):
            e = TestFailure(what)
            e.counted = True
            raise e

    def equal(self, got, expected, what):
        return self.check(got == expected, what,
                          "expected %s, got %s" % (short(expected),
                                                   short(got)))

    def all_ok(self, what, problems, limit=10):
        """One check over many items: problems is a list of strings."""
        detail = None
        if problems:
            detail = "%d problem(s):\n      " % len(problems) + \
                "\n      ".join(problems[:limit])
            if len(problems) > limit:
                detail += "\n      ..."
        return self.check(not problems, what, detail)

    def count_failure(self, e):
        """A TestFailure that stopped the test: when a helper raised it,
        no check has failed for it yet, and the test must not pass."""
        if not e.counted:
            self.check(False, "the test ran to its end", str(e))

    def run(self, fn, needs_fuse=True):
        install_signal_handlers()
        log("# %s" % self.name)
        if needs_fuse and not os.path.exists("/dev/fuse"):
            log("SKIP: /dev/fuse is missing, cannot mount FUSE here")
            sys.exit(SKIP)
        rc = 0
        try:
            fn(self)
        except Skip as e:
            log("SKIP: %s" % e)
            rc = SKIP
        except TestFailure as e:
            self.count_failure(e)
            log("stopped after failed check: %s" % e)
        except Interrupted as e:
            log("interrupted: %s" % e)
            self.failures += 1
        except Exception:
            log("ERROR: unexpected exception")
            traceback.print_exc(file=sys.stdout)
            self.failures += 1
        finally:
            if self.failures:
                print_diagnostics()
            run_cleanups()
        for report in _bug_reports:
            self.check(False, "the daemon reported no bug", report)
        del _bug_reports[:]
        for what, detail in _late_failures:
            self.check(False, what, detail)
        del _late_failures[:]
        if rc == SKIP and self.failures == 0:
            sys.exit(SKIP)
        log("# %s: %d checks, %d failed" % (self.name, self.checks,
                                           self.failures))
        sys.exit(1 if self.failures else 0)



# ---------------------------------------------------------------------------
# Processes, ports, files

def run(cmd, timeout=60, check=True, **kw):
    """subprocess.run with a timeout, no stdin, captured output."""
    kw.setdefault("stdin", subprocess.DEVNULL)
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    r = subprocess.run(cmd, timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise TestFailure("%s failed (exit %d): %s" % (
            " ".join(map(str, cmd)), r.returncode,
            (r.stderr or b"").decode(errors="replace").strip()[-2000:]))
    return r


def pid_alive(pid):
    """True while pid exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
    except OSError:
        return False
    state = data.rsplit(")", 1)[1].split()[0]
    return state not in ("Z", "X")


def _ppids():
    out = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    out[int(d)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                pass
    return out


def descendants(pid):
    """Pids of all living descendants of pid."""
    ppids = _ppids()
    out = []
    todo = [pid]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in ppids.items() if pp == p]
        out.extend(kids)
        todo.extend(kids)
    return [p for p in out if pid_alive(p)]


def kill_all(pids, timeout=5):
    """SIGTERM the given pids, then SIGKILL those still alive."""
    for p in pids:
        try:
            os.kill(p, signal.SIGTERM)
        except ProcessLookupError:
            pass
    if not wait_for(lambda: not any(pid_alive(p) for p in pids), timeout):
        for p in pids:
            if pid_alive(p):
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        wait_for(lambda: not any(pid_alive(p) for p in pids), timeout)


def wait_for(pred, timeout, interval=0.05):
    """Poll pred() until it is true or timeout seconds passed."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            return v
        time.sleep(interval)


def _ipv6_loopback():
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    except OSError:
        return False
    try:
        s.bind(("::1", 0))
        return True
    except OSError:
        return False
    finally:
        s.close()


HAVE_IPV6 = _ipv6_loopback()
_ports_given = set()


def free_port():
    """A loopback TCP port that is free now (on ::1 too when it exists)."""
    for _ in range(100):
        s4 = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s4.bind(("127.0.0.1", 0))
        port = s4.getsockname()[1]
        ok = port not in _ports_given
        if ok and HAVE_IPV6:
            s6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            try:
                s6.bind(("::1", port))
            except OSError:
                ok = False
            finally:
                s6.close()
        s4.close()
        if ok:
            _ports_given.add(port)
            return port
    raise TestFailure("no free loopback port found")


def closed_port():
    """A loopback port on which nothing listens (connections are refused)."""
    return free_port()


def port_open(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def chown_tree(path, uid, gid):
    os.chown(path, uid, gid)
    for root, dirs, files in os.walk(path):
        for n in dirs + files:
            os.lchown(os.path.join(root, n), uid, gid)


def make_tempdir(prefix, mode=0o755):
    """A temporary directory removed at cleanup."""
    d = tempfile.mkdtemp(prefix=prefix)
    os.chmod(d, mode)
    add_cleanup(shutil.rmtree, d, True)
    return d



# ---------------------------------------------------------------------------
# Mounts

def imapfs_bin():
    p = os.environ.get("IMAPFS_BIN") or os.path.join(
        SOURCE_ROOT, "build", "fs", "imapfs")
    if not os.access(p, os.X_OK):
        raise TestFailure("imapfs binary not found at %s (set IMAPFS_BIN)"
                          % p)
    return p


def _unescape_mountinfo(s):
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), s)


def mount_entries():
    """[(mountpoint, fstype, source, options, minor)] from
    /proc/self/mountinfo; options joins the per-mount and the superblock
    options, minor is the device's minor number (for FUSE, the
    connection's number)."""
    out = []
    try:
        with open("/proc/self/mountinfo") as f:
            lines = f.read().splitlines()
    except OSError:
        return out
    for line in lines:
        parts = line.split(" ")
        try:
            sep = parts.index("-", 6)
        except ValueError:
            continue
        opts = parts[5].split(",") + parts[sep + 3].split(",")
        minor = int(parts[2].split(":")[1])
        out.append((_unescape_mountinfo(parts[4]), parts[sep + 1],
                    _unescape_mountinfo(parts[sep + 2]), opts, minor))
    return out


def mount_info(path):
    """(fstype, source, options) of the mount at path, or None."""
    path = os.path.abspath(path)
    found = None
    for mp, fstype, src, opts, _ in mount_entries():
        if mp == path:
            found = (fstype, src, opts)  # the last one is on top
    return found


def is_imapfs_mounted(path):
    info = mount_info(path)
    return info is not None and info[0] == "fuse.imapfs"


def fuse_connection(path):
    """The FUSE connection number of the mount at path (read from
    /proc/self/mountinfo, without a request to the file system), or
    None."""
    path = os.path.abspath(path)
    found = None
    for mp, _, _, _, minor in mount_entries():
        if mp == path:
            found = minor  # the last one is on top
    return found


FUSECTL = "/sys/fs/fuse/connections"


def abort_fuse_connection(conn):
    """Abort FUSE connection conn through fusectl (mounted here when
    missing): every request the daemon still owes is ended, so a daemon
    stuck in the kernel can exit. Best effort, for cleanup; True when the
    abort was written."""
    if conn is None:
        return False
    if not os.path.isdir(os.path.join(FUSECTL, str(conn))):
        subprocess.run(["mount", "-t", "fusectl", "fusectl", FUSECTL],
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=False)
    try:
        with open(os.path.join(FUSECTL, str(conn), "abort"), "w") as f:
            f.write("1")
        return True
    except OSError:
        return False


def force_unmount(path):
    """Best effort, for cleanup: lazy FUSE unmount, then umount -l."""
    for cmd in (["fusermount3", "-u", "-z", path], ["umount", "-l", path]):
        if mount_info(path) is None:
            return
        try:
            subprocess.run(cmd, stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            pass


def find_daemon_pids(mountpoint, binary=None):
    """Pids of imapfs processes whose command line names mountpoint."""
    binary = binary or imapfs_bin()
    want = os.path.basename(binary).encode()
    mp = os.path.abspath(mountpoint).encode()
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if not argv or os.path.basename(argv[0]) != want:
            continue
        if any(os.path.abspath(a) == mp for a in argv[1:] if a and
               not a.startswith(b"-")):
            if pid_alive(int(d)):
                pids.append(int(d))
    return pids


def rss_kb(pid):
    """VmRSS of pid in KiB (None when gone)."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


# Every daemon a test starts writes sanitizer reports (ASan, LSan, UBSan) to
# files of its own, so that they also reach us from a daemon that went to
# the background, and UBSan stops at its first finding. Each report, and each
# GLib critical on the daemon's stderr, fails the test that started it
# (Test.run), whatever its checks said.
SANITIZER_MARKS = ("runtime error:", "AddressSanitizer", "LeakSanitizer",
                   "UndefinedBehaviorSanitizer")
CRITICAL_RE = re.compile(r"^imapfs: (critical|fatal error): ")
_bug_reports = []


def sanitizer_env(env, prefix):
    """env with the sanitizers' options set to report into prefix.PID."""
    env = dict(env)
    for var, extra in (("ASAN_OPTIONS", ""),
                       ("UBSAN_OPTIONS", "halt_on_error=1:print_stacktrace=1")):
        parts = [env.get(var, ""), extra, "log_path=" + prefix]
        env[var] = ":".join(p for p in parts if p)
    return env


class BugScan:
    """Reads a daemon's stderr log and its sanitizer report files, and
    hands out each bug report once."""

    def __init__(self, log_path, sanitizer_prefix):
        self.log_path = log_path
        self.prefix = sanitizer_prefix
        self.log_offset = 0
        self.seen_files = set()

    def new_reports(self):
        found = []
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self.log_offset)
                data = f.read()
        except OSError:
            data = b""
        # Only whole lines: the daemon may still be writing.
        end = data.rfind(b"\n") + 1
        self.log_offset += end
        for line in data[:end].decode("utf-8", "replace").splitlines():
            if CRITICAL_RE.match(line) or any(
                    s in line for s in SANITIZER_MARKS):
                found.append(line)
        d, base = os.path.split(self.prefix)
        try:
            names = sorted(n for n in os.listdir(d)
                           if n.startswith(base + "."))
        except OSError:
            names = []
        for n in names:
            path = os.path.join(d, n)
            if path in self.seen_files:
                continue
            self.seen_files.add(path)
            with open(path, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
            report = [ln for ln in lines if ln.strip()][:40]
            if report:
                found.append("sanitizer report %s:\n        %s" % (
                    n, "\n        ".join(report)))
        return found


class MountResult:
    def __init__(self, rc, stderr, elapsed, mounted):
        self.rc = rc
        self.stderr = stderr
        self.elapsed = elapsed
        self.mounted = mounted

    def lines(self):
        return [line for line in self.stderr.splitlines() if line.strip()]


class Mount:
    """One run of the daemon. foreground=True runs it with -f (the test
    owns the daemon process and can check its exit code); otherwise it
    daemonises and the launcher's exit code tells whether the mount is up.
    The password goes in $IMAPFS_PASSWORD (password_env=False: not at all),
    --cafile is the test CA unless cafile is given (None: no --cafile),
    --cache-dir a fresh directory unless cache_dir is given (False: none).
    """

    def __init__(self, dovecot=None, mountpoint=None, cache_dir=None,
                 mode="imaps", url=None, password=None, cafile="default",
                 foreground=True, args=(), env=None, password_env=True):
        self.dc = dovecot
        self.bin = imapfs_bin()
        self.tmp = make_tempdir("imapfs-mount-")
        self.mountpoint = os.path.abspath(
            mountpoint or os.path.join(self.tmp, "mnt"))
        os.makedirs(self.mountpoint, exist_ok=True)
        # None: a fresh one in the temp dir; False: no --cache-dir.
        if cache_dir is None:
            cache_dir = os.path.join(self.tmp, "cache")
        self.cache_dir = cache_dir
        self.url = url or dovecot.url(mode)
        self.password = dovecot.password if password is None else password
        self.cafile = dovecot.cafile if cafile == "default" else cafile
        self.foreground = foreground
        self.args = list(args)
        self.extra_env = dict(env or {})
        self.password_env = password_env
        self.proc = None
        self.pid = None
        self.fuse_conn = None  # FUSE connection number once mounted
        self.log_path = os.path.join(self.tmp, "imapfs.log")
        self.sanitizer_prefix = os.path.join(self.tmp, "sanitizer")
        self._bug_scan = BugScan(self.log_path, self.sanitizer_prefix)
        self._log = None
        self._cleanup = add_cleanup(self.cleanup)
        add_diagnostic(lambda: "--- imapfs stderr (%s), last lines:\n%s"
                       % (self.mountpoint, "\n".join(
                           self.stderr_text().splitlines()[-15:]))
                       if self.proc and self.stderr_text() else "")

    def argv(self):
        a = [self.bin]
        if self.foreground:
            a.append("-f")
        if os.environ.get("IMAPFS_TEST_DEBUG"):
            a.append("-d")
        if self.cafile:
            a.append("--cafile=" + self.cafile)
        if self.cache_dir:
            a.append("--cache-dir=" + self.cache_dir)
        return a + self.args + [self.url, self.mountpoint]

    def environ(self):
        env = dict(os.environ)
        env.pop("IMAPFS_PASSWORD", None)
        if self.password_env and self.password is not None:
            env["IMAPFS_PASSWORD"] = self.password
        env.update(self.extra_env)
        return sanitizer_env(env, self.sanitizer_prefix)

    def bug_reports(self):
        """New lines of this daemon's output that report a bug: every
        sanitizer report and every GLib critical since the last call."""
        return self._bug_scan.new_reports()

    def stderr_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def _spawn(self):
        self._log = open(self.log_path, "ab")
        self.t_start = time.monotonic()
        self.proc = subprocess.Popen(self.argv(), env=self.environ(),
                                     stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=self._log,
                                     start_new_session=True)

    def start(self, timeout=30):
        """Mount and wait until it is up. Raises TestFailure with the
        daemon's stderr when it is not."""
        r = self.attempt(timeout=timeout)
        if r.rc is not None and not r.mounted:
            raise TestFailure("imapfs did not mount (exit %s after %.1fs): %s"
                              % (r.rc, r.elapsed, r.stderr.strip()[-3000:]))
        if not r.mounted:
            raise TestFailure("imapfs did not mount within %ds: %s" % (
                timeout, r.stderr.strip()[-3000:]))
        return self

    def attempt(self, timeout=30):
        """Start the daemon and wait until the mount is up or the process
        exits (or timeout). Returns a MountResult; rc is None while the
        process still runs (a foreground daemon that mounted)."""
        self._spawn()
        deadline = self.t_start + timeout
        rc = None
        while True:
            mounted = is_imapfs_mounted(self.mountpoint)
            rc = self.proc.poll()
            if self.foreground and mounted:
                self.fuse_conn = fuse_connection(self.mountpoint)
                break
            if rc is not None:
                mounted = is_imapfs_mounted(self.mountpoint)
                break
            if time.monotonic() > deadline:
                break
            time.sleep(0.02)
        elapsed = time.monotonic() - self.t_start
        if self.foreground:
            self.pid = self.proc.pid if rc is None else None
        elif rc == 0 and mounted:
            self.fuse_conn = fuse_connection(self.mountpoint)
            pids = find_daemon_pids(self.mountpoint, self.bin)
            self.pid = pids[0] if pids else None
        return MountResult(rc, self.stderr_text(), elapsed, mounted)

    def mounted(self):
        return is_imapfs_mounted(self.mountpoint)

    def path(self, *parts):
        return os.path.join(self.mountpoint, *parts)

    def unmount(self, timeout=30):
        """fusermount3 -u, then wait for the daemon to end. Returns its exit
        code (foreground), 0 when a daemonised one vanished, or None when it
        did not end in time."""
        r = subprocess.run(["fusermount3", "-u", self.mountpoint],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=timeout)
        if r.returncode != 0:
            log("fusermount3 -u %s: exit %d: %s" % (
                self.mountpoint, r.returncode, r.stdout.decode().strip()))
        rc = self.wait_exit(timeout)
        if rc is None:
            self._log_stacks("did not end %ds after the unmount" % timeout)
        return rc

    def _log_stacks(self, why):
        """Every thread's backtrace of a daemon that hangs (gdb)."""
        pid = self.proc.pid if self.foreground and self.proc else self.pid
        if not pid or not pid_alive(pid):
            return
        log("# daemon %d %s; mounted in %d other mount namespaces" % (
            pid, why, _other_namespaces_holding(self.mountpoint)))
        try:
            r = subprocess.run(["gdb", "-p", str(pid), "-batch", "-nx",
                                "-ex", "thread apply all bt"],
                               stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=60)
            log(r.stdout.decode("utf-8", "replace"))
        except (OSError, subprocess.TimeoutExpired) as e:
            log("(gdb failed: %s)" % e)

    def wait_exit(self, timeout=30):
        if self.foreground and self.proc is not None:
            try:
                return self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                return None
        if self.pid is not None:
            pid = self.pid
            return 0 if wait_for(lambda: not pid_alive(pid), timeout) \
                else None
        return 0

    def cleanup(self):
        if mount_info(self.mountpoint) is not None:
            force_unmount(self.mountpoint)
        procs = []
        if self.proc is not None and self.proc.poll() is None:
            procs.append(self.proc.pid)
        if self.pid and pid_alive(self.pid) and self.pid not in procs:
            procs.append(self.pid)
        for pid in procs:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for pid in procs:
            if not wait_for(lambda: not pid_alive(pid), 5):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                # Stuck in the kernel on a request nobody will answer:
                # only aborting the connection lets it die.
                if not wait_for(lambda: not pid_alive(pid), 5) and \
                        abort_fuse_connection(self.fuse_conn):
                    log("# %s: daemon %d stuck after SIGKILL, FUSE "
                        "connection %s aborted" %
                        (self.mountpoint, pid, self.fuse_conn))
        if self.proc is not None:
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        if self._log:
            self._log.close()
            self._log = None
        # The daemon has ended: what it reported now fails the test.
        for line in self.bug_reports():
            _bug_reports.append("%s: %s" % (self.mountpoint, line))


def _other_namespaces_holding(mountpoint):
    """How many other mount namespaces still hold a mount on mountpoint (a
    copy made by unshare keeps the FUSE connection alive after our
    unmount)."""
    own = os.readlink("/proc/self/ns/mnt")
    seen = set()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            ns = os.readlink("/proc/%s/ns/mnt" % pid)
            if ns == own or ns in seen:
                continue
            with open("/proc/%s/mountinfo" % pid) as f:
                if any(line.split(" ")[4] == mountpoint for line in f):
                    seen.add(ns)
        except (OSError, IndexError):
            continue
    return len(seen)


def check_mount_failure(t, label, r, keywords, mountpoint):
    """The contract for a failure before the mount is ready: non-zero exit
    within 15 s, exactly one stderr line 'imapfs: ...' naming the cause
    (one of keywords, case-insensitive), and no mount left."""
    log("#   %s: exit %s after %.1fs: %r" % (label, r.rc, r.elapsed,
                                             r.stderr.strip()))
    t.check(r.rc not in (0, None), "%s: exits non-zero" % label,
            "exit %s" % r.rc)
    t.check(r.elapsed < FAIL_DEADLINE, "%s: within 15 s (%.1fs)" % (
        label, r.elapsed))
    lines = r.lines()
    t.check(len(lines) == 1 and lines[0].startswith("imapfs: "),
            "%s: one line 'imapfs: ...' on stderr" % label, short(lines, 600))
    t.check(any(k in " ".join(lines).lower() for k in keywords),
            "%s: names the cause (%s)" % (label, " or ".join(keywords)),
            short(lines, 600))
    gone = wait_for(lambda: not find_daemon_pids(mountpoint), 5)
    t.check(not r.mounted and mount_info(mountpoint) is None and gone,
            "%s: no mount and no daemon left" % label)


def run_imapfs(args, env=None, timeout=30, password=None):
    """Run the binary with args (no mount expected); returns
    (rc, stdout, stderr, elapsed). rc is None on timeout."""
    e = dict(os.environ)
    e.pop("IMAPFS_PASSWORD", None)
    if password is not None:
        e["IMAPFS_PASSWORD"] = password
    e.update(env or {})
    t = time.monotonic()
    try:
        r = subprocess.run([imapfs_bin()] + list(args), env=e,
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=timeout)
        return (r.returncode, r.stdout.decode("utf-8", "replace"),
                r.stderr.decode("utf-8", "replace"), time.monotonic() - t)
    except subprocess.TimeoutExpired as ex:
        return (None, (ex.stdout or b"").decode("utf-8", "replace"),
                (ex.stderr or b"").decode("utf-8", "replace"),
                time.monotonic() - t)


def cat(path, timeout=30):
    """Read path with cat(1) in a child process, so that a hung FUSE request
    cannot hang the test: returns (rc, data, stderr, elapsed); rc is None
    when cat had to be killed."""
    t = time.monotonic()
    p = subprocess.Popen(["cat", "--", path], stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = p.communicate(timeout=timeout)
        rc = p.returncode
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        rc = None
    return rc, out, err.decode("utf-8", "replace"), time.monotonic() - t



# ---------------------------------------------------------------------------
# Comparing the mount with the server

def folder_path(mount, name):
    return os.path.join(mount.mountpoint, *name.split("/"))


def uid_of_name(fname):
    m = re.match(r"^([1-9][0-9]*)(?: .*)?\.eml$", fname, re.S)
    return int(m.group(1)) if m else None


def list_message_files(dirpath):
    """{uid: file name} of the message files directly in dirpath."""
    out = {}
    for e in os.scandir(dirpath):
        if e.is_file(follow_symlinks=False):
            uid = uid_of_name(e.name)
            out[uid if uid is not None else e.name] = e.name
    return out


PACK_MAGIC = 0x31424D49  # "IMB1", cache/pack.h
PACK_HEADER = 20


def _crc32c_table():
    t = []
    for i in range(256):
        v = i
        for _ in range(8):
            v = (v >> 1) ^ 0x82F63B78 if v & 1 else v >> 1
        t.append(v)
    return t


_CRC32C = _crc32c_table()


def crc32c(data):
    """CRC-32C (Castagnoli), as cache/crc32.c computes it."""
    v = 0xFFFFFFFF
    t = _CRC32C
    for b in data:
        v = t[(v ^ b) & 0xFF] ^ (v >> 8)
    return v ^ 0xFFFFFFFF


def read_pack(path):
    """[(uid, offset, data)] of the intact records of one pack segment
    (cache/pack.h), in order; stops at the first torn or damaged one, as
    the daemon does."""
    out = []
    try:
        blob = read_file(path)
    except FileNotFoundError:
        return out
    off = 0
    while off + PACK_HEADER <= len(blob):
        magic, uid, ln, crc, hcrc = struct.unpack_from("<5I", blob, off)
        body = blob[off + PACK_HEADER: off + PACK_HEADER + ln]
        if (magic != PACK_MAGIC or hcrc != crc32c(blob[off:off + 16])
                or uid == 0 or ln == 0 or len(body) != ln
                or crc32c(body) != crc):
            break
        out.append((uid, off + PACK_HEADER, body))
        off += PACK_HEADER + ln
    return out


def cache_temp_files(cache_dir):
    """Temp files in a cache dir: whatever is in an account's tmp/, and
    the .tmp-* files written next to the bodies of a folder."""
    out = []
    if not os.path.isdir(cache_dir):
        return out
    for root, dirs, files in os.walk(cache_dir):
        in_tmp = os.path.basename(root) == "tmp"
        out.extend(os.path.join(root, f) for f in files
                   if in_tmp or f.startswith(".tmp-"))
    return sorted(out)


def cache_bodies(cache_dir):
    """Every body in a cache dir (ROOT/<account>/folders/<key>/<UIDVALIDITY>/
    then <UID> files and pack-<N> segments): {(key, uidvalidity, uid):
    (where, data)}, where is a path, or "path#offset" for a pack record.
    A UID in several places keeps the daemon's choice (the last pack record,
    else its own file)."""
    out = {}
    if not os.path.isdir(cache_dir):
        return out
    for acct in os.listdir(cache_dir):
        fdir = os.path.join(cache_dir, acct, "folders")
        if not os.path.isdir(fdir):
            continue
        for key in os.listdir(fdir):
            kdir = os.path.join(fdir, key)
            if not os.path.isdir(kdir):
                continue
            for uv in os.listdir(kdir):
                uvdir = os.path.join(kdir, uv)
                if not (uv.isdigit() and os.path.isdir(uvdir)):
                    continue
                try:
                    entries = os.listdir(uvdir)
                except FileNotFoundError:
                    continue
                for u in entries:
                    p = os.path.join(uvdir, u)
                    if u.isdigit() and os.path.isfile(p):
                        try:
                            out[(key, int(uv), int(u))] = (p, read_file(p))
                        except FileNotFoundError:
                            pass
                packs = sorted(int(n[5:]) for n in entries
                               if n.startswith("pack-") and n[5:].isdigit())
                for n in packs:
                    p = os.path.join(uvdir, "pack-%d" % n)
                    for uid, off, data in read_pack(p):
                        out[(key, int(uv), uid)] = ("%s#%d" % (p, off), data)
    return out


def cache_body_disk_bytes(cache_dir):
    """Bytes of body files and pack segments on disk."""
    total = 0
    for root, dirs, files in os.walk(cache_dir):
        for n in files:
            if n.isdigit() or n.startswith("pack-"):
                try:
                    total += os.path.getsize(os.path.join(root, n))
                except FileNotFoundError:
                    pass
    return total


def read_file(path, chunk=1 << 20):
    with open(path, "rb") as f:
        parts = []
        while True:
            b = f.read(chunk)
            if not b:
                break
            parts.append(b)
    return b"".join(parts)


def compare_tree(t, mount, view):
    """Check that the mount's directories and files match the server's LIST
    and message metadata: names, modes, sizes, dates. Returns
    {(folder, uid): path}."""
    files = {}
    problems = []
    want_dirs = set()
    for f in view["folders"]:
        parts = f["name"].split("/")
        for i in range(1, len(parts) + 1):
            want_dirs.add("/".join(parts[:i]))
    got_dirs = set()
    for root, dirs, fnames in os.walk(mount.mountpoint):
        rel = os.path.relpath(root, mount.mountpoint)
        for d in dirs:
            got_dirs.add(d if rel == "." else rel + "/" + d)
    t.equal(sorted(got_dirs), sorted(want_dirs),
            "directory tree equals the server's folder list")
    mode_problems = []
    for d in sorted(got_dirs | {"."}):
        st = os.lstat(os.path.join(mount.mountpoint, d))
        if not stat.S_ISDIR(st.st_mode) or stat.S_IMODE(st.st_mode) != 0o700:
            mode_problems.append("%s: mode %o" % (d, st.st_mode))
    t.all_ok("every directory has mode 0700 (owner only)", mode_problems)
    for name, msgs in view["messages"].items():
        d = folder_path(mount, name)
        try:
            listing = list_message_files(d)
        except OSError as e:
            problems.append("%s: cannot list: %s" % (name, e))
            continue
        stray = [n for k, n in listing.items() if not isinstance(k, int)]
        if stray:
            problems.append("%s: files not named <UID>...eml: %s" % (
                name, stray[:5]))
        want = set(msgs)
        got = {k for k in listing if isinstance(k, int)}
        if want != got:
            problems.append("%s: UIDs %s expected, files for %s" % (
                name, sorted(want)[:20], sorted(got)[:20]))
        for uid in sorted(want & got):
            p = os.path.join(d, listing[uid])
            st = os.lstat(p)
            md = msgs[uid]
            if not stat.S_ISREG(st.st_mode) or \
                    stat.S_IMODE(st.st_mode) != 0o600:
                problems.append("%s: mode %o" % (p, st.st_mode))
            if st.st_size != md["size"]:
                problems.append("%s: st_size %d, RFC822.SIZE %d" % (
                    p, st.st_size, md["size"]))
            if int(st.st_mtime) != md["date"]:
                problems.append("%s: st_mtime %d, INTERNALDATE %d" % (
                    p, int(st.st_mtime), md["date"]))
            files[(name, uid)] = p
    t.all_ok("every message is a file with mode 0600, st_size = "
             "RFC822.SIZE, st_mtime = INTERNALDATE (%d files)" % len(files),
             problems)
    return files


def compare_bodies(t, client, view, files, what="every file equals "
                   "BODY.PEEK[] byte for byte"):
    """Read every file of the mount and compare with the server."""
    problems = []
    n = 0
    size = 0
    for f in view["folders"]:
        if not f["selectable"] or not view["messages"].get(f["name"]):
            continue
        for uid, body in client.fetch_bodies(f["raw"]):
            p = files.get((f["name"], uid))
            if p is None:
                continue
            try:
                got = read_file(p)
            except OSError as e:
                problems.append("%s: %s" % (p, e))
                continue
            n += 1
            size += len(body)
            if got != body:
                problems.append("%s: %d bytes, server has %d%s" % (
                    p, len(got), len(body),
                    "" if len(got) != len(body) else " (content differs)"))
            elif os.stat(p).st_size != len(body):
                problems.append("%s: st_size %d after reading %d bytes" % (
                    p, os.stat(p).st_size, len(body)))
    t.all_ok("%s (%d files, %d bytes)" % (what, n, size), problems)
    return n


def read_files_at_once(paths):
    """Read every path from a thread of its own, all started together (so
    the daemon's fetches spread over its pool of connections). Returns
    {path: bytes, or the OSError that reading raised}."""
    got = {}

    def one(p):
        try:
            got[p] = read_file(p)
        except OSError as e:
            got[p] = e
    threads = [threading.Thread(target=one, args=(p,)) for p in paths]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return got


def fetch_errors(text):
    """The daemon's log lines saying that a body fetch failed: each one is
    a read that got EIO (perhaps hidden by the kernel trying again)."""
    return [ln for ln in text.splitlines()
            if "server sent no body" in ln or "cannot fetch " in ln]
