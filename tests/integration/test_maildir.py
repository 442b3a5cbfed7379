#!/usr/bin/env python3
"""test_maildir: --layout=maildir against a real Dovecot seeded with the
core messages. Every folder holds cur/ new/ tmp/; cur/ names carry UID,
UIDVALIDITY and the flags the server gives (FETCH FLAGS); the bytes equal
BODY.PEEK[]; a server folder named "cur" shows as "cur~folder"; notmuch
indexes the mount and finds a known subject; mutt opens a folder in batch
mode and counts its messages; Python's mailbox.Maildir reads every
message; a flag change made by another client renames the file within the
live-update delay, and the old name is gone."""

import mailbox
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import imapfs_harness as h  # noqa: E402

LETTERS = {"\\Draft": "D", "\\Flagged": "F", "\\Answered": "R",
           "\\Seen": "S", "\\Deleted": "T"}


def maildir_flags(flags):
    return "".join(sorted(LETTERS[f] for f in flags if f in LETTERS))


def uidvalidity(client, folder):
    typ, data = client.conn.status(
        '"%s"' % folder.replace("\\", "\\\\").replace('"', '\\"'),
        "(UIDVALIDITY)")
    m = re.search(rb"UIDVALIDITY (\d+)", data[0])
    return int(m.group(1))


def expected_names(client, raw):
    v = uidvalidity(client, raw)
    return {"%d.%d.imapfs:2,%s" % (uid, v, maildir_flags(md["flags"])): uid
            for uid, md in client.metadata(raw).items()}


def check_folders(t, m, client):
    problems = []
    total = 0
    for f in client.list_folders():
        d = m.path(*[n + "~folder" if n in ("cur", "new", "tmp") else n
                     for n in f["name"].split("/")])
        if not os.path.isdir(d):
            problems.append("%s: no directory" % f["name"])
            continue
        for sub in ("cur", "new", "tmp"):
            if not os.path.isdir(os.path.join(d, sub)):
                problems.append("%s: no %s/" % (f["name"], sub))
        if not f["selectable"]:
            continue
        want = expected_names(client, f["raw"])
        got = sorted(os.listdir(os.path.join(d, "cur")))
        if got != sorted(want):
            problems.append("%s: cur/ has %s, the server says %s" %
                            (f["name"], h.short(got), h.short(sorted(want))))
            continue
        for sub in ("new", "tmp"):
            if os.listdir(os.path.join(d, sub)):
                problems.append("%s: %s/ is not empty" % (f["name"], sub))
        bodies = dict(client.fetch_bodies(f["raw"]))
        for name, uid in want.items():
            with open(os.path.join(d, "cur", name), "rb") as fh:
                if fh.read() != bodies[uid]:
                    problems.append("%s/%s: bytes differ" % (f["name"],
                                                             name))
            total += 1
    t.all_ok("every folder is a Maildir; cur/ names carry the server's "
             "flags and the files its bytes (%d messages)" % total, problems)
    return total


def check_notmuch(t, m, total):
    if not shutil.which("notmuch"):
        h.log("# notmuch not installed: notmuch check skipped")
        return
    home = h.make_tempdir("imapfs-notmuch-")
    conf = os.path.join(home, "config")
    os.makedirs(os.path.join(home, "db"))
    with open(conf, "w") as f:
        f.write("[database]\npath=%s\nmail_root=%s\n[new]\ntags=unread\n"
                "[user]\nname=T\nprimary_email=t@example.org\n"
                "[maildir]\nsynchronize_flags=false\n"
                % (os.path.join(home, "db"), m.mountpoint))
    env = dict(os.environ, NOTMUCH_CONFIG=conf, HOME=home)
    r = h.run(["notmuch", "new"], env=env, check=False, text=True,
              timeout=300)
    h.log("# notmuch new: %s" % h.short(r.stdout + r.stderr))
    t.equal(r.returncode, 0, "notmuch new over the mount succeeds")
    r = h.run(["notmuch", "count", "--output=files", "*"], env=env,
              check=False, text=True)
    t.equal(r.stdout.strip(), str(total),
            "notmuch indexed every message file")
    r = h.run(["notmuch", "search", "--output=files",
               "subject:\"Hello from imapfs\""], env=env, check=False,
              text=True)
    files = r.stdout.split()
    t.check(len(files) == 1 and "/INBOX/cur/1." in files[0],
            "notmuch search finds the known message in INBOX/cur",
            r.stdout + r.stderr)


def check_mutt(t, m, n_inbox):
    mutt = shutil.which("mutt") or shutil.which("neomutt")
    if not mutt:
        h.log("# mutt not installed: mutt check skipped")
        return
    home = h.make_tempdir("imapfs-mutt-")
    os.makedirs(os.path.join(home, "Mail"))  # else mutt asks to create it
    out = os.path.join(home, "out")
    rc = os.path.join(home, "muttrc")
    # Batch mode: tag every message, pipe each one to a command that
    # counts it, quit. No "^" in push strings: mutt reads it as Ctrl.
    with open(rc, "w") as f:
        f.write('set quit=yes\nset pipe_split=yes\nset wait_key=no\n'
                'push "<tag-pattern>~A<enter><tag-prefix><pipe-message>'
                'cat > /dev/null; echo m >> %s<enter><quit>"\n' % out)
    env = dict(os.environ, HOME=home, TERM="dumb")
    r = h.run(["script", "-qec", "%s -n -R -F %s -f %s" % (
        mutt, rc, m.path("INBOX")), "/dev/null"], env=env, check=False,
        timeout=120, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT)
    got = open(out).read().split() if os.path.exists(out) else []
    t.check(r.returncode == 0 and len(got) == n_inbox,
            "%s -R opens INBOX in batch mode and pipes its %d messages "
            "(piped %d)" % (os.path.basename(mutt), n_inbox, len(got)),
            h.short(r.stdout.decode("utf-8", "replace"), 400))


