"""(f) Golden patch tests: small riscv64 assembly sources with hard windows
(intercept/tests/golden/*.S), assembled with the cross gcc and planned on the
host, with trampolines in jal reach (JAL kind) and far away (gateway kind
forced).  The expected windows and bytes below were worked out by hand from
the encodings (see the notes) and every emitted patch and trampoline is also
decoded and checked with capstone (plan_verify).

Layout of the simulation: .text at V; site i's JAL trampoline at JT + 64*i,
its gateway stub at GT + 128*i (16 MiB away: beyond jal reach); gk_entry at
ENTRY.

Hand derivations, e.g. close.S site 0: ecall at V+0xc, tramp 0x80000:
jal x0, 0x80000 - 0x1000c = 0x6fff4 -> imm[20]=0, imm[10:1]=0x3fa, imm[11]=1,
imm[19:12]=0x6f -> 0x7f56f06f -> bytes 6f f0 56 7f.  Its gateway window
[V, V+16): c.addi sp,-16 (0x1141); c.sdsp ra,0(sp) (0xe006); auipc ra at
V+4 to GT: 0x1010000 - 0x10004 = 0xfffffc = 0x1000 << 12 - 4 -> auipc ra,
0x1000 (0x01000097), jalr ra,-4(ra) (0xffc080e7); tail c.ldsp ra,0(sp)
(0x6082), c.addi sp,16 (0x0141).
"""
from __future__ import annotations

import pytest

from gkfs_client import native_plan as npl
from gkfs_client import plan_verify as pv
from planner_util import GOLDEN_DIR, assemble, new_cs, object_text

V = 0x10000
JT = 0x80000
GT = V + (16 << 20)
ENTRY = 0x4000_0000
GW_HEAD = "41110" + "6e0" + "97000001"       # c.addi sp,-16; c.sdsp ra; auipc ra,0x1000
GW_TAIL = "82604101"                         # c.ldsp ra,0(sp); c.addi sp,16

# file -> [(ecall offset, sysno, jal patch, gateway: (start off, len, patch) or reason)]
GOLDEN = {
    "close.S": [  # two ecalls 10 bytes apart: windows side by side, no overlap
        (0x0C, 172, "6ff0567f", (0x00, 16, GW_HEAD + "e780c0ff" + GW_TAIL)),
        # second: auipc at V+0x14 -> GT+128: 0x1010080 - 0x10014 = 0x100006c
        (0x16, 178, "6f00a702", (0x10, 16, GW_HEAD + "e780c006" + GW_TAIL)),
    ],
    "edges.S": [
        # ecall is the function's first instruction: window starts at it
        (0x00, -1, "6f000700", (0x00, 16, GW_HEAD + "e780c0ff" + GW_TAIL)),
        # ecall last in a 14-byte function: every window holds `last` or `next`
        (0x1C, 29, "6f004702", "window_has_target"),
        # ecall last, room before it: the window ends exactly at `next2`
        (0x30, 29, "6f000705", (0x24, 16, GW_HEAD + "e780800d" + GW_TAIL)),
    ],
    "pcrel.S": [
        # auipc+ld before the ecall: moved as auipc+addi (tramp 68+8+4+4 = 84)
        (0x0C, 56, "6ff0567f", (0x00, 16, GW_HEAD + "e780c0ff" + GW_TAIL)),
        # c.bnez to the window end (stub-local), c.j past it through a gadget
        # at V+0x2a: c.ldsp; c.addi; jal x0, 0x3a - 0x2e = 12 (0x00c0006f)
        (0x1E, 57, "6f002702",
         (0x1E, 26, GW_HEAD + "e780e005" + "826041016f00c000" + "0100" + GW_TAIL)),
    ],
    "target_after.S": [
        # target right after the ecall: window ends there; c.beqz to it is stub-local
        (0x0E, 63, "6ff0367f", (0x02, 16, GW_HEAD + "e780a0ff" + GW_TAIL)),
        # retry loop: window starts at the branch target (first byte is allowed)
        (0x1C, 64, "6f004702", (0x18, 16, GW_HEAD + "e7804006" + GW_TAIL)),
    ],
    "rvv_mix.S": [
        # vmv.x.s (capstone cannot decode it) is copied verbatim into the stub
        (0x20, 64, "6ff0167e", (0x14, 16, GW_HEAD + "e78080fe" + GW_TAIL)),
    ],
}
TRAMP_LEN = {("pcrel.S", 0x0C): 84, ("pcrel.S", 0x1E): 110, ("target_after.S", 0x0E): 82}


def test_every_golden_source_has_expectations():
    assert sorted(p.name for p in GOLDEN_DIR.glob("*.S")) == sorted(GOLDEN)


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden(name, tmp_path):
    data, syms = object_text(assemble(GOLDEN_DIR / name, tmp_path))
    text = npl.Text(data, V)
    res = npl.scan(text, [V + s for s in syms])
    want = GOLDEN[name]
    assert [s.ecall - V for s in res.sites] == [w[0] for w in want]
    for i, (site, (off, sysno, jal_hex, gw)) in enumerate(zip(res.sites, want)):
        assert site.sysno == sysno
        # JAL: the 4-byte ecall becomes jal x0 to its trampoline.
        j = npl.assign(site, JT + 64 * i)
        assert (j.kind, j.win_start, j.win_len, j.tramp_len) == (npl.GK_PATCH_JAL, site.ecall, 4, 44)
        patch, _ = npl.emit(text, j, JT + 64 * i, ENTRY)
        assert patch.hex() == jal_hex
        pv.verify_site(text, j, JT + 64 * i, ENTRY)
        # Gateway forced: trampoline 16 MiB away.
        g = npl.assign(site, GT + 128 * i)
        if isinstance(gw, str):
            assert g.kind == npl.GK_PATCH_NONE and g.reason_name == gw
            with pytest.raises(ValueError):
                npl.emit(text, g, GT + 128 * i, ENTRY)
            continue
        start, length, gw_hex = gw
        assert (g.kind, g.win_start - V, g.win_len) == (npl.GK_PATCH_GATEWAY, start, length)
        if (name, off) in TRAMP_LEN:
            assert g.tramp_len == TRAMP_LEN[(name, off)]
        patch, stub = npl.emit(text, g, GT + 128 * i, ENTRY)
        assert patch.hex() == gw_hex
        pv.verify_site(text, g, GT + 128 * i, ENTRY)


def test_rvv_lengths_where_capstone_fails(tmp_path):
    data, _ = object_text(assemble(GOLDEN_DIR / "rvv_mix.S", tmp_path))
    # vsetvli, c.nop, vle8.v, c.add, vadd.vv, vse8.v, sub, vmv.x.s, li, ecall, ret
    assert list(npl.rv_lengths(data)) == [4, 2, 4, 2, 4, 4, 4, 4, 4, 4, 2]
    # capstone 5 stops at the first vector instruction: this file really
    # exercises the length-from-low-bits path.
    assert list(new_cs().disasm(data, 0)) == []
