#!/usr/bin/env python3
"""Integration test harness for imapfs (Python 3 standard library only).

The test scripts import this module (as h) and find everything under the
names it always had; it is made of three modules next to it, each with one
job, and re-exports their names:

- harness_core: the harness proper. Test, a tiny runner (checks, exit codes
  0 / 1 / 77, cleanup on exit and on signals); process, port and file
  helpers; Mount, which runs the daemon (env IMAPFS_BIN) with the password
  in the environment, waits for the mount, unmounts, and always cleans up;
  the scan that fails a test on a sanitizer report or a GLib critical; the
  checks that compare the mount and its cache with the server.
- harness_dovecot: the Dovecot fixture. Dovecot, a throwaway instance with
  its own CA and certificates, users, and imap (STARTTLS required) and
  imaps listeners on free loopback ports, stopped and started again on the
  same ports, switched to other certificates or to plain imap; ImapClient,
  imaplib trusting the throwaway CA, which lists folders, fetches
  BODY.PEEK[] and FLAGS by UID and APPENDs: the tests compare the mount
  with what it sees.
- harness_mail: the mail writers. MaildirWriter seeds a Dovecot instance by
  writing Maildir++ files directly (with flags and INTERNALDATE), much
  faster than APPEND; make_message() and core_messages(), the core suite's
  own messages and folders.

This file keeps the command line:
    imapfs_harness.py demo --dir DIR       start a seeded Dovecot that keeps
                                           running; prints shell variables
    imapfs_harness.py demo-stop --dir DIR  stop it again
    imapfs_harness.py selftest             check the harness alone
"""

import argparse
import imaplib
import json
import os
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time

# Re-exported: the suites use every name below as h.NAME (the private ones
# too, a few of them).
from harness_core import *  # noqa: F401,F403
from harness_core import (  # noqa: F401
    _CRC32C, _bug_reports, _cleaning, _cleanup_lock, _cleanups,
    _crc32c_table, _diagnostics, _ipv6_loopback, _late_failures,
    _on_signal, _ports_given, _ppids, _run_cleanups, _unescape_mountinfo)
from harness_dovecot import *  # noqa: F401,F403
from harness_dovecot import (  # noqa: F401
    _LIST_RE, _MONTHS, _gen_time, _quote)
from harness_mail import *  # noqa: F401,F403
from harness_mail import _b_word, _base64_lines  # noqa: F401

# What the command line below uses.
from harness_core import (CRITICAL_RE, BugScan, Test, descendants, kill_all,
                          make_tempdir, pid_alive, port_open, run,
                          sanitizer_env, short, wait_for)
from harness_dovecot import (Dovecot, PlainImapFrom, diff_flags,
                             login_security, server_view)
from harness_mail import (CORE_FOLDERS, MAILDIR_FLAGS, mutf7_decode,
                          mutf7_encode, seed_core)


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
        t.check(dc.running() and port_open(dc.imap_port) and
                port_open(dc.imaps_port),
                "dovecot started on ports %d (STARTTLS) and %d "
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
            refused = False
        except imaplib.IMAP4.error:
            refused = True
        t.check(refused, "plaintext login without STARTTLS is refused")
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
            why = None
            try:
                with socket.create_connection(("localhost",
                                               dc.imaps_port), 10) as s:
                    with ctx.wrap_socket(s, server_hostname="localhost"):
                        pass
            except ssl.SSLCertVerificationError as e:
                why = e.verify_message
            t.check(why is not None, "certificate '%s' is rejected by a "
                    "client trusting the test CA%s" % (
                        kind, "" if why is None else " (%s)" % why))
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
