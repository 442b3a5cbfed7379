#!/usr/bin/env python3
"""test_accounts: named accounts from one config file, against a real
Dovecot and real mounts.

- Three accounts in ~/.config/imapfs/config (HOME is a temporary
  directory; XDG_* unset, so every default path is exercised): "work" and
  "home" name the same server and user, "odd" another user. "work" and
  "home" are mounted at once with `imapfs NAME` (detached), each at its
  configured mountpoint and with its own cache directory (so they never
  share the cache's lock), and every file of both equals the server's
  bytes. `imapfs --accounts` says where each is mounted.
- A command-line directory overrides the mountpoint: `imapfs odd DIR`.
- fstab: `mount -T ALTFSTAB MOUNTPOINT` with the lines
  `work MP fuse.imapfs noauto,user,_netdev 0 0` and one with
  `config=FILE`; mount(8) runs mount.fuse3, which runs `imapfs NAME MP -o
  ...` found through PATH (a symlink in /usr/local/bin made here and
  removed afterwards); umount ends the daemon.
- systemd: the ExecStart line of the built imapfs@.service, %i replaced,
  run as systemd would: a Type=notify unit gets READY=1 only once the
  mount is up, the messages go to stderr (the journal), and the unit's
  KillSignal (SIGTERM) unmounts; a Type=forking one returns once mounted.
  (systemd --user cannot run where PID 1 is not systemd, as in CI's
  containers, so the unit's lines are run directly.)
- Detached, the daemon logs to syslog with facility LOG_DAEMON (checked
  on a /dev/log socket of the test's own, where none exists).
- OAuth options come from the file too: `imapfs --authorize NAME` (an
  account without a mountpoint) and `imapfs NAME DIR`, with the client
  secret that only the file may hold, against Dovecot's oauth2 passdb and
  harness_oauth's authorization server; no secret in any output.
"""

import os
import shlex
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import imapfs_harness as h  # noqa: E402
from harness_oauth import AuthServer  # noqa: E402

MARK = "IMAPFS_TEST_ACCOUNTS"


class Env:
    """The temporary HOME with the config file, and the daemons started
    from it (marked in their environment, so cleanup finds them)."""

    def __init__(self, dc):
        self.dc = dc
        self.root = h.make_tempdir("imapfs-accounts-", 0o755)
        self.home = os.path.join(self.root, "home")
        self.log_path = os.path.join(self.root, "imapfs.log")
        self.sanitizer_prefix = os.path.join(self.root, "sanitizer")
        self.scan = h.BugScan(self.log_path, self.sanitizer_prefix)
        self.mountpoints = []
        os.makedirs(os.path.join(self.home, ".config", "imapfs"))
        h.add_cleanup(self.cleanup)

    def mountpoint(self, name):
        p = os.path.join(self.home, name)
        os.makedirs(p, exist_ok=True)
        self.mountpoints.append(p)
        return p

    def secret_file(self, name, text):
        p = os.path.join(self.root, name)
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text + "\n")
        return p

    def write_config(self, text, path=None):
        path = path or os.path.join(self.home, ".config", "imapfs", "config")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        return path

    def environ(self, **extra):
        env = dict(os.environ)
        for k in ("IMAPFS_PASSWORD", "XDG_CONFIG_HOME", "XDG_CACHE_HOME",
                  "XDG_DATA_HOME", "NOTIFY_SOCKET"):
            env.pop(k, None)
        env["HOME"] = self.home
        env[MARK] = self.root
        env.update(extra)
        return h.sanitizer_env(env, self.sanitizer_prefix)

    def run(self, args, timeout=40, **kw):
        """imapfs ARGS with this HOME; (rc, stdout, stderr)."""
        with open(self.log_path, "ab") as log:
            r = subprocess.run([h.imapfs_bin()] + list(args),
                               env=self.environ(), stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               timeout=timeout, **kw)
            log.write(r.stderr)
        return (r.returncode, r.stdout.decode(errors="replace"),
                r.stderr.decode(errors="replace"))

    def daemons(self):
        """Pids of the imapfs processes started from this environment."""
        pids = []
        want = ("%s=%s" % (MARK, self.root)).encode()
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open("/proc/%s/environ" % d, "rb") as f:
                    env = f.read().split(b"\0")
                with open("/proc/%s/comm" % d, "rb") as f:
                    comm = f.read().strip()
            except OSError:
                continue
            if want in env and comm == b"imapfs" and h.pid_alive(int(d)):
                pids.append(int(d))
        return pids

    def cleanup(self):
        for mp in self.mountpoints:
            h.force_unmount(mp)
        pids = self.daemons()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for pid in pids:
            if not h.wait_for(lambda: not h.pid_alive(pid), 10):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for line in self.scan.new_reports():
            h._bug_reports.append("accounts: %s" % line)


