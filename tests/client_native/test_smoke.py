"""Quick end-to-end checks of the native client: a riscv64 C program
(programs/smoke.c) does open/write/read/fstat/getdents/dup/fork/mkdir/
rename/symlink/unlink under the mount prefix with libgkfs_intercept.so
preloaded; the result is checked through the Python client, i.e. on the
daemons.  The big suite (coreutils, tar, python, fio, MPI) is tests/e2e."""
from __future__ import annotations

import time
from pathlib import Path


def pattern(n: int) -> bytes:
    return bytes((i * 7 + i // 4096) & 0xFF for i in range(n))


def test_smoke_program(gk_cluster, rv_program, run_rv):
    MOUNT = gk_cluster.mount   # not `from conftest import`: tests/e2e has a conftest too
    gk_cluster.client.mkdir("/smoke")
    cp = run_rv([rv_program("smoke"), f"{MOUNT}/smoke"])
    out = cp.stdout.decode(errors="replace")
    assert cp.returncode == 0 and out.rstrip().endswith("done"), out + cp.stderr.decode(errors="replace")
    c = gk_cluster.client
    n = 1536 * 1024 + 123
    assert c.stat("/smoke/keep.bin").st_size == n
    assert c.read_file("/smoke/keep.bin") == pattern(n)
    assert sorted(c.listdir("/smoke")) == ["keep.bin", "sub"]
    assert c.listdir("/smoke/sub") == []
    # 25 chunks of 64 KiB: every daemon holds some of them
    holders = [d for d in sorted((gk_cluster.base / "root").iterdir())
               if any((d / "chunks").rglob("*"))]
    assert len(holders) == 3, holders


def test_outside_paths_pass_through(gk_cluster, run_rv, sysroot, tmp_path):
    """The same run writes a local file and a gkfs file with dash."""
    MOUNT = gk_cluster.mount
    local = tmp_path / "local.txt"
    gk_cluster.client.mkdir("/dash")
    script = (f"echo local > {local}; echo one > {MOUNT}/dash/f; "
              f"{{ echo a; env echo b; echo c | cat; }} >> {MOUNT}/dash/f; "
              f"cd {MOUNT}/dash && ls > listing && pwd")
    cp = run_rv([f"{sysroot}/usr/bin/dash", "-c", script])
    assert cp.returncode == 0, cp.stderr.decode(errors="replace")
    assert cp.stdout.decode().strip() == f"{MOUNT}/dash"
    assert local.read_text() == "local\n"
    c = gk_cluster.client
    # appends from three processes (forked, exec'd) at one shared offset
    assert c.read_file("/dash/f") == b"one\na\nb\nc\n"
    assert c.read_file("/dash/listing") == b"f\nlisting\n"


def test_unreachable_daemon_gives_eio(run_rv, sysroot, tmp_path):
    """A hosts file naming a daemon that does not exist: EIO after the
    configured timeout, never a hang; paths outside gkfs keep working."""
    hosts = tmp_path / "hosts"
    hosts.write_text("cluster 00000000-0000-4000-8000-000000000000 1 65536 /gkfs-dead\n"
                     "0 tcp://127.0.0.1:9 0 nowhere /gkfs-dead\n")
    t0 = time.monotonic()
    cp = run_rv([f"{sysroot}/usr/bin/cat", "/gkfs-dead/x", f"{sysroot}/etc/debian_version"],
                extra_env={"LIBGKFS_HOSTS_FILE": str(hosts), "LIBGKFS_RPC_TIMEOUT_MS": "1500"},
                timeout=60)
    took = time.monotonic() - t0
    err = cp.stderr.decode(errors="replace")
    assert cp.returncode == 1
    assert "/gkfs-dead/x: Input/output error" in err, err
    assert cp.stdout.strip(), "the local file was not printed"
    assert took < 30, took


def test_missing_hosts_file_message(run_rv, sysroot, tmp_path):
    cp = run_rv([f"{sysroot}/usr/bin/ls", "/gkfs-none/"],
                extra_env={"LIBGKFS_HOSTS_FILE": str(tmp_path / "nope"), "LIBGKFS_MOUNT": "/gkfs-none"},
                timeout=60)
    err = cp.stderr.decode(errors="replace")
    assert cp.returncode != 0
    assert "no usable gkfs hosts file" in err and str(tmp_path / "nope") in err, err
