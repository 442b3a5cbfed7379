"""The other real servers: Cyrus IMAP 3.6 and Courier-IMAP 5.0 on loopback.

Both conflict with dovecot-imapd (all provide imap-server), so they are
never installed: fetch_server() downloads Debian's packages with
`apt-get download` (running `apt-get update` once when the package lists
are missing), adds the libraries they need that the system lacks, and
unpacks them with `dpkg -x` into a cache that outlives the test run
($IMAPFS_SERVERS_CACHE, default /var/cache/imapfs-test-servers as root).

Cyrus and Courier look like harness_dovecot.Dovecot to the rest of the
harness (user, password, cafile, imap_port with STARTTLS, imaps_port,
url(), client(), start(), stop()), serve certificates of the same kind of
throwaway CA, run as the test system user, and keep everything in a
temporary directory. Both use the namespace `INBOX.` with `.` as
delimiter; seed() fills them by APPEND. Courier's login library has fixed
paths under /etc/courier, so it runs in a private mount namespace (see
Courier); any FUSE mount copied into that namespace is detached at once,
so that unmounting imapfs later is not held up by Courier.

Which servers the suite runs: $IMAPFS_TEST_SERVERS, "ci" (default: a
subset per server), "all" (the full set), or "none" (skip them).
"""

import fcntl
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile

from harness_core import (Skip, TestFailure, add_cleanup, add_diagnostic,
                          chown_tree, descendants, free_port, kill_all, log,
                          pid_alive, port_open, run, wait_for)
from harness_dovecot import CertAuthority, ImapClient, ensure_test_user
from harness_mail import CORE_FOLDERS, MAILDIR_FLAGS, mutf7_encode

PACKAGES = {
    "cyrus": ["cyrus-common", "cyrus-imapd", "sasl2-bin"],
    "courier": ["courier-base", "courier-imap", "courier-authlib",
                "courier-authdaemon", "courier-authlib-userdb", "gamin"],
}
# A file that exists once a server's packages are unpacked.
MARKER = {"cyrus": "usr/lib/cyrus/bin/master",
          "courier": "usr/lib/courier/courier/imaplogin"}


def servers_mode():
    """'ci', 'all' or 'none', from $IMAPFS_TEST_SERVERS."""
    mode = os.environ.get("IMAPFS_TEST_SERVERS", "ci").strip().lower()
    if mode not in ("ci", "all", "none"):
        raise TestFailure("IMAPFS_TEST_SERVERS=%s: use ci, all or none"
                          % mode)
    return mode


def cache_root():
    root = os.environ.get("IMAPFS_SERVERS_CACHE")
    if root:
        return root
    if os.geteuid() == 0:
        return "/var/cache/imapfs-test-servers"
    return os.path.join(os.path.expanduser("~"), ".cache",
                        "imapfs-test-servers")


def _installed(pkg):
    r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg],
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    return r.stdout == b"install ok installed"


def _lib_depends(pkgs):
    """The library packages (lib*) that pkgs depend on, directly or
    through other libraries, and that are not installed here."""
    want, todo = set(), list(pkgs)
    while todo:
        r = run(["apt-cache", "depends", "--important"] + todo, check=False)
        todo = []
        for line in r.stdout.decode(errors="replace").splitlines():
            line = line.strip().lstrip("|")
            if not (line.startswith("Depends:") or
                    line.startswith("PreDepends:")):
                continue
            name = line.split(":", 1)[1].strip().split(":")[0]
            if (name.startswith("lib") and name not in want and
                    not _installed(name)):
                want.add(name)
                todo.append(name)
    return sorted(want)


def _apt_download(debs, pkgs):
    r = run(["apt-get", "download", "-q"] + pkgs, cwd=debs, timeout=600,
            check=False)
    return r.returncode == 0, r.stderr.decode(errors="replace")


