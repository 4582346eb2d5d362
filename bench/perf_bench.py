#!/usr/bin/env python3
"""One command for gkfs speed (issue 9): every figure as a ratio to a baseline
measured in this same run, with the cluster's default security (CURVE).

  echo floor    a bare pyzmq ROUTER echo in another process, CURVE like the
                daemons: serial round trips/s (small request, small reply),
                1 MiB up + small reply (the floor of a 1 MiB write), small
                request + 1 MiB back (the floor of a 1 MiB read); the same
                over the local stream (docs/protocol.md 1.1: what a client
                on the daemon's host uses), a bare Python echo with the
                gkfs framing
  local fs      the same Python loops on the local file system
  serial        one Python Client on a 1-daemon cluster: stat, create
                (open O_CREAT|O_EXCL + close), remove, 1 MiB write, 1 MiB read;
                again over TCP (LIBGKFS_LOCAL_STREAM=off: a client on
                another node)
  aggregate     4 Client processes on 1, 2 and 4 daemons: stat/s and
                creates/s of all four together (wall clock of the phase), and
                stat/s while all four are running (stonewalled: from the
                last process's start to the first one's end)
  node procs    the same 4 processes on one node's daemon of P member
                processes (gkfs-daemon --processes P, P = 1, 2); the node's
                capacity: stats/s of 1 process keeping 64 stats in flight
                (the daemon, not the client, is the limit); and the
                ceiling: 4 bare echo clients on 1 and on 2 echo processes,
                and on 1 local stream echo
  rpcs          daemon op counters: requests per create / stat / write / read
  preload       bench/e2e_bench.py (riscv64 fsbench under qemu-user through
                libgkfs_intercept.so): mdtest-like create/stat/remove and
                IOR-like write/read against the same binary on the local fs
  interception  bench/intercept_bench.py --summary (riscv64 under qemu-user):
                calls the client never wants (getppid, futex, clock_gettime,
                anonymous mmap) and calls on descriptors that are not gkfs
                (write, read, fstat, lseek, dup+close) against the bare call,
                start-up of /bin/true against the bare start

The machine is a noisy 2-core VM shared with other work: rounds interleave
the set-ups and each figure is the median of its rounds; quote the ratios.

    python3 bench/perf_bench.py                    # ~2-4 minutes
    python3 bench/perf_bench.py --quick            # smaller, no preload or interception runs
    python3 bench/perf_bench.py --json out.json
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import select
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import zmq

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from gkfs_client import local_stream as ls  # noqa: E402

MiB = 1 << 20
SMALL_REQ = b"\x84\xa1v\x01\xa2op\xa4stat\xa2id\x01\xa4args\x81\xa4path\xaa/bench/f00"  # a stat-sized header
SMALL_REP = b"x" * 160  # about a stat reply
ENV_LOCAL_STREAM = "LIBGKFS_LOCAL_STREAM"


# ---------------------------------------------------------------- echo floor

def _echo_server(secret: bytes, public: bytes, port_q) -> None:
    ctx = zmq.Context()
    s = ctx.socket(zmq.ROUTER)
    s.curve_server = True
    s.curve_secretkey = secret
    s.curve_publickey = public
    s.sndhwm = 0
    port_q.put(s.bind_to_random_port("tcp://127.0.0.1"))
    big = b"\0" * MiB
    while True:
        msg = s.recv_multipart(copy=False)
        kind = msg[1].bytes[:1]
        if kind == b"q":
            break
        # "s": small reply, "r": 1 MiB reply (the floor of a read)
        s.send_multipart([msg[0], big if kind == b"r" else SMALL_REP], copy=False)
    s.close(0)
    ctx.term()


def bench_echo(n_small: int, n_big: int) -> dict[str, float]:
    spub, ssec = zmq.curve_keypair()
    q = mp.get_context("spawn").Queue()
    proc = mp.get_context("spawn").Process(target=_echo_server, args=(ssec, spub, q), daemon=True)
    proc.start()
    port = q.get(timeout=30)
    ctx, d = _echo_client(port, spub)
    small = b"s" + SMALL_REQ
    out = {}
    t = time.perf_counter()
    for _ in range(n_small):
        d.send(small)
        d.recv()
    out["rtt"] = n_small / (time.perf_counter() - t)
    payload = os.urandom(MiB)
    t = time.perf_counter()
    for _ in range(n_big):
        d.send_multipart([small, payload], copy=False)
        d.recv()
    out["write"] = n_big / (time.perf_counter() - t)
    rq = b"r" + SMALL_REQ
    t = time.perf_counter()
    for _ in range(n_big):
        d.send(rq)
        d.recv(copy=False)
    out["read"] = n_big / (time.perf_counter() - t)
    d.send(b"q")
    proc.join(10)
    d.close(0)
    ctx.term()
    return out


def _echo_client(port: int, spub: bytes) -> tuple[zmq.Context, zmq.Socket]:
    """A CURVE DEALER of its own context connected to the echo on ``port``,
    warmed up with 50 round trips (the handshake and first buffers out of
    the timed loops)."""
    cpub, csec = zmq.curve_keypair()
    ctx = zmq.Context()
    d = ctx.socket(zmq.DEALER)
    d.curve_serverkey, d.curve_publickey, d.curve_secretkey = spub, cpub, csec
    d.connect(f"tcp://127.0.0.1:{port}")
    for _ in range(50):
        d.send(b"s" + SMALL_REQ)
        d.recv()
    return ctx, d


def _echo_agg_client(port: int, spub: bytes, n: int, barrier, results) -> None:
    ctx, d = _echo_client(port, spub)
    small = b"s" + SMALL_REQ
    barrier.wait()
    cpu0, t = _cpu_ticks(), time.monotonic()
    for _ in range(n):
        d.send(small)
        d.recv()
    results.put((t, time.monotonic(), cpu0, _cpu_ticks()))
    d.close(0)
    ctx.term()


def bench_echo_aggregate(procs: int, servers: int, n: int) -> tuple[float, float]:
    """Round trips/s of `procs` bare echo clients together on `servers` echo
    processes (clients spread over them): the ceiling of the aggregate rows;
    and the cores busy meanwhile."""
    sp = mp.get_context("spawn")
    spub, ssec = zmq.curve_keypair()
    ports, srv = [], []
    for _ in range(servers):
        q = sp.Queue()
        p = sp.Process(target=_echo_server, args=(ssec, spub, q), daemon=True)
        p.start()
        srv.append(p)
        ports.append(q.get(timeout=30))
    barrier, results = sp.Barrier(procs), sp.Queue()
    cs = [sp.Process(target=_echo_agg_client, args=(ports[i % servers], spub, n, barrier, results))
          for i in range(procs)]
    for c in cs:
        c.start()
    got = _gather(cs, results, 300)
    for p in srv:
        p.terminate()
        p.join(10)
    first, last = min(got, key=lambda t: t[0])[2], max(got, key=lambda t: t[1])[3]
    return (procs * n / (max(t[1] for t in got) - min(t[0] for t in got)),
            (last[0] - first[0]) / max(1, last[1] - first[1]) * os.cpu_count())


# ------------------------------------------------- local stream echo floor

def _stream_echo_server(name: bytes, ready) -> None:
    """The local stream's floor: a bare echo on an abstract UNIX stream
    socket with the gkfs framing (gkfs_client.local_stream), one thread and
    epoll, as a daemon's receiving thread reads its local clients."""
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(name)
    srv.listen(64)
    srv.setblocking(False)
    ep = select.epoll()
    ep.register(srv.fileno(), select.EPOLLIN)
    conns: dict[int, tuple[socket.socket, ls.Decoder]] = {}
    small = ls.encode([SMALL_REP])
    big = ls.encode([SMALL_REP, b"\0" * MiB])
    ready.put(True)
    while True:
        for fd, _ev in ep.poll():
            if fd == srv.fileno():
                c, _ = srv.accept()
                c.setblocking(False)
                conns[c.fileno()] = (c, ls.Decoder())
                ep.register(c.fileno(), select.EPOLLIN)
                continue
            c, dec = conns[fd]
            try:
                n = c.recv_into(dec.buffer())
            except BlockingIOError:
                continue
            if not n:
                ep.unregister(fd)
                del conns[fd]
                c.close()
                continue
            for msg in dec.received(n):
                kind = bytes(msg[0][:1])
                if kind == b"q":
                    return
                c.setblocking(True)  # a 1 MiB reply: the floor, not flow control, is measured here
                c.sendmsg(big if kind == b"r" else small)
                c.setblocking(False)


