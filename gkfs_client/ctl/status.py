"""`gkfs-ctl status`: one line per member of the cluster, grouped by node.

Every member slot of the cluster record is listed, registered or not,
grouped by the node (host name) it runs on (a node's daemon runs one member
process per core), with a line per node and the node total in the title:
address, up/down/missing, ping round trip, uptime, files, bytes stored,
free space and op counters, as a rich table or (--json) as a list of
objects. Exits 1 when any member is down or missing, so scripts can use it
as a health check (a missing member makes the files it holds fail with EIO).
"""
from __future__ import annotations

import json
import sys

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from gkfs_client.ctl._common import EXIT_FAIL, EXIT_OK, cluster_command, error

DEFAULT_TIMEOUT_S = 3.0


def register(subparsers) -> None:
    p = subparsers.add_parser("status", help="health and counters of every daemon")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S,
                   help=f"seconds before a silent daemon counts as down (default {DEFAULT_TIMEOUT_S:g})")
    p.set_defaults(func=run)


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def human_duration(s: float) -> str:
    s = int(s)
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return (f"{d}d " if d else "") + f"{h:02d}:{m:02d}:{s:02d}"


def collect(args) -> list[dict]:
    from gkfs_client.client import Client

    client = Client(hosts_file=args.hosts_file, timeout=args.timeout, handshake=False)
    try:
        results = client.status(timeout=args.timeout)
    finally:
        client.disconnect()
    rows = []
    for i, (host, res) in enumerate(zip(client.hosts, results)):
        if host is None:
            row = {"id": i, "address": "", "pid": 0, "hostname": "", "up": False, "registered": False,
                   "error": f"member {i} has no entry in {client.hosts_path} (not running)"}
            rows.append(row)
            continue
        row = {"id": host.id, "address": host.address, "pid": host.pid, "hostname": host.hostname,
               "registered": True}
        if isinstance(res, OSError):
            row.update(up=False, error=res.strerror or str(res))
        else:
            row.update(up=True, rtt_ms=round(res["rtt_s"] * 1000, 3), uptime_s=res.get("uptime_s"),
                       files=res.get("files"), bytes_stored=res.get("bytes_stored"),
                       free_bytes=res.get("free_bytes"), total_bytes=res.get("total_bytes"),
                       chunk_size=res.get("chunk_size"), inflight=res.get("inflight"),
                       errors=res.get("errors"), ops=res.get("ops", {}), rootdir=res.get("rootdir"),
                       local_stream=res.get("local_stream"), local_connections=res.get("local_connections"))
        rows.append(row)
    return rows


def by_node(rows: list[dict]) -> list[tuple[str, list[dict]]]:
    """Rows grouped by host name, nodes in the order of their first member id;
    members with no entry (no host known) last."""
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(r["hostname"] or "", []).append(r)
    named = [(h, g) for h, g in groups.items() if h]
    return named + ([("", groups[""])] if "" in groups else [])


def render(rows: list[dict], console: Console) -> None:
    groups = by_node(rows)
    nodes = sum(1 for h, _ in groups if h)
    table = Table(title=f"gkfs cluster: {sum(r['up'] for r in rows)}/{len(rows)} members up on {nodes} node(s)")
    for col, just in [("id", "right"), ("host", "left"), ("address", "left"), ("state", "left"), ("rtt", "right"),
                      ("local", "right"), ("uptime", "right"), ("files", "right"), ("stored", "right"), ("free", "right"),
                      ("ops", "left")]:
        table.add_column(col, justify=just, no_wrap=col != "ops")
    for n, (hostname, group) in enumerate(groups):
        if n:
            table.add_section()
        if len(groups) > 1 or len(group) > 1:
            up = sum(r["up"] for r in group)
            label = f"node {escape(hostname)}" if hostname else "not registered"
            table.add_row("", f"[bold]{label}[/]", f"{up}/{len(group)} members up", "", "", "", "", "", "", "", "")
        _member_rows(table, group)
    console.print(table)


def _member_rows(table: Table, rows: list[dict]) -> None:
    for r in rows:
        if not r["up"]:
            state = "[red]down[/]" if r.get("registered", True) else "[red]missing[/]"
            table.add_row(str(r["id"]), r["hostname"] or "-", r["address"] or "-", state, "-", "-", "-", "-", "-",
                          "-", r.get("error", ""))
            continue
        ops = ", ".join(f"{k} {v}" for k, v in sorted(r["ops"].items()) if v)
        # the local stream (docs/protocol.md 1.1): served, and by how many connections
        local = "no" if not r.get("local_stream") else f"{r.get('local_connections') or 0} conn"
        table.add_row(str(r["id"]), r["hostname"], r["address"], "[green]up[/]", f"{r['rtt_ms']:.2f} ms", local,
                      human_duration(r["uptime_s"] or 0), str(r["files"]), human_bytes(r["bytes_stored"] or 0),
                      human_bytes(r["free_bytes"] or 0), ops or "-")


@cluster_command
def run(args) -> int:
    rows = collect(args)
    if args.json:
        json.dump(rows, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        # Piped output (logs, CI) gets a wide table rather than rich's 80 columns.
        console = Console()
        if not console.is_terminal:
            console = Console(width=160)
        render(rows, console)
    bad = [r for r in rows if not r["up"]]
    for r in bad:
        error("status", f"member {r['id']} {'down' if r.get('registered', True) else 'missing'}: "
                        f"{r.get('error', '')}")
    return EXIT_OK if not bad else EXIT_FAIL
