#!/usr/bin/env python3
"""fakeimap: a small scripted IMAP4rev1 server for the quirks tests.

It serves an in-memory account (folders holding messages with UID, flags,
INTERNALDATE and bytes) on a free loopback port, with implicit TLS
(tls="implicit"), plain text plus STARTTLS (tls="starttls") or plain text
only (tls="none"). It speaks just enough IMAP for the daemon's conversation:
greeting, CAPABILITY, STARTTLS, LOGIN, AUTHENTICATE PLAIN (with or without
SASL-IR), ID, LIST, EXAMINE, STATUS, UID FETCH, UID SEARCH (and ESEARCH),
NOOP, IDLE, LOGOUT. Commands that would change a mailbox are refused and
recorded.

Everything a connection receives is recorded: the bytes that arrived in
clear (before TLS) and after the handshake, separately, and every command.
Tests then assert that no credential arrived in clear and that no STORE,
EXPUNGE or SELECT ever arrived.

Quirks are rules: Rule(pattern, script) replaces the answer to every
command whose text (after the tag) matches the regular expression. A script
is a list of items sent in order:

    bytes or str      sent as one write; "{tag}" is replaced by the tag
    Raw(bytes)        sent as is
    DEFAULT           what the server would have answered
    Sleep(seconds)    pause
    CLOSE             close the connection at once (no BYE)
    STARTTLS_NOW      run the server side of the TLS handshake
    WAIT_DONE         read lines until the client's "DONE" (IDLE)
    Stream(fn)        fn() yields chunks, sent until it ends or the peer
                      goes away (for endless or huge answers)

or a callable(ctx) returning such a list (ctx: Ctx, with the tag, the
command, the connection, and helpers that build default answers). The
greeting goes through the same rules as a command named "*GREETING".
Writes are split further by FakeImap.split (None, a chunk size such as 1
for one byte per send, or a callable(data) -> list of chunks), with
FakeImap.split_delay seconds between sends (or a callable(conn) -> seconds,
e.g. to pause only while the connection is not yet encrypted).

As a command, "fakeimap.py selftest" checks the server with imaplib.
"""

import base64
import datetime
import os
import re
import socket
import ssl
import sys
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))
import imapfs_harness as h  # noqa: E402

# Commands that would change the server: the daemon must never send them.
WRITE_COMMANDS = ("SELECT", "STORE", "UID STORE", "EXPUNGE", "UID EXPUNGE",
                  "COPY", "UID COPY", "MOVE", "UID MOVE", "APPEND", "CREATE",
                  "DELETE", "RENAME", "SUBSCRIBE", "UNSUBSCRIBE", "CLOSE",
                  "SETACL", "SETMETADATA", "SETQUOTA")

MAX_COMMAND = 1 << 20


# ---------------------------------------------------------------------------
# Script items

class _Marker:
    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return self.name


DEFAULT = _Marker("DEFAULT")
CLOSE = _Marker("CLOSE")
STARTTLS_NOW = _Marker("STARTTLS_NOW")
WAIT_DONE = _Marker("WAIT_DONE")


class Raw:
    def __init__(self, data):
        self.data = data


class Sleep:
    def __init__(self, seconds):
        self.seconds = seconds


class Stream:
    def __init__(self, fn):
        self.fn = fn


class Rule:
    """Replace the answer to commands matching pattern (a regular
    expression searched in the command after its tag, case-insensitive).
    times: how many times it applies (None: always). conn: only on the
    connection with this index (0 = first). when: callable(ctx) -> bool."""

    def __init__(self, pattern, script, times=None, conn=None, when=None):
        if isinstance(pattern, str):
            pattern = pattern.encode()
        self.regex = re.compile(pattern, re.I | re.S)
        self.script = script
        self.times = times
        self.conn = conn
        self.when = when
        self.hits = 0


class ConnectionGone(Exception):
    pass


def _b(x):
    return x.encode("utf-8", "surrogateescape") if isinstance(x, str) else x


# ---------------------------------------------------------------------------
# The account

def internaldate(ts):
    d = datetime.datetime.fromtimestamp(int(ts), datetime.timezone.utc)
    return d.strftime("%d-%b-%Y %H:%M:%S +0000")


def header_fields(body, names=(b"subject",)):
    """The header block of HEADER.FIELDS (names): the matching fields,
    unfolded lines kept, CRLF line ends, then an empty line."""
    m = re.search(rb"\r?\n\r?\n", body)
    head = body[:m.start()] if m else body
    lines = re.split(rb"\r?\n", head)
    out = []
    keep = False
    for line in lines:
        if line[:1] in (b" ", b"\t"):
            if keep:
                out.append(line)
            continue
        name = line.split(b":", 1)[0].strip().lower()
        keep = b":" in line and name in names
        if keep:
            out.append(line)
    return b"".join(x + b"\r\n" for x in out) + b"\r\n"


class Message:
    def __init__(self, uid, body, flags=(), date=None, size=None):
        self.uid = uid
        self.body = _b(body)
        self.flags = list(flags)
        self.date = int(date if date is not None else time.time())
        # RFC822.SIZE the server claims; None: the real length.
        self.size = size
        # More FETCH items the server knows: {"X-GM-MSGID": b"123"}.
        self.extra = {}

    @property
    def claimed_size(self):
        return len(self.body) if self.size is None else self.size


