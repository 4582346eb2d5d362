"""RPCs per system call through the preload, counted with the daemons' op
counters (the table in docs/performance.md): open(O_CREAT) is one create
(no parent stat), a write is one write_chunks with the size update folded
in whenever the data goes to the file's metadata owner, and an update_size
only for the others; a read is one read_chunks carrying its size lookup
when its chunks live on the file's metadata owner, else stat + read_chunks."""
from __future__ import annotations

from gkfs_client import distribution

N = 24  # files: with 3 daemons, P(no mix of folded and unfolded writes) = (2/3)^24 < 1e-4


def test_native_rpcs_per_call(gk_cluster, rv_program, run_rv):
    c = gk_cluster.client
    c.mkdir("/rpcs")
    prog = rv_program("rpccount")
    before = c.op_totals()
    cp = run_rv([prog, f"{gk_cluster.mount}/rpcs", str(N)])
    after = c.op_totals()
    assert cp.returncode == 0 and cp.stdout.decode().strip() == "done", cp.stderr.decode(errors="replace")
    d = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    n_hosts = len(c.hosts)
    not_folded = sum(
        distribution.chunk_owner(c.stat_record(f"/rpcs/f{i}")["data_key"], 0, n_hosts)
        != distribution.metadata_owner(f"/rpcs/f{i}", n_hosts) for i in range(N))
    assert 0 < not_folded < N  # 3 daemons: both kinds of write happen
    assert d.get("create") == N
    assert d.get("write_chunks") == N
    assert d.get("update_size", 0) == not_folded
    # N stats of the program, N opens for reading, none for the creates,
    # and a size lookup only for the reads that could not fold it in
    # (status() itself costs the ping and status counted here too)
    assert d.get("stat", 0) == 2 * N + not_folded
    assert d.get("read_chunks") == N
    assert d.get("release") == 2 * N  # close drops the open's hold
    assert c.read_file("/rpcs/f0") == bytes(100)
