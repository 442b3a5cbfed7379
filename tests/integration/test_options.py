#!/usr/bin/env python3
"""test_options: the password sources (--password-file, --password-command,
the environment), every long option as -o name=value (with dashes and with
underscores), a percent-encoded user name, --connections=1, -d (debug log
without the password), daemon mode (the launcher returns once the mount is
up; fusermount3 -u ends the daemon), SIGTERM / SIGINT in -f mode, and who
may read the mail: with -o allow_other the user nobody gets EACCES on a
listing and on a read (messages 0600, folders 0700); -o umask=022 lets the
same reads through (0644, 0755), -o uid= and gid= set the owner, and a copy
made with cp -r is a tree its owner can delete."""

import os
import pwd
import shutil
import signal
import stat
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import imapfs_harness as h  # noqa: E402


def read_all(t, m, view, bodies, label):
    """Compare every file of mount m with the server; returns True when
    all are right."""
    files = {}
    for name, msgs in view["messages"].items():
        d = h.folder_path(m, name)
        for uid, fname in h.list_message_files(d).items():
            files[(name, uid)] = os.path.join(d, fname)
    problems = []
    for k, b in bodies.items():
        p = files.get(k)
        if p is None:
            problems.append("%s UID %d: no file" % k)
        elif h.read_file(p) != b:
            problems.append("%s: wrong content" % p)
    return t.all_ok("%s: all %d files read correctly" % (label, len(bodies)),
                    problems)


def mount_and_check(t, dc, view, bodies, label, **kw):
    m = h.Mount(dc, **kw)
    r = m.attempt(timeout=40)
    if not t.check(r.mounted, "%s: mounts" % label,
                   "exit %s: %s" % (r.rc, r.stderr.strip()[-1500:])):
        m.cleanup()
        return None
    read_all(t, m, view, bodies, label)
    return m


