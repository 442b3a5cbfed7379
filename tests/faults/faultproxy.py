#!/usr/bin/env python3
"""faultproxy: a TCP proxy that injects network faults (standard library only).

It listens on a free loopback port (on 127.0.0.1 and, when it exists, on ::1,
so that "localhost" works either way) and forwards every connection to a
target port, byte for byte: TLS passes through untouched, so a cut at a byte
offset lands inside whatever is in flight (a handshake, a command, a
literal).

Controls, all thread-safe, usable while connections are open:

    cut(lo, hi, direction, seed, mode)  every new connection is cut after a
                       random number of bytes in [lo, hi] (drawn from a
                       generator seeded with seed), counted in direction
                       'c2s' (client to server), 's2c' or 'both'; mode
                       'close' (FIN on both sides) or 'reset' (RST).
    stall()            stop forwarding on every connection, old and new,
                       without closing anything; resume() undoes it.
    mix(seed, lo, hi, weights, hold, spacing, limit)
                       each new connection draws its own fault from weights
                       ({'none', 'close', 'reset', 'stall'} to relative
                       weights) and meets it after randint(lo, hi) bytes
                       from the server: a cut, a reset, or a stall of that
                       connection alone for hold seconds (the others go on).
                       Faults are spaced: one fires only once spacing bytes
                       have gone to clients since the last, so that a retry
                       on a fresh connection can succeed; at most limit of
                       them in all.
    reset_all()        close every open connection with SO_LINGER 0 (RST).
    refuse()           the server is down: stop listening (connections are
                       refused) and reset the open ones.
    throttle(rate)     forward at most rate bytes per second per connection
                       and direction (None: no limit).
    resume()           clear cut, stall and refuse (not throttle).

Counters: bytes_c2s, bytes_s2c, connections (accepted), active(), cuts,
resets (connections closed by a fault), stalls (single-connection stalls
of mix()).

As a command:
    faultproxy.py selftest      check the proxy against a local echo server
"""

import random
import select
import socket
import struct
import sys
import threading
import time

_RECV = 65536


def _loopback_hosts():
    hosts = ["127.0.0.1"]
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    except OSError:
        return hosts
    try:
        s.bind(("::1", 0))
        hosts.append("::1")
    except OSError:
        pass
    finally:
        s.close()
    return hosts


