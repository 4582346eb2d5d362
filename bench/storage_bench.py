#!/usr/bin/env python3
"""Storage benchmark: gkfs through the Python client vs. its baselines.

One run measures, on the same machine and in the same minute:
  * the local file system (os.open/os.write/os.stat/os.unlink in a temp dir),
  * a bare pyzmq REQ/REP echo over loopback (the floor for any one RPC; for
    MiB/s the payload is echoed back, so it is a floor for a write + a read),
  * gkfs with 1, 2 and 4 daemons (started here with `gkfs-ctl cluster start`
    machinery, each its own root dir under a temp dir), with its default
    security (CURVE, key admission, permission checks, data capabilities) and,
    for the cost of security, the same again with LIBGKFS_SECURITY=off
    (skip with --no-security-compare).
Workloads: create / stat / remove ops/s on many empty files in one directory,
sequential write then read MiB/s of one file in fixed-size blocks.
The machine is a noisy 2-core VM, so quote the ratios, not the absolute numbers.

    python3 bench/storage_bench.py                 # well under 2-3 minutes
    python3 bench/storage_bench.py --files 200 --mib 16 --daemons 1,2
    python3 bench/storage_bench.py --json out.json
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import zmq
from rich.console import Console
from rich.table import Table

MiB = 1 << 20


@dataclass
class Result:
    """ops/s for metadata workloads, MiB/s for data workloads."""
    values: dict[str, float] = field(default_factory=dict)


WORKLOADS = [("create", "ops/s"), ("stat", "ops/s"), ("remove", "ops/s"),
             ("write", "MiB/s"), ("read", "MiB/s")]


def _rate(n: float, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


# ---------------------------------------------------------------- local fs

def bench_local(files: int, mib: int, block: int, workdir: Path) -> Result:
    d = workdir / "local"
    d.mkdir()
    names = [str(d / f"f{i}") for i in range(files)]
    r = Result()
    t = time.perf_counter()
    for n in names:
        os.close(os.open(n, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    r.values["create"] = _rate(files, time.perf_counter() - t)
    t = time.perf_counter()
    for n in names:
        os.stat(n)
    r.values["stat"] = _rate(files, time.perf_counter() - t)
    t = time.perf_counter()
    for n in names:
        os.unlink(n)
    r.values["remove"] = _rate(files, time.perf_counter() - t)
    buf = os.urandom(block)
    blocks = mib * MiB // block
    path = str(d / "big")
    t = time.perf_counter()
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
    for _ in range(blocks):
        os.write(fd, buf)
    os.close(fd)
    r.values["write"] = _rate(mib, time.perf_counter() - t)
    t = time.perf_counter()
    fd = os.open(path, os.O_RDONLY)
    while os.read(fd, block):
        pass
    os.close(fd)
    r.values["read"] = _rate(mib, time.perf_counter() - t)
    os.unlink(path)
    return r


# ---------------------------------------------------------------- zmq echo

def bench_zmq_echo(files: int, mib: int, block: int) -> Result:
    """REQ/REP echo: small messages for ops/s, block-sized ones for MiB/s."""
    ctx = zmq.Context()
    rep = ctx.socket(zmq.REP)
    port = rep.bind_to_random_port("tcp://127.0.0.1")
    stop = threading.Event()

    def serve() -> None:
        poller = zmq.Poller()
        poller.register(rep, zmq.POLLIN)
        while not stop.is_set():
            if poller.poll(100):
                rep.send(rep.recv(copy=False), copy=False)

    # A thread, not a process: in-process the GIL is shared, which makes the
    # echo slower, never faster, so it stays a conservative floor.
    th = threading.Thread(target=serve, daemon=True)
    th.start()
    req = ctx.socket(zmq.REQ)
    req.connect(f"tcp://127.0.0.1:{port}")
    small = b"x" * 64
    r = Result()
    for name in ("create", "stat", "remove"):
        t = time.perf_counter()
        for _ in range(files):
            req.send(small)
            req.recv()
        r.values[name] = _rate(files, time.perf_counter() - t)
    buf = os.urandom(block)
    blocks = mib * MiB // block
    t = time.perf_counter()
    for _ in range(blocks):
        req.send(buf, copy=False)
        req.recv(copy=False)
    # Each block crossed loopback twice; report it like one write (or read).
    mibs = _rate(mib, time.perf_counter() - t)
    r.values["write"] = r.values["read"] = mibs
    stop.set()
    th.join()
    req.close(0)
    rep.close(0)
    ctx.term()
    return r


# ---------------------------------------------------------------- gkfs

def bench_gkfs(n_daemons: int, files: int, mib: int, block: int, workdir: Path,
               chunk_size: int | None, security: str = "curve", as_user: str | None = None) -> Result:
    old = os.environ.get("LIBGKFS_SECURITY")
    os.environ["LIBGKFS_SECURITY"] = security  # daemons and client alike
    try:
        return _bench_gkfs(n_daemons, files, mib, block, workdir / security, chunk_size,
                           as_user if security != "off" else None)
    finally:
        if old is None:
            os.environ.pop("LIBGKFS_SECURITY", None)
        else:
            os.environ["LIBGKFS_SECURITY"] = old


def _bench_gkfs(n_daemons: int, files: int, mib: int, block: int, workdir: Path,
                chunk_size: int | None, as_user: str | None = None) -> Result:
    from gkfs_client import security
    from gkfs_client.client import Client
    from gkfs_client.ctl import cluster

    workdir.mkdir(parents=True, exist_ok=True)
    hosts = workdir / f"hosts-{n_daemons}"
    base = workdir / f"cluster-{n_daemons}"
    args = argparse.Namespace(chunk_size=str(chunk_size) if chunk_size else None, mount=None,
                              config=None, log_level="warning", timeout=60.0)
    cluster.start_cluster(n_daemons, hosts, base, args)
    r = Result()
    old_key = os.environ.get(security.ENV_KEY_FILE)
    try:
        if as_user:
            # The cluster owner makes /bench for that user and issues it a
            # key; the workload then runs as that user (what the daemons'
            # permission checks see), not as the owner.
            with Client(hosts_file=hosts) as owner:
                owner.mkdir("/bench", 0o755)
                ident, _name = security.identity_of_user(as_user)
                owner.chown("/bench", ident.uid, ident.gid)
            keyfile = workdir / f"key-{n_daemons}"
            security.issue_key(hosts, as_user, keyfile, name=f"bench-{os.getpid()}-{n_daemons}")
            os.chown(keyfile, os.geteuid(), os.getegid())  # this process holds it (as root could anyway)
            os.environ[security.ENV_KEY_FILE] = str(keyfile)
        c = Client(hosts_file=hosts)
        try:
            if not as_user:
                c.mkdir("/bench", 0o755)
            names = [f"/bench/f{i}" for i in range(files)]
            t = time.perf_counter()
            for n in names:
                c.close(c.open(n, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
            r.values["create"] = _rate(files, time.perf_counter() - t)
            t = time.perf_counter()
            for n in names:
                c.stat(n)
            r.values["stat"] = _rate(files, time.perf_counter() - t)
            t = time.perf_counter()
            for n in names:
                c.unlink(n)
            r.values["remove"] = _rate(files, time.perf_counter() - t)
            buf = os.urandom(block)
            blocks = mib * MiB // block
            t = time.perf_counter()
            fd = c.open("/bench/big", os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
            for _ in range(blocks):
                c.write(fd, buf)
            c.close(fd)
            r.values["write"] = _rate(mib, time.perf_counter() - t)
            t = time.perf_counter()
            fd = c.open("/bench/big", os.O_RDONLY)
            got = 0
            while True:
                data = c.read(fd, block)
                if not data:
                    break
                got += len(data)
            c.close(fd)
            r.values["read"] = _rate(mib, time.perf_counter() - t)
            if got != mib * MiB:
                raise RuntimeError(f"read back {got} bytes, wrote {mib * MiB}")
        finally:
            c.disconnect()
    finally:
        if old_key is None:
            os.environ.pop(security.ENV_KEY_FILE, None)
        else:
            os.environ[security.ENV_KEY_FILE] = old_key
        cluster.stop_cluster(hosts, 30.0)
    return r


# ---------------------------------------------------------------- report

def _fmt(v: float) -> str:
    return f"{v:,.0f}" if v >= 100 else f"{v:,.1f}"


def report(results: dict[str, Result], daemons: list[int], console: Console) -> None:
    table = Table(title="gkfs storage benchmark (same run; quote the ratios)")
    table.add_column("workload")
    table.add_column("unit")
    table.add_column("local fs", justify="right")
    table.add_column("zmq echo", justify="right")
    for n in daemons:
        table.add_column(f"gkfs {n}d", justify="right")
    for n in daemons:
        table.add_column(f"{n}d/local", justify="right")
    for n in daemons:
        table.add_column(f"{n}d/echo", justify="right")
    for name, unit in WORKLOADS:
        local = results["local"].values[name]
        echo = results["zmq"].values[name]
        g = [results[f"gkfs{n}"].values[name] for n in daemons]
        table.add_row(name, unit, _fmt(local), _fmt(echo), *(_fmt(v) for v in g),
                      *(f"{v / local:.3f}" for v in g), *(f"{v / echo:.3f}" for v in g))
    console.print(table)


def report_security(results: dict[str, Result], daemons: list[int], console: Console) -> None:
    table = Table(title="cost of security: default (CURVE + permission checks) / LIBGKFS_SECURITY=off, same run")
    table.add_column("workload")
    table.add_column("unit")
    for n in daemons:
        table.add_column(f"{n}d secure", justify="right")
        table.add_column(f"{n}d off", justify="right")
    for n in daemons:
        table.add_column(f"{n}d ratio", justify="right")
    for name, unit in WORKLOADS:
        on = [results[f"gkfs{n}"].values[name] for n in daemons]
        off = [results[f"gkfs{n}-off"].values[name] for n in daemons]
        cells = [c for pair in zip(on, off) for c in (_fmt(pair[0]), _fmt(pair[1]))]
        table.add_row(name, unit, *cells, *(f"{a / b:.3f}" for a, b in zip(on, off)))
    console.print(table)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--files", type=int, default=1000, help="files for create/stat/remove (default 1000)")
    p.add_argument("--mib", type=int, default=64, help="MiB written then read sequentially (default 64)")
    p.add_argument("--block", type=int, default=1024, help="block size in KiB per write/read (default 1024)")
    p.add_argument("--daemons", default="1,2,4", help="daemon counts to run (default 1,2,4)")
    p.add_argument("--chunk-size", type=int, help="cluster chunk size in bytes (default: the daemon's)")
    p.add_argument("--repeat", type=int, default=3, help="rounds; each figure is the median (default 3)")
    p.add_argument("--json", help="also write the figures to this JSON file")
    p.add_argument("--as-user", metavar="USER",
                   help="run the gkfs workloads as this local user, with a key the cluster owner issues it "
                        "(what an ordinary user pays for the daemons' permission checks; the owner root "
                        "skips the search checks)")
    p.add_argument("--no-security-compare", action="store_true",
                   help="skip the second gkfs run with LIBGKFS_SECURITY=off (the cost-of-security table)")
    args = p.parse_args(argv)
    daemons = [int(x) for x in args.daemons.split(",") if x]
    block = args.block * 1024
    console = Console()
    if not console.is_terminal:  # piped into a log: keep the table readable
        console = Console(width=200)
    with tempfile.TemporaryDirectory(prefix="gkfs-bench-") as tmp:
        work = Path(tmp)
        # Rounds interleave all configurations, so a burst of noise on the
        # VM hits every column alike; each figure is the median of its rounds.
        rounds: dict[str, list[Result]] = {}
        for rnd in range(args.repeat):
            console.print(f"[bold]round {rnd + 1}/{args.repeat}[/]: local fs, zmq echo, "
                          + ", ".join(f"gkfs {n}d" for n in daemons))
            d = work / f"round{rnd}"
            d.mkdir()
            rounds.setdefault("local", []).append(bench_local(args.files, args.mib, block, d))
            rounds.setdefault("zmq", []).append(bench_zmq_echo(args.files, args.mib, block))
            for n in daemons:
                rounds.setdefault(f"gkfs{n}", []).append(
                    bench_gkfs(n, args.files, args.mib, block, d, args.chunk_size, as_user=args.as_user))
                if not args.no_security_compare:
                    rounds.setdefault(f"gkfs{n}-off", []).append(
                        bench_gkfs(n, args.files, args.mib, block, d, args.chunk_size, "off"))
            shutil.rmtree(d, ignore_errors=True)
        results = {k: Result({w: statistics.median(r.values[w] for r in rs) for w, _ in WORKLOADS})
                   for k, rs in rounds.items()}
    report(results, daemons, console)
    if not args.no_security_compare:
        report_security(results, daemons, console)
    if args.json:
        Path(args.json).write_text(json.dumps({k: v.values for k, v in results.items()}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