class MountView:
    def __init__(self, mountpoint):
        self.mountpoint = mountpoint


def check_bytes(t, mp, view, bodies, label):
    files = h.compare_tree(t, MountView(mp), view)
    problems = ["%s %d: wrong bytes" % k for k, p in sorted(files.items())
                if h.read_file(p) != bodies[k]]
    t.all_ok("%s: every file holds the server's bytes (%d files)" % (
        label, len(files)), problems)


def wait_unmounted(t, e, mp, label):
    gone = h.wait_for(lambda: h.mount_info(mp) is None, 20)
    t.check(gone, "%s: %s is unmounted" % (label, mp))


def accounts_part(t, e, view, bodies):
    dc = e.dc
    pw = e.secret_file("pw", dc.password)
    odd_pw = e.secret_file("odd-pw", dc.extra_users["odd@example.org"])
    mp_work, mp_home = e.mountpoint("work-mail"), e.mountpoint("home-mail")
    mp_odd = e.mountpoint("odd-mail")
    e.write_config(
        "# three accounts; work and home are one server and user\n"
        "[work]\n"
        "url = %s\n"
        "mountpoint = ~/work-mail\n"
        "password-file = %s\n"
        "cafile = %s\n"
        "connections = 2\n"
        "\n"
        "[home]\n"
        "url = %s\n"
        "mountpoint = %s\n"
        "password-command = cat %s\n"
        "cafile = %s\n"
        "\n"
        "[odd]\n"
        "url = %s\n"
        "password-file = %s\n"
        "cafile = %s\n" % (
            dc.url("imaps"), pw, dc.cafile,
            dc.url("imap"), mp_home, pw, dc.cafile,
            dc.url("imaps", user="odd@example.org"), odd_pw, dc.cafile))

    for name in ("work", "home"):
        rc, out, err = e.run([name])
        t.check(rc == 0, "imapfs %s: mounts and detaches (exit 0)" % name,
                "exit %s: %s" % (rc, err.strip()[-1500:]))
    t.require(h.is_imapfs_mounted(mp_work) and h.is_imapfs_mounted(mp_home),
              "both accounts are mounted at once at their mountpoints")
    for name, mp in (("work", mp_work), ("home", mp_home)):
        info = h.mount_info(mp)
        t.equal(info[1], name, "%s: the mount's source (fsname) is the "
                "account's name" % name)
        check_bytes(t, mp, view, bodies, name)
    cache = os.path.join(e.home, ".cache", "imapfs")
    t.equal(sorted(n for n in os.listdir(cache)),
            ["home", "work"],
            "each account has its own cache directory under "
            "~/.cache/imapfs")
    for name in ("home", "work"):
        subs = os.listdir(os.path.join(cache, name))
        t.check(len(subs) == 1 and os.path.exists(
            os.path.join(cache, name, subs[0], "folders")),
            "%s: its cache holds one account tree (its own lock)" % name,
            str(subs))

    rc, out, err = e.run(["--accounts"])
    t.equal(rc, 0, "--accounts: exit 0")
    t.equal(out.splitlines(), [
        "work  mounted on %s" % mp_work,
        "home  mounted on %s" % mp_home,
        "odd   not mounted (mountpoint: none)"],
        "--accounts: where each account is mounted now")

    # A directory on the command line overrides the (missing) mountpoint.
    rc, out, err = e.run(["odd", mp_odd, "--connections=1"])
    t.check(rc == 0 and h.is_imapfs_mounted(mp_odd),
            "imapfs odd DIR: mounts at DIR", "exit %s: %s" % (rc, err))
    if rc == 0:
        check_bytes(t, mp_odd, view, bodies, "odd")
    rc, out, err = e.run(["--accounts"])
    t.check("odd   mounted on %s" % mp_odd in out.splitlines(),
            "--accounts: odd is mounted on DIR", out)

    # The same account again, elsewhere: named at once, with where.
    again = e.mountpoint("again")
    rc, out, err = e.run(["work", again])
    t.check(rc == 1 and err.strip() == "imapfs: work is already mounted on "
            "%s; unmount it first with fusermount3 -u %s" % (mp_work,
                                                            mp_work),
            "imapfs work DIR while work is mounted: says where it is "
            "mounted", "exit %s: %r" % (rc, err.strip()))

    rc, out, err = e.run(["nosuch"])
    t.check(rc == 1 and "no account \"nosuch\"; the accounts are: work, "
            "home, odd" in err, "an unknown account names the known ones",
            err)

    for mp in (mp_work, mp_home, mp_odd):
        h.run(["fusermount3", "-u", mp], check=False)
        wait_unmounted(t, e, mp, "fusermount3 -u")
    t.check(h.wait_for(lambda: not e.daemons(), 20),
            "every daemon has ended after the unmounts")


