"""cffi (ABI mode) bindings for the native planner, libgkfs_plan.so.

The library is built by ``cmake -S intercept -B build/host && cmake --build
build/host``; it is looked up in $GKFS_PLAN_LIB, else <repo>/build/host/.
The declarations mirror intercept/include/gkfs_intercept/plan.h.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cffi

CDEF = """
struct gk_text { const uint8_t *bytes; uint64_t vaddr; size_t len; };
struct gk_site {
    uint64_t ecall; uint64_t win_start; uint32_t win_len; int32_t sysno;
    uint8_t kind; uint8_t reason; uint16_t tramp_len;
    uint8_t gw_back; uint8_t gw_len; uint8_t gw_tramp_len; uint8_t gw_reason;
};
struct gk_scan_stats { uint64_t insns; uint64_t ecalls; uint64_t undecodable; uint64_t targets; };
long gk_plan_scan(const struct gk_text *text, const uint64_t *extra_targets, size_t n_extra,
                  struct gk_site *sites, size_t max_sites, struct gk_scan_stats *stats);
void gk_plan_assign(struct gk_site *site, uint64_t tramp);
int gk_plan_emit(const struct gk_text *text, const struct gk_site *site, uint64_t tramp,
                 uint64_t entry, uint8_t *patch, uint8_t *tramp_out);
const char *gk_patch_kind_name(int kind);
const char *gk_reason_name(int reason);
size_t gk_rv_lengths(const uint8_t *p, size_t len, uint8_t *out, size_t max);
void gk_rv_decode_one(const uint8_t *p, size_t avail, uint8_t fields[7], int64_t *imm);
"""

GK_PATCH_NONE, GK_PATCH_JAL, GK_PATCH_GATEWAY, GK_PATCH_GPOLINE = 0, 1, 2, 3
GK_TRAMP_MAX = 128
GK_TRAMP_RAW_OFFSET = 12
REASONS = {
    0: "ok",
    1: "no_trampoline_in_range",
    2: "window_has_target",
    3: "window_unrelocatable",
    4: "window_too_small",
    5: "filtered",
}

ffi = cffi.FFI()
ffi.cdef(CDEF)

class PlannerLibraryMissing(RuntimeError):
    """libgkfs_plan.so was not found: the host build has not been run."""


def library_path() -> Path:
    """$GKFS_PLAN_LIB, else where native_paths finds the host build's library."""
    env = os.environ.get("GKFS_PLAN_LIB")
    if env:
        return Path(env)
    from . import native_paths
    try:
        return native_paths.planner_library()
    except native_paths.NativeNotBuilt as exc:
        raise PlannerLibraryMissing(
            f"{exc} (or: cmake -S intercept -B build/host && cmake --build build/host; "
            "or set GKFS_PLAN_LIB)") from exc


_lib = None


def lib():
    """The loaded library (loaded once)."""
    global _lib
    if _lib is None:
        path = library_path()
        if not path.exists():
            raise PlannerLibraryMissing(f"native planner not found at {path} ($GKFS_PLAN_LIB)")
        _lib = ffi.dlopen(str(path))
    return _lib


@dataclass
class Site:
    ecall: int
    win_start: int
    win_len: int
    sysno: int
    kind: int
    reason: int
    tramp_len: int
    gw_start: int
    gw_len: int
    gw_tramp_len: int
    gw_reason: int

    @property
    def kind_name(self) -> str:
        return ffi.string(lib().gk_patch_kind_name(self.kind)).decode()

    @property
    def reason_name(self) -> str:
        return REASONS.get(self.reason, "?")


def _site_from_c(c) -> Site:
    return Site(int(c.ecall), int(c.win_start), int(c.win_len), int(c.sysno), int(c.kind),
                int(c.reason), int(c.tramp_len), int(c.ecall) - int(c.gw_back), int(c.gw_len),
                int(c.gw_tramp_len), int(c.gw_reason))


