#!/usr/bin/env python3
"""End-to-end benchmark of gkfs through the preload library (not a test).

One riscv64 program, bench/programs/fsbench.c (built by
deploy/build-e2e-programs.sh), runs unchanged under qemu-riscv64-static in
three set-ups, all measured in this one run:

  local        on the local file system, no preload (the baseline)
  local+hook   on the local file system with libgkfs_intercept.so preloaded
               and pointed at the cluster (every call goes through the hook,
               which passes it to the kernel: the interception overhead)
  gkfs         under the mount prefix of a local cluster of N daemons on
               loopback, through libgkfs_intercept.so (over each daemon's
               local stream, docs/protocol.md 1.1)
  gkfs-tcp     with --tcp: the same with LIBGKFS_LOCAL_STREAM=off (ZeroMQ
               over TCP), in the same rotation: a same-run A/B of the two
               transports, with the CPU time each run cost the client
               (qemu) and the daemons

For reference, the same phases through the Python Client (host-native
Python, not under qemu) against the same cluster: when gkfs through the
preload is close to it, the daemons, not the C client, set the pace.

Phases: create / stat / remove of F empty files (ops/s), sequential write
(with fsync) and read back of M MiB (MiB/s). Each set-up runs R times in
rotation; the best of R is kept per phase. Printed as ratios against the
baseline (the machine is a noisy 2-core VM, where qemu, the daemons and
this script share the cores: quote ratios, not absolute rates).

    python3 bench/e2e_bench.py [--files F] [--mib M] [--repeat R] [--daemons N]
                               [--chunk-size BYTES] [--io-kib K] [--tcp] [--json]

Needs: deploy/riscv64-sysroot.sh, deploy/build-native.sh, pip install -e .
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from gkfs_client import native_paths  # noqa: E402
from gkfs_client.client import Client  # noqa: E402

QEMU = "/usr/bin/qemu-riscv64-static"
MOUNT = "/gkfs-bench"
PHASES = [("create", "create_s", "ops"), ("stat", "stat_s", "ops"), ("remove", "remove_s", "ops"),
          ("write", "write_s", "mib"), ("read", "read_s", "mib")]


def die(msg: str) -> None:
    sys.exit(f"e2e_bench: {msg}")


def build_programs() -> Path:
    cp = subprocess.run(["bash", str(REPO / "deploy/build-e2e-programs.sh")], capture_output=True, text=True)
    if cp.returncode != 0:
        die(f"deploy/build-e2e-programs.sh failed:\n{cp.stderr}")
    return Path(cp.stdout.strip().splitlines()[-1])


class Cluster:
    def __init__(self, base: Path, n: int, chunk_size: int):
        self.base, self.n, self.chunk_size = base, n, chunk_size
        self.hosts = base / "hosts"
        self.env = dict(os.environ, LIBGKFS_HOSTS_FILE=str(self.hosts))

    def ctl(self, *args: str) -> None:
        exe = shutil.which("gkfs-ctl") or die("gkfs-ctl not on PATH (pip install -e .)")
        cp = subprocess.run([exe, "--hosts-file", str(self.hosts), *args], env=self.env,
                            capture_output=True, text=True, timeout=120)
        if cp.returncode != 0:
            die(f"gkfs-ctl {' '.join(args)} failed:\n{cp.stdout}\n{cp.stderr}")

    def __enter__(self) -> "Cluster":
        self.ctl("cluster", "start", "-n", str(self.n), "--rootdir", str(self.base / "daemons"),
                 "--chunk-size", str(self.chunk_size), "--mount", MOUNT, "--log-level", "warning")
        return self

    def __exit__(self, *exc) -> None:
        self.ctl("cluster", "stop")

    def daemon_cpu(self) -> float:
        """CPU seconds (user + system) the daemons used so far."""
        from gkfs_client import hostsfile
        tick = os.sysconf("SC_CLK_TCK")
        total = 0.0
        for h in hostsfile.read_hosts(self.hosts):
            fields = Path(f"/proc/{h.pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        return total


def children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run_fsbench(prog: Path, sysroot: Path, directory: str, files: int, mib: int, io_kib: int,
                preload: Path | None, cluster: Cluster | None, workdir: Path,
                extra_env: dict | None = None) -> dict:
    env = {"PATH": f"{sysroot}/usr/bin", "QEMU_LD_PREFIX": str(sysroot), "LC_ALL": "C",
           "HOME": str(workdir), "TMPDIR": str(workdir)}
    if preload:
        env["LD_PRELOAD"] = str(preload)
        env["LIBGKFS_HOSTS_FILE"] = str(cluster.hosts)
        env["LIBGKFS_MOUNT"] = MOUNT
    env.update(extra_env or {})
    cpu0, dcpu0 = children_cpu(), cluster.daemon_cpu()
    cp = subprocess.run([QEMU, str(prog), directory, str(files), str(mib), str(io_kib)], env=env,
                        capture_output=True, text=True, timeout=1800, cwd=workdir)
    cpu, dcpu = children_cpu() - cpu0, cluster.daemon_cpu() - dcpu0
    if cp.returncode != 0:
        die(f"fsbench in {directory} ({'preload' if preload else 'bare'}) failed ({cp.returncode}):\n"
            f"{cp.stdout}\n{cp.stderr}")
    res = json.loads(cp.stdout.strip().splitlines()[-1])
    res.update(cpu_client=cpu, cpu_daemons=dcpu)
    return res


def run_python_client(cluster: "Cluster", files: int, mib: int, io_kib: int) -> dict:
    """fsbench's phases through the Python Client, timed the same way."""
    io = io_kib * 1024
    buf = bytes((i * 131 + (i >> 9)) & 0xFF for i in range(io))
    with Client(cluster.hosts) as c:
        work = f"/bench/py-{os.getpid()}"
        c.mkdir(work)
        t0 = time.monotonic()
        for i in range(files):
            c.close(c.open(f"{work}/f{i:06d}", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        t1 = time.monotonic()
        for i in range(files):
            c.stat(f"{work}/f{i:06d}")
        t2 = time.monotonic()
        for i in range(files):
            c.unlink(f"{work}/f{i:06d}")
        t3 = time.monotonic()
        total = mib << 20
        fd = c.open(f"{work}/data", os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o644)
        t4 = time.monotonic()
        done = 0
        while done < total:
            done += c.write(fd, buf[:min(io, total - done)])
        c.fsync(fd)
        c.close(fd)
        t5 = time.monotonic()
        fd = c.open(f"{work}/data", os.O_RDONLY)
        done = 0
        while done < total:
            got = c.read(fd, min(io, total - done))
            if got != buf[:len(got)] or not got:
                die("python client read back wrong data")
            done += len(got)
        c.close(fd)
        t6 = time.monotonic()
        c.unlink(f"{work}/data")
        c.rmdir(work)
    return {"files": files, "mib": mib, "create_s": t1 - t0, "stat_s": t2 - t1, "remove_s": t3 - t2,
            "write_s": t5 - t4, "read_s": t6 - t5}


def rate(res: dict, phase: str, key: str, kind: str) -> float:
    secs = max(res[key], 1e-9)
    return (res["files"] if kind == "ops" else res["mib"]) / secs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=500, help="files created/statted/removed (default 500)")
    ap.add_argument("--mib", type=int, default=64, help="MiB written and read (default 64)")
    ap.add_argument("--io-kib", type=int, default=1024, help="bytes per write/read call, KiB (default 1024)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per set-up, best kept (default 3)")
    ap.add_argument("--daemons", type=int, default=3, help="daemons in the cluster (default 3)")
    ap.add_argument("--chunk-size", type=int, default=512 * 1024, help="cluster chunk size (default 512 KiB)")
    ap.add_argument("--tcp", action="store_true",
                    help="also run gkfs with LIBGKFS_LOCAL_STREAM=off (ZeroMQ/TCP) in the rotation: "
                         "an A/B of the local stream")
    ap.add_argument("--json", action="store_true", help="also print the raw results as JSON")
    args = ap.parse_args()

    if not os.access(QEMU, os.X_OK):
        die(f"{QEMU} missing (deploy/setup-debian.sh)")
    sysroot = native_paths.riscv64_sysroot()
    lib = native_paths.intercept_library("riscv64")
    prog = build_programs() / "fsbench"

    with tempfile.TemporaryDirectory(prefix="gkfs-e2e-bench.") as tmp:
        tmp = Path(tmp)
        local = tmp / "local"
        work = tmp / "work"
        local.mkdir()
        work.mkdir()
        with Cluster(tmp / "cluster", args.daemons, args.chunk_size) as cluster:
            with Client(cluster.hosts) as c:
                c.mkdir("/bench")
            setups = {
                "local": (str(local), None, None),
                "local+hook": (str(local), lib, None),
                "gkfs": (f"{MOUNT}/bench", lib, None),
            }
            if args.tcp:
                setups["gkfs-tcp"] = (f"{MOUNT}/bench", lib, {"LIBGKFS_LOCAL_STREAM": "off"})
            runs: dict[str, list[dict]] = {k: [] for k in [*setups, "py-client"]}
            t0 = time.monotonic()
            for r in range(args.repeat):
                for name, (directory, preload, extra) in setups.items():
                    runs[name].append(run_fsbench(prog, sysroot, directory, args.files, args.mib,
                                                  args.io_kib, preload, cluster, work, extra))
                runs["py-client"].append(run_python_client(cluster, args.files, args.mib, args.io_kib))
            wall = time.monotonic() - t0
            with Client(cluster.hosts) as c:
                left = c.listdir("/bench")
            if left:
                die(f"fsbench left {left} in gkfs:/bench")

    best = {name: {label: max(rate(res, label, key, kind) for res in rs) for label, key, kind in PHASES}
            for name, rs in runs.items()}
    print_table(best, args, wall)
    if args.tcp:
        print_ab(best, runs)
    if args.json:
        print(json.dumps({"args": vars(args), "best": best, "runs": runs}, indent=2))
    return 0


def print_ab(best: dict, runs: dict) -> None:
    """gkfs over the local stream against gkfs over ZeroMQ/TCP, same run."""
    print("local stream (gkfs) vs ZeroMQ/TCP (gkfs-tcp, LIBGKFS_LOCAL_STREAM=off), best of each:")
    for label, _key, kind in PHASES:
        g, t = best["gkfs"][label], best["gkfs-tcp"][label]
        unit = "ops/s" if kind == "ops" else "MiB/s"
        print(f"  {label:>7} ({unit}): {g:>10,.1f} vs {t:>10,.1f}  ratio {g / t:.2f}")
    for who in ("client", "daemons"):
        g = sorted(r[f"cpu_{who}"] for r in runs["gkfs"])
        t = sorted(r[f"cpu_{who}"] for r in runs["gkfs-tcp"])
        print(f"  CPU s per run, {who}: {' '.join(f'{x:.2f}' for x in g)} vs "
              f"{' '.join(f'{x:.2f}' for x in t)}  ratio of medians {g[len(g) // 2] / t[len(t) // 2]:.2f}")


def print_table(best: dict, args, wall: float) -> None:
    title = (f"fsbench (riscv64, qemu-user): {args.files} files, {args.mib} MiB in {args.io_kib} KiB calls; "
             f"{args.daemons} daemons, chunk {args.chunk_size // 1024} KiB; best of {args.repeat} "
             f"({wall:.0f} s)")
    rows = []
    for label, _key, kind in PHASES:
        unit = "ops/s" if kind == "ops" else "MiB/s"
        l, h, g = best["local"][label], best["local+hook"][label], best["gkfs"][label]
        p = best["py-client"][label]
        rows.append((f"{label} ({unit})", f"{l:,.0f}", f"{h:,.0f}", f"{g:,.0f}",
                     f"{h / l:.2f}", f"{g / l:.3f}", f"{g / h:.3f}", f"{p:,.0f}", f"{g / p:.2f}"))
    header = ("phase", "local", "local+hook", "gkfs", "hook/local", "gkfs/local", "gkfs/local+hook",
              "py-client (host)", "gkfs/py-client")
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print(title)
        print("  ".join(f"{h:>15}" for h in header))
        for row in rows:
            print("  ".join(f"{c:>15}" for c in row))
        return
    t = Table(title=title)
    for i, h in enumerate(header):
        t.add_column(h, justify="left" if i == 0 else "right")
    for row in rows:
        t.add_row(*row)
    Console(width=max(150, shutil.get_terminal_size().columns)).print(t)


if __name__ == "__main__":
    sys.exit(main())