def link_on_path(t):
    """/usr/local/bin/imapfs -> the build, as mount(8) needs; removed (and
    whatever was there put back) at cleanup."""
    link = "/usr/local/bin/imapfs"
    backup = None
    if os.path.lexists(link):
        backup = link + ".test-accounts-%d" % os.getpid()
        os.rename(link, backup)
    os.makedirs("/usr/local/bin", exist_ok=True)
    os.symlink(h.imapfs_bin(), link)

    def restore():
        try:
            os.unlink(link)
        except OSError:
            pass
        if backup:
            os.rename(backup, link)
    h.add_cleanup(restore)


def fstab_part(t, e):
    if os.geteuid() != 0:
        h.log("# fstab: skipped, mount -T needs root here")
        return
    link_on_path(t)
    mp = e.mountpoint("fstab-mail")
    mp2 = e.mountpoint("fstab-other")
    alt_conf = e.write_config(
        "[other]\nurl = %s\nmountpoint = %s\npassword-file = %s\n"
        "cafile = %s\n" % (e.dc.url("imaps"), mp2,
                            os.path.join(e.root, "pw"), e.dc.cafile),
        path=os.path.join(e.root, "other.conf"))
    fstab = os.path.join(e.root, "fstab")
    with open(fstab, "w") as f:
        f.write("work %s fuse.imapfs noauto,user,_netdev 0 0\n"
                "other %s fuse.imapfs noauto,nofail,config=%s 0 0\n"
                % (mp, mp2, alt_conf))
    # mount(8) gives helpers no PATH (sh's default has /usr/local/bin) and
    # the HOME of the password database: the config is found through
    # XDG_CONFIG_HOME, which it keeps (as it keeps XDG_CACHE_HOME, so that
    # nothing is written under root's real home).
    env = e.environ(XDG_CONFIG_HOME=os.path.join(e.home, ".config"),
                    XDG_CACHE_HOME=os.path.join(e.root, "fstab-cache"))
    for target in (mp, mp2):
        r = subprocess.run(["mount", "-T", fstab, target], env=env,
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=60)
        out = r.stdout.decode(errors="replace")
        with open(e.log_path, "ab") as log:
            log.write(r.stdout)
        t.check(r.returncode == 0 and h.is_imapfs_mounted(target),
                "fstab: mount -T FSTAB %s mounts it" % target,
                "exit %d: %s" % (r.returncode, out.strip()))
    t.check(os.path.isdir(os.path.join(e.root, "fstab-cache", "imapfs",
                                       "work")),
            "fstab: the account's cache is under XDG_CACHE_HOME")
    info = h.mount_info(mp)
    if info:
        t.equal(info[1], "work", "fstab: the source is the account name")
        t.check("ro" in info[2] and "nosuid" in info[2] and
                "nodev" in info[2],
                "fstab: mounted ro, and nosuid,nodev from mount(8) reached "
                "FUSE", str(info[2]))
        with e.dc.client() as client:
            folder = "INBOX"
            want = dict(client.fetch_bodies(folder))
        files = h.list_message_files(os.path.join(mp, folder))
        problems = [str(u) for u, n in files.items()
                    if h.read_file(os.path.join(mp, folder, n)) != want.get(u)]
        t.all_ok("fstab: INBOX reads the server's bytes (%d files)"
                 % len(files), problems)
    for target in (mp, mp2):
        r = subprocess.run(["umount", target], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=30)
        t.check(r.returncode == 0, "fstab: umount %s" % target,
                r.stdout.decode(errors="replace"))
        wait_unmounted(t, e, target, "umount")
    t.check(h.wait_for(lambda: not e.daemons(), 20),
            "fstab: the daemons end after umount")


