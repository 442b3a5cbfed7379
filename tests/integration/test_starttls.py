#!/usr/bin/env python3
"""test_starttls: the basic checks over imap:// (STARTTLS): tree, names,
contents, grep, flags unchanged, every login over TLS, clean unmount; and a
server that offers no STARTTLS is refused before any login, as is an imaps://
URL pointing at a plain IMAP port."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import imapfs_harness as h  # noqa: E402


def body(t):
    dc = h.Dovecot()
    msgs = h.seed_core(dc, large=False)
    dc.start()
    client = dc.client(starttls=True)
    h.add_cleanup(client.close)
    view = h.server_view(client)
    flags_before = client.flags_snapshot()
    total = sum(len(v) for v in view["messages"].values())

    m = h.Mount(dc, mode="imap").start()
    t.check(m.mounted() and h.pid_alive(m.pid), "mounted %s" % m.url)
    t.equal(set(os.listdir(m.mountpoint)), h.CORE_TOP,
            "ls of the root shows the top-level folders")
    files = h.compare_tree(t, m, view)
    problems = []
    for msg in msgs:
        p = files.get((msg.folder, msg.uid))
        why = "no file" if p is None else \
            msg.expected_name_problem(os.path.basename(p))
        if why:
            problems.append("%s: %s" % (msg.key, why))
    t.all_ok("file names as specified", problems)
    t.equal(h.compare_bodies(t, client, view, files), total,
            "every message was compared")
    r = h.run(["grep", "-rl", h.NEEDLE, m.mountpoint], timeout=120,
              check=False, env=dict(os.environ, LC_ALL="C"))
    got = {os.path.normpath(x.decode()) for x in r.stdout.split(b"\n") if x}
    want = {os.path.normpath(files[(x.folder, x.uid)]) for x in msgs
            if x.needle}
    t.equal(got, want, "grep -rl lists exactly the files with the needle")
    t.all_ok("flags unchanged after reading everything",
             h.diff_flags(flags_before, client.flags_snapshot()))
    sec = h.login_security(dc)
    t.check(sec and all(x == "TLS" for x in sec),
            "every login to Dovecot was protected by TLS", repr(sec))
    t.equal(m.unmount(), 0, "unmount: the daemon exits 0")
    t.check(h.mount_info(m.mountpoint) is None, "no mount left")
    client.close()

    # imaps:// against the plain port: the TLS handshake cannot succeed.
    m2 = h.Mount(dc, url=dc.url("imaps", port=dc.imap_port),
                 foreground=False)
    r = m2.attempt(timeout=40)
    h.check_mount_failure(
        t, "imaps:// to a plain IMAP port", r,
        ("tls", "ssl", "handshake", "certificate", "connect"), m2.mountpoint)
    m2.cleanup()

    # A server without STARTTLS: imap:// must refuse, and never log in.
    logins = len(h.login_security(dc))
    dc.set_tls("none")
    m3 = h.Mount(dc, mode="imap", foreground=False)
    r = m3.attempt(timeout=40)
    h.check_mount_failure(t, "server without STARTTLS", r, ("tls",),
                          m3.mountpoint)
    t.equal(len(h.login_security(dc)), logins,
            "server without STARTTLS: no login was attempted")
    m3.cleanup()


if __name__ == "__main__":
    h.Test("test_starttls").run(body)
