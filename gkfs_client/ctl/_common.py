"""Shared plumbing for gkfs-ctl subcommands: finding the cluster, errors.

Every subcommand that talks to daemons goes through ``cluster_command`` so
that a missing hosts file gives the same clear message and exit status
everywhere, and an OSError from the client becomes one line, not a traceback.
"""
from __future__ import annotations

import functools
import sys
from typing import Callable

from rich.console import Console

from gkfs_client import hostsfile

# Exit statuses shared by all subcommands.
EXIT_OK = 0
EXIT_FAIL = 1
EXIT_NO_CLUSTER = 2

# soft_wrap: an error message stays one line (greppable), whatever the width.
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def error(command: str, message: str) -> None:
    # markup=False: paths may contain '[' which rich would take as markup.
    err_console.print(f"gkfs-ctl {command}: {message}", markup=False)


def cluster_command(fn: Callable) -> Callable:
    """Wrap a subcommand's run(args): clear messages for the usual failures."""

    @functools.wraps(fn)
    def run(args) -> int:
        try:
            return fn(args)
        except hostsfile.HostsFileError as exc:
            error(args.command, str(exc))
            return EXIT_NO_CLUSTER
        except BrokenPipeError:  # `gkfs-ctl ls | head`: not an error
            sys.stderr.close()
            return EXIT_OK
        except OSError as exc:
            msg = exc.strerror or str(exc)
            if exc.filename:  # local errors name the file separately
                msg = f"{exc.filename}: {msg}"
            error(args.command, msg)
            return EXIT_FAIL

    return run


def open_client(args):
    """A Client for the cluster named by --hosts-file / env / default."""
    from gkfs_client.client import Client  # imported late: `--help` stays fast

    return Client(hosts_file=getattr(args, "hosts_file", None))
