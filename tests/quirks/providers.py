"""providers: the big providers' habits as profiles of the scripted fake
server (fakeimap.py), from what they document or what is widely reported.

Each profile returns a FakeImap (not started) whose account and rules
behave like the provider:

  gmail()      X-GM-EXT-1 (X-GM-MSGID, X-GM-THRID, X-GM-LABELS), [Gmail] a
               \\Noselect parent of SPECIAL-USE folders, labels as folders
               sharing messages (one message in INBOX, All Mail and two
               labels), at most 15 logged-in connections (the 16th login
               gets NO "Too many simultaneous connections"), and an
               optional daily download cap (NO/BYE about bandwidth limits)
  microsoft()  RFC822.SIZE an estimate, no CONDSTORE/QRESYNC/ESEARCH/
               NOTIFY, IDLE only, "User is authenticated but not
               connected" to logins that come too fast
  icloud()     QRESYNC advertised (and ENABLEd) but broken: VANISHED lists
               messages that are still there
  yahoo()      a limit on the messages one command may touch (NO [LIMIT]),
               and slow answers

The fake server counts what tests need: whole bodies sent per (folder,
UID) (srv.body_sends), body bytes (srv.body_bytes), connections
(srv.conns, srv.peak_conns), and every command (srv.count(pattern)).
"""

import re
import threading
import time

import fakeimap as fk
import quirk_common as q

GMAIL_CAPS = ["IMAP4rev1", "UNSELECT", "IDLE", "NAMESPACE", "QUOTA", "ID",
              "XLIST", "CHILDREN", "X-GM-EXT-1", "UIDPLUS", "ENABLE", "MOVE",
              "CONDSTORE", "ESEARCH", "UTF8=ACCEPT", "LIST-EXTENDED",
              "LIST-STATUS", "LITERAL-", "SPECIAL-USE",
              "APPENDLIMIT=35651584"]
GMAIL_LIMIT = 15
GMAIL_SPECIAL = [("All Mail", "\\All"), ("Sent Mail", "\\Sent"),
                 ("Trash", "\\Trash"), ("Spam", "\\Junk"),
                 ("Starred", "\\Flagged"), ("Important", "\\Important")]


def _authed(srv):
    return [c for c in srv.live_conns() if c.state != "nonauth"]


def gmail(n=12, limit=GMAIL_LIMIT, cap_bytes=None, cap_bye=False, **kw):
    """n messages; message 0 is in INBOX, All Mail, Work and Travel.
    Returns (srv, shared) where shared maps each X-GM-MSGID to the list of
    (folder, uid) holding it."""
    acct = fk.Account()
    inbox = acct.add_folder("INBOX", attrs=["\\HasNoChildren"])
    acct.add_folder("[Gmail]", attrs=["\\HasChildren", "\\Noselect"])
    special = {}
    for name, use in GMAIL_SPECIAL:
        special[use] = acct.add_folder("[Gmail]/" + name,
                                       attrs=["\\HasNoChildren", use])
    work = acct.add_folder("Work", attrs=["\\HasNoChildren"])
    travel = acct.add_folder("Travel", attrs=["\\HasNoChildren"])
    shared = {}
    for i in range(n):
        gmid = 1500000000000000000 + 7919 * i
        body = q.message("Gmail message %d" % i, ("Text of message %d.\n"
                                                  % i) * (5 + i), "g%d" % i)
        where = [special["\\All"]]
        labels = []
        if i % 2 == 0:
            where.append(inbox)
            labels.append('"\\\\Inbox"')
        if i % 3 == 0:
            where.append(work)
            labels.append("Work")
        if i % 4 == 0:
            where.append(travel)
            labels.append("Travel")
        if i % 5 == 1:
            where.append(special["\\Flagged"])
            labels.append('"\\\\Starred"')
        if i % 3 == 1:
            where.append(special["\\Important"])
            labels.append('"\\\\Important"')
        if i == n - 1:
            where = [special["\\Junk"]]    # Spam is not in All Mail
            labels = []
        if i == n - 2:
            where.append(special["\\Sent"])
            labels.append('"\\\\Sent"')
        for f in where:
            uid = (f.messages[-1].uid + 1) if f.messages else \
                (1 if f is special["\\All"] else 100)
            m = f.add(body, date=q.T0 + 600 * i, uid=uid)
            m.extra["X-GM-MSGID"] = b"%d" % gmid
            m.extra["X-GM-THRID"] = b"%d" % (gmid - i % 2)
            m.extra["X-GM-LABELS"] = ("(" + " ".join(labels) +
                                      ")").encode()
            shared.setdefault(gmid, []).append((f, uid))
    srv = fk.FakeImap(acct, **kw)
    srv.caps_post = list(GMAIL_CAPS)
    srv.refused_logins = []
    srv.other_clients = 0   # logged in elsewhere, counted against limit

    def login(ctx):
        if len(_authed(ctx.server)) + ctx.server.other_clients >= limit:
            ctx.server.refused_logins.append(ctx.conn.index)
            return [b"{tag} NO [ALERT] Too many simultaneous connections. "
                    b"(Failure)\r\n"]
        return ctx.default()
    srv.add_rule(r"^(LOGIN|AUTHENTICATE)", login)
    if cap_bytes is not None:
        gmail_download_cap(srv, cap_bytes, cap_bye)
    return srv, shared


