"""Fixtures that run REAL gkfs daemons on loopback.

``cluster`` is a factory: ``c = cluster(n=3)`` starts n ``gkfs-daemon``
processes at once (each its own rootdir under tmp_path, one shared hosts
file), waits until every one is registered and answers ping, and at
teardown stops them with SIGTERM and checks that each exited 0.

``raw`` is a factory for a raw protocol connection (pyzmq DEALER), so tests
can send hand-made, even malformed, messages: ``conn = raw(address)``.
"""
from __future__ import annotations

import itertools
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Iterable

import pytest
import zmq

from gkfs_client import distribution, hostsfile, protocol, security

START_TIMEOUT = 30.0


def daemon_executable() -> str:
    exe = shutil.which("gkfs-daemon")
    if not exe:
        # A missing tool fails loudly, never skips.
        pytest.fail("gkfs-daemon is not on PATH: install the project (pip install -e .)")
    return exe


DATA_KEY_OPS = {"write_chunks", "read_chunks", "remove_chunks", "truncate_chunks", "fsync", "lock"}


class RawConn:
    """One DEALER socket to one daemon, speaking frames directly."""

    _ids = itertools.count(1)

    def __init__(self, ctx: zmq.Context, address: str, timeout: float = 10.0,
                 key: security.ClientKey | None = None, cap_secret: bytes | None = None):
        """``cap_secret``: the cluster's capability key; requests naming a
        data_key then carry a capability for it (as the owner's client would
        after open), so protocol tests can address chunks directly."""
        self.address = address
        self.cap_secret = cap_secret
        self.sock = ctx.socket(zmq.DEALER)
        self.sock.linger = 0
        security.apply_client(self.sock, key)
        self.sock.connect(address)
        self.timeout = timeout

    def encode(self, op: str, args: dict | None = None, data: Iterable[Any] = (), *, req_id: int) -> list[Any]:
        """protocol.encode_request, plus the owner's capability for a data op."""
        if self.cap_secret and isinstance(args, dict) and isinstance(args.get("data_key"), str) \
                and "cap" not in args and op in DATA_KEY_OPS:
            from gkfs_daemon.access import make_cap
            args = dict(args, cap=make_cap(self.cap_secret, args["data_key"], "rwd",
                                           security.Identity.of_process()))
        return protocol.encode_request(op, args, data, req_id=req_id)

    def send_frames(self, frames: list[Any]) -> None:
        self.sock.send_multipart(frames, copy=False)

    def recv_frames(self, timeout: float | None = None) -> list[bytes]:
        t = self.timeout if timeout is None else timeout
        if not self.sock.poll(int(t * 1000)):
            raise TimeoutError(f"no reply from {self.address} within {t}s")
        return self.sock.recv_multipart()

    def recv_reply(self, timeout: float | None = None) -> protocol.Reply:
        return protocol.decode_reply(self.recv_frames(timeout))

    def request(self, op: str, args: dict | None = None, data: Iterable[Any] = (),
                timeout: float | None = None) -> protocol.Reply:
        req_id = next(self._ids)
        self.send_frames(self.encode(op, args, data, req_id=req_id))
        while True:
            reply = self.recv_reply(timeout)
            if reply.req_id == req_id:
                return reply

    def call(self, op: str, args: dict | None = None, data: Iterable[Any] = ()) -> protocol.Reply:
        """request() that raises OSError on an error status."""
        return self.request(op, args, data).raise_for_status()

    def close(self) -> None:
        self.sock.close(0)


