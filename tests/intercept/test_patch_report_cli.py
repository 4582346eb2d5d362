"""`gkfs-ctl patch-report ELF --json --verify` (issue 3, deliverable 5) as a
user runs it, on the glibc and dynamic loader that programs run with under
qemu (the sysroot's): exit 0, every ecall in a plan, every patched window
and trampoline checked by capstone with no failure, and every site left
alone carrying a reason."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

LIBDIR = "usr/lib/riscv64-linux-gnu"


@pytest.mark.parametrize("name", ["libc.so.6", "ld-linux-riscv64-lp64d.so.1"])
def test_patch_report_verify(name: str, sysroot: Path) -> None:
    elf = sysroot / LIBDIR / name
    cp = subprocess.run([sys.executable, "-c", "from gkfs_client.ctl.main import main; main()",
                         "patch-report", "--json", "--verify", str(elf)],
                        capture_output=True, text=True, timeout=600)
    assert cp.returncode == 0, cp.stderr
    rep = json.loads(cp.stdout)
    assert rep["ecalls"] > 0
    for mode, plan in rep["plans"].items():
        assert plan["sites"] == rep["ecalls"], mode
        assert plan["verify"] == {"checked": plan["patched"], "failures": []}, mode
        left = plan["sites"] - plan["patched"]
        assert sum(plan["unpatched"].values()) == left, mode
    assert rep["plans"]["in_reach"]["coverage"] == 1.0
