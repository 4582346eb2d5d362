"""Several "hosts" on this one machine: Linux network namespaces.

``Network`` makes a bridge in the root namespace (address .1 of a private
/24 in 10.87.0.0/16, which it picks so that it does not clash with another
run) and ``add_node(name)`` one node: a named network namespace (``ip netns``)
joined to the bridge by a veth pair (its end is ``eth0`` inside, address
.10+i), plus its own UTS namespace with hostname ``name``. A small holder
process (``sleep``) keeps both namespaces; ``node.run``/``node.popen`` run a
command inside them with ``nsenter``. Nodes share the file system (the
"shared file system" is any common directory; node-local storage is a
per-node directory).

``node.cut()`` sets the node's link down (its bridge port), ``node.heal()``
brings it back. ``close()`` kills every process started through the nodes,
then the holders, and deletes the namespaces, veths and bridge; it runs even
when a test fails (the fixtures call it in a finally), and so does an atexit
hook for an interrupted run. Traffic never leaves the machine: the bridge has
no uplink and the namespaces have no default route.
"""
from __future__ import annotations

import atexit
import ipaddress
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

TOOLS = ("ip", "nsenter", "unshare")


def need_tools(*extra: str) -> None:
    """A missing tool fails loudly (never skips)."""
    missing = [t for t in (*TOOLS, *extra) if not shutil.which(t)]
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: run deploy/setup-debian.sh --no-pip", pytrace=False)
    if os.geteuid() != 0:
        pytest.fail("the multi-host tests need root (network namespaces, veth links, a bridge)", pytrace=False)


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    cp = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if check and cp.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({cp.returncode}): {cp.stderr.strip()}")
    return cp


def _used_subnets() -> set[int]:
    out = sh("ip", "-4", "-o", "addr", "show").stdout
    used = set()
    for line in out.splitlines():
        for word in line.split():
            if word.startswith("10.87."):
                used.add(int(word.split(".")[2]))
    return used


@dataclass
class Node:
    net: "Network"
    name: str
    index: int
    address: str
    netns: str
    host_veth: str
    holder: subprocess.Popen
    procs: list[subprocess.Popen] = field(default_factory=list)

    def prefix(self) -> list[str]:
        # Absolute path: the command's own environment may have another PATH.
        return [shutil.which("nsenter") or "/usr/bin/nsenter", "-t", str(self.holder.pid), "-n", "-u", "--"]

    def run(self, argv: list[str], timeout: float = 120, **kw) -> subprocess.CompletedProcess:
        kw.setdefault("capture_output", True)
        return subprocess.run([*self.prefix(), *argv], timeout=timeout, **kw)

    def popen(self, argv: list[str], **kw) -> subprocess.Popen:
        p = subprocess.Popen([*self.prefix(), *argv], start_new_session=True, **kw)
        self.procs.append(p)
        return p

    def pids_inside(self) -> list[int]:
        """Every process in this node's network namespace (what we started there,
        directly or through mpirun/srun), the holder included."""
        try:
            mine = os.stat(f"/proc/{self.holder.pid}/ns/net").st_ino
        except OSError:
            return []
        pids = []
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    if os.stat(f"/proc/{d}/ns/net").st_ino == mine:
                        pids.append(int(d))
                except OSError:
                    pass
        return pids

    def kill_all_but_holder(self) -> None:
        for p in self.procs:
            _kill_group(p)
        for pid in self.pids_inside():
            if pid != self.holder.pid:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def kill_all(self) -> None:
        self.kill_all_but_holder()
        _kill_group(self.holder)

    def cut(self) -> None:
        sh("ip", "link", "set", self.host_veth, "down")

    def heal(self) -> None:
        sh("ip", "link", "set", self.host_veth, "up")


class Network:
    def __init__(self, tag: str | None = None):
        need_tools()
        self.tag = tag or f"{os.getpid() % 100000}"
        used = _used_subnets()
        third = next(k for k in range(10 + os.getpid() % 200, 10 + os.getpid() % 200 + 256)
                     if k % 256 not in used and k % 256 >= 10) % 256
        self.subnet = ipaddress.IPv4Network(f"10.87.{third}.0/24")
        self.gateway = str(self.subnet.network_address + 1)
        self.bridge = f"gkbr{self.tag}"[:15]
        self.nodes: list[Node] = []
        self._closed = False
        atexit.register(self.close)
        sh("ip", "link", "add", self.bridge, "type", "bridge")
        sh("ip", "addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        sh("ip", "link", "set", self.bridge, "up")

    def add_node(self, name: str) -> Node:
        i = len(self.nodes)
        netns = f"gkfs-{self.tag}-{name}"
        host_veth = f"gkv{self.tag}-{i}"[:15]
        address = str(self.subnet.network_address + 10 + i)
        sh("ip", "netns", "add", netns)
        try:
            sh("ip", "link", "add", host_veth, "type", "veth", "peer", "name", f"gkp{self.tag}-{i}"[:15])
            sh("ip", "link", "set", f"gkp{self.tag}-{i}"[:15], "netns", netns)
            ns = ["ip", "netns", "exec", netns]
            sh(*ns, "ip", "link", "set", f"gkp{self.tag}-{i}"[:15], "name", "eth0")
            sh(*ns, "ip", "addr", "add", f"{address}/24", "dev", "eth0")
            sh(*ns, "ip", "link", "set", "eth0", "up")
            sh(*ns, "ip", "link", "set", "lo", "up")
            sh("ip", "link", "set", host_veth, "master", self.bridge)
            sh("ip", "link", "set", host_veth, "up")
            holder = subprocess.Popen([*ns, "unshare", "--uts", "sh", "-c", f"hostname {name} && exec sleep infinity"],
                                      stdin=subprocess.DEVNULL, start_new_session=True)
        except BaseException:
            sh("ip", "link", "del", host_veth, check=False)
            sh("ip", "netns", "del", netns, check=False)
            raise
        node = Node(self, name, i, address, netns, host_veth, holder)
        self.nodes.append(node)
        deadline = time.monotonic() + 10
        while True:  # the holder has set the hostname once nsenter sees it
            cp = subprocess.run(["nsenter", "-t", str(holder.pid), "-u", "hostname"], capture_output=True, text=True)
            if cp.stdout.strip() == name:
                break
            if time.monotonic() > deadline or holder.poll() is not None:
                raise RuntimeError(f"node {name}: namespace holder did not come up ({cp.stderr.strip()})")
            time.sleep(0.02)
        return node

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    def rsh_agent(self, path: Path) -> Path:
        """A remote-shell agent for mpirun: `agent NODE CMD...` runs CMD in NODE (name or address)."""
        cases = "\n".join(f"  {n.name}|{n.address}) pid={n.holder.pid} ;;" for n in self.nodes)
        path.write_text(f"""#!/bin/sh
# mpirun's "ssh" into a network-namespace node of the gkfs tests
node=$1; shift
case $node in
{cases}
  *) echo "no such test node: $node" >&2; exit 255 ;;
esac
exec {shutil.which("nsenter") or "/usr/bin/nsenter"} -t $pid -n -u -- /bin/sh -c "$*"
""")
        path.chmod(0o755)
        return path

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for n in self.nodes:
            for p in n.procs:
                _kill_group(p)
        for n in self.nodes:
            n.kill_all()
        for n in self.nodes:
            sh("ip", "link", "del", n.host_veth, check=False)
            sh("ip", "netns", "del", n.netns, check=False)
        sh("ip", "link", "del", self.bridge, check=False)


def _kill_group(p: subprocess.Popen) -> None:
    if p.poll() is None:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        pass
