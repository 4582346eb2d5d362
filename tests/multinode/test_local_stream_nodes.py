"""The preload's client on a daemon's own node (docs/protocol.md 1.1): its
node's member over the local stream (the abstract name lives in the node's
network namespace), the other nodes' members over TCP, both in flight in
one call (a file whose chunks are on every node); a client node without a
daemon uses TCP only.  programs/localstream.c (tests/client_native) lists
the peers of its sockets: which transport went where."""
from __future__ import annotations

import shutil
import subprocess

from mn_harness import HERE, MOUNT, need
from gkfs_client import hostsfile, local_stream
from gkfs_client.client import Client

PROGRAM = HERE.parent / "client_native" / "programs" / "localstream.c"
SIZES = [4097, 2 * 1024 * 1024 + 3]   # 2 MiB: 33 chunks of 64 KiB, on every node


def pattern(n: int, seed: int) -> bytes:
    return bytes((i * 131 + i // 65536 + seed) & 0xFF for i in range(n))


def peers(out: str, who: str, kind: str) -> set[str]:
    return {ln.split()[3] for ln in out.splitlines() if ln.startswith(f"{who} {kind} ")}


def test_daemon_node_local_others_tcp(make_cluster, rv_nodes, tmp_path):
    cc = shutil.which("riscv64-linux-gnu-gcc")
    need(cc is not None, "riscv64-linux-gnu-gcc missing: deploy/setup-debian.sh --no-pip")
    prog = tmp_path / "localstream"
    cp = subprocess.run([cc, "-O2", "-Wall", str(PROGRAM), "-o", str(prog)], capture_output=True, text=True)
    assert cp.returncode == 0, cp.stderr
    net, cluster = make_cluster(3, 1)
    rv = rv_nodes(cluster)
    rec = hostsfile.read_record(cluster.hosts_file)
    members = {h.hostname: h for h in cluster.hosts()}
    with Client(cluster.hosts_file) as fs:
        fs.mkdir("/n1")
        fs.mkdir("/c1")

    r = rv.run(net.node("n1"), [str(prog), f"{MOUNT}/n1", *map(str, SIZES)])
    out = r.stdout.decode(errors="replace")
    assert r.returncode == 0 and out.rstrip().endswith("done"), out + r.stderr.decode(errors="replace")
    n1 = members["n1"]
    local = local_stream.local_name(rec.uuid, n1.id, n1.address).hex()
    others = {h.address.rsplit(":", 1)[1] for name, h in members.items() if name != "n1"}
    for who in ("parent", "child"):
        assert peers(out, who, "unix") == {local}, out
        assert others <= peers(out, who, "tcp"), out
    assert peers(out, "parent", "tcp") == others, out   # none to n1's member

    r = rv.run(net.node("c1"), [str(prog), f"{MOUNT}/c1", *map(str, SIZES)])
    out = r.stdout.decode(errors="replace")
    assert r.returncode == 0 and out.rstrip().endswith("done"), out + r.stderr.decode(errors="replace")
    assert peers(out, "parent", "unix") == set() and len(peers(out, "parent", "tcp")) == 3, out

    with Client(cluster.hosts_file) as fs:
        for d in ("n1", "c1"):
            for n in SIZES:
                assert fs.read_file(f"/{d}/f{n}") == pattern(n, 3), (d, n)
                assert fs.read_file(f"/{d}/c{n}") == pattern(n, 9), (d, n)
