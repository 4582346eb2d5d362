"""Regression checks for bugs the e2e suite found in the native client,
each cheap enough for the quick suite (the thorough forms are in tests/e2e).
Results are checked through the Python client or against the Python
client's view of the same directory."""
from __future__ import annotations

import os


def test_big_listing_names_are_intact(gk_cluster, run_rv, sysroot):
    """BUG 1: dirent names in a get_dirents reply pointed into a zmq frame
    already closed; the next page's receive reused the memory and `ls`
    printed garbage, duplicates and missed names."""
    c = gk_cluster.client
    c.mkdir("/many")
    want = sorted(f"n{i:04d}-{'x' * (i % 40)}" for i in range(2000))
    for name in want:
        c.close(c.open(f"/many/{name}", os.O_CREAT | os.O_WRONLY))
    cp = run_rv([f"{sysroot}/usr/bin/ls", "-U", f"{gk_cluster.mount}/many"])
    assert cp.returncode == 0, cp.stderr.decode(errors="replace")
    got = cp.stdout.decode(errors="replace").split("\n")[:-1]
    assert sorted(got) == want, (len(got), len(set(got)), sorted(set(got) - set(want))[:5])


def test_program_dup2_onto_low_numbers_keeps_the_client_working(gk_cluster, run_rv, sysroot):
    """BUG 4: libzmq's descriptors sat at 3, 4, 5...; a shell's `exec 5<file`
    (dup2 onto 5) closed libzmq's epoll set and the next gkfs call aborted
    the program.  The client's descriptors now live high, out of the way."""
    m = f"{gk_cluster.mount}/dup2"
    gk_cluster.client.mkdir("/dup2")
    script = (f"echo first > {m}/f; "
              + "".join(f"exec {n}<{m}/f; " for n in range(3, 10))
              + f"cat <&5; echo second >> {m}/f; ls {m}; cat {m}/f")
    cp = run_rv([f"{sysroot}/usr/bin/dash", "-c", script], timeout=120)
    assert cp.returncode == 0, cp.stderr.decode(errors="replace")
    assert cp.stdout.decode() == "first\nf\nfirst\nsecond\n"
    assert gk_cluster.client.read_file("/dup2/f") == b"first\nsecond\n"


def test_file_used_as_directory_answers_like_the_kernel(gk_cluster, rv_program, run_rv, tmp_path):
    """BUG 5: stat("f/x") with f a regular file was ENOENT (kernel: ENOTDIR)
    and stat("f/") succeeded (a trailing slash requires a directory).  The
    same riscv64 program runs on a kernel directory without the preload and
    under the mount prefix with it; every errno must be the kernel's, and
    the refused calls must leave the file alone."""
    prog = rv_program("enotdir")
    local = tmp_path / "kernel"
    local.mkdir()
    kernel = run_rv([prog, local], preload_lib=False)
    assert kernel.returncode == 0, kernel.stderr.decode(errors="replace")
    gk_cluster.client.mkdir("/enotdir")
    ours = run_rv([prog, f"{gk_cluster.mount}/enotdir"])
    assert ours.returncode == 0, ours.stderr.decode(errors="replace")
    want = kernel.stdout.decode().splitlines()
    assert "stat f/x 20" in want and "stat f/ 20" in want   # ENOTDIR, the kernel's answer
    assert ours.stdout.decode().splitlines() == want
    c = gk_cluster.client
    assert c.read_file("/enotdir/d/f") == b"data"
    assert sorted(c.listdir("/enotdir/d")) == ["f", "ld", "lf"]


def test_close_still_reaches_the_client_for_descriptors_it_keeps(gk_cluster, rv_program, run_rv,
                                                                 tmp_path):
    """close() of a descriptor the client keeps no record of goes straight to
    the kernel (issue 9, part 4); of one it does keep (a remembered kernel
    directory above the mount, a gkfs descriptor, libzmq's own) it must still
    reach the client, or a reused number would resolve *at calls into gkfs,
    read gkfs data, or the program would close libzmq's sockets."""
    prog = rv_program("closekept")
    other = tmp_path / "other"
    other.mkdir()
    local = tmp_path / "local"
    local.write_bytes(b"local")
    cp = run_rv([prog, gk_cluster.mount, other, local])
    assert cp.returncode == 0 and cp.stdout.decode() == "ok\n", \
        (cp.stdout.decode(errors="replace"), cp.stderr.decode(errors="replace"))
    assert gk_cluster.client.read_file("/closekept.txt") == b"gkfs"