class Folder:
    """raw: the name as the server sends it (bytes: modified UTF-7, or
    anything a hostile server sends). delim: the hierarchy delimiter
    (None: NIL). form: how LIST sends the name: 'quoted', 'literal',
    'atom' or None (quoted when possible, else a literal)."""

    _next_uidvalidity = [3000000001]

    def __init__(self, raw, messages=(), attrs=(), delim="/", form=None,
                 uidvalidity=None, listed=True, selectable=True):
        self.raw = _b(raw)
        self.messages = list(messages)
        self.attrs = list(attrs)
        if not selectable and "\\Noselect" not in self.attrs:
            self.attrs.append("\\Noselect")
        self.delim = delim
        self.form = form
        if uidvalidity is None:
            uidvalidity = Folder._next_uidvalidity[0]
            Folder._next_uidvalidity[0] += 1
        self.uidvalidity = uidvalidity
        self.listed = listed

    @property
    def selectable(self):
        return not any(a.lower() in ("\\noselect", "\\nonexistent")
                       for a in self.attrs)

    def add(self, body, flags=(), date=None, size=None, uid=None):
        if uid is None:
            uid = (self.messages[-1].uid + 1) if self.messages else 1
        m = Message(uid, body, flags, date, size)
        self.messages.append(m)
        return m

    def uidnext(self):
        return (max(m.uid for m in self.messages) + 1) if self.messages \
            else 1

    def by_uid(self, uid):
        for m in self.messages:
            if m.uid == uid:
                return m
        return None


class Account:
    def __init__(self, user="fake-user", password=None, folders=()):
        self.user = user
        self.password = password or "fakepw" + os.urandom(9).hex()
        self.folders = list(folders)

    def folder(self, raw):
        raw = _b(raw)
        for f in self.folders:
            if f.raw == raw:
                return f
        return None

    def add_folder(self, raw, **kw):
        f = Folder(raw, **kw)
        self.folders.append(f)
        return f


# ---------------------------------------------------------------------------
# Wire helpers

def quoted(s):
    s = _b(s)
    return b'"' + s.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def literal(s):
    s = _b(s)
    return b"{%d}\r\n" % len(s) + s


def astring(s, form=None):
    """s as a quoted string when that is possible, else a literal."""
    s = _b(s)
    if form == "literal":
        return literal(s)
    if form == "atom":
        return s
    if form == "quoted" or not re.search(rb"[\x00\r\n\x80-\xff]", s):
        return quoted(s)
    return literal(s)


def parse_string(data, pos):
    """Parse an astring at data[pos:]: returns (value bytes, new pos)."""
    while pos < len(data) and data[pos:pos + 1] == b" ":
        pos += 1
    if data[pos:pos + 1] == b'"':
        out = bytearray()
        pos += 1
        while pos < len(data):
            c = data[pos:pos + 1]
            if c == b"\\" and pos + 1 < len(data):
                out += data[pos + 1:pos + 2]
                pos += 2
                continue
            if c == b'"':
                return bytes(out), pos + 1
            out += c
            pos += 1
        raise ValueError("unterminated quoted string")
    m = re.match(rb"\{(\d+)\+?\}\r\n", data[pos:])
    if m:
        n = int(m.group(1))
        start = pos + m.end()
        if start + n > len(data):
            raise ValueError("short literal")
        return data[start:start + n], start + n
    m = re.match(rb"[^ ()\r\n]+", data[pos:])
    if not m:
        raise ValueError("no string at %d" % pos)
    return m.group(0), pos + m.end()


def parse_uid_set(text, max_uid):
    """'1:*', '5', '1,3:4' -> set of ints (bounded by max_uid for '*')."""
    out = set()
    for part in text.split(","):
        if ":" in part:
            a, b = part.split(":", 1)
            a = max_uid if a == "*" else int(a)
            b = max_uid if b == "*" else int(b)
            lo, hi = min(a, b), max(a, b)
            out.add(("range", lo, hi))
        else:
            out.add(("one", max_uid if part == "*" else int(part)))
    return out


def uid_in(uid, sets):
    for s in sets:
        if s[0] == "one" and s[1] == uid:
            return True
        if s[0] == "range" and s[1] <= uid <= s[2]:
            return True
    return False


def split_fetch_items(text):
    """'(UID BODY.PEEK[HEADER.FIELDS (SUBJECT)] RFC822.SIZE)' -> items."""
    text = text.strip()
    if text.startswith("(") and text.endswith(")"):
        text = text[1:-1]
    items = []
    i = 0
    while i < len(text):
        if text[i] == " ":
            i += 1
            continue
        j = i
        while j < len(text) and text[j] not in " [":
            j += 1
        if j < len(text) and text[j] == "[":
            depth = 0
            while j < len(text):
                if text[j] == "[":
                    depth += 1
                elif text[j] == "]":
                    depth -= 1
                    if depth == 0:
                        j += 1
                        break
                j += 1
            if j < len(text) and text[j] == "<":
                k = text.find(">", j)
                j = len(text) if k < 0 else k + 1
        items.append(text[i:j])
        i = j
    return items


