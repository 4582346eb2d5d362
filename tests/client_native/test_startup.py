"""Start-up of a preloaded program that never touches the mount (issue 9,
part 4): a program that makes no call the client hooks reads no hosts file
at all; the first hooked call (an open of a local file, say) reads the
cluster record (the member count and the mount prefix decide where paths
go) and nothing else: no member entry file (<hosts>.d/<i>, read at the
first connection), no socket, no key file.  qemu-user's own system call
trace (QEMU_STRACE) shows every call the riscv64 program made."""
from __future__ import annotations


def test_a_program_that_hooks_nothing_reads_no_hosts_file(gk_cluster, run_rv, sysroot):
    cp = run_rv([f"{sysroot}/usr/bin/true"], extra_env={"QEMU_STRACE": "1"})
    trace = cp.stderr.decode(errors="replace")
    assert cp.returncode == 0, trace
    assert str(gk_cluster.hosts_file) not in trace, trace
    assert " socket(" not in trace, trace


def test_a_program_that_never_touches_gkfs_reads_only_the_cluster_record(gk_cluster, run_rv,
                                                                          sysroot, tmp_path):
    local = tmp_path / "local.txt"
    local.write_text("local")
    cp = run_rv([f"{sysroot}/usr/bin/cat", str(local)], extra_env={"QEMU_STRACE": "1"})
    trace = cp.stderr.decode(errors="replace")
    assert cp.returncode == 0 and cp.stdout == b"local", trace
    hosts = str(gk_cluster.hosts_file)
    assert f'"{hosts}"' in trace, trace          # the cluster record is read
    assert f"{hosts}.d/" not in trace, trace     # no member entry
    assert f"{hosts}.keys" not in trace, trace   # no key file
    assert " socket(" not in trace, trace        # no connection


def test_the_first_gkfs_call_reads_the_member_entries(gk_cluster, run_rv, sysroot):
    gk_cluster.client.write_file("/startup.txt", b"x")
    cp = run_rv([f"{sysroot}/usr/bin/cat", f"{gk_cluster.mount}/startup.txt"],
                extra_env={"QEMU_STRACE": "1"})
    trace = cp.stderr.decode(errors="replace")
    assert cp.returncode == 0 and cp.stdout == b"x", trace
    assert f"{gk_cluster.hosts_file}.d/" in trace, trace


def test_a_hosts_file_longer_than_the_start_up_buffer_is_read_whole(gk_cluster, run_rv, sysroot,
                                                                    tmp_path):
    """The constructor reads the hosts file into a 4 KiB static buffer (no
    malloc at start-up); a longer one (comments, say) moves to the heap and
    is read to its end: the cluster record after 6 KiB of comments counts."""
    hosts = gk_cluster.hosts_file
    mine = tmp_path / "hosts"
    mine.write_text("# padding\n" * 600 + hosts.read_text())
    mine.chmod(0o600)
    (tmp_path / "hosts.d").symlink_to(f"{hosts}.d")
    gk_cluster.client.write_file("/long-hosts.txt", b"long")
    cp = run_rv([f"{sysroot}/usr/bin/cat", f"{gk_cluster.mount}/long-hosts.txt"],
                extra_env={"LIBGKFS_HOSTS_FILE": str(mine),
                           "LIBGKFS_KEY_FILE": f"{hosts}.keys/client.key"})
    assert cp.returncode == 0 and cp.stdout == b"long", cp.stderr.decode(errors="replace")


def test_threads_and_a_fork_child_racing_the_first_call_all_see_the_configuration(
        gk_cluster, rv_program, run_rv):
    """The first hooked call loads the configuration (client/config.h): 8
    threads making it at once wait for the one that loads; a child forked
    before any hooked call loads its own. The threads' first opens also
    race to create the descriptor table (fdtable.c): a table made twice
    lost one thread's descriptor, whose read then went to the kernel and
    returned the placeholder's bytes (1 run in 10-20 over the local stream),
    hence 12 rounds."""
    gk_cluster.client.write_file("/first.txt", b"first call")
    exe = rv_program("firstcall")
    for mode in ["threads"] * 12 + ["fork"]:
        cp = run_rv([exe, mode, f"{gk_cluster.mount}/first.txt", "first call"], timeout=300)
        assert cp.returncode == 0 and cp.stdout == b"ok\n", (mode, cp.returncode,
                                                             cp.stderr.decode(errors="replace"))


def _pimg_sum(data: bytes) -> int:
    """intercept/src/runtime/process_image.c, sum_words (as in
    tests/intercept/test_process_image.py)."""
    import struct
    h = 0xcbf29ce484222325
    for (w,) in struct.iter_unpack("<Q", data):
        h = ((h ^ w) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
        h ^= h >> 32
    return h


def test_gkfs_from_a_replayed_start(gk_cluster, run_rv, sysroot, tmp_path):
    """With the plan cache on, the second start replays the process image
    (intercept/README.md, "Start-up cost") and the client works as after a
    planned one; the hook's declaration of the calls it wants is the one
    the image recorded: openat made never-wanted there (checksum redone),
    the replayed process's open of a gkfs path goes to the kernel."""
    import struct
    gk_cluster.client.write_file("/replayed.txt", b"replayed")
    cache = tmp_path / "plans"
    argv = [f"{sysroot}/usr/bin/cat", f"{gk_cluster.mount}/replayed.txt"]
    env = {"INTERCEPT_PLAN_CACHE": str(cache), "QEMU_STRACE": "1"}
    for replayed in (False, True):
        cp = run_rv(argv, extra_env=env)
        trace = cp.stderr.decode(errors="replace")
        assert cp.returncode == 0 and cp.stdout == b"replayed", trace
        opened = [w for w in trace.splitlines()
                  if "openat(" in w and '.pimg"' in w and "= -1" not in w]
        assert bool(opened) == replayed, trace
    pimg, = cache.glob("*.pimg")
    raw = bytearray(pimg.read_bytes()[:-8])
    nobj, = struct.unpack_from("<I", raw, 48)      # struct pimg_header
    raw[80 + nobj * 96 + 56] = 0                   # classes[__NR_openat] = NEVER
    raw += struct.pack("<Q", _pimg_sum(bytes(raw)))
    pimg.write_bytes(bytes(raw))
    cp = run_rv(argv, extra_env=env)
    assert cp.returncode != 0 and cp.stdout == b"", cp.stderr.decode(errors="replace")
