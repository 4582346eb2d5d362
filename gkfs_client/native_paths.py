"""Where the native build products and the riscv64 sysroot are.

One place for every piece of Python that needs a built native library
(gkfs-ctl lib-path, the cffi planner bindings, tests, benchmarks):

- the build directory is ``$GKFS_BUILD_DIR`` if set, else ``build/`` in the
  source tree this package was imported from (an editable install or a
  checkout), as deploy/build-native.sh lays it out:
  ``build/host`` (planner for the host) and ``build/riscv64`` (the core);
- the riscv64 sysroot is ``$GKFS_RISCV64_SYSROOT`` if set, else what
  ``deploy/riscv64-sysroot.sh --print-path`` says.

Nothing here builds anything: a missing product raises
:class:`NativeNotBuilt` with a message that says how to build it.
"""
from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

INTERCEPT_LIB = "libgkfs_intercept.so"    # core + gkfs hook
CORE_LIB = "libsyscall_intercept.so"      # core alone, drop-in for hook libraries
PLAN_LIB = "libgkfs_plan.so"              # pure planner, host build

# Architectures the interception core has a port for (intercept/src/arch/).
INTERCEPT_ARCHES = ("riscv64",)

_MACHINE_ALIASES = {"amd64": "x86_64", "arm64": "aarch64"}


class NativeNotBuilt(FileNotFoundError):
    """A native product (library, sysroot) is missing; the message says why and what to run."""


def source_root() -> Path:
    """The source tree this package lives in (one level above gkfs_client/)."""
    return Path(__file__).resolve().parent.parent


def build_dir() -> Path:
    env = os.environ.get("GKFS_BUILD_DIR")
    return Path(env).resolve() if env else source_root() / "build"


def host_arch() -> str:
    """The machine's architecture as Debian's tools and our build dirs name it."""
    m = platform.machine().lower()
    return _MACHINE_ALIASES.get(m, m)


def normalize_arch(arch: str | None) -> str:
    """None or 'host' -> the host's architecture; aliases folded."""
    if arch is None or arch == "host":
        return host_arch()
    a = arch.lower()
    return _MACHINE_ALIASES.get(a, a)


def arch_build_dirs(arch: str) -> list[Path]:
    """Build directories that may hold products for ``arch``: build/<arch>, and
    build/host when ``arch`` is this machine's (a native build)."""
    root = build_dir()
    dirs = [root / arch]
    if arch == host_arch():
        dirs.append(root / "host")
    return dirs


def _find_in(dirs: list[Path], name: str) -> Path | None:
    # The top of each build dir first (where the CMake project puts its
    # libraries), then anywhere below it except CMake's scratch space.
    for d in dirs:
        p = d / name
        if p.is_file():
            return p
    for d in dirs:
        if d.is_dir():
            for p in sorted(d.rglob(name)):
                if p.is_file() and "CMakeFiles" not in p.parts:
                    return p
    return None


def intercept_library(arch: str | None = None, core: bool = False) -> Path:
    """Absolute path of the built libgkfs_intercept.so (``core=False``) or
    libsyscall_intercept.so (``core=True``) for ``arch`` (None: the host's)."""
    a = normalize_arch(arch)
    name = CORE_LIB if core else INTERCEPT_LIB
    dirs = arch_build_dirs(a)
    found = _find_in(dirs, name)
    if found:
        # the directory absolute, the name kept: libsyscall_intercept.so is
        # a symlink to .so.0.1.0 (SONAME .so.0), and its name is the API
        return found.parent.resolve() / found.name
    looked = ", ".join(str(d) for d in dirs)
    if a not in INTERCEPT_ARCHES:
        raise NativeNotBuilt(
            f"{name} for {a} is not built: the interception core has no {a} port yet "
            f"(supported: {', '.join(INTERCEPT_ARCHES)}; try --arch riscv64). Looked in {looked}."
        )
    raise NativeNotBuilt(
        f"{name} for {a} is not built yet (looked in {looked}): "
        f"run deploy/build-native.sh {a}"
    )


def planner_library() -> Path:
    """Absolute path of the host build of the planner (libgkfs_plan.so)."""
    dirs = [build_dir() / "host"]
    found = _find_in(dirs, PLAN_LIB)
    if found:
        return found.resolve()
    raise NativeNotBuilt(
        f"{PLAN_LIB} is not built yet (looked in {dirs[0]}): run deploy/build-native.sh host"
    )


def riscv64_build_dir() -> Path:
    return build_dir() / "riscv64"


def riscv64_sysroot(must_exist: bool = True) -> Path:
    """The riscv64 Debian sysroot: $GKFS_RISCV64_SYSROOT, else the path
    deploy/riscv64-sysroot.sh reports (its documented default)."""
    env = os.environ.get("GKFS_RISCV64_SYSROOT")
    if env:
        path = Path(env)
    else:
        script = source_root() / "deploy" / "riscv64-sysroot.sh"
        if not script.is_file():
            raise NativeNotBuilt(
                f"no riscv64 sysroot configured: set GKFS_RISCV64_SYSROOT ({script} not found)"
            )
        out = subprocess.run(["bash", str(script), "--print-path"], capture_output=True,
                             text=True, check=True)
        path = Path(out.stdout.strip())
    if must_exist and not (path / "usr" / "lib" / "riscv64-linux-gnu" / "libc.so.6").is_file():
        raise NativeNotBuilt(
            f"riscv64 sysroot missing or incomplete at {path}: run deploy/riscv64-sysroot.sh"
        )
    return path.resolve()
