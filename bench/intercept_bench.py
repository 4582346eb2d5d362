#!/usr/bin/env python3
"""Benchmark of the riscv64 interception core (not a test).

All figures are measured in one run and printed as ratios against a baseline
from the same run (the machine is a noisy 2-core VM; absolute times under
qemu mean little):

1. pass-through system call cost under qemu: a riscv64 C loop making N
   getppid(), futex(FUTEX_WAKE), clock_gettime(), anonymous mmap() (calls
   the gkfs client never wants: the entry's fast path) and write(/dev/null),
   read(/dev/zero), fstat() and lseek() of a local file, dup()+close()
   (descriptors that are not gkfs) calls through libc, bare and with
   libgkfs_intercept.so
   preloaded (logging off), runs interleaved, ratios of medians and minimums;
2. process start-up under qemu: sysroot programs (true, ls, python3) without
   and with the preload, for the core alone (libsyscall_intercept.so) and
   libgkfs_intercept.so, each with the plan cache off (every start scans and
   plans libc and ld.so) and warm (later starts replay each object's patch
   image: no planning, placing or emitting), timed as the child's CPU time
   (wall time beside it); then
   true and ls again with a cluster's hosts file in LIBGKFS_HOSTS_FILE (a
   job's process that never touches the mount);
   --lib LABEL=PATH adds another build (an older one, say) to both tables;
3. planning on the host: the native planner (libgkfs_plan.so through the
   cffi bindings) over the .text of the two riscv64 glibcs, per MiB, beside
   capstone (Python) disassembling the same bytes, which is what the RISC-V
   port of syscall_intercept does at every process start.

    python3 bench/intercept_bench.py [--calls N] [--starts N] [--repeat N]
                                     [--only startup] [--lib LABEL=PATH ...]
    python3 bench/intercept_bench.py --summary     # the issue-9 rows only
    (from Python: bench.intercept_bench.summary_rows() / print_summary())

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


# Pass-through calls timed, and the bound for each (issue 9, part 4):
# calls the gkfs client never wants (mmap: of anonymous memory, no
# descriptor), and calls on descriptors that are not gkfs ("close" is a
# dup()+close() pair: the client hooks both for every descriptor).
SYSCALL_MODES = [("getppid", 1.1), ("futex", 1.1), ("clock", 1.1), ("mmap", 1.1),
                 ("write", 1.3), ("read", 1.3), ("fstat", 1.3), ("lseek", 1.3),
                 ("close", 1.3)]
NEVER_WANTED = {"getppid", "futex", "clock", "mmap"}
STARTUP_BOUND = 1.2   # /bin/true with libgkfs_intercept.so (plan cache warm)


def _ns_per_call(bench: Path, sysroot: Path, mode: str, calls: int, pre: Path | None,
                 extra: dict[str, str] | None = None) -> float:
    out = run_rv([str(bench), mode, str(calls)], sysroot, pre, extra).stdout
    return float(re.search(r"ns_per_call=([\d.]+)", out)[1])


def syscall_rows(bench: Path, sysroot: Path, libs: list[tuple[str, Path]], calls: int,
                 repeat: int) -> list[dict]:
    """Per call and library: ns per call bare and preloaded, with the plan
    cache warm (as for any user with a HOME: sites of never-wanted static
    numbers stay unpatched) and off (every site patched: the entry's fast
    path answers them).  Runs interleaved (bare, then every library and
    cache mode, per round) so the VM's noise hits all alike; ratios of the
    medians and of the minimums, same run."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="gkfs-bench-cache-") as cache_root:
        modes: list[tuple[str, str, Path | None, dict[str, str]]] = [("bare", "", None, {})]
        for label, lib in libs:
            cache = Path(cache_root) / label
            cache.mkdir()
            modes.append((label, "cached", lib, {"INTERCEPT_PLAN_CACHE": str(cache)}))
            modes.append((label, "no cache", lib, {"INTERCEPT_PLAN_CACHE": "0"}))
        for _, _, pre, extra in modes:   # prime the caches
            run_rv([str(bench), "none", "1"], sysroot, pre, extra)
        for mode, bound in SYSCALL_MODES:
            vals: dict[int, list[float]] = {i: [] for i in range(len(modes))}
            for _ in range(repeat):
                for i, (_, _, pre, extra) in enumerate(modes):
                    vals[i].append(_ns_per_call(bench, sysroot, mode, calls, pre, extra))
            bare_med, bare_min = statistics.median(vals[0]), min(vals[0])
            for i, (label, cache, _, _) in enumerate(modes[1:], 1):
                rows.append({"what": mode, "lib": label, "cache": cache, "bare_ns": bare_med,
                             "ns": statistics.median(vals[i]),
                             "ratio_median": statistics.median(vals[i]) / bare_med,
                             "ratio_min": min(vals[i]) / bare_min, "bound": bound})
    return rows


