"""The client's side of the local stream (docs/protocol.md 1.1), against real daemons.

A client on a daemon's host talks to it over the daemon's abstract UNIX
stream socket; these tests prove it does (the kernel names the daemon as the
peer of the client's socket, and the client opens no TCP connection to it),
that the data are the same bytes either way, and that the ways a stream can
go wrong (a daemon killed, restarted elsewhere, stopped; a name taken by
another user; a fork) end exactly as over TCP, never in other bytes or a hang.
"""
from __future__ import annotations

import errno
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from gkfs_client import local_stream, security
from gkfs_client.client import Client
from gkfs_client.local_transport import LocalFirstTransport

CHUNK = 64 * 1024


def _transport(gk: Client) -> LocalFirstTransport:
    t = gk._rpc.transport
    assert isinstance(t, LocalFirstTransport), type(t)
    return t


def _peer_pid(sock: socket.socket) -> int:
    import struct
    return struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))[0]


def _tcp_connections_to(ports: set[int]) -> set[int]:
    """Socket inodes of this process's TCP connections to 127.0.0.1:<ports>."""
    mine = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            link = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            mine.add(int(link[8:-1]))
    found = set()
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        with open(table) as f:
            next(f)
            for line in f:
                cols = line.split()
                port = int(cols[2].rsplit(":", 1)[1], 16)
                inode = int(cols[9])
                if port in ports and inode in mine and cols[3] == "01":  # ESTABLISHED
                    found.add(inode)
    return found


