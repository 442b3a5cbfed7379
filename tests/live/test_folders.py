#!/usr/bin/env python3
"""test_folders: folders created, renamed and deleted on the server while
mounted appear and vanish without a remount, and the paths under a vanished
folder fail with ENOENT.

    test_folders.py notify   Dovecot as it is (NOTIFY), default
                             --poll-interval (60 s): each change shows
                             within 5 s. Every scenario runs against a
                             Dovecot and a mount of its own: Dovecot
                             2.3.19's NOTIFY sessions lose events (and
                             report a corrupt list index) when several
                             folder changes follow each other while other
                             sessions have those folders open, which would
                             test Dovecot rather than imapfs.
    test_folders.py poll     Dovecot without NOTIFY (imap_capability
                             override; IDLE stays), --poll-interval=5: the
                             daemon IDLEs on INBOX, so new INBOX mail still
                             shows within 5 s; folder changes show within
                             one poll interval plus 5 s. One Dovecot and
                             one mount for all scenarios.
"""

import errno
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import livelib as L  # noqa: E402
from livelib import h  # noqa: E402

SEED = [
    ("INBOX", [("inbox-1", "Inbox one")]),
    ("Alpha", [("alpha-1", "Alpha one")]),
    ("Alpha/Gone", [("gone-1", "Gone one")]),
    ("Beta", [("beta-1", "Beta one")]),
    ("Old", [("old-1", "Old one"), ("old-2", "Old two")]),
    ("Parent", [("parent-1", "Parent one")]),
    ("Parent/Child", [("child-1", "Child one")]),
]
TOP = ["Alpha", "Beta", "INBOX", "Old", "Parent"]


class Setup:
    """A Dovecot seeded with SEED and a mount that has listed every
    folder and read Beta's and Old's messages."""

    def __init__(self, t, variant, tag):
        self.dc = L.LiveDovecot()
        self.dc.start()
        if variant == "poll":
            caps = self.dc.without_caps("NOTIFY")
            t.check("IDLE" in caps and "NOTIFY" not in caps,
                    "Dovecot offers IDLE but not NOTIFY", " ".join(caps))
            args = ["--poll-interval=5", "-d"]
            self.live = 10.0  # one poll interval, plus 5 s
        else:
            args = ["-d"]
            self.live = 5.0
        L.seed_imap(self.dc, SEED)
        self.admin = L.Admin(self.dc)
        h.add_cleanup(self.admin.close)
        self.m = h.Mount(self.dc, args=args).start()
        L.keep_logs(self.dc, self.m, "folders-%s-%s" % (variant, tag))
        m = self.m
        problems = []
        want = {"": TOP, "Alpha": ["1 Alpha one.eml", "Gone"],
                "Alpha/Gone": ["1 Gone one.eml"], "Beta": ["1 Beta one.eml"],
                "INBOX": ["1 Inbox one.eml"],
                "Old": ["1 Old one.eml", "2 Old two.eml"],
                "Parent": ["1 Parent one.eml", "Child"],
                "Parent/Child": ["1 Child one.eml"]}
        for d, names in want.items():
            got = L.ls(self.path(d))
            if got != names:
                problems.append("%s: %s, expected %s" % (d or "/", got,
                                                         names))
        for p in ("Beta/1 Beta one.eml", "Old/1 Old one.eml"):
            rc, data, err, _ = h.cat(self.path(p))
            if rc != 0 or not data:
                problems.append("%s: cat exit %s %s" % (p, rc, err.strip()))
        t.all_ok("[%s] the mount lists every seeded folder and reads" % tag,
                 problems)

    def path(self, rel):
        return os.path.join(self.m.mountpoint, *rel.split("/")) if rel \
            else self.m.mountpoint

    def wait(self, rel, pred):
        return L.wait_ls(self.path(rel), pred, self.live)

    def finish(self, t, tag, variant):
        m = self.m
        sent = [ln for ln in m.stderr_text().splitlines()
                if re.search(r"\bC: A\d+ ", ln)]
        notify = [ln for ln in sent if " NOTIFY " in ln]
        idle = [ln for ln in sent if ln.rstrip().endswith(" IDLE")]
        if variant == "poll":
            t.check(not notify and idle, "[%s] the daemon IDLEd and sent "
                    "no NOTIFY (%d IDLE)" % (tag, len(idle)),
                    h.short(notify))
        else:
            t.check(notify, "[%s] the daemon sent NOTIFY" % tag)
        t.check(m.proc.poll() is None, "[%s] the daemon is still running"
                % tag)
        log = open(self.dc.log_path, errors="replace").read()
        bad = [ln for ln in log.splitlines()
               if "Corrupted mailbox list index" in ln or
               "killed with signal" in ln]
        t.check(not bad, "[%s] Dovecot reported no list index corruption "
                "and no crash (else the server, not imapfs, lost events)"
                % tag, h.short(bad, 400))


def enoent(t, what, path):
    e = L.open_errno(path)
    t.check(e == errno.ENOENT, what, "got %s" % L.errname(e))


def sc_create(t, s, tag):
    s.admin.create("New")
    ok, secs, names = s.wait("", lambda n: "New" in n)
    t.check(ok, "[%s] a folder created on the server appears within "
            "%.0f s (%.1fs)" % (tag, s.live, secs), h.short(names))
    t.equal(L.ls(s.path("New")), [], "[%s] it lists empty" % tag)
    s.admin.append("New", L.message("new-1", "New one"))
    ok, secs, names = s.wait("New", lambda n: n == ["1 New one.eml"])
    t.check(ok, "[%s] mail appended to it shows within %.0f s (%.1fs)" % (
        tag, s.live, secs), h.short(names))


