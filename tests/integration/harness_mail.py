"""The mail writers: the messages and folders the daemon tests serve.

Folder names in modified UTF-7, MaildirWriter (seeds a Dovecot instance by
writing Maildir++ files directly, with flags, INTERNALDATE and predictable
UIDs, much faster than APPEND), make_message() (one RFC 5322 message), and
core_messages() / seed_core(): the core suite's own deterministic messages
and folders.

It needs no running server: a MaildirWriter takes any object with maildir,
home, uid and gid (harness_dovecot.Dovecot). Tests import it through
imapfs_harness, which re-exports it.
"""

import base64
import datetime
import os
import random
import secrets
import time

from harness_core import chown_tree

# ---------------------------------------------------------------------------
# Modified UTF-7 (RFC 3501 section 5.1.3)

def mutf7_encode(name):
    out = []
    run_chars = []

    def flush():
        if run_chars:
            raw = "".join(run_chars).encode("utf-16-be")
            b64 = base64.b64encode(raw).decode("ascii").rstrip("=")
            out.append("&" + b64.replace("/", ",") + "-")
            run_chars.clear()

    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            run_chars.append(ch)
    flush()
    return "".join(out)


def mutf7_decode(name):
    if isinstance(name, bytes):
        name = name.decode("ascii")
    out = []
    i = 0
    while i < len(name):
        ch = name[i]
        if ch != "&":
            out.append(ch)
            i += 1
            continue
        j = name.index("-", i)
        if j == i + 1:
            out.append("&")
        else:
            b64 = name[i + 1:j].replace(",", "/")
            b64 += "=" * (-len(b64) % 4)
            out.append(base64.b64decode(b64).decode("utf-16-be"))
        i = j + 1
    return "".join(out)



# ---------------------------------------------------------------------------
# Seeding: Maildir++ files written directly

MAILDIR_FLAGS = {"D": "\\Draft", "F": "\\Flagged", "R": "\\Answered",
                 "S": "\\Seen", "T": "\\Deleted"}


def maildir_folder_dir(maildir, folder):
    """Directory of folder ('/'-separated UTF-8 name) in a Maildir++ tree:
    INBOX is the root, others are .A.B with mUTF-7 components."""
    if folder == "INBOX":
        return maildir
    parts = folder.split("/")
    enc = []
    for p in parts:
        e = mutf7_encode(p)
        if not p or "." in e or p in (".", ".."):
            raise ValueError("folder component %r cannot be stored in "
                             "Maildir++" % p)
        enc.append(e)
    return os.path.join(maildir, "." + ".".join(enc))


class MaildirWriter:
    """Writes messages into a Dovecot instance's Maildir++ tree, with a
    dovecot-uidlist so that UIDs are predictable (1, 2, ... per folder in
    the order added). Call finish() before Dovecot opens the folders."""

    def __init__(self, dovecot, uidvalidity=None):
        self.dc = dovecot
        self.maildir = dovecot.maildir
        self.uidvalidity = uidvalidity or int(time.time()) - 100
        self.folders = {}
        self._seq = 0

    def folder(self, name):
        if name not in self.folders:
            d = maildir_folder_dir(self.maildir, name)
            for sub in ("cur", "new", "tmp"):
                os.makedirs(os.path.join(d, sub), exist_ok=True)
            if name != "INBOX":
                open(os.path.join(d, "maildirfolder"), "a").close()
            self.folders[name] = {"dir": d, "entries": []}
        return self.folders[name]

    def add(self, folder, data, flags="", date=None):
        """Store one message; returns its UID. flags: Maildir letters from
        DFRST; date: INTERNALDATE as a Unix time."""
        f = self.folder(folder)
        if date is None:
            date = time.time()
        self._seq += 1
        base = "%d.M%dP%d.imapfs-test" % (int(date), self._seq, os.getpid())
        flags = "".join(sorted(set(flags)))
        path = os.path.join(f["dir"], "cur", base + ":2," + flags)
        with open(path, "wb") as fh:
            fh.write(data)
        os.utime(path, (date, date))
        f["entries"].append(base)
        return len(f["entries"])

    def finish(self):
        for name, f in self.folders.items():
            path = os.path.join(f["dir"], "dovecot-uidlist")
            n = len(f["entries"])
            with open(path, "w") as fh:
                fh.write("3 V%d N%d G%s\n" % (self.uidvalidity, n + 1,
                                             secrets.token_hex(16)))
                for uid, base in enumerate(f["entries"], 1):
                    fh.write("%d :%s\n" % (uid, base))
        chown_tree(self.dc.home, self.dc.uid, self.dc.gid)
        self.uidvalidity += 1



