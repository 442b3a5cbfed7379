#!/usr/bin/env python3
"""test_providers: the daemon against the providers' profiles of the fake
server (providers.py), checked with real tools on the mount.

Cases (run one with: test_providers.py CASE ...):
  gmail_labels       every message read right; a message in several
                     folders is one inode (st_nlink = its folders) and is
                     downloaded once (the server's counters)
  gmail_label_deleted  a label deleted on the server: its messages read
                     right through the folders that still hold them
  fastmail_emailid   the same with EMAILID (OBJECTID, as Cyrus and Fastmail)
  gmail_no_id        --disable-extension=X-GM-EXT-1: no X-GM-MSGID asked,
                     one inode per folder, still every message right
  gmail_connections  --connections=20 against Gmail's 15: the 16th login is
                     refused, the pool shrinks, no read fails
  gmail_prefetch     Gmail's default: reading 8 files costs 8 downloads;
                     --prefetch=ahead fetches ahead
  gmail_quota        the daily download cap (NO [OVERQUOTA] ... bandwidth
                     limits): EIO for uncached reads without asking the
                     server, cached ones readable, one log line, reads
                     again once the server allows them (after the backoff)
  gmail_quota_bye    the same when the server says BYE and hangs up
  microsoft          estimated sizes, IDLE only; "authenticated but not
                     connected" to fast logins: backoff, no storm, no EIO,
                     not taken for a wrong password
  icloud             QRESYNC offered but broken: never used (built-in
                     table); a remount still shows every message
  yahoo              NO [LIMIT] on commands over 100 messages: a folder of
                     250 is listed in ranges, every message read right;
                     after deletions a remount resyncs by ranges too
"""

import collections
import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import quirk_common as q  # noqa: E402
import providers as pv  # noqa: E402

h = q.h
fk = q.fk


def walk_files(m):
    out = []
    for root, _, names in os.walk(m.mountpoint):
        out += [os.path.join(root, n) for n in names]
    return sorted(out)


