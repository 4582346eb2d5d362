"""The preload's client over the local stream (docs/protocol.md 1.1): a
riscv64 program under qemu, real daemons on this host.  The program
(programs/localstream.c) writes and reads back files, forks a child that
does the same, and lists the peers of the sockets among its descriptors:
that tells which transport the client used, with nothing to race (the
client's connections stay open while the process runs).  The data is
checked on the daemons with the Python client.

qemu-user runs the program, so the client's system calls are emulated:
the socket calls, SO_PEERCRED and ppoll are qemu's translations of them,
as on real riscv64 hardware they would be the kernel's own."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from gkfs_client import hostsfile, local_stream
from gkfs_client.client import Client

QEMU = "/usr/bin/qemu-riscv64-static"
MiB = 1024 * 1024


def pattern(n: int, seed: int) -> bytes:
    return bytes((i * 131 + i // 65536 + seed) & 0xFF for i in range(n))


def expected_names(hosts: Path) -> dict[str, int]:
    """hex of each member's listener name -> member id"""
    rec = hostsfile.read_record(hosts)
    return {local_stream.local_name(rec.uuid, h.id, h.address).hex(): h.id
            for h in hostsfile.read_hosts(hosts)}


def peers(out: str, who: str, kind: str) -> list[str]:
    return [ln.split()[3] for ln in out.splitlines() if ln.startswith(f"{who} {kind} ")]


def run_program(prog, run, directory: str, sizes, env=None):
    cp = run([prog, directory, *map(str, sizes)], extra_env=env)
    out = cp.stdout.decode(errors="replace")
    assert cp.returncode == 0 and out.rstrip().endswith("done"), out + cp.stderr.decode(errors="replace")
    return out


SIZES = [1, 4097, 200_000, 3 * MiB + 17]   # 3 MiB: 49 chunks of 64 KiB on all 3 members


def test_program_uses_local_stream_and_reads_back(gk_cluster, rv_program, run_rv):
    c = gk_cluster.client
    c.mkdir("/ls")
    out = run_program(rv_program("localstream"), run_rv, f"{gk_cluster.mount}/ls", SIZES)
    names = expected_names(gk_cluster.hosts_file)
    # one stream to each member, from the parent and (its own) from the child:
    # a child still holding its parent's streams would list six
    assert sorted(peers(out, "parent", "unix")) == sorted(names), out
    assert sorted(peers(out, "child", "unix")) == sorted(names), out
    # and no ZeroMQ connection at all (libzmq not even started a socket)
    assert peers(out, "parent", "tcp") == [] and peers(out, "child", "tcp") == [], out
    for n in SIZES:
        assert c.read_file(f"/ls/f{n}") == pattern(n, 3), n
        assert c.read_file(f"/ls/c{n}") == pattern(n, 9), n


def test_local_stream_off_uses_tcp(gk_cluster, rv_program, run_rv):
    c = gk_cluster.client
    c.mkdir("/ls-off")
    out = run_program(rv_program("localstream"), run_rv, f"{gk_cluster.mount}/ls-off", SIZES,
                      env={"LIBGKFS_LOCAL_STREAM": "off"})
    ports = {int(h.address.rsplit(":", 1)[1]) for h in hostsfile.read_hosts(gk_cluster.hosts_file)}
    assert peers(out, "parent", "unix") == [] and peers(out, "child", "unix") == [], out
    assert {int(p) for p in peers(out, "parent", "tcp")} == ports, out
    assert ports <= {int(p) for p in peers(out, "child", "tcp")}, out
    for n in SIZES:
        assert c.read_file(f"/ls-off/f{n}") == pattern(n, 3), n


def start_one_member(tmp_path: Path, chunk_size: int) -> Path:
    hosts = tmp_path / "hosts"
    cp = subprocess.run(["gkfs-ctl", "--hosts-file", str(hosts), "cluster", "start", "-n", "1",
                         "--rootdir", str(tmp_path / "root"), "--chunk-size", str(chunk_size),
                         "--mount", "/gkfs-ls1"], capture_output=True, text=True, timeout=120)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    return hosts


@pytest.fixture
def one_member(tmp_path):
    """One daemon: every request of a call goes to it, on one stream."""
    started: list[Path] = []

    def start(chunk_size: int) -> Path:
        started.append(start_one_member(tmp_path, chunk_size))
        return started[-1]
    yield start
    for hosts in started:
        pid = hostsfile.read_hosts(hosts)[0].pid
        os.kill(pid, signal.SIGCONT)
        subprocess.run(["gkfs-ctl", "--hosts-file", str(hosts), "cluster", "stop"],
                       capture_output=True, timeout=120)


