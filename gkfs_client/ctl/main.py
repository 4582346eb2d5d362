"""gkfs-ctl: one entry point; each subcommand lives in its own module.

A subcommand module exposes ``register(subparsers)``, which adds its parser
and sets ``func`` (called with the parsed args, returns the exit status).
"""
from __future__ import annotations

import argparse
import importlib
import sys

# Order here is the order in --help.
SUBCOMMAND_MODULES = [
    "status",
    "ls",
    "stat",
    "cp",
    "fsck",
    "cluster",
    "key",
    "lib_path",
    "patch_report",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gkfs-ctl",
        description="Inspect and drive a gkfs cluster; inspect the interception core.",
    )
    parser.add_argument(
        "--hosts-file",
        help="cluster hosts file (default: $LIBGKFS_HOSTS_FILE, else the file a bare gkfs-daemon "
        "and 'cluster start' use: $XDG_RUNTIME_DIR/gkfs/hosts, or /tmp/gkfs-<uid>/hosts "
        "without XDG_RUNTIME_DIR)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        try:
            mod = importlib.import_module(f"gkfs_client.ctl.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"gkfs_client.ctl.{name}":
                raise
            continue  # subcommand not built yet
        mod.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
