#!/usr/bin/env python3
"""Time from launch to "all daemons up" on 3 and 8 network-namespace nodes.

For each node count N: `gkfs-ctl cluster start --mpirun` (Open MPI's mpirun,
nsenter as its remote shell) from a client namespace, and `cluster start
--slurm` inside `salloc -N N` on real Slurm (munge, slurmctld, one slurmd per
namespace), each until the command returns (every daemon registered and
answered ping), then `cluster stop`. Baseline, measured in the same run: the
local `gkfs-ctl cluster start -n N` on loopback. Prints seconds and ratios
to the baseline. Needs root (network namespaces); nothing leaves the machine.

    sudo python3 bench/launch_bench.py [--nodes 3 8] [--repeat 3] [--no-slurm]
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests" / "multinode"), str(REPO / "tests" / "e2e")]

from mn_harness import NodeCluster  # noqa: E402
from mn_netns import Network  # noqa: E402
from mn_slurm import Slurm  # noqa: E402


def ctl() -> str:
    exe = shutil.which("gkfs-ctl")
    if not exe:
        sys.exit("gkfs-ctl not on PATH: pip install -e .")
    return exe


def local_start(n: int, base: Path) -> float:
    hosts = base / "hosts"
    t0 = time.monotonic()
    subprocess.run([ctl(), "--hosts-file", str(hosts), "cluster", "start", "-n", str(n), "--rootdir",
                    str(base / "d")], check=True, capture_output=True)
    took = time.monotonic() - t0
    subprocess.run([ctl(), "--hosts-file", str(hosts), "cluster", "stop"], check=True, capture_output=True)
    return took


def mpirun_start(n: int, base: Path) -> float:
    net = Network()
    try:
        for i in range(n):
            net.add_node(f"n{i + 1}")
        net.add_node("c1")
        cluster = NodeCluster(net, net.nodes[:n], net.node("c1"), base)
        cluster.start()
        took = cluster.start_seconds
        cluster.stop()
        return took
    finally:
        net.close()


def slurm_start(n: int, base: Path) -> float:
    net = Network()
    slurm = None
    try:
        for i in range(n):
            net.add_node(f"n{i + 1}")
        slurm = Slurm(net, net.nodes, base / "slurm").start(timeout=120)
        shared = base / "shared"
        shared.mkdir(mode=0o700)
        script = (f"set -e; export PATH={Path(sys.executable).parent}:$PATH; "
                  f"t0=$(date +%s.%N); eval \"$(gkfs-ctl cluster start --slurm -q --processes-per-node 1 "
                  f"--rootdir {base}/nodes/%h "
                  f"--hosts-file {shared}/hosts)\"; t1=$(date +%s.%N); echo \"UP $t0 $t1\"; gkfs-ctl cluster stop")
        cp = slurm.run(["salloc", f"--nodes={n}", "sh", "-c", script], timeout=600)
        m = re.search(r"UP (\S+) (\S+)", cp.stdout)
        if cp.returncode != 0 or not m:
            raise RuntimeError(f"salloc run failed ({cp.returncode}):\n{cp.stdout}\n{cp.stderr}\n{slurm.logs()}")
        return float(m.group(2)) - float(m.group(1))
    finally:
        if slurm:
            slurm.close()
        net.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", type=int, nargs="+", default=[3, 8])
    ap.add_argument("--repeat", type=int, default=3, help="runs per point; the median is shown (default 3)")
    ap.add_argument("--no-slurm", action="store_true", help="skip the Slurm runs")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("launch_bench needs root (network namespaces)")
    engines = [("local -n N (baseline)", local_start), ("mpirun, N namespaces", mpirun_start)]
    if not args.no_slurm:
        engines.append(("slurm srun, N namespaces", slurm_start))
    print(f"{'engine':28} {'N':>3} {'launch->all up (s)':>19} {'x baseline':>11}")
    for n in args.nodes:
        base_t = None
        for name, fn in engines:
            runs = []
            for _ in range(args.repeat):
                with tempfile.TemporaryDirectory(prefix="gkfs-launch-bench-") as d:
                    runs.append(fn(n, Path(d)))
            med = statistics.median(runs)
            base_t = base_t or med
            print(f"{name:28} {n:>3} {med:>19.2f} {med / base_t:>10.2f}x", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
