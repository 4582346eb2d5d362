"""Check emitted patches and trampolines by disassembling them with capstone.

Independent of the C emitter: each window and trampoline must decode, byte
for byte, into the shape plan.h / layout.h describe, with every pc-relative
value recomputed from capstone's operands: the gateway reaches the stub, the
stub's call reaches gk_entry, its jumps reach the continuation, the return
reaches the window tail, each far exit reaches its gadget and each gadget
the original target, and every relocated instruction does what the original
did at its original address.
"""
from __future__ import annotations

import capstone

from . import native_plan as npl

M64 = (1 << 64) - 1
_md = None


def _cs() -> capstone.Cs:
    global _md
    if _md is None:
        _md = capstone.Cs(capstone.CS_ARCH_RISCV,
                          capstone.CS_MODE_RISCV64 | capstone.CS_MODE_RISCVC)
        _md.detail = True
    return _md


class Mismatch(AssertionError):
    pass


def _need(cond: bool, msg: str) -> None:
    if not cond:
        raise Mismatch(msg)


class Raw:
    """An instruction capstone cannot decode (RVV in capstone 5, say): kept
    as bytes, sized by the ISA's length encoding; it may only be copied."""

    def __init__(self, address: int, data: bytes):
        self.address, self.bytes, self.size = address, data, len(data)
        self.mnemonic, self.op_str, self.operands = ".insn", data.hex(), []


def _length(parcel: int) -> int:
    if parcel & 3 != 3:
        return 2
    if parcel & 0x1C != 0x1C:
        return 4
    if parcel & 0x3F == 0x1F:
        return 6
    if parcel & 0x7F == 0x3F:
        return 8
    return 2   # longer forms: not produced by any toolchain we read


def disasm(code: bytes, addr: int) -> list:
    """Capstone's decoding of all of code; undecodable pieces become Raw."""
    out, off = [], 0
    while off < len(code):
        for i in _cs().disasm(code[off:], addr + off):
            out.append(i)
            off += i.size
        if off < len(code):
            n = _length(code[off] | code[off + 1] << 8 if off + 1 < len(code) else 0)
            _need(off + n <= len(code), f"{addr + off:#x}: instruction cut off")
            out.append(Raw(addr + off, code[off:off + n]))
            off += n
    return out


def _imm(i) -> int:
    return [o.value.imm for o in i.operands if o.type == capstone.CS_OP_IMM][-1]


def _regs(i) -> list[str]:
    return [_cs().reg_name(o.value.reg) for o in i.operands if o.type == capstone.CS_OP_REG]


def _auipc_value(i) -> int:
    hi = _imm(i) & 0xFFFFF
    return (i.address + (((hi ^ 0x80000) - 0x80000) << 12)) & M64


def _expect(i, mnem: str, text: str | None = None) -> None:
    _need(i.mnemonic == mnem and (text is None or i.op_str == text),
          f"{i.address:#x}: {i.mnemonic} {i.op_str}, expected {mnem} {text or ''}")


def _far(a, b, link: str) -> int:
    """auipc ra; jalr link, lo(ra) -> target."""
    _expect(a, "auipc")
    _expect(b, "jalr")
    _need(_regs(a) == ["ra"] and _regs(b) == [link, "ra"], f"{a.address:#x}: far jump registers")
    return (_auipc_value(a) + _imm(b)) & M64


def _jump_target(i) -> int:
    return (i.address + _imm(i)) & M64


def check_call_block(insns, entry: int, cont: int) -> None:
    """The 44-byte convention: call gk_entry, ret0, ret1 (= ret0 + 12)."""
    _need(len(insns) == 11, f"call block has {len(insns)} instructions")
    _expect(insns[0], "addi", "sp, sp, -0x10")
    _expect(insns[1], "sd", "ra, 0(sp)")
    _need(_far(insns[2], insns[3], "ra") == entry, "call does not reach gk_entry")
    ret0 = insns[4].address
    _need(ret0 == insns[3].address + 4, "ret0 is not the call's return address")
    for k, base in ((4, ret0), (7, ret0 + npl.GK_TRAMP_RAW_OFFSET)):
        _need(insns[k].address == base, "ret1 is not ret0 + GK_TRAMP_RAW_OFFSET")
        _expect(insns[k], "ld", "ra, 0(sp)")
        _expect(insns[k + 1], "addi", "sp, sp, 0x10")
    _expect(insns[6], "j")
    _expect(insns[9], "ecall")
    _expect(insns[10], "j")
    _need(_jump_target(insns[6]) == cont and _jump_target(insns[10]) == cont,
          "ret0/ret1 do not continue at the continuation")


def verify_jal(site: npl.Site, patch: bytes, tramp: int, tramp_bytes: bytes, entry: int):
    (j,) = disasm(patch, site.ecall)
    _expect(j, "j")
    _need(_jump_target(j) == tramp, "patch does not jump to the trampoline")
    check_call_block(disasm(tramp_bytes, tramp), entry, site.ecall + 4)


