#!/usr/bin/env python3
"""CPU per stat, thread by thread: 4 client processes on one daemon.

On a shared 2-core machine the stat rate of four clients moves with the
neighbours; the CPU each stat costs does much less, and at two full cores
it is what sets the rate (2 cores / CPU per stat). This measures it over
phases of ``--stats`` stats per process (default 2,000; 4 processes), with
the run time of every thread from /proc/<pid>/task/<tid>/schedstat
(nanoseconds, not the 10 ms ticks of utime/stime):

  client     each client process's own Python thread, and its libzmq I/O
             thread(s) (ZMQbg/*), summed over the four processes
  daemon     the daemon's receiving thread (its main thread), its libzmq
             I/O thread(s), and everything else (workers, ZAP)

With --ab-local, each client process sends raw stat requests (no Client:
one request in flight, the reply decoded) and alternates phase by phase
between ZeroMQ over TCP (CURVE, the owner's key, as the Client) and the
local stream (docs/protocol.md 1.1): the daemon's CPU per stat on each
transport, same run, interleaved.

With --echo, the same for the floor: 4 bare pyzmq DEALER clients on one
CURVE ROUTER echo process (bench/perf_bench.py's, a stat-sized request and
reply), per round trip.

    python3 bench/stat_cpu_bench.py                 # 5 phases, medians
    python3 bench/stat_cpu_bench.py --phases 9 --json out.json
    python3 bench/stat_cpu_bench.py --echo
    python3 bench/stat_cpu_bench.py --ab-local --phases 10

Run it from the tree whose code is measured (it imports that tree's
gkfs_client and starts that tree's daemon).
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))


def thread_times(pid: int | str = "self") -> dict[str, int]:
    """name/tid -> run time in ns of every thread of ``pid`` now."""
    out = {}
    base = f"/proc/{pid}/task"
    for tid in os.listdir(base):
        try:
            with open(f"{base}/{tid}/comm") as f:
                name = f.read().strip()
            with open(f"{base}/{tid}/schedstat") as f:
                ns = int(f.read().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            continue
        out[f"{name}/{tid}"] = ns
    return out


def classify(times: dict[str, int], main_tid: int) -> dict[str, int]:
    """Sum thread times into main (the Python thread), io (libzmq) and other."""
    out = {"main": 0, "io": 0, "other": 0}
    for key, ns in times.items():
        name, tid = key.rsplit("/", 1)
        if int(tid) == main_tid:
            out["main"] += ns
        elif name.startswith("ZMQbg/IO"):
            out["io"] += ns
        else:
            out["other"] += ns
    return out


def delta(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    return {k: b[k] - a.get(k, 0) for k in b}


def _make_files(c, rank: int, files: int) -> tuple[str, list[str]]:
    """A directory of this rank's own and ``files`` empty files in it, for the stats."""
    work = f"/cpu-{rank}-{time.monotonic_ns()}"
    c.mkdir(work, 0o755)
    names = [f"{work}/f{i}" for i in range(files)]
    for n in names:
        c.close(c.open(n, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    return work, names


def _client(hosts: str, rank: int, files: int, phases: int, barrier, results) -> None:
    from gkfs_client.client import Client
    with Client(hosts) as c:
        work, names = _make_files(c, rank, files)
        for n in names[:200]:  # warm: first buffers, caches, the handshake's aftermath
            c.stat(n)
        me = os.getpid()
        for _ in range(phases):
            barrier.wait()
            a = classify(thread_times(), me)
            for n in names:
                c.stat(n)
            b = classify(thread_times(), me)
            barrier.wait()
            results.put((rank, delta(a, b)))
        barrier.wait()
        for n in names:
            c.unlink(n)
        c.rmdir(work)


class _RawTcp:
    """One DEALER to the daemon with the owner's key (what the Client uses)."""

    def __init__(self, hosts: str):
        import zmq
        from gkfs_client import hostsfile, security
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.linger = 0
        security.apply_client(self.sock, security.load_client_key(security.keys_dir(Path(hosts)) /
                                                                   security.CLIENT_KEY))
        self.sock.connect(hostsfile.read_hosts(hosts)[0].address)

    def call(self, frames: list) -> list:
        self.sock.send_multipart(frames, copy=False)
        return self.sock.recv_multipart()

    def close(self) -> None:
        self.sock.close(0)
        self.ctx.term()


class _RawLocal:
    """One local stream connection to the daemon (docs/protocol.md 1.1)."""

    def __init__(self, hosts: str):
        import socket
        from gkfs_client import hostsfile, local_stream
        h = hostsfile.read_hosts(hosts)[0]
        self.ls = local_stream
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(local_stream.local_name(hostsfile.read_record(hosts).uuid, h.id, h.address))
        self.dec = local_stream.Decoder()
        self.got: list = []

    def call(self, frames: list) -> list:
        for b in self.ls.encode(frames):
            self.sock.sendall(b)
        while not self.got:
            view = self.dec.buffer()
            n = self.sock.recv_into(view)
            del view
            if not n:
                raise ConnectionError("daemon closed the local stream")
            self.got.extend(self.dec.received(n))
        return self.got.pop(0)

    def close(self) -> None:
        self.sock.close()


def _raw_client(hosts: str, rank: int, files: int, phases: int, barrier, results) -> None:
    """Raw stats, even phases over TCP, odd ones over the local stream."""
    from gkfs_client import protocol
    from gkfs_client.client import Client
    with Client(hosts) as c:
        work, names = _make_files(c, rank, files)
        conns = [_RawTcp(hosts), _RawLocal(hosts)]
        reqs = [protocol.encode_request("stat", {"path": n}, req_id=i + 1) for i, n in enumerate(names)]
        for conn in conns:
            for r in reqs[:200]:
                assert protocol.decode_reply(conn.call(r)).ok
        me = os.getpid()
        for k in range(phases):
            conn = conns[k % 2]
            barrier.wait()
            a = classify(thread_times(), me)
            for r in reqs:
                protocol.decode_reply(conn.call(r))
            b = classify(thread_times(), me)
            barrier.wait()
            results.put((rank, delta(a, b)))
        barrier.wait()
        for conn in conns:
            conn.close()
        for n in names:
            c.unlink(n)
        c.rmdir(work)


def _echo_client(port: int, spub: bytes, n: int, phases: int, barrier, results) -> None:
    from perf_bench import SMALL_REQ, _echo_client as connect
    ctx, d = connect(port, spub)
    small = b"s" + SMALL_REQ
    me = os.getpid()
    for _ in range(phases):
        barrier.wait()
        a = classify(thread_times(), me)
        for _ in range(n):
            d.send(small)
            d.recv()
        b = classify(thread_times(), me)
        barrier.wait()
        results.put((0, delta(a, b)))
    barrier.wait()
    d.close(0)
    ctx.term()


def _rows(procs: int, n: int, phases: int, server_pid: int, barrier, results) -> list[dict[str, float]]:
    """Per phase: the wall-clock rate and each kind of thread's CPU per call."""
    out = []
    for _ in range(phases):
        barrier.wait(timeout=600)
        t0 = time.monotonic()
        d0 = classify(thread_times(server_pid), server_pid)
        barrier.wait(timeout=600)
        t1 = time.monotonic()
        d1 = classify(thread_times(server_pid), server_pid)
        got = [results.get(timeout=60) for _ in range(procs)]
        calls = procs * n
        row = {"stat/s": calls / (t1 - t0)}
        for k, v in delta(d0, d1).items():
            row[f"daemon {k}"] = v / calls / 1000
        for k in ("main", "io", "other"):
            row[f"client {k}"] = sum(g[1][k] for g in got) / calls / 1000
        row["client"] = row["client main"] + row["client io"] + row["client other"]
        row["daemon"] = row["daemon main"] + row["daemon io"] + row["daemon other"]
        row["total"] = row["client"] + row["daemon"]
        out.append(row)
    barrier.wait(timeout=600)
    return out


def run_echo(procs: int, n: int, phases: int) -> list[dict[str, float]]:
    import zmq
    from perf_bench import _echo_server
    spub, ssec = zmq.curve_keypair()
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    server = ctx.Process(target=_echo_server, args=(ssec, spub, q), daemon=True)
    server.start()
    port = q.get(timeout=30)
    barrier = ctx.Barrier(procs + 1)
    results = ctx.Queue()
    ps = [ctx.Process(target=_echo_client, args=(port, spub, n, phases, barrier, results), daemon=True)
          for _ in range(procs)]
    for p in ps:
        p.start()
    out = _rows(procs, n, phases, server.pid, barrier, results)
    for p in ps:
        p.join(120)
    server.kill()
    return out


def run(procs: int, files: int, phases: int, client=None) -> list[dict[str, float]]:
    from perf_bench import Cluster
    from gkfs_client import hostsfile
    with tempfile.TemporaryDirectory(prefix="gkfs-statcpu-") as tmp, Cluster(Path(tmp), 1) as cl:
        daemon = hostsfile.read_hosts(cl.hosts)[0].pid
        ctx = mp.get_context("spawn")
        barrier = ctx.Barrier(procs + 1)
        results = ctx.Queue()
        ps = [ctx.Process(target=client or _client, args=(str(cl.hosts), r, files, phases, barrier, results),
                          daemon=True)
              for r in range(procs)]
        for p in ps:
            p.start()
        out = _rows(procs, files, phases, daemon, barrier, results)
        for p in ps:
            p.join(120)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--procs", type=int, default=4)
    p.add_argument("--stats", type=int, default=2000, help="stats per process and phase")
    p.add_argument("--phases", type=int, default=5)
    p.add_argument("--echo", action="store_true", help="the floor: bare echo clients on one echo process "
                   "(\"daemon\" = the echo process; per round trip)")
    p.add_argument("--json", help="write the rows here")
    p.add_argument("--ab-local", action="store_true", help="raw stats, phases alternating between ZeroMQ "
                   "over TCP and the local stream; medians of each and their ratio")
    a = p.parse_args(argv)
    if a.ab_local:
        rows = run(a.procs, a.stats, a.phases, _raw_client)
        tcp, loc = rows[0::2], rows[1::2]
        print(f"{a.procs} processes x {a.stats} raw stats, {a.phases} phases alternating TCP / local stream; "
              f"CPU in us per stat; median (min-max)")
        print(f"  {'':14s} {'TCP':>22s} {'local':>22s}  local/TCP")
        for k in rows[0]:
            t, l = [r[k] for r in tcp], [r[k] for r in loc]
            mt, ml = statistics.median(t), statistics.median(l)
            print(f"  {k:14s} {mt:9.1f} ({min(t):5.1f}-{max(t):5.1f}) {ml:9.1f} ({min(l):5.1f}-{max(l):5.1f})  "
                  f"{ml / mt if mt else float('nan'):.2f}")
        if a.json:
            Path(a.json).write_text(json.dumps({"tcp": tcp, "local": loc}, indent=1))
        return 0
    rows = (run_echo if a.echo else run)(a.procs, a.stats, a.phases)
    keys = list(rows[0])
    print(f"{a.procs} {'echo clients' if a.echo else 'processes'} x {a.stats} {'round trips' if a.echo else 'stats'}, "
          f"{a.phases} phases; CPU in us per call (all processes' threads of a kind together)")
    for k in keys:
        vals = [r[k] for r in rows]
        print(f"  {k:14s} median {statistics.median(vals):9.1f}   ({min(vals):.1f}-{max(vals):.1f})")
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
