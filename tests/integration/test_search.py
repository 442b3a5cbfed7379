#!/usr/bin/env python3
"""test_search: server-side search as directories, against a real Dovecot.

DIR/.search/QUERY lists one symbolic link per match: for FROM, SUBJECT with
non-ASCII text, SINCE, UNSEEN, LARGER, OR, a combination and a full-text
search, the UIDs the links point at are exactly those of the same UID
SEARCH sent directly with imaplib, and every link leads to the message
file. MOUNT/.search/QUERY searches every folder, nested ones included, with
links such as ../../Work/Sub/1 x.eml (two matches of the same name in two
folders both show). A query the server rejects, or one that is not valid
criteria, fails with EINVAL and one log line with the server's words;
"%2F" stands for '/'; ls MOUNT/.search lists the searches made; find,
ls -R and grep -r never send a SEARCH (counted in the -d log); grep -l
over the results fetches only those messages; cp -L copies the message; a new matching
message shows up in the results once the live update has seen it. The
same against a Dovecot without LITERAL+ and ESEARCH: synchronising
literals, plain SEARCH answers matched to their folders."""

import errno
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "live"))
import imapfs_harness as h  # noqa: E402
import livelib  # noqa: E402

DAY = 86400
BASE = 1796083200  # 1-Dec-2026 00:00 UTC


