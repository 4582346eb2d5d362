"""Helpers of the planner suites (test_decoder, test_planner, test_golden):
the two real riscv64 glibcs, capstone as the oracle, and assembling the
golden sources. Anything missing fails the test loudly (never a skip)."""
from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import capstone
import pytest
from elftools.elf.elffile import ELFFile

from gkfs_client import native_paths

CROSS_GLIBC = Path("/usr/riscv64-linux-gnu/lib/libc.so.6")   # Debian bookworm: 2.36
GLIBCS = ("cross-2.36", "sysroot")


def glibc_path(which: str) -> Path:
    if which == "cross-2.36":
        if not CROSS_GLIBC.is_file():
            pytest.fail(f"{CROSS_GLIBC} missing: install libc6-riscv64-cross "
                        "(deploy/setup-debian.sh)", pytrace=False)
        return CROSS_GLIBC
    try:
        root = native_paths.riscv64_sysroot()
    except (native_paths.NativeNotBuilt, subprocess.CalledProcessError) as exc:
        pytest.fail(f"riscv64 sysroot glibc: {exc}", pytrace=False)
    return root / "usr" / "lib" / "riscv64-linux-gnu" / "libc.so.6"


def text_section(path: Path) -> tuple[bytes, int]:
    with open(path, "rb") as fh:
        sec = ELFFile(fh).get_section_by_name(".text")
        assert sec is not None, f"{path} has no .text"
        return sec.data(), sec["sh_addr"]


def new_cs(detail: bool = False) -> capstone.Cs:
    md = capstone.Cs(capstone.CS_ARCH_RISCV, capstone.CS_MODE_RISCV64 | capstone.CS_MODE_RISCVC)
    md.detail = detail
    return md


def spec_length(parcel: int) -> int:
    """Instruction length from the first 16-bit parcel, written from the ISA
    manual independently of the C decoder (0: reserved >= 192 bits)."""
    if parcel & 0b11 != 0b11:
        return 2
    if parcel & 0b11100 != 0b11100:
        return 4
    if parcel & 0b111111 == 0b011111:
        return 6
    if parcel & 0b1111111 == 0b0111111:
        return 8
    nnn = (parcel >> 12) & 7
    return 0 if nnn == 7 else 10 + 2 * nnn


@dataclass
class CapstoneSweep:
    insns: int = 0                  # decoded by capstone
    ecalls: int = 0
    failed: dict[int, int] = field(default_factory=dict)   # offset -> length by low bits
    boundaries: list[tuple[int, int]] = field(default_factory=list)  # (offset, size)


def capstone_sweep(data: bytes, vaddr: int, resync) -> CapstoneSweep:
    """Linear sweep with capstone; where it cannot decode, continue after
    resync(offset) bytes (the length the low bits give)."""
    md = new_cs()
    sw = CapstoneSweep()
    off = 0
    while off < len(data):
        for _addr, size, mnem, _ops in md.disasm_lite(data[off:], vaddr + off):
            sw.boundaries.append((off, size))
            sw.insns += 1
            sw.ecalls += mnem == "ecall"
            off += size
        if off < len(data):
            n = resync(off)
            sw.failed[off] = n
            sw.boundaries.append((off, n))
            off += n
    return sw


def assemble(src: Path, out_dir: Path) -> Path:
    """Assemble a golden .S into an object with the cross gcc."""
    gcc = shutil.which("riscv64-linux-gnu-gcc")
    if not gcc:
        pytest.fail("riscv64-linux-gnu-gcc missing: install gcc-riscv64-linux-gnu "
                    "(deploy/setup-debian.sh)", pytrace=False)
    obj = out_dir / (src.stem + ".o")
    subprocess.run([gcc, "-march=rv64gc", "-mabi=lp64d", "-c", str(src), "-o", str(obj)],
                   check=True, capture_output=True)
    return obj


GOLDEN_DIR = Path(__file__).resolve().parents[2] / "intercept" / "tests" / "golden"


def object_text(obj: Path) -> tuple[bytes, list[int]]:
    """.text bytes of a relocatable object and its symbol offsets (targets)."""
    with open(obj, "rb") as fh:
        elf = ELFFile(fh)
        text = elf.get_section_by_name(".text")
        idx = [i for i, s in enumerate(elf.iter_sections()) if s.name == ".text"][0]
        syms = [s["st_value"] for s in elf.get_section_by_name(".symtab").iter_symbols()
                if s["st_shndx"] == idx and s["st_info"]["type"] in ("STT_FUNC", "STT_NOTYPE")]
        return text.data(), syms