class Cluster:
    def __init__(self, base: Path, n: int, chunk_size: int | None, extra_args: list[str],
                 listen: str, ctx: zmq.Context):
        self.base = base
        self.n = n
        self.chunk_size = chunk_size or protocol.DEFAULT_CHUNK_SIZE
        self.extra_args = list(extra_args)
        self.listen = listen
        self.ctx = ctx
        self.hosts_file = base / "hosts"
        self.rootdirs = [base / f"daemon-{i}" for i in range(n)]
        self.logs = [base / f"daemon-{i}.log" for i in range(n)]
        self.daemons: list[subprocess.Popen | None] = [None] * n
        self.env = dict(os.environ, LIBGKFS_HOSTS_FILE=str(self.hosts_file))
        self._exe = daemon_executable()
        self._conns: dict[str, RawConn] = {}
        base.mkdir(parents=True, exist_ok=True)

    # -- processes --------------------------------------------------------
    def _argv(self, i: int) -> list[str]:
        listen = self.listen
        if listen.startswith("ipc://"):
            listen = f"ipc://{self.base}/daemon-{i}.sock"
        argv = [self._exe, "--mount", "/gkfs", "--rootdir", str(self.rootdirs[i]), "--listen", listen,
                "--hosts-file", str(self.hosts_file), "--id", str(i), "--members", str(self.n), "--log-level", "debug",
                "--chunk-size", str(self.chunk_size),
                # One process per member: tests kill, restart and count "daemon i".
                "--processes", "1", *self.extra_args]
        return argv

    def _spawn(self, i: int) -> subprocess.Popen:
        log = open(self.logs[i], "ab")
        try:
            p = subprocess.Popen(self._argv(i), stdout=log, stderr=subprocess.STDOUT, env=self.env)
        finally:
            log.close()
        self.daemons[i] = p
        return p

    def start(self) -> "Cluster":
        for i in range(self.n):  # all at once: registration must cope
            self._spawn(i)
        self.wait_ready(range(self.n))
        return self

    def log(self, i: int) -> str:
        try:
            return self.logs[i].read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_ready(self, which: Iterable[int], timeout: float = START_TIMEOUT) -> None:
        which = list(which)
        deadline = time.monotonic() + timeout
        pending = set(which)
        while pending:
            for i in list(pending):
                p = self.daemons[i]
                if p.poll() is not None:
                    pytest.fail(f"daemon {i} exited with {p.returncode} while starting:\n{self.log(i)}")
                host = self.host(i, must=False)
                if host is None or host.pid != p.pid:
                    continue
                conn = RawConn(self.ctx, host.address, timeout=1.0, key=self.key)
                try:
                    reply = conn.request("ping", timeout=1.0)
                    if reply.ok:
                        pending.discard(i)
                except TimeoutError:
                    pass
                finally:
                    conn.close()
            if pending and time.monotonic() > deadline:
                logs = "\n".join(f"--- daemon {i}:\n{self.log(i)}" for i in pending)
                pytest.fail(f"daemons {sorted(pending)} not ready after {timeout}s\n{logs}")
            if pending:
                time.sleep(0.05)

    @property
    def key(self) -> security.ClientKey | None:
        """The owner's client key (made by the first daemon), None with security off."""
        if "off" in self.extra_args and "--security" in self.extra_args:
            return None
        return security.load_client_key(security.keys_dir(self.hosts_file) / security.CLIENT_KEY)

    @property
    def cap_secret(self) -> bytes | None:
        if self.key is None:
            return None
        return security.load_server_key(self.hosts_file).cap_secret

    # -- hosts ------------------------------------------------------------
    def hosts(self) -> list[hostsfile.Host]:
        return hostsfile.read_hosts(self.hosts_file)

    def host(self, i: int, must: bool = True) -> hostsfile.Host | None:
        try:
            for h in hostsfile.read_hosts(self.hosts_file):
                if h.id == i:
                    return h
        except hostsfile.HostsFileError:
            if must:
                raise
            return None
        if must:
            raise KeyError(f"daemon {i} not in {self.hosts_file}")
        return None

    def address(self, i: int) -> str:
        return self.host(i).address

    def addresses(self) -> list[str]:
        return [h.address for h in self.hosts()]

    def conn(self, i: int, timeout: float = 10.0) -> RawConn:
        """A new raw connection to the daemon with id i (caller closes it)."""
        return RawConn(self.ctx, self.address(i), timeout, key=self.key, cap_secret=self.cap_secret)

    def conn_at(self, index: int) -> RawConn:
        """A cached connection to member ``index`` (its placement slot)."""
        address = self.address(index)
        c = self._conns.get(address)
        if c is None:
            c = self._conns[address] = RawConn(self.ctx, address, key=self.key, cap_secret=self.cap_secret)
        return c

    def meta_conn(self, path: str) -> RawConn:
        """Connection to the metadata owner of ``path``."""
        return self.conn_at(distribution.metadata_owner(path, self.n))

    def chunk_conn(self, data_key: str, index: int) -> RawConn:
        return self.conn_at(distribution.chunk_owner(data_key, index, self.n))

    # -- lifecycle --------------------------------------------------------
    def kill(self, i: int) -> None:
        """SIGKILL daemon i (its hosts line stays, stale)."""
        p = self.daemons[i]
        p.send_signal(signal.SIGKILL)
        p.wait(10)

    def terminate(self, i: int, timeout: float = 30.0) -> int:
        """SIGTERM daemon i and return its exit status."""
        p = self.daemons[i]
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
        return p.wait(timeout)

    def restart(self, i: int) -> None:
        """Start daemon i again on the same rootdir and id; wait for ping."""
        p = self.daemons[i]
        if p is not None and p.poll() is None:
            self.terminate(i)
        self._spawn(i)
        self.wait_ready([i])

    def stop(self) -> list[int | None]:
        """SIGTERM every running daemon; returns their exit statuses."""
        for c in self._conns.values():
            c.close()
        self._conns.clear()
        for p in self.daemons:
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGTERM)
        codes = []
        for i, p in enumerate(self.daemons):
            if p is None:
                codes.append(None)
                continue
            try:
                codes.append(p.wait(30))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                pytest.fail(f"daemon {i} did not stop within 30s after SIGTERM:\n{self.log(i)}")
        return codes