def compress_uids(uids):
    """[1,2,3,5] -> '1:3,5'."""
    uids = sorted(uids)
    out = []
    i = 0
    while i < len(uids):
        j = i
        while j + 1 < len(uids) and uids[j + 1] == uids[j] + 1:
            j += 1
        out.append(str(uids[i]) if i == j else "%d:%d" % (uids[i], uids[j]))
        i = j + 1
    return ",".join(out)


def secret_forms(password, user=None):
    """Byte strings whose presence in a stream betrays the password: the
    password itself and every base64 rendering of it, whatever its offset
    in the encoded data (three alignments), plus the whole SASL PLAIN
    blobs."""
    pw = _b(password)
    forms = {pw}
    for k in range(3):
        enc = base64.b64encode(b"\0" * k + pw)
        # Drop the characters that also depend on the bytes around it.
        start = (k * 4 + 2) // 3
        core = enc[start:]
        tail = (len(pw) + k) % 3
        core = core.rstrip(b"=")
        if tail:
            core = core[:-1]
        if len(core) >= 8:
            forms.add(core)
    if user is not None:
        u = _b(user)
        for blob in (b"\0" + u + b"\0" + pw, u + b"\0" + u + b"\0" + pw):
            forms.add(base64.b64encode(blob))
    return forms


def find_secret(data, password, user=None):
    """The first secret form found in data (bytes), or None."""
    for f in secret_forms(password, user):
        if f in data:
            return f
    return None


# ---------------------------------------------------------------------------
# One connection

class Ctx:
    """What a rule's callable sees."""

    def __init__(self, conn, tag, cmd):
        self.conn = conn
        self.server = conn.server
        self.tag = tag
        self.cmd = cmd
        self.text = cmd.decode("latin-1")

    def default(self):
        return self.conn.default_script(self.tag, self.cmd)

    @property
    def folder(self):
        return self.conn.selected

    def fetch_line(self, msg, items, body=None):
        """The untagged FETCH response for msg with items (see
        Conn.fetch_item); body replaces the message bytes."""
        return self.conn.fetch_response(self.conn.selected, msg, items, body)


