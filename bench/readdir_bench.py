#!/usr/bin/env python3
"""The readdir stat cache (docs/performance.md): readdir followed by a stat
of every entry, with the cache on (default) and off
(LIBGKFS_STAT_CACHE_TTL_MS=0) in the same run, rounds interleaved, median.

  python         Client.scandir + Client.stat of each entry, and listdir alone
  ls -l          Debian's riscv64 `ls -l` under qemu-user with the preload,
                 and `ls` alone; beside the same `ls -l` on the local fs

    python3 bench/readdir_bench.py                 # 1,000 files, 1 daemon
    python3 bench/readdir_bench.py --files 4000 --daemons 3 --rounds 7
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from perf_bench import Cluster  # noqa: E402

QEMU = "/usr/bin/qemu-riscv64-static"
MOUNT = "/gkfs"
OFF = {"LIBGKFS_STAT_CACHE_TTL_MS": "0"}


def _python(hosts: Path, ttl: float | None) -> tuple[float, float, int]:
    """(scandir+stat seconds, listdir seconds, stat RPCs of the first)."""
    from gkfs_client.client import Client
    with Client(hosts, stat_cache_ttl=ttl) as c:
        def stats() -> int:
            return sum(s["ops"].get("stat", 0) for s in c.status())
        before = stats()
        t0 = time.perf_counter()
        for e in c.scandir("/d"):
            c.stat("/d/" + e.name)
        walk = time.perf_counter() - t0
        rpcs = stats() - before
        t0 = time.perf_counter()
        c.listdir("/d")
        return walk, time.perf_counter() - t0, rpcs


def _run_rv(argv: list[str], sysroot: Path, env: dict[str, str]) -> float:
    full = {"PATH": f"{sysroot}/usr/bin", "QEMU_LD_PREFIX": str(sysroot), "LC_ALL": "C", **env}
    t0 = time.perf_counter()
    cp = subprocess.run([QEMU, *argv], env=full, capture_output=True, timeout=600)
    if cp.returncode:
        raise SystemExit(f"{argv}: {cp.stderr.decode(errors='replace')}")
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--daemons", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args(argv)
    from gkfs_client import native_paths
    from gkfs_client.client import Client
    sysroot = native_paths.riscv64_sysroot()
    lib = native_paths.intercept_library("riscv64")
    ls = str(sysroot / "usr/bin/ls")
    with tempfile.TemporaryDirectory(prefix="gkfs-readdir-bench-") as tmp:
        base = Path(tmp)
        local = base / "local"
        local.mkdir()
        for i in range(args.files):
            (local / f"f{i:06d}").write_bytes(b"x" * (i % 100))
        with Cluster(base, args.daemons) as cl:
            with Client(cl.hosts) as c:
                c.mkdir("/d")
                for i in range(args.files):
                    c.write_file(f"/d/f{i:06d}", b"x" * (i % 100))
            pre = {"LD_PRELOAD": str(lib), "LIBGKFS_HOSTS_FILE": str(cl.hosts), "LIBGKFS_MOUNT": MOUNT}
            runs: dict[str, list[float]] = {}
            rpcs: dict = {}
            for _ in range(args.rounds):
                for mode, ttl, env in (("on", None, {}), ("off", 0, OFF)):
                    walk, lst, n = _python(cl.hosts, ttl)
                    runs.setdefault(f"py walk {mode}", []).append(walk)
                    runs.setdefault(f"py listdir {mode}", []).append(lst)
                    rpcs[mode] = n
                    before = cl.ops()
                    runs.setdefault(f"ls -l {mode}", []).append(_run_rv([ls, "-l", f"{MOUNT}/d"], sysroot,
                                                                        {**pre, **env}))
                    after = cl.ops()
                    rpcs[f"ls {mode}"] = {k: after.get(k, 0) - before.get(k, 0) for k in ("stat", "get_dirents")}
                    runs.setdefault(f"ls {mode}", []).append(_run_rv([ls, f"{MOUNT}/d"], sysroot, {**pre, **env}))
                runs.setdefault("ls -l local", []).append(_run_rv([ls, "-l", str(local)], sysroot, {}))
    m = {k: statistics.median(v) for k, v in runs.items()}
    print(f"readdir + stat of {args.files} files, {args.daemons} daemon(s), median of {args.rounds} rounds; "
          f"cache on (default) vs off (LIBGKFS_STAT_CACHE_TTL_MS=0), same run")
    print(f"  python scandir+stat: on {m['py walk on']*1e3:.1f} ms, off {m['py walk off']*1e3:.1f} ms: "
          f"{m['py walk off']/m['py walk on']:.1f}x faster; stat RPCs on {rpcs['on']}, off {rpcs['off']}")
    print(f"  python listdir alone: on {m['py listdir on']*1e3:.1f} ms, off {m['py listdir off']*1e3:.1f} ms: "
          f"{m['py listdir off']/m['py listdir on']:.2f}x")
    print(f"  riscv64 ls -l (preload, qemu): on {m['ls -l on']*1e3:.0f} ms, off {m['ls -l off']*1e3:.0f} ms: "
          f"{m['ls -l off']/m['ls -l on']:.2f}x faster; local fs {m['ls -l local']*1e3:.0f} ms "
          f"(gkfs on = {m['ls -l on']/m['ls -l local']:.1f}x local); RPCs on {rpcs['ls on']}, off {rpcs['ls off']}")
    print(f"  riscv64 ls alone: on {m['ls on']*1e3:.0f} ms, off {m['ls off']*1e3:.0f} ms: "
          f"{m['ls off']/m['ls on']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
