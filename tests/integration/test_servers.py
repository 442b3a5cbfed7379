#!/usr/bin/env python3
"""test_servers SERVER: the core checks against Cyrus IMAP or Courier-IMAP
(harness_servers), over implicit TLS and over STARTTLS: the tree as the
default namespace mapping shows it, exact bytes, grep, flags untouched,
live updates in INBOX and in another folder, new messages read all at once
(over connections that selected INBOX before they came), resync after a
remount with changes made while unmounted, and a clean TLS close at
unmount.

$IMAPFS_TEST_SERVERS: "ci" (default) runs everything over imaps:// and
the tree, bytes and flags over imap:// (STARTTLS), without the 3.8 MB
message; "all" runs everything over both, with it; "none" skips."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness_servers as hs  # noqa: E402
import imapfs_harness as h  # noqa: E402

# Generous bound for a change to show; the test asserts only that it does.
LIVE_BOUND = 120
TLS_NOISE = "Unexpected SSL connection shutdown"
# A personal folder that the top layout would show as INBOX.
COLLIDE = "INBOX.INBOX"


def mount_view(view, renames=None):
    """The server view with each folder renamed to where the mount shows
    it: by the default layout (the personal namespace at the top), or as
    renames says (raw server name -> mount name)."""
    renames = renames or {}

    def where(f):
        return renames.get(f["raw"], hs.flat_name(f["name"]))
    names = {f["name"]: where(f) for f in view["folders"]}
    return {"folders": [dict(f, name=where(f)) for f in view["folders"]],
            "messages": {names.get(k, k): v
                         for k, v in view["messages"].items()}}


def top_names(view):
    return {f["name"].split("/")[0] for f in view["folders"]}


def check_tree(t, srv, client, m, msgs, label, layout="top"):
    """Compare the mount with the server. INBOX.INBOX, shown at the top
    like INBOX, must get a name of its own starting with INBOX."""
    raw_view = h.server_view(client)
    if layout == "server":
        view = raw_view
        t.equal(set(os.listdir(m.mountpoint)), {"INBOX"},
                "%s: --namespace=server shows INBOX alone at the top"
                % label)
    else:
        plain = mount_view(dict(raw_view, folders=[
            f for f in raw_view["folders"] if f["raw"] != COLLIDE]))
        top = set(os.listdir(m.mountpoint))
        extra = sorted(top - top_names(plain))
        t.check(len(extra) == 1 and extra[0].startswith("INBOX") and
                extra[0] != "INBOX",
                "%s: ls of the root shows INBOX beside the personal "
                "folders, and INBOX.INBOX under a name of its own" % label,
                "extra names %r, want one like INBOX~..." % extra)
        view = mount_view(raw_view, {COLLIDE: extra[0] if extra else "?"})
        t.check("%s would both be shown as INBOX" % COLLIDE in
                m.stderr_text(), "%s: the daemon logs the name clash"
                % label, m.stderr_text()[-500:])
    files = h.compare_tree(t, m, view)
    problems = []
    for msg in msgs:
        name = msg.folder if layout == "top" else "/".join(
            ["INBOX"] + msg.folder.split("/")) if msg.folder != "INBOX" \
            else "INBOX"
        p = files.get((name, msg.uid))
        why = "no file" if p is None else \
            msg.expected_name_problem(os.path.basename(p))
        if why:
            problems.append("%s: %s" % (msg.key, why))
    t.all_ok("%s: file names as specified" % label, problems)
    total = sum(len(v) for v in view["messages"].values())
    t.equal(h.compare_bodies(t, client, view, files), total,
            "%s: every message was compared" % label)
    return view, files


def wait_file(t, m, folder, uid, want, label):
    d = h.folder_path(m, folder)

    def found():
        try:
            names = h.list_message_files(d)
        except OSError:
            return None
        return names.get(uid)

    t0 = time.monotonic()
    name = h.wait_for(found, LIVE_BOUND, interval=0.25)
    h.log("# %s: %s UID %d showed after %.1f s" % (
        label, folder, uid, time.monotonic() - t0))
    t.check(name is not None, "%s: the new message %s UID %d shows up" % (
        label, folder, uid))
    if name:
        t.equal(h.read_file(os.path.join(d, name)), want,
                "%s: the new message in %s reads right" % (label, folder))


def read_new_at_once(t, m, client, srv, label, rounds=2, count=6):
    """Messages appended while mounted, read all at once as soon as they
    show. The reads spread over the pool's connections; from the second
    round on, most of those selected INBOX before the new messages arrived,
    and Courier answers a FETCH of such a message with OK and no data until
    that connection sends NOOP (the daemon must catch up, not fail)."""
    d = h.folder_path(m, "INBOX")
    log_before = len(m.stderr_text())
    for r in range(rounds):
        want = {}
        for i in range(count):
            uid, body = append(client, "INBOX", "burst-%s-%d-%d" % (
                label.split()[-1], r, i), srv.crlf_only)
            want[uid] = body
            # Courier refuses APPEND to the folder the client examines.
            client.conn.close()
            client.selected = None

        def all_listed():
            names = h.list_message_files(d)
            return names if set(want) <= set(names) else None
        names = h.wait_for(all_listed, LIVE_BOUND, interval=0.25)
        t.check(names is not None, "%s: %d new INBOX messages show up "
                "(round %d)" % (label, count, r + 1))
        if not names:
            return
        paths = {uid: os.path.join(d, names[uid]) for uid in want}
        got = h.read_files_at_once(list(paths.values()))
        t.all_ok("%s: %d new INBOX messages read all at once read right "
                 "(round %d)" % (label, count, r + 1),
                 ["UID %d: %s" % (uid, got[p] if isinstance(got[p], OSError)
                                  else "%d bytes, server has %d" % (
                                      len(got[p]), len(want[uid])))
                  for uid, p in sorted(paths.items())
                  if got[p] != want[uid]])
    t.all_ok("%s: no body fetch failed while reading new messages" % label,
             h.fetch_errors(m.stderr_text()[log_before:]))


def append(client, folder, key, crlf):
    data = h.make_message(key, "Live %s" % key, int(time.time()),
                          body="Appended by the test: %s.\n" % key)
    if crlf:
        data = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    client.append(hs.folder_raw(folder), data)
    meta = client.metadata(hs.folder_raw(folder))
    uid = max(meta)
    return uid, client.fetch_body(hs.folder_raw(folder), uid)


def expunge_first(client, folder):
    raw = hs.folder_raw(folder)
    uid = min(client.metadata(raw))
    c = client.conn
    c.select('"%s"' % raw)
    c.uid("STORE", str(uid), "+FLAGS.SILENT", "(\\Deleted)")
    c.expunge()
    c.close()
    return uid


def tls_noise(srv):
    return srv.log_text().count(TLS_NOISE)


def run_mode(t, srv, client, msgs, mode, full):
    label = "%s %s" % (srv.name, mode)
    flags_before = client.flags_snapshot()
    m = h.Mount(srv, mode=mode).start()
    t.check(m.mounted(), "%s: mounted %s" % (label, m.url))
    view, files = check_tree(t, srv, client, m, msgs, label)
    r = h.run(["grep", "-rl", h.NEEDLE, m.mountpoint], timeout=120,
              check=False, env=dict(os.environ, LC_ALL="C"))
    got = {os.path.normpath(x.decode()) for x in r.stdout.split(b"\n") if x}
    want = {os.path.normpath(files.get((x.folder, x.uid), x.key))
            for x in msgs if x.needle}
    t.equal(got, want, "%s: grep -rl lists exactly the files with the "
            "needle" % label)
    t.all_ok("%s: flags unchanged after reading everything" % label,
             h.diff_flags(flags_before, client.flags_snapshot()))
    if not full:
        t.equal(m.unmount(), 0, "%s: unmount: the daemon exits 0" % label)
        return m.cache_dir
    # Live updates, in INBOX and in a folder that is not INBOX.
    for folder in ("INBOX", "Projects"):
        uid, body = append(client, folder, "live-%s-%s" % (
            mode, folder.lower()), srv.crlf_only)
        wait_file(t, m, folder, uid, body, label)
    read_new_at_once(t, m, client, srv, label)
    # A folder created while mounted shows up (the folder list is
    # re-read every 15 s without NOTIFY).
    client.create(hs.folder_raw("Live"))
    uid, body = append(client, "Live", "live-folder-" + mode, srv.crlf_only)
    wait_file(t, m, "Live", uid, body, label)
    noise = tls_noise(srv)
    t.equal(m.unmount(), 0, "%s: unmount: the daemon exits 0" % label)
    if srv.name == "courier":
        t.equal(tls_noise(srv), noise, "%s: no '%s' in Courier's log for "
                "imapfs's connections" % (label, TLS_NOISE))
    # Changes while unmounted, then a remount on the same cache.
    uid, body = append(client, "Entwürfe", "offline-" + mode,
                       srv.crlf_only)
    victim = "Q&A" if mode == "imaps" else "Projects/Alpha"
    gone = expunge_first(client, victim)
    client.conn.delete('"%s"' % hs.folder_raw("Live"))
    msgs[:] = [x for x in msgs if (x.folder, x.uid) != (victim, gone)]
    m2 = h.Mount(srv, mode=mode, cache_dir=m.cache_dir).start()
    view2, files2 = check_tree(t, srv, client, m2, [], label + " remount")
    t.check(("Entwürfe", uid) in files2,
            "%s remount: the message added while unmounted is there" % label)
    t.check((victim, gone) not in files2,
            "%s remount: the message expunged while unmounted is gone"
            % label)
    t.equal(m2.unmount(), 0, "%s remount: the daemon exits 0" % label)
    # The other layout on the same cache: the same folders and bodies,
    # nothing fetched again under other keys.
    before = set(h.cache_bodies(m.cache_dir))
    m3 = h.Mount(srv, mode=mode, cache_dir=m.cache_dir,
                 args=["--namespace=server"]).start()
    check_tree(t, srv, client, m3, msgs, label + " --namespace=server",
               layout="server")
    t.equal(set(h.cache_bodies(m.cache_dir)), before,
            "%s --namespace=server: the cache holds the same bodies under "
            "the same keys" % label)
    t.equal(m3.unmount(), 0, "%s --namespace=server: the daemon exits 0"
            % label)
    return m.cache_dir


def body(t, name):
    mode = hs.servers_mode()
    if mode == "none":
        raise h.Skip("IMAPFS_TEST_SERVERS=none")
    full = mode == "all"
    srv = hs.SERVERS[name]()
    srv.start()
    msgs = srv.seed(h.core_messages(large=full))
    client = srv.client()
    h.add_cleanup(client.close)
    client.create(COLLIDE)
    client.append(COLLIDE, h.make_message(
        "collide", "In INBOX.INBOX", int(time.time()), eol=b"\r\n",
        body="A personal folder named INBOX.\n"))
    cache = run_mode(t, srv, client, msgs, "imaps", True)
    run_mode(t, srv, client, msgs, "imap", full)
    # Offline from the cache (server stopped): the same top layout.
    want = top_names(mount_view(h.server_view(client)))
    client.close()
    srv.stop()
    m = h.Mount(srv, cache_dir=cache).start()
    got = set(os.listdir(m.mountpoint))
    t.check(want - {"INBOX"} <= got and "INBOX" in got,
            "offline mount: the personal folders are still at the top",
            "got %r, want %r" % (sorted(got), sorted(want)))
    t.equal(m.unmount(), 0, "offline mount: the daemon exits 0")


if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in hs.SERVERS:
        sys.exit("usage: test_servers.py cyrus|courier")
    which = sys.argv[1]
    h.Test("test_servers " + which).run(lambda t: body(t, which))
