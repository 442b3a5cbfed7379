#!/usr/bin/env python3
"""test_tls_auth: TLS and credentials against a scripted server.

Fail-closed cases (each: exit non-zero within 15 s with one line
"imapfs: ..." naming the cause, no mount left, and neither the password
nor any base64 form of it among the bytes the server received in clear):
  starttls_refused_no, starttls_refused_bad, starttls_not_advertised,
  starttls_no_handshake, preauth_imap, logindisabled_imaps,
  logindisabled_starttls
STARTTLS response injection (lines after the STARTTLS OK, in the same
packet, are ignored: capabilities are read again under TLS, nothing else is
sent in clear):
  starttls_injection
PREAUTH over implicit TLS: mounts without sending any credential:
  preauth_imaps
Certificates (self-signed, expired, wrong host, unknown CA) fail with a
message that says which; --cafile with the right CA and --insecure are the
only ways around:
  cert_selfsigned, cert_expired, cert_wronghost, cert_wronghost_starttls,
  cert_unknown_ca
The password never appears in stderr with -d, in any /proc/*/cmdline
during the mount, or in any file under the cache directory; a password file
readable by others draws a warning:
  password_env_debug, password_login_debug, password_no_sasl_ir_starttls,
  password_file_modes, password_command
A refused password is not in the error either, whatever it holds (": ",
quotes, backslashes, spaces, non-ASCII), over LOGIN and over AUTHENTICATE
PLAIN without SASL-IR; the error gives the server's reason:
  password_refused_login, password_refused_plain
"""

import os
import re
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import quirk_common as q  # noqa: E402

h = q.h
fk = q.fk

TLS_WORDS = ("starttls", "tls")
AUTH_WORDS = ("authentication", "password", "login")


def no_secret_in_clear(t, label, srv):
    found = fk.find_secret(srv.clear_bytes(), srv.password, srv.user)
    t.check(found is None, "%s: neither the password nor a base64 form of "
            "it arrived in clear (%d clear bytes)" % (
                label, len(srv.clear_bytes())),
            "found %r" % (found,))


def auth_commands(srv):
    return [(i, p, c[:20]) for i, p, tg, c in srv.all_commands()
            if re.match(rb"(?i)(LOGIN|AUTHENTICATE)\b", c) or tg == b"+"]


def fail_case(t, label, srv, keywords, mode=None, args=(), cafile="default",
              auth_expected=False):
    srv.start()
    kw = {}
    if cafile != "default":
        kw["cafile"] = cafile
    m = h.Mount(srv, mode=mode or ("imaps" if srv.tls == "implicit"
                                   else "imap"),
                args=["--timeout=10"] + list(args), **kw)
    r = m.attempt(timeout=40)
    h.check_mount_failure(t, label, r, keywords, m.mountpoint)
    no_secret_in_clear(t, label, srv)
    if not auth_expected:
        t.equal(auth_commands(srv), [], "%s: no LOGIN or AUTHENTICATE was "
                "sent at all" % label)
    data = [c for i, p, tg, c in srv.all_commands()
            if re.match(rb"(?i)(LIST|EXAMINE|SELECT|UID|FETCH)\b", c)]
    t.equal(data, [], "%s: no mailbox data was requested" % label)
    q.check_read_only(t, srv, label)
    m.cleanup()
    return r


def starttls_server(**kw):
    return fk.FakeImap(q.small_account(), tls="starttls", **kw)


# ---------------------------------------------------------------------------
# STARTTLS and PREAUTH

def case_starttls_refused_no(t):
    srv = starttls_server()
    srv.add_rule(r"^STARTTLS", [b"{tag} NO STARTTLS is not available "
                                b"today\r\n"])
    fail_case(t, "starttls_refused_no", srv, TLS_WORDS)


def case_starttls_refused_bad(t):
    srv = starttls_server()
    srv.add_rule(r"^STARTTLS", [b"{tag} BAD unknown command\r\n"])
    fail_case(t, "starttls_refused_bad", srv, TLS_WORDS)


def case_starttls_not_advertised(t):
    # A tempting server: no STARTTLS, but plain-text login offered.
    srv = starttls_server()
    srv.caps_clear = ["IMAP4rev1", "SASL-IR", "AUTH=PLAIN", "LITERAL+"]
    fail_case(t, "starttls_not_advertised", srv, TLS_WORDS)