def fetch_server(name):
    """Download and unpack a server's packages once; returns the prefix
    (its usr/ is what the packages hold)."""
    base = os.path.join(cache_root(), name)
    root = os.path.join(base, "root")
    if os.path.exists(os.path.join(root, MARKER[name])):
        return root
    os.makedirs(base, exist_ok=True)
    with open(os.path.join(base, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.exists(os.path.join(root, MARKER[name])):
            return root
        debs = os.path.join(base, "debs")
        shutil.rmtree(debs, ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)
        os.makedirs(debs)
        log("# fetching %s's packages into %s" % (name, base))
        ok, err = _apt_download(debs, PACKAGES[name])
        if not ok and os.geteuid() == 0:
            # A fresh system has no package lists yet.
            run(["apt-get", "update", "-q"], timeout=600, check=False)
            ok, err = _apt_download(debs, PACKAGES[name])
        if not ok:
            raise TestFailure("apt-get download of %s failed (run as root "
                              "on Debian 12, with the network): %s"
                              % (name, err.strip()[-1000:]))
        libs = _lib_depends(PACKAGES[name])
        if libs:
            ok, err = _apt_download(debs, libs)
            if not ok:
                raise TestFailure("apt-get download of %s failed: %s" % (
                    " ".join(libs), err.strip()[-1000:]))
        tmp = root + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        for deb in sorted(os.listdir(debs)):
            run(["dpkg", "-x", os.path.join(debs, deb), tmp], timeout=300)
        os.rename(tmp, root)
    return root


def folder_raw(name, prefix="INBOX.", delim="."):
    """The server name of a core folder ('/'-separated UTF-8)."""
    if name == "INBOX":
        return name
    return prefix + delim.join(mutf7_encode(p) for p in name.split("/"))


def seed(server, msgs, folders=CORE_FOLDERS, crlf=True):
    """Create the folders and APPEND msgs (harness_mail.Msg) in order;
    sets each Msg's uid (counted per folder, from 1). crlf: send bare LF
    as CRLF (Cyrus refuses bare LF)."""
    with server.client() as c:
        for f in folders:
            if f != "INBOX":
                c.create(folder_raw(f))
        count = {}
        for m in msgs:
            data = m.data
            if crlf:
                data = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
            flags = " ".join(MAILDIR_FLAGS[x] for x in m.flags)
            c.append(folder_raw(m.folder), data,
                     "(%s)" % flags if flags else "", m.date)
            count[m.folder] = count.get(m.folder, 0) + 1
            m.uid = count[m.folder]
    return msgs


def flat_name(name):
    """Where the default namespace mapping shows a server folder (a LIST
    name with '/' as delimiter): INBOX/X is shown as X."""
    return name[len("INBOX/"):] if name.startswith("INBOX/") else name


class _Server:
    """What Cyrus and Courier share: directory, user, certificates, ports,
    clients, cleanup."""

    name = "?"
    crlf_only = False
    pid = None
    mntns = None

    def __init__(self):
        self.uid, self.gid = ensure_test_user()
        if os.geteuid() != 0:
            raise Skip("%s runs only as root" % self.name)
        self.root = fetch_server(self.name)
        self.dir = tempfile.mkdtemp(prefix="imapfs-%s-" % self.name)
        os.chmod(self.dir, 0o755)
        self.user = "test"
        self.password = "pw" + secrets.token_hex(12)
        self.imap_port = free_port()
        self.imaps_port = free_port()
        self.ca = CertAuthority(os.path.join(self.dir, "certs", "ca"))
        self.cafile = self.ca.cert
        self.cert, self.key = self.ca.issue("server")
        self.log_dir = os.path.join(self.dir, "log")
        os.makedirs(self.log_dir)
        self._cleanup = add_cleanup(self.destroy)
        add_diagnostic(lambda: "--- %s logs, last lines:\n%s" % (
            self.name, self.log_tail()))

    def ports(self):
        return [self.imap_port, self.imaps_port]

    def log_tail(self, lines=20):
        out = []
        for n in sorted(os.listdir(self.log_dir)) if os.path.isdir(
                self.log_dir) else []:
            with open(os.path.join(self.log_dir, n), errors="replace") as f:
                tail = f.readlines()[-lines:]
            if tail:
                out.append("%s:\n%s" % (n, "".join(tail)))
        return "\n".join(out) or "(no log)"

    def log_text(self):
        out = []
        for n in sorted(os.listdir(self.log_dir)):
            with open(os.path.join(self.log_dir, n), errors="replace") as f:
                out.append(f.read())
        return "\n".join(out)

    def _wait_ports(self, timeout):
        if not wait_for(lambda: all(port_open(p) for p in self.ports()),
                        timeout):
            raise TestFailure("%s did not accept connections on %s within "
                              "%ds:\n%s" % (self.name, self.ports(), timeout,
                                            self.log_tail()))

    def destroy(self):
        try:
            self.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def url(self, mode="imaps", user=None, host="localhost", port=None):
        if port is None:
            port = self.imaps_port if mode == "imaps" else self.imap_port
        return "%s://%s@%s:%d" % (mode, user or self.user, host, port)

    def client(self, **kw):
        return ImapClient(self, **kw)

    def seed(self, msgs, folders=CORE_FOLDERS):
        return seed(self, msgs, folders, crlf=self.crlf_only)


class Cyrus(_Server):
    """Debian's Cyrus IMAP 3.6 with Debian's namespace (INBOX., '.'),
    idled for immediate IDLE, a private sasldb for the test user."""

    name = "cyrus"
    crlf_only = True

    def __init__(self):
        super().__init__()
        self.bin = os.path.join(self.root, "usr/lib/cyrus/bin")
        d = self.dir
        for sub in ("conf/socket", "spool", "sieve", "run/proc", "run/lock"):
            os.makedirs(os.path.join(d, sub))
        shutil.copy(self.cert, os.path.join(d, "cert.pem"))
        shutil.copy(self.key, os.path.join(d, "key.pem"))
        self.conf = os.path.join(d, "imapd.conf")
        with open(self.conf, "w") as f:
            f.write(
                "configdirectory: {d}/conf\ndefaultpartition: default\n"
                "partition-default: {d}/spool\nproc_path: {d}/run/proc\n"
                "mboxname_lockpath: {d}/run/lock\nsievedir: {d}/sieve\n"
                "servername: localhost\ncyrus_user: {u}\n"
                "altnamespace: no\nunixhierarchysep: no\n"
                "autocreate_quota: 0\nallowplaintext: yes\n"
                "sasl_pwcheck_method: auxprop\nsasl_auxprop_plugin: sasldb\n"
                "sasl_sasldb_path: {d}/sasldb2\n"
                "sasl_mech_list: PLAIN LOGIN\n"
                "tls_server_cert: {d}/cert.pem\n"
                "tls_server_key: {d}/key.pem\n"
                "umask: 077\nsyslog_prefix: imapfs-cyrus\n".format(
                    d=d, u=pwd_name(self.uid)))
        with open(os.path.join(d, "cyrus.conf"), "w") as f:
            f.write(
                'START {{\n  recover cmd="{b}/ctl_cyrusdb -C {c} -r"\n}}\n'
                'SERVICES {{\n'
                '  imap cmd="{b}/imapd -C {c}" listen="127.0.0.1:{p}" '
                'prefork=0 maxchild=50\n'
                '  imaps cmd="{b}/imapd -C {c} -s" listen="127.0.0.1:{ps}" '
                'prefork=0 maxchild=50\n}}\n'
                'EVENTS {{\n  checkpoint cmd="{b}/ctl_cyrusdb -C {c} -c" '
                'period=30\n}}\n'
                'DAEMON {{\n  idled cmd="{b}/idled -C {c}"\n}}\n'.format(
                    b=self.bin, c=self.conf, p=self.imap_port,
                    ps=self.imaps_port))
        p = subprocess.run(
            [os.path.join(self.root, "usr/sbin/saslpasswd2"), "-f",
             os.path.join(d, "sasldb2"), "-u", "localhost", "-p", "-c",
             self.user], input=self.password.encode(), env=self.env(),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
        if p.returncode != 0:
            raise TestFailure("saslpasswd2 failed: %s" % p.stdout.decode(
                errors="replace"))
        os.chmod(os.path.join(d, "sasldb2"), 0o600)
        for n in ("conf", "spool", "sieve", "run", "sasldb2", "cert.pem",
                  "key.pem"):
            chown_tree(os.path.join(d, n), self.uid, self.gid)
        self.pidfile = os.path.join(d, "run", "master.pid")

    def env(self):
        lib = os.path.join(self.root, "usr/lib/x86_64-linux-gnu")
        return dict(os.environ, LD_LIBRARY_PATH=lib)

    def start(self, timeout=30):
        run([os.path.join(self.bin, "master"), "-C", self.conf, "-M",
             os.path.join(self.dir, "cyrus.conf"), "-p", self.pidfile,
             "-L", os.path.join(self.log_dir, "master.log"), "-d"],
            env=self.env(), timeout=timeout)
        self._wait_ports(timeout)
        wait_for(lambda: os.path.exists(self.pidfile), 5)
        with open(self.pidfile) as f:
            self.pid = int(f.read().strip())

    def stop(self):
        if not self.pid or not pid_alive(self.pid):
            return
        children = descendants(self.pid)
        os.kill(self.pid, signal.SIGTERM)
        if not wait_for(lambda: not pid_alive(self.pid), 10):
            os.kill(self.pid, signal.SIGKILL)
        kill_all(children + descendants(self.pid))
        self.pid = None


def pwd_name(uid):
    import pwd
    return pwd.getpwuid(uid).pw_name


class Courier(_Server):
    """Debian's Courier-IMAP 5.0 in a private mount namespace: there /usr
    and /etc are read-only overlays that add the unpacked packages and a
    generated /etc/courier (userdb with the test user, imapd settings,
    "courier" as a second name of the test system user), and /run is a
    directory of the instance. Maildir++ in DIR/mail/Maildir."""

    name = "courier"

    def __init__(self, enhanced_idle=True):
        super().__init__()
        d = self.dir
        etc = os.path.join(d, "etc")
        os.makedirs(os.path.join(etc, "courier"))
        os.makedirs(os.path.join(d, "run/courier/authdaemon"))
        self.maildir = os.path.join(d, "mail", "Maildir")
        for s in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(self.maildir, s))
        chown_tree(os.path.join(d, "mail"), self.uid, self.gid)
        pem = os.path.join(etc, "courier", "imapd.pem")
        with open(pem, "w") as out:
            for p in (self.key, self.cert):
                with open(p) as f:
                    out.write(f.read())
        os.chmod(pem, 0o600)
        os.chown(pem, self.uid, self.gid)
        run(["openssl", "genpkey", "-genparam", "-algorithm", "DH",
             "-pkeyopt", "group:ffdhe2048", "-out",
             os.path.join(etc, "courier", "dhparams.pem")])
        with open("/etc/passwd") as f:
            pw = [x for x in f if not x.startswith("courier:")]
        with open("/etc/group") as f:
            gr = [x for x in f if not x.startswith("courier:")]
        with open(os.path.join(etc, "passwd"), "w") as f:
            f.writelines(pw + ["courier:x:%d:%d::/nonexistent:/bin/false\n"
                               % (self.uid, self.gid)])
        with open(os.path.join(etc, "group"), "w") as f:
            f.writelines(gr + ["courier:x:%d:\n" % self.gid])
        self._write_etc(etc, enhanced_idle)
        self.pidfiles = [os.path.join(d, "run", n) for n in
                         ("imapd.pid", "imapd-ssl.pid", "authdaemond.pid")]

    def _write_etc(self, etc, enhanced_idle):
        c = os.path.join(etc, "courier")
        hashed = run(["openssl", "passwd", "-6", "-stdin"], stdin=None,
                     input=self.password.encode()).stdout.decode().strip()
        with open(os.path.join(c, "authdaemonrc"), "w") as f:
            f.write('authmodulelist="authuserdb"\ndaemons=3\n'
                    'authdaemonvar=/run/courier/authdaemon\nDEBUG_LOGIN=0\n'
                    'DEFAULTOPTIONS=""\nLOGGEROPTS=""\n')
        with open(os.path.join(c, "userdb"), "w") as f:
            f.write("%s\tuid=%d|gid=%d|home=%s|mail=%s|shell=/bin/false|"
                    "systempw=%s\n" % (self.user, self.uid, self.gid,
                                       os.path.dirname(self.maildir),
                                       self.maildir, hashed))
        os.chmod(os.path.join(c, "userdb"), 0o600)
        caps = ("IMAP4rev1 UIDPLUS CHILDREN NAMESPACE THREAD=ORDEREDSUBJECT "
                "THREAD=REFERENCES SORT QUOTA IDLE")
        with open(os.path.join(c, "imapd"), "w") as f:
            f.write('IMAP_CAPABILITY="%s"\n'
                    'IMAP_CAPABILITY_TLS="$IMAP_CAPABILITY AUTH=PLAIN"\n'
                    "IMAP_KEYWORDS=1\nIMAP_ACL=1\nIMAP_PROXY=0\n"
                    "IMAP_IDLE_TIMEOUT=60\nIMAP_MAILBOX_SANITY_CHECK=1\n"
                    "IMAP_CHECK_ALL_FOLDERS=0\nIMAP_UMASK=022\n"
                    "IMAP_ULIMITD=131072\nIMAP_USELOCKS=1\n"
                    "IMAP_ENHANCEDIDLE=%d\nIMAP_TRASHFOLDERNAME=Trash\n"
                    "IMAP_EMPTYTRASH=Trash:7\nHEADERFROM=X-IMAP-Sender\n"
                    "MAILDIRPATH=Maildir\n" % (caps, 1 if enhanced_idle
                                               else 0))
        with open(os.path.join(c, "imapd-ssl"), "w") as f:
            f.write("IMAP_TLS_REQUIRED=0\nCOURIERTLS=/usr/bin/couriertls\n"
                    "TLS_CERTFILE=/etc/courier/imapd.pem\n"
                    "TLS_DHPARAMS=/etc/courier/dhparams.pem\n"
                    "TLS_TRUSTCERTS=/etc/ssl/certs/ca-certificates.crt\n"
                    "TLS_VERIFYPEER=NONE\nTLS_CACHEFILE=/run/courier/tlscache\n"
                    "TLS_CACHESIZE=524288\n")

    def _script(self):
        d, r, log = self.dir, self.root, self.log_dir
        tcpd = ("/usr/sbin/couriertcpd -address=127.0.0.1 -maxprocs=40 "
                "-maxperip=40 -nodnslookup -noidentlookup")
        return "\n".join([
            "set -eu",
            # FUSE mounts copied from the parent namespace would keep their
            # daemons alive after fusermount3 -u there: detach them here.
            "awk '$9 ~ /^fuse/ {print $5}' /proc/self/mountinfo | "
            "while read -r m; do umount -l \"$(printf '%b' \"$m\")\" "
            "2>/dev/null || true; done",
            "mount -t overlay imapfs-courier-usr -o lowerdir=%s/usr:/usr /usr"
            % r,
            "mount -t overlay imapfs-courier-etc -o lowerdir=%s/etc:/etc /etc"
            % d,
            "mount --bind %s/run /run" % d,
            "export PATH=/usr/sbin:/usr/bin:/sbin:/bin",
            "/usr/sbin/makeuserdb -f %s/etc/courier/userdb" % d,
            "/usr/lib/courier/courier-authlib/authdaemond </dev/null "
            ">>%s/authdaemond.log 2>&1 &" % log,
            "echo $! > /run/authdaemond.pid",
            "for i in $(seq 50); do [ -S /run/courier/authdaemon/socket ] "
            "&& break; sleep 0.1; done",
            "set -a; . /etc/courier/imapd; . /etc/courier/imapd-ssl; set +a",
            "ulimit -v $IMAP_ULIMITD; umask $IMAP_UMASK",
            ": > /run/courier/tlscache; chown courier:courier "
            "/run/courier/tlscache",
            "IMAP_STARTTLS=YES %s -pid=/run/imapd.pid -stderr=%s/imapd.log "
            "%d /usr/lib/courier/courier/imaplogin /usr/bin/imapd Maildir"
            % (tcpd, log, self.imap_port),
            "IMAP_TLS=1 IMAP_STARTTLS=NO %s -pid=/run/imapd-ssl.pid "
            "-stderr=%s/imapd-ssl.log %d /usr/bin/couriertls -server -tcpd "
            "-user=courier /usr/lib/courier/courier/imaplogin /usr/bin/imapd "
            "Maildir" % (tcpd, log, self.imaps_port), ""])

    def start(self, timeout=30):
        script = os.path.join(self.dir, "ns-start.sh")
        with open(script, "w") as f:
            f.write(self._script())
        r = run(["setsid", "unshare", "--mount", "--propagation", "private",
                 "sh", script], timeout=timeout, check=False)
        if r.returncode != 0:
            raise TestFailure("courier did not start: %s" % (
                r.stdout + r.stderr).decode(errors="replace")[-2000:])
        self._wait_ports(timeout)
        wait_for(lambda: os.path.exists(self.pidfiles[0]), 5)
        with open(self.pidfiles[0]) as f:
            self.mntns = os.readlink("/proc/%s/ns/mnt" % f.read().strip())

    def _ns_pids(self):
        out = []
        for p in os.listdir("/proc"):
            if p.isdigit():
                try:
                    if os.readlink("/proc/%s/ns/mnt" % p) == self.mntns:
                        out.append(int(p))
                except OSError:
                    pass
        return out

    def stop(self):
        if not self.mntns:
            return
        pids = []
        for pf in self.pidfiles:
            try:
                with open(pf) as f:
                    pids.append(int(f.read().strip()))
                os.unlink(pf)
            except (OSError, ValueError):
                pass
        kill_all(pids)
        kill_all(self._ns_pids())
        self.mntns = None


SERVERS = {"cyrus": Cyrus, "courier": Courier}


if __name__ == "__main__":
    # harness_servers.py fetch [cyrus] [courier]: fill the package cache.
    if len(sys.argv) >= 2 and sys.argv[1] == "fetch":
        for n in sys.argv[2:] or sorted(SERVERS):
            print(fetch_server(n))
    else:
        sys.exit("usage: harness_servers.py fetch [cyrus] [courier]")