def _env(sysroot: Path, preload: Path, hosts: Path, timeout_ms: int) -> dict:
    return {"PATH": f"{sysroot}/usr/bin", "QEMU_LD_PREFIX": str(sysroot), "LC_ALL": "C",
            "LIBGKFS_HOSTS_FILE": str(hosts), "LIBGKFS_RPC_TIMEOUT_MS": str(timeout_ms),
            "LIBGKFS_LOG": "errors", "LD_PRELOAD": str(preload)}


@pytest.mark.parametrize("chunk_size,size,requests", [
    (64 * 1024, 40 * MiB + 1, 3),   # 16 + 16 + 8 MiB: three requests in flight on one stream
    (4096, 20 * MiB + 5, 2),        # 4096 + 1025 chunks: a message of 4097 frames, the most there is
])
def test_calls_of_several_requests_on_one_stream(one_member, sysroot, preload, rv_program,
                                                 chunk_size, size, requests):
    hosts = one_member(chunk_size)
    with Client(hosts) as gk:
        gk.mkdir("/d")
        before = gk.op_totals()
    cp = subprocess.run([QEMU, str(rv_program("localstream")), "/gkfs-ls1/d", str(size)],
                        env=_env(sysroot, preload, hosts, 20000), capture_output=True, timeout=600)
    out = cp.stdout.decode(errors="replace")
    assert cp.returncode == 0 and out.rstrip().endswith("done"), out + cp.stderr.decode(errors="replace")
    assert sorted(peers(out, "parent", "unix")) == sorted(expected_names(hosts)), out
    with Client(hosts) as gk:
        after = gk.op_totals()
        assert gk.read_file("/d/f%d" % size) == pattern(size, 3)
        assert gk.read_file("/d/c%d" % size) == pattern(size, 9)
    # the program's 4 writes and 4 reads (parent twice, child twice)
    assert after["write_chunks"] - before.get("write_chunks", 0) == 4 * requests
    assert after["read_chunks"] - before.get("read_chunks", 0) == 4 * requests


def test_stopped_daemon_gives_eio_within_timeout(one_member, sysroot, preload):
    """A daemon that stops answering (SIGSTOP: its listener still accepts,
    so the stream connects and the request is written): EIO after the
    bounded wait, never a hang."""
    hosts = one_member(64 * 1024)
    with Client(hosts) as gk:
        gk.write_file("/x", b"data\n")
    pid = hostsfile.read_hosts(hosts)[0].pid
    os.kill(pid, signal.SIGSTOP)
    t0 = time.monotonic()
    cp = subprocess.run([QEMU, f"{sysroot}/usr/bin/cat", "/gkfs-ls1/x"],
                        env=_env(sysroot, preload, hosts, 1500), capture_output=True, timeout=120)
    took = time.monotonic() - t0
    os.kill(pid, signal.SIGCONT)
    err = cp.stderr.decode(errors="replace")
    assert cp.returncode == 1 and "Input/output error" in err, (cp.returncode, cp.stdout, err)
    # the first-use handshake and the open each wait 1.5 s at most
    assert took < 15, f"EIO only after {took:.1f} s with a 1500 ms timeout"


SQUATTER = r"""
import os, select, socket, sys, time
name = bytes.fromhex(sys.argv[1])
ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
ls.bind(name)
ls.listen(16)
print("ready", os.geteuid(), flush=True)
conns, nconn, nbytes = [], 0, 0
end = time.monotonic() + 60
stopped = False
while not stopped and time.monotonic() < end:
    r, _, _ = select.select([sys.stdin, ls, *conns], [], [], 0.05)
    for s in r:
        if s is sys.stdin:
            stopped = not sys.stdin.read()   # the test closed it: stop
        elif s is ls:
            conns.append(ls.accept()[0])
            nconn += 1
        else:
            data = s.recv(65536)
            nbytes += len(data)
            if not data:
                conns.remove(s)
                s.close()
print("connections", nconn, "bytes", nbytes, flush=True)
"""


def test_stream_of_another_user_is_never_used(run_rv, sysroot, tmp_path):
    """Another user took a member's local name first (abstract names have
    no permissions): the client sees the listener's uid (SO_PEERCRED),
    closes without sending a byte, warns, and goes over TCP (here nothing
    answers there: EIO after the timeout)."""
    uuid, address = "0f0e0d0c-0b0a-4908-8706-050403020100", "tcp://127.0.0.1:9"
    hosts = tmp_path / "hosts"
    hosts.write_text(f"cluster {uuid} 1 65536 /gkfs-squat\n0 {address} 0 nowhere /gkfs-squat\n")
    name = local_stream.local_name(uuid, 0, address)
    sq = subprocess.Popen(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                           "python3", "-c", SQUATTER, name.hex()],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert sq.stdout.readline().split() == ["ready", "65534"], sq.stderr.read()
        cp = run_rv([f"{sysroot}/usr/bin/cat", "/gkfs-squat/x"],
                    extra_env={"LIBGKFS_HOSTS_FILE": str(hosts), "LIBGKFS_RPC_TIMEOUT_MS": "1500",
                               "LIBGKFS_SECURITY": "off"}, timeout=120)
        out, err = sq.communicate(timeout=30)   # closes its stdin: it stops
    finally:
        if sq.poll() is None:
            sq.kill()
            sq.wait()
    cerr = cp.stderr.decode(errors="replace")
    assert cp.returncode == 1 and "Input/output error" in cerr, cerr
    assert "held by uid 65534, not ours" in cerr, cerr
    assert out.startswith("connections"), (out, err)
    conns, nbytes = int(out.split()[1]), int(out.split()[3])
    assert conns >= 1 and nbytes == 0, (out, err)


