"""Real Slurm on network-namespace nodes, from Debian's packages.

One munged (its own key and socket, shared by every node: they share the
file system), slurmctld in the root namespace on the bridge address (in its
own UTS namespace, hostname = SlurmctldHost), and one slurmd per node inside
that node's namespaces (slurmd takes its node name from the hostname). All
state, spool, logs and the config live under one directory; every client
command gets SLURM_CONF. cgroup v1 plugin with nothing constrained (this
machine mounts a hybrid cgroup tree that slurmd's autodetection rejects).
Teardown kills what was started, by pid.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from mn_netns import Network, Node

TOOLS = ("munged", "mungekey", "slurmctld", "slurmd", "srun", "sbatch", "sinfo", "scontrol")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


class Slurm:
    def __init__(self, net: Network, nodes: list[Node], base: Path):
        missing = [t for t in TOOLS if not shutil.which(t)]
        if missing:
            pytest.fail(f"missing {', '.join(missing)}: deploy/setup-debian.sh installs slurmd, slurmctld, "
                        "slurm-client and munge", pytrace=False)
        self.net, self.nodes, self.base = net, nodes, base
        self.procs: list[subprocess.Popen] = []
        for d in ("etc", "state", "spool", "log", "run", "munge"):
            (base / d).mkdir(parents=True, exist_ok=True)
        (base / "munge").chmod(0o711)
        self.conf = base / "etc" / "slurm.conf"
        self.munge_socket = base / "munge" / "munge.socket"
        self.env = dict(os.environ, SLURM_CONF=str(self.conf))
        self.ctl_host = f"gkctl{net.tag}"[:20]

    def write_config(self) -> None:
        b = self.base
        nodes = "\n".join(f"NodeName={n.name} NodeAddr={n.address} CPUs=2 State=UNKNOWN" for n in self.nodes)
        self.conf.write_text(f"""# written by the gkfs multi-host tests
ClusterName=gkfs{self.net.tag}
SlurmctldHost={self.ctl_host}({self.net.gateway})
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={self.munge_socket}
SlurmUser=root
SlurmdUser=root
StateSaveLocation={b}/state
SlurmdSpoolDir={b}/spool/%n
SlurmctldPidFile={b}/run/slurmctld.pid
SlurmdPidFile={b}/run/slurmd-%n.pid
SlurmctldLogFile={b}/log/slurmctld.log
SlurmdLogFile={b}/log/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/linear
SchedulerType=sched/builtin
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
ReturnToService=2
SlurmdTimeout=30
InactiveLimit=0
KillWait=10
{nodes}
PartitionName=gkfs Nodes=ALL Default=YES MaxTime=INFINITE State=UP
""")
        (b / "etc" / "cgroup.conf").write_text(
            "CgroupPlugin=cgroup/v1\nCgroupAutomount=no\nConstrainCores=no\nConstrainRAMSpace=no\n")

    def _spawn(self, argv: list[str], log: str, node: Node | None = None) -> subprocess.Popen:
        out = open(self.base / "log" / log, "ab")
        try:
            if node is None:
                p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=self.env, start_new_session=True)
            else:
                p = node.popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=self.env)
        finally:
            out.close()
        self.procs.append(p)
        return p

    def start(self, timeout: float = 60) -> "Slurm":
        self.write_config()
        m = self.base / "munge"
        key = m / "munge.key"
        subprocess.run(["mungekey", "-c", "-k", str(key)], check=True, capture_output=True)
        self._spawn(["munged", "-F", "--force", f"--key-file={key}", f"--socket={self.munge_socket}",
                     f"--pid-file={m}/munged.pid", f"--seed-file={m}/munged.seed", f"--log-file={m}/munged.log"],
                    "munged.out")
        self._wait(lambda: self.munge_socket.exists(), "munged socket", 10)
        self._spawn(["unshare", "--uts", "sh", "-c", f"hostname {self.ctl_host} && exec slurmctld -D -i -f {self.conf}"],
                    "slurmctld.out")
        for n in self.nodes:
            self._spawn(["slurmd", "-D", "-f", str(self.conf)], f"slurmd-{n.name}.out", node=n)
        self._wait(self._all_idle, "all nodes idle in sinfo", timeout)
        return self

    def _all_idle(self) -> bool:
        cp = subprocess.run(["sinfo", "-h", "-N", "-o", "%N %T"], capture_output=True, text=True, env=self.env)
        states = dict(line.split() for line in cp.stdout.splitlines() if line.strip())
        return len(states) == len(self.nodes) and all(s == "idle" for s in states.values())

    def _wait(self, cond, what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            for p in self.procs:
                if p.poll() is not None:
                    pytest.fail(f"{p.args} exited {p.returncode} while waiting for {what}:\n{self.logs()}",
                                pytrace=False)
            if time.monotonic() > deadline:
                pytest.fail(f"no {what} after {timeout} s:\n{self.logs()}", pytrace=False)
            time.sleep(0.2)

    def logs(self) -> str:
        parts = []
        for p in sorted((self.base / "log").glob("*")):
            parts.append(f"--- {p.name}\n{p.read_text(errors='replace')[-2000:]}")
        return "\n".join(parts)

    def run(self, argv: list[str], timeout: float = 300, **kw) -> subprocess.CompletedProcess:
        return subprocess.run(argv, env=kw.pop("env", self.env), capture_output=True, text=True, timeout=timeout, **kw)

    def close(self) -> None:
        # slurmds and their job steps first (they live in the nodes), then slurmctld, then munged.
        for n in self.nodes:
            n.kill_all_but_holder()
        for p in reversed(self.procs):
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for p in reversed(self.procs):
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(5)
