"""Right errnos (issue 7): ENOSPC from a full metadata or chunk store, EFBIG
past the largest offset, never EIO for a client's mistake; and `gkfs-ctl
ls -l` going on past an entry whose record cannot be read."""
from __future__ import annotations

import errno
import os
import subprocess

import pytest

from gkfs_client import distribution
from gkfs_client.client import Client


@pytest.fixture
def small_fs(tmp_path):
    """A 24 MiB tmpfs where the first test cluster's root dirs go."""
    mnt = tmp_path / "cluster0"
    mnt.mkdir()
    cp = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m,mode=0700", "tmpfs", str(mnt)],
                        capture_output=True, text=True)
    assert cp.returncode == 0, f"cannot mount a tmpfs (tests run as root): {cp.stderr}"
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def _fill(path, limit=64 << 20) -> None:
    with open(path, "wb") as f:
        try:
            while f.tell() < limit:
                f.write(b"\0" * (1 << 20))
                f.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    os.sync()


def test_full_disk_gives_enospc_for_data_and_metadata(small_fs, cluster):
    c = cluster(n=1, chunk_size=65536)
    try:
        gk = Client(hosts_file=c.hosts_file, timeout=20)
        gk.write_file("/before", b"kept")
        _fill(small_fs / "filler")
        with pytest.raises(OSError) as exc:
            gk.write_file("/before", os.urandom(4 << 20))
        assert exc.value.errno == errno.ENOSPC, exc.value
        with pytest.raises(OSError) as exc:
            for i in range(5000):
                gk.mkdir(f"/d{i:05d}-" + "x" * 200)
        assert exc.value.errno == errno.ENOSPC, exc.value
        assert "Input/output" not in str(exc.value)
        # Room again: the daemon never went away, and the old data is there.
        (small_fs / "filler").unlink()
        gk.write_file("/after", b"fine")
        assert gk.read_file("/after") == b"fine"
        assert c.daemons[0].poll() is None
        gk.disconnect()
    finally:
        c.stop()


def test_offsets_past_the_limit_are_efbig_or_einval(cluster):
    c = cluster(n=2, chunk_size=65536)
    with Client(hosts_file=c.hosts_file) as gk:
        fd = gk.open("/f", os.O_CREAT | os.O_RDWR)
        for off in (2**63 - 1, 2**63, 2**64 - 2):
            with pytest.raises(OSError) as exc:
                gk.pwrite(fd, b"xy", off)
            assert exc.value.errno == errno.EFBIG, (off, exc.value)
            with pytest.raises(OSError) as exc:
                gk.pread(fd, 2, off + 10)
            assert exc.value.errno == errno.EINVAL, (off, exc.value)
        with pytest.raises(OSError) as exc:
            gk.ftruncate(fd, 2**64)
        assert exc.value.errno == errno.EFBIG
        assert gk.fstat(fd).st_size == 0 if hasattr(gk, "fstat") else gk.stat("/f").st_size == 0
        gk.close(fd)


def test_ls_long_goes_on_past_an_entry_without_record(cluster):
    c = cluster(n=3, chunk_size=65536)
    env = c.env
    with Client(hosts_file=c.hosts_file) as gk:
        gk.mkdir("/d")
        for n in ("a", "b", "c"):
            gk.write_file(f"/d/{n}", b"x")
        rec = gk.stat_record("/d/a")
    # A record held by a member that does not own its path (left by an
    # earlier placement): listed, but its owner has no record for it.
    bad = "/d/0bad"
    owner = distribution.metadata_owner(bad, 3)
    other = (owner + 1) % 3
    c.conn(other).call("insert", {"path": bad, "record": rec})
    cp = subprocess.run(["gkfs-ctl", "ls", "-l", "/d"], env=env, capture_output=True, text=True, timeout=60)
    assert cp.returncode == 1, cp
    lines = cp.stdout.splitlines()
    assert len(lines) == 4 and lines[0].startswith("?") and lines[0].endswith(" 0bad"), cp.stdout
    assert [ln.rsplit(" ", 1)[1] for ln in lines[1:]] == ["a", "b", "c"], cp.stdout
    assert "cannot access '/d/0bad'" in cp.stderr


def test_fsck_reports_and_repairs(cluster):
    c = cluster(n=3, chunk_size=65536)
    env = c.env
    with Client(hosts_file=c.hosts_file) as gk:
        gk.mkdir("/d")
        gk.write_file("/d/a", os.urandom(300_000))
        gk.write_file("/d/b", b"0123456789")
        rec_b = gk.stat_record("/d/b")
        rec_a = gk.stat_record("/d/a")
    # 1. orphan chunks: data no record refers to
    c.conn(0).call("write_chunks", {"data_key": "0" * 32, "chunk_size": 65536, "chunks": [[0, 0, 4]]}, [b"lost"])
    # 2. an entry without a record on its owner
    stray = "/d/stray"
    holder = (distribution.metadata_owner(stray, 3) + 1) % 3
    c.conn(holder).call("insert", {"path": stray, "record": {**rec_a, "data_key": "1" * 32, "size": 0}})
    # 3. a size beyond the data (the size update landed, the data did not)
    c.meta_conn("/d/b").call("update_size", {"path": "/d/b", "offset": 0, "count": 1_000_000})

    def fsck(*extra):
        return subprocess.run(["gkfs-ctl", "fsck", *extra], env=env, capture_output=True, text=True, timeout=120)

    r = fsck()
    assert r.returncode == 1, r
    kinds = sorted(line.split(":")[0] for line in r.stdout.splitlines())
    assert kinds == ["no-record", "orphan-chunks", "size-beyond-data"], r.stdout
    assert "/d/stray" in r.stdout and "/d/b" in r.stdout and "size 1000000 but the data ends at 10" in r.stdout
    r = fsck("--repair")
    assert r.returncode == 0, r
    assert r.stdout.count("repaired") == 3, r.stdout
    r = fsck()
    assert r.returncode == 0 and r.stdout == "", r
    with Client(hosts_file=c.hosts_file) as gk:
        assert gk.read_file("/d/b") == b"0123456789"
        assert gk.stat("/d/stray").st_size == 0  # now found through its owner
        assert sorted(gk.listdir("/d")) == ["a", "b", "stray"]
        assert gk.stat_record("/d/a") == rec_a
    assert rec_b["data_key"]
