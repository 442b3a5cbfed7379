#!/usr/bin/env python3
"""test_offline: mounting while the server cannot be reached.

A first mount (through faultproxy, --timeout=3) lists every folder, reads
the messages of INBOX and Projects and is unmounted. Then:

- refused (nothing listens): the account mounts offline from the cache and
  says so in one line; `ls -R` shows exactly what the first mount showed;
  every message read before reads back byte for byte; an uncached message
  fails with EIO within timeout + 3 s. A message is delivered meanwhile;
  once the proxy forwards again, the daemon connects by itself (with no
  request to the mount), the new message appears and the uncached one
  reads, without a remount;
- stalled (connections accepted, nothing forwarded): the mount comes up
  offline after one timeout;
- --offline with the server up: no password is asked, no connection is
  made, cached mail reads, the rest fails with EIO;
- --offline on an empty cache, and a wrong password with a cache, fail
  with one line and leave no mount.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import faultlib as fl  # noqa: E402
from faultlib import h  # noqa: E402

TIMEOUT = 3
LIMIT = TIMEOUT + 3
RECOVER = 90
AUTH = ("authentication", "password", "login")


def ls_r(mountpoint, hang=None):
    rc, out, err, el = fl.run(["ls", "-R", "."], 60, cwd=mountpoint,
                              on_hang=hang)
    return rc, out.decode("utf-8", "surrogateescape"), \
        err.decode("utf-8", "replace"), el


def offline_lines(m):
    return [line for line in m.stderr_text().splitlines()
            if "offline" in line]


def check_cached(t, label, m, names, cached, data, hang):
    problems = []
    for k in cached:
        rc, out, err, el = fl.cat(m.path(names[k]), timeout=20, on_hang=hang)
        if rc != 0 or out != data.bodies[k] or el >= LIMIT:
            problems.append("%s: exit %s after %.1fs, %d bytes (want %d) %s"
                            % (names[k], rc, el, len(out),
                               len(data.bodies[k]), err.strip()))
    t.all_ok("%s: every message read before reads exactly from the cache "
             "(%d files)" % (label, len(cached)), problems)


def check_eio(t, label, m, path, hang):
    rc, out, err, el = fl.cat(path, timeout=LIMIT + 20, on_hang=hang)
    h.log("#   %s: uncached read: exit %s after %.1fs: %s" % (
        label, rc, el, err.strip()))
    t.check(rc not in (0, None) and not out and el < LIMIT and
            "Input/output error" in err,
            "%s: an uncached message fails with EIO within %ds (%.1fs)" % (
                label, LIMIT, el), "exit %s, %r" % (rc, err.strip()))


def first_mount(t, dc, proxy, cache, data, args):
    m = fl.proxied_mount(dc, proxy, cache_dir=cache, args=args).start()
    rc, tree, err, el = ls_r(m.mountpoint)
    t.check(rc == 0, "server up: ls -R works", err.strip())
    names = {}
    for folder in data.view["messages"]:
        d = os.path.join(m.mountpoint, *folder.split("/"))
        for uid, n in h.list_message_files(d).items():
            names[(folder, uid)] = os.path.join(*(folder.split("/") + [n]))
    cached = sorted(k for k in names if k[0] in ("INBOX", "Projects"))
    for k in cached:
        h.read_file(m.path(names[k]))
    t.equal(m.unmount(), 0, "first mount: unmount, the daemon exits 0")
    uncached = sorted(k for k in names if k[0] in ("Q&A", "Entwürfe"))
    return tree, names, cached, uncached


def deliver(dc):
    data = h.make_message("offline-new", "Delivered while offline",
                          int(time.time()), body="hello again\n")
    with dc.client() as c:
        c.append("INBOX", data)
    return data


def check_goes_online(t, m, names, uncached, data, new_body, hang):
    t0 = time.monotonic()
    found = read_ok = False
    while time.monotonic() - t0 < RECOVER:
        files = h.list_message_files(m.path("INBOX"))
        new = [n for n in files.values() if "Delivered while" in n]
        if new and not found:
            found = True
            got = h.read_file(m.path("INBOX", new[0]))
            t.check(got.replace(b"\r\n", b"\n") ==
                    new_body.replace(b"\r\n", b"\n"),
                    "online again: the new message reads correctly")
        rc, out, err, el = fl.cat(m.path(names[uncached[0]]), timeout=30,
                                  on_hang=hang)
        read_ok = rc == 0 and out == data.bodies[uncached[0]]
        if found and read_ok:
            break
        time.sleep(1)
    h.log("#   online after %.1fs" % (time.monotonic() - t0))
    t.check(found, "online again without a remount: a message delivered "
            "while offline appears in INBOX (within %ds)" % RECOVER)
    t.check(read_ok, "online again without a remount: the uncached "
            "message reads correctly (within %ds)" % RECOVER)


def unmount(t, label, m):
    """Unmount; a daemon that does not end shows its stacks."""
    pid = fl.daemon_pid(m)
    rc = m.unmount()
    if rc is None and pid and h.pid_alive(pid):
        h.log(fl.daemon_stacks(pid))
    t.equal(rc, 0, "%s: unmount, the daemon exits 0" % label)


def body(t):
    dc = h.Dovecot()
    h.seed_core(dc, large=False)
    dc.start()
    data = fl.ServerData(dc)
    proxy = fl.start_proxy(dc)
    work = h.make_tempdir("imapfs-faults-offline-")
    cache = os.path.join(work, "cache")
    args = ["--timeout=%d" % TIMEOUT]

    tree, names, cached, uncached = first_mount(t, dc, proxy, cache, data,
                                                args)

    # 1. Refused: mounts offline, then goes online by itself.
    proxy.refuse()
    m = fl.proxied_mount(dc, proxy, cache_dir=cache, args=args)
    r = m.attempt(timeout=30)
    t.require(r.mounted, "refused: the account mounts offline",
              r.stderr.strip()[-2000:])
    hang = fl.hang_handler(m)
    lines = offline_lines(m)
    h.log("#   refused: %r" % lines)
    t.check(len(lines) == 1 and "going online" in lines[0],
            "refused: one line says the mount is offline", lines)
    rc, got, err, el = ls_r(m.mountpoint, hang)
    t.check(rc == 0 and got == tree, "refused: ls -R shows what the first "
            "mount showed (%d lines)" % len(tree.splitlines()),
            "exit %s, %s" % (rc, err.strip()[:300]))
    check_cached(t, "refused", m, names, cached, data, hang)
    check_eio(t, "refused", m, m.path(names[uncached[0]]), hang)
    new_body = deliver(dc)
    before = proxy.counters()["connections"]
    proxy.resume()
    # Nobody touches the mount: the daemon comes back by itself.
    t0 = time.monotonic()
    came = h.wait_for(lambda: proxy.counters()["connections"] > before,
                      RECOVER, interval=0.5)
    h.log("#   refused: reconnected by itself after %.1fs" % (
        time.monotonic() - t0))
    t.check(came, "online again: the daemon connects by itself, with no "
            "request to the mount (within %ds)" % RECOVER)
    check_goes_online(t, m, names, uncached, data, new_body, hang)
    unmount(t, "refused", m)

    # 2. Stalled: the connection opens but the server never greets.
    proxy.stall()
    m = fl.proxied_mount(dc, proxy, cache_dir=cache, args=args)
    r = m.attempt(timeout=30)
    t.check(r.mounted and len(offline_lines(m)) == 1,
            "stalled: mounts offline after one timeout (%.1fs)" % r.elapsed,
            r.stderr.strip()[-2000:])
    if r.mounted:
        check_cached(t, "stalled", m, names, cached[:5], data,
                     fl.hang_handler(m))
        t.equal(m.unmount(), 0, "stalled: unmount, the daemon exits 0")
    proxy.resume()

    # 3. --offline with the server up: no password, no connection.
    before = proxy.counters()["connections"]
    m = fl.proxied_mount(dc, proxy, cache_dir=cache, password_env=False,
                         args=args + ["-o", "offline"]).start()
    hang = fl.hang_handler(m)
    rc, got, err, el = ls_r(m.mountpoint, hang)
    t.check(rc == 0 and "INBOX" in got, "--offline: ls -R works", err)
    check_cached(t, "--offline", m, names, cached, data, hang)
    check_eio(t, "--offline", m, m.path(names[uncached[1]]), hang)
    time.sleep(3)  # give a wrong implementation time to connect
    check_eio(t, "--offline, later", m, m.path(names[uncached[1]]), hang)
    t.equal(proxy.counters()["connections"] - before, 0,
            "--offline: no connection to the server")
    t.check(not offline_lines(m), "--offline: nothing said about it",
            offline_lines(m))
    t.equal(m.unmount(), 0, "--offline: unmount, the daemon exits 0")

    # 4. Failures that stay fatal.
    m = fl.proxied_mount(dc, proxy, args=args + ["--offline"],
                         cache_dir=os.path.join(work, "empty"))
    r = m.attempt(timeout=30)
    h.check_mount_failure(t, "--offline, empty cache", r,
                          ("mount it once",), m.mountpoint)
    m.cleanup()
    m = fl.proxied_mount(dc, proxy, cache_dir=cache, args=args,
                         password="wrong")
    r = m.attempt(timeout=30)
    h.check_mount_failure(t, "wrong password, with a cache", r, AUTH,
                          m.mountpoint)
    m.cleanup()


if __name__ == "__main__":
    h.Test("faults: mount offline").run(body)
