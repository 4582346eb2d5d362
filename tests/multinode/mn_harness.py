"""Helpers and fixtures of the multi-host suite (conftest.py imports the fixtures): nodes are network namespaces
(netns.py) on one machine, gkfs is started on them the way a user on a
cluster starts it (`gkfs-ctl cluster start --mpirun` from another node,
mpirun's remote shell being nsenter into the node), and clients run in
other namespaces: Python, gkfs-ctl, riscv64 programs under qemu with the
preload. Needs root; a missing tool fails, never skips.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "e2e"))

from e2e_harness import QEMU, Riscv64Preload, need  # noqa: E402
from gkfs_client import hostsfile, native_paths  # noqa: E402
from mn_netns import Network, Node, need_tools  # noqa: E402

MOUNT = "/gkfs-mn"
CHUNK = 64 * 1024
RPC_TIMEOUT_S = 2  # during a node cut: how soon a client must give up
CALM_TIMEOUT_S = 15  # everything else: generous, the CI machine may be loaded


def mpi_env(agent: Path) -> dict[str, str]:
    """Open MPI's mpirun run as root, reaching the nodes through the nsenter agent."""
    return {"OMPI_MCA_plm_rsh_agent": str(agent), "OMPI_ALLOW_RUN_AS_ROOT": "1",
            "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1", "OMPI_MCA_btl_tcp_if_include": "eth0",
            "OMPI_MCA_oob_tcp_if_include": "eth0"}


def mpi_pattern(writer: int, n: int) -> bytes:
    """The bytes mpi_io.c's pattern() gives rank ``writer`` (as tests/e2e/test_e2e_mpi.py)."""
    m = (1 << 64) - 1
    k = ((writer + 1) * 40503) & m
    out = bytearray(n)
    for i in range(n):
        x = (i * 2654435761 + k) & m
        out[i] = (x ^ (x >> 13) ^ (x >> 29)) & 0xFF
    return bytes(out)