def gmail_download_cap(srv, cap_bytes, bye=False):
    """Once cap_bytes of bodies went out, body fetches get the answer of a
    Gmail account over its daily download limit (a tagged NO [OVERQUOTA],
    or with bye a BYE and the connection closed), until srv.cap_lifted is
    set."""
    srv.cap_lifted = False
    srv.cap_refusals = 0

    def over(ctx):
        return not ctx.server.cap_lifted and \
            ctx.server.body_bytes >= cap_bytes

    def refuse(ctx):
        ctx.server.cap_refusals += 1
        if bye:
            return [b"* BYE [ALERT] Account exceeded command or bandwidth "
                    b"limits. (Failure)\r\n", fk.CLOSE]
        return [b"{tag} NO [OVERQUOTA] Account exceeded command or bandwidth"
                b" limits. (Failure)\r\n"]
    srv.add_rule(r"^UID FETCH .*BODY\.PEEK\[\]", refuse, when=over)


MS_CAPS = ["IMAP4", "IMAP4rev1", "AUTH=PLAIN", "AUTH=XOAUTH2", "SASL-IR",
           "UIDPLUS", "ID", "UNSELECT", "CHILDREN", "IDLE", "NAMESPACE",
           "LITERAL+"]


def microsoft(burst=3, window=5.0, **kw):
    """Sizes are estimates (larger than the body); more than burst logins
    within window seconds get "User is authenticated but not connected"
    (and a BYE)."""
    acct = q.small_account()
    for name in ("Sent Items", "Deleted Items", "Junk Email", "Archive"):
        f = acct.add_folder(name, attrs=["\\HasNoChildren"])
        f.add(q.message("In %s" % name, "Body in %s.\n" % name * 20,
                        name), date=q.T0 + 50)
    for f in acct.folders:
        for m in f.messages:
            m.size = len(m.body) + 40 + len(m.body) // 20
    srv = fk.FakeImap(acct, **kw)
    srv.caps_pre = ["IMAP4", "IMAP4rev1", "AUTH=PLAIN", "AUTH=XOAUTH2",
                    "SASL-IR", "UIDPLUS", "ID", "UNSELECT", "CHILDREN",
                    "IDLE", "NAMESPACE", "LITERAL+"]
    srv.caps_post = list(MS_CAPS)
    srv.login_times = []
    srv.throttled = []
    lock = threading.Lock()

    def login(ctx):
        now = time.monotonic()
        with lock:
            recent = [t for t in ctx.server.login_times if now - t < window]
            ctx.server.login_times.append(now)
            if len(recent) >= burst:
                ctx.server.throttled.append(ctx.conn.index)
                return [b"{tag} NO User is authenticated but not "
                        b"connected.\r\n", b"* BYE Connection closed.\r\n",
                        fk.CLOSE]
        return ctx.default()
    srv.add_rule(r"^(LOGIN|AUTHENTICATE)", login)
    return srv


ICLOUD_CAPS = ["IMAP4", "IMAP4rev1", "ACL", "QUOTA", "LITERAL+", "NAMESPACE",
               "UIDPLUS", "CHILDREN", "BINARY", "UNSELECT", "SORT", "CATENATE",
               "URLAUTH", "LANGUAGE", "ESEARCH", "ESORT", "THREAD=ORDEREDSUBJECT",
               "THREAD=REFERENCES", "CONDSTORE", "ENABLE", "CONTEXT=SEARCH",
               "CONTEXT=SORT", "WITHIN", "SASL-IR", "SEARCHRES",
               "XSENDER", "X-NETSCAPE", "XSERVERINFO", "X-SUN-SORT",
               "ANNOTATE-EXPERIMENT-1", "X-UNAUTHENTICATE", "X-SUN-IMAP",
               "X-ANNOTATEMORE", "XUM1", "ID", "IDLE", "QRESYNC",
               "XAPPLEPUSHSERVICE"]


