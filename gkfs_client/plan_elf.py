"""Run the native planner over a riscv64 ELF object on the host.

Reads the object with pyelftools, gathers the jump targets the code alone
does not show (function symbol starts, R_RISCV_RELATIVE / R_RISCV_IRELATIVE
addends, C++/cleanup landing pads from .gcc_except_table), scans every
executable range, and simulates where the run-time patcher puts trampolines:

* "in reach": a trampoline region right after the object's highest address
  and one right before its lowest; each site takes a slot in the nearer one.
* "gateway only": every trampoline 16 MiB past the object (beyond jal's
  +-1 MiB, within auipc+jalr's +-2 GiB), i.e. no trampoline in jal range.

The object is placed at LOAD_BIAS so that "before its lowest address" is a
real address; reported addresses are link addresses (bias removed).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

from elftools.elf.constants import SH_FLAGS
from elftools.elf.elffile import ELFFile

from . import native_plan as npl

EM_RISCV = 243
R_RISCV_64 = 2
R_RISCV_RELATIVE = 3      # not x86-64's 8
R_RISCV_IRELATIVE = 58
LOAD_BIAS = 0x40_0000_0000
PAGE = 0x1000
GATEWAY_ONLY_GAP = 16 << 20
ENTRY_GAP = 1 << 20        # simulated gk_entry: 1 MiB past the trampoline regions


class NotRiscvElf(ValueError):
    pass


@dataclass
class TextRange:
    name: str
    vaddr: int          # link address
    data: bytes


@dataclass
class ElfInfo:
    path: Path
    texts: list[TextRange]
    extra_targets: set[int]
    lo: int             # lowest PT_LOAD address (page aligned)
    hi: int             # highest PT_LOAD end (page aligned)
    target_sources: dict[str, int] = field(default_factory=dict)


def _uleb(b: bytes, i: int) -> tuple[int, int]:
    v = s = 0
    while True:
        c = b[i]
        i += 1
        v |= (c & 0x7F) << s
        s += 7
        if not c & 0x80:
            return v, i


def _read_enc(b: bytes, i: int, enc: int, pc: int) -> tuple[int, int]:
    """A DW_EH_PE encoded value (the encodings GCC uses in LSDAs)."""
    fmt = enc & 0x0F
    if fmt == 0x01:
        v, i = _uleb(b, i)
    elif fmt in (0x00, 0x04, 0x0C):
        v, i = struct.unpack_from("<Q" if fmt != 0x0C else "<q", b, i)[0], i + 8
    elif fmt in (0x03, 0x0B):
        v, i = struct.unpack_from("<I" if fmt == 0x03 else "<i", b, i)[0], i + 4
    elif fmt in (0x02, 0x0A):
        v, i = struct.unpack_from("<H" if fmt == 0x02 else "<h", b, i)[0], i + 2
    else:
        raise ValueError(f"unsupported DW_EH_PE format {enc:#x}")
    if enc & 0x70 == 0x10:
        v += pc
    return v & 0xFFFFFFFFFFFFFFFF, i


def _sleb(b: bytes, i: int) -> tuple[int, int]:
    v = s = 0
    while True:
        c = b[i]
        i += 1
        v |= (c & 0x7F) << s
        s += 7
        if not c & 0x80:
            return (v - (1 << s) if c & 0x40 else v), i


def _fde_lsdas(elf: ELFFile) -> list[tuple[int, int]]:
    """(function start, LSDA address) of every FDE in .eh_frame that has an
    LSDA.  Our own walk: pyelftools 0.33 stops early on riscv64 glibc."""
    sec = elf.get_section_by_name(".eh_frame")
    if sec is None:
        return []
    data, base = sec.data(), sec["sh_addr"]
    cies: dict[int, tuple[str, int, int]] = {}   # offset -> (aug, R enc, L enc)
    out = []
    i = 0
    while i + 4 <= len(data):
        length = struct.unpack_from("<I", data, i)[0]
        if length == 0:
            break
        if length == 0xFFFFFFFF:
            raise ValueError(".eh_frame: 64-bit DWARF records are not supported")
        rec, body = i, i + 4
        nxt = body + length
        cie_id = struct.unpack_from("<I", data, body)[0]
        j = body + 4
        if cie_id == 0:                                  # CIE
            j += 1                                       # version
            aug_end = data.index(b"\0", j)
            aug = data[j:aug_end].decode()
            j = aug_end + 1
            _, j = _uleb(data, j)                        # code alignment
            _, j = _sleb(data, j)                        # data alignment
            _, j = _uleb(data, j)                        # return address column
            r_enc = l_enc = 0xFF
            if aug.startswith("z"):
                _, j = _uleb(data, j)
                for ch in aug[1:]:
                    if ch == "P":
                        p_enc = data[j]
                        _, j = _read_enc(data, j + 1, p_enc, base + j + 1)
                    elif ch == "L":
                        l_enc = data[j]
                        j += 1
                    elif ch == "R":
                        r_enc = data[j]
                        j += 1
            cies[rec] = (aug, r_enc, l_enc)
        else:                                            # FDE
            cie = cies.get(body - cie_id)
            if cie and "L" in cie[0]:
                aug, r_enc, l_enc = cie
                start, j = _read_enc(data, j, r_enc, base + j)
                _, j = _read_enc(data, j, r_enc & 0x0F, base + j)   # range: no pcrel
                _, j = _uleb(data, j)                    # augmentation length
                if l_enc != 0xFF:
                    lsda, _ = _read_enc(data, j, l_enc, base + j)
                    if lsda:
                        out.append((start, lsda))
        i = nxt
    return out


def _landing_pads(elf: ELFFile) -> set[int]:
    """Landing pads: the unwinder jumps there, so they are jump targets."""
    gcc = elf.get_section_by_name(".gcc_except_table")
    if gcc is None:
        return set()
    pads: set[int] = set()
    data, base = gcc.data(), gcc["sh_addr"]
    for func, lsda in _fde_lsdas(elf):
        if not base <= lsda < base + len(data):
            continue
        i = lsda - base
        lp_enc = data[i]
        i += 1
        lpstart = func
        if lp_enc != 0xFF:
            lpstart, i = _read_enc(data, i, lp_enc, base + i)
        tt_enc = data[i]
        i += 1
        if tt_enc != 0xFF:
            _, i = _uleb(data, i)
        cs_enc = data[i]
        i += 1
        cs_len, i = _uleb(data, i)
        end = i + cs_len
        while i < end:
            _, i = _read_enc(data, i, cs_enc, base + i)      # start
            _, i = _read_enc(data, i, cs_enc, base + i)      # length
            lp, i = _read_enc(data, i, cs_enc, base + i)     # landing pad
            _, i = _uleb(data, i)                           # action
            if lp:
                pads.add(lpstart + lp)
    return pads


def read_elf(path: str | Path, all_sections: bool = False) -> ElfInfo:
    path = Path(path)
    with open(path, "rb") as fh:
        try:
            elf = ELFFile(fh)
        except Exception as exc:
            raise NotRiscvElf(f"{path}: not an ELF file ({exc})") from exc
        if elf["e_machine"] != "EM_RISCV" or elf.elfclass != 64:
            raise NotRiscvElf(f"{path}: not a riscv64 ELF (machine {elf['e_machine']}, "
                              f"class {elf.elfclass})")
        texts = []
        for sec in elf.iter_sections():
            if sec["sh_type"] != "SHT_PROGBITS" or not sec["sh_flags"] & SH_FLAGS.SHF_EXECINSTR:
                continue
            if all_sections or sec.name == ".text":
                texts.append(TextRange(sec.name, sec["sh_addr"], sec.data()))
        if not texts:
            raise NotRiscvElf(f"{path}: no executable .text section "
                              "(try --all-sections)")
        loads = [s for s in elf.iter_segments() if s["p_type"] == "PT_LOAD"]
        lo = min(s["p_vaddr"] for s in loads) & ~(PAGE - 1)
        hi = (max(s["p_vaddr"] + s["p_memsz"] for s in loads) + PAGE - 1) & ~(PAGE - 1)

        sources = {"symbols": 0, "relative": 0, "landing_pads": 0}
        targets: set[int] = set()
        for name in (".symtab", ".dynsym"):
            sym = elf.get_section_by_name(name)
            if sym is None:
                continue
            for s in sym.iter_symbols():
                if s["st_shndx"] == "SHN_UNDEF" or s["st_value"] == 0:
                    continue
                if s["st_info"]["type"] in ("STT_FUNC", "STT_GNU_IFUNC", "STT_NOTYPE"):
                    targets.add(s["st_value"])
                    sources["symbols"] += 1
        for sec in elf.iter_sections():
            if sec["sh_type"] != "SHT_RELA":
                continue
            for r in sec.iter_relocations():
                if r["r_info_type"] in (R_RISCV_RELATIVE, R_RISCV_IRELATIVE):
                    targets.add(r["r_addend"])
                    sources["relative"] += 1
        pads = _landing_pads(elf)
        sources["landing_pads"] = len(pads)
        targets |= pads
    return ElfInfo(path, texts, targets, lo, hi, sources)


@dataclass
class PlacedSite:
    site: npl.Site       # addresses biased
    tramp: int           # 0 = none


@dataclass
class RangePlan:
    text: TextRange
    ntext: npl.Text      # biased
    scan: npl.ScanResult
    in_reach: list[PlacedSite]
    gateway_only: list[PlacedSite]


@dataclass
class ObjectPlan:
    info: ElfInfo
    ranges: list[RangePlan]
    entry: int           # simulated gk_entry (biased)
    seconds: float       # scan time, all ranges

    def all_sites(self, mode: str):
        for r in self.ranges:
            for p in getattr(r, mode):
                yield r, p


def _align(n: int, a: int = 8) -> int:
    return (n + a - 1) & ~(a - 1)


def plan_object(info: ElfInfo) -> ObjectPlan:
    import time
    lo, hi = info.lo + LOAD_BIAS, info.hi + LOAD_BIAS
    after, before = hi, lo          # next free slot after / end of free room before
    gw_next = hi + GATEWAY_ONLY_GAP
    entry = hi + ENTRY_GAP
    extra = [t + LOAD_BIAS for t in info.extra_targets]
    ranges, seconds = [], 0.0
    for tr in info.texts:
        nt = npl.Text(tr.data, tr.vaddr + LOAD_BIAS)
        t0 = time.perf_counter()
        res = npl.scan(nt, extra)
        seconds += time.perf_counter() - t0
        in_reach, gw_only = [], []
        for s in res.sites:
            # Nearer region first; the slot takes what the chosen kind needs.
            cand_after, cand_before = after, before - npl.GK_TRAMP_MAX
            near = cand_after if cand_after - s.ecall <= s.ecall - cand_before else cand_before
            a = npl.assign(s, near)
            if a.kind != npl.GK_PATCH_NONE:
                if near == cand_after:
                    after += _align(a.tramp_len)
                else:
                    before -= npl.GK_TRAMP_MAX
                in_reach.append(PlacedSite(a, near))
            else:
                in_reach.append(PlacedSite(a, 0))
            g = npl.assign(s, gw_next)
            if g.kind != npl.GK_PATCH_NONE:
                gw_only.append(PlacedSite(g, gw_next))
                gw_next += _align(g.tramp_len)
            else:
                gw_only.append(PlacedSite(g, 0))
        ranges.append(RangePlan(tr, nt, res, in_reach, gw_only))
    return ObjectPlan(info, ranges, entry, seconds)


def coverage(plan: ObjectPlan, mode: str) -> tuple[int, int, dict[str, int], dict[str, int]]:
    """(patched, sites, by kind name, unpatched by reason name)."""
    kinds: dict[str, int] = {}
    reasons: dict[str, int] = {}
    total = patched = 0
    for _, p in plan.all_sites(mode):
        total += 1
        if p.site.kind != npl.GK_PATCH_NONE:
            patched += 1
            kinds[p.site.kind_name] = kinds.get(p.site.kind_name, 0) + 1
        else:
            reasons[p.site.reason_name] = reasons.get(p.site.reason_name, 0) + 1
    return patched, total, kinds, reasons
