#!/usr/bin/env python3
"""test_oauth: signing in with OAuth 2.0 against Dovecot's oauth2 passdb,
with harness_oauth.AuthServer as the authorization server (token,
device and introspection endpoints on loopback):

- a token command (XOAUTH2 forced, then OAUTHBEARER by auto), with -d:
  the mount matches the server, a session the server drops (doveadm kick)
  is re-established without an error to the reader;
- the built-in refresh-token exchange, with rotation stored in the 0600
  file; an access token that expires mid-mount (revoked at introspection,
  sessions kicked) is fetched anew once and reads keep working;
- --authorize (device grant): pending, slow_down (5 s slower), approval,
  refresh token saved; access_denied fails with a message;
- a token endpoint over plain http to another host is refused; a refused
  refresh token fails the mount with one line;
- no access token, refresh token, device code or client secret appears in
  stderr, the -d log, /proc/PID/cmdline or an error message.
"""

import os
import stat
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import imapfs_harness as h  # noqa: E402
from harness_oauth import AuthServer  # noqa: E402


def logins(dc, method=None):
    """Successful IMAP logins in Dovecot's log (with this method)."""
    n = 0
    with open(dc.log_path, errors="replace") as f:
        for line in f:
            if "imap-login: Info: Login: " in line and \
                    (method is None or "method=%s," % method in line):
                n += 1
    return n


def no_secrets(t, what, texts, server, extra=()):
    found = [s for s in list(server.secrets_seen()) + list(extra)
             for x in texts if s and s in x]
    t.check(not found, "%s: no token, refresh token or secret in it" % what,
            "found %d" % len(found))


def fresh_client(dc):
    """A reference client of its own: doveadm kick ends every session of
    the user, the test's too."""
    c = dc.client()
    h.add_cleanup(c.close)
    return c


def cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def oauth_args(server, secret_file=None):
    a = ["--oauth-token-url=" + server.url("/token"),
         "--oauth-device-url=" + server.url("/device"),
         "--oauth-client-id=" + server.client_id]
    if secret_file:
        a.append("--oauth-client-secret-command=cat " + secret_file)
    return a


def check_token_command(t, dc, server, client, view):
    tmp = h.make_tempdir("imapfs-oauth-")
    tokfile = os.path.join(tmp, "token")
    token = server.issue_access()
    with open(tokfile, "w") as f:
        f.write(token + "\n")
    for auth, method in (("xoauth2", "XOAUTH2"), ("auto", "OAUTHBEARER")):
        before = logins(dc, method)
        m = h.Mount(dc, password_env=False,
                    args=["-d", "--auth=" + auth,
                          "--token-command=cat " + tokfile]).start()
        t.check(logins(dc, method) > before,
                "--auth=%s: Dovecot logged a %s login" % (auth, method))
        files = h.compare_tree(t, m, view)
        if auth == "xoauth2":
            # The server drops every session: the next reads log in again.
            n = logins(dc)
            dc.kick()
            h.compare_bodies(t, fresh_client(dc), view, files,
                             "after doveadm kick, every file reads "
                             "correctly")
            t.check(logins(dc) > n, "the dropped sessions were "
                    "re-established (%d logins)" % (logins(dc) - n))
        text = m.stderr_text()
        for line in text.splitlines():
            if "C: " not in line and "S: " not in line and \
                    "read " not in line and "fetch" not in line:
                h.log("#   daemon: " + line)
        t.check("AUTHENTICATE" in text and "redacted" in text,
                "-d shows AUTHENTICATE lines, redacted")
        no_secrets(t, "-d log of --auth=%s" % auth, [text, cmdline(m.pid)],
                   server)
        t.equal(m.bug_reports(), [], "no sanitizer report or critical")
        t.equal(m.unmount(), 0, "--auth=%s: unmount, exit 0" % auth)


def settled(count, quiet=2.0, limit=20.0):
    """count()'s value once it has not changed for quiet seconds (or after
    limit seconds)."""
    last, changed, start = count(), time.time(), time.time()
    while time.time() - start < limit and time.time() - changed < quiet:
        time.sleep(0.2)
        now = count()
        if now != last:
            last, changed = now, time.time()
    return last