def icloud(**kw):
    """QRESYNC offered and ENABLEd, but an EXAMINE with QRESYNC answers
    VANISHED (EARLIER) for every message, all of which are still there."""
    acct = q.small_account()
    srv = fk.FakeImap(acct, **kw)
    srv.caps_post = list(ICLOUD_CAPS)
    srv.add_rule(r"^\*GREETING$", [
        b"* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN AUTH=ATOKEN "
        b"AUTH=PLAIN LITERAL+ ID] iSCREAM ready to rumble (1S:1127) "
        b"p00-iscream-1 [10:10]\r\n"])
    srv.add_rule(r"^ENABLE ", [b"* ENABLED QRESYNC\r\n",
                               b"{tag} OK ENABLE completed\r\n"])

    def broken(ctx):
        out = ctx.default()
        f = ctx.conn.selected
        if f is not None and f.messages:
            out.insert(0, b"* VANISHED (EARLIER) " +
                       fk.compress_uids([m.uid for m in f.messages]).encode()
                       + b"\r\n")
        return out
    srv.add_rule(r"^EXAMINE .*QRESYNC", broken)
    return srv


FASTMAIL_CAPS = ["IMAP4rev1", "LITERAL+", "ID", "ENABLE", "ACL", "RIGHTS=kxten",
                 "QUOTA", "MAILBOX-REFERRALS", "NAMESPACE", "UIDPLUS",
                 "NO_ATOMIC_RENAME", "UNSELECT", "CHILDREN", "MULTIAPPEND",
                 "BINARY", "CATENATE", "CONDSTORE", "ESEARCH", "SORT",
                 "THREAD=ORDEREDSUBJECT", "LIST-EXTENDED", "LIST-STATUS",
                 "WITHIN", "SASL-IR", "SPECIAL-USE", "CREATE-SPECIAL-USE",
                 "IDLE", "MOVE", "OBJECTID", "SAVEDATE", "X-CYRUS"]


def fastmail(n=8, **kw):
    """OBJECTID (RFC 8474): a message copied into Archive and a label-like
    folder keeps its EMAILID. Returns (srv, shared) like gmail()."""
    acct = fk.Account()
    inbox = acct.add_folder("INBOX", attrs=["\\HasNoChildren"])
    archive = acct.add_folder("Archive", attrs=["\\HasNoChildren",
                                                "\\Archive"])
    clients = acct.add_folder("Clients", attrs=["\\HasNoChildren"])
    shared = {}
    for i in range(n):
        emailid = "M%024x" % (0x5eed0000 + 977 * i)
        body = q.message("Fastmail message %d" % i, "Cyrus body %d.\n" % i
                         * (3 + i), "f%d" % i, )
        where = [inbox] + ([archive] if i % 2 == 0 else []) + \
            ([clients] if i % 3 == 0 else [])
        for f in where:
            m = f.add(body, date=q.T0 + 300 * i)
            m.extra["EMAILID"] = ("(%s)" % emailid).encode()
            m.extra["THREADID"] = b"(T%015x)" % (77 + i)
            shared.setdefault(emailid, []).append((f, m.uid))
    srv = fk.FakeImap(acct, **kw)
    srv.caps_post = list(FASTMAIL_CAPS)
    return srv, shared


YAHOO_CAPS = ["IMAP4rev1", "ID", "MOVE", "NAMESPACE", "XYMHIGHESTMODSEQ",
              "UIDPLUS", "LITERAL+", "CHILDREN", "X-MSG-EXT", "UNSELECT"]


def yahoo(limit=100, n=250, delay=0.2, **kw):
    """A folder "Bulk" of n messages; a UID FETCH or UID SEARCH touching
    more than limit messages gets NO [LIMIT]; every answer waits delay
    seconds first."""
    acct = q.small_account()
    bulk = acct.add_folder("Bulk", attrs=["\\HasNoChildren"])
    for i in range(n):
        bulk.add(q.message("Bulk %d" % i, "Bulk body %d\n" % i * 3,
                           "b%d" % i), date=q.T0 + i)
    srv = fk.FakeImap(acct, **kw)
    srv.caps_post = list(YAHOO_CAPS)
    srv.limit_refusals = 0
    srv.most_touched = 0

    def touched(ctx):
        f = ctx.conn.selected
        if ctx.text.upper().startswith("UID SEARCH"):
            m = re.search(r"(?i) UID ([0-9:*,]+)", ctx.text[10:])
        else:
            m = re.match(r"(?i)UID FETCH ([0-9:*,]+)", ctx.text)
        if f is None:
            return 0
        if not m:
            return len(f.messages)
        max_uid = max((x.uid for x in f.messages), default=0)
        sets = fk.parse_uid_set(m.group(1), max_uid)
        return sum(1 for x in f.messages if fk.uid_in(x.uid, sets))

    def answer(ctx):
        time.sleep(delay)
        k = touched(ctx)
        if k > limit:
            ctx.server.limit_refusals += 1
            return [b"{tag} NO [LIMIT] UID command touches too many "
                    b"messages (MESSAGELIMIT=%d)\r\n" % limit]
        ctx.server.most_touched = max(ctx.server.most_touched, k)
        return ctx.default()
    srv.add_rule(r"^UID (FETCH|SEARCH)", answer)
    srv.add_rule(r"^(EXAMINE|LIST|STATUS|NOOP)",
                 lambda ctx: [fk.Sleep(delay)] + ctx.default())
    return srv