def _site_to_c(s: Site):
    c = ffi.new("struct gk_site *")
    c.ecall, c.win_start, c.win_len, c.sysno = s.ecall, s.win_start, s.win_len, s.sysno
    c.kind, c.reason, c.tramp_len = s.kind, s.reason, s.tramp_len
    c.gw_back, c.gw_len = s.ecall - s.gw_start, s.gw_len
    c.gw_tramp_len, c.gw_reason = s.gw_tramp_len, s.gw_reason
    return c


class Text:
    """One executable range kept alive for scan and emit (same bytes)."""

    def __init__(self, data: bytes, vaddr: int):
        self.data = bytes(data)
        self.vaddr = vaddr
        self._buf = ffi.from_buffer("uint8_t[]", self.data)
        self.c = ffi.new("struct gk_text *", {"bytes": self._buf, "vaddr": vaddr,
                                              "len": len(self.data)})

    @property
    def end(self) -> int:
        return self.vaddr + len(self.data)


@dataclass
class ScanResult:
    sites: list[Site]
    insns: int
    ecalls: int
    undecodable: int
    targets: int


def scan(text: Text, extra_targets=(), max_sites: int | None = None) -> ScanResult:
    L = lib()
    extra = sorted(set(int(t) for t in extra_targets))
    cextra = ffi.new("uint64_t[]", extra) if extra else ffi.NULL
    if max_sites is None:
        # Every ecall is 4 bytes: this bound can never truncate.
        max_sites = len(text.data) // 4 + 1
    csites = ffi.new("struct gk_site[]", max_sites)
    stats = ffi.new("struct gk_scan_stats *")
    n = L.gk_plan_scan(text.c, cextra, len(extra), csites, max_sites, stats)
    if n < 0:
        raise ValueError("gk_plan_scan rejected its input")
    return ScanResult([_site_from_c(csites[i]) for i in range(n)], int(stats.insns),
                      int(stats.ecalls), int(stats.undecodable), int(stats.targets))


def assign(site: Site, tramp: int) -> Site:
    """A copy of site with the kind chosen for trampoline address tramp."""
    c = _site_to_c(site)
    lib().gk_plan_assign(c, tramp)
    return _site_from_c(c)


def emit(text: Text, site: Site, tramp: int, entry: int) -> tuple[bytes, bytes]:
    """(patch bytes for site.win_start, trampoline bytes for tramp)."""
    c = _site_to_c(site)
    patch = ffi.new("uint8_t[]", max(site.win_len, 1))
    tr = ffi.new("uint8_t[]", GK_TRAMP_MAX)
    if lib().gk_plan_emit(text.c, c, tramp, entry, patch, tr) != 0:
        raise ValueError(f"gk_plan_emit refused the site at {site.ecall:#x}")
    return bytes(ffi.buffer(patch, site.win_len)), bytes(ffi.buffer(tr, site.tramp_len))


RV_KINDS = ["other", "undecodable", "ecall", "auipc", "jal", "jalr", "branch", "c.j",
            "c.beqz", "c.bnez", "c.jr", "li"]


def rv_lengths(data: bytes) -> bytes:
    """Lengths from the native decoder's linear sweep (0 = undecodable parcel)."""
    out = ffi.new("uint8_t[]", len(data) // 2 + 1)
    n = lib().gk_rv_lengths(ffi.from_buffer("uint8_t[]", data), len(data), out, len(data) // 2 + 1)
    return bytes(ffi.buffer(out, n))


@dataclass
class RvInsn:
    length: int
    kind: str
    rd: int
    rs1: int
    rs2: int
    funct3: int
    wr: int
    imm: int


def rv_decode_one(data: bytes) -> RvInsn:
    f = ffi.new("uint8_t[7]")
    imm = ffi.new("int64_t *")
    lib().gk_rv_decode_one(ffi.from_buffer("uint8_t[]", data), len(data), f, imm)
    return RvInsn(f[0], RV_KINDS[f[1]], f[2], f[3], f[4], f[5], f[6], int(imm[0]))