def unit_lines():
    """{key: value} of the [Service] section of the built unit."""
    build = os.path.dirname(os.path.dirname(h.imapfs_bin()))
    path = os.path.join(build, "doc", "imapfs@.service")
    svc = {}
    section = None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("["):
                section = line
            elif section == "[Service]":
                k, v = line.split("=", 1)
                svc[k.strip()] = v.strip()
    return path, svc


def notify_socket(e):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = os.path.join(e.root, "notify")
    sock.bind(path)
    sock.settimeout(0.2)
    h.add_cleanup(sock.close)
    return sock, path


def read_notices(sock, until, timeout):
    """Notices received until one contains `until` (or timeout)."""
    got = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            got.append(sock.recv(4096).decode(errors="replace"))
        except socket.timeout:
            continue
        if until in got[-1]:
            break
    return got


def systemd_part(t, e):
    path, svc = unit_lines()
    h.log("# unit %s: %s" % (path, svc))
    argv = shlex.split(svc["ExecStart"].replace("%i", "work"))
    t.check(os.path.basename(argv[0]) == "imapfs" and
            os.path.isabs(argv[0]), "the unit runs imapfs by its full path",
            argv[0])
    t.check("ExecStop" not in svc, "the unit stops by signal (no ExecStop)")
    argv[0] = h.imapfs_bin()
    mp = os.path.join(e.home, "work-mail")
    kill = getattr(signal, svc.get("KillSignal", "SIGTERM"))
    stype = svc.get("Type", "simple")
    t.check(stype in ("notify", "forking"), "the unit is Type=notify or "
            "forking", stype)
    sock, sock_path = notify_socket(e)
    log = open(e.log_path, "ab")
    proc = subprocess.Popen(argv, env=e.environ(NOTIFY_SOCKET=sock_path),
                            stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                            start_new_session=True)
    h.add_cleanup(log.close)
    if stype == "notify":
        notices = read_notices(sock, "READY=1", 40)
        ready = any("READY=1" in n for n in notices)
        mounted = h.is_imapfs_mounted(mp)
        t.check(ready and mounted, "systemd: READY=1 once %s is mounted"
                % mp, "notices %s, mounted %s" % (notices, mounted))
        t.check(any("STATUS=mounted work on %s" % mp in n for n in notices),
                "systemd: STATUS names the account and mount point",
                str(notices))
        pid = proc.pid
    else:
        rc = proc.wait(timeout=40)
        t.check(rc == 0 and h.is_imapfs_mounted(mp),
                "systemd: the forking start returns once mounted")
        pids = e.daemons()
        pid = pids[0] if pids else None
    if h.is_imapfs_mounted(mp):
        check_bytes_light(t, mp)
    if pid:
        os.kill(pid, kill)
    if stype == "notify":
        try:
            rc = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            rc = None
        t.equal(rc, 0, "systemd: the stop signal ends imapfs, exit 0")
        notices = read_notices(sock, "STOPPING=1", 5)
        t.check(any("STOPPING=1" in n for n in notices),
                "systemd: STOPPING=1 on stop", str(notices))
    wait_unmounted(t, e, mp, "systemd stop")
    log.flush()
    with open(e.log_path, "rb") as f:
        text = f.read().decode(errors="replace")
    if stype == "notify":
        t.check("imapfs: mounted %s on %s" % (e.dc.url("imaps"), mp) in text,
                "systemd: the messages go to stderr, the journal")


