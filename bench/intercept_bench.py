#!/usr/bin/env python3
"""Benchmark of the riscv64 interception core (not a test).

All figures are measured in one run and printed as ratios against a baseline
from the same run (the machine is a noisy 2-core VM; absolute times under
qemu mean little):

1. pass-through system call cost under qemu: a riscv64 C loop making N
   getppid() and N write(/dev/null) calls through libc, without and with
   libgkfs_intercept.so preloaded (pass-through hook, logging off);
2. process start-up under qemu: sysroot programs (true, ls, python3) without
   and with the preload, for the core alone (libsyscall_intercept.so) and
   libgkfs_intercept.so, each with the plan cache off (every start scans and
   plans libc and ld.so) and warm (later starts only place and write
   patches); --lib LABEL=PATH adds another build (an older one, say) to the
   same table;
3. planning on the host: the native planner (libgkfs_plan.so through the
   cffi bindings) over the .text of the two riscv64 glibcs, per MiB, beside
   capstone (Python) disassembling the same bytes, which is what the RISC-V
   port of syscall_intercept does at every process start.

    python3 bench/intercept_bench.py [--calls N] [--starts N] [--repeat N]
                                     [--only startup] [--lib LABEL=PATH ...]

Needs: deploy/riscv64-sysroot.sh and deploy/build-native.sh done.
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gkfs_client import native_paths  # noqa: E402

QEMU = "/usr/bin/qemu-riscv64-static"
CROSS_LIBC = Path("/usr/riscv64-linux-gnu/lib/libc.so.6")


def qemu_env(sysroot: Path, preload: Path | None,
             extra: dict[str, str] | None = None) -> dict[str, str]:
    # No HOME and no XDG_CACHE_HOME: the plan cache is off unless a mode
    # names its directory (INTERCEPT_PLAN_CACHE).
    env = {"PATH": f"{sysroot}/usr/bin:{sysroot}/usr/sbin", "QEMU_LD_PREFIX": str(sysroot),
           "LC_ALL": "C"}
    if preload:
        env["LD_PRELOAD"] = str(preload)
    env.update(extra or {})
    return env


def run_rv(argv: list[str], sysroot: Path, preload: Path | None,
           extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    cp = subprocess.run([QEMU, *argv], env=qemu_env(sysroot, preload, extra),
                        capture_output=True, text=True, timeout=600)
    if cp.returncode != 0:
        sys.exit(f"intercept_bench: {' '.join(argv)} failed ({cp.returncode}): {cp.stderr}")
    return cp


def syscall_cost(bench: Path, sysroot: Path, lib: Path, calls: int, repeat: int) -> None:
    print(f"\n== pass-through system call cost under qemu ({calls} calls, best of {repeat})")
    print(f"{'call':<10} {'plain ns':>10} {'preload ns':>11} {'ratio':>7} {'added ns':>9}")
    for mode in ("getppid", "write"):
        best = {}
        for label, pre in (("plain", None), ("preload", lib)):
            vals = []
            for _ in range(repeat):
                out = run_rv([str(bench), mode, str(calls)], sysroot, pre).stdout
                vals.append(float(re.search(r"ns_per_call=([\d.]+)", out)[1]))
            best[label] = min(vals)
        print(f"{mode:<10} {best['plain']:>10.1f} {best['preload']:>11.1f} "
              f"{best['preload'] / best['plain']:>7.2f} {best['preload'] - best['plain']:>9.1f}")


def startup(sysroot: Path, libs: list[tuple[str, Path]], starts: int) -> None:
    """Start-up time of short programs, every mode of every library.

    Runs are interleaved (one of each mode per round) so that the VM's noise
    hits all modes alike; each figure is the median.  Modes per library: the
    plan cache off (INTERCEPT_PLAN_CACHE=0: every start scans and plans) and
    warm (a cache directory primed by one run: later starts only place and
    write the patches)."""
    print(f"\n== process start-up under qemu (median of {starts} interleaved runs, wall time)")
    print("   ratio = time with the preload / time without it, same run")
    progs = [["true"], ["ls", "/"], ["python3", "-c", "pass"]]
    with tempfile.TemporaryDirectory(prefix="gkfs-bench-cache-") as cache_root:
        modes: list[tuple[str, Path | None, dict[str, str]]] = [("plain", None, {})]
        for label, lib in libs:
            cache = Path(cache_root) / label
            cache.mkdir()
            modes.append((f"{label} no cache", lib, {"INTERCEPT_PLAN_CACHE": "0"}))
            modes.append((f"{label} cached", lib, {"INTERCEPT_PLAN_CACHE": str(cache)}))
        head = f"{'program':<20} {'plain ms':>9}" + "".join(f" {m[0]:>{max(len(m[0]), 8)}}"
                                                           for m in modes[1:])
        print(head)
        for argv in progs:
            exe = [f"{sysroot}/usr/bin/{argv[0]}", *argv[1:]]
            for _, pre, extra in modes:   # prime the caches (and the page cache)
                run_rv(exe, sysroot, pre, extra)
            times: dict[str, list[float]] = {m[0]: [] for m in modes}
            for _ in range(starts):
                for label, pre, extra in modes:
                    t0 = time.perf_counter()
                    run_rv(exe, sysroot, pre, extra)
                    times[label].append(time.perf_counter() - t0)
            med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
            row = f"{' '.join(argv):<20} {med['plain']:>9.1f}"
            for label, _, _ in modes[1:]:
                row += f" {med[label] / med['plain']:>{max(len(label), 8)}.2f}"
            print(row)


def text_of(path: Path) -> tuple[bytes, int]:
    from elftools.elf.elffile import ELFFile
    with open(path, "rb") as f:
        sec = ELFFile(f).get_section_by_name(".text")
        return sec.data(), sec["sh_addr"]


def best_time(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def planning(libcs: list[tuple[str, Path]], repeat: int) -> None:
    print(f"\n== planning on the host vs capstone disassembly (per MiB of .text, best of {repeat})")
    try:
        from gkfs_client import native_plan
        native_plan.lib()
    except Exception as exc:  # report, keep the other figures
        print(f"native planner unavailable: {exc}")
        native_plan = None
    import capstone
    md = capstone.Cs(capstone.CS_ARCH_RISCV, capstone.CS_MODE_RISCV64 | capstone.CS_MODE_RISCVC)
    md.skipdata = True  # RVV instructions capstone 5 cannot decode
    print(f"{'glibc':<22} {'MiB':>6} {'ecalls':>7} {'plan ms/MiB':>12} {'capstone ms/MiB':>16} "
          f"{'capstone/plan':>14}")
    for name, path in libcs:
        data, vaddr = text_of(path)
        mib = len(data) / (1 << 20)
        ecalls = 0

        def cs_run():
            nonlocal ecalls
            ecalls = sum(1 for _, _, mn, _ in md.disasm_lite(data, vaddr) if mn == "ecall")

        t_cs = best_time(cs_run, max(1, repeat // 2))
        if native_plan:
            text = native_plan.Text(data, vaddr)
            res = native_plan.scan(text)
            t_plan = best_time(lambda: native_plan.scan(text), repeat)
            plan_ms = t_plan * 1e3 / mib
            print(f"{name:<22} {mib:>6.2f} {res.ecalls:>7} {plan_ms:>12.2f} "
                  f"{t_cs * 1e3 / mib:>16.1f} {t_cs / t_plan:>14.1f}")
            if res.ecalls != ecalls:
                print(f"   note: planner found {res.ecalls} ecalls, capstone {ecalls}")
        else:
            print(f"{name:<22} {mib:>6.2f} {ecalls:>7} {'-':>12} {t_cs * 1e3 / mib:>16.1f} {'-':>14}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n    python3")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=200_000, help="system calls per loop run")
    ap.add_argument("--starts", type=int, default=15, help="process starts per program and mode")
    ap.add_argument("--repeat", type=int, default=5, help="repetitions of the timed loops")
    ap.add_argument("--only", choices=("syscalls", "startup", "planning"),
                    help="run one part only")
    ap.add_argument("--lib", action="append", default=[], metavar="LABEL=PATH",
                    help="another riscv64 core to time at start-up beside this build's")
    args = ap.parse_args(argv)
    extra_libs = []
    for spec in args.lib:
        label, sep, path = spec.partition("=")
        if not sep or not label or not Path(path).is_file():
            sys.exit(f"intercept_bench: --lib wants LABEL=PATH of an existing file, got {spec!r}")
        extra_libs.append((label, Path(path)))
    try:
        sysroot = native_paths.riscv64_sysroot()
        lib = native_paths.intercept_library("riscv64")
    except native_paths.NativeNotBuilt as exc:
        sys.exit(f"intercept_bench: {exc}")
    bench = native_paths.riscv64_build_dir() / "tests" / "bench_syscalls"
    if not bench.is_file():
        sys.exit(f"intercept_bench: {bench} not built: run deploy/build-native.sh riscv64")
    if not os.access(QEMU, os.X_OK):
        sys.exit(f"intercept_bench: {QEMU} missing (deploy/setup-debian.sh)")
    print(f"sysroot {sysroot}\ncore    {lib}")
    if args.only in (None, "syscalls"):
        syscall_cost(bench, sysroot, lib, args.calls, args.repeat)
    if args.only in (None, "startup"):
        core = native_paths.intercept_library("riscv64", core=True)
        startup(sysroot, [("core", core), ("gkfs", lib), *extra_libs], args.starts)
    if args.only not in (None, "planning"):
        return 0
    libcs = [("sysroot " + (sysroot / ".gkfs-sysroot-stamp").read_text().split("suite=")[1].split()[0],
              sysroot / "usr/lib/riscv64-linux-gnu/libc.so.6")]
    if CROSS_LIBC.is_file():
        libcs.append(("cross 2.36", CROSS_LIBC))
    planning(libcs, args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
