"""A node's daemon with P member processes (gkfs-daemon --processes P):
each member owns records and chunks, a member killed with -9 gives EIO
naming it and is reported, start-up failure of one member fails the node
daemon naming it, stop stops all; `gkfs-ctl cluster start` with
--processes-per-node."""
from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gkfs_client import distribution, hostsfile
from gkfs_client.client import Client

CHUNK = 65536


def _ppid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])


def _alive(pid: int) -> bool:
    return hostsfile.pid_alive(pid)


def _wait_dead(pid: int) -> None:
    """Until a killed process has exited (a zombie or reaped): SIGKILL is
    delivered when the process next runs, which on a loaded machine is not
    at once."""
    deadline = time.monotonic() + 10
    while hostsfile.pid_alive(pid):
        assert time.monotonic() < deadline, f"pid {pid} still alive after SIGKILL"
        time.sleep(0.01)


class Node:
    """`gkfs-daemon --processes P` on loopback, its stderr in a file."""

    def __init__(self, tmp_path: Path, processes: str = "2", *extra: str, name: str = "node"):
        self.hosts = tmp_path / "hosts"
        self.rootdir = tmp_path / name
        self.log = tmp_path / f"{name}.log"
        self.argv = ["gkfs-daemon", "--processes", processes, "--rootdir", str(self.rootdir), "--hosts-file",
                     str(self.hosts), "--chunk-size", str(CHUNK), "--listen", "tcp://127.0.0.1:*", *extra]
        self.proc: subprocess.Popen | None = None

    def start(self, members: int = 2) -> list[hostsfile.Host]:
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=open(self.log, "ab"))
        deadline = time.monotonic() + 60
        while True:
            assert self.proc.poll() is None, self.text()
            try:
                mine = [h for h in hostsfile.read_membership(self.hosts).listed()
                        if _alive(h.pid) and _ppid(h.pid) == self.proc.pid]
            except (hostsfile.HostsFileError, OSError):
                mine = []
            if len(mine) == members and "node daemon up" in self.text():
                return sorted(mine)
            assert time.monotonic() < deadline, self.text()
            time.sleep(0.05)

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(30)


@pytest.fixture
def node(tmp_path):
    made: list[Node] = []

    def make(*args, **kw) -> Node:
        n = Node(tmp_path, *args, **kw)
        made.append(n)
        return n

    yield make
    for n in made:
        if n.proc is not None and n.proc.poll() is None:
            n.proc.kill()
            n.proc.wait()


