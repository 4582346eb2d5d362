"""gkfs-ctl lib-path: where the built interception library is.

    gkfs-ctl lib-path --arch riscv64          .../build/riscv64/libgkfs_intercept.so
    gkfs-ctl lib-path --arch riscv64 --core   .../build/riscv64/libsyscall_intercept.so
    gkfs-ctl lib-path                         the host's, if it has a port

Meant for LD_PRELOAD="$(gkfs-ctl lib-path --arch riscv64)". Exit status 1
with a message on stderr when the library is not built (or the architecture
has no port).
"""
from __future__ import annotations

import argparse
import sys

from gkfs_client import native_paths


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "lib-path",
        help="print the path of the built interception library",
        description="Print the absolute path of the built libgkfs_intercept.so "
        "(or, with --core, libsyscall_intercept.so) for an architecture. "
        "Build directory: $GKFS_BUILD_DIR, else build/ in the source tree.",
    )
    p.add_argument(
        "--arch",
        help="riscv64, or host (the default: this machine's architecture, %s)"
        % native_paths.host_arch(),
    )
    p.add_argument(
        "--core",
        action="store_true",
        help="the core alone (libsyscall_intercept.so, for syscall_intercept-style hook libraries)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        path = native_paths.intercept_library(args.arch, core=args.core)
    except native_paths.NativeNotBuilt as exc:
        print(f"gkfs-ctl lib-path: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0