def _stream_echo_client(name: bytes):
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.connect(name)
    dec = ls.Decoder()

    def call(frames) -> list:
        c.sendmsg(ls.encode(frames))
        while True:
            got = dec.received(c.recv_into(dec.buffer()))
            if got:
                return got[0]
    for _ in range(50):
        call([b"s" + SMALL_REQ])
    return c, call


def _start_stream_echo() -> tuple[bytes, mp.Process]:
    name = b"\0gkfs-perf-echo/" + os.urandom(8).hex().encode()
    sp = mp.get_context("spawn")
    q = sp.Queue()
    proc = sp.Process(target=_stream_echo_server, args=(name, q), daemon=True)
    proc.start()
    q.get(timeout=30)
    return name, proc


def bench_stream_echo(n_small: int, n_big: int) -> dict[str, float]:
    """bench_echo's three loops over the local stream."""
    name, proc = _start_stream_echo()
    c, call = _stream_echo_client(name)
    small = [b"s" + SMALL_REQ]
    out = {}
    t = time.perf_counter()
    for _ in range(n_small):
        call(small)
    out["rtt"] = n_small / (time.perf_counter() - t)
    payload = os.urandom(MiB)
    t = time.perf_counter()
    for _ in range(n_big):
        call([b"s" + SMALL_REQ, payload])
    out["write"] = n_big / (time.perf_counter() - t)
    rq = [b"r" + SMALL_REQ]
    t = time.perf_counter()
    for _ in range(n_big):
        call(rq)
    out["read"] = n_big / (time.perf_counter() - t)
    c.sendmsg(ls.encode([b"q"]))
    proc.join(10)
    c.close()
    return out


