"""A small OAuth 2.0 authorization server for the tests: what Gmail's and
Microsoft's token services do, on loopback, on demand.

AuthServer answers on http://127.0.0.1:PORT:
- POST /token: grant_type=refresh_token (a new access token; with
  rotate=True also a new refresh token, the old one stops working) and
  grant_type=urn:ietf:params:oauth:grant-type:device_code (the device
  grant's polls: authorization_pending, slow_down, access_denied,
  expired_token, then tokens, as the test scripts it);
- POST /device: a device code, user code and verification address;
- POST /introspect: what Dovecot's oauth2 passdb asks (RFC 7662): active
  and username for a token this server issued and did not revoke.
It can revoke access tokens, refuse every refresh, and records each request
(path and form) so tests can count exchanges. Standard library only.
"""

import http.server
import json
import secrets
import threading
import time
import urllib.parse

from harness_core import add_cleanup


class AuthServer:
    DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"

    def __init__(self, username, client_id="imapfs-test-client",
                 client_secret=None, expires_in=3600, rotate=False):
        self.username = username
        self.client_id = client_id
        self.client_secret = client_secret
        self.expires_in = expires_in
        self.rotate = rotate
        self.refuse_refresh = False
        self.lock = threading.Lock()
        self.access = {}      # token -> active
        self.refresh = set()  # refresh tokens that work
        self.requests = []    # (path, form)
        # The device grant's script: answers to the polls before the
        # tokens, and the interval it announces.
        self.device_script = ["authorization_pending", "slow_down"]
        self.device_interval = 1
        self.device_polls = []  # monotonic time of each poll
        self.devices = {}       # device code -> remaining script
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                form = urllib.parse.parse_qs(
                    self.rfile.read(n).decode(), keep_blank_values=True)
                form = {k: v[0] for k, v in form.items()}
                status, body = server._answer(self.path, form)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                                     Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       daemon=True)
        self.thread.start()
        add_cleanup(self.stop)

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    # --- what tests use -----------------------------------------------------

    def issue_access(self):
        with self.lock:
            tok = "at-" + secrets.token_hex(16)
            self.access[tok] = True
            return tok

    def issue_refresh(self):
        with self.lock:
            tok = "rt-" + secrets.token_hex(16)
            self.refresh.add(tok)
            return tok

    def revoke_access(self):
        """Every access token issued so far stops working (expired)."""
        with self.lock:
            for t in self.access:
                self.access[t] = False

    def count(self, path, grant=None):
        with self.lock:
            return sum(1 for p, f in self.requests if p == path and
                       (grant is None or f.get("grant_type") == grant))

    def secrets_seen(self):
        """Every token this server handed out (to grep outputs for)."""
        with self.lock:
            return list(self.access) + list(self.refresh) + \
                [t for _, f in self.requests for k, t in f.items()
                 if k in ("refresh_token", "device_code", "client_secret")]

    # --- the endpoints --------------------------------------------------------

    def _client_ok(self, form):
        if form.get("client_id") != self.client_id:
            return False
        return (self.client_secret is None or
                form.get("client_secret") == self.client_secret)

    def _tokens(self, with_refresh):
        access = "at-" + secrets.token_hex(16)
        self.access[access] = True
        body = {"access_token": access, "token_type": "Bearer",
                "expires_in": self.expires_in}
        if with_refresh:
            rt = "rt-" + secrets.token_hex(16)
            self.refresh.add(rt)
            body["refresh_token"] = rt
        return body

    def _answer(self, path, form):
        with self.lock:
            self.requests.append((path, dict(form)))
            if path == "/introspect":
                ok = self.access.get(form.get("token", ""), False)
                return 200, ({"active": True, "username": self.username}
                             if ok else {"active": False})
            if path == "/device":
                if form.get("client_id") != self.client_id:
                    return 401, {"error": "invalid_client"}
                code = "dc-" + secrets.token_hex(16)
                self.devices[code] = list(self.device_script)
                return 200, {"device_code": code, "user_code": "WDJB-MJHT",
                             "verification_uri": "https://example.org/dev",
                             "expires_in": 600,
                             "interval": self.device_interval}
            if path != "/token":
                return 404, {"error": "not_found"}
            if not self._client_ok(form):
                return 401, {"error": "invalid_client"}
            grant = form.get("grant_type")
            if grant == "refresh_token":
                rt = form.get("refresh_token")
                if self.refuse_refresh or rt not in self.refresh:
                    return 400, {"error": "invalid_grant",
                                 "error_description": "Token has been "
                                 "expired or revoked."}
                if self.rotate:
                    self.refresh.discard(rt)
                return 200, self._tokens(self.rotate)
            if grant == self.DEVICE_GRANT:
                self.device_polls.append(time.monotonic())
                script = self.devices.get(form.get("device_code"))
                if script is None:
                    return 400, {"error": "invalid_grant"}
                if script:
                    return 400, {"error": script.pop(0)}
                del self.devices[form["device_code"]]
                return 200, self._tokens(True)
            return 400, {"error": "unsupported_grant_type"}