@pytest.fixture(scope="session")
def storage_harness():
    """This module's Cluster and RawConn, for fixtures of a wider scope than
    `cluster`: `import conftest` in a test gets whichever conftest pytest
    imported last under that name (tests/multinode's, when both folders
    are collected; sys.modules["conftest"] too)."""
    import types
    return types.SimpleNamespace(Cluster=Cluster, RawConn=RawConn)


@pytest.fixture
def zmq_ctx():
    ctx = zmq.Context()
    yield ctx
    ctx.destroy(linger=0)


@pytest.fixture
def cluster(tmp_path, zmq_ctx):
    """Factory: cluster(n=3, chunk_size=None, extra_args=(), listen='tcp://127.0.0.1:*')."""
    made: list[tuple[Cluster, set[int]]] = []

    def start(n: int = 3, chunk_size: int | None = None, extra_args: Iterable[str] = (),
              listen: str = "tcp://127.0.0.1:*") -> Cluster:
        c = Cluster(tmp_path / f"cluster{len(made)}", n, chunk_size, list(extra_args), listen, zmq_ctx)
        made.append(c)
        return c.start()

    yield start
    failures = []
    for c in made:
        # A daemon a test killed with -9 and did not restart is not checked.
        killed = {i for i, p in enumerate(c.daemons) if p is not None and p.returncode == -signal.SIGKILL}
        codes = c.stop()
        for i, code in enumerate(codes):
            if code not in (0, None) and i not in killed:
                failures.append(f"daemon {i} exited {code}:\n{c.log(i)[-4000:]}")
    if failures:
        pytest.fail("\n".join(failures))


def _op_delta(gk, fn, peer_lookups: bool) -> dict[str, int]:
    """The requests the daemons counted while ``fn()`` ran, {op: count},
    without the counting's own ping and status to each daemon; without the
    daemon-to-daemon lookups (``peer_*``) unless ``peer_lookups``."""
    before = gk.op_totals()
    fn()
    after = gk.op_totals()
    n = len(gk.hosts)
    d = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    d["ping"] -= n   # the counting itself: one ping + one status per daemon
    d["status"] -= n
    return {k: v for k, v in d.items() if v and (peer_lookups or not k.startswith("peer_"))}


@pytest.fixture
def op_delta():
    """op_delta(client, fn): every request the daemons counted during fn()."""
    return lambda gk, fn: _op_delta(gk, fn, True)


@pytest.fixture
def client_op_delta():
    """client_op_delta(client, fn): the client's requests during fn(), not
    the permission lookups daemons made of each other for them."""
    return lambda gk, fn: _op_delta(gk, fn, False)


def _key_for(base: Path, address: str) -> tuple[security.ClientKey | None, bytes | None]:
    """The owner key and capability key of the test cluster (under base) that lists ``address``."""
    for hosts in base.glob("*/hosts"):
        try:
            if address in {h.address for h in hostsfile.read_hosts(hosts)}:
                kf = security.keys_dir(hosts) / security.CLIENT_KEY
                if not kf.exists():
                    return None, None
                return security.load_client_key(kf), security.load_server_key(hosts).cap_secret
        except hostsfile.HostsFileError:
            continue
    return None, None


@pytest.fixture
def raw(zmq_ctx, tmp_path):
    """Factory: raw(address, key=<its cluster's owner key>) -> RawConn (closed at teardown)."""
    conns: list[RawConn] = []

    def connect(address: str, timeout: float = 10.0, key: Any = "owner") -> RawConn:
        secret = None
        if key == "owner":
            key, secret = _key_for(tmp_path, address)
        c = RawConn(zmq_ctx, address, timeout, key=key, cap_secret=secret)
        conns.append(c)
        return c

    yield connect
    for c in conns:
        c.close()