def check_refresh(t, dc, server, client, view):
    tmp = h.make_tempdir("imapfs-oauth-")
    data = os.path.join(tmp, "data")
    secret = os.path.join(tmp, "client-secret")
    with open(secret, "w") as f:
        f.write(server.client_secret + "\n")
    rtdir = os.path.join(data, "imapfs", "oauth")
    os.makedirs(rtdir, mode=0o700)
    rtfile = os.path.join(rtdir, "%s@localhost" % dc.user)
    first = server.issue_refresh()
    with open(rtfile, "w") as f:
        f.write(first + "\n")
    os.chmod(rtfile, 0o600)
    server.rotate = True
    m = h.Mount(dc, password_env=False,
                args=["-d"] + oauth_args(server, secret),
                env={"XDG_DATA_HOME": data}).start()
    t.equal(server.count("/token", "refresh_token"), 1,
            "one refresh-token exchange for the mount")
    with open(rtfile) as f:
        stored = f.read().strip()
    t.check(stored != first and stored in server.refresh,
            "the rotated refresh token was stored in the file")
    t.equal(stat.S_IMODE(os.stat(rtfile).st_mode), 0o600,
            "the refresh token file is 0600")
    files = h.compare_tree(t, m, view)
    # The access token expires (introspection says inactive) and the
    # server ends the sessions: reads log in again with a new token.
    exchanges = server.count("/token", "refresh_token")
    n = logins(dc)
    server.revoke_access()
    dc.kick()
    h.compare_bodies(t, fresh_client(dc), view, files, "after the token expired "
                     "and the sessions were dropped, every file reads "
                     "correctly")
    t.check(server.count("/token", "refresh_token") == exchanges + 1,
            "the refused token was fetched anew once (%d exchanges)" %
            (server.count("/token", "refresh_token") - exchanges))
    t.check(logins(dc) > n, "the sessions were re-established")
    text = m.stderr_text()
    for line in text.splitlines():
        if "token" in line and "S: " not in line and "C: " not in line:
            h.log("#   daemon: " + line)
    t.check("access token was refused" in text and
            "trying a new access token" in text,
            "the refusal is logged", h.short(text[-600:]))
    t.check("refused the access token (OAUTHBEARER, status invalid_token)"
            in text, "-d logs the status of the server's JSON challenge")
    # Access tokens are kept until expires_in (less a margin): with 4 s
    # lives, a login after that exchanges the refresh token again before
    # the server has a chance to refuse the old token.
    def retries():
        return m.stderr_text().count("trying a new access token")

    server.expires_in = 4
    before, n = retries(), logins(dc)
    server.revoke_access()
    dc.kick()
    # The refused token's message comes after the new token's exchange,
    # the login after both.
    t.check(h.wait_for(lambda: retries() > before and logins(dc) > n, 30),
            "the watcher logged in again with a new token")
    # Every connection the kick ended logs in again with its own token,
    # and each may meet the revoked one first: count the refusals once
    # they have stopped coming.
    refusals = settled(lambda: m.stderr_text().count(
        "access token was refused"))
    exchanges = server.count("/token", "refresh_token")
    time.sleep(5)  # longer than the 4 s lives of the tokens fetched so far
    n = logins(dc)
    dc.kick()
    t.check(h.wait_for(lambda: logins(dc) > n, 30),
            "after the token's lifetime, the watcher logged in again")
    t.check(server.count("/token", "refresh_token") > exchanges,
            "an expired token was renewed before the login")
    t.equal(m.stderr_text().count("access token was refused"), refusals,
            "an expired token was never offered to the server")
    text = m.stderr_text()
    no_secrets(t, "stderr and cmdline (refresh)", [text, cmdline(m.pid)],
               server, [server.client_secret])
    t.equal(m.bug_reports(), [], "no sanitizer report or critical")
    t.equal(m.unmount(), 0, "refresh: unmount, exit 0")
    # A refresh token the server refuses: one line, no mount.
    server.refuse_refresh = True
    m2 = h.Mount(dc, password_env=False, args=oauth_args(server, secret),
                 env={"XDG_DATA_HOME": data}, foreground=False)
    r = m2.attempt(timeout=40)
    h.check_mount_failure(t, "refused refresh token", r,
                          ("refresh token",), m2.mountpoint)
    no_secrets(t, "the refusal's message", [r.stderr], server,
               [server.client_secret])
    m2.cleanup()
    server.refuse_refresh = False


def authorize(dc, server, data, extra=()):
    return h.run([h.imapfs_bin(), "--authorize", dc.url("imaps")] +
                 oauth_args(server) + list(extra), check=False, timeout=120,
                 env=dict(os.environ, XDG_DATA_HOME=data))


