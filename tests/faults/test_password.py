#!/usr/bin/env python3
"""test_password: a changed password is not a login storm.

A real Dovecot, a mount with --password-file and --connections=4. The
password is changed on the server and Dovecot restarted (every session
ends); a reader then keeps the mount busy for 90 s, as a file manager
would: uncached messages, folders never listed. Dovecot's log counts the
failed logins: at most 3 in those 90 s, however many connections the pool
has, and the daemon says once, in one line, why and how to recover; the
reads fail (EIO) at once, without waiting for the server. A SIGHUP makes
it try once more (and does not end the mount). Then the new password goes
into the password file, and reads work again within 100 s, with no
remount.

IMAPFS_PASSWORD_BUSY_SECONDS shortens the busy period (for debugging).
"""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import faultlib as fl  # noqa: E402
from faultlib import h  # noqa: E402

BUSY = int(os.environ.get("IMAPFS_PASSWORD_BUSY_SECONDS", "90"))
RECOVER = 100
MAX_FAILED = 3


def failed_logins(dc):
    try:
        with open(dc.log_path, errors="replace") as f:
            return sum("Password mismatch" in line for line in f)
    except OSError:
        return 0


def write_secret(path, secret):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret + "\n")


def body(t):
    dc = h.Dovecot()
    h.seed_core(dc, large=False)
    fl.seed_small(dc, ["Bulk"], 400)
    dc.start()
    data = fl.ServerData(dc)
    work = h.make_tempdir("imapfs-password-", 0o700)
    pwfile = os.path.join(work, "password")
    write_secret(pwfile, dc.password)
    m = h.Mount(dc, password_env=False,
                args=["--password-file=" + pwfile, "--connections=4",
                      "--timeout=5"]).start()
    hang = fl.hang_handler(m)
    bulk = os.path.join(m.mountpoint, "Bulk")
    names = [n for _, n in sorted(h.list_message_files(bulk).items())]
    # Use all four connections once, so that all of them break below.
    r = fl.run_grep(os.path.join(m.mountpoint, "INBOX"), timeout=60,
                    on_hang=hang)
    t.check(r.rc in (0, 1) and not r.errors, "before: a grep of INBOX works",
            r.summary())

    new = "pw-new-" + os.urandom(6).hex()
    dc.set_password(new)
    dc.restart()
    before = failed_logins(dc)
    log_before = len(m.stderr_text())
    t0 = time.monotonic()
    reads = eio = slow = 0
    i = 0
    never_listed = ["Projects/Alpha", "日本語"]
    while time.monotonic() - t0 < BUSY:
        rc, out, err, el = fl.cat(os.path.join(bulk, names[i % len(names)]),
                                  timeout=30, on_hang=hang)
        reads += 1
        eio += rc != 0 and "Input/output error" in err
        slow += el > 6
        if i % 10 == 0:
            d = os.path.join(m.mountpoint,
                             *never_listed[i // 10 % 2].split("/"))
            fl.run(["ls", d], 30, on_hang=hang)
        i += 1
        time.sleep(0.2)
    failed = failed_logins(dc) - before
    h.log("#   busy for %ds: %d reads, %d EIO, %d slower than 6 s; %d "
          "failed logins" % (BUSY, reads, eio, slow, failed))
    t.check(failed <= MAX_FAILED, "a changed password cost at most %d "
            "failed logins in %d s of reads (%d)" % (MAX_FAILED, BUSY,
                                                     failed))
    t.check(eio > 0 and slow == 0, "meanwhile uncached reads fail with EIO "
            "at once (%d EIO of %d, %d slow)" % (eio, reads, slow))
    said = [x for x in m.stderr_text()[log_before:].splitlines()
            if "will not log in again" in x]
    t.check(len(said) == 1 and "SIGHUP" in said[0] and
            "password" in said[0], "the daemon said once why and how to "
            "recover", repr(said))
    t.check(new not in m.stderr_text() and dc.password not in
            m.stderr_text(), "no password in the daemon's output")

    # SIGHUP: one more try now, and the mount stays.
    before = failed_logins(dc)
    m.proc.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    fl.cat(os.path.join(bulk, names[1]), timeout=30, on_hang=hang)
    time.sleep(3)  # Dovecot delays its answer to a failed login
    t.equal(failed_logins(dc) - before, 1, "SIGHUP: exactly one more login "
            "was tried")
    t.check(m.proc.poll() is None and m.mounted(),
            "SIGHUP: the mount is still there")

    # The new password in the file: reads work again, no remount.
    write_secret(pwfile, new)
    t1 = time.monotonic()
    ok = False
    while time.monotonic() - t1 < RECOVER + 5:
        rc, out, err, el = fl.cat(os.path.join(bulk, names[2]), timeout=30,
                                  on_hang=hang)
        if rc == 0:
            ok = out == data.bodies[("Bulk", h.uid_of_name(names[2]))]
            break
        time.sleep(1)
    took = time.monotonic() - t1
    h.log("#   the new password worked after %.1fs" % took)
    t.check(ok and took <= RECOVER, "with the new password in the file, "
            "reads work again within %d s (%.1f s), no remount" % (RECOVER,
                                                                  took))
    rc, out, err, el = fl.run(["ls", os.path.join(m.mountpoint, "日本語")],
                              30, on_hang=hang)
    t.equal(rc, 0, "and a folder never listed before lists")
    t.equal(m.unmount(), 0, "unmount, the daemon exits 0")


if __name__ == "__main__":
    h.Test("faults: a changed password").run(body)
