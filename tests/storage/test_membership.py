"""Fixed membership (issue 7): placement depends on the cluster record made
at creation, never on which daemons are listed now.  A member that is down
or gone makes the calls that need it fail with EIO (named), never other
bytes, never ENOENT; it comes back on its own root dir and running clients
find it again."""
from __future__ import annotations

import errno
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from gkfs_client import distribution, hostsfile
from gkfs_client.client import Client

CHUNK = 64 * 1024


def ctl(*args: str, env: dict, timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run(["gkfs-ctl", *args], env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def ctl_cluster(tmp_path):
    """`gkfs-ctl cluster start -n 3` in tmp_path; every daemon killed at the end."""
    env = dict(os.environ, LIBGKFS_HOSTS_FILE=str(tmp_path / "hosts"), COLUMNS="200")
    env.pop("XDG_RUNTIME_DIR", None)
    r = ctl("cluster", "start", "-n", "3", "--rootdir", str(tmp_path / "d"), "--chunk-size", str(CHUNK), env=env)
    assert r.returncode == 0, r.stderr
    pids = {h.pid for h in hostsfile.read_hosts(tmp_path / "hosts")}
    extra: list[subprocess.Popen] = []
    yield env, extra
    for p in extra:
        if p.poll() is None:
            p.kill()
            p.wait()
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _member(hosts: Path, i: int) -> hostsfile.Host:
    return next(h for h in hostsfile.read_hosts(hosts) if h.id == i)


def _wait_gone(pid: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while hostsfile.pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not hostsfile.pid_alive(pid)


def test_member_that_left_gives_eio_never_other_bytes(ctl_cluster, tmp_path):
    env, extra = ctl_cluster
    hosts = Path(env["LIBGKFS_HOSTS_FILE"])
    big = os.urandom(20 * 1024 * 1024)
    small = {f"/s{i}": os.urandom(100 + i) for i in range(40)}
    with Client(hosts) as gk:
        gk.write_file("/big", big)
        for p, d in small.items():
            gk.write_file(p, d)
    # Member 2 stops in an orderly way: its entry leaves the hosts file.
    victim = _member(hosts, 2)
    os.kill(victim.pid, signal.SIGTERM)
    _wait_gone(victim.pid)
    r = ctl("status", "--timeout", "2", env=env)
    assert r.returncode != 0, r.stdout
    assert "2/3" in r.stdout and "member 2" in r.stderr
    on_victim = [p for p in small if distribution.metadata_owner(p, 3) == 2]
    assert on_victim  # 40 paths over 3 members
    with Client(hosts, timeout=2) as gk:
        for p, d in small.items():
            if p in on_victim:
                with pytest.raises(OSError) as exc:
                    gk.stat(p)
                assert exc.value.errno == errno.EIO and "member 2" in str(exc.value), exc.value
            else:
                # Members 0 and 1 still answer for their own records; the
                # data needs member 2 where a chunk lives there.
                assert gk.stat(p).st_size == len(d)
                try:
                    assert gk.read_file(p) == d
                except OSError as exc:
                    assert exc.errno == errno.EIO, exc
        with pytest.raises(OSError) as exc:
            gk.read_file("/big")
        assert exc.value.errno == errno.EIO
        # Nothing written in the gap lands on another member in its place.
        gap = next(f"/gap{i}" for i in range(100) if distribution.metadata_owner(f"/gap{i}", 3) == 2)
        with pytest.raises(OSError) as exc:
            gk.write_file(gap, b"x")
        assert exc.value.errno == errno.EIO
    # The member comes back on its root dir: every byte is as it was.
    p = subprocess.Popen(["gkfs-daemon", "--rootdir", str(tmp_path / "d" / "daemon-2"), "--hosts-file",
                          str(hosts), "--listen", "tcp://127.0.0.1:0", "--chunk-size", str(CHUNK)],
                         stderr=open(tmp_path / "restart.log", "wb"))
    extra.append(p)
    deadline = time.monotonic() + 30
    while not any(h.pid == p.pid for h in hostsfile.read_membership(hosts).listed()):
        assert p.poll() is None, (tmp_path / "restart.log").read_text()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert _member(hosts, 2).pid == p.pid  # its own slot, from its root dir
    with Client(hosts) as gk:
        assert gk.read_file("/big") == big
        assert all(gk.read_file(q) == d for q, d in small.items())
    assert ctl("status", env=env).returncode == 0


def test_restart_on_a_zombie_pid_and_running_client_finds_it(cluster):
    """kill -9 then restart at once (the dead pid still a zombie): the restart
    is accepted, binds a new port, and a client that was already running
    reaches it within its timeout."""
    c = cluster(n=3, chunk_size=CHUNK)
    data = os.urandom(30 * CHUNK)
    gk = Client(hosts_file=c.hosts_file, timeout=10)
    try:
        gk.write_file("/f", data)
        old = c.host(1)
        p = c.daemons[1]
        p.send_signal(signal.SIGKILL)
        deadline = time.monotonic() + 10
        while not Path(f"/proc/{p.pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z":
            assert time.monotonic() < deadline
            time.sleep(0.01)
        try:
            c._spawn(1)  # not reaped yet: still a zombie
            c.wait_ready([1])
        finally:
            p.wait()
        assert c.host(1).address != old.address
        t = time.monotonic()
        assert gk.read_file("/f") == data
        gk.write_file("/g", data[:5 * CHUNK])
        assert gk.read_file("/g") == data[:5 * CHUNK]
        assert time.monotonic() - t < 10
    finally:
        gk.disconnect()


def test_rootdir_of_another_cluster_or_size_is_refused(cluster, tmp_path):
    c = cluster(n=2, chunk_size=CHUNK)
    assert c.stop() == [0, 0]
    base = ["gkfs-daemon", "--rootdir", str(c.rootdirs[0]), "--chunk-size", str(CHUNK)]

    def run(*args):
        return subprocess.run([*base, *args], capture_output=True, text=True, timeout=30)

    hostsfile.create_cluster(tmp_path / "new-hosts", 2, CHUNK)  # another cluster of the same shape
    r = run("--hosts-file", str(tmp_path / "new-hosts"))
    assert r.returncode == 1 and "belongs to cluster" in r.stderr, r.stderr
    r = run("--hosts-file", str(c.hosts_file), "--members", "3")
    assert r.returncode == 1 and "2-member cluster" in r.stderr, r.stderr
    r = run("--hosts-file", str(c.hosts_file), "--id", "1")
    assert r.returncode == 1 and "belongs to daemon id 0" in r.stderr, r.stderr
    r = subprocess.run(["gkfs-daemon", "--rootdir", str(tmp_path / "fresh"), "--hosts-file", str(c.hosts_file),
                        "--id", "2", "--chunk-size", str(CHUNK)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "outside the 2-member cluster" in r.stderr, r.stderr
    # Nothing registered by the refused ones.
    assert hostsfile.read_membership(c.hosts_file).slots == (None, None)


def test_placement_uses_the_record_not_the_listed_members(cluster):
    """With member 1 gone, a new client still sends each path to the same
    member as before (the owner is hash mod N over the record's N)."""
    c = cluster(n=3, chunk_size=CHUNK)
    with Client(hosts_file=c.hosts_file) as gk:
        for i in range(30):
            gk.write_file(f"/p{i}", b"%d" % i)
    assert c.terminate(1) == 0
    with Client(hosts_file=c.hosts_file, timeout=2) as gk:
        assert gk.n == 3
        for i in range(30):
            path = f"/p{i}"
            if distribution.metadata_owner(path, 3) == 1:
                with pytest.raises(OSError) as exc:
                    gk.stat(path)
                assert exc.value.errno == errno.EIO
            else:
                assert gk.stat(path).st_size == len(b"%d" % i)