def _stream_echo_agg_client(name: bytes, n: int, barrier, results) -> None:
    c, call = _stream_echo_client(name)
    small = [b"s" + SMALL_REQ]
    barrier.wait()
    cpu0, t = _cpu_ticks(), time.monotonic()
    for _ in range(n):
        call(small)
    results.put((t, time.monotonic(), cpu0, _cpu_ticks()))
    c.close()


def bench_stream_echo_aggregate(procs: int, n: int) -> tuple[float, float]:
    """bench_echo_aggregate over the local stream, one echo process."""
    sp = mp.get_context("spawn")
    name, srv = _start_stream_echo()
    barrier, results = sp.Barrier(procs), sp.Queue()
    cs = [sp.Process(target=_stream_echo_agg_client, args=(name, n, barrier, results)) for _ in range(procs)]
    for c in cs:
        c.start()
    got = _gather(cs, results, 300)
    srv.terminate()
    srv.join(10)
    first, last = min(got, key=lambda t: t[0])[2], max(got, key=lambda t: t[1])[3]
    return (procs * n / (max(t[1] for t in got) - min(t[0] for t in got)),
            (last[0] - first[0]) / max(1, last[1] - first[1]) * os.cpu_count())


# ---------------------------------------------------------------- local fs

def bench_local(files: int, mib: int, workdir: Path) -> dict[str, float]:
    d = workdir / "local"
    d.mkdir()
    names = [str(d / f"f{i}") for i in range(files)]
    out = {}
    t = time.perf_counter()
    for n in names:
        os.close(os.open(n, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    out["create"] = files / (time.perf_counter() - t)
    t = time.perf_counter()
    for n in names:
        os.stat(n)
    out["stat"] = files / (time.perf_counter() - t)
    t = time.perf_counter()
    for n in names:
        os.unlink(n)
    out["remove"] = files / (time.perf_counter() - t)
    buf = os.urandom(MiB)
    fd = os.open(d / "big", os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
    t = time.perf_counter()
    for _ in range(mib):
        os.write(fd, buf)
    out["write"] = mib / (time.perf_counter() - t)
    os.close(fd)
    fd = os.open(d / "big", os.O_RDONLY)
    t = time.perf_counter()
    while os.read(fd, MiB):
        pass
    out["read"] = mib / (time.perf_counter() - t)
    os.close(fd)
    os.unlink(d / "big")
    return out


# ---------------------------------------------------------------- gkfs

class Cluster:
    """n members on this host; per_node > 1: n/per_node node daemons of
    per_node member processes each (gkfs-daemon --processes)."""

    def __init__(self, base: Path, n: int, per_node: int = 1):
        from gkfs_client.ctl import cluster
        self._cluster = cluster
        self.n = n
        self.per_node = per_node
        tag = f"{n}" if per_node == 1 else f"{n}-p{per_node}"
        self.hosts = base / f"hosts-{tag}"
        self.base = base / f"cluster-{tag}"

    def __enter__(self) -> "Cluster":
        args = argparse.Namespace(chunk_size=None, mount=None, config=None, log_level="warning", timeout=60.0)
        self._cluster.start_cluster(self.n, self.hosts, self.base, args, self.per_node)
        return self

    def __exit__(self, *exc) -> None:
        self._cluster.stop_cluster(self.hosts, 30.0)

    def ops(self) -> dict[str, int]:
        from gkfs_client.client import Client
        with Client(self.hosts) as c:
            return c.op_totals()


def bench_serial(cl: Cluster, files: int, mib: int) -> dict[str, float]:
    from gkfs_client.client import Client
    out = {}
    with Client(cl.hosts) as c:
        work = f"/serial-{time.monotonic_ns()}"
        c.mkdir(work, 0o755)
        names = [f"{work}/f{i}" for i in range(files)]
        t = time.perf_counter()
        for n in names:
            c.close(c.open(n, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        out["create"] = files / (time.perf_counter() - t)
        t = time.perf_counter()
        for n in names:
            c.stat(n)
        out["stat"] = files / (time.perf_counter() - t)
        t = time.perf_counter()
        for n in names:
            c.unlink(n)
        out["remove"] = files / (time.perf_counter() - t)
        buf = os.urandom(MiB)
        fd = c.open(f"{work}/big", os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
        t = time.perf_counter()
        for _ in range(mib):
            c.write(fd, buf)
        out["write"] = mib / (time.perf_counter() - t)
        c.close(fd)
        fd = c.open(f"{work}/big", os.O_RDONLY)
        t = time.perf_counter()
        got = 0
        for _ in range(mib):
            got += len(c.read(fd, MiB))
        out["read"] = mib / (time.perf_counter() - t)
        c.close(fd)
        if got != mib * MiB:
            raise RuntimeError(f"read back {got} bytes of {mib * MiB}")
        c.unlink(f"{work}/big")
        c.rmdir(work)
    return out


def bench_serial_tcp(cl: Cluster, files: int, mib: int) -> dict[str, float]:
    """bench_serial with the local stream off: the path of a client on
    another node (ZeroMQ over TCP, CURVE)."""
    old = os.environ.get(ENV_LOCAL_STREAM)
    os.environ[ENV_LOCAL_STREAM] = "off"
    try:
        return bench_serial(cl, files, mib)
    finally:
        if old is None:
            del os.environ[ENV_LOCAL_STREAM]
        else:
            os.environ[ENV_LOCAL_STREAM] = old


def _cpu_ticks() -> tuple[int, int]:
    """(busy, all) clock ticks of every CPU so far, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v) - v[3] - v[4], sum(v)  # idle and iowait are not busy


def _agg_worker(hosts: str, files: int, rank: int, barrier, results) -> None:
    from gkfs_client.client import Client
    with Client(hosts) as c:
        work = f"/agg-{rank}-{time.monotonic_ns()}"
        c.mkdir(work, 0o755)
        names = [f"{work}/f{i}" for i in range(files)]
        times = {}
        now = time.monotonic
        barrier.wait()
        t, done = now(), []
        for n in names:
            c.close(c.open(n, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
            done.append(now())
        times["create"] = (t, done[-1], done)
        barrier.wait()
        cpu0, t, done = _cpu_ticks(), now(), []
        for n in names:
            c.stat(n)
            done.append(now())
        times["stat"] = (t, done[-1], done)
        times["stat_cpu"] = (cpu0, _cpu_ticks())
        barrier.wait()
        for n in names:
            c.unlink(n)
        c.rmdir(work)
    results.put(times)


def _gather(procs: list, results, timeout: float) -> list:
    """One result from each process; a process that died without sending
    its result (a client error: its traceback is on stderr) fails the
    benchmark at once instead of after the whole timeout."""
    import queue
    got, deadline = [], time.monotonic() + timeout
    while len(got) < len(procs):
        try:
            got.append(results.get(timeout=0.5))
        except queue.Empty:
            dead = [p for p in procs if p.exitcode not in (None, 0)]
            if dead:
                raise RuntimeError(f"benchmark process exited {dead[0].exitcode} without a result") from None
            if time.monotonic() > deadline:
                raise RuntimeError(f"no result from {len(procs) - len(got)} benchmark processes "
                                   f"in {timeout:.0f} s") from None
    for p in procs:
        p.join(60)
        if p.exitcode:
            raise RuntimeError(f"benchmark process exited {p.exitcode}")
    return got


def bench_aggregate(cl: Cluster, procs: int, files: int) -> dict[str, float]:
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(procs)
    results = ctx.Queue()
    ps = [ctx.Process(target=_agg_worker, args=(str(cl.hosts), files, r, barrier, results), daemon=True)
          for r in range(procs)]
    for p in ps:
        p.start()
    got = _gather(ps, results, 600)
    out = {}
    for phase in ("create", "stat"):
        start = min(t[phase][0] for t in got)
        end = max(t[phase][1] for t in got)
        out[phase] = procs * files / (end - start)
        # The rate while all processes are running (IOR's and mdtest's
        # stonewalling): on 2 cores, whichever process the scheduler favoured
        # finishes first and the phase ends with fewer clients than it
        # started with; in a 50-130 ms phase that tail and the staggered
        # wake-up after the barrier move the whole-phase rate by +-20 %.
        lo = max(t[phase][0] for t in got)
        hi = min(t[phase][1] for t in got)
        if hi > lo:
            n = sum(1 for t in got for d in t[phase][2] if lo < d <= hi)
            out[f"{phase}_all"] = n / (hi - lo)
    # How many of the machine's cores were busy (anything, not only gkfs)
    # from the first stat to the last: "grows with daemons until the cores
    # run out" needs to know when they have (/proc/stat counts in 10 ms
    # ticks: a 100 ms phase on 2 cores is good to ~5 %).
    first = min(got, key=lambda t: t["stat"][0])["stat_cpu"][0]
    last = max(got, key=lambda t: t["stat"][1])["stat_cpu"][1]
    if last[1] > first[1]:
        out["stat_cores_busy"] = (last[0] - first[0]) / (last[1] - first[1]) * os.cpu_count()
    return out


def _capacity_worker(hosts: str, paths: list[str], rounds: int, window: int, results) -> None:
    from gkfs_client import distribution, hostsfile, security
    from gkfs_client.rpc import Call, Rpc
    from gkfs_client.transport import ZmqTransport
    m = hostsfile.read_membership(hosts)
    rpc = Rpc(ZmqTransport([h.address for h in m.slots], key=security.client_credentials(Path(hosts))),
              timeout_s=60)
    calls = [Call(distribution.metadata_owner(p, m.members), "stat", {"path": p}) for p in paths]
    batches = [calls[i:i + window] for i in range(0, len(calls), window)]
    rpc.call_many(batches[0])
    cpu0, t = _cpu_ticks(), time.monotonic()
    for _ in range(rounds):
        for b in batches:
            rpc.call_many(b)
    results.put((t, time.monotonic(), rounds * len(calls), cpu0, _cpu_ticks()))
    rpc.close()


def bench_capacity(cl: Cluster, procs: int, files: int, window: int = 64) -> tuple[float, float]:
    """Stats/s the node's daemon serves when it, not the clients, is the limit:
    `procs` processes each keep `window` stat requests in flight (one
    Rpc.call_many per window: cheap for the client), files spread over all
    members. Returns (stats/s, cores busy from the first start to the last
    end: whether the daemon or the machine's cores set the limit)."""
    from gkfs_client.client import Client
    with Client(cl.hosts) as c:
        work = f"/cap-{time.monotonic_ns()}"
        c.mkdir(work, 0o755)
        paths = [f"{work}/f{i}" for i in range(files)]
        for p in paths:
            c.close(c.open(p, os.O_CREAT | os.O_WRONLY, 0o644))
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    rounds = max(3, -(-8000 // files))  # >= 8,000 stats: long enough to mean something on a noisy machine
    ps = [ctx.Process(target=_capacity_worker, args=(str(cl.hosts), paths, rounds, window, results), daemon=True)
          for _ in range(procs)]
    for p in ps:
        p.start()
    got = _gather(ps, results, 600)
    rate = sum(g[2] for g in got) / (max(g[1] for g in got) - min(g[0] for g in got))
    first, last = min(got, key=lambda g: g[0])[3], max(got, key=lambda g: g[1])[4]
    return rate, (last[0] - first[0]) / max(1, last[1] - first[1]) * os.cpu_count()


def count_rpcs(cl: Cluster) -> dict[str, float]:
    """Requests the daemons received per call (op counters, all daemons)."""
    from gkfs_client.client import Client
    n = 50
    out = {}
    with Client(cl.hosts) as c:
        work = f"/rpcs-{time.monotonic_ns()}"
        c.mkdir(work, 0o755)
        buf = b"x" * 4096

        def delta(fn) -> float:
            before = sum(cl.ops().values())
            fn()
            after = sum(cl.ops().values())
            # each cl.ops() itself costs a ping + status per daemon
            return (after - before - 2 * cl.n) / n

        fds = []
        out["open(O_CREAT)"] = delta(lambda: fds.extend(
            c.open(f"{work}/f{i}", os.O_CREAT | os.O_WRONLY, 0o644) for i in range(n)))
        out["write 4 KiB"] = delta(lambda: [c.write(fd, buf) for fd in fds])
        out["stat"] = delta(lambda: [c.stat(f"{work}/f{i}") for i in range(n)])
        for fd in fds:
            c.close(fd)
        fds = [c.open(f"{work}/f{i}", os.O_RDONLY) for i in range(n)]
        out["read 4 KiB"] = delta(lambda: [c.pread(fd, 4096, 0) for fd in fds])
        for fd in fds:
            c.close(fd)
    return out


# ---------------------------------------------------------------- preload

def bench_preload(files: int, mib: int) -> dict:
    cp = subprocess.run([sys.executable, str(REPO / "bench/e2e_bench.py"), "--files", str(files), "--mib", str(mib),
                         "--repeat", "1", "--daemons", "1", "--json"], capture_output=True, text=True, timeout=1800)
    if cp.returncode != 0:
        return {"error": (cp.stderr or cp.stdout).strip().splitlines()[-1:]}
    text = cp.stdout
    return json.loads(text[text.index("\n{") + 1:])["best"]


def bench_intercept() -> dict:
    """The interception rows (bench/intercept_bench.py summary_rows: its own
    bare baselines, interleaved, in this run)."""
    try:
        import intercept_bench
        rows = intercept_bench.summary_rows()
    except SystemExit as exc:   # intercept_bench reports a failed run this way
        return {"error": str(exc)}
    except Exception as exc:    # nothing built, no sysroot: say so, keep the rest
        return {"error": f"{type(exc).__name__}: {exc}"}
    return {"rows": [{"what": w, "ratio_median": m, "ratio_min": n, "bound": b}
                     for w, m, n, b in rows]}


# ---------------------------------------------------------------- report

def med(rounds: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.median(r[k] for r in rounds if k in r)
            for k in {k for r in rounds for k in r}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--files", type=int, default=1000, help="files per serial metadata phase (default 1000)")
    p.add_argument("--agg-files", type=int, default=500, help="files per process in the 4-process runs (500)")
    p.add_argument("--mib", type=int, default=32, help="MiB written and read in 1 MiB calls (default 32)")
    p.add_argument("--procs", type=int, default=4, help="client processes in the aggregate runs (default 4)")
    p.add_argument("--daemons", default="1,2,4", help="daemon counts for the aggregate runs (default 1,2,4)")
    p.add_argument("--node-processes", default="1,2", help="member processes of the one-node daemon in the "
                   "node rows (default 1,2)")
    p.add_argument("--repeat", type=int, default=3, help="rounds, median kept (default 3)")
    p.add_argument("--quick", action="store_true", help="smaller sizes, 2 rounds, no preload runs")
    p.add_argument("--no-preload", action="store_true", help="skip the riscv64 preload runs")
    p.add_argument("--no-intercept", action="store_true",
                   help="skip the interception rows (riscv64 pass-through calls, start-up)")
    p.add_argument("--json", help="also write every figure to this JSON file")
    a = p.parse_args(argv)
    if a.quick:
        a.files, a.agg_files, a.mib, a.repeat, a.no_preload = 300, 200, 16, 2, True
        a.no_intercept = True
    os.environ.setdefault("LIBGKFS_SECURITY", "curve")
    daemons = [int(x) for x in a.daemons.split(",") if x]
    node_procs = [int(x) for x in a.node_processes.split(",") if x]
    t0 = time.monotonic()
    rounds: dict[str, list[dict[str, float]]] = {}
    rpcs: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="gkfs-perf-") as tmp:
        tmp = Path(tmp)
        for rnd in range(a.repeat):
            print(f"round {rnd + 1}/{a.repeat}: echo, local, serial, aggregate {daemons}", flush=True)
            d = tmp / f"r{rnd}"
            d.mkdir()
            rounds.setdefault("echo", []).append(bench_echo(a.files, a.mib))
            rounds.setdefault("stream_echo", []).append(bench_stream_echo(a.files, a.mib))
            rounds.setdefault("local", []).append(bench_local(a.files, a.mib, d))
            for n in daemons:
                with Cluster(d, n) as cl:
                    if n == 1:
                        rounds.setdefault("serial", []).append(bench_serial(cl, a.files, a.mib))
                        rounds.setdefault("serial_tcp", []).append(bench_serial_tcp(cl, a.files, a.mib))
                        if rnd == 0:
                            rpcs = count_rpcs(cl)
                    rounds.setdefault(f"agg{n}", []).append(bench_aggregate(cl, a.procs, a.agg_files))
            for pn in node_procs:  # one node's daemon of pn member processes
                with Cluster(d, pn, per_node=pn) as cl:
                    g = bench_aggregate(cl, a.procs, a.agg_files)
                    g["capacity"], g["capacity_cores_busy"] = bench_capacity(cl, 1, 4 * a.agg_files)
                    rounds.setdefault(f"node{pn}", []).append(g)
            ea = {}
            for k in (1, 2):
                ea[f"servers{k}"], ea[f"servers{k}_busy"] = bench_echo_aggregate(a.procs, k, 4 * a.agg_files)
            ea["stream1"], ea["stream1_busy"] = bench_stream_echo_aggregate(a.procs, 4 * a.agg_files)
            rounds.setdefault("echo_agg", []).append(ea)
            rounds.setdefault("echo", []).append(bench_echo(a.files, a.mib))  # bracket the round
            rounds.setdefault("stream_echo", []).append(bench_stream_echo(a.files, a.mib))
    res = {k: med(v) for k, v in rounds.items()}
    preload = None if a.no_preload else bench_preload(200, 16)
    intercept = None if a.no_intercept else bench_intercept()
    wall = time.monotonic() - t0

    e, loc, s, se, st = res["echo"], res["local"], res["serial"], res["stream_echo"], res["serial_tcp"]
    rows = [
        # The floor: a pyzmq ROUTER echo over TCP with CURVE. A
        # client on the daemon's host goes over the local stream, whose own
        # floor (below) is higher; a client on another node over TCP ("TCP").
        ("serial stat / echo round trip", s["stat"], e["rtt"], ">= 0.7"),
        ("serial create / echo round trip", s["create"], e["rtt"], ">= 0.6"),
        ("serial remove / echo round trip", s["remove"], e["rtt"], ""),
        ("1 MiB write MiB/s / echo 1 MiB up", s["write"], e["write"], ">= 0.8"),
        ("1 MiB read MiB/s / echo 1 MiB down", s["read"], e["read"], ">= 0.8"),
        ("TCP: serial stat / echo round trip", st["stat"], e["rtt"], ">= 0.7"),
        ("TCP: serial create / echo round trip", st["create"], e["rtt"], ">= 0.6"),
        ("TCP: 1 MiB write MiB/s / echo 1 MiB up", st["write"], e["write"], ">= 0.8"),
        ("TCP: 1 MiB read MiB/s / echo 1 MiB down", st["read"], e["read"], ">= 0.8"),
        ("serial stat / local stream echo", s["stat"], se["rtt"], ""),
        ("serial create / local stream echo", s["create"], se["rtt"], ""),
        ("1 MiB write / local stream echo 1 MiB up", s["write"], se["write"], ""),
        ("1 MiB read / local stream echo 1 MiB down", s["read"], se["read"], ""),
        ("serial stat: local stream / TCP", s["stat"], st["stat"], ""),
        ("serial stat / local fs", s["stat"], loc["stat"], ""),
        ("serial create / local fs", s["create"], loc["create"], ""),
        ("1 MiB write / local fs", s["write"], loc["write"], ""),
        ("1 MiB read / local fs", s["read"], loc["read"], ""),
    ]
    for n in daemons:
        g = res[f"agg{n}"]
        rows.append((f"{a.procs} procs, {n} daemon(s): stat/s / serial", g["stat"], s["stat"],
                     ">= 15,000/s" if n == 1 else ""))
        rows.append((f"{a.procs} procs, {n} daemon(s): creates/s / serial", g["create"], s["create"],
                     ">= 8,000/s" if n == 1 else ""))
        if "stat_all" in g:
            rows.append((f"{a.procs} procs, {n} daemon(s): stat/s all running", g["stat_all"], s["stat"],
                         ">= 15,000/s" if n == 1 else ""))
        if "stat_cores_busy" in g:
            rows.append((f"{a.procs} procs, {n} daemon(s): cores busy in stat phase", g["stat_cores_busy"],
                         os.cpu_count(), ""))
    for n in daemons[1:]:
        rows.append((f"{a.procs} procs stat/s: {n} daemons / 1 daemon", res[f"agg{n}"]["stat"],
                     res[f"agg{daemons[0]}"]["stat"], "grows"))
        rows.append((f"{a.procs} procs creates/s: {n} daemons / 1 daemon", res[f"agg{n}"]["create"],
                     res[f"agg{daemons[0]}"]["create"], "grows"))
    ea = res.get("echo_agg", {})
    for pn in node_procs:
        g = res[f"node{pn}"]
        rows.append((f"{a.procs} procs, 1 node, P={pn}: stat/s / serial", g["stat"], s["stat"], ">= 15,000/s"))
        rows.append((f"{a.procs} procs, 1 node, P={pn}: creates/s / serial", g["create"], s["create"],
                     ">= 8,000/s"))
        if "stat_all" in g:
            rows.append((f"{a.procs} procs, 1 node, P={pn}: stat/s all running", g["stat_all"], s["stat"],
                         ">= 15,000/s"))
        rows.append((f"1 proc, 64 in flight, 1 node, P={pn}: stat/s / serial", g["capacity"], s["stat"], ""))
        rows.append((f"1 proc, 64 in flight, 1 node, P={pn}: cores busy", g["capacity_cores_busy"],
                     os.cpu_count(), ""))
    for pn in node_procs[1:]:
        for ph in ("stat", "create", "capacity"):
            rows.append((f"{a.procs if ph != 'capacity' else 1} procs {ph}/s: 1 node P={pn} / P={node_procs[0]}",
                         res[f"node{pn}"][ph], res[f"node{node_procs[0]}"][ph], "grows"))
    if ea:
        rows.append((f"ceiling: {a.procs} echo clients rt/s, 2 echo procs / 1", ea["servers2"], ea["servers1"], ""))
        rows.append((f"ceiling: {a.procs} echo clients, 1 echo proc: cores busy", ea["servers1_busy"],
                     os.cpu_count(), ""))
        for pn in node_procs:
            rows.append((f"{a.procs} procs stat/s, P={pn} / {a.procs}-client echo ({min(pn, 2)} echo)",
                         res[f"node{pn}"]["stat"], ea[f"servers{min(pn, 2)}"], ""))
        rows.append((f"{a.procs} procs stat/s, P=1 / {a.procs}-client local stream echo",
                     res[f"node{node_procs[0]}"]["stat"], ea["stream1"], ""))
        rows.append((f"ceiling: {a.procs} local stream echo clients: cores busy", ea["stream1_busy"],
                     os.cpu_count(), ""))
    if preload and "error" not in preload:
        for ph in ("create", "stat", "remove", "write", "read"):
            rows.append((f"preload riscv64 {ph} / local fs", preload["gkfs"][ph], preload["local"][ph], ""))
    print(f"\ngkfs perf_bench {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, security "
          f"{os.environ['LIBGKFS_SECURITY']}, median of {a.repeat} rounds, {wall:.0f} s")
    print(f"{'measure':48} {'value':>12} {'baseline':>12} {'ratio':>7}  target")
    for name, v, b, target in rows:
        prec = 2 if "cores busy" in name else 1
        print(f"{name:48} {v:12,.{prec}f} {b:12,.{prec}f} {v / b:7.3f}  {target}")
    if preload and "error" in preload:
        print(f"preload runs failed: {preload['error']}")
    if intercept and "error" in intercept:
        print(f"interception runs failed: {intercept['error']}")
    elif intercept:
        print(f"\n{'interception under qemu (ratio to bare, same run)':62} {'median':>7} {'min':>6}  target")
        for r in intercept["rows"]:
            print(f"{r['what']:62} {r['ratio_median']:7.2f} {r['ratio_min']:6.2f}  {r['bound']}")
    print("RPCs per call (daemon op counters, 1 daemon): "
          + ", ".join(f"{k} {v:.2f}" for k, v in rpcs.items()))
    if a.json:
        Path(a.json).write_text(json.dumps({"rounds": rounds, "median": res, "rpcs": rpcs, "preload": preload,
                                            "intercept": intercept}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
