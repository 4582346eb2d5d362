"""gkfs-ctl end to end: the real command, real daemons, real files."""
from __future__ import annotations

import filecmp
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from gkfs_client import hostsfile
from gkfs_client.client import Client

CTL_COMMANDS = [["status"], ["ls", "/"], ["stat", "/"], ["cp-in", "/etc/hostname", "/x"],
                ["cp-out", "/x", "/tmp/x"], ["cluster", "stop"]]


def ctl_exe() -> str:
    exe = shutil.which("gkfs-ctl")
    if not exe:
        pytest.fail("gkfs-ctl is not on PATH: install the project (pip install -e .)")
    return exe


def ctl(*args: str, env: dict, timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run([ctl_exe(), *args], env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def ctl_env(tmp_path):
    """Environment whose LIBGKFS_HOSTS_FILE points into tmp_path; at teardown
    every daemon still listed there is killed (cluster start daemonises them,
    so a failed test must not leave them behind; the tests themselves check
    that `cluster stop` leaves nothing)."""
    hosts = tmp_path / "hosts"
    env = dict(os.environ, LIBGKFS_HOSTS_FILE=str(hosts), COLUMNS="200")
    env.pop("XDG_RUNTIME_DIR", None)
    yield env
    try:
        left = hostsfile.read_hosts(hosts)
    except hostsfile.HostsFileError:
        return
    for h in left:
        try:
            os.kill(h.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (our grandchild reaped by init later) counts as gone.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def _make_tree(root: Path) -> None:
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "empty").write_bytes(b"")
    (root / "small.txt").write_text("hello gkfs\n")
    (root / "sub" / "odd.bin").write_bytes(os.urandom(3 * 524288 + 17))
    (root / "sub" / "deeper" / "big.bin").write_bytes(os.urandom(5 << 20))
    os.symlink("small.txt", root / "link")


def _same_tree(a: Path, b: Path) -> None:
    cmp = filecmp.dircmp(a, b)
    assert not (cmp.left_only or cmp.right_only or cmp.diff_files or cmp.funny_files), cmp.report()
    for sub in cmp.common_dirs:
        _same_tree(a / sub, b / sub)
    for name in cmp.common_files:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_cluster_start_stage_status_stop(tmp_path, ctl_env):
    r = ctl("cluster", "start", "-n", "3", "--rootdir", str(tmp_path / "daemons"), env=ctl_env)
    assert r.returncode == 0, r.stderr
    hosts = hostsfile.read_hosts(ctl_env["LIBGKFS_HOSTS_FILE"])
    assert len(hosts) == 3 and [h.id for h in hosts] == [0, 1, 2]
    # Each daemon has its own root dir.
    assert sorted(p.name for p in (tmp_path / "daemons").iterdir() if p.is_dir()) == [
        "daemon-0", "daemon-1", "daemon-2"]

    src = tmp_path / "src"
    _make_tree(src)
    r = ctl("cp-in", str(src), "/stage", "--verify", env=ctl_env)
    assert r.returncode == 0, r.stderr
    r = ctl("ls", "/stage", env=ctl_env)
    assert r.returncode == 0 and r.stdout.split() == ["empty", "link", "small.txt", "sub"]
    r = ctl("ls", "-l", "/stage/sub", env=ctl_env)
    assert r.returncode == 0
    lines = r.stdout.splitlines()
    assert lines[0].startswith("drwx") and lines[0].endswith(" deeper")
    assert lines[1].startswith("-rw") and f" {3 * 524288 + 17} " in lines[1]
    r = ctl("stat", "/stage/sub/deeper/big.bin", "--json", env=ctl_env)
    info = json.loads(r.stdout)
    assert info["size"] == 5 << 20 and info["chunks"] == 10 and len(info["chunk_daemons"]) == 3

    # cp-out into an existing directory lands under the source's name, like cp -r.
    out = tmp_path / "out"
    out.mkdir()
    r = ctl("cp-out", "/stage", str(out), env=ctl_env)
    assert r.returncode == 0, r.stderr
    _same_tree(src, out / "stage")
    assert os.readlink(out / "stage" / "link") == "small.txt"
    assert (out / "stage" / "small.txt").stat().st_mtime_ns == (src / "small.txt").stat().st_mtime_ns

    r = ctl("status", "--json", env=ctl_env)
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert [row["up"] for row in rows] == [True] * 3
    assert all(row["files"] > 0 and row["bytes_stored"] > 0 for row in rows)
    # /stage, sub, deeper, empty, small.txt, link, odd.bin, big.bin
    assert sum(row["files"] for row in rows) == 8
    assert all(row["ops"]["write_chunks"] > 0 for row in rows)
    # every member serves the local stream, and status's own client came that way
    assert all(row["local_stream"] is True and row["local_connections"] >= 1 for row in rows), rows
    r = ctl("status", env=ctl_env)
    assert r.returncode == 0
    for h in hosts:
        assert h.address in r.stdout
    assert r.stdout.count("1 conn") == 3, r.stdout
    assert "3/3 members up" in r.stdout

    # A daemon that is down: status says so and exits non-zero.
    os.kill(hosts[1].pid, signal.SIGSTOP)
    try:
        r = ctl("status", "--timeout", "1", env=ctl_env)
        assert r.returncode == 1
        assert "down" in r.stdout and "2/3 members up" in r.stdout
        assert "member 1 down" in r.stderr
    finally:
        os.kill(hosts[1].pid, signal.SIGCONT)

    r = ctl("cluster", "stop", env=ctl_env)
    assert r.returncode == 0, r.stderr
    assert not any(_alive(h.pid) for h in hosts)
    # The cluster record stays (fixed membership); no member is registered.
    assert hostsfile.read_membership(ctl_env["LIBGKFS_HOSTS_FILE"]).slots == (None, None, None)
    r = ctl("status", env=ctl_env)
    assert r.returncode == 1 and "0/3 members up" in r.stdout and "member 2 missing" in r.stderr


def test_cluster_start_refuses_a_running_cluster_and_reports_failures(tmp_path, ctl_env):
    r = ctl("cluster", "start", "-n", "2", "--rootdir", str(tmp_path / "d"), env=ctl_env)
    assert r.returncode == 0, r.stderr
    r = ctl("cluster", "start", "-n", "2", "--rootdir", str(tmp_path / "d2"), env=ctl_env)
    assert r.returncode == 1 and "already lists 2 running daemon" in r.stderr
    assert ctl("cluster", "stop", env=ctl_env).returncode == 0
    # Bad chunk size: refused before anything starts.
    r = ctl("cluster", "start", "-n", "2", "--rootdir", str(tmp_path / "d3"), "--chunk-size", "1000",
            env=ctl_env)
    assert r.returncode == 1 and "chunk_size must be a power of two" in r.stderr
    # Daemons that cannot start (their root dirs belong to another cluster):
    # clear failure naming the reason, nothing left running.
    other = tmp_path / "other-hosts"
    r = ctl("--hosts-file", str(other), "cluster", "start", "-n", "2", "--rootdir", str(tmp_path / "d"),
            env=ctl_env)
    assert r.returncode == 1
    assert "exited with status" in r.stderr and "belongs to cluster" in r.stderr, r.stderr
    assert not hostsfile.read_membership(other).listed()


def test_hosts_file_flag_wins_over_environment(tmp_path, ctl_env):
    flag_hosts = tmp_path / "flag-hosts"
    r = ctl("--hosts-file", str(flag_hosts), "cluster", "start", "-n", "1", "--rootdir", str(tmp_path / "d"),
            env=ctl_env)
    try:
        assert r.returncode == 0, r.stderr
        assert flag_hosts.exists() and not Path(ctl_env["LIBGKFS_HOSTS_FILE"]).exists()
        assert ctl("--hosts-file", str(flag_hosts), "status", env=ctl_env).returncode == 0
        # The environment's (missing) file is used without the flag.
        assert ctl("status", env=ctl_env).returncode == 2
    finally:
        assert ctl("--hosts-file", str(flag_hosts), "cluster", "stop", env=ctl_env).returncode == 0


@pytest.mark.parametrize("command", CTL_COMMANDS, ids=lambda c: c[0])
def test_missing_hosts_file_is_a_clear_error_for_every_command(tmp_path, command):
    missing = tmp_path / "nowhere" / "hosts"
    env = dict(os.environ, LIBGKFS_HOSTS_FILE=str(missing))
    r = ctl(*command, env=env, timeout=30)
    assert r.returncode == 2
    assert "hosts file not found" in r.stderr and str(missing) in r.stderr
    assert "Traceback" not in r.stderr


def test_bad_paths_are_errors_not_tracebacks(cluster, tmp_path):
    c = cluster(n=3)
    env = dict(c.env)
    r = ctl("ls", "/does/not/exist", env=env)
    assert r.returncode == 1 and "/does/not/exist" in r.stderr and "Traceback" not in r.stderr
    r = ctl("cp-in", str(tmp_path / "missing-src"), "/x", env=env)
    assert r.returncode == 1 and "missing-src" in r.stderr
    r = ctl("cp-out", "/nothing-here", str(tmp_path / "o"), env=env)
    assert r.returncode == 1 and "/nothing-here" in r.stderr
    assert not (tmp_path / "o").exists()


def test_cp_in_single_file_and_overwrite(cluster, tmp_path):
    c = cluster(n=3)
    f = tmp_path / "one.bin"
    f.write_bytes(os.urandom(1 << 20))
    assert ctl("cp-in", str(f), "/one", "-q", env=c.env).returncode == 0
    f.write_bytes(b"shorter now")
    assert ctl("cp-in", str(f), "/one", "-q", env=c.env).returncode == 0
    with Client(hosts_file=c.hosts_file) as gk:
        assert gk.read_file("/one") == b"shorter now"
        gk.mkdir("/dir")
    # Into an existing gkfs directory: lands under its own name.
    assert ctl("cp-in", str(f), "/dir", "-q", env=c.env).returncode == 0
    with Client(hosts_file=c.hosts_file) as gk:
        assert gk.listdir("/dir") == ["one.bin"]


def test_stale_lines_of_killed_daemons_are_cleaned(tmp_path, ctl_env):
    hosts_path = Path(ctl_env["LIBGKFS_HOSTS_FILE"])
    assert ctl("cluster", "start", "-n", "3", "--rootdir", str(tmp_path / "d"), env=ctl_env).returncode == 0
    victims = hostsfile.read_hosts(hosts_path)
    for h in victims:  # kill -9: nobody removes the lines
        os.kill(h.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while any(_alive(h.pid) for h in victims) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(hostsfile.read_hosts(hosts_path)) == 3
    # Starting it again with fewer daemons on the same root dirs would move
    # where files live: an explicit error, nothing started (issue 7).
    r = ctl("cluster", "start", "-n", "2", "--rootdir", str(tmp_path / "d"), env=ctl_env)
    assert r.returncode == 1 and "3-member cluster" in r.stderr and "-n 2 is refused" in r.stderr
    assert {h.pid for h in hostsfile.read_hosts(hosts_path)} == {h.pid for h in victims}
    # The same size again: the stale entries are replaced.
    r = ctl("cluster", "start", "-n", "3", "--rootdir", str(tmp_path / "d"), env=ctl_env)
    assert r.returncode == 0, r.stderr
    assert [h.id for h in hostsfile.read_hosts(hosts_path)] == [0, 1, 2]
    assert ctl("status", env=ctl_env).returncode == 0
    new = hostsfile.read_hosts(hosts_path)
    os.kill(new[1].pid, signal.SIGKILL)
    r = ctl("cluster", "stop", env=ctl_env)
    assert r.returncode == 0, r.stderr
    assert not hostsfile.read_membership(hosts_path).listed()
    assert not any(_alive(h.pid) for h in new)
