"""The plan cache (intercept/src/runtime/plan_cache.c, README "Start-up cost").

A later process takes each object's plan from the cache instead of scanning;
what it patches must be exactly what a scan gives.  A cache file that is
damaged, or that names a site which is not an ecall in the loaded object,
must be ignored (and replaced), never trusted.  INTERCEPT_PLAN_CACHE=0
writes nothing; the default place is $XDG_CACHE_HOME/gkfs/plans, else
~/.cache/gkfs/plans.
"""
from __future__ import annotations

import re
import struct
from pathlib import Path

from rv_harness import Riscv64Runner

OBJECTS = ("libc.so.6", "ld-linux-riscv64-lp64d.so.1")
PATCH = re.compile(r"^patch (\S+): ecalls (\d+), patched (\d+) .*$")
# struct header in plan_cache.c: 8 + 4*4 + 2*32 + 7*8 + 2*4 + 8 ranges * 32
HEADER = 408
NSITES_AT = 8 + 16 + 64 + 4 * 8 + 2 * 8   # after size/mtime/ino, insns, targets
SITE = 16


def fnv1a64(data: bytes) -> int:
    h = 0xcbf29ce484222325
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def run_true(rv: Riscv64Runner, lib: Path, log: Path, **env: str) -> tuple[dict, list[str]]:
    """Run `true` with the core; per object its summary line, and the site lines."""
    res = rv.run(["true"], preload=[lib],
                 env={"INTERCEPT_LOG": str(log), "INTERCEPT_LOG_SITES": "1", **env})
    assert res.returncode == 0, res.describe()
    lines = log.read_text().splitlines()
    summary = {}
    for line in lines:
        m = PATCH.match(line)
        if m and Path(m[1]).name in OBJECTS:
            summary[Path(m[1]).name] = line
    assert set(summary) == set(OBJECTS), lines[:5]
    return summary, sorted(line for line in lines if line.startswith("site "))


def plan_files(d: Path) -> list[Path]:
    return sorted(d.glob("*.plan")) if d.is_dir() else []


def libc_plan(d: Path, rv: Riscv64Runner, lib: Path, tmp_path: Path) -> Path:
    """The cache file of libc: the one whose sites match libc's ecall count."""
    summary, _ = run_true(rv, lib, tmp_path / "probe.log", INTERCEPT_PLAN_CACHE=str(d))
    n = int(PATCH.match(summary["libc.so.6"])[2])
    for p in plan_files(d):
        if struct.unpack_from("<Q", p.read_bytes(), NSITES_AT)[0] == n:
            return p
    raise AssertionError(f"no plan with {n} sites in {d}")


def test_written_then_used_with_the_same_sites(rv: Riscv64Runner, core_lib: Path,
                                               tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first, sites1 = run_true(rv, core_lib, tmp_path / "1.log", INTERCEPT_PLAN_CACHE=str(cache))
    assert len(plan_files(cache)) == 2, list(cache.iterdir())
    assert not any("plan from cache" in v for v in first.values()), first
    second, sites2 = run_true(rv, core_lib, tmp_path / "2.log", INTERCEPT_PLAN_CACHE=str(cache))
    for name in OBJECTS:
        assert second[name].endswith("; plan from cache"), second[name]
        assert second[name].split(";")[0] == first[name].split(";")[0]
    assert sites2 == sites1


def test_gateway_plan_completed_then_cached(rv: Riscv64Runner, core_lib: Path,
                                            tmp_path: Path) -> None:
    """A jal-only cached plan is made whole when gateways are needed, and the
    whole plan read back later gives the same windows as a fresh scan."""
    cache = tmp_path / "cache"
    gw = {"INTERCEPT_FORCE_GATEWAY": "1"}
    _, fresh = run_true(rv, core_lib, tmp_path / "0.log", INTERCEPT_PLAN_CACHE="0", **gw)
    assert any("gateway window" in s for s in fresh)
    run_true(rv, core_lib, tmp_path / "1.log", INTERCEPT_PLAN_CACHE=str(cache))
    done, sites2 = run_true(rv, core_lib, tmp_path / "2.log", INTERCEPT_PLAN_CACHE=str(cache), **gw)
    assert all(v.endswith("; plan from cache, completed") for v in done.values()), done
    again, sites3 = run_true(rv, core_lib, tmp_path / "3.log", INTERCEPT_PLAN_CACHE=str(cache), **gw)
    assert all(v.endswith("; plan from cache") for v in again.values()), again
    assert sites2 == fresh and sites3 == fresh
    # the default mode reads the whole plan too, and still patches every site
    again, _ = run_true(rv, core_lib, tmp_path / "4.log", INTERCEPT_PLAN_CACHE=str(cache))
    for line in again.values():
        m = PATCH.match(line)
        assert line.endswith("; plan from cache") and m[2] == m[3], line


def test_damaged_file_is_ignored_and_replaced(rv: Riscv64Runner, core_lib: Path,
                                              tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    plan = libc_plan(cache, rv, core_lib, tmp_path)
    good = plan.read_bytes()
    raw = bytearray(good)
    raw[HEADER + 3] ^= 0x40          # inside the first site's record
    plan.write_bytes(bytes(raw))
    summary, _ = run_true(rv, core_lib, tmp_path / "1.log", INTERCEPT_PLAN_CACHE=str(cache))
    assert "plan from cache" not in summary["libc.so.6"], summary
    assert plan.read_bytes() == good, "the damaged file was not replaced"
    plan.write_bytes(good[: len(good) // 2])   # cut short
    summary, _ = run_true(rv, core_lib, tmp_path / "2.log", INTERCEPT_PLAN_CACHE=str(cache))
    assert "plan from cache" not in summary["libc.so.6"], summary
    assert plan.read_bytes() == good


def test_site_that_is_no_ecall_is_refused(rv: Riscv64Runner, core_lib: Path,
                                          tmp_path: Path) -> None:
    """A well-formed file (right checksum) naming a site that is not an ecall
    in memory: refused as a whole; the program runs with a fresh plan."""
    cache = tmp_path / "cache"
    plan = libc_plan(cache, rv, core_lib, tmp_path)
    good = plan.read_bytes()
    raw = bytearray(good[:-8])
    ecall = struct.unpack_from("<Q", raw, HEADER)[0]
    struct.pack_into("<Q", raw, HEADER, ecall - 2)   # an instruction boundary or not: no ecall
    raw += struct.pack("<Q", fnv1a64(bytes(raw)))
    plan.write_bytes(bytes(raw))
    summary, _ = run_true(rv, core_lib, tmp_path / "1.log", INTERCEPT_PLAN_CACHE=str(cache))
    line = summary["libc.so.6"]
    assert "plan from cache" not in line, line
    m = PATCH.match(line)
    assert m[2] == m[3], line
    assert plan.read_bytes() == good


def test_off_and_default_places(rv: Riscv64Runner, core_lib: Path, tmp_path: Path) -> None:
    home = rv.workdir
    run_true(rv, core_lib, tmp_path / "0.log", INTERCEPT_PLAN_CACHE="0")
    assert not (home / ".cache").exists(), "INTERCEPT_PLAN_CACHE=0 wrote something"
    run_true(rv, core_lib, tmp_path / "1.log")
    assert len(plan_files(home / ".cache/gkfs/plans")) == 2
    xdg = tmp_path / "xdg"
    xdg.mkdir()
    run_true(rv, core_lib, tmp_path / "2.log", XDG_CACHE_HOME=str(xdg))
    assert len(plan_files(xdg / "gkfs/plans")) == 2
