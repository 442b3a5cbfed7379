"""Shared helpers of the quirks tests: accounts for the fake server, mounts
against it, and the checks every case repeats."""

import os
import stat
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))
import imapfs_harness as h  # noqa: E402
import fakeimap as fk  # noqa: E402

T0 = 1709283600  # 2024-03-01 09:00:00 UTC
SANITIZED = (os.environ.get("IMAPFS_SANITIZE") or "none") != "none"


def message(subject, text, key=None, eol=b"\r\n"):
    """A small message; subject None: no Subject header."""
    lines = [b"From: Fake Sender <sender@example.org>",
             b"To: fake-user@localhost",
             b"Date: Fri, 01 Mar 2024 09:00:00 +0000"]
    if subject is not None:
        lines.append(b"Subject: " + fk._b(subject))
    if key:
        lines.append(b"X-Quirk-Key: " + fk._b(key))
    lines.append(b"MIME-Version: 1.0")
    lines.append(b"Content-Type: text/plain; charset=us-ascii")
    body = fk._b(text).replace(b"\r\n", b"\n").split(b"\n")
    return eol.join(lines) + eol + eol + eol.join(body)


def small_account(big=False):
    """INBOX (3 messages), Work (a \\Noselect parent) / Projects (1),
    Entwürfe (1), an empty folder. Deterministic."""
    acct = fk.Account()
    inbox = acct.add_folder("INBOX", attrs=["\\HasNoChildren"])
    inbox.add(message("Hello quirks", "First body.\nLine two.\n", "m1"),
              flags=["\\Seen"], date=T0 + 60)
    inbox.add(message("Second message", "Second body " * 40 + "\n", "m2"),
              date=T0 + 3600)
    inbox.add(message(None, "No subject at all.\n", "m3"), date=T0 + 7200,
              flags=["\\Flagged"])
    if big:
        inbox.add(message("Big one", ("0123456789abcdef" * 8 + "\n")
                          * 3000, "m4"), date=T0 + 9000)
    acct.add_folder("Work", attrs=["\\Noselect", "\\HasChildren"])
    acct.add_folder("Work/Projects", attrs=["\\HasNoChildren"]).add(
        message("Project plan", "Plan: ship it.\n", "p1"), date=T0 + 100)
    acct.add_folder("Entw&APw-rfe").add(
        message("Draft", "Unsent draft.\n", "d1"), date=T0 + 200,
        flags=["\\Draft"])
    acct.add_folder("Empty")
    return acct


def expected_tree(acct):
    """{display path: folder} for selectable folders, and the set of all
    directory paths, with '/' as the delimiter and mUTF-7 decoded (for
    accounts with tame names only)."""
    sel = {}
    dirs = set()
    for f in acct.folders:
        name = h.mutf7_decode(f.raw.decode("ascii"))
        if f.delim and f.delim != "/":
            name = name.replace(f.delim, "/")
        parts = name.split("/")
        for i in range(1, len(parts) + 1):
            dirs.add("/".join(parts[:i]))
        if f.selectable:
            sel[name] = f
    return sel, dirs


def mount(srv, args=(), timeout_s=5, **kw):
    """A foreground mount of the fake server (not started)."""
    mode = "imaps" if srv.tls == "implicit" else "imap"
    a = ["--timeout=%d" % timeout_s] + list(args)
    return h.Mount(srv, mode=mode, args=a, **kw)


def message_path(m, folder_path, uid):
    """The file of uid in folder_path (display path), or None."""
    d = os.path.join(m.mountpoint, *folder_path.split("/"))
    try:
        names = os.listdir(d)
    except OSError:
        return None
    for n in names:
        if h.uid_of_name(n) == uid:
            return os.path.join(d, n)
    return None


def cached_bodies(cache_dir, uidvalidity, uid):
    """Where (uidvalidity, uid) is cached (files or pack records), in any
    folder."""
    return sorted(where for (key, uv, u), (where, data)
                  in h.cache_bodies(cache_dir).items()
                  if uv == uidvalidity and u == uid)


def temp_files(cache_dir):
    """Temp files left in the cache (tmp/, and .tmp-* beside bodies)."""
    return h.cache_temp_files(cache_dir)


def is_eio(rc, err):
    return rc not in (0, None) and "Input/output error" in err


