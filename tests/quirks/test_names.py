#!/usr/bin/env python3
"""test_names: hostile folder names from LIST. Names with "/", ".", "..",
empty components, control characters, CR LF, invalid modified UTF-7 (and
valid mUTF-7 that decodes to "/", "..", NUL or a lone surrogate), names over
255 bytes, and names that collide after decoding (including "Inbox" next to
INBOX). Every folder must appear as a directory with a unique, safe name
(valid UTF-8, no "/", no control character, not "." or "..", at most 255
bytes), reachable and holding its own message, and nothing may be created
outside the mount point or the cache directory.

Cases: hostile_names, hostile_names_starttls
"""

import os
import re
import sys
import unicodedata

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import quirk_common as q  # noqa: E402

h = q.h
fk = q.fk

MARK = "qzx"

# (raw name, delimiter, LIST form or None, selectable)
NAMES = [
    (b"INBOX", "/", "atom", True),
    (b"Inbox", "/", None, True),                       # INBOX, other case
    (b"qzx/slash", ".", None, True),                   # '/' in a component
    (b"qzx-dots/./../..", "/", None, True),            # '.' and '..' parts
    (b"../../../tmp/qzx-escape", "/", None, True),     # path traversal
    (b"..", None, None, True),
    (b".", None, None, True),
    (b"../qzx-flat", None, None, True),                # NIL delimiter
    (b"qzx-empty//child", "/", None, True),            # empty component
    (b"qzx-ctl\x01\x1f\x7fend", "/", "literal", True),
    (b"qzx-tab\tname", "/", None, True),
    (b"qzx-crlf\r\nname", "/", "literal", True),
    (b"qzx-esc\x1b[31mred", "/", "literal", True),
    (b"qzx-c1\xc2\x85\xc2\x9bx", "/", "literal", True),  # raw UTF-8 C1
    (b"qzx-bad8\xff\xfe", "/", "literal", True),        # invalid UTF-8
    (b"qzx-bad&ZZZ-", "/", None, True),                 # leftover bits
    (b"qzx-open&AGE", "/", None, True),                 # unterminated
    (b"qzx-amp&", "/", None, True),
    (b"qzx-junk&Jjo!-", "/", None, True),               # '!' in base64
    (b"qzx-nulenc&AAA-x", "/", None, True),             # decodes to NUL
    (b"qzx-slashenc&AC8-x", "/", None, True),           # decodes to '/'
    (b"&AC4ALg-", "/", None, True),                     # decodes to '..'
    (b"qzx-nlenc&AAo-x", "/", None, True),              # decodes to LF
    (b"qzx-surr&2D0-x", "/", None, True),               # lone surrogate
    (b"qzx-long-" + b"x" * 300, "/", None, True),
    (b"qzx-long2-" + h.mutf7_encode("\u65e5\u672c\u8a9e" * 40).encode(),
     "/", None, True),                                  # 360 UTF-8 bytes
    (b"qzx-Entw&APw-rfe", "/", None, True),             # collide after
    (b"qzx-Entw\xc3\xbcrfe", "/", "literal", True),     # decoding
    (b"qzx-Q&-A", "/", None, True),
    (b"qzx-Q&A", "/", None, True),
    (b"qzx-pct%2E%25", "/", None, True),
    (b" ", "/", None, True),
    (b"qzx-trail ", "/", None, True),
    (b"qzx-parent", "/", None, False),                  # \Noselect parent
    (b"qzx-parent/\x01", "/", "literal", True),
    (b"qzx-nul\x00x", "/", "literal", True),            # may be dropped
]


def safe_name_problem(name):
    b = os.fsencode(name)
    if len(b) > 255:
        return "longer than 255 bytes (%d)" % len(b)
    try:
        text = b.decode("utf-8")
    except UnicodeDecodeError:
        return "not valid UTF-8"
    if text in (".", "..", ""):
        return "is %r" % text
    for ch in text:
        if ch == "/" or unicodedata.category(ch) == "Cc":
            return "contains %r" % ch
    return None


def raw_prefixes(raw, delim):
    if delim is None:
        return [raw]
    parts = raw.split(delim.encode())
    return [delim.encode().join(parts[:i]) for i in range(1, len(parts) + 1)]


def snapshot(path, skip=()):
    out = set()
    for root, dirs, files in os.walk(path):
        rel = os.path.relpath(root, path)
        if rel == ".":
            dirs[:] = [d for d in dirs if d not in skip]
        for n in dirs + files:
            out.add(os.path.normpath(os.path.join(rel, n)))
    return out