def test_two_members_own_records_and_chunks_and_a_striped_file_reads_back(node):
    n = node("2")
    members = n.start()
    assert [h.id for h in members] == [0, 1]
    assert len({h.address for h in members}) == 2
    assert hostsfile.read_record(n.hosts).members == 2  # a new one-node cluster of P members
    assert all(_ppid(h.pid) == n.proc.pid for h in members)
    paths = [f"/f{i}" for i in range(20)]
    assert {distribution.metadata_owner(p, 2) for p in paths} == {0, 1}
    big = os.urandom(16 * CHUNK + 123)
    with Client(n.hosts) as fs:
        for p in paths:
            fs.write_file(p, p.encode())
        fs.write_file("/striped", big)
        assert fs.read_file("/striped") == big
        assert all(fs.read_file(p) == p.encode() for p in paths)
        status = fs.status()
    # Each member holds records of its own (its own LMDB) and chunks of the file.
    assert all(s["files"] > 0 for s in status), status
    for k in (0, 1):
        root = n.rootdir / f"proc-{k}"
        assert (root / "daemon.json").exists() and (root / "metadata").is_dir()
        assert any((root / "chunks").glob("*/*")), f"no chunk of /striped under {root}"
    assert n.stop() == 0
    assert not any(_alive(h.pid) for h in members)
    assert hostsfile.read_membership(n.hosts).slots == (None, None)
    # auto finds the root dir's process count again; another count is refused.
    r = subprocess.run([*n.argv[:2], "1", *n.argv[3:]], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "holds the data of 2 member processes" in r.stderr, r.stderr
    n2 = node("auto", name="node")
    assert [h.id for h in n2.start()] == [0, 1]
    with Client(n.hosts) as fs:
        assert fs.read_file("/striped") == big
    assert n2.stop() == 0


def test_kill_9_of_one_member_gives_eio_naming_it_and_is_reported(node, tmp_path):
    n = node("2")
    members = n.start()
    victim = members[1]
    on_victim = next(f"/v{i}" for i in range(100) if distribution.metadata_owner(f"/v{i}", 2) == victim.id)
    on_other = next(f"/o{i}" for i in range(100) if distribution.metadata_owner(f"/o{i}", 2) != victim.id)
    with Client(n.hosts, timeout=3) as fs:
        fs.write_file(on_other, b"kept")
        os.kill(victim.pid, signal.SIGKILL)
        _wait_dead(victim.pid)
        with pytest.raises(OSError) as exc:
            fs.write_file(on_victim, b"x")
        assert exc.value.errno == errno.EIO and f"member {victim.id}" in str(exc.value), exc.value
        assert fs.stat(on_other).st_size == 4  # the other member keeps serving its records
    env = dict(os.environ, LIBGKFS_HOSTS_FILE=str(n.hosts))
    st = subprocess.run(["gkfs-ctl", "status", "--timeout", "2"], env=env, capture_output=True, text=True,
                        timeout=60)
    assert st.returncode == 1 and f"member {victim.id} down" in st.stderr, st.stderr
    assert "1/2 members up on 1 node(s)" in st.stdout, st.stdout
    deadline = time.monotonic() + 10
    while "was killed by SIGKILL" not in n.text():
        assert time.monotonic() < deadline, n.text()
        time.sleep(0.05)
    assert f"member {victim.id} (pid {victim.pid}" in n.text()
    assert n.proc.poll() is None  # the node daemon keeps supervising the rest
    assert n.stop() == 1  # a member died: not a clean run
    assert not _alive(members[0].pid)


def test_start_up_failure_of_one_member_fails_the_node_daemon_naming_it(node, tmp_path):
    n = node("2", "--log-file", str(tmp_path / "logs" / "d.log"))
    (tmp_path / "logs").mkdir()
    bad = n.rootdir / "proc-1"
    bad.mkdir(parents=True, mode=0o700)
    (bad / "daemon.json").write_text('{"chunk_size": 4096, "id": 1}\n')  # written with another chunk size
    n.proc = subprocess.Popen(n.argv, stderr=open(n.log, "ab"))
    assert n.proc.wait(60) == 1
    text = n.text()
    assert "member process 1" in text and "during start-up" in text and str(bad) in text, text
    assert str(tmp_path / "logs" / "d-proc1.log") in text  # its log, named
    assert "chunk size 4096, not 65536" in (tmp_path / "logs" / "d-proc1.log").read_text()
    assert "the node daemon did not start" in text
    # Nothing registered (member 1 failed before it could, member 0 was stopped).
    assert not n.hosts.exists() or not hostsfile.read_membership(n.hosts).listed()


def test_cluster_start_processes_per_node_and_stop_stops_all(tmp_path):
    env = dict(os.environ, LIBGKFS_HOSTS_FILE=str(tmp_path / "hosts"))
    r = subprocess.run(["gkfs-ctl", "cluster", "start", "-n", "4", "--processes-per-node", "2", "--rootdir",
                        str(tmp_path / "d"), "--chunk-size", str(CHUNK)], env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    hosts = hostsfile.read_hosts(tmp_path / "hosts")
    assert [h.id for h in hosts] == [0, 1, 2, 3]
    supervisors = {_ppid(h.pid) for h in hosts}
    assert len(supervisors) == 2  # two node daemons of two members each
    assert {_ppid(h.pid) for h in hosts[:2]} != {_ppid(h.pid) for h in hosts[2:]}
    assert sorted(p.name for p in (tmp_path / "d").glob("daemon-?")) == [f"daemon-{i}" for i in range(4)]
    st = subprocess.run(["gkfs-ctl", "status"], env=env, capture_output=True, text=True, timeout=60)
    assert st.returncode == 0 and "4/4 members up on 1 node(s)" in st.stdout, st.stdout
    r = subprocess.run(["gkfs-ctl", "cluster", "stop"], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert not any(_alive(p) for p in [*supervisors, *(h.pid for h in hosts)])
    assert not hostsfile.read_membership(tmp_path / "hosts").listed()
    bad = subprocess.run(["gkfs-ctl", "cluster", "start", "-n", "3", "--processes-per-node", "2", "--rootdir",
                          str(tmp_path / "d"), "--hosts-file", str(tmp_path / "other")], env=env,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "not a multiple" in bad.stderr, bad.stderr
    assert not (tmp_path / "other").exists()  # refused before any cluster was made


def test_permission_checks_read_a_live_siblings_records_and_fail_with_eio_for_a_dead_one(node):
    """A member checks a parent directory held by another member of its own
    node daemon in that member's LMDB (no peer lookup); once that member is
    dead the check falls back to the peer lookup and fails with EIO naming it,
    never answering from the dead member's store."""
    n = node("2")
    members = n.start()
    # A directory on each member, files in it whose records live on the other.
    dirs = {distribution.metadata_owner(f"/d{i}", 2): f"/d{i}" for i in range(40)}
    assert set(dirs) == {0, 1}
    cross = {}
    with Client(n.hosts, timeout=20) as fs:
        for owner, d in dirs.items():
            fs.mkdir(d, 0o755)
            names = [f"{d}/f{i}" for i in range(40) if distribution.metadata_owner(f"{d}/f{i}", 2) != owner]
            cross[owner] = names
            for p in names[:5]:
                fs.write_file(p, b"x")
                assert fs.stat(p).st_size == 1
        ops = [s["ops"] for s in fs.status()]
        assert all(o.get("peer_stat", 0) == 0 for o in ops), ops  # no daemon asked another
        victim = members[1]
        os.kill(victim.pid, signal.SIGKILL)
        _wait_dead(victim.pid)
        # A file on member 0 in member 1's directory: the check needs member 1.
        # The daemon's EIO says which member did not answer, and the client
        # passes that on (an EIO without it leaves the user guessing).
        with pytest.raises(OSError) as exc:
            fs.write_file(cross[victim.id][10], b"y")
        assert exc.value.errno == errno.EIO, exc.value
        assert f"member {victim.id}" in str(exc.value), exc.value
    assert n.stop() == 1


def test_members_stop_in_order_when_their_node_daemon_is_killed(node):
    n = node("2")
    members = n.start()
    n.proc.send_signal(signal.SIGKILL)
    n.proc.wait(10)
    deadline = time.monotonic() + 30
    while any(_alive(h.pid) for h in members):
        assert time.monotonic() < deadline, "members outlived their node daemon"
        time.sleep(0.05)
    # An orderly stop (SIGTERM): each member left the hosts file itself.
    assert not hostsfile.read_membership(n.hosts).listed()


def test_members_get_their_own_listen_endpoints(node, tmp_path):
    """An ipc path or a fixed port names one endpoint: member k gets PATH-<k>
    or PORT+k (any port: each binds its own)."""
    sock = tmp_path / "gkfs.sock"
    n = node("2", "--listen", f"ipc://{sock}")
    members = n.start()
    assert {h.address for h in members} == {f"ipc://{sock}", f"ipc://{sock}-1"}
    with Client(n.hosts) as fs:
        fs.write_file("/x", b"over ipc")
        assert fs.read_file("/x") == b"over ipc"
    assert n.stop() == 0


def test_auto_takes_a_given_cpu_set_whole_and_half_of_an_unrestricted_machine():
    """--processes auto: every core of a CPU set narrower than the machine
    (Slurm step, taskset), else half the cores (the job's own processes share
    the node), never 0."""
    code = ("import os, sys; from gkfs_daemon.node import auto_processes; "
            "os.sched_setaffinity(0, {int(c) for c in sys.argv[1].split(',')}) if sys.argv[1] else None; "
            "print(auto_processes())")
    every = sorted(os.sched_getaffinity(0))
    n = os.cpu_count()

    def auto(cpus: list[int] | None) -> int:
        arg = ",".join(map(str, cpus)) if cpus else ""
        return int(subprocess.run([sys.executable, "-c", code, arg], capture_output=True, text=True,
                                  check=True).stdout)

    assert auto([every[0]]) == 1
    if len(every) == n:  # this test may run on every CPU: half of them
        assert auto(None) == max(1, n // 2)
    else:  # run with a CPU set itself: all of it
        assert auto(None) == len(every)


def test_concurrent_listings_across_siblings_never_fail(node):
    """Listings run on a member's worker threads, several at once, and each
    checks the directory's record in the sibling that holds it. Those checks
    once shared one poll object per sibling: two threads polling it at the
    same time raised RuntimeError ("concurrent poll() invocation"), which the
    client saw as EIO on a listing or an rmdir (found by perf_bench)."""
    import threading
    n = node("2")
    n.start()
    dirs = [f"/d{i}" for i in range(40) if distribution.metadata_owner(f"/d{i}", 2) == 1][:4]
    with Client(n.hosts, timeout=20) as fs:
        for d in dirs:
            fs.mkdir(d, 0o755)
            fs.write_file(f"{d}/f", b"x")
    errors: list[BaseException] = []
    stop = time.monotonic() + 4

    def lister() -> None:
        try:
            with Client(n.hosts, timeout=20) as fs:
                while time.monotonic() < stop and not errors:
                    for d in dirs:
                        assert fs.listdir(d) == ["f"]
        except BaseException as exc:  # reported below, with the daemon's log
            errors.append(exc)

    threads = [threading.Thread(target=lister) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, f"{errors[0]!r}\n{n.text()[-3000:]}"
    assert "concurrent poll" not in n.text()
    assert n.stop() == 0