def test_member_restarted_at_same_address_while_idle(tmp_path, sysroot, preload):
    """A member killed and started again at the same address while a
    process was idle: its stream is broken (the next send fails at once:
    EPIPE), so that call goes over TCP to the new daemon at once, and no
    call is lost or waits for a timeout."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    hosts, root = tmp_path / "hosts", tmp_path / "root"
    cmd = ["gkfs-daemon", "--rootdir", str(root), "--hosts-file", str(hosts), "--members", "1",
           "--listen", f"tcp://127.0.0.1:{port}", "--chunk-size", "65536", "--mount", "/gkfs-ls2"]

    def start() -> subprocess.Popen:
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "daemon.log", "ab"))
        deadline = time.monotonic() + 30
        while not (hosts.exists() and
                   any(h.pid == p.pid for h in hostsfile.read_membership(hosts).listed())):
            assert p.poll() is None, (tmp_path / "daemon.log").read_text()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        return p
    daemons = [start()]
    fifo, marker = tmp_path / "go", tmp_path / "first"
    os.mkfifo(fifo)
    env = _env(sysroot, preload, hosts, 15000)
    env["LIBGKFS_LOG"] = "info"
    script = f"echo a > /gkfs-ls2/f1; echo x > {marker}; read -r x < {fifo}; echo b > /gkfs-ls2/f2"
    p = subprocess.Popen([QEMU, f"{sysroot}/usr/bin/dash", "-c", script], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not (marker.exists() and marker.read_text()):
            assert p.poll() is None, p.stderr.read().decode(errors="replace")
            assert time.monotonic() < deadline
            time.sleep(0.05)
        daemons[0].kill()
        daemons[0].wait()
        daemons.append(start())
        t0 = time.monotonic()
        with open(fifo, "w") as f:
            f.write("go\n")
        out, err = p.communicate(timeout=120)
        took = time.monotonic() - t0
        with Client(hosts) as gk:
            files = (gk.read_file("/f1"), gk.read_file("/f2"))
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        for d in daemons:
            if d.poll() is None:
                d.terminate()
                d.wait(30)
    err = err.decode(errors="replace")
    assert p.returncode == 0, err
    assert "local stream to member 0: Broken pipe: over TCP" in err, err
    assert took < 5, f"the create after the restart took {took:.1f} s"
    assert files == (b"a\n", b"b\n")


def test_key_issued_to_another_user_keeps_to_tcp(gk_cluster, rv_program, run_rv, tmp_path):
    """Local-stream requests run as the owner (docs/protocol.md 1.1): a
    program of the owner's uid whose LIBGKFS_KEY_FILE is a key issued to
    another user acts as that user over TCP, never over the stream; the
    owner's own key read from another file is the owner's, and streams."""
    import shutil
    from gkfs_client import security
    c = gk_cluster.client
    c.mkdir("/ls-key")
    c.chmod("/ls-key", 0o777)
    issued = tmp_path / "nobody.key"
    security.issue_key(gk_cluster.hosts_file, "nobody", issued)
    os.chown(issued, os.geteuid(), os.getegid())  # read by this (root's) program, standing for nobody
    out = run_program(rv_program("localstream"), run_rv, f"{gk_cluster.mount}/ls-key", [1, 200_000],
                      env={"LIBGKFS_KEY_FILE": str(issued)})
    assert peers(out, "parent", "unix") == [] and peers(out, "child", "unix") == [], out
    assert peers(out, "parent", "tcp"), out
    assert c.stat("/ls-key/f1").st_uid == 65534  # created as nobody: that user's rights, not the owner's
    own = tmp_path / "own.key"
    shutil.copy(security.keys_dir(gk_cluster.hosts_file) / security.CLIENT_KEY, own)
    os.chmod(own, 0o600)
    c.mkdir("/ls-own")
    out = run_program(rv_program("localstream"), run_rv, f"{gk_cluster.mount}/ls-own", [1],
                      env={"LIBGKFS_KEY_FILE": str(own)})
    assert sorted(peers(out, "parent", "unix")) == sorted(expected_names(gk_cluster.hosts_file)), out
