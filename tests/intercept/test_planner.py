"""(b) Planner coverage on two real riscv64 glibcs, checked independently.

Floors (documented in intercept/README.md, "Planner"): with trampolines in
jal reach, 100 % of glibc's ecall sites are patched; with no trampoline in
jal reach (gateway only), at least GATEWAY_FLOOR of them.  Every patched
site is emitted and its bytes checked with capstone; every gateway window is
checked against jump targets capstone finds (no target inside a window but
at its first byte) and against the other windows (no overlap).
"""
from __future__ import annotations

import pytest

from gkfs_client import native_plan as npl
from gkfs_client import plan_elf as pe
from gkfs_client import plan_verify as pv
from planner_util import GLIBCS, glibc_path, new_cs

IN_REACH_FLOOR = 1.0
GATEWAY_FLOOR = 0.85

_plans: dict[str, pe.ObjectPlan] = {}


def plan_for(which: str) -> pe.ObjectPlan:
    if which not in _plans:
        _plans[which] = pe.plan_object(pe.read_elf(glibc_path(which)))
    return _plans[which]


@pytest.mark.parametrize("which", GLIBCS)
def test_coverage_floors(which):
    plan = plan_for(which)
    patched, total, kinds, reasons = pe.coverage(plan, "in_reach")
    gp, gt, gkinds, greasons = pe.coverage(plan, "gateway_only")
    text = sum(len(r.text.data) for r in plan.ranges) / 2**20
    print(f"\n{which}: {total} sites; in reach: {patched} patched {kinds} {reasons}; "
          f"gateway only: {gp} patched ({100 * gp / gt:.1f}%) {greasons}; "
          f"scan {plan.seconds * 1000 / text:.1f} ms/MiB")
    assert total > 300
    assert patched / total >= IN_REACH_FLOOR, reasons
    assert kinds == {"jal": total}
    assert gp / gt >= GATEWAY_FLOOR, greasons
    # Every site the static scan-back can see: glibc sets a7 with li.
    known = sum(1 for _, p in plan.all_sites("in_reach") if p.site.sysno >= 0)
    assert known / total > 0.9


@pytest.mark.parametrize("which", GLIBCS)
@pytest.mark.parametrize("mode", ["in_reach", "gateway_only"])
def test_every_patch_verifies_with_capstone(which, mode):
    plan = plan_for(which)
    n = 0
    for r, p in plan.all_sites(mode):
        if p.site.kind:
            pv.verify_site(r.ntext, p.site, p.tramp, plan.entry)
            n += 1
    assert n > 300


def _capstone_targets(data: bytes, vaddr: int) -> set[int]:
    """Direct jump/branch targets as capstone sees them (resyncing by 2
    bytes where it cannot decode)."""
    md = new_cs(detail=True)
    out, off = set(), 0
    jumps = {"jal", "j", "c.j", "beq", "bne", "blt", "bge", "bltu", "bgeu", "beqz", "bnez",
             "blez", "bgez", "bltz", "bgtz", "bgt", "ble", "bgtu", "bleu", "c.beqz", "c.bnez"}
    while off < len(data):
        for i in md.disasm(data[off:], vaddr + off):
            if i.mnemonic in jumps:
                out.add(i.address + i.operands[-1].value.imm)
            off += i.size
        if off < len(data):
            off += 2
    return out


@pytest.mark.parametrize("which", GLIBCS)
def test_gateway_windows_respect_targets_and_each_other(which):
    plan = plan_for(which)
    for r in plan.ranges:
        targets = _capstone_targets(r.ntext.data, r.ntext.vaddr)
        targets |= {t + pe.LOAD_BIAS for t in plan.info.extra_targets}
        boundaries = {i.address for i in new_cs().disasm(r.ntext.data, r.ntext.vaddr)}
        # Landing pads and symbol starts inside text land on instruction starts.
        for t in plan.info.extra_targets:
            if r.ntext.vaddr <= t + pe.LOAD_BIAS < r.ntext.end and (t & 1) == 0:
                assert t + pe.LOAD_BIAS in boundaries, hex(t)
        prev_end = 0
        for p in r.gateway_only:
            s = p.site
            if s.kind != npl.GK_PATCH_GATEWAY:
                continue
            ws, we = s.win_start, s.win_start + s.win_len
            assert ws in boundaries and (we in boundaries or we == r.ntext.end)
            assert ws <= s.ecall and s.ecall + 4 <= we and 16 <= s.win_len <= 32
            inside = [t for t in targets if ws < t < we]
            assert not inside, f"{s.ecall:#x}: targets {[hex(t) for t in inside]} in window"
            assert ws >= prev_end, f"{s.ecall:#x}: windows overlap"
            prev_end = we


def test_scan_is_deterministic_and_reassignable():
    plan = plan_for("cross-2.36")
    r = plan.ranges[0]
    again = npl.scan(r.ntext, [t + pe.LOAD_BIAS for t in plan.info.extra_targets])
    assert again.sites == r.scan.sites
    # assign may be re-run: far, then near, then far again gives the same site.
    s = r.scan.sites[0]
    far = npl.assign(s, s.ecall + (64 << 20))
    near = npl.assign(far, s.ecall + 4096)
    assert near.kind == npl.GK_PATCH_JAL and near.win_len == 4 and near.tramp_len == 44
    assert npl.assign(near, s.ecall + (64 << 20)) == far
    none = npl.assign(s, 0)
    assert none.kind == npl.GK_PATCH_NONE and none.reason == 1   # no trampoline in range
    beyond = npl.assign(s, s.ecall + (3 << 30))
    assert beyond.kind == npl.GK_PATCH_NONE and beyond.reason == 1


def test_bad_input_is_refused():
    t = npl.Text(b"\x73\x00\x00\x00", 0x1001)   # odd vaddr
    with pytest.raises(ValueError):
        npl.scan(t)