BRANCHES = {"beq", "bne", "blt", "bge", "bltu", "bgeu", "beqz", "bnez", "blez", "bgez",
            "bltz", "bgtz", "bgt", "ble", "bgtu", "bleu"}


def _same_effect(orig, new: list, labels: dict[int, int]) -> int:
    """Check the relocated copy of orig starting at new[0]; returns how many
    new instructions it took.  labels maps original targets to stub labels."""
    m = orig.mnemonic.removeprefix("c.")
    if m == "auipc":
        _need(new[0].mnemonic == "auipc" and new[1].mnemonic == "addi", "auipc relocation shape")
        rd = _regs(orig)[0]
        _need(_regs(new[0])[0] == rd and _regs(new[1]) == [rd, rd], "auipc relocation register")
        _need((_auipc_value(new[0]) + _imm(new[1])) & M64 == _auipc_value(orig),
              f"{orig.address:#x}: relocated auipc value differs")
        return 2
    link = (_regs(orig) or ["ra"])[0] if m == "jal" else "zero"   # "jal imm" links ra
    if m == "jal" and link != "zero":
        _need(_far(new[0], new[1], link) == _jump_target(orig), "relocated call target")
        return 2
    if m in BRANCHES or m in ("j", "jal"):
        want = labels.get(_jump_target(orig))
        _need(want is not None, f"{orig.address:#x}: no stub label for the target")
        _need(new[0].mnemonic.removeprefix("c.") in (m, "j") and _jump_target(new[0]) == want,
              f"{orig.address:#x}: relocated {orig.mnemonic} does not reach its label")
        _need(_regs(new[0]) == _regs(orig), f"{orig.address:#x}: branch registers changed")
        return 1
    _need(new[0].bytes == orig.bytes, f"{orig.address:#x}: copy differs from the original")
    return 1


def verify_gateway(site: npl.Site, window_orig: bytes, patch: bytes, tramp: int,
                   stub_bytes: bytes, entry: int):
    ws, we = site.win_start, site.win_start + site.win_len
    w = disasm(patch, ws)
    _expect(w[0], "c.addi", "sp, -0x10")
    _expect(w[1], "c.sdsp", "ra, 0(sp)")
    _need(_far(w[2], w[3], "ra") == tramp, "window does not reach its stub")
    _expect(w[-2], "c.ldsp", "ra, 0(sp)")
    _expect(w[-1], "c.addi", "sp, 0x10")
    _need(w[-2].address == we - 4, "tail is not at the window's end")
    gadgets, k = {}, 4
    while w[k].mnemonic == "c.ldsp" and k < len(w) - 2:
        _expect(w[k + 1], "c.addi", "sp, 0x10")
        _expect(w[k + 2], "j")
        gadgets[w[k].address] = _jump_target(w[k + 2])
        k += 3
    _need(all(i.mnemonic == "c.nop" for i in w[k:-2]), "filler is not c.nop")

    orig = [i for i in disasm(window_orig, ws)]
    pre = [i for i in orig if i.address < site.ecall]
    post = [i for i in orig if i.address > site.ecall]
    _need(any(i.address == site.ecall and i.mnemonic == "ecall" for i in orig),
          "window does not hold the ecall")
    s = disasm(stub_bytes, tramp)
    _expect(s[0], "ld", "ra, 0(sp)")
    _expect(s[1], "addi", "sp, sp, 0x10")
    # Labels: exit and far exits are found from the end of the stub.
    nfar = len(gadgets)
    tail = s[len(s) - 4 * (nfar + 1):]
    exits = [tail[4 * j:4 * j + 4] for j in range(nfar + 1)]
    for j, (a, b, c, d) in enumerate(exits):
        _expect(a, "addi", "sp, sp, -0x10")
        _expect(b, "sd", "ra, 0(sp)")
        dest = _far(c, d, "zero")
        _need(dest == (we - 4 if j == 0 else list(gadgets)[j - 1]),
              "return does not reach the window tail / gadget")
    labels = {ws: s[2].address, we: exits[0][0].address}
    for j, g in enumerate(gadgets.values()):
        labels[g] = exits[j + 1][0].address
    k = 2
    for o in pre:
        k += _same_effect(o, s[k:], labels)
    check_call_block(s[k:k + 11], entry, s[k + 11].address if k + 11 < len(s) else 0)
    k += 11
    for o in post:
        k += _same_effect(o, s[k:], labels)
    _need(s[k].address == exits[0][0].address, "stub has unexpected instructions")


def verify_site(text: npl.Text, site: npl.Site, tramp: int, entry: int) -> None:
    """Emit one assigned site and check it with capstone (raises Mismatch)."""
    patch, tr = npl.emit(text, site, tramp, entry)
    _need(len(patch) == site.win_len and len(tr) == site.tramp_len, "emitted sizes")
    if site.kind == npl.GK_PATCH_JAL:
        verify_jal(site, patch, tramp, tr, entry)
    elif site.kind == npl.GK_PATCH_GATEWAY:
        off = site.win_start - text.vaddr
        verify_gateway(site, text.data[off:off + site.win_len], patch, tramp, tr, entry)
    else:
        raise Mismatch(f"site {site.ecall:#x} is not patched")