def compare_account(t, m, acct, label, read=True):
    """Directories, file names (UID first), sizes (after reading),
    mtimes and bytes of the mount against the fake account."""
    sel, dirs = expected_tree(acct)
    got_dirs = set()
    for root, dnames, fnames in os.walk(m.mountpoint):
        rel = os.path.relpath(root, m.mountpoint)
        for d in dnames:
            got_dirs.add(d if rel == "." else rel + "/" + d)
    t.equal(sorted(got_dirs), sorted(dirs), "%s: directory tree" % label)
    problems = []
    nread = 0
    for name, f in sorted(sel.items()):
        d = os.path.join(m.mountpoint, *name.split("/"))
        try:
            listing = h.list_message_files(d)
        except OSError as e:
            problems.append("%s: cannot list: %s" % (name, e))
            continue
        want = {x.uid for x in f.messages}
        got = {k for k in listing if isinstance(k, int)}
        if want != got or len(listing) != len(got):
            problems.append("%s: UIDs %s expected, files %s" % (
                name, sorted(want), sorted(listing.values())))
        for msg in f.messages:
            if msg.uid not in listing:
                continue
            p = os.path.join(d, listing[msg.uid])
            st = os.lstat(p)
            if int(st.st_mtime) != msg.date:
                problems.append("%s: mtime %d, INTERNALDATE %d" % (
                    p, st.st_mtime, msg.date))
            if not stat.S_ISREG(st.st_mode) or \
                    stat.S_IMODE(st.st_mode) != 0o600:
                problems.append("%s: mode %o" % (p, st.st_mode))
            if not read:
                continue
            rc, data, err, _ = h.cat(p, timeout=30)
            nread += 1
            if rc != 0:
                problems.append("%s: cat failed (%s): %s" % (p, rc,
                                                             err.strip()))
            elif data != msg.body:
                problems.append("%s: %d bytes, server has %d%s" % (
                    p, len(data), len(msg.body),
                    "" if len(data) != len(msg.body) else " (differs)"))
            elif os.stat(p).st_size != len(msg.body):
                problems.append("%s: st_size %d after reading %d bytes" % (
                    p, os.stat(p).st_size, len(msg.body)))
    t.all_ok("%s: every folder lists its UIDs with the right dates%s "
             "(%d files read)" % (label, ", bytes and sizes" if read
                                  else "", nread), problems)


def subject_name_problems(m, acct, names):
    """names: {(folder display path, uid): exact file name}."""
    problems = []
    for (folder, uid), want in names.items():
        p = message_path(m, folder, uid)
        got = os.path.basename(p) if p else None
        if got != want:
            problems.append("%s UID %d: %r, expected %r" % (
                folder, uid, got, want))
    return problems


def check_read_only(t, srv, label):
    t.equal(srv.write_commands(), [],
            "%s: no SELECT/STORE/EXPUNGE/non-PEEK FETCH reached the server"
            % label)


def check_unmount(t, m, label):
    t.equal(m.unmount(), 0, "%s: unmount, the daemon exits 0" % label)
    t.check(h.mount_info(m.mountpoint) is None, "%s: no mount left" % label)


def daemon_alive(m):
    return m.proc is not None and m.proc.poll() is None


def vm_kb(pid, key):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


# ---------------------------------------------------------------------------
# Running many cases in one script: each case gets its own server and
# mount, and its own cleanup; one failing case does not stop the others.

def run_cases(name, cases, argv=None):
    argv = sys.argv[1:] if argv is None else argv
    selected = [c for c in cases if not argv or c.__name__ in argv or
                c.__name__.replace("case_", "") in argv]
    if argv and not selected:
        print("unknown case(s) %s; known: %s" % (argv, " ".join(
            c.__name__.replace("case_", "") for c in cases)))
        sys.exit(2)

    def body(t):
        for case in selected:
            label = case.__name__.replace("case_", "")
            h.log("## %s" % label)
            before = t.failures
            start = time.monotonic()
            try:
                case(t)
            except h.TestFailure as e:
                t.count_failure(e)
                h.log("case %s stopped after failed check: %s" % (label, e))
            except h.Interrupted:
                raise
            except Exception:
                h.log("ERROR in case %s: unexpected exception" % label)
                traceback.print_exc(file=sys.stdout)
                t.failures += 1
            if t.failures > before:
                h.print_diagnostics()
            del h._diagnostics[:]
            h.run_cleanups()
            failed = t.failures > before
            outcome = "FAILED" if failed else "passed"
            h.log("## %s: %s in %.1fs" % (label, outcome,
                                          time.monotonic() - start))

    h.Test(name).run(body)