def check_python_reader(t, m, n_inbox, client):
    md = mailbox.Maildir(m.path("INBOX"), factory=None, create=False)
    msgs = list(md.itervalues())
    t.equal(len(msgs), n_inbox, "mailbox.Maildir reads every INBOX message")
    subjects = {str(x["Subject"]) for x in msgs}
    t.check("Hello from imapfs" in subjects,
            "mailbox.Maildir sees the known subject", h.short(subjects))


def check_rename(t, m, client):
    want = expected_names(client, "INBOX")
    cur = m.path("INBOX", "cur")
    before = set(os.listdir(cur))
    old = next(n for n, uid in want.items() if uid == 1)
    os.stat(os.path.join(cur, old))  # the kernel knows the old name
    client.conn.select("INBOX")
    client.conn.uid("STORE", "1", "+FLAGS", r"(\Flagged \Answered)")
    client.selected = None
    new_want = expected_names(client, "INBOX")
    new = next(n for n, uid in new_want.items() if uid == 1)
    t.check(new != old and "F" in new.split(":2,")[1],
            "the server took the change", new)
    ok = h.wait_for(lambda: new in os.listdir(cur) and
                    old not in os.listdir(cur), timeout=60, interval=0.2)
    t.check(ok, "a flag change on the server renames the file in cur/",
            "%s -> %s: %s" % (old, new, h.short(os.listdir(cur))))
    t.check(not os.path.exists(os.path.join(cur, old)),
            "the old name is gone (ENOENT)")
    t.check(os.path.isfile(os.path.join(cur, new)), "the new name opens")
    t.equal(len(set(os.listdir(cur))), len(before),
            "cur/ still holds every message")
    r = h.run(["ls", "-l", cur], check=False, text=True)
    t.check(r.returncode == 0 and new in r.stdout, "ls -l of cur/ works",
            h.short(r.stdout + r.stderr))


def body(t):
    dc = h.Dovecot()
    h.seed_core(dc, large=False)
    w = h.MaildirWriter(dc)
    w.add("cur", h.make_message("c1", "In a folder named cur", 1_700_000_000,
                                body="x\n"))
    w.finish()
    dc.start()
    client = dc.client()
    h.add_cleanup(client.close)
    m = h.Mount(dc, args=["--layout=maildir"]).start()

    root = sorted(os.listdir(m.mountpoint))
    t.check({"cur", "new", "tmp", "cur~folder", "INBOX"} <= set(root),
            "the root is a Maildir too and the folder named cur shows as "
            "cur~folder", root)
    t.equal(len(os.listdir(m.path("cur~folder", "cur"))), 1,
            "the folder named cur keeps its message")
    total = check_folders(t, m, client)
    n_inbox = len(os.listdir(m.path("INBOX", "cur")))
    t.check(not any(n.endswith(".eml") for n in os.listdir(m.path("INBOX"))),
            "no .eml files beside cur/ new/ tmp/")
    check_python_reader(t, m, n_inbox, client)
    check_notmuch(t, m, total)
    check_mutt(t, m, n_inbox)
    # .search links lead to the files in cur/.
    q = m.path("INBOX", ".search", "SUBJECT Hello")
    links = [os.path.join(q, n) for n in os.listdir(q)]
    t.check(links and all(os.path.isfile(p) and "/cur/" in os.readlink(p)
                          for p in links),
            ".search links lead to the files in cur/",
            [os.readlink(p) for p in links])
    check_rename(t, m, client)
    want = expected_names(client, "INBOX")
    raw1 = client.fetch_body("INBOX", 1)
    with open(m.path("INBOX", "cur", next(
            n for n, uid in want.items() if uid == 1)), "rb") as f:
        f.read()  # cached for the offline read below
    t.equal(m.unmount(), 0, "the daemon exits 0")

    # Offline on the same cache: the names carry the flags last seen.
    off = h.Mount(dc, cache_dir=m.cache_dir,
                  args=["--layout=maildir"]).start()
    os.listdir(off.path("INBOX", "cur"))
    dc.stop()
    t.equal(sorted(os.listdir(off.path("INBOX", "cur"))), sorted(want),
            "offline: cur/ names carry the flags last seen")
    name = next(n for n, uid in want.items() if uid == 1)
    with open(off.path("INBOX", "cur", name), "rb") as f:
        t.check(f.read() == raw1, "offline: the renamed file reads its "
                "bytes from the cache")
    t.equal(off.unmount(), 0, "the offline daemon exits 0")
    t.all_ok("no sanitizer report or GLib critical",
             m.bug_reports() + off.bug_reports())


if __name__ == "__main__":
    sys.exit(h.Test("maildir").run(body))
