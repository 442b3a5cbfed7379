#!/usr/bin/env python3
"""test_first_minutes: what a new user meets in the first ten minutes.

- `imapfs` alone prints the usage line and the --help hint;
- an account mounted already is named at once, with where it is mounted;
  a second mount on a mount point imapfs holds is refused;
- a non-empty mount point is refused unless -o nonempty;
- a failed attempt (wrong password, closed port) leaves nothing in the
  cache directory, and the cache of another account stays;
- imaps:// on the STARTTLS port and imap:// on the implicit-TLS port fail
  with a hint that says what to type, long before --timeout=30;
- -d shows the status word of tagged answers, the arguments of untagged
  ones, a timestamp and the connection number, and never the password.
"""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import imapfs_harness as h  # noqa: E402


def attempt(t, dc, label, keywords, **kw):
    m = h.Mount(dc, foreground=False, **kw)
    r = m.attempt(timeout=40)
    h.check_mount_failure(t, label, r, keywords, m.mountpoint)
    m.cleanup()
    return r


def check_usage(t):
    rc, out, err, el = h.run_imapfs([])
    lines = err.splitlines()
    h.log("#   no argument: exit %s: %r" % (rc, lines))
    t.check(rc == 1 and lines == [
        "imapfs: missing URL or ACCOUNT",
        "usage: imapfs [options] URL MOUNTPOINT",
        "       imapfs [options] ACCOUNT [MOUNTPOINT]",
        "Try 'imapfs --help' for more information."],
        "no argument: the usage line and the --help hint, exit 1")


def check_already_mounted(t, dc, work):
    cache = os.path.join(work, "cache-a")
    m1 = h.Mount(dc, cache_dir=cache).start()
    r = attempt(t, dc, "the same account again", ("already mounted on",),
                cache_dir=cache)
    t.check(m1.mountpoint in r.stderr and
            "fusermount3 -u " + m1.mountpoint in r.stderr,
            "the same account again: says where it is mounted and how to "
            "unmount it", r.stderr.strip())
    m2 = h.Mount(dc, foreground=False, mountpoint=m1.mountpoint,
                 cache_dir=os.path.join(work, "cache-b"))
    r = m2.attempt(timeout=40)
    h.log("#   same mount point: exit %s after %.1fs: %r" % (
        r.rc, r.elapsed, r.stderr.strip()))
    t.check(r.rc not in (0, None) and len(r.lines()) == 1 and
            "already mounted by imapfs" in r.stderr and
            "fusermount3 -u " + m1.mountpoint in r.stderr,
            "another cache on the same mount point: refused, one line that "
            "says how to unmount", r.stderr.strip())
    on_it = [e for e in h.mount_entries() if e[0] == m1.mountpoint]
    t.check(len(on_it) == 1 and os.path.isdir(m1.path("INBOX")),
            "the first mount is still there, alone", on_it)
    t.equal(m1.unmount(), 0, "the first mount unmounts, exit 0")


def check_nonempty(t, dc, work):
    mnt = os.path.join(work, "full")
    os.makedirs(mnt)
    with open(os.path.join(mnt, "notes.txt"), "w") as f:
        f.write("mine\n")
    attempt(t, dc, "non-empty mount point", ("not empty",), mountpoint=mnt)
    m = h.Mount(dc, mountpoint=mnt, args=["-o", "nonempty"]).start()
    t.check(os.path.isdir(m.path("INBOX")) and
            not os.path.exists(m.path("notes.txt")),
            "-o nonempty: mounts over the directory")
    t.equal(m.unmount(), 0, "-o nonempty: unmount, exit 0")
    t.check(os.path.exists(os.path.join(mnt, "notes.txt")),
            "-o nonempty: the file is there again after the unmount")