def case_starttls_no_handshake(t):
    # OK, then garbage and a close instead of a TLS handshake.
    srv = starttls_server()
    srv.add_rule(r"^STARTTLS", [b"{tag} OK go\r\n", fk.Sleep(0.2),
                                b"* OK this is not TLS\r\n" * 4, fk.CLOSE])
    fail_case(t, "starttls_no_handshake", srv,
              TLS_WORDS + ("handshake", "closed"))


def case_preauth_imap(t):
    srv = starttls_server()
    srv.add_rule(r"^\*GREETING$", [
        b"* PREAUTH [CAPABILITY IMAP4rev1 STARTTLS LITERAL+] "
        b"logged in as fake-user\r\n"])
    fail_case(t, "preauth_imap", srv, ("preauth", "unencrypted") +
              TLS_WORDS)


def case_logindisabled_imaps(t):
    srv = fk.FakeImap(q.small_account())
    srv.caps_pre = ["IMAP4rev1", "LOGINDISABLED", "AUTH=GSSAPI", "SASL-IR"]
    fail_case(t, "logindisabled_imaps", srv,
              ("login", "mechanism", "authenticat"))


def case_logindisabled_starttls(t):
    srv = starttls_server()
    srv.caps_pre = ["IMAP4rev1", "LOGINDISABLED", "AUTH=XOAUTH2"]
    fail_case(t, "logindisabled_starttls", srv,
              ("login", "mechanism", "authenticat"))


def case_starttls_injection(t):
    label = "starttls_injection"
    acct = q.small_account()
    srv = fk.FakeImap(acct, tls="starttls")
    # The injected lines claim LOGIN-only capabilities and answer the
    # next commands in advance; the real ones (under TLS) offer SASL-IR.
    injected = (b"* CAPABILITY IMAP4rev1 LOGIN-REFERRALS\r\n"
                b"A2 OK [CAPABILITY IMAP4rev1] injected\r\n"
                b"A3 OK injected\r\nA4 OK injected\r\n"
                b"* LIST () \"/\" Injected\r\n")
    srv.add_rule(r"^STARTTLS$", [b"{tag} OK Begin TLS negotiation now\r\n"
                                 + injected, fk.STARTTLS_NOW])
    srv.start()
    m = q.mount(srv).start()
    conn = srv.conns[0]
    t.check(conn.tls, "%s: the first connection went on under TLS" % label)
    clear = [c for i, p, tg, c in srv.all_commands() if p == "clear"]
    t.check(all(c in (b"CAPABILITY", b"STARTTLS") for c in clear) and
            clear[-1:] == [b"STARTTLS"],
            "%s: only CAPABILITY and STARTTLS were sent in clear" % label,
            repr(clear))
    t.equal(bytes(conn.clear_after_starttls), b"",
            "%s: nothing was sent in clear after STARTTLS" % label)
    t.check(bytes(conn.clear_in).endswith(b" STARTTLS\r\n"),
            "%s: the clear bytes end with the STARTTLS command" % label,
            repr(bytes(conn.clear_in)[-60:]))
    tls_cmds = [c for i, p, tg, c in srv.all_commands()
                if p == "tls" and i == 0]
    t.check(tls_cmds[:1] == [b"CAPABILITY"],
            "%s: the first command under TLS asks for the capabilities "
            "again" % label, repr(tls_cmds[:3]))
    t.check(any(c.startswith(b"AUTHENTICATE PLAIN ") for c in tls_cmds) and
            not any(c.startswith(b"LOGIN") for c in tls_cmds),
            "%s: the login follows the real capabilities (AUTHENTICATE "
            "PLAIN with SASL-IR, not LOGIN)" % label, repr(tls_cmds[:4]))
    no_secret_in_clear(t, label, srv)
    t.check(not os.path.exists(os.path.join(m.mountpoint, "Injected")),
            "%s: the injected LIST entry is not in the mount" % label)
    q.compare_account(t, m, acct, label)
    q.check_read_only(t, srv, label)
    q.check_unmount(t, m, label)