class Conn:
    def __init__(self, server, sock, index):
        self.server = server
        self.sock = sock
        self.index = index
        self.tls = False
        self.state = "nonauth"
        self.selected = None
        self.clear_in = bytearray()   # bytes received before TLS
        self.tls_in = bytearray()     # bytes received after the handshake
        self.clear_after_starttls = bytearray()
        self.commands = []            # (phase, tag, command bytes)
        self.sent = bytearray()       # first bytes sent, for diagnostics
        self.bytes_out = 0            # counts of what was sent
        self.sends = 0
        self.buf = bytearray()
        self.error = None
        self.closed = threading.Event()
        self.handshake_error = None
        self._send_lock = threading.Lock()

    # --- transport --------------------------------------------------------

    def _recv(self):
        try:
            data = self.sock.recv(65536)
        except (OSError, ssl.SSLError) as e:
            raise ConnectionGone(str(e))
        if not data:
            raise ConnectionGone("eof")
        (self.tls_in if self.tls else self.clear_in).extend(data)
        return data

    def read_line(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[:i + 2]
                return line
            if len(self.buf) > MAX_COMMAND:
                raise ConnectionGone("command too long")
            self.buf.extend(self._recv())

    def read_exact(self, n):
        while len(self.buf) < n:
            self.buf.extend(self._recv())
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def read_command(self):
        parts = []
        total = 0
        while True:
            line = self.read_line()
            parts.append(line)
            total += len(line)
            m = re.search(rb"\{(\d+)(\+?)\}$", line)
            if not m:
                break
            n = int(m.group(1))
            total += n
            if total > MAX_COMMAND:
                raise ConnectionGone("literal too long")
            if not m.group(2):
                self.send_raw(b"+ go ahead\r\n")
            parts.append(b"\r\n" + self.read_exact(n))
        return b"".join(parts)

    def send_raw(self, data):
        """One write, split as the server says."""
        if not data:
            return
        srv = self.server
        if srv.split is None:
            chunks = [data]
        elif callable(srv.split):
            chunks = srv.split(data)
        else:
            n = int(srv.split)
            chunks = [data[i:i + n] for i in range(0, len(data), n)]
        delay = srv.split_delay(self) if callable(srv.split_delay) \
            else srv.split_delay
        with self._send_lock:
            if len(self.sent) < 65536:
                self.sent.extend(data[:65536 - len(self.sent)])
            for i, c in enumerate(chunks):
                if i and delay:
                    time.sleep(delay)
                try:
                    self.sock.sendall(c)
                except (OSError, ssl.SSLError) as e:
                    raise ConnectionGone(str(e))
                self.sends += 1
                self.bytes_out += len(c)

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass
        self.closed.set()

    def start_tls(self):
        if self.buf:
            # The client sent something after STARTTLS without waiting
            # for the answer: in clear. Keep it as evidence.
            self.clear_after_starttls.extend(self.buf)
            self.buf.clear()
        try:
            self.sock.settimeout(self.server.io_timeout)
            self.sock = self.server.tls_context().wrap_socket(
                self.sock, server_side=True)
        except (OSError, ssl.SSLError) as e:
            self.handshake_error = str(e)
            raise ConnectionGone("TLS handshake: %s" % e)
        self.tls = True

    # --- scripts ----------------------------------------------------------

    def run_script(self, script, tag):
        for item in script:
            if item is DEFAULT:
                raise ValueError("DEFAULT must be expanded first")
            if isinstance(item, (bytes, str)):
                self.send_raw(_b(item).replace(b"{tag}", tag))
            elif isinstance(item, Raw):
                self.send_raw(item.data)
            elif isinstance(item, Sleep):
                time.sleep(item.seconds)
            elif item is CLOSE:
                raise ConnectionGone("closed by script")
            elif item is STARTTLS_NOW:
                self.start_tls()
            elif item is WAIT_DONE:
                while True:
                    line = self.read_line()
                    self.commands.append(("tls" if self.tls else "clear",
                                          b"+", line))
                    if line.upper() == b"DONE":
                        break
            elif isinstance(item, Stream):
                for chunk in item.fn():
                    if self.server.stopping:
                        raise ConnectionGone("server stopping")
                    self.send_raw(chunk)
            else:
                raise ValueError("bad script item %r" % (item,))

    def script_for(self, tag, cmd):
        rule = self.server.match_rule(self, tag, cmd)
        if rule is None:
            return self.default_script(tag, cmd)
        script = rule.script
        if callable(script):
            script = script(Ctx(self, tag, cmd))
        out = []
        for item in script:
            if item is DEFAULT:
                out.extend(self.default_script(tag, cmd))
            else:
                out.append(item)
        return out

    # --- the conversation -------------------------------------------------

    def serve(self):
        srv = self.server
        try:
            self.sock.settimeout(srv.io_timeout)
            if srv.tls == "implicit":
                self.start_tls()
            self.run_script(self.script_for(b"*", b"*GREETING"), b"*")
            while not srv.stopping and self.state != "logout":
                cmd = self.read_command()
                m = re.match(rb"([^ ]+) ?(.*)$", cmd, re.S)
                tag, rest = (m.group(1), m.group(2)) if m else (b"*", cmd)
                self.commands.append(("tls" if self.tls else "clear", tag,
                                      rest))
                if rest.upper().startswith(b"AUTHENTICATE") and \
                        not re.match(rb"(?i)AUTHENTICATE +PLAIN +\S",
                                     rest) and \
                        srv.match_rule(self, tag, rest, peek=True) is None:
                    self.authenticate_plain_no_ir(tag)
                    continue
                self.run_script(self.script_for(tag, rest), tag)
        except ConnectionGone as e:
            self.error = str(e)
        except Exception as e:  # a bug in a test script: keep it visible
            self.error = "server error: %r" % (e,)
            srv.errors.append(self.error)
        finally:
            self.close()

    def caps(self):
        srv = self.server
        if srv.tls == "starttls" and not self.tls:
            return srv.caps_clear
        if self.state == "nonauth":
            return srv.caps_pre
        return srv.caps_post

    def cap_line(self):
        return b"* CAPABILITY " + " ".join(self.caps()).encode() + b"\r\n"

    def default_script(self, tag, cmd):
        srv = self.server
        t = tag
        up = cmd.upper()
        word = up.split(b" ", 1)[0]
        if cmd == b"*GREETING":
            caps = (b"[CAPABILITY " + " ".join(self.caps()).encode() +
                    b"] ") if srv.greeting_caps else b""
            return [b"* OK " + caps + b"fakeimap ready\r\n"]
        if word == b"CAPABILITY":
            return [self.cap_line() + t + b" OK CAPABILITY completed\r\n"]
        if word == b"NOOP":
            return [t + b" OK NOOP completed\r\n"]
        if word == b"IDLE" and self.state != "nonauth":
            return [b"+ idling\r\n", WAIT_DONE,
                    t + b" OK IDLE terminated\r\n"]
        if word == b"LOGOUT":
            self.state = "logout"
            return [b"* BYE fakeimap logging out\r\n" + t +
                    b" OK LOGOUT completed\r\n"]
        if word == b"STARTTLS":
            if srv.tls != "starttls" or self.tls:
                return [t + b" BAD STARTTLS not available\r\n"]
            return [t + b" OK Begin TLS negotiation now\r\n", STARTTLS_NOW]
        if word == b"ID":
            return [b'* ID ("name" "fakeimap")\r\n' + t +
                    b" OK ID completed\r\n"]
        if word == b"LOGIN":
            return self.do_login(t, cmd)
        if word == b"AUTHENTICATE":
            m = re.match(rb"(?i)AUTHENTICATE +PLAIN +(\S+)", cmd)
            if not m:
                return [t + b" NO unsupported mechanism\r\n"]
            return self.check_plain(t, m.group(1))
        if self.state == "nonauth":
            return [t + b" BAD log in first\r\n"]
        if word == b"LIST":
            return [self.list_response() + t + b" OK LIST completed\r\n"]
        if word == b"EXAMINE":
            return self.do_examine(t, cmd)
        if word == b"STATUS":
            return self.do_status(t, cmd)
        if word == b"UID":
            sub = up.split(b" ", 2)[1] if len(up.split(b" ")) > 1 else b""
            if sub == b"FETCH":
                return self.do_fetch(t, cmd)
            if sub == b"SEARCH":
                return self.do_search(t, cmd)
        if word in (b"SELECT", b"STORE", b"EXPUNGE", b"COPY", b"MOVE",
                    b"APPEND", b"CREATE", b"DELETE", b"RENAME") or \
                up.startswith((b"UID STORE", b"UID EXPUNGE", b"UID COPY",
                               b"UID MOVE")):
            return [t + b" NO fakeimap is read-only\r\n"]
        return [t + b" BAD unknown command\r\n"]

    def logged_in(self, t):
        self.state = "auth"
        caps = b"[CAPABILITY " + " ".join(self.server.caps_post).encode() + \
            b"] " if self.server.login_caps else b""
        return [t + b" OK " + caps + b"logged in\r\n"]

    def do_login(self, t, cmd):
        if "LOGINDISABLED" in [c.upper() for c in self.caps()]:
            return [t + b" NO [PRIVACYREQUIRED] LOGIN is disabled\r\n"]
        try:
            user, pos = parse_string(cmd, len(b"LOGIN"))
            pw, pos = parse_string(cmd, pos)
        except ValueError:
            return [t + b" BAD LOGIN arguments\r\n"]
        acct = self.server.account
        if user == _b(acct.user) and pw == _b(acct.password):
            return self.logged_in(t)
        return [t + b" NO [AUTHENTICATIONFAILED] wrong\r\n"]

    def check_plain(self, t, b64):
        try:
            raw = base64.b64decode(b64, validate=True)
            authz, user, pw = raw.split(b"\0")
        except (ValueError, base64.binascii.Error):
            return [t + b" BAD bad PLAIN response\r\n"]
        acct = self.server.account
        if user == _b(acct.user) and pw == _b(acct.password) and \
                authz in (b"", user):
            return self.logged_in(t)
        return [t + b" NO [AUTHENTICATIONFAILED] wrong\r\n"]

    def authenticate_plain_no_ir(self, tag):
        self.send_raw(b"+ \r\n")
        line = self.read_line()
        self.commands.append(("tls" if self.tls else "clear", b"+", line))
        if line == b"*":
            self.run_script([tag + b" BAD cancelled\r\n"], tag)
            return
        self.run_script(self.check_plain(tag, line.strip()), tag)

    def list_response(self):
        out = []
        for f in self.server.account.folders:
            if not f.listed:
                continue
            delim = b"NIL" if f.delim is None else quoted(f.delim)
            attrs = " ".join(f.attrs).encode()
            out.append(b"* LIST (" + attrs + b") " + delim + b" " +
                       astring(f.raw, f.form) + b"\r\n")
        return b"".join(out)

    def do_examine(self, t, cmd):
        try:
            name, pos = parse_string(cmd, len(b"EXAMINE"))
        except ValueError:
            return [t + b" BAD EXAMINE arguments\r\n"]
        f = self.server.account.folder(name)
        if f is None or not f.selectable:
            self.selected = None
            return [t + b" NO [NONEXISTENT] no such folder\r\n"]
        self.selected = f
        self.state = "selected"
        out = [b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n",
               b"* OK [PERMANENTFLAGS ()] read-only\r\n",
               b"* %d EXISTS\r\n" % len(f.messages),
               b"* 0 RECENT\r\n",
               b"* OK [UIDVALIDITY %d] UIDs valid\r\n" % f.uidvalidity,
               b"* OK [UIDNEXT %d] next UID\r\n" % f.uidnext()]
        if "CONDSTORE" in [c.upper() for c in self.server.caps_post]:
            out.append(b"* OK [HIGHESTMODSEQ %d] modseq\r\n" %
                       (len(f.messages) + 1))
        out.append(t + b" OK [READ-ONLY] EXAMINE completed\r\n")
        return [b"".join(out)]

    def do_status(self, t, cmd):
        try:
            name, pos = parse_string(cmd, len(b"STATUS"))
        except ValueError:
            return [t + b" BAD STATUS arguments\r\n"]
        f = self.server.account.folder(name)
        if f is None or not f.selectable:
            return [t + b" NO [NONEXISTENT] no such folder\r\n"]
        values = {"MESSAGES": len(f.messages), "RECENT": 0,
                  "UIDNEXT": f.uidnext(), "UIDVALIDITY": f.uidvalidity,
                  "UNSEEN": sum(1 for x in f.messages
                                if "\\Seen" not in x.flags),
                  "HIGHESTMODSEQ": len(f.messages) + 1}
        asked = re.findall(r"[A-Z]+", cmd[pos:].decode("latin-1").upper())
        items = " ".join("%s %d" % (a, values[a]) for a in asked
                         if a in values)
        return [b"* STATUS " + astring(f.raw, f.form) + b" (" +
                items.encode() + b")\r\n" + t + b" OK STATUS completed\r\n"]

    def fetch_item(self, f, msg, item, body=None):
        up = item.upper()
        data = msg.body if body is None else body
        forms = self.server.string_forms
        if up == "UID":
            return b"UID %d" % msg.uid
        if up == "RFC822.SIZE":
            return b"RFC822.SIZE %d" % msg.claimed_size
        if up == "INTERNALDATE":
            d = internaldate(msg.date).encode()
            return b"INTERNALDATE " + (literal(d) if forms.get(
                "internaldate") == "literal" else quoted(d))
        if up == "FLAGS":
            return b"FLAGS (" + " ".join(msg.flags).encode() + b")"
        if up in msg.extra:
            return up.encode() + b" " + msg.extra[up]
        m = re.match(r"BODY(?:\.PEEK)?\[(.*)\](?:<(\d+)\.(\d+)>)?$", item,
                     re.I | re.S)
        if m:
            section = m.group(1)
            if section.upper().startswith("HEADER.FIELDS"):
                names = re.findall(r"[^ ()]+", section[len(
                    "HEADER.FIELDS"):])
                block = header_fields(data, [n.lower().encode()
                                             for n in names])
                form = forms.get("header", "literal")
                return b"BODY[" + section.upper().encode() + b"] " + (
                    quoted(block) if form == "quoted" else literal(block))
            part = data
            label = b"BODY[" + section.encode() + b"]"
            if m.group(2) is not None:
                off, n = int(m.group(2)), int(m.group(3))
                part = data[off:off + n]
                label += b"<%d>" % off
            self.server.count_body(f, msg, len(part), whole=m.group(2) is None
                                   and section == "")
            form = forms.get("body", "literal")
            return label + b" " + (quoted(part) if form == "quoted"
                                   else literal(part))
        return b""

    def fetch_response(self, f, msg, items, body=None):
        seq = f.messages.index(msg) + 1
        parts = [self.fetch_item(f, msg, i, body) for i in items]
        if "UID" not in [i.upper() for i in items]:
            parts.insert(0, b"UID %d" % msg.uid)
        return b"* %d FETCH (" % seq + b" ".join(p for p in parts if p) + \
            b")\r\n"

    def do_fetch(self, t, cmd):
        f = self.selected
        if f is None:
            return [t + b" BAD no folder selected\r\n"]
        m = re.match(rb"(?i)UID FETCH ([0-9:*,]+) (.*)$", cmd, re.S)
        if not m:
            return [t + b" BAD UID FETCH arguments\r\n"]
        max_uid = max((x.uid for x in f.messages), default=0)
        sets = parse_uid_set(m.group(1).decode(), max_uid)
        items = split_fetch_items(m.group(2).decode("latin-1"))
        out = []
        for msg in f.messages:
            if uid_in(msg.uid, sets):
                out.append(self.fetch_response(f, msg, items))
        out.append(t + b" OK UID FETCH completed\r\n")
        return [b"".join(out)]

    def do_search(self, t, cmd):
        f = self.selected
        if f is None:
            return [t + b" BAD no folder selected\r\n"]
        uids = [x.uid for x in f.messages]
        m = re.search(rb"(?i) UID ([0-9:*,]+)", cmd[len(b"UID SEARCH"):])
        if m:
            sets = parse_uid_set(m.group(1).decode(), max(uids, default=0))
            uids = [u for u in uids if uid_in(u, sets)]
        if re.search(rb"(?i)RETURN", cmd):
            line = b'* ESEARCH (TAG "' + t + b'") UID'
            if uids:
                line += b" ALL " + compress_uids(uids).encode()
            out = line + b"\r\n"
        else:
            out = b"* SEARCH" + b"".join(b" %d" % u for u in uids) + b"\r\n"
        return [out + t + b" OK UID SEARCH completed\r\n"]


# ---------------------------------------------------------------------------
# The server

class FakeImap:
    """tls: 'implicit', 'starttls' or 'none'. cert: (certfile, keyfile),
    or None for a fresh certificate from a throwaway CA (self.ca)."""

    def __init__(self, account=None, tls="implicit", cert=None, workdir=None,
                 host="localhost"):
        self.account = account or Account()
        self.tls = tls
        self.host = host
        self.dir = workdir or h.make_tempdir("imapfs-fakeimap-")
        self.ca = None
        self.cafile = None
        if cert is None and tls != "none":
            self.ca = h.CertAuthority(os.path.join(self.dir, "ca"))
            self.cafile = self.ca.cert
            cert = self.ca.issue("server")
        self.cert = cert
        self._ctx = None
        self.caps_clear = ["IMAP4rev1", "STARTTLS", "LOGINDISABLED"]
        self.caps_pre = ["IMAP4rev1", "SASL-IR", "AUTH=PLAIN", "LITERAL+",
                         "ID"]
        self.caps_post = ["IMAP4rev1", "LITERAL+", "ID", "ESEARCH"]
        self.greeting_caps = True
        self.login_caps = True
        self.string_forms = {}
        self.split = None
        self.split_delay = 0.0
        self.io_timeout = 60
        self.rules = []
        # Counters tests read: whole bodies sent per (folder, UID), all
        # body bytes sent, most connections open at once.
        self.body_sends = {}
        self.body_bytes = 0
        self.peak_conns = 0
        self.conns = []
        self.errors = []
        self._errors_reported = 0
        self.stopping = False
        self._lock = threading.Lock()
        self._listeners = []
        self._threads = []
        self.port = None
        self._cleanup = h.add_cleanup(self.stop)
        h.add_diagnostic(lambda: "--- fakeimap (port %s) transcript:\n%s"
                         % (self.port, self.transcript()))

    @property
    def password(self):
        return self.account.password

    @property
    def user(self):
        return self.account.user

    def url(self, mode=None, user=None, host=None, port=None):
        if mode is None:
            mode = "imaps" if self.tls == "implicit" else "imap"
        user = self.account.user if user is None else user
        return "%s://%s@%s:%d" % (mode, urllib.parse.quote(user, safe=""),
                                  host or self.host, port or self.port)

    def set_cert(self, cert):
        """(certfile, keyfile) for new connections."""
        with self._lock:
            self.cert = cert
            self._ctx = None

    def tls_context(self):
        with self._lock:
            if self._ctx is None:
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                ctx.minimum_version = ssl.TLSVersion.TLSv1_2
                ctx.load_cert_chain(*self.cert)
                self._ctx = ctx
            return self._ctx

    # --- rules ------------------------------------------------------------

    def add_rule(self, pattern, script, **kw):
        r = Rule(pattern, script, **kw)
        with self._lock:
            self.rules.append(r)
        return r

    def remove_rule(self, rule):
        with self._lock:
            if rule in self.rules:
                self.rules.remove(rule)

    def clear_rules(self):
        with self._lock:
            self.rules.clear()

    def match_rule(self, conn, tag, cmd, peek=False):
        with self._lock:
            for r in self.rules:
                if r.times is not None and r.hits >= r.times:
                    continue
                if r.conn is not None and r.conn != conn.index:
                    continue
                if not r.regex.search(cmd):
                    continue
                if r.when is not None and not r.when(Ctx(conn, tag, cmd)):
                    continue
                if not peek:
                    r.hits += 1
                return r
        return None

    def count_body(self, folder, msg, nbytes, whole):
        with self._lock:
            self.body_bytes += nbytes
            if whole:
                key = (folder.raw, msg.uid)
                self.body_sends[key] = self.body_sends.get(key, 0) + 1

    def live_conns(self):
        with self._lock:
            return [c for c in self.conns if not c.closed.is_set()]

    # --- lifecycle --------------------------------------------------------

    def start(self):
        port = h.free_port()
        addrs = [(socket.AF_INET, "127.0.0.1")]
        if h.HAVE_IPV6:
            addrs.append((socket.AF_INET6, "::1"))
        for fam, addr in addrs:
            s = socket.socket(fam, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if fam == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s.bind((addr, port))
            s.listen(64)
            s.settimeout(0.2)
            self._listeners.append(s)
        self.port = port
        for s in self._listeners:
            th = threading.Thread(target=self._accept_loop, args=(s,),
                                  daemon=True)
            th.start()
            self._threads.append(th)
        return self

    def _accept_loop(self, lsock):
        while not self.stopping:
            try:
                sock, _ = lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                conn = Conn(self, sock, len(self.conns))
                self.conns.append(conn)
                live = sum(1 for c in self.conns if not c.closed.is_set())
                self.peak_conns = max(self.peak_conns, live)
            th = threading.Thread(target=conn.serve, daemon=True)
            th.start()

    def stop(self):
        self.stopping = True
        for s in self._listeners:
            try:
                s.close()
            except OSError:
                pass
        self._listeners = []
        with self._lock:
            conns = list(self.conns)
        for c in conns:
            c.close()
        for th in self._threads:
            th.join(timeout=2)
        self._threads = []
        # A script that raised fails the test even where the daemon coped
        # and no check looked at self.errors.
        new = self.errors[self._errors_reported:]
        self._errors_reported = len(self.errors)
        if new:
            h.fail_after_cleanup("fakeimap (port %s): no server script "
                                 "errors" % self.port, h.short(new, 600))

    # --- what was received ------------------------------------------------

    def clear_bytes(self):
        """Everything any connection sent before TLS (or at all, without
        TLS), including what came after STARTTLS without waiting."""
        with self._lock:
            conns = list(self.conns)
        return b"".join(bytes(c.clear_in) for c in conns)

    def all_commands(self):
        """[(connection index, phase, tag, command)] in order per
        connection."""
        with self._lock:
            conns = list(self.conns)
        return [(c.index, p, t, cmd) for c in conns
                for (p, t, cmd) in list(c.commands)]

    def write_commands(self):
        """Commands that would change the server, as text."""
        out = []
        for i, p, t, cmd in self.all_commands():
            up = cmd.upper()
            for w in WRITE_COMMANDS:
                wb = w.encode()
                if up == wb or up.startswith(wb + b" "):
                    out.append("conn %d: %s %s" % (
                        i, t.decode("latin-1"), cmd[:80].decode("latin-1")))
                    break
            if re.match(rb"(?i)UID FETCH .*BODY\[", cmd) or \
                    re.match(rb"(?i)UID FETCH .*RFC822(?!\.SIZE)", cmd):
                out.append("conn %d: non-PEEK fetch %s" % (
                    i, cmd[:80].decode("latin-1")))
        return out

    def count(self, pattern):
        rx = re.compile(_b(pattern), re.I | re.S)
        return sum(1 for _, _, _, c in self.all_commands() if rx.search(c))

    def transcript(self, limit=60):
        lines = []
        with self._lock:
            conns = list(self.conns)
        for c in conns:
            lines.append("conn %d (tls=%s, error=%s, %d clear bytes in):" % (
                c.index, c.tls, c.error, len(c.clear_in)))
            for p, t, cmd in list(c.commands)[:limit]:
                text = cmd.decode("latin-1")
                if re.match(r"(?i)(LOGIN|AUTHENTICATE)", text) or t == b"+":
                    text = text.split(" ")[0] + " <credentials>"
                lines.append("  %s %s %s" % (p, t.decode("latin-1"),
                                             h.short(text, 120)))
        if self.errors:
            lines.append("server script errors: %s" % self.errors)
        return "\n".join(lines)


# ---------------------------------------------------------------------------
# Self-test (no daemon needed)

def selftest():
    import imaplib

    def body(t):
        acct = Account()
        inbox = acct.add_folder("INBOX")
        inbox.add(b"Subject: one\r\n\r\nbody one\r\n", flags=["\\Seen"])
        inbox.add(b"Subject: two\r\n folded\r\nX: y\r\n\r\nbody two\r\n",
                  size=5)
        acct.add_folder("Entw&APw-rfe").add(b"Subject: d\r\n\r\nx\r\n")
        acct.add_folder("weird\x01name", form="literal")
        srv = FakeImap(acct, tls="starttls").start()
        ctx = ssl.create_default_context(cafile=srv.cafile)
        c = imaplib.IMAP4("localhost", srv.port, timeout=10)
        t.check("STARTTLS" in c.capabilities, "STARTTLS offered in clear")
        c.starttls(ssl_context=ctx)
        c.login(acct.user, acct.password)
        typ, data = c.list('""', '"*"')
        t.equal(typ, "OK", "LIST works")
        t.equal(len(data), 3 + 1, "LIST has three entries (one literal)")
        typ, data = c.select('"INBOX"', readonly=True)
        t.equal(data, [b"2"], "EXAMINE INBOX: 2 EXISTS")
        typ, data = c.uid("FETCH", "1:*", "(UID RFC822.SIZE BODY.PEEK["
                          "HEADER.FIELDS (SUBJECT)])")
        t.equal(data[2][0], b"2 (UID 2 RFC822.SIZE 5 BODY[HEADER.FIELDS "
                b"(SUBJECT)] {25}", "FETCH with the claimed size")
        t.equal(data[2][1], b"Subject: two\r\n folded\r\n\r\n",
                "HEADER.FIELDS keeps folded lines")
        typ, data = c.uid("FETCH", "5:*", "(UID)")
        t.equal(data, [b"2 (UID 2)"], "UID 5:* answers the highest UID")
        typ, data = c.uid("SEARCH", "ALL")
        t.equal(data, [b"1 2"], "UID SEARCH ALL")
        typ, data = c.status('"INBOX"', "(MESSAGES UIDNEXT UNSEEN)")
        t.equal(data, [b'"INBOX" (MESSAGES 2 UIDNEXT 3 UNSEEN 1)'],
                "STATUS")
        typ, data = c.uid("FETCH", "1", "(UID BODY.PEEK[])")
        t.equal(data[0][1], b"Subject: one\r\n\r\nbody one\r\n", "BODY[]")
        srv.add_rule(r"^UID FETCH 1 ", [b"* 1 FETCH (UID 1 BODY[] NIL)\r\n"
                                        b"{tag} OK done\r\n"], times=1)
        typ, data = c.uid("FETCH", "1", "(UID BODY.PEEK[])")
        t.equal(data, [b"1 (UID 1 BODY[] NIL)"], "a rule replaces the answer")
        typ, data = c.uid("FETCH", "1", "(UID BODY.PEEK[])")
        t.check(isinstance(data[0], tuple), "times=1: then the default")
        tag = c._new_tag()
        c.send(tag + b" IDLE\r\n")
        t.equal(c.readline(), b"+ idling\r\n", "IDLE: continuation")
        c.send(b"DONE\r\n")
        t.check(c.readline().startswith(tag + b" OK"), "IDLE: DONE ends it")
        c.logout()
        t.check(find_secret(srv.clear_bytes(), acct.password,
                            acct.user) is None,
                "no secret in the clear bytes after STARTTLS + LOGIN")
        t.check(b"STARTTLS" in srv.clear_bytes(), "clear bytes recorded")
        raw = b"A1 LOGIN u " + acct.password.encode()
        t.check(find_secret(raw, acct.password) is not None,
                "find_secret finds the password")
        for k in range(3):
            blob = base64.b64encode(b"x" * k + b"\0u\0" +
                                    acct.password.encode() + b"zz")
            t.check(find_secret(blob, acct.password) is not None,
                    "find_secret finds base64 at alignment %d" % k)
        srv.split = 1
        c = imaplib.IMAP4("localhost", srv.port, timeout=10)
        c.starttls(ssl_context=ctx)
        c.login(acct.user, acct.password)
        t.equal(c.select('"Entw&APw-rfe"', readonly=True)[1], [b"1"],
                "one byte per send works")
        c.logout()
        t.equal(srv.write_commands(), [], "no write command recorded")
        t.equal(srv.errors, [], "no server script errors")
        srv.stop()

    h.Test("fakeimap selftest").run(body, needs_fuse=False)


if __name__ == "__main__":
    if sys.argv[1:] == ["selftest"]:
        selftest()
    print("usage: fakeimap.py selftest", file=sys.stderr)
    sys.exit(2)
