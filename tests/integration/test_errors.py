#!/usr/bin/env python3
"""test_errors: failures before the mount is ready (wrong password, unknown
user, no password, closed port, untrusted / expired / wrong-host /
self-signed certificates) each exit non-zero within 15 s with one line
"imapfs: ..." naming the cause and leave no mount; --insecure mounts the
self-signed server; --help and --version; bad URLs, a missing mount point and
bad option values give clear errors."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import imapfs_harness as h  # noqa: E402

AUTH = ("authentication", "password", "login")
CERT = ("certificate",)


def attempt(t, dc, label, keywords, **kw):
    m = h.Mount(dc, foreground=False, **kw)
    r = m.attempt(timeout=40)
    h.check_mount_failure(t, label, r, keywords, m.mountpoint)
    m.cleanup()
    return r


def body(t):
    dc = h.Dovecot()
    h.seed_core(dc, large=False)
    dc.start()

    # Authentication. Dovecot delays its answer after a failed login, more
    # with each failure from the same address (up to 15 s): restart it
    # before each case so that every case sees the first, 2 s delay.
    attempt(t, dc, "wrong password", AUTH, password="wrong" + dc.password)
    dc.restart()
    attempt(t, dc, "unknown user", AUTH, url=dc.url(user="nosuchuser"))
    dc.restart()
    attempt(t, dc, "wrong password over STARTTLS", AUTH, mode="imap",
            password="wrong")
    dc.restart()
    attempt(t, dc, "no password source (no terminal)", ("password",),
            password_env=False)

    # Connecting
    attempt(t, dc, "closed port", ("connect",),
            url=dc.url(port=h.closed_port()))
    attempt(t, dc, "unresolvable host", ("resolve", "host", "connect",
                                         "name"),
            url="imaps://%s@no-such-host.invalid:%d" % (dc.user,
                                                       dc.imaps_port))

    # Certificates
    attempt(t, dc, "test CA not trusted (no --cafile)", CERT, cafile=None)
    attempt(t, dc, "test CA not trusted over STARTTLS (no --cafile)", CERT,
            cafile=None, mode="imap")
    dc.set_cert("otherca")
    attempt(t, dc, "certificate from another CA", CERT)
    dc.set_cert("wronghost")
    attempt(t, dc, "certificate for another host name", CERT)
    dc.set_cert("expired")
    attempt(t, dc, "expired certificate", CERT)
    dc.set_cert("selfsigned")
    attempt(t, dc, "self-signed certificate", CERT, cafile=None)

    m = h.Mount(dc, cafile=None, args=["--insecure"])
    r = m.attempt(timeout=40)
    t.check(r.mounted, "--insecure mounts the self-signed server",
            r.stderr.strip()[-1000:])
    if r.mounted:
        t.equal(set(os.listdir(m.mountpoint)), h.CORE_TOP,
                "--insecure: the tree is there")
        t.equal(m.unmount(), 0, "--insecure: unmount, the daemon exits 0")
    m.cleanup()
    dc.set_cert("good")

    # --help, --version
    rc, out, err, el = h.run_imapfs(["--help"])
    text = out + err
    t.equal(rc, 0, "--help exits 0")
    missing = [o for o in ("--password-command", "--password-file",
                           "--cafile", "--cache-dir", "--connections",
                           "--timeout", "--insecure", "-o")
               if o not in text]
    t.all_ok("--help names every option", missing)
    rc, out, err, el = h.run_imapfs(["--version"])
    t.equal(rc, 0, "--version exits 0")
    version = os.environ.get("IMAPFS_VERSION", "")
    t.check(version in out + err and (out + err).strip(),
            "--version prints the version %s" % version, repr(out + err))

    # Command-line errors
    tmp = h.make_tempdir("imapfs-errors-")
    mnt = os.path.join(tmp, "mnt")
    os.mkdir(mnt)
    pw = dc.password

    def usage(label, args, keywords, mountpoint=mnt):
        rc, out, err, el = h.run_imapfs(args, password=pw)
        lines = [x for x in err.splitlines() if x.strip()]
        h.log("#   %s: exit %s: %r" % (label, rc, err.strip()))
        t.check(rc not in (0, None), "%s: exits non-zero" % label)
        t.check(lines and lines[0].startswith("imapfs: "),
                "%s: the error starts 'imapfs: '" % label, repr(lines))
        t.check(any(k.lower() in err.lower() for k in keywords),
                "%s: names the problem (%s)" % (label, " or ".join(keywords)),
                repr(err))
        t.check(h.mount_info(mountpoint) is None, "%s: no mount" % label)

    ca = "--cafile=" + dc.cafile
    usage("URL with another scheme", [ca, "http://u@localhost", mnt],
          ("url", "scheme", "http"))
    usage("URL that is no URL", [ca, "not a url", mnt], ("url",))
    usage("URL with a bad port", [ca, "imaps://u@localhost:99999", mnt],
          ("url", "port"))
    usage("URL with a port that is no number",
          [ca, "imaps://u@localhost:abc", mnt], ("url", "port"))
    missing_mp = os.path.join(tmp, "does-not-exist")
    usage("missing mount point", [ca, dc.url(), missing_mp],
          ("does-not-exist", "mount point", "mountpoint"), missing_mp)
    afile = os.path.join(tmp, "a-file")
    open(afile, "w").close()
    usage("mount point that is a file", [ca, dc.url(), afile],
          ("a-file", "directory", "mount point", "mountpoint"), afile)
    usage("no mount point", [ca, dc.url()], ("mount", "usage", "argument"))
    usage("unknown option", [ca, "--no-such-option", dc.url(), mnt],
          ("no-such-option", "unknown", "unrecognized", "invalid"))
    usage("--connections=0", [ca, "--connections=0", dc.url(), mnt],
          ("connections",))
    usage("--timeout=abc", [ca, "--timeout=abc", dc.url(), mnt],
          ("timeout",))
    usage("missing --cafile file",
          ["--cafile=" + os.path.join(tmp, "nope.pem"), dc.url(), mnt],
          ("nope.pem", "cafile", "certificate"))
    usage("missing --password-file",
          [ca, "--password-file=" + os.path.join(tmp, "nope.txt"),
           dc.url(), mnt], ("nope.txt", "password"))
    usage("failing --password-command",
          [ca, "--password-command=exit 3", dc.url(), mnt], ("password",))


if __name__ == "__main__":
    h.Test("test_errors").run(body)
