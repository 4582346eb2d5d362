"""The daemon's end of the local stream (docs/protocol.md 1.1) on real daemons.

A small raw client here (an AF_UNIX socket, local_stream.encode/Decoder,
protocol.encode_request/decode_reply) talks to the abstract name each
member listens on. Other users (a local user the tests create; run as root,
as CI does) are refused before a byte is read, and cannot take the name
from the daemon either: a member whose name is taken serves TCP alone.
"""
from __future__ import annotations

import errno
import json
import os
import pwd
import re
import select
import socket
import struct
import subprocess
import threading
import time

import pytest

from gkfs_client import hostsfile, local_stream, protocol, security

MiB = 1024 * 1024
CS = 512 * 1024
SYS_PYTHON = "/usr/bin/python3"
WR, RD = 1, 0


class LocalConn:
    """One local stream connection, speaking frames directly."""

    def __init__(self, name: bytes, timeout: float = 10.0, cap_secret: bytes | None = None):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(name)
        self.timeout = timeout
        self.cap_secret = cap_secret
        self.decoder = local_stream.Decoder()
        self.got: list[list] = []
        self._id = 0

    def encode(self, op: str, args: dict | None, data=(), req_id: int = 0) -> list:
        if self.cap_secret and isinstance(args, dict) and "data_key" in args and "cap" not in args:
            from gkfs_daemon.access import make_cap
            args = dict(args, cap=make_cap(self.cap_secret, args["data_key"], "rwd", security.Identity.of_process()))
        return protocol.encode_request(op, args, data, req_id=req_id)

    def send_frames(self, frames) -> None:
        for buf in local_stream.encode(frames):
            self.sock.sendall(buf)

    def recv_frames(self, timeout: float | None = None) -> list:
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while not self.got:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.sock], [], [], left)[0]:
                raise TimeoutError("no reply over the local stream")
            view = self.decoder.buffer()
            n = self.sock.recv_into(view)
            del view
            if n == 0:
                raise ConnectionError("the daemon closed the local stream")
            self.got.extend(self.decoder.received(n))
        return self.got.pop(0)

    def request(self, op: str, args: dict | None = None, data=(), timeout: float | None = None) -> protocol.Reply:
        self._id += 1
        rid = self._id
        self.send_frames(self.encode(op, args, data, rid))
        while True:
            reply = protocol.decode_reply(self.recv_frames(timeout))
            if reply.req_id == rid:
                return reply

    def call(self, op: str, args: dict | None = None, data=()) -> protocol.Reply:
        return self.request(op, args, data).raise_for_status()

    def closed_by_daemon(self, timeout: float = 10.0) -> bool:
        """True when the daemon closes the stream (EOF or reset) within
        ``timeout``; anything it sends meanwhile is read and discarded."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not select.select([self.sock], [], [], 0.2)[0]:
                continue
            try:
                if not self.sock.recv(1 << 20):
                    return True
            except ConnectionResetError:
                return True
        return False

    def close(self) -> None:
        self.sock.close()


def name_of(c, i: int = 0) -> bytes:
    return local_stream.local_name(hostsfile.read_record(c.hosts_file).uuid, i, c.address(i))


def ops(c, i: int = 0) -> dict:
    conn = c.conn(i)
    try:
        return conn.call("status").result["ops"]
    finally:
        conn.close()


@pytest.fixture
def local(cluster):
    """Factory: local(c, i=0) -> LocalConn to member i (closed at teardown)."""
    conns: list[LocalConn] = []

    def connect(c, i: int = 0, timeout: float = 10.0) -> LocalConn:
        conn = LocalConn(name_of(c, i), timeout, c.cap_secret)
        conns.append(conn)
        return conn

    yield connect
    for conn in conns:
        conn.close()


def _rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


# ------------------------------------------------------------------ requests

def test_requests_over_the_local_stream(cluster, local):
    """ping, create, stat, and writes read back byte for byte: one small
    frame, one of 100 KiB (above the decoder's 64 KiB buffer) and a 3 MiB
    message of six chunk frames. The daemon counts them: they were
    answered over the stream, not elsewhere."""
    c = cluster(n=1, chunk_size=CS)
    before = ops(c)
    lc = local(c)
    assert lc.call("ping").result["id"] == 0
    lc.call("create", {"path": "/f", "mode": 0o100644})
    st = lc.call("stat", {"path": "/f"}).result["stat"]
    key = st["data_key"]
    small = b"hello, local stream"
    mid = os.urandom(100 * 1024)
    big = [os.urandom(CS) for _ in range(6)]
    lc.call("write_chunks", {"data_key": key, "chunk_size": CS, "chunks": [[0, 0, len(small)]]}, [small])
    assert lc.call("read_chunks", {"data_key": key, "chunk_size": CS, "chunks": [[0, 0, len(small)]]}).data == [small]
    lc.call("write_chunks", {"data_key": key, "chunk_size": CS, "chunks": [[1, 0, len(mid)]]}, [mid])
    r = lc.call("read_chunks", {"data_key": key, "chunk_size": CS, "chunks": [[1, 0, len(mid)]]})
    assert b"".join(bytes(d) for d in r.data) == mid
    lc.call("write_chunks", {"data_key": key, "chunk_size": CS, "chunks": [[2 + i, 0, CS] for i in range(6)]}, big)
    r = lc.call("read_chunks", {"data_key": key, "chunk_size": CS, "chunks": [[2 + i, 0, CS] for i in range(6)]})
    assert b"".join(bytes(d) for d in r.data) == b"".join(big)
    after = ops(c)
    for op, n in (("ping", 1), ("create", 1), ("stat", 1), ("write_chunks", 3), ("read_chunks", 3)):
        assert after.get(op, 0) - before.get(op, 0) == n, (op, before, after)


def test_pipelined_requests_are_all_answered(cluster, local):
    c = cluster(n=1)
    lc = local(c)
    lc.call("create", {"path": "/p", "mode": 0o100644})
    n = 500
    buf = b"".join(b"".join(bytes(b) for b in local_stream.encode(lc.encode("stat", {"path": "/p"}, req_id=i)))
                   for i in range(1, n + 1))
    lc.sock.sendall(buf)  # all at once: many requests in one receive, one split across two
    ids = sorted(protocol.decode_reply(lc.recv_frames()).req_id for _ in range(n))
    assert ids == list(range(1, n + 1))


def test_slow_reader_gets_every_reply_whole(cluster, local):
    """48 pipelined 512 KiB reads (24 MiB of replies, far more than the
    socket holds), the client reading nothing for a second: the replies
    wait (a partial one on the connection, the rest in its backlog), then
    all arrive whole and in their bytes once it reads."""
    c = cluster(n=1, chunk_size=CS)
    lc = local(c, timeout=30)
    lc.call("create", {"path": "/slow", "mode": 0o100644})
    key = lc.call("stat", {"path": "/slow"}).result["stat"]["data_key"]
    blobs = [os.urandom(CS) for _ in range(4)]
    lc.call("write_chunks", {"data_key": key, "chunk_size": CS, "chunks": [[i, 0, CS] for i in range(4)]}, blobs)
    n = 48
    for i in range(n):
        lc.send_frames(lc.encode("read_chunks", {"data_key": key, "chunk_size": CS, "chunks": [[i % 4, 0, CS]]},
                                 req_id=500 + i))
    time.sleep(1.0)
    got = {}
    for _ in range(n):
        r = protocol.decode_reply(lc.recv_frames())
        assert r.ok, r
        got[r.req_id] = b"".join(bytes(d) for d in r.data)
    assert sorted(got) == list(range(500, 500 + n))
    assert all(got[500 + i] == blobs[i % 4] for i in range(n))
    assert lc.call("ping").ok


# ------------------------------------------------------------------ other users

@pytest.fixture(scope="module")
def other_user():
    """An unprivileged local user (FAILS, never skips, where one cannot be made)."""
    if os.geteuid() != 0:
        pytest.fail("this test creates a local user: run it as root (CI does)")
    for tool in ("useradd", "userdel", "setpriv"):
        if not any(os.path.exists(f"{d}/{tool}") for d in ("/usr/sbin", "/usr/bin", "/sbin", "/bin")):
            pytest.fail(f"{tool} missing: deploy/setup-debian.sh installs it")
    name = f"gkfsls{os.getpid() % 100000}"
    subprocess.run(["useradd", "--no-create-home", "--user-group", "--shell", "/usr/sbin/nologin", name],
                   check=True, capture_output=True)
    pw = pwd.getpwnam(name)
    try:
        yield pw
    finally:
        subprocess.run(["pkill", "-KILL", "-u", name], capture_output=True)  # only the test user's processes
        subprocess.run(["userdel", name], capture_output=True)


def as_user(pw, code: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen(["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--clear-groups", "--",
                             SYS_PYTHON, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"}, cwd="/")


_INTRUDER = """
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    s.connect(bytes.fromhex(sys.argv[1]))
except OSError as e:
    print(json.dumps({"connect": e.errno})); sys.exit()
s.settimeout(5)
try:
    s.sendall(bytes.fromhex(sys.argv[2]))
    got = s.recv(65536)
    print(json.dumps({"connect": 0, "got": got.hex()}))
except OSError as e:
    print(json.dumps({"connect": 0, "error": e.errno}))
"""


def test_another_uid_is_refused_before_a_byte_is_read(cluster, local, other_user):
    """Another user reaches the name (same network namespace) but the
    daemon closes the connection at once: no reply, nothing done. The
    owner's own connection is served."""
    c = cluster(n=1)
    name = name_of(c)
    ping = b"".join(bytes(b) for b in local_stream.encode(protocol.encode_request("ping", None, req_id=7)))
    before = ops(c)
    p = as_user(other_user, _INTRUDER, name.hex(), ping.hex())
    out, err = p.communicate(timeout=30)
    assert p.returncode == 0, err.decode()
    res = json.loads(out.decode().strip().splitlines()[-1])
    assert res["connect"] == 0, res  # the listener is there ...
    assert res.get("got", "") == "" or res.get("error") in (errno.ECONNRESET, errno.EPIPE), res  # ... and says nothing
    assert "got" in res or "error" in res, res
    assert ops(c).get("ping", 0) == before.get("ping", 0)
    assert "refused a connection from pid" in c.log(0)
    assert local(c).call("ping").ok


_SQUATTER = """
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(bytes.fromhex(sys.argv[1]))
s.listen(8)
print("bound", flush=True)
time.sleep(120)
"""


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_name_taken_by_another_user_leaves_the_daemon_on_tcp(cluster, other_user, tmp_path):
    """Another user binds the member's name before the daemon starts (it can
    compute it: the uuid, id and address are in the hosts file). The daemon
    starts, warns, and serves TCP; it never serves the squatter's socket."""
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    hosts = tmp_path / "cluster0" / "hosts"  # the cluster fixture's first cluster
    hosts.parent.mkdir(mode=0o700)
    record, _ = hostsfile.create_cluster(hosts, 1, protocol.DEFAULT_CHUNK_SIZE, "/gkfs")
    name = local_stream.local_name(record.uuid, 0, address)
    squatter = as_user(other_user, _SQUATTER, name.hex())
    try:
        assert squatter.stdout.readline().strip() == b"bound", squatter.stderr.read().decode()
        c = cluster(n=1, listen=address)
        assert c.address(0) == address
        conn = c.conn(0)
        assert conn.call("ping").ok and conn.call("status").result.get("local_stream") is False
        conn.close()
        log = c.log(0)
        assert "local stream: cannot listen on" in log and "local clients of this member use TCP" in log, log
    finally:
        squatter.kill()
        squatter.wait()


# ------------------------------------------------------------------ hostile streams

def test_framing_violations_close_only_that_connection(cluster, local, raw):
    """Too many frames, a frame above the limit, and garbage each close
    their own connection without a reply; another local client and a TCP
    client are served before, between and after."""
    c = cluster(n=1)
    good, tcp = local(c), raw(c.address(0))
    good.call("ping")
    tcp.call("ping")
    bad_streams = [
        struct.pack("<I", protocol.MAX_FRAMES + 1) + b"\0" * 64,           # too many frames
        struct.pack("<II", 1, 2 * protocol.DEFAULT_MAX_FRAME_SIZE + 1),   # a frame above twice max_frame_size
        b"\0\0\0\0",                                                      # a message of no frames
        b"GET / HTTP/1.1\r\nHost: gkfs\r\n\r\n",                          # not this protocol at all
    ]
    for junk in bad_streams:
        bad = local(c)
        bad.call("ping")  # a working connection first: the violation, not the client, closes it
        bad.sock.sendall(junk)
        assert bad.closed_by_daemon(), junk
        assert good.call("ping").ok and tcp.call("ping").ok
    assert "local stream: closed connection" in c.log(0)
    assert good.call("stat", {"path": "/"}).ok
    # a frame above max_frame_size but within the stream's limit is a
    # request like any other: answered EMSGSIZE, as over ZeroMQ
    big = good.request("write_chunks", {"data_key": "0" * 32, "chunk_size": CS, "chunks": [[0, 0, 1]]},
                       [bytes(protocol.DEFAULT_MAX_FRAME_SIZE + 1)])
    assert big.status == errno.EMSGSIZE, big
    assert good.call("ping").ok


def test_client_that_never_reads_is_dropped_and_memory_stays_bounded(cluster, local, raw):
    """A local client pipelines stats and never reads: its replies fill the
    socket, then its backlog here, and it is dropped (connection closed,
    counted), while others are served; then one that asks for 63.5 MiB
    reads and never reads them pins a bounded amount of memory."""
    c = cluster(n=1, chunk_size=CS)
    pid = c.daemons[0].pid
    good = local(c)
    good.call("create", {"path": "/h", "mode": 0o100644})
    base = _rss(pid)
    hog = local(c)
    hog.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    one = b"".join(bytes(b) for b in local_stream.encode(hog.encode("stat", {"path": "/h"}, req_id=1)))
    errors: list[BaseException] = []

    def flood():
        try:
            for _ in range(40):
                hog.sock.sendall(one * 500)
        except OSError as exc:  # the daemon closed it: expected
            errors.append(exc)

    t = threading.Thread(target=flood)
    t.start()
    t.join(60)
    assert not t.is_alive()
    assert errors and isinstance(errors[0], (BrokenPipeError, ConnectionResetError)), errors
    assert hog.closed_by_daemon()
    assert ops(c).get("dropped_clients", 0) >= 1
    assert good.call("ping").ok
    # big replies nobody reads
    st = good.call("stat", {"path": "/h"}).result["stat"]
    args = {"data_key": st["data_key"], "chunk_size": CS, "chunks": [[i, 0, CS] for i in range(127)],
            "file_size": 2**40}
    hog2 = local(c)
    hog2.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    for i in range(16):
        hog2.send_frames(hog2.encode("read_chunks", args, req_id=100 + i))
    peak = base
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        peak = max(peak, _rss(pid))
        assert good.request("ping", timeout=20).ok
        time.sleep(0.2)
    assert ops(c).get("read_chunks", 0) >= 2  # the replies were really made
    assert peak - base < 400 * MiB, (base, peak)
    hog2.close()
    time.sleep(2)
    assert good.call("ping").ok
    assert _rss(pid) - base < 160 * MiB, (base, _rss(pid))


# ------------------------------------------------------------------ connections, locks, identities

KEY = "0123456789abcdef0123456789abcdef"


def _lock(conn, owner: str, ltype: int, key: str = KEY) -> dict:
    return conn.call("lock", {"data_key": key, "owner": owner, "space": "posix", "type": ltype, "start": 0,
                              "len": 0, "pid": 1}).result


def test_lock_taken_over_the_local_stream_is_released_when_it_closes(cluster, local):
    c = cluster(n=1)
    holder, other = local(c), c.conn(0)
    assert _lock(holder, "H", WR)["granted"]
    assert not _lock(other, "O", RD)["granted"]
    assert other.call("status").result["local_connections"] == 1
    holder.close()
    t = time.monotonic()
    while not _lock(other, "O", WR)["granted"]:
        assert time.monotonic() - t < 1.0, "a closed local connection's lock was not released promptly"
        time.sleep(0.01)
    st = other.call("status").result
    assert st["local_stream"] is True and st["local_connections"] == 0
    other.close()


def _zmtp_null_dealer(port: int, identity: bytes) -> socket.socket:
    """A TCP peer that speaks ZMTP 3.0 (NULL mechanism) by hand and presents
    ``identity``, any length (libzmq's own sockets stop at 255 bytes)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"\xff" + b"\0" * 8 + b"\x7f" + bytes([3, 0]) + b"NULL".ljust(20, b"\0") + b"\0" * 32)
    got = b""
    while len(got) < 64:
        got += s.recv(64 - len(got))

    def prop(k: bytes, v: bytes) -> bytes:
        return bytes([len(k)]) + k + struct.pack(">I", len(v)) + v

    body = b"\x05READY" + prop(b"Socket-Type", b"DEALER") + prop(b"Identity", identity)
    s.sendall(b"\x06" + struct.pack(">Q", len(body)) + body)
    return s


def _zmtp_send(s: socket.socket, frames: list[bytes]) -> None:
    for i, f in enumerate(frames):
        more = 1 if i < len(frames) - 1 else 0
        s.sendall(bytes([0x02 | more]) + struct.pack(">Q", len(f)) + f)


def _zmtp_replies(s: socket.socket, want: set[int], timeout: float) -> list[protocol.Reply]:
    """The replies the peer receives until it has those to the ids ``want``
    (commands such as heartbeats, and lock probes, id 0, skipped), fewer if
    ``timeout`` passes first."""
    deadline = time.monotonic() + timeout
    buf, out = b"", []
    while not want <= {r.req_id for r in out} and time.monotonic() < deadline:
        s.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            break
        if not chunk:
            break
        buf += chunk
        while len(buf) >= 2:
            flags = buf[0]
            if flags & 0x02:
                if len(buf) < 9:
                    break
                n, head = struct.unpack(">Q", buf[1:9])[0], 9
            else:
                n, head = buf[1], 2
            if len(buf) < head + n:
                break
            body, buf = buf[head:head + n], buf[head + n:]
            if not flags & 0x04:
                reply = protocol.decode_reply([body])
                if reply.req_id:
                    out.append(reply)
    return out


def test_a_tcp_peer_cannot_present_a_local_identity(cluster, local):
    """libzmq takes any identity a hand-made ZMTP handshake presents (300
    bytes here). Peers presenting what local identities look like (their
    prefix, a guessed secret, the first connection numbers, and the same
    padded past 255 bytes) get their own replies (a worker's too), nothing
    reaches the local connection, and their locks are theirs: the local
    connection closing releases its own lock only."""
    c = cluster(n=1, extra_args=["--security", "off"])
    port = int(c.address(0).rsplit(":", 1)[1])
    holder = local(c)
    assert _lock(holder, "H", WR)["granted"]
    forged = [b"\0gkfs-local-conn\0" + bytes(16) + n.to_bytes(8, "big") for n in range(4)]
    forged += [f + b"\0" * (300 - len(f)) for f in forged] + [b"\0" * 300]
    peers = []
    for i, ident in enumerate(forged):
        s = _zmtp_null_dealer(port, ident)
        _zmtp_send(s, protocol.encode_request("lock", {"data_key": f"{i:032x}", "owner": f"F{i}", "space": "posix",
                                                       "type": WR, "start": 0, "len": 0}, req_id=41))
        _zmtp_send(s, protocol.encode_request("status", None, req_id=42))  # answered by a worker
        _zmtp_send(s, protocol.encode_request("ping", None, req_id=43))
        replies = _zmtp_replies(s, {41, 42, 43}, 10.0)
        got = {r.req_id for r in replies}
        assert got == {41, 42, 43}, (ident[:40], got)
        assert [r.result["granted"] for r in replies if r.req_id == 41] == [True]
        peers.append(s)
    # nothing of theirs arrived on the local stream, and it is still served
    with pytest.raises(TimeoutError):
        holder.recv_frames(timeout=0.3)
    assert holder.call("ping").ok
    other = c.conn(0)
    assert not _lock(other, "O", RD)["granted"]
    holder.close()
    t = time.monotonic()
    while not _lock(other, "O", WR)["granted"]:
        assert time.monotonic() - t < 1.0, "the local connection's lock was not released"
        time.sleep(0.01)
    # lock probes of the live peers run meanwhile (all within the ZMTP
    # heartbeat timeout: these peers never answer a heartbeat)
    time.sleep(0.6)
    for i in range(len(forged)):
        assert not _lock(other, "O", RD, key=f"{i:032x}")["granted"], i  # still the forged peer's
    for s in peers:
        s.close()
    other.close()


def test_sigterm_finishes_local_in_flight_writes_and_refuses_the_rest(cluster, local):
    """Pipelined 4 MiB writes over the local stream, SIGTERM after the first
    reply: every reply is ok or ESHUTDOWN, every write the daemon executed
    (its debug log) was answered before it exited, and it exits 0."""
    c = cluster(n=1, chunk_size=CS)
    lc = local(c, timeout=30)
    lc.call("create", {"path": "/inflight", "mode": 0o100644})
    key = lc.call("stat", {"path": "/inflight"}).result["stat"]["data_key"]
    n, per = 24, 8
    for i in range(n):
        lc.send_frames(lc.encode("write_chunks", {"data_key": key, "chunk_size": CS,
                                                  "chunks": [[i * per + k, 0, CS] for k in range(per)]},
                                 [bytes([i]) * CS] * per, req_id=1000 + i))
    replies = [protocol.decode_reply(lc.recv_frames())]
    assert replies[0].ok, replies[0]
    c.daemons[0].send_signal(15)
    while True:
        try:
            replies.append(protocol.decode_reply(lc.recv_frames(timeout=5)))
        except (TimeoutError, ConnectionError):
            break
    assert c.daemons[0].wait(30) == 0
    assert all(r.ok or r.status == errno.ESHUTDOWN for r in replies), [r for r in replies if not r.ok]
    done = {int(m) for m in re.findall(r"op write_chunks \(id (\d+)\) ok", c.log(0))}
    assert done == {r.req_id for r in replies if r.ok}, (sorted(done), sorted(r.req_id for r in replies))
    print(f"{len(done)} of {n} writes done, {len(replies) - len(done)} refused around SIGTERM")


def test_each_member_of_a_multi_process_node_listens(tmp_path):
    """`gkfs-daemon --processes 2`: each member process binds its own name
    (its hosts-file entry's) and answers as itself over it."""
    hosts = tmp_path / "hosts"
    log = open(tmp_path / "node.log", "ab")
    node = subprocess.Popen(["gkfs-daemon", "--processes", "2", "--rootdir", str(tmp_path / "node"), "--hosts-file",
                             str(hosts), "--listen", "tcp://127.0.0.1:*"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=log)
    log.close()
    try:
        deadline = time.monotonic() + 60
        while True:
            assert node.poll() is None, (tmp_path / "node.log").read_text()
            try:
                members = sorted(hostsfile.read_hosts(hosts))
            except (hostsfile.HostsFileError, OSError):
                members = []
            if len(members) == 2 and "node daemon up" in (tmp_path / "node.log").read_text():
                break
            assert time.monotonic() < deadline, (tmp_path / "node.log").read_text()
            time.sleep(0.05)
        uuid = hostsfile.read_record(hosts).uuid
        names = [local_stream.local_name(uuid, h.id, h.address) for h in members]
        assert len(set(names)) == 2
        for h, name in zip(members, names):
            conn = LocalConn(name)
            try:
                r = conn.call("ping").result
                assert r["id"] == h.id and r["address"] == h.address, (r, h)
            finally:
                conn.close()
    finally:
        if node.poll() is None:
            node.send_signal(15)
        assert node.wait(30) == 0