def syscall_cost(bench: Path, sysroot: Path, libs: list[tuple[str, Path]], calls: int,
                 repeat: int) -> None:
    print(f"\n== pass-through system call cost under qemu ({calls} calls, {repeat} interleaved "
          f"runs; CPU time of the loop; ratio = preloaded / bare, median (min))")
    print("   getppid, futex, clock_gettime, mmap (anonymous): never wanted by the gkfs client;"
          " write (/dev/null), read (/dev/zero), fstat, lseek (a local file), close (dup+close"
          " pair): descriptors that are not gkfs")
    rows = syscall_rows(bench, sysroot, libs, calls, repeat)
    cols = [(r["lib"], r["cache"]) for r in rows if r["what"] == rows[0]["what"]]
    print(f"{'call':<10} {'bare ns':>9}" + "".join(f" {lb + ' ' + c:>16}" for lb, c in cols)
          + f" {'bound':>6}")
    for mode, bound in SYSCALL_MODES:
        mine = [r for r in rows if r["what"] == mode]
        line = f"{mode:<10} {mine[0]['bare_ns']:>9.1f}"
        for r in mine:
            line += f" {r['ratio_median']:>8.2f} ({r['ratio_min']:.2f})"
        print(line + f" {bound:>6.1f}")


def _start_cost(exe: list[str], sysroot: Path, pre: Path | None,
                extra: dict[str, str]) -> tuple[float, float]:
    """(CPU seconds of the child, user + system, and wall seconds) of one start."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([QEMU, *exe], env=qemu_env(sysroot, pre, extra),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, ru = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.stderr:
        proc.stderr.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"intercept_bench: {' '.join(exe)} failed ({proc.returncode}): {err}")
    return ru.ru_utime + ru.ru_stime, wall


def write_hosts_file(d: Path, members: int = 2) -> Path:
    """A cluster's hosts file (v2: cluster record + one entry per member in
    <hosts>.d/) with the modes the client accepts, no daemon behind it: what
    a process of a job finds when it never touches the mount."""
    d.mkdir(mode=0o700, exist_ok=True)
    hosts = d / "hosts"
    hosts.write_text("# gkfs hosts file v2\ncluster 0123456789abcdef0123456789abcdef "
                     f"{members} 524288 /gkfs\n")
    hosts.chmod(0o600)
    entries = d / "hosts.d"
    entries.mkdir(mode=0o700, exist_ok=True)
    for i in range(members):
        (entries / str(i)).write_text(f"{i} tcp://127.0.0.1:{5555 + i} {1000 + i} node{i} /gkfs\n")
        (entries / str(i)).chmod(0o600)
    return hosts


def startup_rows(sysroot: Path, libs: list[tuple[str, Path]], starts: int,
                 progs: list[list[str]] | None = None,
                 env: dict[str, str] | None = None) -> list[dict]:
    """Start-up of short programs, every library with the plan cache off
    (INTERCEPT_PLAN_CACHE=0) and warm (a directory primed by one run).
    Interleaved rounds; the figure is the child's CPU time (user + system:
    what the preload adds, much less disturbed by the other load on the
    machine than wall time), ratios of medians and of minimums against the
    bare start in the same run; wall-time medians ride along."""
    progs = progs or [["true"], ["ls", "/"], ["python3", "-c", "pass"]]
    rows = []
    with tempfile.TemporaryDirectory(prefix="gkfs-bench-cache-") as cache_root:
        modes: list[tuple[str, str, Path | None, dict[str, str]]] = [("bare", "", None, {})]
        for label, lib in libs:
            cache = Path(cache_root) / label
            cache.mkdir()
            modes.append((label, "no cache", lib, {"INTERCEPT_PLAN_CACHE": "0", **(env or {})}))
            modes.append((label, "cached", lib, {"INTERCEPT_PLAN_CACHE": str(cache), **(env or {})}))
        for argv in progs:
            exe = [f"{sysroot}/usr/bin/{argv[0]}", *argv[1:]]
            for _, _, pre, extra in modes:   # prime the caches (and the page cache)
                run_rv(exe, sysroot, pre, extra)
            cpu: dict[int, list[float]] = {i: [] for i in range(len(modes))}
            wall: dict[int, list[float]] = {i: [] for i in range(len(modes))}
            for _ in range(starts):
                for i, (_, _, pre, extra) in enumerate(modes):
                    c, w = _start_cost(exe, sysroot, pre, extra)
                    cpu[i].append(c)
                    wall[i].append(w)
            for i, (label, cache, _, _) in enumerate(modes[1:], 1):
                rows.append({"what": " ".join(argv), "lib": label, "cache": cache,
                             "bare_ms": statistics.median(cpu[0]) * 1e3,
                             "ratio_median": statistics.median(cpu[i]) / statistics.median(cpu[0]),
                             "ratio_min": min(cpu[i]) / min(cpu[0]),
                             "wall_ratio": statistics.median(wall[i]) / statistics.median(wall[0])})
    return rows


def startup(sysroot: Path, libs: list[tuple[str, Path]], starts: int,
            hosts: bool = False) -> None:
    print(f"\n== process start-up under qemu ({starts} interleaved runs; CPU time of the child, "
          "ratio = preloaded / bare, median (min); wall-time median ratio after /)"
          + ("\n   with LIBGKFS_HOSTS_FILE: a cluster of 2 (no daemon), mount untouched"
             if hosts else ""))
    with tempfile.TemporaryDirectory(prefix="gkfs-bench-hosts-") as d:
        env = {"LIBGKFS_HOSTS_FILE": str(write_hosts_file(Path(d) / "cluster"))} if hosts else None
        rows = startup_rows(sysroot, libs, starts, None if not hosts else [["true"], ["ls", "/"]],
                            env)
    cols = [(r["lib"], r["cache"]) for r in rows if r["what"] == rows[0]["what"]]
    print(f"{'program':<16} {'bare ms':>8}" + "".join(f" {lb + ' ' + c:>22}" for lb, c in cols))
    for what in dict.fromkeys(r["what"] for r in rows):
        mine = [r for r in rows if r["what"] == what]
        line = f"{what:<16} {mine[0]['bare_ms']:>8.1f}"
        for r in mine:
            line += f" {r['ratio_median']:>8.2f} ({r['ratio_min']:.2f}) / {r['wall_ratio']:.2f}"
        print(line)


def summary_rows(calls: int = 50_000, repeat: int = 5, starts: int = 9,
                 lib: Path | None = None) -> list[tuple[str, float, float, str]]:
    """The interception rows of issue 9 for another benchmark's table:
    (what, ratio of medians, ratio of minimums, bound) for the pass-through
    calls and the start-up of /bin/true (plan cache warm) with
    libgkfs_intercept.so, each against the bare call/start measured in the
    same run.  Raises native_paths.NativeNotBuilt when nothing is built."""
    sysroot = native_paths.riscv64_sysroot()
    lib = lib or native_paths.intercept_library("riscv64")
    bench = native_paths.riscv64_build_dir() / "tests" / "bench_syscalls"
    out = []
    for r in syscall_rows(bench, sysroot, [("gkfs", lib)], calls, repeat):
        kind = "never wanted" if r["what"] in NEVER_WANTED else "non-gkfs descriptor"
        out.append((f"intercept {r['what']} ({kind}, plan cache {'warm' if r['cache'] == 'cached' else 'off'})",
                    r["ratio_median"], r["ratio_min"], f"<= {r['bound']}x"))
    for r in startup_rows(sysroot, [("gkfs", lib)], starts, [["true"]]):
        if r["cache"] == "cached":
            out.append(("intercept start-up /bin/true (plan cache warm, CPU)", r["ratio_median"],
                        r["ratio_min"], f"<= {STARTUP_BOUND}x"))
        else:
            out.append(("intercept start-up /bin/true (plan cache off, CPU)", r["ratio_median"],
                        r["ratio_min"], "-"))
    with tempfile.TemporaryDirectory(prefix="gkfs-bench-hosts-") as d:
        hosts = write_hosts_file(Path(d) / "cluster")
        for r in startup_rows(sysroot, [("gkfs", lib)], starts, [["true"]],
                              env={"LIBGKFS_HOSTS_FILE": str(hosts)}):
            if r["cache"] == "cached":
                out.append(("intercept start-up /bin/true, hosts file of 2 (cache warm)",
                            r["ratio_median"], r["ratio_min"], f"<= {STARTUP_BOUND}x"))
    return out


def print_summary(rows: list[tuple[str, float, float, str]]) -> None:
    print(f"{'interception (ratio to bare, same run)':<62} {'median':>7} {'min':>6} {'bound':>7}")
    for what, med, mn, bound in rows:
        print(f"{what:<62} {med:>7.2f} {mn:>6.2f} {bound:>7}")


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
    ap.add_argument("--summary", action="store_true",
                    help="only the issue-9 rows (pass-through calls, /bin/true start-up with "
                         "libgkfs_intercept.so), short runs; also summary_rows() for other "
                         "benchmarks")
    ap.add_argument("--lib", action="append", default=[], metavar="LABEL=PATH",
                    help="another riscv64 library (an older build, say) timed beside this "
                         "build's, in the same interleaved runs")
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
    if args.summary:
        print_summary(summary_rows(lib=lib))
        return 0
    print(f"sysroot {sysroot}\ncore    {lib}")
    if args.only in (None, "syscalls"):
        syscall_cost(bench, sysroot, [("gkfs", lib), *extra_libs], args.calls, args.repeat)
    if args.only in (None, "startup"):
        core = native_paths.intercept_library("riscv64", core=True)
        startup(sysroot, [("core", core), ("gkfs", lib), *extra_libs], args.starts)
        startup(sysroot, [("gkfs", lib), *extra_libs], args.starts, hosts=True)
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