def names_case(t, label, tls):
    acct = fk.Account()
    keys = {}
    for i, (raw, delim, form, sel) in enumerate(NAMES):
        f = acct.add_folder(raw, delim=delim, form=form,
                            attrs=() if sel else ["\\Noselect"])
        if sel:
            key = "folder-%02d" % i
            f.add(q.message("Folder %d" % i, "Key %s.\n" % key, key),
                  date=q.T0 + i)
            keys[key] = raw
    srv = fk.FakeImap(acct, tls=tls).start()
    m = q.mount(srv, timeout_s=10)
    parent = m.tmp
    tmp_before = {n for n in os.listdir(os.path.dirname(parent))
                  if MARK in n}
    parent_before = snapshot(parent, skip=("mnt", "cache"))
    m.start()

    problems = []
    dirs = []
    found = {}
    for root, dnames, fnames in os.walk(m.mountpoint):
        for group in (dnames, fnames):
            if len(set(group)) != len(group):
                problems.append("%s: duplicate entries %r" % (
                    root, sorted(x for x in group if group.count(x) > 1)))
            for n in group:
                why = safe_name_problem(n)
                if why:
                    problems.append("%s/%r: %s" % (root, n, why))
        dirs.extend(os.path.join(root, d) for d in dnames)
        for n in fnames:
            p = os.path.join(root, n)
            rc, data, err, _ = h.cat(p)
            mk = re.search(rb"X-Quirk-Key: (folder-\d+)", data)
            if rc != 0 or not mk:
                problems.append("%s: cannot read its key (%s %s)" % (
                    p, rc, err.strip()))
                continue
            found.setdefault(mk.group(1).decode(), []).append(p)
    t.all_ok("%s: every name in the mount is unique and safe (%d "
             "directories)" % (label, len(dirs)), problems)

    missing = []
    twice = []
    for key, raw in sorted(keys.items()):
        paths = found.get(key, [])
        if b"\0" in raw:
            if len(paths) > 1:
                twice.append("%r: %s" % (raw, paths))
            continue
        if not paths:
            missing.append("%r (%s)" % (raw, key))
        elif len(paths) > 1:
            twice.append("%r: %s" % (raw, paths))
        else:
            body = acct.folder(raw).messages[0].body
            rc, data, err, _ = h.cat(paths[0])
            if data != body:
                missing.append("%r: wrong bytes at %s" % (raw, paths[0]))
    t.all_ok("%s: every selectable folder is a directory holding its own "
             "message (%d folders)" % (label, len(keys)), missing)
    t.all_ok("%s: no folder appears twice" % label, twice)

    prefixes = set()
    for raw, delim, form, sel in NAMES:
        if b"\0" not in raw:
            prefixes.update(raw_prefixes(raw, delim))
    t.check(len(dirs) in (len(prefixes), len(prefixes) + 1),
            "%s: one directory per distinct server name prefix (%d, got "
            "%d)" % (label, len(prefixes), len(dirs)))

    long_dirs = [d for d in os.listdir(m.mountpoint) if "long" in d]
    t.equal(len(long_dirs), 2, "%s: both long names are listed" % label)
    for d in long_dirs:
        st = os.stat(os.path.join(m.mountpoint, d))
        t.check(st is not None, "%s: %d-byte name can be looked up" % (
            label, len(os.fsencode(d))))

    # Nothing was created outside the mount or the cache.
    cache_problems = []
    for root, dnames, fnames in os.walk(m.cache_dir):
        for n in dnames + fnames:
            p = os.path.join(root, n)
            if os.path.islink(p):
                cache_problems.append("%s is a symlink" % p)
            real = os.path.realpath(p)
            if not real.startswith(os.path.realpath(m.cache_dir) + "/"):
                cache_problems.append("%s resolves outside: %s" % (p, real))
            if n in (".", "..") or "/" in n:
                cache_problems.append("%s: odd name" % p)
    t.all_ok("%s: the cache holds only plain entries inside itself" % label,
             cache_problems)
    srv_check = q.check_unmount
    srv_check(t, m, label)
    tmp_after = {n for n in os.listdir(os.path.dirname(parent))
                 if MARK in n}
    t.equal(sorted(tmp_after - tmp_before), [],
            "%s: nothing named after a folder appeared in %s" % (
                label, os.path.dirname(parent)))
    t.equal(sorted(snapshot(parent, skip=("mnt", "cache")) - parent_before -
                   {"imapfs.log"}), [],
            "%s: nothing new next to the mount point and cache" % label)
    t.equal(os.listdir(m.mountpoint), [], "%s: the mount point is empty "
            "after unmount" % label)
    q.check_read_only(t, srv, label)
    t.equal(srv.errors, [], "%s: no server script errors" % label)


def case_hostile_names(t):
    names_case(t, "hostile_names", "implicit")


def case_hostile_names_starttls(t):
    names_case(t, "hostile_names_starttls", "starttls")


CASES = [case_hostile_names, case_hostile_names_starttls]

if __name__ == "__main__":
    q.run_cases("test_names", CASES)
