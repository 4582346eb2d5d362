"""The native RV64GC decoder against capstone 5 (the oracle).

(a) Over the whole .text of two real riscv64 glibcs, every instruction
boundary and length agree with capstone's linear sweep. Where capstone
cannot decode (RVV vector instructions in newer glibcs), the length must
still follow from the low bits: those are counted and checked separately.
Then random instruction words: lengths and pc-relative immediates agree.
"""
from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gkfs_client import native_plan as npl
from planner_util import GLIBCS, capstone_sweep, glibc_path, new_cs, spec_length, text_section


@pytest.mark.parametrize("which", GLIBCS)
def test_glibc_text_boundaries_agree_with_capstone(which):
    data, vaddr = text_section(glibc_path(which))
    ours = npl.rv_lengths(data)
    # offset -> length (an undecodable parcel, 0 from the decoder, is 2 bytes:
    # capstone shows the all-zero parcel as c.unimp, also 2 bytes)
    offsets, off = {}, 0
    for n in ours:
        offsets[off] = n or 2
        off += n or 2
    assert off >= len(data)

    sw = capstone_sweep(data, vaddr, resync=lambda o: offsets.get(o, 2))
    mismatches = [(o, sz, offsets.get(o)) for o, sz in sw.boundaries if offsets.get(o) != sz]
    assert not mismatches[:20], f"{len(mismatches)} boundaries differ (offset, capstone, ours)"
    # Same instruction sequence, nothing of ours left over.
    assert len(sw.boundaries) == len(ours)

    # Where capstone gives up, the length must be the one the low bits give.
    for o, n in sw.failed.items():
        parcel = data[o] | data[o + 1] << 8
        assert n == spec_length(parcel), f"{which}: length at +{o:#x} ({parcel:#06x})"

    res = npl.scan(npl.Text(data, vaddr))
    assert res.insns == len(ours)
    assert res.ecalls == sw.ecalls
    print(f"\n{which}: {res.insns} instructions ({sw.insns} decoded by capstone, "
          f"{len(sw.failed)} only by length), {res.ecalls} ecalls, "
          f"{res.undecodable} undecodable parcels")
    if which == "cross-2.36":
        # The figures capstone 5.0.7 gives for bookworm's 2.36 (issue 3).
        assert (sw.insns, sw.ecalls, len(sw.failed)) == (289230, 509, 0)
    else:
        assert res.ecalls > 300 and sw.insns > 250_000


# Capstone mnemonics whose last operand is the pc-relative offset.
PCREL = {"jal", "j", "c.j", "beq", "bne", "blt", "bge", "bltu", "bgeu", "beqz", "bnez",
         "blez", "bgez", "bltz", "bgtz", "bgt", "ble", "bgtu", "bleu", "c.beqz", "c.bnez"}


def check_word(raw: bytes):
    ours = npl.rv_decode_one(raw)
    parcel = raw[0] | raw[1] << 8
    want = spec_length(parcel)
    assert ours.length == (want if want and want <= len(raw) else 2)
    insns = list(new_cs(detail=True).disasm(raw, 0x10000, count=1))
    if not insns or ours.kind == "undecodable":
        return
    i = insns[0]
    assert i.size == ours.length, (raw.hex(), i.mnemonic, i.op_str)
    if i.mnemonic in PCREL:
        assert ours.kind in ("jal", "branch", "c.j", "c.beqz", "c.bnez"), (raw.hex(), i.mnemonic)
        assert i.operands[-1].value.imm == ours.imm, (raw.hex(), i.mnemonic, i.op_str)
    elif i.mnemonic == "auipc":
        imm20 = i.operands[-1].value.imm & 0xFFFFF
        assert ours.kind == "auipc" and ours.imm == ((imm20 ^ 0x80000) - 0x80000) << 12
    elif i.mnemonic == "ecall":
        assert ours.kind == "ecall"
    elif ours.kind in ("jal", "branch", "c.j", "c.beqz", "c.bnez", "ecall"):
        pytest.fail(f"{raw.hex()}: we say {ours.kind}, capstone {i.mnemonic} {i.op_str}")


@settings(max_examples=3000, deadline=None)
@given(st.integers(0, 0xFFFFFFFF))
def test_random_32bit_words(word):
    check_word(struct.pack("<I", (word & ~0x3) | 0x3))


@settings(max_examples=3000, deadline=None)
@given(st.integers(0, 0xFFFF))
def test_random_16bit_parcels(h):
    if h & 3 == 3:
        h &= ~1
    check_word(struct.pack("<H", h))


def test_every_pc_relative_compressed_form():
    # c.j, c.beqz, c.bnez over their whole immediate space.
    for f3 in (0b101, 0b110, 0b111):
        for rest in range(1 << 11):
            check_word(struct.pack("<H", (f3 << 13) | (rest << 2) | 0b01))


def test_lengths_from_low_bits():
    cases = {0x0001: 2, 0x8082: 2, 0x0073: 4, 0x0057: 4, 0x001F: 6, 0x003F: 8,
             0x007F: 10, 0x107F: 12, 0x607F: 22}
    for parcel, n in cases.items():
        raw = struct.pack("<H", parcel) + bytes(22)
        assert npl.rv_decode_one(raw).length == n, hex(parcel)
    # Reserved (>= 192 bits) and the all-zero parcel are undecodable, 2 bytes.
    for parcel in (0x707F, 0x0000):
        got = npl.rv_decode_one(struct.pack("<H", parcel) + bytes(30))
        assert (got.length, got.kind) == (2, "undecodable")
    # Cut by the end of the text.
    got = npl.rv_decode_one(bytes.fromhex("7300"))
    assert (got.length, got.kind) == (2, "undecodable")
