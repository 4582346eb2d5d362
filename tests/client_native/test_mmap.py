"""Shared writable mmap of gkfs files (issue 12): programs/mmap_ior.c runs
IOR's MMAP back-end pattern with 4 forked ranks on one shared file and
checks it, then pins what other processes see and when (msync, munmap,
close, exit, MS_INVALIDATE)."""
from __future__ import annotations

import struct


def test_shared_mmap_ior_pattern_and_visibility(gk_cluster, rv_program, run_rv):
    gk_cluster.client.mkdir("/mmap")
    cp = run_rv([rv_program("mmap_ior"), f"{gk_cluster.mount}/mmap"], timeout=300)
    out = cp.stdout.decode(errors="replace")
    assert cp.returncode == 0 and out.rstrip().endswith("done"), out + cp.stderr.decode(errors="replace")
    # the daemons hold what the ranks wrote: rank 2's first word of segment 1
    c = gk_cluster.client
    block, nranks = 96 * 1024, 4
    off = (1 * nranks + 2) * block
    (word,) = struct.unpack("<Q", c.read_file("/mmap/ior.mmap")[off:off + 8])
    assert word == ((off * 0x9E3779B97F4A7C15) % 2**64) ^ (2 << 56) ^ 0x5EED
    assert c.read_file("/mmap/visible") == b"BBGGCCaaDDaaEEFF"