# ---------------------------------------------------------------------------
# The core suite's messages

NEEDLE = "imapfs-needle-4b7e"
CORE_FOLDERS = ["INBOX", "Archive/2024", "Entwürfe", "日本語", "Projects",
                "Projects/Alpha", "Q&A", "Empty"]
# Top-level names the mount's root must show (Archive exists only as the
# parent of Archive/2024).
CORE_TOP = {"INBOX", "Archive", "Entwürfe", "日本語", "Projects", "Q&A",
            "Empty"}


class Msg:
    """One generated message. name: the exact file name expected after
    "<UID> " (None: not exact); contains: a string the name must contain;
    empty_subject: the name must be "<UID>.eml"."""

    def __init__(self, folder, key, data, flags="", date=None, name=None,
                 contains=None, empty_subject=False, needle=False):
        self.folder = folder
        self.key = key
        self.data = data
        self.flags = flags
        self.date = date
        self.name = name
        self.contains = contains
        self.empty_subject = empty_subject
        self.needle = needle
        self.uid = None

    def expected_name_problem(self, fname):
        """None when fname fits this message, else what is wrong."""
        b = fname.encode("utf-8", "surrogateescape")
        if len(b) > 255:
            return "longer than 255 bytes"
        if "/" in fname or "\0" in fname or \
                any(ord(c) < 0x20 or ord(c) == 0x7F for c in fname):
            return "contains '/', NUL or a control character"
        try:
            b.decode("utf-8")
        except UnicodeDecodeError:
            return "not valid UTF-8"
        prefix = "%d " % self.uid
        if self.empty_subject:
            return None if fname == "%d.eml" % self.uid else \
                "expected %r" % ("%d.eml" % self.uid)
        if not fname.startswith(prefix) or not fname.endswith(".eml"):
            return "expected '%s<subject>.eml'" % prefix
        if self.name is not None and fname != prefix + self.name:
            return "expected %r" % (prefix + self.name)
        if self.contains is not None and self.contains not in fname:
            return "expected it to contain %r" % self.contains
        return None


def _b_word(text, charset="UTF-8"):
    return "=?%s?B?%s?=" % (charset, base64.b64encode(
        text.encode(charset)).decode("ascii"))


def make_message(key, subject, date, body=b"", eol=b"\r\n", extra_headers=(),
                 content_type="text/plain; charset=us-ascii",
                 cte="7bit", from_addr="Alice Example <alice@example.org>"):
    """subject: str (written as given, must be ASCII unless 8-bit is the
    point), bytes (raw), or None (no Subject header)."""
    headers = [
        b"From: " + from_addr.encode(),
        b"To: imapfs-test@localhost",
        b"Date: " + time.strftime("%a, %d %b %Y %H:%M:%S +0000",
                                  time.gmtime(date)).encode(),
        b"Message-ID: <" + key.encode() + b"@imapfs.test>",
    ]
    if subject is not None:
        s = subject if isinstance(subject, bytes) else subject.encode()
        headers.append(b"Subject: " + s if s else b"Subject:")
    headers.append(b"X-Imapfs-Test: " + key.encode())
    headers.append(b"MIME-Version: 1.0")
    headers.append(b"Content-Type: " + content_type.encode())
    headers.append(b"Content-Transfer-Encoding: " + cte.encode())
    headers.extend(h if isinstance(h, bytes) else h.encode()
                   for h in extra_headers)
    if isinstance(body, str):
        body = body.encode()
    lines = body.split(b"\n")
    body = eol.join(line.rstrip(b"\r") for line in lines)
    return eol.join(headers) + eol + eol + body


def _base64_lines(data):
    enc = base64.b64encode(data)
    return b"\n".join(enc[i:i + 76] for i in range(0, len(enc), 76))


