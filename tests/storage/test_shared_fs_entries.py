"""Registration for hosts files on a shared file system (no root needed):
a daemon started with --shared-fs writes only its own entry <hosts>.d/<id>,
never the hosts file, and removes the entry when it stops; --id-from-rank
takes the rank srun/mpirun set, and says clearly when there is none."""
from __future__ import annotations

import os
import subprocess
import time

from gkfs_client import hostsfile
from gkfs_client.client import Client


def daemon_executable() -> str:
    import shutil
    import pytest
    exe = shutil.which("gkfs-daemon")
    if not exe:
        pytest.fail("gkfs-daemon is not on PATH: install the project (pip install -e .)")
    return exe




def test_shared_fs_daemon_writes_only_its_entry(tmp_path):
    hosts = tmp_path / "shared" / "hosts"
    # Without a cluster record a launched daemon refuses to start (the launcher writes it first).
    env0 = dict(os.environ, SLURM_PROCID="2")
    env0.pop("LIBGKFS_HOSTS_FILE", None)
    cp = subprocess.run([daemon_executable(), "--id-from-rank", "--shared-fs", "--hosts-file", str(hosts),
                         "--rootdir", str(tmp_path / "r0")], env=env0, capture_output=True, text=True, timeout=30)
    assert cp.returncode == 1 and "no cluster record" in cp.stderr, cp.stderr
    hostsfile.create_cluster(hosts, 3, 524288)
    record_text = hosts.read_text()
    env = dict(os.environ, SLURM_PROCID="2")
    env.pop("LIBGKFS_HOSTS_FILE", None)
    p = subprocess.Popen([daemon_executable(), "--id-from-rank", "--shared-fs", "--hosts-file", str(hosts),
                          "--rootdir", str(tmp_path / "node-%h" / "daemon-%i"), "--log-file",
                          str(tmp_path / "d-%i.log"), "--processes", "1"], env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while hostsfile.read_entry(hosts, 2) is None:
            assert p.poll() is None, p.stderr.read()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        entry = hostsfile.read_entry(hosts, 2)
        assert entry.pid == p.pid and entry.address.startswith("tcp://127.0.0.1:")
        assert hosts.read_text() == record_text, "a --shared-fs daemon must not write the hosts file itself"
        assert sorted(os.listdir(hostsfile.entries_dir(hosts))) == ["2"]  # no temporary left
        assert (tmp_path / "d-2.log").exists()
        import socket
        assert (tmp_path / f"node-{socket.gethostname()}" / "daemon-2" / "daemon.json").exists()
        # The launcher's part: write the list once; the member answers through it.
        hostsfile.write_hosts(hosts, [entry])
        with Client(hosts, timeout=5) as fs:
            st = fs.status()
            assert not isinstance(st[2], OSError) and isinstance(st[0], OSError)  # members 0, 1 not up
    finally:
        p.terminate()
        assert p.wait(30) == 0
    assert hostsfile.read_entry(hosts, 2) is None, "the entry must go when the daemon stops"
    assert hosts.exists(), "the hosts file belongs to the launcher: a member never removes it"


def test_id_from_rank_without_launcher_fails_clearly(tmp_path):
    env = {k: v for k, v in os.environ.items()
           if k not in ("SLURM_PROCID", "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK")}
    cp = subprocess.run([daemon_executable(), "--id-from-rank", "--hosts-file", str(tmp_path / "h"),
                         "--rootdir", str(tmp_path / "r")], env=env, capture_output=True, text=True, timeout=60)
    assert cp.returncode == 2
    assert "none of SLURM_PROCID, OMPI_COMM_WORLD_RANK, PMIX_RANK, PMI_RANK is set" in cp.stderr
