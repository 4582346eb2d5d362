"""Issue 11 (5): room for a second architecture. The run-time core and the
planner reach an architecture through src/arch/arch_runtime.h and
src/arch/arch_plan.h only; an architecture's folder includes nothing of
src/plan/ or src/runtime/; CMake takes its sources from
src/arch/<arch>/arch.cmake. (Before issue 11, runtime/patcher.c and
dispatch.c included arch/riscv64/frame.h and arch/riscv64/*.c included
plan/arch.h.)
"""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "intercept"
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
ARCHES = [d.name for d in (ROOT / "src/arch").iterdir() if d.is_dir()]


def _includes(folder: Path) -> dict[str, list[str]]:
    out = {}
    for f in sorted(folder.rglob("*")):
        if f.suffix in (".c", ".h", ".S"):
            out[str(f.relative_to(ROOT))] = INCLUDE.findall(f.read_text())
    return out


def test_runtime_and_planner_name_no_architecture() -> None:
    bad = []
    for sub in ("src/runtime", "src/plan"):
        for f, incs in _includes(ROOT / sub).items():
            bad += [(f, i) for i in incs if any(a in i for a in ARCHES)]
            text = (ROOT / f).read_text()
            bad += [(f, m) for m in re.findall(r"\bR_RISCV_\w+|riscv_flush_icache|fence\.i", text)]
    assert not bad, bad


def test_architectures_include_only_the_interfaces() -> None:
    bad = []
    for a in ARCHES:
        for f, incs in _includes(ROOT / "src/arch" / a).items():
            bad += [(f, i) for i in incs if "plan/" in i or "runtime/" in i or
                    (i.startswith("../") and i not in ("../arch_plan.h", "../arch_runtime.h"))]
        assert (ROOT / "src/arch" / a / "arch.cmake").is_file(), a
    assert not bad, bad


def test_cmake_names_no_architecture_source() -> None:
    for f in ("cmake/planner.cmake", "cmake/runtime.cmake", "CMakeLists.txt"):
        text = (ROOT / f).read_text()
        assert not re.search(r"src/arch/(%s)/" % "|".join(ARCHES), text), f
