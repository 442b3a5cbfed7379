"""The Dovecot fixture: the real IMAP server the daemon tests mount.

A throwaway Dovecot in a temporary directory, with its own CA and server
certificate, a passwd-file user with a random password, an imap listener
(STARTTLS required) and an imaps listener on free loopback ports. It can be
stopped and started again on the same ports, and switched to other
certificates (self-signed, expired, wrong host, other CA) or to a plain
listener without STARTTLS. ImapClient is imaplib trusting the throwaway
CA: the reference the tests compare the mount with (LIST, BODY.PEEK[],
FLAGS by UID, APPEND).

Built on harness_core (processes, ports, cleanup); fill its mailbox with
harness_mail. Tests import it through imapfs_harness, which re-exports it.
"""

import datetime
import grp
import imaplib
import os
import pwd
import random
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import urllib.parse

from harness_core import (HAVE_IPV6, TestFailure, add_cleanup,
                          add_diagnostic, chown_tree, descendants, free_port,
                          kill_all, pid_alive, port_open, run, wait_for)
from harness_mail import mutf7_decode

TEST_USER = "imapfs-test"


# ---------------------------------------------------------------------------
# The system user that owns the test mailboxes

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
# Dovecot

class Dovecot:
    """A throwaway Dovecot. cert is one of 'good' (signed by self.ca for
    localhost and 127.0.0.1), 'selfsigned', 'expired', 'wronghost',
    'otherca'. tls is 'required' (STARTTLS required on the imap port, imaps
    on the other) or 'none' (plain imap without STARTTLS, no imaps)."""

    CERT_KINDS = ("good", "selfsigned", "expired", "wronghost", "otherca")

    def __init__(self, workdir=None, keep=False, cert="good", tls="required",
                 oauth_introspect=None):
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
        # Opt-in: an oauth2 passdb (XOAUTH2, OAUTHBEARER) asking this
        # introspection URL (harness_oauth.AuthServer) about tokens.
        self.oauth_introspect = oauth_introspect
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
            "auth_mechanisms = plain login{mechs}\n"
            "auth_verbose = yes\n"
            "first_valid_uid = {uid}\n"
            "mail_location = maildir:~/Maildir\n"
            "namespace inbox {{\n"
            "  inbox = yes\n"
            "  separator = /\n"
            "  prefix =\n"
            "}}\n"
            "{oauth}"
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
                 imap_port=self.imap_port, imaps=imaps,
                 mechs=" xoauth2 oauthbearer" if self.oauth_introspect
                 else "", oauth=self._oauth_conf())
        with open(self.conf, "w") as f:
            f.write(conf)

    def _oauth_conf(self):
        """The oauth2 passdb before the passwd-file one; no failure delay
        and no auth penalty, which would outlast the daemon's timeout."""
        if not self.oauth_introspect:
            return ""
        ext = os.path.join(self.dir, "oauth2.conf.ext")
        with open(ext, "w") as f:
            f.write("introspection_url = %s\n"
                    "introspection_mode = post\n"
                    "username_attribute = username\n"
                    "active_attribute = active\n"
                    "active_value = true\n"
                    "force_introspection = yes\n" % self.oauth_introspect)
        os.chmod(ext, 0o644)
        return ("auth_failure_delay = 0\n"
                "service anvil {\n"
                "  unix_listener anvil-auth-penalty {\n"
                "    mode = 0\n"
                "  }\n"
                "}\n"
                "passdb {\n"
                "  driver = oauth2\n"
                "  mechanisms = xoauth2 oauthbearer\n"
                "  args = %s\n"
                "}\n" % ext)

    def kick(self, user=None):
        """End every session of user on the server (doveadm kick), as a
        server does when a token expires."""
        return run(["doveadm", "-c", self.conf, "kick", user or self.user],
                   check=False)

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