def case_preauth_imaps(t):
    label = "preauth_imaps"
    acct = q.small_account()
    srv = fk.FakeImap(acct)
    srv.add_rule(r"^\*GREETING$", lambda ctx: (
        setattr(ctx.conn, "state", "auth") or
        [b"* PREAUTH [CAPABILITY IMAP4rev1 LITERAL+ ESEARCH] ready\r\n"]))
    srv.start()
    m = q.mount(srv).start()
    t.equal(auth_commands(srv), [], "%s: no credential was sent" % label)
    q.compare_account(t, m, acct, label)
    q.check_unmount(t, m, label)


# ---------------------------------------------------------------------------
# Certificates

class Certs:
    def __init__(self):
        d = h.make_tempdir("imapfs-quirk-certs-")
        self.ca = h.CertAuthority(os.path.join(d, "ca"))
        self.cafile = self.ca.cert
        self.good = self.ca.issue("good")
        self.expired = self.ca.issue("expired", expired=True)
        self.wronghost = self.ca.issue("wronghost", hosts=("mail.invalid",),
                                       ips=())
        self.selfsigned = h.self_signed_cert(d, "selfsigned")


def cert_case(t, label, which, keywords, tls="implicit", cafile_ok=None):
    certs = Certs()
    acct = q.small_account()
    srv = fk.FakeImap(acct, tls=tls, cert=getattr(certs, which))
    fail_case(t, label, srv, keywords, cafile=certs.cafile)
    if cafile_ok:
        m = q.mount(srv, cafile=cafile_ok)
        r = m.attempt(timeout=30)
        t.check(r.mounted, "%s: --cafile with the right CA mounts" % label,
                r.stderr.strip())
        if r.mounted:
            q.compare_account(t, m, acct, label + " --cafile", read=False)
            q.check_unmount(t, m, label + " --cafile")
        m.cleanup()
    m = q.mount(srv, cafile=None, args=["--insecure"])
    r = m.attempt(timeout=30)
    t.check(r.mounted, "%s: --insecure mounts" % label, r.stderr.strip())
    if r.mounted:
        t.check("insecure" in m.stderr_text().lower(),
                "%s: --insecure is warned about" % label,
                m.stderr_text().strip())
        q.compare_account(t, m, acct, label + " --insecure")
        q.check_unmount(t, m, label + " --insecure")
    m.cleanup()
    no_secret_in_clear(t, label, srv)


def case_cert_selfsigned(t):
    certs_label = "cert_selfsigned"
    # The self-signed certificate is its own CA: trusting it works.
    certs = Certs()
    acct = q.small_account()
    srv = fk.FakeImap(acct, cert=certs.selfsigned)
    fail_case(t, certs_label, srv, ("self-signed", "self signed"),
              cafile=certs.cafile)
    m = q.mount(srv, cafile=certs.selfsigned[0])
    r = m.attempt(timeout=30)
    t.check(r.mounted, "%s: --cafile naming the certificate itself mounts"
            % certs_label, r.stderr.strip())
    if r.mounted:
        q.check_unmount(t, m, certs_label + " --cafile")
    m.cleanup()
    m = q.mount(srv, cafile=None, args=["--insecure"])
    r = m.attempt(timeout=30)
    t.check(r.mounted, "%s: --insecure mounts" % certs_label,
            r.stderr.strip())
    if r.mounted:
        q.compare_account(t, m, acct, certs_label + " --insecure")
        q.check_unmount(t, m, certs_label + " --insecure")
    m.cleanup()


def case_cert_expired(t):
    cert_case(t, "cert_expired", "expired", ("expired",))


def case_cert_wronghost(t):
    cert_case(t, "cert_wronghost", "wronghost",
              ("hostname", "host name", "mismatch"))


def case_cert_wronghost_starttls(t):
    cert_case(t, "cert_wronghost_starttls", "wronghost",
              ("hostname", "host name", "mismatch"), tls="starttls")


def case_cert_unknown_ca(t):
    certs = Certs()
    acct = q.small_account()
    srv = fk.FakeImap(acct, cert=certs.good)
    # No --cafile: the system store does not know the throwaway CA.
    fail_case(t, "cert_unknown_ca", srv, ("certificate",), cafile=None)
    m = q.mount(srv, cafile=certs.cafile)
    r = m.attempt(timeout=30)
    t.check(r.mounted, "cert_unknown_ca: --cafile with the right CA mounts",
            r.stderr.strip())
    if r.mounted:
        q.check_unmount(t, m, "cert_unknown_ca --cafile")
    m.cleanup()


