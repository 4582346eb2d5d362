"""The local stream never crosses a node (docs/protocol.md 1.1).

A daemon's local stream listener (an abstract UNIX socket) belongs to its
node's network namespace: only processes of that node reach it; a client
on another node goes over TCP, through the link a test cuts, so a cut node
is an error for every other node even though its daemon is alive and still
serves its own node. Data written over one transport reads back the same
over the other."""
from __future__ import annotations

import json
import sys

from mn_harness import HERE, RPC_TIMEOUT_S

PROBE = r"""
import errno, json, socket, sys
from gkfs_client import hostsfile, local_stream
hosts = sys.argv[1]
rec = hostsfile.read_record(hosts)
out = {}
for h in hostsfile.read_hosts(hosts):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(local_stream.local_name(rec.uuid, h.id, h.address))
        out[h.hostname] = "connected"
    except OSError as exc:
        out[h.hostname] = errno.errorcode.get(exc.errno, str(exc.errno))
    finally:
        s.close()
print(json.dumps(out))
"""

SIZE = 1024 * 1024  # 16 chunks of 64 KiB: both nodes hold some


def probe(node, cluster) -> dict:
    cp = node.run([sys.executable, "-c", PROBE, str(cluster.hosts_file)], env=cluster.env, text=True)
    assert cp.returncode == 0, cp.stderr
    return json.loads(cp.stdout)


def test_local_stream_stays_inside_its_node(make_cluster):
    net, cluster = make_cluster(2, 1)
    n1, n2, c1 = net.node("n1"), net.node("n2"), net.node("c1")
    assert sorted(h.hostname for h in cluster.hosts()) == ["n1", "n2"]
    # Each daemon's listener is there for its own node, and for nobody else.
    assert probe(n1, cluster) == {"n1": "connected", "n2": "ECONNREFUSED"}
    assert probe(n2, cluster) == {"n1": "ECONNREFUSED", "n2": "connected"}
    assert probe(c1, cluster) == {"n1": "ECONNREFUSED", "n2": "ECONNREFUSED"}

    # Written on n1 (its own member over the local stream, n2's over TCP),
    # read back on c1 (both over TCP) and on n2 (the other way round).
    assert cluster.py(n1, "write", "/mixed.bin", str(SIZE), "7")["ok"]
    assert cluster.py(c1, "verify", "/mixed.bin", str(SIZE), "7") == {"ok": True, "size": SIZE}
    assert cluster.py(n2, "verify", "/mixed.bin", str(SIZE), "7") == {"ok": True, "size": SIZE}
    assert cluster.chunk_nodes(cluster_key(cluster, c1)) == {"n1", "n2"}

    # n1 cut off: its daemon still runs and serves its own node, yet a
    # client on c1 gets EIO naming it, within the timeout: the local stream
    # is no way around the cut.
    n1.cut()
    try:
        env = dict(cluster.env, LIBGKFS_RPC_TIMEOUT=str(RPC_TIMEOUT_S))
        cp = c1.run([sys.executable, str(HERE / "node_client.py"), str(cluster.hosts_file), "verify", "/mixed.bin",
                     str(SIZE), "7"], env=env, text=True, timeout=60)
        assert cp.returncode != 0 and "[Errno 5]" in cp.stderr, (cp.returncode, cp.stdout, cp.stderr[-800:])
        n1_addr = next(h.address for h in cluster.hosts() if h.hostname == "n1")
        assert n1_addr in cp.stderr, cp.stderr[-800:]
        # ... while on n1 itself the local member answers and n2 is the one missing.
        assert probe(n1, cluster)["n1"] == "connected"
        cp = n1.run([sys.executable, str(HERE / "node_client.py"), str(cluster.hosts_file), "verify", "/mixed.bin",
                     str(SIZE), "7"], env=env, text=True, timeout=60)
        assert cp.returncode != 0 and "[Errno 5]" in cp.stderr, (cp.returncode, cp.stdout, cp.stderr[-800:])
        n2_addr = next(h.address for h in cluster.hosts() if h.hostname == "n2")
        assert n2_addr in cp.stderr and n1_addr not in cp.stderr, cp.stderr[-800:]
    finally:
        n1.heal()
    assert cluster.py(c1, "verify", "/mixed.bin", str(SIZE), "7") == {"ok": True, "size": SIZE}


def cluster_key(cluster, node) -> str:
    """The data key of /mixed.bin, asked from ``node``."""
    cp = node.run([sys.executable, "-c",
                   "import json, sys\nfrom gkfs_client.client import Client\n"
                   "with Client(sys.argv[1]) as fs: print(json.dumps(fs.stat_record('/mixed.bin')['data_key']))",
                   str(cluster.hosts_file)], env=cluster.env, text=True)
    assert cp.returncode == 0, cp.stderr
    return json.loads(cp.stdout)