def sc_sub(t, s, tag):
    s.admin.create("Alpha/Sub")
    ok, secs, names = s.wait("Alpha", lambda n: "Sub" in n)
    t.check(ok, "[%s] a subfolder created on the server appears in its "
            "parent within %.0f s (%.1fs)" % (tag, s.live, secs),
            h.short(names))
    t.check(1 in (L.uids_in(names) or ()), "[%s] the parent still lists "
            "its message" % tag, h.short(names))


def sc_rename(t, s, tag):
    s.admin.rename("Beta", "Gamma")
    ok, secs, names = s.wait("", lambda n: "Gamma" in n and "Beta" not in n)
    t.check(ok, "[%s] a folder renamed on the server shows under its new "
            "name only, within %.0f s (%.1fs)" % (tag, s.live, secs),
            h.short(names))
    t.equal(L.ls(s.path("Gamma")), ["1 Beta one.eml"],
            "[%s] the renamed folder lists its message" % tag)
    enoent(t, "[%s] the old path of its (read) message fails with ENOENT"
           % tag, s.path("Beta/1 Beta one.eml"))
    rc, data, err, _ = h.cat(s.path("Gamma/1 Beta one.eml"))
    t.check(rc == 0 and data == s.admin.body("Gamma", 1),
            "[%s] the message reads under the new name" % tag, err)


def sc_renamep(t, s, tag):
    s.admin.rename("Parent", "Moved")
    ok, secs, names = s.wait("", lambda n: "Moved" in n and "Parent" not in n)
    t.check(ok, "[%s] a folder with a child renamed on the server shows "
            "under its new name within %.0f s (%.1fs)" % (tag, s.live, secs),
            h.short(names))
    t.equal(L.ls(s.path("Moved")), ["1 Parent one.eml", "Child"],
            "[%s] the renamed parent lists its message and its child" % tag)
    t.equal(L.ls(s.path("Moved/Child")), ["1 Child one.eml"],
            "[%s] the child lists its message under the new parent" % tag)
    enoent(t, "[%s] the child's old message path fails with ENOENT" % tag,
           s.path("Parent/Child/1 Child one.eml"))


def sc_delete(t, s, tag):
    s.admin.delete("Old")
    ok, secs, names = s.wait("", lambda n: "Old" not in n)
    t.check(ok, "[%s] a listed folder deleted on the server vanishes "
            "within %.0f s (%.1fs)" % (tag, s.live, secs), h.short(names))
    enoent(t, "[%s] the path of its read (cached) message fails with "
           "ENOENT" % tag, s.path("Old/1 Old one.eml"))
    enoent(t, "[%s] the path of its unread message fails with ENOENT" % tag,
           s.path("Old/2 Old two.eml"))


def sc_delsub(t, s, tag):
    s.admin.delete("Alpha/Gone")
    ok, secs, names = s.wait("Alpha", lambda n: "Gone" not in n)
    t.check(ok, "[%s] a subfolder deleted on the server vanishes within "
            "%.0f s (%.1fs)" % (tag, s.live, secs), h.short(names))
    enoent(t, "[%s] its message path fails with ENOENT" % tag,
           s.path("Alpha/Gone/1 Gone one.eml"))


def sc_mail(t, s, tag):
    """New mail is live in both variants (NOTIFY or IDLE on INBOX); in
    another listed folder it takes NOTIFY or the poll."""
    L.ls(s.path("INBOX"))
    uid = s.admin.append("INBOX", L.message("inbox-2", "Inbox two"))
    ok, secs, names = L.wait_ls(s.path("INBOX"),
                                lambda n: uid in L.uids_in(n), 5.0)
    t.check(ok, "[%s] new INBOX mail shows within 5 s (%.1fs)" % (tag, secs),
            h.short(names))
    L.ls(s.path("Alpha"))
    uid = s.admin.append("Alpha", L.message("alpha-2", "Alpha two"))
    ok, secs, names = s.wait("Alpha", lambda n: uid in L.uids_in(n))
    t.check(ok, "[%s] new mail in another listed folder shows within "
            "%.0f s (%.1fs)" % (tag, s.live, secs), h.short(names))


SCENARIOS = [("create", sc_create), ("subfolder", sc_sub),
             ("rename", sc_rename), ("rename-parent", sc_renamep),
             ("delete", sc_delete), ("delete-subfolder", sc_delsub),
             ("mail", sc_mail)]


def body(t, variant):
    if variant == "poll":
        s = Setup(t, variant, "all")
        for tag, fn in SCENARIOS:
            fn(t, s, tag)
        t.equal(sorted(L.ls(s.m.mountpoint)),
                ["Alpha", "Gamma", "INBOX", "Moved", "New"],
                "the root lists exactly the server's folders at the end")
        t.equal(L.ls(s.path("Alpha")), ["1 Alpha one.eml",
                                          "2 Alpha two.eml", "Sub"],
                "Alpha lists exactly its messages and children at the end")
        s.finish(t, "all", variant)
        L.unmount(t, s.m)
        return
    for tag, fn in SCENARIOS:
        s = Setup(t, variant, tag)
        fn(t, s, tag)
        s.finish(t, tag, variant)
        L.unmount(t, s.m, tag)
        s.dc.stop()


if __name__ == "__main__":
    variant = sys.argv[1] if len(sys.argv) > 1 else "notify"
    if variant not in ("notify", "poll"):
        sys.exit("usage: test_folders.py notify|poll")
    h.Test("live: folder changes (%s)" % variant).run(
        lambda t: body(t, variant))