# ---------------------------------------------------------------------------
# The password stays secret

class CmdlineWatch:
    """Scans /proc/*/cmdline of every process while running."""

    def __init__(self, password, user):
        self.password = password
        self.user = user
        self.hits = []
        self.scans = 0
        self._stop = threading.Event()
        self._th = threading.Thread(target=self._run, daemon=True)

    def scan(self):
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open("/proc/%s/cmdline" % d, "rb") as f:
                    data = f.read()
            except OSError:
                continue
            if fk.find_secret(data, self.password, self.user):
                self.hits.append("pid %s: %r" % (d, data[:100]))
        self.scans += 1

    def _run(self):
        while not self._stop.is_set():
            self.scan()
            time.sleep(0.01)

    def __enter__(self):
        self._th.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._th.join(timeout=10)


def cache_secret_files(cache_dir, password, user):
    out = []
    for root, dirs, files in os.walk(cache_dir):
        for n in files:
            p = os.path.join(root, n)
            try:
                with open(p, "rb") as f:
                    data = f.read()
            except OSError as e:
                out.append("%s: %s" % (p, e))
                continue
            if fk.find_secret(data, password, user) or \
                    fk.find_secret(os.fsencode(p), password, user):
                out.append(p)
    return out


def password_case(t, label, srv, extra_forms=(), args=(), debug=True,
                  **mount_kw):
    srv.start()
    with CmdlineWatch(srv.password, srv.user) as w:
        m = q.mount(srv, args=(["-d"] if debug else []) + list(args),
                    **mount_kw)
        m.start()
        w.scan()
        q.compare_account(t, m, srv.account, label)
        w.scan()
        rc = m.unmount()
    t.equal(rc, 0, "%s: unmount, the daemon exits 0" % label)
    err = m.stderr_text().encode("utf-8", "surrogateescape")
    if debug:
        t.check(b"C: " in err and b"redacted" in err,
                "%s: -d logged the conversation (%d bytes)" % (label,
                                                               len(err)))
    found = fk.find_secret(err, srv.password, srv.user)
    for f in extra_forms:
        if f in err:
            found = found or f
    t.check(found is None, "%s: the password is not in the daemon's "
            "stderr" % label, "found %r" % (found,))
    t.check(w.scans >= 3 and not w.hits, "%s: the password is in no "
            "/proc/*/cmdline (%d scans)" % (label, w.scans),
            "; ".join(w.hits[:5]))
    t.equal(cache_secret_files(m.cache_dir, srv.password, srv.user), [],
            "%s: no file under the cache directory holds the password"
            % label)
    no_secret_in_clear(t, label, srv)
    q.check_read_only(t, srv, label)
    return m


def case_password_env_debug(t):
    srv = fk.FakeImap(q.small_account())
    password_case(t, "password_env_debug", srv)
    t.check(srv.count(r"^AUTHENTICATE PLAIN \S") >= 1,
            "password_env_debug: SASL-IR was used")


def case_password_login_debug(t):
    # LOGIN with a password that needs quoting.
    acct = q.small_account()
    acct.password = 'p"w\\' + os.urandom(6).hex() + ' x'
    srv = fk.FakeImap(acct)
    srv.caps_pre = ["IMAP4rev1", "LITERAL+"]
    escaped = acct.password.replace("\\", "\\\\").replace('"', '\\"')
    password_case(t, "password_login_debug", srv,
                  extra_forms=[escaped.encode(),
                               acct.password[4:].encode()])
    t.check(srv.count(r"^LOGIN ") >= 1, "password_login_debug: LOGIN was "
            "used")


def case_password_no_sasl_ir_starttls(t):
    srv = fk.FakeImap(q.small_account(), tls="starttls")
    srv.caps_pre = ["IMAP4rev1", "AUTH=PLAIN", "LITERAL+"]
    password_case(t, "password_no_sasl_ir_starttls", srv)
    t.check(srv.count(r"^AUTHENTICATE PLAIN$") >= 1,
            "password_no_sasl_ir_starttls: the continuation was used")


def write_password_file(path, password, mode):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(password + "\n")
    os.chmod(path, mode)