def core_messages(large=True):
    """The core suite's messages, in the order they are added (UIDs count
    per folder from 1). Deterministic."""
    rnd = random.Random(20240301)
    t0 = int(datetime.datetime(2024, 3, 1, 9, 0, 0,
                               tzinfo=datetime.timezone.utc).timestamp())
    msgs = []
    n = [0]

    def add(folder, key, data, **kw):
        n[0] += 1
        kw.setdefault("date", t0 + n[0] * 3 * 3600 + 17 * n[0])
        msgs.append(Msg(folder, key, data, **kw))

    def date():
        return t0 + (n[0] + 1) * 3 * 3600 + 17 * (n[0] + 1)

    # INBOX
    add("INBOX", "plain", make_message(
        "plain", "Hello from imapfs", date(),
        body="Plain ASCII body.\nThe needle is %s.\nBye.\n" % NEEDLE),
        flags="", name="Hello from imapfs.eml", needle=True)
    boundary = "imapfs-boundary-1"
    attach = bytes(rnd.getrandbits(8) for _ in range(20000))
    mp = ("This is a multi-part message in MIME format.\n"
          "--%s\nContent-Type: text/plain; charset=us-ascii\n\n"
          "See the attached report.\n"
          "--%s\nContent-Type: application/octet-stream; name=report.bin\n"
          "Content-Transfer-Encoding: base64\n"
          "Content-Disposition: attachment; filename=report.bin\n\n"
          % (boundary, boundary)).encode() + _base64_lines(attach) + \
        ("\n--%s--\n" % boundary).encode()
    add("INBOX", "multipart", make_message(
        "multipart", "Quarterly report with attachment", date(), body=mp,
        content_type='multipart/mixed; boundary="%s"' % boundary),
        flags="S", name="Quarterly report with attachment.eml")
    add("INBOX", "latin1-body", make_message(
        "latin1-body", "Latin-1 body", date(),
        body="Gr\u00fc\u00dfe aus M\u00fcnchen, \u00e0 bient\u00f4t.\n"
        .encode("latin-1"),
        content_type="text/plain; charset=iso-8859-1", cte="8bit"),
        flags="S", name="Latin-1 body.eml")
    add("INBOX", "utf8-body", make_message(
        "utf8-body", "UTF-8 body", date(),
        body="Gr\u00fc\u00dfe, \u65e5\u672c\u8a9e, \U0001F642\n"
        .encode("utf-8"),
        content_type="text/plain; charset=utf-8", cte="8bit"),
        flags="", name="UTF-8 body.eml")
    add("INBOX", "b-utf8", make_message(
        "b-utf8", _b_word("Gr\u00fc\u00dfe aus K\u00f6ln"), date(),
        body="RFC 2047 B, UTF-8.\n"),
        flags="S", name="Gr\u00fc\u00dfe aus K\u00f6ln.eml")
    add("INBOX", "q-utf8", make_message(
        "q-utf8", "=?UTF-8?Q?Caf=C3=A9_cr=C3=A8me_br=C3=BBl=C3=A9e?=",
        date(), body="RFC 2047 Q, UTF-8.\n"),
        flags="", name="Caf\u00e9 cr\u00e8me br\u00fbl\u00e9e.eml")
    add("INBOX", "q-latin1", make_message(
        "q-latin1", "=?iso-8859-1?Q?Sch=F6ne_Gr=FC=DFe?=", date(),
        body="RFC 2047 Q, ISO-8859-1.\n"),
        flags="S", name="Sch\u00f6ne Gr\u00fc\u00dfe.eml")
    add("INBOX", "slash-colon", make_message(
        "slash-colon", "Re: report 2024/05: final", date(),
        body="Slashes and colons in the subject.\n"),
        flags="RS", name="Re- report 2024-05- final.eml")
    add("INBOX", "long-ascii", make_message(
        "long-ascii", "Long subject " + "lorem ipsum dolor " * 20, date(),
        body="A 370-byte subject.\n"),
        flags="S", contains="Long subject lorem ipsum")
    long_utf8 = "\u00dcberl\u00e4nge \u65e5\u672c " * 30
    words = [_b_word(long_utf8[i:i + 12]) for i in
             range(0, len(long_utf8), 12)]
    add("INBOX", "long-utf8", make_message(
        "long-utf8", "\r\n ".join(words), date(),
        body="A long RFC 2047 subject in many encoded words.\n"),
        flags="", contains="\u00dcberl\u00e4nge")
    add("INBOX", "empty-subject", make_message(
        "empty-subject", "", date(), body="The subject is empty.\n"),
        flags="S", empty_subject=True)
    add("INBOX", "no-subject", make_message(
        "no-subject", None, date(), body="There is no Subject header.\n"),
        flags="", empty_subject=True)
    add("INBOX", "lf-only", make_message(
        "lf-only", "LF only line ends", date(),
        body="Line one.\nLine two.\nLine three.\n", eol=b"\n"),
        flags="S", name="LF only line ends.eml")
    add("INBOX", "crlf", make_message(
        "crlf", "CRLF line ends", date(),
        body="Line one.\nLine two.\nLine three.\n", eol=b"\r\n"),
        flags="F", name="CRLF line ends.eml")
    add("INBOX", "raw-8bit-subject", make_message(
        "raw-8bit-subject", "Rohe Bytes \u00e4\u00f6\u00fc".encode("utf-8"),
        date(), body="Raw UTF-8 in the Subject header.\n"),
        flags="S", contains="Rohe Bytes")
    add("INBOX", "folded", make_message(
        "folded", "Folded\r\n subject line", date(),
        body="The subject is folded over two lines.\n"),
        flags="S", contains="subject line")

    # Archive/2024 (Archive itself exists only as a parent)
    add("Archive/2024", "archived-1", make_message(
        "archived-1", "Archived one", date(), body="First archived.\n"),
        flags="S", name="Archived one.eml")
    add("Archive/2024", "archived-2", make_message(
        "archived-2", "Archived two", date(),
        body="Second archived, with the needle %s inside.\n" % NEEDLE),
        flags="FS", name="Archived two.eml", needle=True)
    if large:
        big = bytes(rnd.getrandbits(8) for _ in range(3_800_000))
        body = ("--%s\nContent-Type: text/plain\n\nA large attachment.\n"
                "--%s\nContent-Type: application/octet-stream; "
                "name=big.bin\nContent-Transfer-Encoding: base64\n\n"
                % (boundary, boundary)).encode() + _base64_lines(big) + \
            ("\n--%s--\n" % boundary).encode()
        add("Archive/2024", "large", make_message(
            "large", "Large attachment", date(), body=body,
            content_type='multipart/mixed; boundary="%s"' % boundary),
            flags="", name="Large attachment.eml")

    # Non-ASCII folder names
    add("Entwürfe", "draft", make_message(
        "draft", "Draft reply", date(), body="Not sent yet.\n"),
        flags="DS", name="Draft reply.eml")
    add("日本語", "japanese", make_message(
        "japanese", _b_word("\u4f1a\u8b70\u306e\u8b70\u984c"), date(),
        body="\u4f1a\u8b70\u306f\u6728\u66dc\u65e5\u3067\u3059\u3002 %s\n"
        % NEEDLE, content_type="text/plain; charset=utf-8", cte="8bit"),
        flags="", name="\u4f1a\u8b70\u306e\u8b70\u984c.eml", needle=True)

    # A folder with both messages and children
    add("Projects", "kickoff", make_message(
        "kickoff", "Project kickoff", date(), body="Kickoff notes.\n"),
        flags="S", name="Project kickoff.eml")
    add("Projects", "budget", make_message(
        "budget", "Budget draft", date(), body="Numbers.\n", eol=b"\n"),
        flags="", name="Budget draft.eml")
    add("Projects/Alpha", "alpha", make_message(
        "alpha", "Alpha status", date(), body="Alpha is on track.\n"),
        flags="S", name="Alpha status.eml")
    add("Q&A", "qa", make_message(
        "qa", "Questions and answers", date(), body="An ampersand folder.\n"),
        flags="", name="Questions and answers.eml")
    return msgs


def seed_core(dovecot, large=True):
    """Write the core messages (and the empty folders) into dovecot's
    maildir. Returns the list of Msg with .uid set."""
    w = MaildirWriter(dovecot)
    for f in CORE_FOLDERS:
        w.folder(f)
    msgs = core_messages(large=large)
    for m in msgs:
        m.uid = w.add(m.folder, m.data, m.flags, m.date)
    w.finish()
    return msgs