def body(t):
    dc = h.Dovecot()
    h.seed_core(dc, large=False)
    odd_user = "user@example.org"
    odd_password = "pw" + dc.password[::-1]
    dc.add_user(odd_user, odd_password)
    dc.start()
    with dc.client() as client:
        view = h.server_view(client)
        flags_before = client.flags_snapshot()
        bodies = h.server_bodies(client, view)
    tmp = h.make_tempdir("imapfs-options-", 0o700)
    pwfile = os.path.join(tmp, "password")
    fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(dc.password + "\n")

    # Password sources
    m = mount_and_check(t, dc, view, bodies, "--password-file",
                        password_env=False,
                        args=["--password-file=" + pwfile])
    if m:
        t.equal(m.unmount(), 0, "--password-file: unmount, exit 0")
    m = mount_and_check(t, dc, view, bodies, "--password-command",
                        password_env=False,
                        args=["--password-command=cat '%s'" % pwfile])
    if m:
        t.equal(m.unmount(), 0, "--password-command: unmount, exit 0")
    m = mount_and_check(t, dc, view, bodies,
                        "--password-file wins over $IMAPFS_PASSWORD",
                        password="wrong-password",
                        args=["--password-file=" + pwfile])
    if m:
        m.unmount()

    # -o forms
    cache1 = os.path.join(tmp, "cache-dashes")
    m = mount_and_check(
        t, dc, view, bodies, "-o with dashes", password_env=False,
        cafile=None, cache_dir=False,
        args=["-o", "cafile=%s,cache-dir=%s,password-file=%s,"
              "connections=2,timeout=20" % (dc.cafile, cache1, pwfile)])
    if m:
        t.equal(m.unmount(), 0, "-o with dashes: unmount, exit 0")
        t.check(os.path.isdir(cache1) and any(os.scandir(cache1)),
                "-o cache-dir=DIR: the cache is in DIR")
    cache2 = os.path.join(tmp, "cache-underscores")
    m = mount_and_check(
        t, dc, view, bodies, "-o with underscores", password_env=False,
        cafile=None, cache_dir=False,
        args=["-o", "cafile=%s" % dc.cafile, "-o", "cache_dir=%s" % cache2,
              "-o", "password_command=cat %s" % pwfile,
              "-o", "connections=1"])
    if m:
        t.equal(m.unmount(), 0, "-o with underscores: unmount, exit 0")
        t.check(os.path.isdir(cache2) and any(os.scandir(cache2)),
                "-o cache_dir=DIR: the cache is in DIR")
    m = h.Mount(dc, cafile=None, args=["-o", "insecure"])
    r = m.attempt(timeout=40)
    t.check(r.mounted, "-o insecure (a flag) is accepted",
            r.stderr.strip()[-1000:])
    if r.mounted:
        m.unmount()
    m.cleanup()

    # A user name that needs percent-encoding
    m = mount_and_check(t, dc, view, bodies,
                        "percent-encoded user %s" % odd_user,
                        url=dc.url(user=odd_user), password=odd_password)
    if m:
        t.check("%40" in m.url, "the URL was %s" % m.url)
        m.unmount()

    # One connection only
    m = mount_and_check(t, dc, view, bodies, "--connections=1",
                        args=["--connections=1"])
    if m:
        m.unmount()

    # -d: a debug log, without the password
    m = mount_and_check(t, dc, view, bodies, "-d", args=["-d"])
    if m:
        t.equal(m.unmount(), 0, "-d: unmount, exit 0")
        log_text = m.stderr_text()
        t.check(len(log_text.splitlines()) > 3,
                "-d: writes a debug log to stderr (%d lines)" %
                len(log_text.splitlines()))
        t.check(dc.password not in log_text,
                "-d: the password is not in the debug log")

    # Daemon mode
    m = h.Mount(dc, foreground=False)
    r = m.attempt(timeout=40)
    t.check(r.rc == 0, "daemon mode: the launcher exits 0",
            "exit %s: %s" % (r.rc, r.stderr.strip()[-1000:]))
    t.check(r.mounted, "daemon mode: the mount is up when the launcher "
            "returns")
    t.check(m.pid is not None, "daemon mode: the daemon runs (pid %s)" %
            m.pid)
    if r.mounted:
        read_all(t, m, view, bodies, "daemon mode")
        rc = m.unmount()
        t.equal(rc, 0, "daemon mode: fusermount3 -u ends the daemon")
        t.check(h.mount_info(m.mountpoint) is None,
                "daemon mode: no mount left")
    m.cleanup()

    # Signals in -f mode
    for sig in (signal.SIGTERM, signal.SIGINT):
        name = signal.Signals(sig).name
        m = h.Mount(dc)
        r = m.attempt(timeout=40)
        if not t.check(r.mounted, "-f: mounts (for %s)" % name,
                       r.stderr.strip()[-1000:]):
            m.cleanup()
            continue
        os.kill(m.proc.pid, sig)
        rc = m.wait_exit(20)
        t.equal(rc, 0, "-f: %s makes the daemon exit 0" % name)
        t.check(h.wait_for(lambda: h.mount_info(m.mountpoint) is None, 5),
                "-f: %s unmounts" % name)
        m.cleanup()

    check_modes(t, dc, view, bodies)

    with dc.client() as client:
        t.all_ok("flags of every message unchanged",
                 h.diff_flags(flags_before, client.flags_snapshot()))


def as_nobody(argv):
    """Run argv as the user nobody; (exit code, stderr)."""
    r = subprocess.run(argv, user="nobody", group="nogroup",
                       extra_groups=[], stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       timeout=60)
    return r.returncode, r.stderr.decode("utf-8", "replace").strip()


def some_message(m, view):
    for name, msgs in view["messages"].items():
        if msgs:
            d = h.folder_path(m, name)
            files = h.list_message_files(d)
            if files:
                return d, os.path.join(d, sorted(files.values())[0])
    raise h.TestFailure("no message file in the mount")