def case_password_file_modes(t):
    srv = fk.FakeImap(q.small_account())
    d = h.make_tempdir("imapfs-quirk-pw-", mode=0o700)
    for mode, warn in ((0o600, False), (0o400, False), (0o640, True),
                       (0o644, True)):
        label = "password file %o" % mode
        path = os.path.join(d, "pw-%o" % mode)
        write_password_file(path, srv.password, mode)
        if not srv.port:
            srv.start()
        m = q.mount(srv, args=["--password-file=" + path],
                    password_env=False)
        r = m.attempt(timeout=30)
        t.check(r.mounted, "%s: mounts" % label, r.stderr.strip())
        text = m.stderr_text()
        warned = [x for x in text.splitlines() if "warning" in x.lower() and
                  "password file" in x.lower()]
        if warn:
            t.check(len(warned) == 1 and path in warned[0] and
                    warned[0].startswith("imapfs: "),
                    "%s: one 'imapfs: warning: password file ...' line" %
                    label, repr(text.strip()))
        else:
            t.equal(warned, [], "%s: no warning" % label)
        t.check(fk.find_secret(text.encode(), srv.password, srv.user)
                is None, "%s: no password in stderr" % label)
        if r.mounted:
            q.check_unmount(t, m, label)
        m.cleanup()


def case_password_command(t):
    srv = fk.FakeImap(q.small_account())
    d = h.make_tempdir("imapfs-quirk-pwc-", mode=0o700)
    path = os.path.join(d, "secret")
    write_password_file(path, srv.password, 0o600)
    password_case(t, "password_command", srv,
                  args=["--password-command=cat " + path],
                  password_env=False)


REFUSED_PASSWORDS = ["x: SECRET-4711", 'q"uo\\te: ' + os.urandom(4).hex(),
                     "sp ace s: " + os.urandom(4).hex(),
                     "gr\u00fc\u00dfe: \u00e9t\u00e9 " + os.urandom(4).hex()]


def refused_case(t, label, caps):
    """Every password of REFUSED_PASSWORDS, refused by the server: the
    mount fails naming the cause, and the password is nowhere."""
    for i, secret in enumerate(REFUSED_PASSWORDS):
        for debug in (False, True):
            case = "%s #%d%s" % (label, i + 1, " with -d" if debug else "")
            srv = fk.FakeImap(q.small_account())
            srv.caps_pre = list(caps)
            srv.start()
            m = q.mount(srv, args=["-d"] if debug else [], timeout_s=10,
                        password=secret)
            r = m.attempt(timeout=40)
            err = m.stderr_text()
            if debug:
                t.check(r.rc not in (None, 0) and not r.mounted,
                        "%s: the mount fails" % case, err[-300:])
            else:
                h.check_mount_failure(t, case, r, AUTH_WORDS, m.mountpoint)
                t.check(err.strip().endswith(": wrong"),
                        "%s: the error ends with the server's reason" % case,
                        err.strip()[-300:])
            escaped = secret.replace("\\", "\\\\").replace('"', '\\"')
            found = fk.find_secret(err.encode("utf-8", "surrogateescape"),
                                   secret, None)
            for form in (secret, escaped, secret.split(": ", 1)[1]):
                if form in err:
                    found = found or form
            t.check(found is None, "%s: the refused password is not in "
                    "stderr" % case, "found %r" % (found,))
            t.equal(cache_secret_files(m.cache_dir, secret, None), [],
                    "%s: no file under the cache directory holds it" % case)
            m.cleanup()
            srv.stop()


def case_password_refused_login(t):
    refused_case(t, "password_refused_login", ["IMAP4rev1", "LITERAL+"])


def case_password_refused_plain(t):
    refused_case(t, "password_refused_plain",
                 ["IMAP4rev1", "AUTH=PLAIN", "LITERAL+"])


CASES = [case_starttls_refused_no, case_starttls_refused_bad,
         case_starttls_not_advertised, case_starttls_no_handshake,
         case_preauth_imap, case_logindisabled_imaps,
         case_logindisabled_starttls, case_starttls_injection,
         case_preauth_imaps, case_cert_selfsigned, case_cert_expired,
         case_cert_wronghost, case_cert_wronghost_starttls,
         case_cert_unknown_ca, case_password_env_debug,
         case_password_login_debug, case_password_no_sasl_ir_starttls,
         case_password_file_modes, case_password_command,
         case_password_refused_login, case_password_refused_plain]

if __name__ == "__main__":
    q.run_cases("test_tls_auth", CASES)