def check_nothing_left(t, dc, work):
    fresh = os.path.join(work, "fresh-cache")
    attempt(t, dc, "wrong password, fresh cache", ("authentication",),
            cache_dir=fresh, password="wrong")
    t.check(not os.path.exists(fresh), "wrong password: nothing is left "
            "in the cache directory", str(os.listdir(fresh))
            if os.path.exists(fresh) else None)
    dc.restart()  # Dovecot's delay after a failed login
    attempt(t, dc, "closed port, fresh cache", ("connect",), cache_dir=fresh,
            url=dc.url(port=h.closed_port()))
    t.check(not os.path.exists(fresh), "closed port: nothing is left in "
            "the cache directory")
    shared = os.path.join(work, "shared-cache")
    m = h.Mount(dc, cache_dir=shared).start()
    t.equal(m.unmount(), 0, "a mount that worked: unmount, exit 0")
    before = sorted(os.listdir(shared))
    t.check(len(before) == 1, "a mount that worked keeps its cache", before)
    attempt(t, dc, "closed port, another account's cache", ("connect",),
            cache_dir=shared, url=dc.url(port=h.closed_port()))
    t.equal(sorted(os.listdir(shared)), before, "closed port: the cache "
            "of the account that mounted stays, nothing is added")


def check_tls_mismatch(t, dc):
    r = attempt(t, dc, "imaps:// on the STARTTLS port",
                ("does not speak tls",), args=["--timeout=30"],
                url=dc.url("imaps", port=dc.imap_port))
    t.check("imap://%s@localhost:%d" % (dc.user, dc.imap_port) in r.stderr,
            "imaps:// on the STARTTLS port: says what to type instead",
            r.stderr.strip())
    r = attempt(t, dc, "imap:// on the implicit-TLS port",
                ("expects tls from the start",), args=["--timeout=30"],
                url=dc.url("imap", port=dc.imaps_port))
    t.check("imaps://%s@localhost:%d" % (dc.user, dc.imaps_port) in
            r.stderr,
            "imap:// on the implicit-TLS port: says what to type instead",
            r.stderr.strip())


def check_debug_log(t, dc):
    m = h.Mount(dc, args=["-d"]).start()
    names = h.list_message_files(m.path("INBOX"))
    h.read_file(m.path("INBOX", sorted(names.items())[0][1]))
    t.equal(m.unmount(), 0, "-d: unmount, exit 0")
    text = m.stderr_text()
    lines = text.splitlines()
    proto = [x for x in lines if re.search(r"\] [SC]: ", x)]
    stamp = re.compile(r"^imapfs: +\d+\.\d{3} \[c\d+\] [SC]: ")
    t.check(proto and all(stamp.match(x) for x in proto),
            "-d: every protocol line has a timestamp and a connection "
            "number (%d lines)" % len(proto),
            [x for x in proto if not stamp.match(x)][:3])
    t.check(any(re.search(r"\[c\d+\] S: A\d+ OK ", x) for x in proto),
            "-d: tagged answers show their status word")
    t.check(any(re.search(r'\[c\d+\] S: \* LIST \(.*\) "." "?INBOX"?', x)
                for x in proto), "-d: untagged LIST shows its arguments",
            [x for x in proto if "LIST" in x][:3])
    t.check(all(len(x) < 300 for x in proto), "-d: long lines are cut",
            max(proto, key=len)[:400] if proto else None)
    t.check(any("<credentials redacted>" in x for x in proto),
            "-d: the login line is redacted")
    t.check(dc.password not in text, "-d: the password never appears")


def body(t):
    dc = h.Dovecot()
    h.seed_core(dc, large=False)
    dc.start()
    work = h.make_tempdir("imapfs-first-minutes-")

    check_usage(t)
    check_already_mounted(t, dc, work)
    check_nonempty(t, dc, work)
    check_nothing_left(t, dc, work)
    check_tls_mismatch(t, dc)
    check_debug_log(t, dc)


if __name__ == "__main__":
    h.Test("first ten minutes").run(body)
