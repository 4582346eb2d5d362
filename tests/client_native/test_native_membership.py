"""Fixed membership through the preload client (issue 7): a member that is
gone gives EIO to an unmodified program (never a wrong sha256 with exit 0,
never ENOENT for a listed file), and a member restarted on its root dir is
found again by a process that was already running."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from gkfs_client import distribution, hostsfile
from gkfs_client.client import Client

QEMU = "/usr/bin/qemu-riscv64-static"
MOUNT = "/gkfs-member-test"
CHUNK = 64 * 1024


@pytest.fixture
def own_cluster(tmp_path):
    hosts = tmp_path / "hosts"
    base = ["gkfs-ctl", "--hosts-file", str(hosts)]
    cp = subprocess.run([*base, "cluster", "start", "-n", "3", "--rootdir", str(tmp_path / "root"),
                         "--chunk-size", str(CHUNK), "--mount", MOUNT], capture_output=True, text=True, timeout=120)
    assert cp.returncode == 0, cp.stderr
    started = [h.pid for h in hostsfile.read_hosts(hosts)]
    extra: list[subprocess.Popen] = []
    yield hosts, extra
    subprocess.run([*base, "cluster", "stop"], capture_output=True, timeout=120)
    for p in extra:
        if p.poll() is None:
            p.kill()
        p.wait()
    for pid in started:
        if hostsfile.pid_alive(pid):
            os.kill(pid, signal.SIGKILL)


def _env(sysroot: Path, preload: Path, hosts: Path, timeout_ms: int) -> dict:
    return {"PATH": f"{sysroot}/usr/bin:{sysroot}/usr/sbin", "QEMU_LD_PREFIX": str(sysroot), "LC_ALL": "C",
            "LIBGKFS_HOSTS_FILE": str(hosts), "LIBGKFS_RPC_TIMEOUT_MS": str(timeout_ms),
            "LIBGKFS_LOG": "errors", "LD_PRELOAD": str(preload)}


def _stop_member(hosts: Path, i: int, sig=signal.SIGTERM) -> hostsfile.Host:
    h = next(h for h in hostsfile.read_hosts(hosts) if h.id == i)
    os.kill(h.pid, sig)
    deadline = time.monotonic() + 30
    while hostsfile.pid_alive(h.pid):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return h


def _restart_member(hosts: Path, i: int, tmp_path: Path) -> subprocess.Popen:
    p = subprocess.Popen(["gkfs-daemon", "--rootdir", str(tmp_path / "root" / f"daemon-{i}"), "--hosts-file",
                          str(hosts), "--listen", "tcp://127.0.0.1:0", "--chunk-size", str(CHUNK), "--mount",
                          MOUNT], stdout=subprocess.DEVNULL, stderr=open(tmp_path / f"restart-{i}.log", "wb"))
    deadline = time.monotonic() + 30
    while not any(h.pid == p.pid for h in hostsfile.read_membership(hosts).listed()):
        assert p.poll() is None, (tmp_path / f"restart-{i}.log").read_text()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return p


def test_gone_member_gives_eio_to_sha256sum_and_stat(own_cluster, sysroot, preload):
    hosts, _ = own_cluster
    data = os.urandom(2 * 1024 * 1024)  # 32 chunks: every member holds some
    names = [f"/s{i}" for i in range(30)]
    with Client(hosts) as gk:
        gk.write_file("/big", data)
        for n in names:
            gk.write_file(n, b"small")
    _stop_member(hosts, 2)  # orderly: its entry leaves the hosts file
    env = _env(sysroot, preload, hosts, 1500)
    cp = subprocess.run([QEMU, f"{sysroot}/usr/bin/sha256sum", f"{MOUNT}/big"], env=env, capture_output=True, timeout=120)
    err = cp.stderr.decode(errors="replace")
    assert cp.returncode != 0 and "Input/output error" in err, (cp.returncode, cp.stdout, err)
    victim = next(n for n in names if distribution.metadata_owner(n, 3) == 2)
    other = next(n for n in names if distribution.metadata_owner(n, 3) != 2)
    cp = subprocess.run([QEMU, f"{sysroot}/usr/bin/stat", "-c", "%s", f"{MOUNT}{victim}", f"{MOUNT}{other}"], env=env,
                        capture_output=True, timeout=120)
    err = cp.stderr.decode(errors="replace")
    assert cp.returncode == 1 and "Input/output error" in err and "No such file" not in err, err
    assert cp.stdout.strip() == b"5"  # the file on a live member still answers


@pytest.mark.parametrize("transport", ["local", "tcp"])
def test_running_process_finds_restarted_member(own_cluster, sysroot, preload, tmp_path, transport):
    """Over each daemon's local stream (the default: the killed member's
    stream breaks, the process connects to the new one's at its new
    address) and over ZeroMQ/TCP (LIBGKFS_LOCAL_STREAM=off)."""
    hosts, extra = own_cluster
    lines = b"".join(b"line %06d\n" % i for i in range(20000))  # 220 KB, 4 chunks
    with Client(hosts) as gk:
        gk.write_file("/lines", lines)
        key = gk.stat_record("/lines")["data_key"]
    victim = distribution.chunk_owner(key, 0, 3)
    fifo, marker = tmp_path / "go", tmp_path / "first"
    os.mkfifo(fifo)
    script = (f"exec 3< {MOUNT}/lines; read -r a <&3; echo \"$a\" > {marker}; read -r x < {fifo}; "
              f"read -r b <&3; echo \"$a|$b\"")
    env = _env(sysroot, preload, hosts, 15000)
    env["LIBGKFS_LOG"] = "debug"   # says when a local stream connects
    if transport == "tcp":
        env["LIBGKFS_LOCAL_STREAM"] = "off"
    p = subprocess.Popen([QEMU, f"{sysroot}/usr/bin/dash", "-c", script],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not (marker.exists() and marker.read_text()):
            assert p.poll() is None, p.stderr.read().decode(errors="replace")
            assert time.monotonic() < deadline
            time.sleep(0.05)
        old = _stop_member(hosts, victim, signal.SIGKILL)  # its entry stays, stale
        extra.append(_restart_member(hosts, victim, tmp_path))
        assert next(h for h in hostsfile.read_hosts(hosts) if h.id == victim).address != old.address
        with open(fifo, "w") as f:
            f.write("go\n")
        out, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, err.decode(errors="replace")
    assert out == b"line 000000|line 000001\n", (out, err)
    # the victim's stream before the kill and the new process's after it
    connects = err.decode(errors="replace").count(f"member {victim}: local stream connected")
    assert connects == (2 if transport == "local" else 0), err.decode(errors="replace")