def _set_rst(sock):
    """Make close() send a RST instead of a FIN."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                        struct.pack("ii", 1, 0))
    except OSError:
        pass


def _close(sock, rst=False):
    if sock is None:
        return
    if rst:
        _set_rst(sock)
    else:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    try:
        sock.close()
    except OSError:
        pass


class _Conn:
    """One proxied connection: a client socket, a server socket and the
    thread that pumps between them."""

    def __init__(self, proxy, client, server, budget, direction, mode):
        self.proxy = proxy
        self.client = client
        self.server = server
        self.budget = budget        # bytes left before the cut, or None
        self.direction = direction  # which bytes count toward the budget
        self.mode = mode            # 'close', 'reset' or 'stall'
        self.mixed = False          # the budget came from mix()
        self.stalled_until = 0.0    # a stall of this connection alone
        self.lock = threading.Lock()
        self.closed = False
        self.thread = threading.Thread(target=self._run, daemon=True,
                                       name="faultproxy-conn")

    def close(self, rst=False):
        with self.lock:
            if self.closed:
                return False
            self.closed = True
        _close(self.client, rst)
        _close(self.server, rst)
        self.proxy._forget(self)
        return True

    def _counts(self, d):
        return self.budget is not None and self.direction in (d, "both")

    def _run(self):
        try:
            self._pump()
        except OSError:
            pass
        finally:
            self.close()

    def _pump(self):
        p = self.proxy
        peers = {self.client: (self.server, "c2s"),
                 self.server: (self.client, "s2c")}
        while not self.closed:
            if time.monotonic() < self.stalled_until:
                time.sleep(0.02)
                continue
            if p._stalled.is_set():
                # Read nothing: data waits in the kernel buffers and TCP
                # flow control holds the sender, but nothing is closed.
                p._unstalled.wait(0.05)
                continue
            try:
                ready, _, _ = select.select(list(peers), [], [], 0.05)
            except (OSError, ValueError):
                return
            for src in ready:
                if self.closed or p._stalled.is_set():
                    break
                dst, d = peers[src]
                data = src.recv(_RECV)
                if not data:
                    return  # one side closed: close the other one too
                cut = False
                with self.lock:
                    if self._counts(d):
                        if len(data) >= self.budget:
                            if self.mixed and not p._mix_fire():
                                # Too soon after the last fault: later.
                                self.budget += p._mix_spacing()
                            else:
                                # A stall loses nothing: it holds what
                                # comes after these bytes.
                                if self.mode != "stall":
                                    data = data[:self.budget]
                                cut = True
                        if self.budget is not None:
                            self.budget -= len(data)
                if data:
                    dst.sendall(data)
                    p._count(d, len(data))
                    rate = p._rate
                    if rate:
                        time.sleep(len(data) / rate)
                if cut and self.mode == "stall":
                    # This connection alone goes silent, then forwards
                    # again if the client still wants it.
                    with self.lock:
                        self.budget = None
                        self.stalled_until = time.monotonic() + p._mix_hold()
                    p._count_fault("stalls")
                    break
                if cut:
                    p._count_fault("cuts" if self.mode == "close"
                                   else "resets")
                    self.close(rst=self.mode == "reset")
                    return


class FaultProxy:
    """A fault-injecting TCP proxy to target_port on target_host."""

    def __init__(self, target_port, target_host="127.0.0.1", port=None):
        self.target = (target_host, target_port)
        self.hosts = _loopback_hosts()
        self.port = port
        self._lock = threading.Lock()
        self._conns = set()
        self._listeners = []
        self._accept_threads = []
        self._stop = threading.Event()
        self._stalled = threading.Event()
        self._unstalled = threading.Event()
        self._unstalled.set()
        self._refusing = False
        self._cut = None  # (lo, hi, direction, mode, rng)
        self._mix = None  # see mix()
        self._rate = None
        self.bytes_c2s = 0
        self.bytes_s2c = 0
        self.connections = 0
        self.cuts = 0
        self.resets = 0
        self.stalls = 0
        self.log = []  # (monotonic time, event) for diagnostics

    # --- lifecycle ----------------------------------------------------

    def start(self):
        self._listen()
        return self

    def close(self):
        self._stop.set()
        self._unlisten()
        self._unstalled.set()
        for c in self._snapshot():
            c.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    def _listen(self):
        socks = []
        port = self.port or 0
        try:
            for host in self.hosts:
                fam = socket.AF_INET6 if ":" in host else socket.AF_INET
                s = socket.socket(fam, socket.SOCK_STREAM)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if fam == socket.AF_INET6:
                    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                s.bind((host, port))
                s.listen(64)
                s.settimeout(0.05)
                if not port:
                    port = s.getsockname()[1]
                socks.append(s)
        except OSError:
            for s in socks:
                s.close()
            if self.port is None and not socks:
                raise
            if self.port is None:
                # The IPv4 port is taken on ::1: pick another pair.
                return self._listen()
            raise
        self.port = port
        with self._lock:
            self._listeners = socks
        self._accept_threads = []
        for s in socks:
            t = threading.Thread(target=self._accept_loop, args=(s,),
                                 daemon=True, name="faultproxy-accept")
            t.start()
            self._accept_threads.append(t)

    def _unlisten(self):
        with self._lock:
            socks = self._listeners
            self._listeners = []
        for s in socks:
            try:
                s.close()
            except OSError:
                pass
        for t in self._accept_threads:
            t.join(5)
        self._accept_threads = []

    def _accept_loop(self, lsock):
        while not self._stop.is_set():
            with self._lock:
                if lsock not in self._listeners:
                    return
            try:
                client, _ = lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self._serve(client)

    def _serve(self, client):
        client.settimeout(None)
        try:
            server = socket.create_connection(self.target, timeout=10)
            server.settimeout(None)
        except OSError:
            _close(client, rst=True)
            return
        for s in (client, server):
            try:
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        with self._lock:
            if self._refusing or self._stop.is_set():
                _close(client, rst=True)
                _close(server)
                return
            budget, direction, mode, mixed = None, "both", "close", False
            if self._cut is not None:
                lo, hi, direction, mode, rng = self._cut
                budget = rng.randint(lo, hi)
            elif self._mix is not None and self._mix["left"] > 0:
                mx = self._mix
                mode = mx["rng"].choices(mx["modes"], mx["weights"])[0]
                if mode != "none":
                    budget = mx["rng"].randint(mx["lo"], mx["hi"])
                    direction, mixed = "s2c", True
                else:
                    mode = "close"
            conn = _Conn(self, client, server, budget, direction, mode)
            conn.mixed = mixed
            self._conns.add(conn)
            self.connections += 1
            self._event("accept #%d budget=%s" % (self.connections, budget))
        conn.thread.start()

    # --- bookkeeping ----------------------------------------------------

    def _forget(self, conn):
        with self._lock:
            self._conns.discard(conn)

    def _snapshot(self):
        with self._lock:
            return list(self._conns)

    def _count(self, d, n):
        with self._lock:
            if d == "c2s":
                self.bytes_c2s += n
            else:
                self.bytes_s2c += n

    def _count_fault(self, what, n=1):
        with self._lock:
            setattr(self, what, getattr(self, what) + n)
            self._event(what)

    def _event(self, what):
        self.log.append((time.monotonic(), what))
        if len(self.log) > 2000:
            del self.log[:1000]

    def active(self):
        with self._lock:
            return len(self._conns)

    def counters(self):
        with self._lock:
            return {"c2s": self.bytes_c2s, "s2c": self.bytes_s2c,
                    "connections": self.connections, "cuts": self.cuts,
                    "resets": self.resets, "stalls": self.stalls,
                    "active": len(self._conns)}

    def _mix_fire(self):
        """May a mix() fault fire now? Counts it when it may."""
        with self._lock:
            mx = self._mix
            if mx is None or mx["left"] <= 0:
                return False
            if self.bytes_s2c - mx["last"] < mx["spacing"]:
                return False
            mx["left"] -= 1
            mx["last"] = self.bytes_s2c
            return True

    def _mix_spacing(self):
        with self._lock:
            return self._mix["spacing"] if self._mix else 1 << 30

    def _mix_hold(self):
        with self._lock:
            return self._mix["hold"] if self._mix else 0.0

    # --- controls ---------------------------------------------------------

    def cut(self, lo, hi, direction="s2c", seed=0, mode="close",
            existing=True):
        """Cut every new connection after randint(lo, hi) bytes counted in
        direction ('c2s', 's2c' or 'both'); with existing, the open ones
        too (counting from now)."""
        if direction not in ("c2s", "s2c", "both"):
            raise ValueError("direction must be c2s, s2c or both")
        if mode not in ("close", "reset"):
            raise ValueError("mode must be close or reset")
        if not 0 <= lo <= hi:
            raise ValueError("need 0 <= lo <= hi")
        with self._lock:
            rng = random.Random(seed)
            self._cut = (lo, hi, direction, mode, rng)
            self._event("cut %d..%d %s seed=%s %s" % (lo, hi, direction,
                                                      seed, mode))
            conns = list(self._conns) if existing else []
            for c in conns:
                with c.lock:
                    c.budget = rng.randint(lo, hi)
                    c.direction = direction
                    c.mode = mode

    def mix(self, seed, lo, hi, weights, hold=5.0, spacing=0, limit=10):
        """Per-connection faults for the new connections, see the module
        doc."""
        modes = sorted(weights)
        for m in modes:
            if m not in ("none", "close", "reset", "stall"):
                raise ValueError("unknown fault %r" % m)
        if not 0 <= lo <= hi:
            raise ValueError("need 0 <= lo <= hi")
        with self._lock:
            self._mix = {"rng": random.Random(seed), "lo": lo, "hi": hi,
                         "modes": modes,
                         "weights": [weights[m] for m in modes],
                         "hold": hold, "spacing": spacing, "left": limit,
                         "last": self.bytes_s2c - spacing}
            self._event("mix seed=%s %d..%d %r hold=%.1f spacing=%d "
                        "limit=%d" % (seed, lo, hi, weights, hold, spacing,
                                      limit))

    def stall(self):
        with self._lock:
            self._unstalled.clear()
            self._stalled.set()
            self._event("stall")

    def reset_all(self):
        """RST every open connection; returns how many."""
        n = 0
        for c in self._snapshot():
            if c.close(rst=True):
                n += 1
        if n:
            self._count_fault("resets", n)
        return n

    def refuse(self, reset_open=True):
        """Server down: new connections are refused; open ones are reset
        unless reset_open is false."""
        with self._lock:
            self._refusing = True
            self._event("refuse")
        self._unlisten()
        if reset_open:
            self.reset_all()

    def throttle(self, rate):
        with self._lock:
            self._rate = rate

    def resume(self):
        """Forward normally again: no cut (for open connections too), no
        stall, listening."""
        with self._lock:
            self._cut = None
            self._mix = None
            for c in self._conns:
                with c.lock:
                    c.budget = None
                    c.stalled_until = 0.0
            was_refusing = self._refusing
            self._refusing = False
            self._stalled.clear()
            self._unstalled.set()
            self._event("resume")
        if was_refusing and not self._stop.is_set():
            self._listen()

    def refusing(self):
        with self._lock:
            return self._refusing

    def stalled(self):
        return self._stalled.is_set()


# ---------------------------------------------------------------------------
# Self-test against a local echo server


class _EchoServer:
    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        self.conns = []
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        while not self.stop.is_set():
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self._echo, args=(c,), daemon=True).start()

    def _echo(self, c):
        c.settimeout(10)
        try:
            while True:
                d = c.recv(_RECV)
                if not d:
                    break
                c.sendall(d)
        except OSError:
            pass
        finally:
            try:
                c.close()
            except OSError:
                pass

    def close(self):
        self.stop.set()
        self.sock.close()
        self.thread.join(5)


def _recv_all(sock, want, timeout=5):
    """Read until want bytes or EOF/error; returns (data, how it ended)."""
    sock.settimeout(timeout)
    buf = b""
    try:
        while len(buf) < want:
            d = sock.recv(_RECV)
            if not d:
                return buf, "eof"
            buf += d
    except ConnectionResetError:
        return buf, "reset"
    except socket.timeout:
        return buf, "timeout"
    return buf, "ok"


def selftest():
    failures = []

    def check(cond, what):
        print("%s - %s" % ("ok  " if cond else "FAIL", what), flush=True)
        if not cond:
            failures.append(what)

    echo = _EchoServer()
    p = FaultProxy(echo.port).start()
    try:
        payload = bytes(random.Random(1).getrandbits(8) for _ in range(300000))
        for host in p.hosts:
            with socket.create_connection((host, p.port), 5) as s:
                s.sendall(payload)
                got, how = _recv_all(s, len(payload))
            check(got == payload, "%s: 300000 bytes echo unchanged (%s)" %
                  (host, how))
        # The proxy counts a chunk after forwarding it: the client may
        # hold every byte a moment before the count does.
        want = 300000 * len(p.hosts)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            c = p.counters()
            if c["c2s"] >= want and c["s2c"] >= want:
                break
            time.sleep(0.01)
        check(c["c2s"] == c["s2c"] == want and
              c["connections"] == len(p.hosts),
              "counters: %r" % c)

        # Cut the server-to-client direction at an exact offset.
        p.cut(1234, 1234, "s2c", seed=5)
        with socket.create_connection(("127.0.0.1", p.port), 5) as s:
            s.sendall(payload[:5000])
            got, how = _recv_all(s, 5000)
        check(got == payload[:1234] and how in ("eof", "reset"),
              "s2c cut after exactly 1234 bytes (got %d, %s)" % (len(got),
                                                                 how))
        # Cut the client-to-server direction: exactly 700 bytes reach the
        # server, then the client sees the connection end.
        p.cut(700, 700, "c2s", seed=5, mode="reset")
        before = p.counters()["c2s"]
        with socket.create_connection(("127.0.0.1", p.port), 5) as s:
            try:
                s.sendall(payload[:5000])
            except OSError:
                pass
            got, how = _recv_all(s, 5000)
        sent = p.counters()["c2s"] - before
        check(sent == 700 and len(got) <= 700 and how in ("eof", "reset"),
              "c2s cut after exactly 700 bytes (%d forwarded, %d echoed, "
              "%s)" % (sent, len(got), how))
        # Seeded budgets are reproducible.
        p.cut(10, 100000, "both", seed=42, existing=False)
        budgets = []
        for _ in range(3):
            with socket.create_connection(("127.0.0.1", p.port), 5):
                pass
        time.sleep(0.2)
        budgets = [e for _, e in p.log if e.startswith("accept")][-3:]
        rng = random.Random(42)
        want = [rng.randint(10, 100000) for _ in range(3)]
        check([int(b.split("budget=")[1]) for b in budgets] == want,
              "seeded budgets %s == %s" % (budgets, want))
        p.resume()

        # A cut applies to a connection opened before it, counting from now.
        with socket.create_connection(("127.0.0.1", p.port), 5) as s:
            s.sendall(b"a" * 300)
            got1, how1 = _recv_all(s, 300)
            p.cut(100, 100, "s2c", seed=1)
            s.sendall(b"b" * 300)
            got2, how2 = _recv_all(s, 300)
        check(got1 == b"a" * 300 and got2 == b"b" * 100 and how2 == "eof",
              "a cut set later applies to an open connection (%d, %d, %s)" %
              (len(got1), len(got2), how2))
        p.resume()

        # Stall: nothing comes back, nothing is closed; resume delivers.
        s = socket.create_connection(("127.0.0.1", p.port), 5)
        s.sendall(b"x" * 10)
        got, how = _recv_all(s, 10)
        check(got == b"x" * 10, "before the stall the echo works")
        p.stall()
        time.sleep(0.1)
        s.sendall(b"y" * 10)
        got, how = _recv_all(s, 10, timeout=0.7)
        check(got == b"" and how == "timeout",
              "stalled: no byte arrives, the connection stays open (%s)" %
              how)
        p.resume()
        got, how = _recv_all(s, 10)
        check(got == b"y" * 10, "after resume the stalled bytes arrive")

        # Reset: the client sees ECONNRESET.
        n = p.reset_all()
        got, how = _recv_all(s, 1)
        check(n == 1 and how == "reset", "reset_all: RST (%d, %s)" % (n, how))
        s.close()

        # Refuse: connections are refused; resume listens again.
        p.refuse()
        try:
            socket.create_connection(("127.0.0.1", p.port), 2).close()
            refused = False
        except ConnectionRefusedError:
            refused = True
        check(refused, "refused while down")
        p.resume()
        with socket.create_connection(("127.0.0.1", p.port), 5) as s:
            s.sendall(b"back")
            got, how = _recv_all(s, 4)
        check(got == b"back", "after resume the same port works again")

        # mix(): a stall holds one connection alone and loses nothing;
        # the connection opened next works meanwhile.
        p.mix(seed=3, lo=1000, hi=1000, weights={"stall": 1}, hold=0.8,
              spacing=0, limit=1)
        a = socket.create_connection(("127.0.0.1", p.port), 5)
        a.sendall(payload[:3000])
        first, _ = _recv_all(a, 3000)  # crosses the 1000-byte budget
        a.sendall(payload[3000:5000])
        got_a, how_a = _recv_all(a, 2000, timeout=0.3)
        b = socket.create_connection(("127.0.0.1", p.port), 5)
        b.sendall(b"z" * 2000)
        got_b, how_b = _recv_all(b, 2000)
        check(got_a == b"" and how_a == "timeout" and
              got_b == b"z" * 2000 and p.counters()["stalls"] == 1,
              "mix stall: one connection silent (%d bytes, %s), the other "
              "echoes (%d bytes)" % (len(got_a), how_a, len(got_b)))
        rest, how = _recv_all(a, 2000)
        check(first + rest == payload[:5000],
              "mix stall: after the hold the same bytes arrive, none lost")
        a.close()
        b.close()
        # Spacing: of two connections due at once, the second waits.
        p.mix(seed=4, lo=100, hi=100, weights={"close": 1}, spacing=50000,
              limit=5)
        c1 = socket.create_connection(("127.0.0.1", p.port), 5)
        c2 = socket.create_connection(("127.0.0.1", p.port), 5)
        c1.sendall(b"q" * 500)
        g1, h1 = _recv_all(c1, 500)
        c2.sendall(b"r" * 500)
        g2, h2 = _recv_all(c2, 500)
        check(len(g1) == 100 and h1 == "eof" and g2 == b"r" * 500,
              "mix spacing: one cut (%d bytes, %s), the next connection "
              "goes on (%d bytes)" % (len(g1), h1, len(g2)))
        c1.close()
        c2.close()
        p.resume()

        # Throttle: 200 kB at 1 MB/s takes at least 0.15 s.
        p.throttle(1_000_000)
        t = time.monotonic()
        with socket.create_connection(("127.0.0.1", p.port), 5) as s:
            s.sendall(payload[:200000])
            got, how = _recv_all(s, 200000)
        el = time.monotonic() - t
        p.throttle(None)
        check(got == payload[:200000] and el > 0.15,
              "throttled echo is complete and slower (%.2fs)" % el)
    finally:
        p.close()
        echo.close()
    print("# faultproxy selftest: %d failed" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    if sys.argv[1:] == ["selftest"]:
        sys.exit(selftest())
    print("usage: faultproxy.py selftest", file=sys.stderr)
    sys.exit(2)
