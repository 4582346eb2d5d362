"""gkfs across hosts: daemons in 3 network namespaces started with
`gkfs-ctl cluster start --mpirun` from a fourth, clients (Python, gkfs-ctl,
riscv64 programs with the preload under qemu) in a fourth and fifth; the
data lands on every node's own directory; stop loses nothing and leaves
no hosts file. Plus: how a daemon picks its address (interface, network,
wildcard) inside a node."""
from __future__ import annotations

import hashlib
import re
import random
import threading
import time

from mn_harness import MOUNT, NodeCluster
from gkfs_client import hostsfile
from gkfs_client.client import Client

SIZE = 3 * 1024 * 1024 + 12345  # 49 chunks of 64 KiB: every daemon holds some


def pattern(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def watch_hosts_file(path, stop: threading.Event, seen: list) -> None:
    """A reader on the shared file system: every version it ever sees."""
    while not stop.is_set():
        try:
            # Placement's view: the record's member count, fixed from the start.
            seen.append(hostsfile.read_membership(path).members)
        except FileNotFoundError:
            pass
        time.sleep(0.001)


def test_three_daemon_nodes_clients_elsewhere(make_net, tmp_path, rv_nodes):
    net = make_net(["n1", "n2", "n3", "c1", "c2"])
    n1, n2, n3, c1, c2 = net.nodes
    cluster = NodeCluster(net, [n1, n2, n3], c1, tmp_path / "gkfs")
    stop, seen = threading.Event(), []
    reader = threading.Thread(target=watch_hosts_file, args=(cluster.hosts_file, stop, seen))
    reader.start()
    try:
        cluster.start()
    finally:
        stop.set()
        reader.join()
    try:
        # The hosts file: exactly one line per daemon, each with its node's own
        # reachable address; a reader never saw a partial list.
        assert seen and set(seen) == {3}, f"a reader saw hosts lists of sizes {sorted(set(seen))}"
        hosts = cluster.hosts()
        assert [(h.id, h.hostname) for h in hosts] == [(0, "n1"), (1, "n2"), (2, "n3")]
        logs = hostsfile.entries_dir(cluster.hosts_file).with_suffix(".logs")
        assert sorted(p.name for p in logs.glob("daemon-*.log")) == [f"daemon-{i}.log" for i in range(3)]
        for h, node in zip(hosts, (n1, n2, n3)):
            assert h.address.startswith(f"tcp://{node.address}:"), (h, node.address)

        # Python client on c1 writes; another Python client on c2 reads it back.
        assert cluster.py(c1, "write", "/data.bin", str(SIZE), "7")["size"] == SIZE
        assert cluster.py(c2, "verify", "/data.bin", str(SIZE), "7")["ok"]

        # gkfs-ctl on c2: stage a tree in, list it, stage it out with a checksum check.
        src = tmp_path / "stage-in"
        (src / "sub").mkdir(parents=True)
        (src / "a.txt").write_text("alpha\n")
        (src / "sub" / "b.bin").write_bytes(pattern(200_000, 3))
        cp = cluster.ctl(c2, "cp-in", str(src), "/in", "-q")
        assert cp.returncode == 0, cp.stderr
        cp = cluster.ctl(c2, "ls", "/in")
        assert cp.returncode == 0 and cp.stdout.split() == ["a.txt", "sub"], cp.stdout
        out = tmp_path / "stage-out"
        cp = cluster.ctl(c2, "cp-out", "/in", str(out), "--verify", "-q")
        assert cp.returncode == 0, cp.stderr
        assert (out / "sub" / "b.bin").read_bytes() == pattern(200_000, 3)

        # riscv64 programs with the preload under qemu, on c2: read what c1 wrote,
        # write a file that the Python client on c1 then reads.
        rv = rv_nodes(cluster)
        r = rv.run(c2, ["sha256sum", f"{MOUNT}/data.bin"])
        assert r.returncode == 0, r.stderr
        assert r.stdout.split()[0].decode() == hashlib.sha256(pattern(SIZE, 7)).hexdigest()
        local = tmp_path / "rv" / "from-rv.txt"
        local.write_bytes(pattern(300_000, 9))
        r = rv.run(c2, ["cp", str(local), f"{MOUNT}/from-rv.bin"])
        assert r.returncode == 0, r.stderr
        assert cluster.py(c1, "verify", "/from-rv.bin", "300000", "9")["ok"]

        # The data is on every node's disk: each node's own directory holds chunks.
        with Client(cluster.hosts_file) as fs:
            key = fs.stat_record("/data.bin")["data_key"]
            status = fs.status()
        assert cluster.chunk_nodes(key) == {"n1", "n2", "n3"}
        for h, s, node in zip(hosts, status, (n1, n2, n3)):
            assert s["rootdir"].startswith(str(cluster.node_root(node))), s["rootdir"]

        # gkfs-ctl status from a client node names every node.
        cp = cluster.ctl(c2, "status", "--json")
        assert cp.returncode == 0, cp.stderr
    finally:
        cluster.stop()
    # Stopped through mpirun on every node: entries and launch record gone;
    # the cluster record stays (fixed membership), no member registered.
    assert hostsfile.read_membership(cluster.hosts_file).slots == (None, None, None)
    assert not hostsfile.entries_dir(cluster.hosts_file).exists()
    assert "stopped" in cluster.logs()


def test_restart_keeps_acknowledged_data(make_cluster):
    """Stop through the launcher and start again on the same node-local dirs:
    everything acknowledged before the stop is there."""
    net, cluster = make_cluster(3, 1)
    c1 = net.node("c1")
    assert cluster.py(c1, "write", "/keep.bin", str(SIZE), "11")["ok"]
    cluster.stop()
    cluster.start()
    assert cluster.py(c1, "verify", "/keep.bin", str(SIZE), "11")["ok"]
    # The local stream (docs/protocol.md 1.1) stays inside a node's network
    # namespace: a client on a daemon's node reaches that member alone over
    # it, every other member over TCP (through links a test can cut); a
    # client on a node without a daemon, none.
    own = [h.hostname == "n2" for h in cluster.hosts()]
    assert sum(own) == 1
    assert cluster.py(net.node("n2"), "paths", "/keep.bin", "0", "0")["stream"] == own
    assert cluster.py(c1, "paths", "/keep.bin", "0", "0")["stream"] == [False] * 3


def test_listen_by_interface_network_and_wildcard(make_net, tmp_path):
    """A daemon resolves --listen on its own node; the hosts file gets the
    node's address, never 0.0.0.0 or loopback."""
    net = make_net(["n1"])
    n1 = net.nodes[0]
    import shutil
    exe = shutil.which("gkfs-daemon")
    for k, spec in enumerate(["eth0", str(net.subnet), "tcp://0.0.0.0:*", "auto", "tcp://eth0:0"]):
        hosts = tmp_path / f"hosts{k}"
        p = n1.popen([exe, "--hosts-file", str(hosts), "--rootdir", str(tmp_path / f"r{k}"), "--listen", spec,
                      "--processes", "1"])
        deadline = time.monotonic() + 30
        while not (hosts.exists() and hostsfile.read_membership(hosts).listed()):
            assert p.poll() is None, f"daemon with --listen {spec} exited {p.returncode}"
            assert time.monotonic() < deadline, f"daemon with --listen {spec} did not register"
            time.sleep(0.05)
        (h,) = hostsfile.read_hosts(hosts)
        assert h.address.startswith(f"tcp://{n1.address}:"), (spec, h.address)
        with Client(hosts, timeout=5) as fs:  # reachable from the root namespace over the bridge
            assert not isinstance(fs.status()[0], OSError)
        p.terminate()
        assert p.wait(30) == 0
    bad = n1.run([exe, "--hosts-file", str(tmp_path / "bad"), "--rootdir", str(tmp_path / "rbad"),
                  "--listen", "10.250.0.0/16"], text=True, timeout=60)
    assert bad.returncode == 1 and "no interface of this node (n1) has an address in 10.250.0.0/16" in bad.stderr
    bad = n1.run([exe, "--hosts-file", str(tmp_path / "bad"), "--rootdir", str(tmp_path / "rbad"),
                  "--listen", "ib7"], text=True, timeout=60)
    assert bad.returncode == 1 and "'ib7' is neither" in bad.stderr and "eth0" in bad.stderr


def test_riscv64_mpirun_ranks_on_two_nodes(make_cluster, rv_nodes):
    """An unmodified riscv64 MPI program started by riscv64 mpirun (Open MPI's
    PRRTE, under qemu) on c1 with one rank on c1 and one on c2 (prted reaches
    c2 through the nsenter "ssh"), LD_PRELOAD on mpirun reaching every rank;
    both ranks write and read gkfs files whose chunks are on n1..n3."""
    from e2e_harness import build_programs
    from mn_harness import mpi_pattern as pattern
    programs = build_programs()
    net, cluster = make_cluster(3, 2)
    c1 = net.node("c1")
    with Client(cluster.hosts_file) as fs:
        fs.mkdir("/mpi")
    rv = rv_nodes(cluster)
    block = 300_001
    r = rv.run(c1, ["mpirun", "--allow-run-as-root", "--display", "map", "-np", "2", "--host", "c1:1,c2:1",
                    "--map-by", "node", str(programs / "mpi_io"), f"{MOUNT}/mpi", str(block), str(rv.rv.workdir),
                    "mpiio"],
               env={"PRTE_MCA_plm_ssh_agent": str(cluster.agent), "PRTE_MCA_prte_if_include": "eth0",
                    "PMIX_MCA_ptl_tcp_if_include": "eth0", "OMPI_MCA_btl": "self,tcp",
                    "OMPI_MCA_btl_tcp_if_include": "eth0"})
    out = r.stdout.decode(errors="replace")
    assert r.returncode == 0, (out[-3000:], r.stderr.decode(errors="replace")[-3000:])
    assert "mpi_io: 2 ranks ok" in out and "mpi_io: MPI-IO ok" in out, out
    # The map PRRTE printed: one rank on each client node.
    nodes_with_procs = re.findall(r"Data for node: (\w+)\s.*?Num procs: (\d+)", out, flags=re.S)
    assert dict(nodes_with_procs) == {"c1": "1", "c2": "1"}, out[:3000]
    with Client(cluster.hosts_file) as fs:
        for k in range(2):
            assert fs.read_file(f"/mpi/rank-{k}.dat") == pattern(k, block)
        key = fs.stat_record("/mpi/mpiio.dat")["data_key"]
    assert cluster.chunk_nodes(key) == {"n1", "n2", "n3"}


def test_failed_launch_says_why_and_leaves_nothing(make_net, tmp_path):
    """Every daemon refuses to start (no address in the asked network): the
    launcher fails with the ids that are missing and the daemons' own reason,
    writes no hosts file, and a correct launch right after works."""
    net = make_net(["n1", "n2", "c1"])
    n1, n2, c1 = net.nodes
    cluster = NodeCluster(net, [n1, n2], c1, tmp_path / "gkfs")
    cp = cluster.ctl(c1, "cluster", "start", "--mpirun", "--host", f"{n1.address},{n2.address}",
                     "--rootdir", str(tmp_path / "nodes" / "%h"), "--listen", "10.250.0.0/16", "--timeout", "60",
                     "--processes-per-node", "1")
    assert cp.returncode == 1, (cp.stdout, cp.stderr)
    assert "missing ids 0, 1" in cp.stderr, cp.stderr
    assert "has an address in 10.250.0.0/16" in cp.stderr, cp.stderr
    assert cp.stdout == ""  # no export line: nothing to use
    entries = hostsfile.entries_dir(cluster.hosts_file)
    assert not (entries.is_dir() and [e for e in entries.iterdir() if e.name.isdigit()]), "no member registered"
    for n in (n1, n2):
        left = [p for p in n.pids_inside() if "gkfs-daemon" in open(f"/proc/{p}/cmdline").read()]
        assert not left, f"daemons left on {n.name}"
    cluster.start()
    assert len(cluster.hosts()) == 2
    cluster.stop()


def test_two_member_processes_per_node(make_cluster, tmp_path):
    """--processes-per-node 2 through mpirun: each node's daemon runs two
    member processes (ids 2*rank, 2*rank+1, root dirs daemon-<id> in the
    node's own directory), the cluster counts nodes x 2 members, a file is
    striped over all four, status groups them by node, stop leaves nothing."""
    net, cluster = make_cluster(2, 2, per_node=2)
    c1, c2 = net.node("c1"), net.node("c2")
    n1, n2 = cluster.daemons
    try:
        hosts = cluster.hosts()
        assert [(h.id, h.hostname) for h in hosts] == [(0, "n1"), (1, "n1"), (2, "n2"), (3, "n2")]
        assert hostsfile.read_record(cluster.hosts_file).members == 4
        for h in hosts:
            node = n1 if h.hostname == "n1" else n2
            assert h.address.startswith(f"tcp://{node.address}:"), h
        assert cluster.py(c1, "write", "/data.bin", str(SIZE), "5")["size"] == SIZE
        assert cluster.py(c2, "verify", "/data.bin", str(SIZE), "5")["ok"]
        with Client(cluster.hosts_file) as fs:
            status = fs.status()
        for h, s in zip(hosts, status):
            node = n1 if h.hostname == "n1" else n2
            assert s["rootdir"] == str(cluster.node_root(node) / f"daemon-{h.id}"), s["rootdir"]
            assert s["bytes_stored"] > 0, (h, s)  # every member holds chunks of the file
        cp = cluster.ctl(c2, "status")
        assert cp.returncode == 0 and "4/4 members up on 2 node(s)" in cp.stdout, cp.stdout
    finally:
        cluster.stop()
    assert hostsfile.read_membership(cluster.hosts_file).slots == (None,) * 4
    for n in (n1, n2):
        left = [p for p in n.pids_inside() if "gkfs-daemon" in open(f"/proc/{p}/cmdline").read()]
        assert not left, f"daemons left on {n.name}"