def check_device_grant(t, dc, server, client, view):
    tmp = h.make_tempdir("imapfs-oauth-")
    data = os.path.join(tmp, "data")
    server.client_secret = None
    server.device_script = ["authorization_pending", "slow_down"]
    r = authorize(dc, server, data)
    out = r.stdout.decode(errors="replace")
    t.equal(r.returncode, 0, "--authorize: exit 0",)
    t.check("WDJB-MJHT" in out and "https://example.org/dev" in out,
            "--authorize prints the address and the user code", out[-400:])
    polls = server.device_polls
    t.equal(len(polls), 3, "three polls: pending, slow_down, tokens")
    if len(polls) == 3:
        t.check(polls[2] - polls[1] >= 5.5,
                "after slow_down the next poll waited 5 s longer "
                "(%.1f s)" % (polls[2] - polls[1]))
    rtfile = os.path.join(data, "imapfs", "oauth", "%s@localhost" % dc.user)
    with open(rtfile) as f:
        saved = f.read().strip()
    t.check(saved in server.refresh, "the refresh token was saved")
    t.equal(stat.S_IMODE(os.stat(rtfile).st_mode), 0o600, "saved 0600")
    no_secrets(t, "--authorize output", [out, r.stderr.decode()], server)
    m = h.Mount(dc, password_env=False, args=oauth_args(server),
                env={"XDG_DATA_HOME": data}).start()
    files = h.compare_tree(t, m, view)
    t.check(len(files) > 0, "mounted with the authorized refresh token")
    t.equal(m.unmount(), 0, "device grant: unmount, exit 0")
    # --authorize NAME: the account's settings from the config file,
    # which may hold the client secret (never on the command line).
    server.device_script = []
    server.client_secret = "cs-" + os.urandom(8).hex()
    conf = os.path.join(tmp, "config")
    with open(conf, "w") as f:
        f.write("[oauthtest]\nurl = %s\noauth-token-url = %s\n"
                "oauth-device-url = %s\noauth-client-id = %s\n"
                "oauth-client-secret = %s\n" % (
                    dc.url("imaps"), server.url("/token"),
                    server.url("/device"), server.client_id,
                    server.client_secret))
    os.chmod(conf, 0o600)
    data3 = os.path.join(tmp, "data3")
    r = h.run([h.imapfs_bin(), "--config=" + conf, "--authorize",
               "oauthtest"], check=False, timeout=120,
              env=dict(os.environ, XDG_DATA_HOME=data3))
    t.equal(r.returncode, 0, "--authorize NAME (config file): exit 0")
    rtfile3 = os.path.join(data3, "imapfs", "oauth",
                           "%s@localhost" % dc.user)
    t.check(os.path.exists(rtfile3) and
            open(rtfile3).read().strip() in server.refresh,
            "--authorize NAME saved the account's refresh token")
    no_secrets(t, "--authorize NAME output",
               [r.stdout.decode(), r.stderr.decode()], server,
               [server.client_secret])
    server.client_secret = None
    server.device_script = ["access_denied"]
    r = authorize(dc, server, os.path.join(tmp, "data2"))
    t.check(r.returncode == 1 and b"access_denied" in r.stderr,
            "--authorize: access_denied ends with a message",
            r.stderr.decode(errors="replace"))


def check_refusals(t, dc, server):
    # A token the server refuses, over XOAUTH2 (whose failure challenge
    # is answered with an empty line): one line, one failed login.
    tmp = h.make_tempdir("imapfs-oauth-")
    tokfile = os.path.join(tmp, "token")
    with open(tokfile, "w") as f:
        f.write(server.issue_access() + "\n")
    server.revoke_access()
    m = h.Mount(dc, password_env=False, foreground=False,
                args=["--auth=xoauth2", "--token-command=cat " + tokfile])
    r = m.attempt(timeout=40)
    h.check_mount_failure(t, "refused access token", r, ("access token",),
                          m.mountpoint)
    no_secrets(t, "the refused token's message", [r.stderr], server)
    m.cleanup()
    m = h.Mount(dc, password_env=False, foreground=False,
                args=["--oauth-token-url=http://example.org/token",
                      "--oauth-client-id=x"])
    r = m.attempt(timeout=40)
    h.check_mount_failure(t, "plain http token endpoint", r, ("https",),
                          m.mountpoint)
    m.cleanup()
    r = h.run([h.imapfs_bin(), "--oauth-client-secret=s3cr3t-on-argv",
               dc.url("imaps"), "/nonexistent"], check=False)
    err = r.stderr.decode(errors="replace")
    t.check(r.returncode != 0 and "config file" in err and
            "s3cr3t-on-argv" not in err,
            "--oauth-client-secret on the command line is refused", err)


def check_docs(t):
    """Every OAuth option is in --help, the man page and the README."""
    opts = ["--auth", "--token-command", "--provider", "--oauth-client-id",
            "--oauth-client-secret-command", "--oauth-token-url",
            "--oauth-device-url", "--oauth-scope",
            "--oauth-refresh-token-command", "--authorize"]
    root = os.environ.get("IMAPFS_SOURCE_ROOT") or os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..")
    with open(os.path.join(root, "doc", "imapfs.1")) as f:
        man = f.read().replace("\\-", "-")
    with open(os.path.join(root, "README.md")) as f:
        readme = f.read()
    helptext = h.run([h.imapfs_bin(), "--help"]).stdout.decode()
    t.all_ok("every OAuth option is in --help and the man page",
             [o for o in opts if o not in helptext or o not in man])
    t.all_ok("the README shows the OAuth paths",
             [o for o in ("--token-command", "--authorize",
                          "--provider=microsoft", "--provider=google")
              if o not in readme])


def body(t):
    server = AuthServer(h.TEST_USER, client_secret="cs-" + os.urandom(8).hex())
    dc = h.Dovecot(oauth_introspect=server.url("/introspect"))
    h.seed_core(dc, large=False)
    dc.start()
    client = fresh_client(dc)
    view = h.server_view(client)
    client.close()
    check_token_command(t, dc, server, client, view)
    check_refresh(t, dc, server, client, view)
    check_device_grant(t, dc, server, client, view)
    check_refusals(t, dc, server)
    check_docs(t)


if __name__ == "__main__":
    h.Test("test_oauth").run(body)