def _port(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _exercise(gk: Client, tag: str) -> dict[str, bytes]:
    """Files of every size class written through ``gk``; returns what was written."""
    gk.mkdir(f"/{tag}")
    files = {
        f"/{tag}/small": b"hello local stream",
        f"/{tag}/over64k": os.urandom(64 * 1024 + 17),  # above the decoder's small buffer
        f"/{tag}/multi": os.urandom(3 * 1024 * 1024 + 5),  # many chunks, several daemons
        f"/{tag}/empty": b"",
        # more than a stream's send buffer for each daemon: the rest waits and
        # goes out while the client waits for both replies
        f"/{tag}/big": os.urandom(20 * 1024 * 1024 + 3),
    }
    for path, data in files.items():
        gk.write_file(path, data)
    # a pwrite at an odd offset inside a chunk, then a read across chunk borders
    fd = gk.open(f"/{tag}/multi", os.O_RDWR)
    gk.pwrite(fd, b"PATCH", CHUNK * 3 - 2)
    gk.close(fd)
    m = bytearray(files[f"/{tag}/multi"])
    m[CHUNK * 3 - 2:CHUNK * 3 + 3] = b"PATCH"
    files[f"/{tag}/multi"] = bytes(m)
    return files


def _check(gk: Client, files: dict[str, bytes], tag: str) -> None:
    for path, data in files.items():
        assert gk.read_file(path) == data, path
        assert gk.stat(path).st_size == len(data), path
    fd = gk.open(f"/{tag}/multi", os.O_RDONLY)
    assert gk.pread(fd, 200_000, CHUNK - 100) == files[f"/{tag}/multi"][CHUNK - 100:CHUNK - 100 + 200_000]
    gk.close(fd)
    assert sorted(gk.listdir(f"/{tag}")) == sorted(p.rsplit("/", 1)[1] for p in files)


def test_a_client_on_the_daemons_host_uses_the_local_stream_with_the_same_bytes(cluster):
    c = cluster(n=2, chunk_size=CHUNK)
    ports = {_port(a) for a in c.addresses()}
    before = _tcp_connections_to(ports)
    with Client(hosts_file=c.hosts_file) as gk:
        files = _exercise(gk, "local")
        t = _transport(gk)
        for i in range(2):
            # the kernel's word: this socket's peer is daemon i itself
            sock = t.stream_socket(i)
            assert sock is not None, f"member {i} is not on its local stream"
            assert sock.getpeername() == local_stream.local_name(gk.record.uuid, i, c.address(i))
            assert _peer_pid(sock) == c.daemons[i].pid
        assert _tcp_connections_to(ports) - before == set(), "the client opened TCP connections to local daemons"
        # and the daemons' word: one local connection each (this client's)
        assert [s["local_connections"] for s in gk.status()] == [1, 1]
        _check(gk, files, "local")
        # the other path reads the same bytes, and writes what this one reads
        with Client(hosts_file=c.hosts_file, local_stream=False) as tcp:
            _check(tcp, files, "local")
            other = _exercise(tcp, "tcp")
            assert not any(_transport_uses_stream(tcp))
        _check(gk, other, "tcp")
        for path in [*files, *other]:
            gk.unlink(path)
        gk.rmdir("/local")
        gk.rmdir("/tcp")
        assert gk.listdir("/") == []
        with pytest.raises(FileNotFoundError):
            gk.stat("/local/small")


def test_a_reply_of_more_frames_than_one_sendmsg_takes_arrives_whole(cluster):
    """A read of 1,500 chunks from one daemon: a reply of 1,501 frames, more
    buffers than one sendmsg takes (Linux's UIO_MAXIOV, 1024), both ways."""
    c = cluster(n=1, chunk_size=4096)
    data = os.urandom(1500 * 4096)
    with Client(hosts_file=c.hosts_file, timeout=5) as gk:
        fd = gk.open("/many", os.O_CREAT | os.O_RDWR)
        assert gk.pwrite(fd, data, 0) == len(data)
        assert gk.pread(fd, len(data), 0) == data
        gk.close(fd)
        assert _transport_uses_stream(gk) == [True]


def _transport_uses_stream(gk: Client) -> list[bool]:
    t = gk._rpc.transport
    if not isinstance(t, LocalFirstTransport):
        return [False] * gk.n
    return [t.uses_stream(i) for i in range(gk.n)]


def test_local_stream_off_in_the_environment_means_tcp(cluster, monkeypatch):
    c = cluster(n=1)
    ports = {_port(a) for a in c.addresses()}
    before = _tcp_connections_to(ports)
    monkeypatch.setenv("LIBGKFS_LOCAL_STREAM", "off")
    with Client(hosts_file=c.hosts_file) as gk:
        gk.write_file("/f", b"over tcp")
        assert gk.read_file("/f") == b"over tcp"
        assert _transport_uses_stream(gk) == [False]
        assert len(_tcp_connections_to(ports) - before) == 1
        assert [s["local_connections"] for s in gk.status()] == [0]
    monkeypatch.setenv("LIBGKFS_LOCAL_STREAM", "sometimes")
    with pytest.raises(OSError) as exc:
        Client(hosts_file=c.hosts_file)
    assert exc.value.errno == errno.EINVAL and "LIBGKFS_LOCAL_STREAM" in str(exc.value)
    monkeypatch.setenv("LIBGKFS_LOCAL_STREAM", "on")
    with Client(hosts_file=c.hosts_file) as gk:
        assert gk.read_file("/f") == b"over tcp"
        assert _transport_uses_stream(gk) == [True]


def test_a_key_issued_to_another_user_keeps_to_tcp(cluster, tmp_path, monkeypatch):
    """Local-stream requests run as the owner: a client of the owner's uid
    holding a key issued to another user must keep that user's rights."""
    c = cluster(n=1)
    with Client(hosts_file=c.hosts_file) as gk:
        gk.write_file("/private", b"owner only")
        gk.chmod("/private", 0o600)
    keyfile = tmp_path / "nobody.key"
    security.issue_key(c.hosts_file, "nobody", keyfile)
    os.chown(keyfile, os.geteuid(), os.getegid())  # used by this (root's) process, standing for nobody
    monkeypatch.setenv(security.ENV_KEY_FILE, str(keyfile))
    with Client(hosts_file=c.hosts_file) as other:
        assert _transport_uses_stream(other) == [False]
        with pytest.raises(PermissionError):
            other.read_file("/private")
    # the owner's own key, from any file, is the owner
    own = tmp_path / "own.key"
    shutil.copy(security.keys_dir(c.hosts_file) / security.CLIENT_KEY, own)
    monkeypatch.setenv(security.ENV_KEY_FILE, str(own))
    with Client(hosts_file=c.hosts_file) as gk:
        assert gk.read_file("/private") == b"owner only"
        assert _transport_uses_stream(gk) == [True]


def _outcomes_across_a_kill(c, local: bool, restart) -> list:
    """What a client sees while member 0 is killed with -9 and restarted by
    ``restart``: per step, the data read or the errno."""
    out = []
    with Client(hosts_file=c.hosts_file, timeout=1.0, local_stream=local) as gk:
        data = os.urandom(300_000)
        gk.write_file("/kept", data)
        gk.stat("/kept")
        assert _transport_uses_stream(gk)[0] is local
        c.kill(0)
        for op in (lambda: gk.stat("/kept").st_size, lambda: _read(gk, "/kept", len(data)) == data):
            try:
                out.append(op())
            except OSError as exc:
                out.append(errno.errorcode[exc.errno])
        restart()
        # the running client finds the member again (same or new address)
        out.append(gk.stat("/kept").st_size)
        out.append(_read(gk, "/kept", len(data)) == data)
        gk.write_file("/after", b"x" * 100_000)
        out.append(_read(gk, "/after", 100_000) == b"x" * 100_000)
        out.append(_transport_uses_stream(gk)[0] is local)
        gk.unlink("/kept")
        gk.unlink("/after")
    return out


@pytest.mark.parametrize("same_address", [False, True], ids=["new-address", "same-address"])
def test_a_daemon_killed_and_restarted_ends_as_over_tcp(cluster, same_address):
    listen = f"tcp://127.0.0.1:{_free_port()}" if same_address else "tcp://127.0.0.1:*"
    c = cluster(n=1, chunk_size=CHUNK, listen=listen)
    seen = {}
    for local in (True, False):
        old = c.address(0)
        seen[local] = _outcomes_across_a_kill(c, local, lambda: c.restart(0))
        assert (c.address(0) == old) is same_address
    # a dead member: EIO (never other bytes), then everything again, on the same path as before
    assert seen[True] == seen[False] == ["EIO", "EIO", 300_000, True, True, True], seen


@pytest.mark.parametrize("local", [True, False], ids=["local", "tcp"])
def test_a_member_restarted_at_its_address_while_idle_takes_the_next_call(cluster, local):
    """The stream to the dead process fails on the next send: that request
    (here a create, which is never sent twice) goes over TCP at once, as a
    DEALER delivers it after reconnecting (the tcp case), instead of being lost."""
    c = cluster(n=1, listen=f"tcp://127.0.0.1:{_free_port()}")
    with Client(hosts_file=c.hosts_file, timeout=3.0, local_stream=local) as gk:
        gk.write_file("/f", b"x")
        assert _transport_uses_stream(gk) == [local]
        c.kill(0)
        c.restart(0)
        t0 = time.monotonic()
        gk.close(gk.open("/new", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        assert time.monotonic() - t0 < 1.0
        assert gk.stat("/new").st_size == 0


def test_a_stopped_daemon_gives_a_timeout_error_not_a_hang(cluster):
    c = cluster(n=1, chunk_size=CHUNK)
    timeout = 1.5
    with Client(hosts_file=c.hosts_file, timeout=timeout) as gk:
        gk.write_file("/f", b"before")
        fd = gk.open("/big", os.O_CREAT | os.O_WRONLY)
        assert _transport_uses_stream(gk) == [True]
        c.daemons[0].send_signal(signal.SIGSTOP)
        try:
            for what, op in (("stat", lambda: gk.stat("/f")),
                             # far more than the kernel holds for a stream: the send must not wait
                             ("write", lambda: gk.pwrite(fd, os.urandom(24 * 1024 * 1024), 0))):
                t0 = time.monotonic()
                with pytest.raises(OSError) as exc:
                    op()
                took = time.monotonic() - t0
                assert exc.value.errno == errno.EIO, (what, exc.value)
                assert took < timeout + 1.0, (what, took)  # the call's timeout, as over TCP
        finally:
            c.daemons[0].send_signal(signal.SIGCONT)
        assert _read(gk, "/f", 6) == b"before"
        gk.pwrite(fd, b"after", 0)
        gk.close(fd)
        assert _read(gk, "/big", 5) == b"after"


def _read(gk: Client, path: str, n: int) -> bytes:
    """``path``'s first n + 1 bytes (read_file asks one daemon for 64 MiB at
    once: on one daemon with 64 KiB chunks that is the 1,025-frame reply
    test_a_reply_of_more_frames... is about, not what these tests check)."""
    fd = gk.open(path, os.O_RDONLY)
    try:
        return gk.pread(fd, n + 1, 0)
    finally:
        gk.close(fd)


def test_a_forked_child_uses_a_connection_of_its_own(cluster):
    c = cluster(n=1, chunk_size=CHUNK)
    with Client(hosts_file=c.hosts_file) as gk:
        gk.write_file("/parent", b"p" * 1000)
        parent_sock = _transport(gk).stream_socket(0)
        assert parent_sock is not None
        parent_fd, parent_ino = parent_sock.fileno(), os.fstat(parent_sock.fileno()).st_ino
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: report through the pipe, never return into pytest
            code = 1
            try:
                os.close(r)
                try:  # the parent's descriptor is closed here: nothing of ours can write into its stream
                    inherited = os.fstat(parent_fd).st_ino == parent_ino
                except OSError:
                    inherited = False
                ok = True
                for i in range(200):  # while the parent makes its calls below
                    gk.write_file(f"/child-{i % 5}", bytes([i % 251]) * 5000)
                    ok = ok and _read(gk, f"/child-{i % 5}", 5000) == bytes([i % 251]) * 5000
                sock = _transport(gk).stream_socket(0)
                report = {"inherited": inherited, "ok": ok,
                          "ino": os.fstat(sock.fileno()).st_ino if sock else None,
                          "peer": _peer_pid(sock) if sock else None}
                os.write(w, json.dumps(report).encode())
                code = 0
            finally:
                os._exit(code)
        os.close(w)
        ok = True
        for i in range(200):
            gk.write_file("/parent", bytes([i % 251]) * 7000)
            ok = ok and _read(gk, "/parent", 7000) == bytes([i % 251]) * 7000
        _, status = os.waitpid(pid, 0)
        report = json.loads(os.read(r, 4096) or b"{}")
        os.close(r)
        assert status == 0 and report, report
        assert report["inherited"] is False and report["ok"] is True, report
        # the child's stream is a connection of its own to the same daemon
        assert report["ino"] not in (None, parent_ino) and report["peer"] == c.daemons[0].pid, report
        assert ok
        # the parent's stream is the one it had, untouched by the child
        assert _transport(gk).stream_socket(0) is parent_sock
        assert _read(gk, "/parent", 7000) == bytes([199 % 251]) * 7000


# ------------------------------------------------ a name taken by another user

# Holds the name until its stdin closes; then says what it got.
_SQUATTER = r"""
import select, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(bytes.fromhex(sys.argv[1]))
s.listen(16)
print("bound", flush=True)
conns, got, accepted = [], 0, 0
while True:
    ready = select.select([s, sys.stdin, *conns], [], [], 5)[0]
    if sys.stdin in ready:
        break
    for r in ready:
        if r is s:
            conns.append(s.accept()[0])
            accepted += 1
        else:
            data = r.recv(65536)
            got += len(data)
            if not data:
                conns.remove(r)
                r.close()
print(f"accepted {accepted} open {len(conns)} received {got}", flush=True)
"""


@pytest.fixture
def other_user():
    """An unprivileged local user (created and removed here; needs root)."""
    if os.geteuid() != 0:
        pytest.fail("this test creates a local user: run it as root (CI does)")
    for tool in ("useradd", "userdel", "setpriv"):
        if not shutil.which(tool) and not os.path.exists(f"/usr/sbin/{tool}"):
            pytest.fail(f"{tool} missing: deploy/setup-debian.sh installs it")
    name = f"gkfsls{os.getpid() % 100000}"
    subprocess.run(["useradd", "--no-create-home", "--user-group", "--shell", "/usr/sbin/nologin", name],
                   check=True, capture_output=True)
    home = Path(tempfile.mkdtemp(prefix="gkfs-squatter-", dir="/tmp"))
    pw = pwd.getpwnam(name)
    os.chown(home, pw.pw_uid, pw.pw_gid)
    try:
        yield pw, home
    finally:
        subprocess.run(["pkill", "-KILL", "-u", name], capture_output=True)  # only that user's processes
        subprocess.run(["userdel", name], capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


def test_a_name_bound_first_by_another_user_is_never_talked_to(cluster, other_user):
    pw, home = other_user
    c = cluster(n=1, chunk_size=CHUNK, listen=f"tcp://127.0.0.1:{_free_port()}")
    with Client(hosts_file=c.hosts_file) as gk:
        gk.write_file("/f", b"secret data")
        name = local_stream.local_name(gk.record.uuid, 0, c.address(0))
    c.terminate(0)
    script = home / "squat.py"
    script.write_text(_SQUATTER)
    os.chown(script, pw.pw_uid, pw.pw_gid)
    squatter = subprocess.Popen(["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--clear-groups", "--",
                                 "/usr/bin/python3", str(script), name.hex()],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=str(home))
    try:
        assert squatter.stdout.readline() == b"bound\n", squatter.stderr.read()
        c.restart(0)  # same address, so the same name: the other user's already
        with Client(hosts_file=c.hosts_file) as gk:
            for _ in range(4):
                assert gk.read_file("/f") == b"secret data"
                gk.write_file("/g", b"more secret data")
                time.sleep(0.4)  # past the once-a-second retry of a member on TCP
            assert _transport_uses_stream(gk) == [False]
        out, err = squatter.communicate(b"", timeout=30)
    finally:
        if squatter.poll() is None:
            squatter.kill()
            squatter.wait()
    # The client connected once (the name answered; another user's name is
    # not tried again every second), sent nothing, and closed at once.
    accepted, still_open, received = map(int, out.decode().split()[1::2])
    assert accepted == 1 and still_open == 0 and received == 0, (out, err)