def msg(key, subject, date, body, sender, size_pad=0, encoded=False):
    if encoded:
        subject = h._b_word(subject)
    if size_pad:
        body += "\n" + ("x" * 75 + "\n") * (size_pad // 76)
    return h.make_message(key, subject, date, body=body,
                          from_addr=sender)


ALICE = "Alice Example <alice@example.org>"
BOB = "Bob Builder <bob@example.org>"
CAROL = "Carol <carol@example.org>"

# folder, key, subject, date, body, sender, flags, pad, encoded subject
SEED = [
    ("INBOX", "a1", "quarterly numbers", BASE - 30 * DAY,
     "the invoice needle-A is attached", ALICE, "S", 0, False),
    ("INBOX", "b1", "Grüße aus Köln", BASE - 10 * DAY, "hello", BOB, "",
     0, True),
    ("INBOX", "a2", "lunch", BASE + 1 * DAY, "big one", ALICE, "", 200000,
     False),
    ("INBOX", "c1", "Re: quarterly numbers", BASE + 2 * DAY,
     "see needle-A above", CAROL, "S", 0, False),
    ("Work", "a3", "project plan", BASE + 1 * DAY,
     "needle-A and deploy/rollback notes", ALICE, "", 0, False),
    ("Work", "b2", "Köln trip", BASE + 3 * DAY, "train", BOB, "S", 0, True),
    ("Work/Sub", "a4", "quarterly numbers", BASE + 4 * DAY,
     "needle-A nested", ALICE, "", 0, False),
]


def count_searches(m):
    """Searches the daemon ran, and SEARCH commands it sent that were not
    the listing's own UID SEARCH ALL."""
    text = m.stderr_text()
    runs = len(re.findall(r'search "', text))
    cmds = 0
    for line in text.splitlines():
        if re.search(r"C: A\d+ (UID SEARCH|ESEARCH)", line) and \
                not re.search(r"SEARCH (RETURN \(ALL\) )?ALL$", line):
            cmds += 1
    return runs, cmds


def server_search(client, raw, *criteria, literal=None):
    client.examine(raw)
    c = client.conn
    if literal is not None:
        c.literal = literal.encode()
    typ, data = c.uid("SEARCH", *criteria)
    if typ != "OK":
        raise h.TestFailure("direct UID SEARCH %s: %s %s" %
                            (criteria, typ, data))
    return {int(x) for x in data[0].split()}


def link_uids(t, d, label):
    """{uid} of the links in d, checking each one's form and target."""
    uids = set()
    problems = []
    for name in os.listdir(d):
        p = os.path.join(d, name)
        target = os.readlink(p)
        if not target.startswith("../../") or not target.endswith(".eml"):
            problems.append("%s -> %s" % (name, target))
            continue
        if not os.path.isfile(p):
            problems.append("%s -> %s does not lead to a file" %
                            (name, target))
        uids.add(int(os.path.basename(target).split(" ")[0].split(".")[0]))
    t.all_ok("%s: every link is ../../NAME.eml and leads to a file" % label,
             problems)
    return uids


def check_folder_queries(t, m, client):
    inbox = m.path("INBOX", ".search")
    cases = [
        ("FROM alice", ("FROM", "alice"), None),
        ("SUBJECT Köln", ("CHARSET", "UTF-8", "SUBJECT"), "Köln"),
        ("SINCE 20-Nov-2026", ("SINCE", "20-Nov-2026"), None),
        ("UNSEEN", ("UNSEEN",), None),
        ("LARGER 100000", ("LARGER", "100000"), None),
        ("OR FROM bob FROM carol", ("OR", "FROM", "bob", "FROM", "carol"),
         None),
        ("UNSEEN FROM alice SINCE 30-Nov-2026",
         ("UNSEEN", "FROM", "alice", "SINCE", "30-Nov-2026"), None),
        ("needle-A", ("TEXT", "needle-A"), None),
        ("HEADER Message-ID a1@imapfs.test",
         ("HEADER", "Message-ID", "a1@imapfs.test"), None),
    ]
    for query, criteria, lit in cases:
        want = server_search(client, "INBOX", *criteria, literal=lit)
        got = link_uids(t, os.path.join(inbox, query), "INBOX " + query)
        t.equal(sorted(got), sorted(want),
                "INBOX/.search/%s: the UIDs of the same UID SEARCH" % query)
    t.check(server_search(client, "INBOX", "UNSEEN") != set(),
            "the seed makes the UNSEEN search non-trivial")
    # Nested folder, non-ASCII full text
    want = server_search(client, "Work", "CHARSET", "UTF-8", "TEXT",
                         literal="Köln")
    got = link_uids(t, m.path("Work", ".search", "Köln"), "Work Köln")
    t.equal(sorted(got), sorted(want),
            "Work/.search/Köln (full text, not ASCII): same UIDs")
    got = link_uids(t, m.path("Work", ".search", "deploy%2Frollback"),
                    "Work %2F")
    t.equal(sorted(got), [1], "%2F in a query stands for '/'")


def check_account(t, m, client, folders):
    d = m.path(".search", "needle-A")
    names = sorted(os.listdir(d))
    targets = {n: os.readlink(os.path.join(d, n)) for n in names}
    want = set()
    for f in folders:
        for uid in server_search(client, f, "TEXT", "needle-A"):
            want.add((f, uid))
    got = set()
    for n, target in targets.items():
        rel = target[len("../../"):]
        folder, fname = rel.rsplit("/", 1)
        got.add((folder, int(fname.split(" ")[0])))
    t.equal(sorted(got), sorted(want),
            "MOUNT/.search/needle-A: every folder's matches, nested too")
    t.check(any(v.startswith("../../Work/Sub/") for v in targets.values()),
            "a link into a nested folder reads ../../Work/Sub/NAME",
            str(targets))
    t.all_ok("every account-wide link leads to its message file",
             ["%s -> %s" % (n, v) for n, v in targets.items()
              if not os.path.isfile(os.path.join(d, n))])
    t.equal(len(names), len(want),
            "two matches of the same name in two folders both show")
    top = os.listdir(m.path(".search"))
    t.check("needle-A" in top, "ls MOUNT/.search lists the searches made",
            str(top))


def check_rejected(t, m):
    for query, why in (("SINCE 1-Foo-2026", "server"),
                       ("FROM", "local")):
        try:
            os.listdir(m.path("INBOX", ".search", query))
            t.check(False, "%r is refused" % query)
        except OSError as e:
            t.equal(e.errno, errno.EINVAL,
                    "%r (%s check) fails with EINVAL" % (query, why))
    lines = [ln for ln in m.stderr_text().splitlines()
             if 'search "SINCE 1-Foo-2026" failed' in ln]
    t.equal(len(lines), 1, "one log line for the refused query")
    t.check(lines and "refused" in lines[0],
            "the log line holds the server's answer", str(lines))
    t.check(not os.path.exists(m.path("INBOX", ".search", ".hidden")),
            "a dot name in .search is no query")


def check_walks(t, m):
    before = count_searches(m)
    h.run(["find", m.mountpoint], timeout=120)
    h.run(["ls", "-lR", m.mountpoint], timeout=120)
    h.run(["grep", "-rl", "needle-A", m.mountpoint], timeout=120,
          check=False)
    found = h.run(["find", m.mountpoint, "-name", "*.search*"],
                  timeout=120).stdout
    t.equal(found.strip(), b"", "find does not see .search")
    t.equal(count_searches(m), before,
            "find, ls -R and grep -r send no SEARCH (counted in the -d "
            "log)")


def check_grep(t, m, client):
    d = m.path("INBOX", ".search", "FROM alice")
    fetched_before = fetched_uids(m)
    r = subprocess.run(["grep", "-l", "needle-A", "--"] +
                       [os.path.join(d, n) for n in sorted(os.listdir(d))],
                       stdout=subprocess.PIPE, timeout=60)
    got = {int(os.path.basename(os.readlink(p)).split(" ")[0])
           for p in r.stdout.decode().split("\n") if p}
    want = server_search(client, "INBOX", "FROM", "alice", "TEXT",
                         "needle-A")
    t.equal(sorted(got), sorted(want), "grep -l over the results")
    extra = fetched_uids(m) - fetched_before
    alice = server_search(client, "INBOX", "FROM", "alice")
    t.check(extra <= alice,
            "grep -l fetched only messages of the results",
            "fetched %s, results %s" % (sorted(extra), sorted(alice)))
    dst = os.path.join(h.make_tempdir("imapfs-search-cp-"), "copy.eml")
    first = sorted(os.listdir(d))[0]
    subprocess.run(["cp", "-L", os.path.join(d, first), dst], check=True,
                   timeout=60)
    uid = int(os.path.basename(os.readlink(os.path.join(d, first)))
              .split(" ")[0])
    t.equal(h.read_file(dst), client.fetch_body("INBOX", uid),
            "cp -L copies the message's bytes")


def fetched_uids(m):
    """INBOX UIDs whose bodies the daemon fetched, from the -d log."""
    uids = set()
    for line in m.stderr_text().splitlines():
        mm = re.search(r"C: A\d+ UID FETCH ([0-9,:]+) \(UID BODY\.PEEK\[\]",
                       line)
        if mm:
            for part in mm.group(1).split(","):
                a, _, b = part.partition(":")
                uids.update(range(int(a), int(b or a) + 1))
    return uids


def check_new_mail(t, m, client):
    d = m.path("INBOX", ".search", "FROM alice")
    before = set(link_uids(t, d, "before new mail"))
    client.conn.append("INBOX", None, None,
                       msg("a5", "new one", time.time(), "fresh", ALICE))
    new_uid = max(server_search(client, "INBOX", "FROM", "alice"))
    ok = h.wait_for(lambda: new_uid in {
        int(os.readlink(os.path.join(d, n)).split("/")[-1].split(" ")[0])
        for n in os.listdir(d)}, 60, interval=0.5)
    t.check(ok and new_uid not in before,
            "a new matching message appears in the results")


def seed(dc):
    w = h.MaildirWriter(dc)
    for folder, key, subj, date, text, sender, flags, pad, enc in SEED:
        w.add(folder, msg(key, subj, date, text, sender, pad, enc), flags,
              date)
    w.finish()


def account_uids(client, folders, *criteria, literal=None):
    return {(f, u) for f in folders
            for u in server_search(client, f, *criteria, literal=literal)}


def link_places(d):
    out = set()
    for n in os.listdir(d):
        folder, fname = os.readlink(os.path.join(d, n))[6:].rsplit("/", 1)
        out.add((folder, int(fname.split(" ")[0])))
    return out


def without_literal_plus(t):
    """A server without LITERAL+ and ESEARCH: text that is not ASCII goes
    as synchronising literals (one folder after the other), answers come
    as plain SEARCH (matched to their folder by order)."""
    dc = livelib.LiveDovecot()
    seed(dc)
    dc.start()
    caps = dc.without_caps("LITERAL+", "LITERAL-", "ESEARCH", "MULTISEARCH")
    t.check("LITERAL+" not in caps and "ESEARCH" not in caps,
            "Dovecot offers neither LITERAL+ nor ESEARCH")
    folders = ["INBOX", "Work", "Work/Sub"]
    m = h.Mount(dc, args=["-d"]).start()
    with dc.client() as client:
        want = server_search(client, "INBOX", "CHARSET", "UTF-8", "SUBJECT",
                             literal="Köln")
        got = link_uids(t, m.path("INBOX", ".search", "SUBJECT Köln"),
                        "no LITERAL+: INBOX SUBJECT Köln")
        t.equal(sorted(got), sorted(want),
                "no LITERAL+: SUBJECT Köln, the UIDs of the same UID SEARCH")
        t.equal(sorted(link_places(m.path(".search", "FROM alice"))),
                sorted(account_uids(client, folders, "FROM", "alice")),
                "no ESEARCH: account-wide FROM alice, pipelined")
        t.equal(sorted(link_places(m.path(".search", "Köln"))),
                sorted(account_uids(client, folders, "CHARSET", "UTF-8",
                                    "TEXT", literal="Köln")),
                "no LITERAL+: account-wide Köln, folder after folder")
    text = m.stderr_text()
    t.check(re.search(r"UID SEARCH CHARSET UTF-8 SUBJECT \{5\}$", text,
                      re.M) and "{5+}" not in text,
            "the literal was a synchronising one")
    t.equal(m.unmount(), 0, "no LITERAL+: unmount, exit 0")


def body(t):
    dc = h.Dovecot()
    seed(dc)
    dc.start()
    m = h.Mount(dc, args=["-d"]).start()
    with dc.client() as client:
        root = os.listdir(m.mountpoint)
        t.check(".search" not in root and ".search" not in
                os.listdir(m.path("INBOX")), "readdir never lists .search")
        t.check(os.path.isdir(m.path(".search")) and
                os.path.isdir(m.path("INBOX", ".search")),
                ".search resolves by path")
        check_folder_queries(t, m, client)
        check_account(t, m, client, ["INBOX", "Work", "Work/Sub"])
        check_rejected(t, m)
        check_walks(t, m)
        check_grep(t, m, client)
        check_new_mail(t, m, client)
    t.equal(m.unmount(), 0, "unmount, exit 0")
    dc.stop()
    without_literal_plus(t)


if __name__ == "__main__":
    h.Test("search").run(body)