def read_all(m):
    """{path: (rc, data, err)} of every file, read by 6 threads at once."""
    paths = walk_files(m)
    results = {}

    def reader(k):
        for p in paths[k::6]:
            rc, data, err, _ = h.cat(p, timeout=60)
            results[p] = (rc, data, err)
    threads = [threading.Thread(target=reader, args=(k,)) for k in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(180)
    return paths, results


def bad_reads(m, acct, paths, results):
    sel, _ = q.expected_tree(acct)
    bad = []
    for p in paths:
        rel = os.path.relpath(os.path.dirname(p), m.mountpoint)
        f = sel.get(rel)
        uid = h.uid_of_name(os.path.basename(p))
        msg = f.by_uid(uid) if f else None
        r = results.get(p)
        if r is None:
            bad.append("%s: not read" % p)
        elif msg is None:
            bad.append("%s: no such message on the server" % p)
        elif r[0] != 0 or r[1] != msg.body:
            bad.append("%s: rc %s, %d bytes (server %d) %s" % (
                p, r[0], len(r[1]), len(msg.body), r[2].strip()))
    return bad


def case_gmail_labels(t):
    label = "gmail_labels"
    srv, shared = pv.gmail()
    srv.start()
    m = q.mount(srv).start()
    q.compare_account(t, m, srv.account, label)
    sends = [(gmid, sum(srv.body_sends.get((f.raw, uid), 0)
                        for f, uid in where))
             for gmid, where in sorted(shared.items())]
    h.log("#   %s: whole bodies sent per message: %s" % (
        label, collections.Counter(n for _, n in sends)))
    t.all_ok("%s: each of %d messages downloaded exactly once, whatever "
             "its labels (%d folder copies read)" % (
                 label, len(shared), sum(len(w) for w in shared.values())),
             ["X-GM-MSGID %d: %d downloads" % (g, n) for g, n in sends
              if n != 1])
    problems = []
    for gmid, where in shared.items():
        paths = [q.message_path(m, f.raw.decode(), uid) for f, uid in where]
        sts = [os.stat(p) for p in paths if p]
        inos = {st.st_ino for st in sts}
        nl = {st.st_nlink for st in sts}
        if len(inos) != 1 or nl != {len(where)}:
            problems.append("X-GM-MSGID %d in %d folders: inodes %s, "
                            "st_nlink %s" % (gmid, len(where), inos, nl))
    t.all_ok("%s: a message in several folders is one inode, st_nlink "
             "counts its folders" % label, problems)
    first = shared[min(shared)]
    t.check(len(first) == 4, "%s: message 0 is in INBOX, All Mail and two "
            "labels" % label, str(len(first)))
    t.check(srv.count(r"UID FETCH .*X-GM-MSGID") >= 1 and
            srv.count(r"^FETCH|X-GM-MSGID\)$") == 0,
            "%s: X-GM-MSGID asked with the listing, no extra command" % label)
    q.check_read_only(t, srv, label)
    q.check_unmount(t, m, label)


def case_gmail_label_deleted(t):
    label = "gmail_label_deleted"
    srv, shared = pv.gmail()
    srv.start()
    m = q.mount(srv, args=["--poll-interval=5"]).start()
    work = srv.account.folder("Work")
    # Work is listed first: the home of its messages, which All Mail
    # shows too.
    names = os.listdir(os.path.join(m.mountpoint, "Work"))
    all_mail = all_mail_paths(m)
    t.require(len(names) >= 2, "%s: Work lists its messages" % label)
    srv.account.folders.remove(work)
    gone = h.wait_for(lambda: "Work" not in os.listdir(m.mountpoint), 30)
    t.require(gone, "%s: the label deleted on the server leaves the mount"
              % label)
    f = srv.account.folder("[Gmail]/All Mail")
    bad = []
    for p in all_mail:
        rc, data, err, _ = h.cat(p)
        msg = f.by_uid(h.uid_of_name(os.path.basename(p)))
        if rc != 0 or data != msg.body:
            bad.append("%s: rc %s %s" % (p, rc, err.strip()))
    t.all_ok("%s: every All Mail message, also those first seen in the "
             "deleted label, reads right" % label, bad)
    q.check_unmount(t, m, label)


def case_fastmail_emailid(t):
    label = "fastmail_emailid"
    srv, shared = pv.fastmail()
    srv.start()
    m = q.mount(srv).start()
    q.compare_account(t, m, srv.account, label)
    bad = []
    for eid, where in sorted(shared.items()):
        n = sum(srv.body_sends.get((f.raw, uid), 0) for f, uid in where)
        sts = [os.stat(q.message_path(m, f.raw.decode(), uid))
               for f, uid in where]
        if n != 1 or len({st.st_ino for st in sts}) != 1 or \
                {st.st_nlink for st in sts} != {len(where)}:
            bad.append("%s in %d folders: %d downloads, st_nlink %s" % (
                eid, len(where), n, sorted({st.st_nlink for st in sts})))
    t.all_ok("%s: EMAILID makes a message in several folders one inode, "
             "downloaded once" % label, bad)
    t.check(srv.count(r"UID FETCH .* EMAILID ") >= 1, "%s: EMAILID asked "
            "with the listing" % label)
    q.check_unmount(t, m, label)


def case_gmail_no_id(t):
    label = "gmail_no_id"
    srv, shared = pv.gmail(n=6)
    srv.start()
    m = q.mount(srv, args=["--disable-extension=X-GM-EXT-1 CONDSTORE"]
                ).start()
    q.compare_account(t, m, srv.account, label)
    t.equal(srv.count(r"X-GM-MSGID"), 0, "%s: the disabled extension is "
            "never used" % label)
    t.equal(srv.count(r"CONDSTORE|CHANGEDSINCE"), 0,
            "%s: nor is CONDSTORE" % label)
    where = shared[min(shared)]
    sts = [os.stat(q.message_path(m, f.raw.decode(), uid))
           for f, uid in where]
    t.check(len({st.st_ino for st in sts}) == len(where) and
            {st.st_nlink for st in sts} == {1},
            "%s: without ids, one inode per folder copy" % label)
    q.check_unmount(t, m, label)


def case_gmail_connections(t):
    label = "gmail_connections"
    srv, shared = pv.gmail(n=40)
    # The user's other clients hold 12 of the 15: imapfs gets 3.
    srv.other_clients = 12
    srv.start()
    m = q.mount(srv, args=["--connections=20"]).start()
    paths, results = read_all(m)
    bad = bad_reads(m, srv.account, paths, results)
    h.log("#   %s: %d logins refused, %d connections in all" % (
        label, len(srv.refused_logins), len(srv.conns)))
    t.check(len(srv.refused_logins) >= 1, "%s: the server refused logins "
            "over its 15 connections" % label)
    t.all_ok("%s: all %d reads succeeded, none got EIO" % (
        label, len(paths)), bad)
    t.check(len(srv.refused_logins) <= 10, "%s: the pool shrank instead of "
            "hammering (%d refused)" % (label, len(srv.refused_logins)))
    err = m.stderr_text().lower()
    t.check("authentication" not in err and "password" not in err,
            "%s: not taken for a wrong password" % label)
    t.check("made no progress" not in err, "%s: no read waited for the "
            "timeout: a job refused a connection goes to a live one at "
            "once" % label, h.short(err, 400))
    q.check_unmount(t, m, label)


def case_microsoft(t):
    label = "microsoft"
    srv = pv.microsoft()
    srv.start()
    m = q.mount(srv, args=["--connections=8"]).start()
    paths, results = read_all(m)
    bad = bad_reads(m, srv.account, paths, results)
    t.all_ok("%s: all %d messages read right (sizes were estimates)" % (
        label, len(paths)), bad)
    sizes = [p for p in paths if os.stat(p).st_size != len(
        results[p][1])]
    t.equal(sizes, [], "%s: st_size exact after reading" % label)
    h.log("#   %s: %d logins throttled, %d connections in all" % (
        label, len(srv.throttled), len(srv.conns)))
    t.check(len(srv.conns) <= 16, "%s: throttling backs off: %d connection "
            "attempts" % (label, len(srv.conns)))
    err = m.stderr_text().lower()
    t.check("authentication" not in err and "password" not in err,
            "%s: throttling is not taken for a wrong password" % label,
            h.short(err, 300))
    t.check("made no progress" not in err, "%s: no read waited for the "
            "timeout behind a throttled login" % label, h.short(err, 400))
    for word in ("CONDSTORE", "QRESYNC", "RETURN", "NOTIFY"):
        t.equal(srv.count(word), 0, "%s: no %s used" % (label, word))
    t.check(h.wait_for(lambda: srv.count(r"^IDLE$") >= 1, 20),
            "%s: live updates by IDLE" % label)
    q.check_unmount(t, m, label)


def case_icloud(t):
    label = "icloud"
    srv = pv.icloud()
    srv.start()
    m = q.mount(srv).start()
    q.compare_account(t, m, srv.account, label, read=False)
    q.check_unmount(t, m, label)
    m = q.mount(srv, cache_dir=m.cache_dir).start()
    q.compare_account(t, m, srv.account, label + " (remount)")
    t.equal(srv.count(r"QRESYNC"), 0, "%s: QRESYNC never used (known "
            "broken on this server)" % label)
    q.check_unmount(t, m, label)


def case_yahoo(t):
    label = "yahoo"
    srv = pv.yahoo()
    srv.start()
    m = q.mount(srv, timeout_s=10).start()
    q.compare_account(t, m, srv.account, label)
    h.log("#   %s: %d refusals, at most %d messages per command" % (
        label, srv.limit_refusals, srv.most_touched))
    t.check(srv.limit_refusals <= 3, "%s: the limit is learnt, not hit "
            "again and again (%d refusals)" % (label, srv.limit_refusals))
    q.check_unmount(t, m, label)
    # Deleted on the server while unmounted: the resync asks which UIDs
    # remain (UID SEARCH), in ranges too.
    bulk = srv.account.folder("Bulk")
    del bulk.messages[10:13]
    srv.limit_refusals = 0
    m = q.mount(srv, timeout_s=10, cache_dir=m.cache_dir).start()
    q.compare_account(t, m, srv.account, label + " (remount)", read=False)
    t.check(srv.count(r"^UID SEARCH UID \d+:\d+") >= 2,
            "%s: UID SEARCH in UID ranges" % label)
    t.check(srv.limit_refusals <= 3, "%s (remount): %d refusals" % (
        label, srv.limit_refusals))
    q.check_unmount(t, m, label)


def all_mail_paths(m):
    d = os.path.join(m.mountpoint, "[Gmail]", "All Mail")
    listing = h.list_message_files(d)
    return [os.path.join(d, listing[u]) for u in sorted(listing)]


def case_gmail_prefetch(t):
    label = "gmail_prefetch"
    srv, shared = pv.gmail(n=40)
    srv.start()
    m = q.mount(srv).start()
    paths = all_mail_paths(m)
    for p in paths[:8]:
        h.cat(p)
    sent = sum(srv.body_sends.values())
    t.equal(sent, 8, "%s: by default on Gmail, 8 files read in order cost "
            "8 downloads (no prefetch)" % label)
    q.check_unmount(t, m, label)
    srv.body_sends.clear()
    m = q.mount(srv, args=["--prefetch=ahead"]).start()
    paths = all_mail_paths(m)
    for p in paths[:8]:
        h.cat(p)
    h.wait_for(lambda: sum(srv.body_sends.values()) > 8, 10)
    t.check(sum(srv.body_sends.values()) > 8, "%s: --prefetch=ahead fetches "
            "ahead of the reader (%d downloads)" % (
                label, sum(srv.body_sends.values())))
    q.check_unmount(t, m, label)


def case_gmail_quota(t):
    quota_case(t, "gmail_quota", bye=False)


def case_gmail_quota_bye(t):
    quota_case(t, "gmail_quota_bye", bye=True)


def quota_case(t, label, bye):
    srv, shared = pv.gmail(n=20, cap_bytes=2000, cap_bye=bye)
    srv.start()
    m = q.mount(srv, env={"IMAPFS_TEST_QUOTA_RETRY_MS": "3000"}).start()
    paths = all_mail_paths(m)
    want = {p: srv.account.folder("[Gmail]/All Mail").by_uid(
        h.uid_of_name(os.path.basename(p))).body for p in paths}
    done, failed = [], None
    for p in paths:
        rc, data, err, _ = h.cat(p)
        if rc != 0:
            failed = (p, rc, err)
            break
        t.require(data == want[p], "%s: %s read right" % (label, p))
        done.append(p)
    t.require(failed is not None and q.is_eio(failed[1], failed[2]),
              "%s: a read over the cap fails with EIO (%d read before)" % (
                  label, len(done)), str(failed))
    t.check(len(done) >= 2, "%s: reads worked until the cap" % label)
    fetches = srv.count(r"UID FETCH .*BODY\.PEEK\[\]")
    again = [h.cat(p) for p in paths[len(done):len(done) + 5]]
    t.check(all(q.is_eio(r[0], r[2]) for r in again),
            "%s: further uncached reads fail with EIO" % label)
    t.equal(srv.count(r"UID FETCH .*BODY\.PEEK\[\]"), fetches,
            "%s: ... without asking the server" % label)
    cached = [p for p in done if h.cat(p)[1] != want[p]]
    t.equal(cached, [], "%s: what is cached stays readable" % label)
    lines = [x for x in m.stderr_text().splitlines()
             if "stopped downloads" in x]
    t.check(len(lines) == 1, "%s: one log line says what happened" % label,
            h.short(m.stderr_text(), 600))
    t.check("auth" not in m.stderr_text().lower(), "%s: not taken for an "
            "authentication failure" % label)
    # A new mount (no page cache) while the cap holds: the disk cache
    # serves what was read.
    q.check_unmount(t, m, label)
    old = m.mountpoint
    m = q.mount(srv, cache_dir=m.cache_dir,
                env={"IMAPFS_TEST_QUOTA_RETRY_MS": "3000"}).start()

    def moved(p):
        return os.path.join(m.mountpoint, os.path.relpath(p, old))
    want = {moved(p): b for p, b in want.items()}
    done = [moved(p) for p in done]
    failed = (moved(failed[0]),) + failed[1:]
    cached = [p for p in done if h.cat(p)[1] != want[p]]
    t.equal(cached, [], "%s: after a remount, cached messages are read from "
            "the disk cache while the server refuses" % label)
    r = h.cat(failed[0])
    t.check(q.is_eio(r[0], r[2]), "%s: and uncached ones fail with EIO" %
            label)
    srv.cap_lifted = True
    ok = h.wait_for(lambda: h.cat(failed[0])[0] == 0, 15)
    t.check(ok, "%s: once the server allows downloads, after the backoff, "
            "reads work again" % label)
    t.check(any("allows downloads again" in x
                for x in m.stderr_text().splitlines()),
            "%s: and the daemon says so" % label)
    q.check_unmount(t, m, label)


CASES = [case_gmail_labels, case_gmail_label_deleted, case_fastmail_emailid, case_gmail_no_id, case_gmail_connections,
         case_gmail_prefetch, case_gmail_quota, case_gmail_quota_bye,
         case_microsoft, case_icloud, case_yahoo]

if __name__ == "__main__":
    q.run_cases("test_providers", CASES)
