#!/usr/bin/env python3
"""Integration test harness for imapfs (Python 3 standard library only).

What it provides to the test_*.py scripts next to it:

- Dovecot: a throwaway Dovecot instance in a temporary directory, with its own
  CA and server certificate, a passwd-file user with a random password, an
  imap listener (STARTTLS required) and an imaps listener on free loopback
  ports.  It can be stopped and started again on the same ports, and switched
  to other certificates (self-signed, expired, wrong host, other CA) or to a
  plain listener without STARTTLS.
- MaildirWriter: seeds a Dovecot instance by writing Maildir++ files directly
  (with flags and INTERNALDATE), which is much faster than APPEND.
- core_messages(): the core suite's own messages and folders.
- ImapClient: imaplib with a context trusting the throwaway CA; lists folders,
  fetches BODY.PEEK[] and FLAGS by UID, APPENDs.  The tests compare the mount
  with what this client sees.
- Mount: runs the daemon (env IMAPFS_BIN) with the password in the
  environment, waits for the mount, unmounts, and always cleans up.
- Test: a tiny runner (checks, exit codes 0 / 1 / 77, cleanup on exit and on
  signals).

As a command:
    imapfs_harness.py demo --dir DIR       start a seeded Dovecot that keeps
                                           running; prints shell variables
    imapfs_harness.py demo-stop --dir DIR  stop it again
    imapfs_harness.py selftest             check the harness alone
"""

import argparse
import atexit
import base64
import datetime
import grp
import imaplib
import json
import os
import pwd
import random
import re
import secrets
import shlex
import shutil
import signal
import socket
import ssl
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse

SKIP = 77
TEST_USER = "imapfs-test"
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
    """A required check failed: the test stops here."""


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
            raise TestFailure(what)

    def equal(self, got, expected, what):
        return self.check(got == expected, what,
                          "expected %s, got %s" % (short(expected),
                                                   short(got)))

    def all_ok(self, what, problems, limit=10):
        """One check over many items: problems is a list of strings."""
        if problems:
            detail = "%d problem(s):\n      " % len(problems) + \
                "\n      ".join(problems[:limit])
            if len(problems) > limit:
                detail += "\n      ..."
            return self.check(False, what, detail)
        return self.check(True, what)

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


def ensure_test_user():
    """The system user that owns the test mailboxes (Dovecot refuses uid 0).
    Returns (uid, gid)."""
    try:
        pw = pwd.getpwnam(TEST_USER)
        return pw.pw_uid, pw.pw_gid
    except KeyError:
        pass
    if os.geteuid() != 0:
        raise TestFailure("user %s is missing and only root can create it "
                          "(run the tests as root)" % TEST_USER)
    r = run(["useradd", "--system", "--user-group", "--no-create-home",
             "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin",
             TEST_USER], check=False)
    # Another test may have created it at the same moment (exit 9).
    if r.returncode not in (0, 9):
        raise TestFailure("useradd %s failed: %s" % (
            TEST_USER, r.stderr.decode(errors="replace").strip()))
    pw = pwd.getpwnam(TEST_USER)
    return pw.pw_uid, pw.pw_gid


# ---------------------------------------------------------------------------
# Certificates (openssl CLI; EC P-256 keys, quick to make)

def _gen_time(dt):
    return dt.strftime("%Y%m%d%H%M%SZ")