class NodeCluster:
    """gkfs on some nodes of a Network, launched from a client node."""

    def __init__(self, net: Network, daemons: list[Node], launcher: Node, base: Path, mount: str = MOUNT,
                 chunk_size: int = CHUNK, per_node: int = 1):
        # per_node: member processes per node daemon; 1 by default, as the
        # tests here mean "the daemon of node n" (cut a node, kill it...).
        self.per_node = per_node
        self.net = net
        self.daemons = daemons
        self.launcher = launcher
        self.base = base
        self.mount = mount
        self.chunk_size = chunk_size
        self.hosts_file = base / "shared" / "hosts"
        base.mkdir(parents=True, exist_ok=True)
        self.agent = net.rsh_agent(base / "nsrsh")
        self.env = dict(os.environ, LIBGKFS_HOSTS_FILE=str(self.hosts_file), LIBGKFS_RPC_TIMEOUT=str(CALM_TIMEOUT_S),
                        **mpi_env(self.agent))
        self.started = False
        self.start_seconds = 0.0

    def node_root(self, node: Node) -> Path:
        """Where a node keeps its data: its own directory (node-local storage)."""
        return self.base / "nodes" / node.name

    def ctl(self, node: Node, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        exe = shutil.which("gkfs-ctl")
        need(exe is not None, "gkfs-ctl not on PATH: pip install -e .")
        return node.run([exe, "--hosts-file", str(self.hosts_file), *args], env=self.env, text=True,
                        timeout=timeout)

    def start(self) -> "NodeCluster":
        t0 = time.monotonic()
        cp = self.ctl(self.launcher, "cluster", "start", "--mpirun",
                      "--host", ",".join(n.address for n in self.daemons),
                      "--rootdir", str(self.base / "nodes" / "%h"), "--chunk-size", str(self.chunk_size),
                      "--mount", self.mount, "--processes-per-node", str(self.per_node), "-q")
        self.start_seconds = time.monotonic() - t0
        if cp.returncode != 0:
            pytest.fail(f"gkfs-ctl cluster start --mpirun failed ({cp.returncode}):\n{cp.stdout}\n{cp.stderr}",
                        pytrace=False)
        assert cp.stdout.strip() == f"export LIBGKFS_HOSTS_FILE={self.hosts_file}", cp.stdout
        self.started = True
        return self

    def stop(self) -> None:
        cp = self.ctl(self.launcher, "cluster", "stop")
        self.started = False
        if cp.returncode != 0:
            pytest.fail(f"gkfs-ctl cluster stop failed ({cp.returncode}):\n{cp.stdout}\n{cp.stderr}\n"
                        f"{self.logs()}", pytrace=False)

    def logs(self) -> str:
        out = []
        for p in sorted(Path(f"{self.hosts_file}.logs").glob("*.log")):
            out.append(f"--- {p.name}\n{p.read_text(errors='replace')[-2500:]}")
        return "\n".join(out)

    def hosts(self) -> list[hostsfile.Host]:
        return hostsfile.read_hosts(self.hosts_file)

    def py(self, node: Node, *args: str, timeout: float = 60) -> dict:
        """node_client.py inside a node; its last JSON line."""
        cp = node.run([sys.executable, str(HERE / "node_client.py"), str(self.hosts_file), *args],
                      env=self.env, text=True, timeout=timeout)
        lines = [ln for ln in cp.stdout.splitlines() if ln.startswith("{")]
        if cp.returncode != 0 or not lines:
            pytest.fail(f"node_client {args} on {node.name} failed ({cp.returncode}):\n{cp.stdout}\n{cp.stderr}",
                        pytrace=False)
        return json.loads(lines[-1])

    def chunk_nodes(self, data_key: str) -> set[str]:
        """Names of the nodes whose own directory holds chunk files of the key."""
        import hashlib
        key_dir = hashlib.sha256(data_key.encode()).hexdigest()
        return {n.name for n in self.daemons
                if any(self.node_root(n).glob(f"daemon-*/chunks/{key_dir}/*"))}


@pytest.fixture
def make_net():
    """Factory: make_net(["n1", "n2", ...]) -> Network; torn down even on failure."""
    made: list[Network] = []

    def make(names: list[str]) -> Network:
        net = Network()
        made.append(net)
        for name in names:
            net.add_node(name)
        return net

    need_tools("mpirun")
    yield make
    for net in made:
        net.close()


@pytest.fixture
def make_cluster(make_net, tmp_path):
    """Factory: make_cluster(n_daemons, n_clients) -> (net, cluster started);
    stopped cleanly at teardown unless the test did."""
    made: list[NodeCluster] = []

    def make(n_daemons: int = 3, n_clients: int = 2, per_node: int = 1) -> tuple[Network, NodeCluster]:
        net = make_net([f"n{i + 1}" for i in range(n_daemons)] + [f"c{i + 1}" for i in range(n_clients)])
        daemons = [n for n in net.nodes if n.name.startswith("n")]
        c = NodeCluster(net, daemons, net.node("c1"), tmp_path / f"gkfs{len(made)}", per_node=per_node)
        made.append(c)
        return net, c.start()

    yield make
    for c in made:
        if c.started:
            c.stop()


# ------------------------------------------------------------ riscv64 clients

@pytest.fixture(scope="session")
def rv_sysroot() -> Path:
    need(os.access(QEMU, os.X_OK), f"{QEMU} missing: deploy/setup-debian.sh --no-pip")
    try:
        return native_paths.riscv64_sysroot()
    except (native_paths.NativeNotBuilt, subprocess.CalledProcessError) as exc:
        pytest.fail(f"riscv64 sysroot: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def rv_preload() -> Path:
    try:
        return native_paths.intercept_library("riscv64")
    except native_paths.NativeNotBuilt as exc:
        pytest.fail(str(exc), pytrace=False)


class NodeRiscv64:
    """riscv64 programs under qemu with the preload, run inside a node."""

    def __init__(self, sysroot: Path, lib: Path, cluster: NodeCluster, work: Path):
        work.mkdir(parents=True, exist_ok=True)
        self.rv = Riscv64Preload(sysroot, lib, cluster, work, work)
        self.cluster = cluster

    def run(self, node: Node, argv: list[str], env: dict[str, str] | None = None,
            timeout: float = 180) -> subprocess.CompletedProcess:
        prog = argv[0] if "/" in argv[0] else self.rv.bin(argv[0])
        e = self.rv.env(True, env)
        e["LIBGKFS_RPC_TIMEOUT"] = str(CALM_TIMEOUT_S)
        try:
            return node.run([QEMU, prog, *argv[1:]], env=e, timeout=timeout, cwd=str(self.rv.workdir))
        except subprocess.TimeoutExpired as exc:
            pytest.fail(f"riscv64 {argv} on {node.name} hung for {timeout} s: {exc.stderr!r}", pytrace=False)


@pytest.fixture
def rv_nodes(rv_sysroot, rv_preload, tmp_path):
    """Factory: rv_nodes(cluster) -> NodeRiscv64."""
    return lambda cluster: NodeRiscv64(rv_sysroot, rv_preload, cluster, tmp_path / "rv")