def check_bytes_light(t, mp):
    inbox = os.path.join(mp, "INBOX")
    files = h.list_message_files(inbox)
    t.check(len(files) > 0 and all(
        len(h.read_file(os.path.join(inbox, n))) > 0
        for n in files.values()), "the unit's mount reads INBOX (%d files)"
        % len(files))


def syslog_part(t, e):
    """A detached daemon logs to /dev/log with facility LOG_DAEMON."""
    if os.path.lexists("/dev/log") or os.geteuid() != 0:
        h.log("# syslog: skipped, /dev/log exists (a real syslog) or not "
              "root")
        return
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("/dev/log")
    h.add_cleanup(lambda: os.path.lexists("/dev/log") and
                  os.unlink("/dev/log"))
    h.add_cleanup(sock.close)
    sock.settimeout(0.2)
    mp = os.path.join(e.home, "work-mail")
    rc, out, err = e.run(["work"])
    t.check(rc == 0 and h.is_imapfs_mounted(mp), "syslog: imapfs work "
            "mounts detached", err)
    got = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            msg = sock.recv(8192).decode(errors="replace")
        except socket.timeout:
            continue
        got.append(msg)
        if "mounted %s on %s" % (e.dc.url("imaps"), mp) in msg:
            break
    hit = [m for m in got if "mounted %s on %s" % (e.dc.url("imaps"), mp)
           in m]
    # <30>: facility LOG_DAEMON (3 << 3) | LOG_INFO (6).
    t.check(hit and hit[0].startswith("<30>") and "imapfs[" in hit[0],
            "syslog: 'mounted ...' arrives on /dev/log as daemon.info "
            "with the pid", str(got[-3:]))
    h.run(["fusermount3", "-u", mp], check=False)
    wait_unmounted(t, e, mp, "syslog")


def oauth_part(t, e, server):
    """OAuth options from the config file, with no code of the config's
    own: a client secret (accepted only from the file), --authorize NAME
    for an account without a mountpoint, then imapfs NAME DIR."""
    server.device_script = []
    mp = e.mountpoint("oauth-mail")
    e.write_config(
        "[mail]\n"
        "url = %s\n"
        "cafile = %s\n"
        "auth = xoauth2\n"
        "oauth-token-url = %s\n"
        "oauth-device-url = %s\n"
        "oauth-client-id = %s\n"
        "oauth-client-secret = %s\n" % (
            e.dc.url("imaps"), e.dc.cafile, server.url("/token"),
            server.url("/device"), server.client_id, server.client_secret))
    rc, out, err = e.run(["--authorize", "mail"], timeout=120)
    t.check(rc == 0, "oauth: imapfs --authorize NAME signs in (exit 0)",
            "exit %s: %s" % (rc, err.strip()[-800:]))
    rc, out2, err2 = e.run(["mail", mp])
    t.check(rc == 0 and h.is_imapfs_mounted(mp),
            "oauth: imapfs NAME DIR mounts with the saved refresh token and "
            "the file's client secret", "exit %s: %s" % (rc, err2))
    if rc == 0:
        check_bytes_light(t, mp)
    texts = [out, err, out2, err2]
    found = [x for x in list(server.secrets_seen()) + [server.client_secret]
             for y in texts if x and x in y]
    t.check(not found, "oauth: no token or secret in any output")
    h.run(["fusermount3", "-u", mp], check=False)
    wait_unmounted(t, e, mp, "oauth")


def body(t):
    server = AuthServer(h.TEST_USER,
                        client_secret="cs-" + os.urandom(8).hex())
    dc = h.Dovecot(oauth_introspect=server.url("/introspect"))
    h.seed_core(dc, large=False)
    dc.add_user("odd@example.org", "pw" + dc.password[::-1])
    dc.start()
    with dc.client() as client:
        view = h.server_view(client)
        bodies = h.server_bodies(client, view)
    e = Env(dc)
    accounts_part(t, e, view, bodies)
    fstab_part(t, e)
    systemd_part(t, e)
    syslog_part(t, e)
    oauth_part(t, e, server)


if __name__ == "__main__":
    h.Test("test_accounts").run(body)