class CertAuthority:
    """A throwaway CA that issues server certificates."""

    def __init__(self, directory, name="imapfs test CA"):
        self.dir = directory
        os.makedirs(os.path.join(directory, "newcerts"), exist_ok=True)
        self.key = os.path.join(directory, "ca.key")
        self.cert = os.path.join(directory, "ca.crt")
        open(os.path.join(directory, "index.txt"), "w").close()
        with open(os.path.join(directory, "serial"), "w") as f:
            f.write("%016X\n" % random.getrandbits(63))
        self.config = os.path.join(directory, "ca.cnf")
        with open(self.config, "w") as f:
            f.write(
                "[ ca ]\n"
                "default_ca = ca_default\n"
                "[ ca_default ]\n"
                "dir = %s\n"
                "database = $dir/index.txt\n"
                "new_certs_dir = $dir/newcerts\n"
                "serial = $dir/serial\n"
                "default_md = sha256\n"
                "policy = policy_any\n"
                "unique_subject = no\n"
                "email_in_dn = no\n"
                "copy_extensions = none\n"
                "[ policy_any ]\n"
                "commonName = supplied\n" % directory)
        run(["openssl", "req", "-x509", "-new", "-newkey", "ec",
             "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", self.key, "-out", self.cert, "-days", "3650",
             "-subj", "/CN=%s" % name,
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign"])

    def issue(self, name, hosts=("localhost",), ips=("127.0.0.1",),
              expired=False):
        """A server certificate signed by this CA: returns (cert, key)."""
        key = os.path.join(self.dir, name + ".key")
        csr = os.path.join(self.dir, name + ".csr")
        cert = os.path.join(self.dir, name + ".crt")
        ext = os.path.join(self.dir, name + ".ext")
        cn = hosts[0] if hosts else ips[0]
        run(["openssl", "req", "-new", "-newkey", "ec",
             "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", key, "-out", csr, "-subj", "/CN=%s" % cn])
        san = ",".join(["DNS:" + h for h in hosts] + ["IP:" + i for i in ips])
        with open(ext, "w") as f:
            f.write("[ server ]\n"
                    "basicConstraints = critical,CA:FALSE\n"
                    "keyUsage = critical,digitalSignature,keyEncipherment\n"
                    "extendedKeyUsage = serverAuth\n"
                    "subjectAltName = %s\n" % san)
        now = datetime.datetime.now(datetime.timezone.utc)
        if expired:
            start = now - datetime.timedelta(days=400)
            end = now - datetime.timedelta(days=30)
        else:
            start = now - datetime.timedelta(days=1)
            end = now + datetime.timedelta(days=3650)
        run(["openssl", "ca", "-batch", "-config", self.config,
             "-cert", self.cert, "-keyfile", self.key, "-in", csr,
             "-out", cert, "-notext", "-extfile", ext, "-extensions", "server",
             "-startdate", _gen_time(start), "-enddate", _gen_time(end)])
        os.chmod(key, 0o600)
        return cert, key


def self_signed_cert(directory, name, hosts=("localhost",),
                     ips=("127.0.0.1",)):
    """A self-signed server certificate: returns (cert, key)."""
    key = os.path.join(directory, name + ".key")
    cert = os.path.join(directory, name + ".crt")
    san = ",".join(["DNS:" + h for h in hosts] + ["IP:" + i for i in ips])
    run(["openssl", "req", "-x509", "-new", "-newkey", "ec",
         "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", key, "-out", cert, "-days", "3650",
         "-subj", "/CN=%s" % (hosts[0] if hosts else ips[0]),
         "-addext", "subjectAltName=%s" % san,
         "-addext", "extendedKeyUsage=serverAuth"])
    os.chmod(key, 0o600)
    return cert, key


# ---------------------------------------------------------------------------
# Modified UTF-7 (RFC 3501 section 5.1.3)

def mutf7_encode(name):
    out = []
    run_chars = []

    def flush():
        if run_chars:
            raw = "".join(run_chars).encode("utf-16-be")
            b64 = base64.b64encode(raw).decode("ascii").rstrip("=")
            out.append("&" + b64.replace("/", ",") + "-")
            run_chars.clear()

    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            run_chars.append(ch)
    flush()
    return "".join(out)


def mutf7_decode(name):
    if isinstance(name, bytes):
        name = name.decode("ascii")
    out = []
    i = 0
    while i < len(name):
        ch = name[i]
        if ch != "&":
            out.append(ch)
            i += 1
            continue
        j = name.index("-", i)
        if j == i + 1:
            out.append("&")
        else:
            b64 = name[i + 1:j].replace(",", "/")
            b64 += "=" * (-len(b64) % 4)
            out.append(base64.b64decode(b64).decode("utf-16-be"))
        i = j + 1
    return "".join(out)


# ---------------------------------------------------------------------------
# Dovecot

class Dovecot:
    """A throwaway Dovecot. cert is one of 'good' (signed by self.ca for
    localhost and 127.0.0.1), 'selfsigned', 'expired', 'wronghost',
    'otherca'. tls is 'required' (STARTTLS required on the imap port, imaps
    on the other) or 'none' (plain imap without STARTTLS, no imaps)."""

    CERT_KINDS = ("good", "selfsigned", "expired", "wronghost", "otherca")

    def __init__(self, workdir=None, keep=False, cert="good", tls="required"):
        self.uid, self.gid = ensure_test_user()
        self.dovecot_bin = shutil.which("dovecot") or "/usr/sbin/dovecot"
        if not os.access(self.dovecot_bin, os.X_OK):
            raise TestFailure("dovecot is not installed "
                              "(apt-get install dovecot-imapd)")
        self.keep = keep
        if workdir:
            os.makedirs(workdir, exist_ok=True)
            self.dir = os.path.abspath(workdir)
            os.chmod(self.dir, 0o755)
        else:
            self.dir = tempfile.mkdtemp(prefix="imapfs-dovecot-")
            os.chmod(self.dir, 0o755)
        self.user = TEST_USER
        # Letters and digits only: safe in passwd-file and easy to search
        # for in the cache directory.
        self.password = "pw" + secrets.token_hex(12)
        self.home = os.path.join(self.dir, "home")
        self.maildir = os.path.join(self.home, "Maildir")
        self.base_dir = os.path.join(self.dir, "run")
        self.conf = os.path.join(self.dir, "dovecot.conf")
        self.log_path = os.path.join(self.dir, "dovecot.log")
        for d in (self.home, self.maildir):
            os.makedirs(d, exist_ok=True)
            os.chmod(d, 0o700)
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(self.maildir, sub), exist_ok=True)
        chown_tree(self.home, self.uid, self.gid)
        os.makedirs(os.path.join(self.dir, "state"), exist_ok=True)
        self.imap_port = free_port()
        self.imaps_port = free_port()
        certdir = os.path.join(self.dir, "certs")
        os.makedirs(certdir, exist_ok=True)
        self.certdir = certdir
        self.ca = CertAuthority(os.path.join(certdir, "ca"))
        self.cafile = self.ca.cert
        self._certs = {"good": self.ca.issue("server")}
        self.cert = cert
        self.tls = tls
        self.extra_users = {}
        self.pid = None
        self._cleanup = None
        if not keep:
            self._cleanup = add_cleanup(self.destroy)
        self._write_passwd()
        self._write_conf()
        add_diagnostic(lambda: "--- dovecot log (%s), last lines:\n%s" % (
            self.log_path, self.log_tail()) if os.path.exists(self.log_path)
            else "")

    # --- certificates -----------------------------------------------------

    def cert_files(self, kind):
        if kind not in self._certs:
            d = self.certdir
            if kind == "selfsigned":
                self._certs[kind] = self_signed_cert(d, "selfsigned")
            elif kind == "expired":
                self._certs[kind] = self.ca.issue("expired", expired=True)
            elif kind == "wronghost":
                self._certs[kind] = self.ca.issue(
                    "wronghost", hosts=("mail.invalid",), ips=())
            elif kind == "otherca":
                other = CertAuthority(os.path.join(d, "other-ca"),
                                      name="imapfs other CA")
                self.other_cafile = other.cert
                self._certs[kind] = other.issue("otherca")
            else:
                raise ValueError("unknown certificate kind %r" % kind)
        return self._certs[kind]

    def set_cert(self, kind):
        """Serve another certificate (restarts a running instance)."""
        self.cert_files(kind)
        self.cert = kind
        self._reconfigure()

    def set_tls(self, tls):
        self.tls = tls
        self._reconfigure()

    def add_user(self, name, password):
        self.extra_users[name] = password
        self._write_passwd()

    def set_password(self, password):
        """Change the test user's password (Dovecot reads its passwd-file
        again when it changes; sessions already open stay)."""
        self.password = password
        self._write_passwd()

    def _reconfigure(self):
        was_running = self.running()
        if was_running:
            self.stop()
        self._write_conf()
        if was_running:
            self.start()

    # --- configuration ----------------------------------------------------

    def _write_passwd(self):
        path = os.path.join(self.dir, "passwd")
        with open(path, "w") as f:
            users = {self.user: self.password}
            users.update(self.extra_users)
            for name, pw in users.items():
                f.write("%s:{PLAIN}%s:%d:%d::%s::\n" % (
                    name, pw, self.uid, self.gid, self.home))
        # The auth process reads it as the dovecot user.
        try:
            os.chown(path, 0, grp.getgrnam("dovecot").gr_gid)
            os.chmod(path, 0o640)
        except (KeyError, PermissionError):
            os.chmod(path, 0o644)
        self.passwd_file = path

    def _write_conf(self):
        cert, key = self.cert_files(self.cert)
        addr = "127.0.0.1, ::1" if HAVE_IPV6 else "127.0.0.1"
        if self.tls == "required":
            tls_conf = ("ssl = required\n"
                        "ssl_cert = <%s\nssl_key = <%s\n"
                        "ssl_min_protocol = TLSv1.2\n"
                        "disable_plaintext_auth = yes\n" % (cert, key))
            imaps = ("  inet_listener imaps {\n"
                     "    address = %s\n    port = %d\n    ssl = yes\n"
                     "  }\n" % (addr, self.imaps_port))
        else:
            tls_conf = "ssl = no\ndisable_plaintext_auth = no\n"
            imaps = ("  inet_listener imaps {\n    port = 0\n  }\n")
        conf = (
            "# Throwaway instance written by imapfs_harness.py\n"
            "base_dir = {base}\n"
            "state_dir = {dir}/state\n"
            "instance_name = imapfs-test-{port}\n"
            "log_path = {log}\n"
            "info_log_path = {log}\n"
            "protocols = imap\n"
            "listen = {addr}\n"
            "{tls}"
            "auth_mechanisms = plain login\n"
            "auth_verbose = yes\n"
            "first_valid_uid = {uid}\n"
            "mail_location = maildir:~/Maildir\n"
            "namespace inbox {{\n"
            "  inbox = yes\n"
            "  separator = /\n"
            "  prefix =\n"
            "}}\n"
            "passdb {{\n"
            "  driver = passwd-file\n"
            "  args = scheme=PLAIN username_format=%u {dir}/passwd\n"
            "}}\n"
            "userdb {{\n"
            "  driver = passwd-file\n"
            "  args = username_format=%u {dir}/passwd\n"
            "}}\n"
            "protocol imap {{\n"
            "  mail_max_userip_connections = 100\n"
            "}}\n"
            "service imap-login {{\n"
            "  inet_listener imap {{\n"
            "    address = {addr}\n"
            "    port = {imap_port}\n"
            "  }}\n"
            "{imaps}"
            "}}\n"
        ).format(base=self.base_dir, dir=self.dir, port=self.imap_port,
                 log=self.log_path, addr=addr, tls=tls_conf, uid=self.uid,
                 imap_port=self.imap_port, imaps=imaps)
        with open(self.conf, "w") as f:
            f.write(conf)

    # --- lifecycle --------------------------------------------------------

    def _pidfile(self):
        return os.path.join(self.base_dir, "master.pid")

    def _read_pid(self):
        try:
            with open(self._pidfile()) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def running(self):
        pid = self._read_pid()
        return pid is not None and pid_alive(pid)

    def ports(self):
        return [self.imap_port] + ([self.imaps_port]
                                   if self.tls == "required" else [])

    def log_tail(self, lines=30):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return "(no log)"

    def start(self, timeout=30):
        if self.running():
            return
        with open(os.path.join(self.dir, "dovecot.out"), "ab") as out:
            r = subprocess.run([self.dovecot_bin, "-c", self.conf],
                               stdin=subprocess.DEVNULL, stdout=out,
                               stderr=subprocess.STDOUT, timeout=timeout)
        if r.returncode != 0:
            with open(os.path.join(self.dir, "dovecot.out"),
                      errors="replace") as f:
                out_text = f.read()[-2000:]
            raise TestFailure("dovecot did not start (exit %d): %s\n%s" % (
                r.returncode, out_text, self.log_tail()))
        ok = wait_for(lambda: self.running() and
                      all(port_open(p) for p in self.ports()), timeout)
        if not ok:
            raise TestFailure("dovecot did not accept connections on %s "
                              "within %ds:\n%s" % (self.ports(), timeout,
                                                   self.log_tail()))
        self.pid = self._read_pid()

    def stop(self, timeout=20):
        """Stop the master and every process it started: mail processes
        that serve a client may otherwise outlive the master for a while
        and keep answering on their connections."""
        pid = self._read_pid()
        if pid is None or not pid_alive(pid):
            return
        children = descendants(pid)
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        # The master waits for its children; ending them too saves seconds.
        for c in children:
            try:
                os.kill(c, signal.SIGTERM)
            except ProcessLookupError:
                pass
        if not wait_for(lambda: not pid_alive(pid), timeout):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            wait_for(lambda: not pid_alive(pid), 5)
        children += [c for c in descendants(pid) if c not in children]
        kill_all(children)
        # Login processes may linger for a moment with the listening socket.
        if not wait_for(lambda: not any(port_open(p) for p in self.ports()),
                        10):
            raise TestFailure("dovecot ports %s still open after stop" %
                              self.ports())
        try:
            os.unlink(self._pidfile())
        except OSError:
            pass

    def restart(self):
        self.stop()
        self.start()

    def destroy(self):
        try:
            self.stop()
        finally:
            if not self.keep:
                shutil.rmtree(self.dir, ignore_errors=True)

    # --- addresses --------------------------------------------------------

    def url(self, mode="imaps", user=None, host="localhost", port=None):
        """imaps:// (implicit TLS) or imap:// (STARTTLS) URL of this server;
        the user name is percent-encoded."""
        user = self.user if user is None else user
        if port is None:
            port = self.imaps_port if mode == "imaps" else self.imap_port
        return "%s://%s@%s:%d" % (mode, urllib.parse.quote(user, safe=""),
                                  host, port)

    def client(self, **kw):
        return ImapClient(self, **kw)


# ---------------------------------------------------------------------------
# Seeding: Maildir++ files written directly

MAILDIR_FLAGS = {"D": "\\Draft", "F": "\\Flagged", "R": "\\Answered",
                 "S": "\\Seen", "T": "\\Deleted"}


def maildir_folder_dir(maildir, folder):
    """Directory of folder ('/'-separated UTF-8 name) in a Maildir++ tree:
    INBOX is the root, others are .A.B with mUTF-7 components."""
    if folder == "INBOX":
        return maildir
    parts = folder.split("/")
    enc = []
    for p in parts:
        e = mutf7_encode(p)
        if not p or "." in e or p in (".", ".."):
            raise ValueError("folder component %r cannot be stored in "
                             "Maildir++" % p)
        enc.append(e)
    return os.path.join(maildir, "." + ".".join(enc))


class MaildirWriter:
    """Writes messages into a Dovecot instance's Maildir++ tree, with a
    dovecot-uidlist so that UIDs are predictable (1, 2, ... per folder in
    the order added). Call finish() before Dovecot opens the folders."""

    def __init__(self, dovecot, uidvalidity=None):
        self.dc = dovecot
        self.maildir = dovecot.maildir
        self.uidvalidity = uidvalidity or int(time.time()) - 100
        self.folders = {}
        self._seq = 0

    def folder(self, name):
        if name not in self.folders:
            d = maildir_folder_dir(self.maildir, name)
            for sub in ("cur", "new", "tmp"):
                os.makedirs(os.path.join(d, sub), exist_ok=True)
            if name != "INBOX":
                open(os.path.join(d, "maildirfolder"), "a").close()
            self.folders[name] = {"dir": d, "entries": []}
        return self.folders[name]

    def add(self, folder, data, flags="", date=None):
        """Store one message; returns its UID. flags: Maildir letters from
        DFRST; date: INTERNALDATE as a Unix time."""
        f = self.folder(folder)
        if date is None:
            date = time.time()
        self._seq += 1
        base = "%d.M%dP%d.imapfs-test" % (int(date), self._seq, os.getpid())
        flags = "".join(sorted(set(flags)))
        path = os.path.join(f["dir"], "cur", base + ":2," + flags)
        with open(path, "wb") as fh:
            fh.write(data)
        os.utime(path, (date, date))
        f["entries"].append(base)
        return len(f["entries"])

    def finish(self):
        for name, f in self.folders.items():
            path = os.path.join(f["dir"], "dovecot-uidlist")
            n = len(f["entries"])
            with open(path, "w") as fh:
                fh.write("3 V%d N%d G%s\n" % (self.uidvalidity, n + 1,
                                             secrets.token_hex(16)))
                for uid, base in enumerate(f["entries"], 1):
                    fh.write("%d :%s\n" % (uid, base))
        chown_tree(self.dc.home, self.dc.uid, self.dc.gid)
        self.uidvalidity += 1


# ---------------------------------------------------------------------------
# The core suite's messages

NEEDLE = "imapfs-needle-4b7e"
CORE_FOLDERS = ["INBOX", "Archive/2024", "Entwürfe", "日本語", "Projects",
                "Projects/Alpha", "Q&A", "Empty"]
# Top-level names the mount's root must show (Archive exists only as the
# parent of Archive/2024).
CORE_TOP = {"INBOX", "Archive", "Entwürfe", "日本語", "Projects", "Q&A",
            "Empty"}


class Msg:
    """One generated message. name: the exact file name expected after
    "<UID> " (None: not exact); contains: a string the name must contain;
    empty_subject: the name must be "<UID>.eml"."""

    def __init__(self, folder, key, data, flags="", date=None, name=None,
                 contains=None, empty_subject=False, needle=False):
        self.folder = folder
        self.key = key
        self.data = data
        self.flags = flags
        self.date = date
        self.name = name
        self.contains = contains
        self.empty_subject = empty_subject
        self.needle = needle
        self.uid = None

    def expected_name_problem(self, fname):
        """None when fname fits this message, else what is wrong."""
        b = fname.encode("utf-8", "surrogateescape")
        if len(b) > 255:
            return "longer than 255 bytes"
        if "/" in fname or "\0" in fname or \
                any(ord(c) < 0x20 or ord(c) == 0x7F for c in fname):
            return "contains '/', NUL or a control character"
        try:
            b.decode("utf-8")
        except UnicodeDecodeError:
            return "not valid UTF-8"
        prefix = "%d " % self.uid
        if self.empty_subject:
            return None if fname == "%d.eml" % self.uid else \
                "expected %r" % ("%d.eml" % self.uid)
        if not fname.startswith(prefix) or not fname.endswith(".eml"):
            return "expected '%s<subject>.eml'" % prefix
        if self.name is not None and fname != prefix + self.name:
            return "expected %r" % (prefix + self.name)
        if self.contains is not None and self.contains not in fname:
            return "expected it to contain %r" % self.contains
        return None


def _b_word(text, charset="UTF-8"):
    return "=?%s?B?%s?=" % (charset, base64.b64encode(
        text.encode(charset)).decode("ascii"))


def make_message(key, subject, date, body=b"", eol=b"\r\n", extra_headers=(),
                 content_type="text/plain; charset=us-ascii",
                 cte="7bit", from_addr="Alice Example <alice@example.org>"):
    """subject: str (written as given, must be ASCII unless 8-bit is the
    point), bytes (raw), or None (no Subject header)."""
    headers = [
        b"From: " + from_addr.encode(),
        b"To: imapfs-test@localhost",
        b"Date: " + time.strftime("%a, %d %b %Y %H:%M:%S +0000",
                                  time.gmtime(date)).encode(),
        b"Message-ID: <" + key.encode() + b"@imapfs.test>",
    ]
    if subject is not None:
        s = subject if isinstance(subject, bytes) else subject.encode()
        headers.append(b"Subject: " + s if s else b"Subject:")
    headers.append(b"X-Imapfs-Test: " + key.encode())
    headers.append(b"MIME-Version: 1.0")
    headers.append(b"Content-Type: " + content_type.encode())
    headers.append(b"Content-Transfer-Encoding: " + cte.encode())
    headers.extend(h if isinstance(h, bytes) else h.encode()
                   for h in extra_headers)
    if isinstance(body, str):
        body = body.encode()
    lines = body.split(b"\n")
    body = eol.join(line.rstrip(b"\r") for line in lines)
    return eol.join(headers) + eol + eol + body


def _base64_lines(data):
    enc = base64.b64encode(data)
    return b"\n".join(enc[i:i + 76] for i in range(0, len(enc), 76))


def core_messages(large=True):
    """The core suite's messages, in the order they are added (UIDs count
    per folder from 1). Deterministic."""
    rnd = random.Random(20240301)
    t0 = int(datetime.datetime(2024, 3, 1, 9, 0, 0,
                               tzinfo=datetime.timezone.utc).timestamp())
    msgs = []
    n = [0]

    def add(folder, key, data, **kw):
        n[0] += 1
        kw.setdefault("date", t0 + n[0] * 3 * 3600 + 17 * n[0])
        msgs.append(Msg(folder, key, data, **kw))

    def date():
        return t0 + (n[0] + 1) * 3 * 3600 + 17 * (n[0] + 1)

    # INBOX
    add("INBOX", "plain", make_message(
        "plain", "Hello from imapfs", date(),
        body="Plain ASCII body.\nThe needle is %s.\nBye.\n" % NEEDLE),
        flags="", name="Hello from imapfs.eml", needle=True)
    boundary = "imapfs-boundary-1"
    attach = bytes(rnd.getrandbits(8) for _ in range(20000))
    mp = ("This is a multi-part message in MIME format.\n"
          "--%s\nContent-Type: text/plain; charset=us-ascii\n\n"
          "See the attached report.\n"
          "--%s\nContent-Type: application/octet-stream; name=report.bin\n"
          "Content-Transfer-Encoding: base64\n"
          "Content-Disposition: attachment; filename=report.bin\n\n"
          % (boundary, boundary)).encode() + _base64_lines(attach) + \
        ("\n--%s--\n" % boundary).encode()
    add("INBOX", "multipart", make_message(
        "multipart", "Quarterly report with attachment", date(), body=mp,
        content_type='multipart/mixed; boundary="%s"' % boundary),
        flags="S", name="Quarterly report with attachment.eml")
    add("INBOX", "latin1-body", make_message(
        "latin1-body", "Latin-1 body", date(),
        body="Gr\u00fc\u00dfe aus M\u00fcnchen, \u00e0 bient\u00f4t.\n"
        .encode("latin-1"),
        content_type="text/plain; charset=iso-8859-1", cte="8bit"),
        flags="S", name="Latin-1 body.eml")
    add("INBOX", "utf8-body", make_message(
        "utf8-body", "UTF-8 body", date(),
        body="Gr\u00fc\u00dfe, \u65e5\u672c\u8a9e, \U0001F642\n"
        .encode("utf-8"),
        content_type="text/plain; charset=utf-8", cte="8bit"),
        flags="", name="UTF-8 body.eml")
    add("INBOX", "b-utf8", make_message(
        "b-utf8", _b_word("Gr\u00fc\u00dfe aus K\u00f6ln"), date(),
        body="RFC 2047 B, UTF-8.\n"),
        flags="S", name="Gr\u00fc\u00dfe aus K\u00f6ln.eml")
    add("INBOX", "q-utf8", make_message(
        "q-utf8", "=?UTF-8?Q?Caf=C3=A9_cr=C3=A8me_br=C3=BBl=C3=A9e?=",
        date(), body="RFC 2047 Q, UTF-8.\n"),
        flags="", name="Caf\u00e9 cr\u00e8me br\u00fbl\u00e9e.eml")
    add("INBOX", "q-latin1", make_message(
        "q-latin1", "=?iso-8859-1?Q?Sch=F6ne_Gr=FC=DFe?=", date(),
        body="RFC 2047 Q, ISO-8859-1.\n"),
        flags="S", name="Sch\u00f6ne Gr\u00fc\u00dfe.eml")
    add("INBOX", "slash-colon", make_message(
        "slash-colon", "Re: report 2024/05: final", date(),
        body="Slashes and colons in the subject.\n"),
        flags="RS", name="Re- report 2024-05- final.eml")
    add("INBOX", "long-ascii", make_message(
        "long-ascii", "Long subject " + "lorem ipsum dolor " * 20, date(),
        body="A 370-byte subject.\n"),
        flags="S", contains="Long subject lorem ipsum")
    long_utf8 = "\u00dcberl\u00e4nge \u65e5\u672c " * 30
    words = [_b_word(long_utf8[i:i + 12]) for i in
             range(0, len(long_utf8), 12)]
    add("INBOX", "long-utf8", make_message(
        "long-utf8", "\r\n ".join(words), date(),
        body="A long RFC 2047 subject in many encoded words.\n"),
        flags="", contains="\u00dcberl\u00e4nge")
    add("INBOX", "empty-subject", make_message(
        "empty-subject", "", date(), body="The subject is empty.\n"),
        flags="S", empty_subject=True)
    add("INBOX", "no-subject", make_message(
        "no-subject", None, date(), body="There is no Subject header.\n"),
        flags="", empty_subject=True)
    add("INBOX", "lf-only", make_message(
        "lf-only", "LF only line ends", date(),
        body="Line one.\nLine two.\nLine three.\n", eol=b"\n"),
        flags="S", name="LF only line ends.eml")
    add("INBOX", "crlf", make_message(
        "crlf", "CRLF line ends", date(),
        body="Line one.\nLine two.\nLine three.\n", eol=b"\r\n"),
        flags="F", name="CRLF line ends.eml")
    add("INBOX", "raw-8bit-subject", make_message(
        "raw-8bit-subject", "Rohe Bytes \u00e4\u00f6\u00fc".encode("utf-8"),
        date(), body="Raw UTF-8 in the Subject header.\n"),
        flags="S", contains="Rohe Bytes")
    add("INBOX", "folded", make_message(
        "folded", "Folded\r\n subject line", date(),
        body="The subject is folded over two lines.\n"),
        flags="S", contains="subject line")

    # Archive/2024 (Archive itself exists only as a parent)
    add("Archive/2024", "archived-1", make_message(
        "archived-1", "Archived one", date(), body="First archived.\n"),
        flags="S", name="Archived one.eml")
    add("Archive/2024", "archived-2", make_message(
        "archived-2", "Archived two", date(),
        body="Second archived, with the needle %s inside.\n" % NEEDLE),
        flags="FS", name="Archived two.eml", needle=True)
    if large:
        big = bytes(rnd.getrandbits(8) for _ in range(3_800_000))
        body = ("--%s\nContent-Type: text/plain\n\nA large attachment.\n"
                "--%s\nContent-Type: application/octet-stream; "
                "name=big.bin\nContent-Transfer-Encoding: base64\n\n"
                % (boundary, boundary)).encode() + _base64_lines(big) + \
            ("\n--%s--\n" % boundary).encode()
        add("Archive/2024", "large", make_message(
            "large", "Large attachment", date(), body=body,
            content_type='multipart/mixed; boundary="%s"' % boundary),
            flags="", name="Large attachment.eml")

    # Non-ASCII folder names
    add("Entwürfe", "draft", make_message(
        "draft", "Draft reply", date(), body="Not sent yet.\n"),
        flags="DS", name="Draft reply.eml")
    add("日本語", "japanese", make_message(
        "japanese", _b_word("\u4f1a\u8b70\u306e\u8b70\u984c"), date(),
        body="\u4f1a\u8b70\u306f\u6728\u66dc\u65e5\u3067\u3059\u3002 %s\n"
        % NEEDLE, content_type="text/plain; charset=utf-8", cte="8bit"),
        flags="", name="\u4f1a\u8b70\u306e\u8b70\u984c.eml", needle=True)

    # A folder with both messages and children
    add("Projects", "kickoff", make_message(
        "kickoff", "Project kickoff", date(), body="Kickoff notes.\n"),
        flags="S", name="Project kickoff.eml")
    add("Projects", "budget", make_message(
        "budget", "Budget draft", date(), body="Numbers.\n", eol=b"\n"),
        flags="", name="Budget draft.eml")
    add("Projects/Alpha", "alpha", make_message(
        "alpha", "Alpha status", date(), body="Alpha is on track.\n"),
        flags="S", name="Alpha status.eml")
    add("Q&A", "qa", make_message(
        "qa", "Questions and answers", date(), body="An ampersand folder.\n"),
        flags="", name="Questions and answers.eml")
    return msgs


def seed_core(dovecot, large=True):
    """Write the core messages (and the empty folders) into dovecot's
    maildir. Returns the list of Msg with .uid set."""
    w = MaildirWriter(dovecot)
    for f in CORE_FOLDERS:
        w.folder(f)
    msgs = core_messages(large=large)
    for m in msgs:
        m.uid = w.add(m.folder, m.data, m.flags, m.date)
    w.finish()
    return msgs


# ---------------------------------------------------------------------------
# IMAP client (the reference the mount is compared with)

def _quote(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


_LIST_RE = re.compile(rb'^\((?P<flags>[^)]*)\) '
                      rb'(?P<delim>"(?:[^"\\]|\\.)*"|NIL) '
                      rb'(?P<name>.*)$')
_MONTHS = {m: i for i, m in enumerate(
    ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct",
     "Nov", "Dec"], 1)}


def parse_internaldate(s):
    """'01-Mar-2024 09:00:17 +0000' -> Unix time."""
    m = re.match(r"\s*(\d+)-(\w{3})-(\d{4}) (\d\d):(\d\d):(\d\d) "
                 r"([+-])(\d\d)(\d\d)", s)
    if not m:
        raise ValueError("bad INTERNALDATE %r" % s)
    d, mon, y, hh, mm, ss, sign, zh, zm = m.groups()
    dt = datetime.datetime(int(y), _MONTHS[mon], int(d), int(hh), int(mm),
                           int(ss), tzinfo=datetime.timezone.utc)
    off = (int(zh) * 60 + int(zm)) * 60
    return int(dt.timestamp()) - (off if sign == "+" else -off)


class ImapClient:
    """imaplib over implicit TLS (or STARTTLS) trusting the test CA."""

    def __init__(self, dovecot, user=None, password=None, starttls=False,
                 timeout=60):
        ctx = ssl.create_default_context(cafile=dovecot.cafile)
        if starttls:
            self.conn = imaplib.IMAP4("localhost", dovecot.imap_port,
                                      timeout=timeout)
            self.conn.starttls(ssl_context=ctx)
        else:
            self.conn = imaplib.IMAP4_SSL("localhost", dovecot.imaps_port,
                                          ssl_context=ctx, timeout=timeout)
        self.conn.login(user or dovecot.user, password or dovecot.password)
        self.selected = None

    def close(self):
        try:
            self.conn.logout()
        except Exception:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _ok(self, typ, data, what):
        if typ != "OK":
            raise TestFailure("IMAP %s failed: %s %s" % (what, typ, data))
        return data

    def list_folders(self):
        """[{'name': UTF-8 name with '/', 'raw': server name, 'delim': str,
        'flags': set, 'selectable': bool}] for LIST "" "*"."""
        data = self._ok(*self.conn.list('""', '"*"'), what="LIST")
        out = []
        i = 0
        while i < len(data):
            item = data[i]
            i += 1
            if item is None:
                continue
            if isinstance(item, tuple):
                head, lit = item
                m = _LIST_RE.match(head.rstrip())
                rawname = lit
            else:
                m = _LIST_RE.match(item)
                rawname = None
            if not m:
                raise TestFailure("cannot parse LIST reply %r" % (item,))
            flags = set(m.group("flags").decode().split())
            delim = m.group("delim")
            delim = None if delim == b"NIL" else \
                delim[1:-1].replace(b"\\\\", b"\\").decode()
            if rawname is None:
                rawname = m.group("name")
                if rawname.startswith(b'"'):
                    rawname = re.sub(rb'\\(.)', rb'\1', rawname[1:-1])
            raw = rawname.decode("ascii")
            name = mutf7_decode(raw)
            if delim and delim != "/":
                name = name.replace(delim, "/")
            sel = not ({"\\noselect", "\\nonexistent"} &
                       {f.lower() for f in flags})
            out.append({"name": name, "raw": raw, "delim": delim,
                        "flags": flags, "selectable": sel})
        return out

    def examine(self, folder_raw):
        typ, data = self.conn.select(_quote(folder_raw), readonly=True)
        self._ok(typ, data, "EXAMINE %s" % folder_raw)
        self.selected = folder_raw
        return int(data[0])

    def metadata(self, folder_raw):
        """{uid: {'flags': frozenset, 'date': unix, 'size': int}}."""
        exists = self.examine(folder_raw)
        if exists == 0:
            return {}
        data = self._ok(*self.conn.uid(
            "FETCH", "1:*", "(UID FLAGS INTERNALDATE RFC822.SIZE)"),
            what="UID FETCH metadata")
        out = {}
        for item in data:
            if isinstance(item, tuple):
                item = item[0]
            if not item:
                continue
            m_uid = re.search(rb"UID (\d+)", item)
            m_flags = re.search(rb"FLAGS \(([^)]*)\)", item)
            m_date = re.search(rb'INTERNALDATE "([^"]+)"', item)
            m_size = re.search(rb"RFC822\.SIZE (\d+)", item)
            if not (m_uid and m_flags and m_date and m_size):
                continue
            out[int(m_uid.group(1))] = {
                "flags": frozenset(m_flags.group(1).decode().split()),
                "date": parse_internaldate(m_date.group(1).decode()),
                "size": int(m_size.group(1)),
            }
        return out

    def fetch_bodies(self, folder_raw, uids=None, batch=200):
        """Yield (uid, bytes of BODY.PEEK[]), in batches of UIDs."""
        exists = self.examine(folder_raw)
        if exists == 0:
            return
        if uids is None:
            uids = sorted(self.metadata(folder_raw))
        uids = sorted(uids)
        for i in range(0, len(uids), batch):
            chunk = uids[i:i + batch]
            data = self._ok(*self.conn.uid(
                "FETCH", ",".join(map(str, chunk)), "(UID BODY.PEEK[])"),
                what="UID FETCH BODY.PEEK[]")
            pending_uid = None
            for item in data:
                if isinstance(item, tuple):
                    head, lit = item
                    m = re.search(rb"UID (\d+)", head)
                    if m:
                        yield int(m.group(1)), lit
                    else:
                        pending_uid = lit
                elif item and pending_uid is not None:
                    m = re.search(rb"UID (\d+)", item)
                    if m:
                        yield int(m.group(1)), pending_uid
                    pending_uid = None

    def fetch_body(self, folder_raw, uid):
        for u, body in self.fetch_bodies(folder_raw, [uid]):
            if u == uid:
                return body
        raise TestFailure("UID %d not found in %s" % (uid, folder_raw))

    def flags_snapshot(self):
        """{(folder name, uid): frozenset(flags)} over all folders."""
        snap = {}
        for f in self.list_folders():
            if not f["selectable"]:
                continue
            for uid, md in self.metadata(f["raw"]).items():
                snap[(f["name"], uid)] = md["flags"]
        return snap

    def append(self, folder_raw, data, flags="", date=None):
        date_arg = imaplib.Time2Internaldate(date) if date else None
        self._ok(*self.conn.append(_quote(folder_raw),
                                   flags or None, date_arg, data),
                 what="APPEND")

    def create(self, folder_raw):
        self._ok(*self.conn.create(_quote(folder_raw)), what="CREATE")


class PlainImapFrom(imaplib.IMAP4):
    """imaplib without TLS, connecting from a chosen source address."""

    def __init__(self, source, host, port, timeout=10):
        self._source = source
        super().__init__(host, port, timeout=timeout)

    def _create_socket(self, timeout):
        return socket.create_connection((self.host, self.port), timeout,
                                        source_address=(self._source, 0))


def login_security(dovecot):
    """For each successful IMAP login in dovecot's log, how it was
    protected: 'TLS' or 'secured' (plaintext from an address Dovecot
    trusts, such as a loopback connection to itself) or 'plain'."""
    out = []
    try:
        with open(dovecot.log_path, errors="replace") as f:
            for line in f:
                if "imap-login: Info: Login: " not in line:
                    continue
                if re.search(r", TLS[,:]", line):
                    out.append("TLS")
                elif ", secured," in line:
                    out.append("secured")
                else:
                    out.append("plain")
    except OSError:
        pass
    return out


def server_view(client):
    """Everything the mount must show, from the server's point of view:
    {'folders': [LIST entries], 'messages': {folder name: {uid: metadata}}}.
    """
    folders = client.list_folders()
    messages = {}
    for f in folders:
        if f["selectable"]:
            messages[f["name"]] = client.metadata(f["raw"])
    return {"folders": folders, "messages": messages}


def server_bodies(client, view):
    """{(folder name, uid): BODY.PEEK[]} of every selectable folder of a
    server_view()."""
    bodies = {}
    for f in view["folders"]:
        if f["selectable"]:
            for uid, b in client.fetch_bodies(f["raw"]):
                bodies[(f["name"], uid)] = b
    return bodies


def diff_flags(before, after):
    problems = []
    for k in sorted(set(before) | set(after), key=str):
        if before.get(k) != after.get(k):
            problems.append("%s UID %d: flags %s -> %s" % (
                k[0], k[1], sorted(before.get(k, ())),
                sorted(after.get(k, ()))))
    return problems


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
    """[(mountpoint, fstype, source, options)] from /proc/self/mountinfo;
    options joins the per-mount and the superblock options."""
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
        out.append((_unescape_mountinfo(parts[4]), parts[sep + 1],
                    _unescape_mountinfo(parts[sep + 2]), opts))
    return out


def mount_info(path):
    """(fstype, source, options) of the mount at path, or None."""
    path = os.path.abspath(path)
    found = None
    for mp, fstype, src, opts in mount_entries():
        if mp == path:
            found = (fstype, src, opts)  # the last one is on top
    return found


def is_imapfs_mounted(path):
    info = mount_info(path)
    return info is not None and info[0] == "fuse.imapfs"


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
        return self.wait_exit(timeout)

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


# ---------------------------------------------------------------------------
# Command line: demo and selftest

def cmd_demo(args):
    d = os.path.abspath(args.dir)
    state = os.path.join(d, "demo.json")
    if os.path.exists(state):
        cmd_demo_stop(args, quiet=True)
    workdir = os.path.join(d, "dovecot")
    if os.path.exists(workdir):
        shutil.rmtree(workdir)
    dc = Dovecot(workdir=workdir, keep=True)
    msgs = seed_core(dc, large=False)
    dc.start()
    pwfile = os.path.join(d, "password")
    fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(dc.password + "\n")
    info = {"url": dc.url("imaps"), "starttls_url": dc.url("imap"),
            "cafile": dc.cafile, "password_file": pwfile,
            "pidfile": dc._pidfile(), "dir": workdir,
            "ports": [dc.imap_port, dc.imaps_port], "messages": len(msgs)}
    with open(state, "w") as f:
        json.dump(info, f, indent=1)
    for k in ("url", "starttls_url", "cafile", "password_file"):
        print("IMAPFS_DEMO_%s=%s" % (k.upper(), shlex.quote(str(info[k]))))
    print("IMAPFS_DEMO_MESSAGES=%d" % len(msgs))
    return 0


def cmd_demo_stop(args, quiet=False):
    d = os.path.abspath(args.dir)
    state = os.path.join(d, "demo.json")
    try:
        with open(state) as f:
            info = json.load(f)
    except (OSError, ValueError):
        if not quiet:
            print("no demo server in %s" % d)
        return 0
    try:
        with open(info["pidfile"]) as f:
            pid = int(f.read().strip())
    except (OSError, ValueError):
        pid = None
    if pid and pid_alive(pid):
        children = descendants(pid)
        os.kill(pid, signal.SIGTERM)
        if not wait_for(lambda: not pid_alive(pid), 20):
            os.kill(pid, signal.SIGKILL)
        kill_all(children)
        if not quiet:
            print("stopped Dovecot (pid %d)" % pid)
    os.unlink(state)
    return 0


BUGGY_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int main(int argc, char **argv)
{
	char *lost = malloc(24); /* never freed: LeakSanitizer */

	strcpy(lost, "leak");
	lost = NULL;
	fprintf(stderr, "imapfs: critical: g_hash_table_insert: "
		"assertion 'hash_table != NULL' failed\n");
	if (argc > 1) /* signed overflow: UBSan, which stops here */
		printf("%d\n", 2147483600 + argc * 100);
	return 0;
}
"""


def check_bug_scan(t):
    """The bug scan catches what a sanitizer build reports: a real program
    built with ASan and UBSan, run with the daemon's environment, leaks and
    overflows; its reports and its GLib critical are found, and each only
    once."""
    cc = shutil.which("clang") or shutil.which("gcc")
    if not cc:
        t.check(False, "a C compiler for the bug scan selftest")
        return
    d = make_tempdir("imapfs-bugscan-")
    src, exe = os.path.join(d, "buggy.c"), os.path.join(d, "buggy")
    with open(src, "w") as f:
        f.write(BUGGY_C)
    r = run([cc, "-g", "-fsanitize=address,undefined", "-o", exe, src],
            check=False)
    if not t.check(r.returncode == 0, "the buggy program builds",
                   r.stderr.decode()[-500:]):
        return
    log_path = os.path.join(d, "buggy.log")
    scan = BugScan(log_path, os.path.join(d, "sanitizer"))
    t.equal(scan.new_reports(), [], "bug scan: nothing before the run")
    with open(log_path, "wb") as logf:
        for argv in ([exe], [exe, "overflow"]):
            subprocess.run(argv, env=sanitizer_env(os.environ, scan.prefix),
                           stdout=subprocess.DEVNULL, stderr=logf,
                           timeout=60)
    found = scan.new_reports()
    text = "\n".join(found)
    t.check(any(CRITICAL_RE.match(x) for x in found),
            "bug scan: the GLib critical is found", short(found, 600))
    t.check("runtime error:" in text and "LeakSanitizer" in text,
            "bug scan: the UBSan and LeakSanitizer reports are found",
            short(found, 600))
    t.equal(scan.new_reports(), [], "bug scan: each report only once")


def cmd_selftest(args):
    """Check the harness without the daemon: Dovecot starts, seeding works,
    the client sees folders, messages, flags and dates, STARTTLS works,
    APPEND works, stop and restart on the same ports work, the other
    certificates are made."""

    def body(t):
        check_bug_scan(t)
        dc = Dovecot()
        msgs = seed_core(dc)
        dc.start()
        t.check(True, "dovecot started on ports %d (STARTTLS) and %d "
                "(implicit TLS)" % (dc.imap_port, dc.imaps_port))
        with dc.client() as c:
            view = server_view(c)
            names = {f["name"] for f in view["folders"]}
            want = set(CORE_FOLDERS) | {"Archive"}
            t.equal(names, want, "LIST shows the core folders")
            arch = [f for f in view["folders"] if f["name"] == "Archive"]
            t.check(arch and not arch[0]["selectable"],
                    "Archive is a non-selectable parent",
                    short(arch))
            t.check(all(f["delim"] == "/" for f in view["folders"]),
                    "the delimiter is '/'")
            raw = {f["name"]: f["raw"] for f in view["folders"]}
            t.equal(raw.get("Entwürfe"), "Entw&APw-rfe",
                    "Entwürfe is Entw&APw-rfe on the wire")
            t.equal(raw.get("Q&A"), "Q&-A", "Q&A is Q&-A on the wire")
            t.equal(raw.get("日本語"), "&ZeVnLIqe-",
                    "日本語 is &ZeVnLIqe- on the wire")
            t.equal(mutf7_encode("日本語"), "&ZeVnLIqe-",
                    "mutf7_encode agrees with the RFC 3501 example")
            t.equal(mutf7_decode("&ZeVnLIqe-"), "日本語", "mutf7_decode")
            problems = []
            for m in msgs:
                md = view["messages"].get(m.folder, {}).get(m.uid)
                if md is None:
                    problems.append("%s UID %d (%s) missing" % (
                        m.folder, m.uid, m.key))
                    continue
                want_flags = frozenset(MAILDIR_FLAGS[c] for c in m.flags)
                if md["flags"] != want_flags:
                    problems.append("%s: flags %s, want %s" % (
                        m.key, sorted(md["flags"]), sorted(want_flags)))
                if md["date"] != m.date:
                    problems.append("%s: INTERNALDATE %d, want %d" % (
                        m.key, md["date"], m.date))
            t.all_ok("every seeded message has its UID, flags and "
                     "INTERNALDATE (%d messages)" % len(msgs), problems)
            t.equal(sum(len(v) for v in view["messages"].values()),
                    len(msgs), "no other messages")
            problems = []
            byuid = {(m.folder, m.uid): m for m in msgs}
            for f in view["folders"]:
                if not f["selectable"]:
                    continue
                for uid, b in c.fetch_bodies(f["raw"]):
                    m = byuid[(f["name"], uid)]
                    if b"X-Imapfs-Test: " + m.key.encode() not in b:
                        problems.append("%s UID %d is not %s" % (
                            f["name"], uid, m.key))
                    if view["messages"][f["name"]][uid]["size"] != len(b):
                        problems.append("%s: size differs" % m.key)
            t.all_ok("BODY.PEEK[] returns the seeded messages", problems)
            big = [m for m in msgs if m.key == "large"][0]
            t.check(len(big.data) > 5_000_000, "the large message is about "
                    "5 MB (%d bytes)" % len(big.data))
            before = c.flags_snapshot()
            c.append("Empty", b"Subject: appended\r\n\r\nhi\r\n", "(\\Seen)",
                     time.time())
            md = c.metadata("Empty")
            t.check(len(md) == 1 and "\\Seen" in list(md.values())[0]["flags"],
                    "APPEND works")
            after = c.flags_snapshot()
            t.equal(len(diff_flags(before, after)), 1,
                    "flags_snapshot sees exactly the appended message")
        with dc.client(starttls=True) as c:
            t.check(len(c.list_folders()) == len(view["folders"]),
                    "STARTTLS login works")
        # Dovecot counts a connection whose source and destination address
        # are equal as secured, so come from 127.0.0.2 to see the refusal.
        conn = PlainImapFrom("127.0.0.2", "127.0.0.1", dc.imap_port)
        try:
            conn.login(dc.user, dc.password)
            t.check(False, "plaintext login without STARTTLS is refused")
        except imaplib.IMAP4.error:
            t.check(True, "plaintext login without STARTTLS is refused")
        conn.shutdown()
        t.equal(login_security(dc), ["TLS"] * 2,
                "Dovecot logged two logins, both over TLS")
        ports = (dc.imap_port, dc.imaps_port)
        dc.stop()
        t.check(not port_open(ports[0]) and not port_open(ports[1]),
                "after stop the ports are closed")
        dc.start()
        with dc.client() as c:
            t.check(len(c.list_folders()) == len(view["folders"]),
                    "restart on the same ports works")
        for kind in ("selfsigned", "expired", "wronghost", "otherca"):
            dc.set_cert(kind)
            ctx = ssl.create_default_context(cafile=dc.cafile)
            try:
                with socket.create_connection(("localhost",
                                               dc.imaps_port), 10) as s:
                    with ctx.wrap_socket(s, server_hostname="localhost"):
                        pass
                t.check(False, "certificate '%s' is rejected by a client "
                        "trusting the test CA" % kind)
            except ssl.SSLCertVerificationError as e:
                t.check(True, "certificate '%s' is rejected by a client "
                        "trusting the test CA (%s)" % (kind,
                                                       e.verify_message))
        dc.set_cert("good")
        dc.set_tls("none")
        conn = imaplib.IMAP4("localhost", dc.imap_port, timeout=10)
        t.check("STARTTLS" not in conn.capabilities,
                "tls='none' offers no STARTTLS")
        conn.logout()
        dc.stop()
        home = dc.dir
        dc.destroy()
        t.check(not os.path.exists(home), "destroy removes the directory")

    Test("harness selftest").run(body, needs_fuse=False)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("demo", help="start a seeded Dovecot that keeps "
                       "running; prints shell variables")
    p.add_argument("--dir", required=True)
    p = sub.add_parser("demo-stop", help="stop the demo Dovecot")
    p.add_argument("--dir", required=True)
    sub.add_parser("selftest", help="check the harness alone")
    a = ap.parse_args(argv)
    if a.cmd == "demo":
        return cmd_demo(a)
    if a.cmd == "demo-stop":
        return cmd_demo_stop(a)
    return cmd_selftest(a)


if __name__ == "__main__":
    sys.exit(main())
