"""The run-time core and the host report plan the same gateways.

`gkfs-ctl patch-report` (gkfs_client/plan_elf.py) reads its jump targets
from the file (symbols, RELATIVE/IRELATIVE addends, landing pads from
.gcc_except_table); the run-time core reads them from memory (.dynsym,
DT_RELA/DT_JMPREL, landing pads through PT_GNU_EH_FRAME).  With
INTERCEPT_FORCE_GATEWAY=1 every site's gateway window depends on that set,
so comparing the per-site log (INTERCEPT_LOG_SITES) with the host plan's
"gateway only" column site by site shows that both see the same targets.
A target missed at run time (as the landing pads once were) shows up here
as a window the host does not allow.

Clone sites (static number) are the one intended difference: with forced
gateways the core keeps them on jal, a conservative choice (a gateway's raw
path is vfork-safe too: intercept/README.md, "Runtime").
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from gkfs_client import native_plan as npl
from gkfs_client import plan_elf as pe
from rv_harness import Riscv64Runner

SITE = re.compile(r"^site (\S+)\+0x([0-9a-f]+): (.*)$")
CLONE_SYSNOS = {220, 435}        # clone, clone3 (asm-generic numbers)
OBJECTS = ("libc.so.6", "ld-linux-riscv64-lp64d.so.1")


def host_gateway_plan(path: Path) -> tuple[dict[int, str], set[int]]:
    """ecall link address -> expected site line tail; and the clone sites."""
    plan = pe.plan_object(pe.read_elf(path))
    out, clones = {}, set()
    for _, p in plan.all_sites("gateway_only"):
        s = p.site
        ecall = s.ecall - pe.LOAD_BIAS
        if s.sysno in CLONE_SYSNOS:
            clones.add(ecall)
        if s.kind == npl.GK_PATCH_GATEWAY:
            out[ecall] = f"gateway window +{s.win_start - pe.LOAD_BIAS:#x} {s.win_len}"
        else:
            out[ecall] = f"left {s.reason}"
    return out, clones


@pytest.fixture(scope="module")
def runtime_sites(sysroot: Path, qemu: str, binfmt: Path, intercept_lib: Path,
                  tmp_path_factory) -> list[str]:
    d = tmp_path_factory.mktemp("gw_consistency")
    rv = Riscv64Runner(sysroot, d)
    log = d / "log"
    res = rv.run(["true"], preload=[intercept_lib],
                 env={"INTERCEPT_LOG": str(log), "INTERCEPT_LOG_SITES": "1",
                      "INTERCEPT_FORCE_GATEWAY": "1"})
    assert res.returncode == 0, res.describe()
    return log.read_text().splitlines()


@pytest.mark.parametrize("name", OBJECTS)
def test_runtime_gateways_equal_host_report(name: str, sysroot: Path,
                                            runtime_sites: list[str]) -> None:
    host, clones = host_gateway_plan(sysroot / "usr/lib/riscv64-linux-gnu" / name)
    got = {int(m[2], 16): m[3] for m in map(SITE.match, runtime_sites)
           if m and Path(m[1]).name == name}
    assert set(got) == set(host), f"{name}: site addresses differ"
    for ecall in clones:
        assert got.pop(ecall) == "jal", f"{name}: clone site {ecall:#x} not on jal"
        host.pop(ecall)
    diff = {hex(a): (got[a], w) for a, w in host.items() if not got[a].startswith(w)}
    assert not diff, f"{name}: run time vs host report (gateway only): {diff}"
    gateways = sum(v.startswith("gateway") for v in got.values())
    assert gateways >= 0.85 * (len(got) + len(clones)), "below the documented gateway floor"