def check_modes(t, dc, view, bodies):
    nobody = pwd.getpwnam("nobody")

    # The default, with allow_other: owner only.
    m = mount_and_check(t, dc, view, bodies, "allow_other",
                        args=["-o", "allow_other"])
    if m:
        d, f = some_message(m, view)
        st_d, st_f = os.stat(d), os.stat(f)
        t.equal((oct(stat.S_IMODE(st_f.st_mode)),
                 oct(stat.S_IMODE(st_d.st_mode))), (oct(0o600), oct(0o700)),
                "allow_other: messages 0600, folders 0700")
        t.equal((st_f.st_uid, st_f.st_gid), (os.getuid(), os.getgid()),
                "allow_other: owned by the mounting user")
        rc, err = as_nobody(["ls", d])
        t.check(rc != 0 and "Permission denied" in err,
                "allow_other: nobody cannot list a folder", "exit %d: %s" %
                (rc, err))
        rc, err = as_nobody(["head", "-c", "100", f])
        t.check(rc != 0 and "Permission denied" in err,
                "allow_other: nobody cannot read a message",
                "exit %d: %s" % (rc, err))
        try:
            with open(f, "ab"):
                pass
            t.check(False, "allow_other: writing still fails")
        except OSError as e:
            t.check(e.errno in (30,), "allow_other: writing still fails "
                    "with EROFS", str(e))
        # A copy is an ordinary tree its owner can change and delete.
        # (cp -r keeps the modes: the owner must have write permission
        # on the copied folders; root would not need it, so look.)
        copy = os.path.join(h.make_tempdir("imapfs-copy-"), "copy")
        subprocess.run(["cp", "-r", d, copy], check=True)
        modes = {p: stat.S_IMODE(os.stat(os.path.join(r, p)).st_mode)
                 for r, ds, fs in os.walk(copy) for p in ds + fs + ["."]}
        t.check(all(mo & 0o200 for mo in modes.values()),
                "a cp -r copy is writable by its owner (so it can be "
                "deleted)", repr(sorted(set(map(oct, modes.values())))))
        shutil.rmtree(copy)
        t.equal(m.unmount(), 0, "allow_other: unmount, exit 0")
        m.cleanup()

    # umask=022: everyone may read.
    m = mount_and_check(t, dc, view, bodies, "allow_other,umask=022",
                        args=["-o", "allow_other,umask=022"])
    if m:
        d, f = some_message(m, view)
        t.equal((oct(stat.S_IMODE(os.stat(f).st_mode)),
                 oct(stat.S_IMODE(os.stat(d).st_mode))),
                (oct(0o644), oct(0o755)),
                "umask=022: messages 0644, folders 0755")
        rc, err = as_nobody(["ls", d])
        t.equal((rc, err), (0, ""), "umask=022: nobody lists a folder")
        rc, err = as_nobody(["head", "-c", "100", f])
        t.equal((rc, err), (0, ""), "umask=022: nobody reads a message")
        t.equal(m.unmount(), 0, "umask=022: unmount, exit 0")
        m.cleanup()

    # uid= and gid=: nobody owns the files and reads them, with the
    # default owner-only modes.
    m = mount_and_check(t, dc, view, bodies, "uid=nobody",
                        args=["-o", "allow_other,uid=nobody,gid=%d" %
                              nobody.pw_gid])
    if m:
        d, f = some_message(m, view)
        st = os.stat(f)
        t.equal((st.st_uid, st.st_gid), (nobody.pw_uid, nobody.pw_gid),
                "uid=nobody: the files belong to nobody")
        rc, err = as_nobody(["head", "-c", "100", f])
        t.equal((rc, err), (0, ""), "uid=nobody: nobody reads a message")
        t.equal(m.unmount(), 0, "uid=nobody: unmount, exit 0")
        m.cleanup()


if __name__ == "__main__":
    h.Test("test_options").run(body)
