"""ZeroMQ serving: one thread receives every request, a pool of worker threads.

The receiving thread answers metadata requests itself (INLINE_OPS: each is
one short LMDB transaction), with no hand-off to a worker and back. A
request that needs another daemon (a permission check on a parent held
elsewhere, daemon.peer) is handed to a worker instead, before anything was
changed, so the receiving thread never waits on the network and keeps
reading, which also answers the peer lookups other daemons' workers wait
for. Data ops (write_chunks, read_chunks) of up to 1 MiB are answered here
too when no other request waits (Server._data_here: the pwrites or preads
of a 1 MiB request take about as long as the hand-off to a worker and back,
~0.15-0.2 ms); larger ones, those that arrive while others wait, and slow
ops (fsync, status, get_dirents, chunk removal where chunks exist) run in
the workers (pwrite/pread release the GIL). A request goes only to an idle
worker (workers announce themselves), never queued behind a busy one, so
one client's 64 MiB write cannot stall another's stat. Data-heavy ops may
not take the last idle worker when there is more than one, which keeps a
worker free for metadata. Frames are received with copy=False and handed through inproc
untouched, so a write's payload is pwritten from the buffer libzmq received
it into.

Requests already queued are answered in a row (up to DRAIN_MAX) before the
loop looks at anything else: its bookkeeping and a wait once per wake-up,
not once per request.

Hostile peers: the receiving thread reads at most protocol.MAX_FRAMES
frames of a request (the rest is drained and dropped, the request answered
EINVAL) and decodes it with protocol.decode_request (bounded work; a
malformed request is answered at once). Requests waiting for a worker are
bounded in count and bytes; past that the daemon stops reading until the
workers catch up. Replies go out without blocking: at most REPLY_HWM whole
replies wait in libzmq for one client, then up to one max_frame_size of
them in a per-client backlog here; a client that stops reading beyond that
is dropped (its backlog freed, its later requests ignored) and logged. A
client also has at most HEAVY_PER_CLIENT data requests in the workers at a
time, so the memory one client can pin is bounded by a few frames.

The local stream (docs/protocol.md 1.1, daemon.local_listener): the owner's
clients on this host over a UNIX stream socket this thread reads and
writes itself (no libzmq I/O thread), waited on beside the ZeroMQ FDs; its
requests take the same way (_serve_local), its replies the same backlogs.
"""
from __future__ import annotations

import collections
import errno
import logging
import select
import threading
import time
from typing import Any

import zmq

from gkfs_client import protocol, security
from gkfs_client.transport import batch_io_threads

from .auth import PEER_USER_ID, ZapHandler
from .handlers import CALLER, HANDLERS, DaemonState
from .local_listener import LocalListener
from .peer import INLINE, NeedsWorker

log = logging.getLogger("gkfs_daemon.server")

READY = b"\x01"  # worker -> receiving thread: "I am idle" (a 1-frame message)
STOP = b"\x00"  # receiving thread -> worker: "exit"
HEAVY_OPS = frozenset({"write_chunks", "read_chunks"})
INLINE_DATA_SYNC = frozenset({"read_chunks"})
# Ops the receiving thread runs itself: metadata, each one LMDB transaction
# of microseconds that checks everything (peer lookups first) before it
# changes anything, and the removal or truncation of a file's chunks when
# this daemon holds none. With sync = true every commit waits for the disk,
# so then only the ops that commit nothing run here. Everything else goes
# to a worker. (get_dirents is not one: a page may hold 65,536 entries.)
INLINE_NO_COMMIT = frozenset({"ping", "stat", "statfs", "readlink", "remove_chunks", "truncate_chunks"})
INLINE_OPS = INLINE_NO_COMMIT | frozenset({"create", "remove", "update_size", "release", "truncate", "utimens",
                                       "setattr", "symlink", "rename", "insert", "lock", "fence",
                                       "unlock_owner"})
WAITING_MAX = 1024  # requests waiting for a worker (beyond it the daemon stops reading)
REPLY_HWM = 2  # whole replies libzmq may hold for one client (ZMQ_SNDHWM)
HEAVY_PER_CLIENT = 2  # data requests of one client in the workers at a time
QUEUE_STUCK_DROP_S = 10.0  # shared queue full of non-readers' requests this long: drop the worst
BACKLOG_MAX_MSGS = 4096  # small replies a pipelining client may have waiting here
STALL_DROP_S = 60.0  # a client whose backlog does not move for this long is dropped
PEER_FORGET_MAX_PATHS = 16  # paths of one peer "forget" (a rename names two)
DROPPED_MEMORY = 4096  # identities of dropped clients remembered (their requests ignored)
BACKEND = "inproc://gkfs-workers"
# How often the connections holding locks are probed (seconds); a lock of a
# client that died is released within about this long of its connection
# closing (a dead node's connection closes after the heartbeat timeout).
LOCK_PROBE_INTERVAL = 0.25
HEARTBEAT_IVL_MS = 2000
HEARTBEAT_TIMEOUT_MS = 10000
DRAIN_MAX = 32  # requests answered in a row before the loop looks at the workers again
# pyzmq's Socket.send is a Python wrapper (routing_id and group handling)
# around its Cython base class's send: the base's, ~0.2 us less a frame.
_send_frame = zmq.backend.Socket.send
# Plain ints: pyzmq's flag enums cost an enum construction per | or &.
_NOBLOCK = int(zmq.NOBLOCK)
_MORE_NOBLOCK = int(zmq.SNDMORE | zmq.NOBLOCK)
_POLLIN = int(zmq.POLLIN)
_EVENTS = int(zmq.EVENTS)


def handle(state: DaemonState, frames: list[Any], caller: security.Identity, peer: bytes = b"",
           inline: frozenset[str] | None = None) -> list[Any] | str:
    """One request's frames (no envelope) -> reply frames. Never raises.

    ``caller`` is who the transport authenticated (never a request field);
    ``peer`` is the requesting connection's ROUTER identity (locks are bound
    to it). ``inline`` (the receiving thread): the ops it may run; the op's
    name comes back instead of a reply for a request that must go to a
    worker (another op, or one that would wait on another daemon), nothing
    done, nothing counted."""
    req_id, op = 0, "?"
    try:
        req = protocol.decode_request(frames, max_frame_size=state.config.max_frame_size)
        req_id, op = req.req_id, req.op
        if inline is not None and op not in inline:
            return op
        token = CALLER.set(caller)
        inline_token = INLINE.set(inline is not None)
        try:
            # a directory rename in progress fences its trees (4.8): EAGAIN
            state.fences.check(op, req.args)
            if op in protocol.PEER_OPS:
                result, data = HANDLERS[op](state, req.args, req.data, peer)
            else:
                result, data = HANDLERS[op](state, req.args, req.data)
        finally:
            INLINE.reset(inline_token)
            CALLER.reset(token)
        state.count(op, True)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("op %s (id %d) ok", op, req_id)
        return protocol.encode_reply(req_id, result, data)
    except NeedsWorker:
        return op
    except protocol.ProtocolError as exc:
        state.count(op, False)
        log.info("bad request (id %d): %s", exc.req_id, exc)
        return protocol.encode_error(exc.req_id, exc.errno, exc.message)
    except OSError as exc:
        state.count(op, False)
        code = exc.errno if isinstance(exc.errno, int) and exc.errno > 0 else 5
        msg = exc.strerror if exc.filename is None else f"{exc.strerror}: {exc.filename}"
        log.debug("op %s (id %d) failed: [%s] %s", op, req_id, protocol.errno_name(code), msg)
        return protocol.encode_error(req_id, code, msg or protocol.strerror(code))
    except Exception as exc:  # a bug must not kill the daemon: answer EIO, log it
        state.count(op, False)
        log.exception("op %s (id %d) crashed", op, req_id)
        return protocol.encode_error(req_id, 5, f"internal error in op {op}: {exc!r}")


def _worker(ctx: zmq.Context, state: DaemonState) -> None:
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 0
    sock.connect(BACKEND)
    sock.send(READY)
    try:
        while True:
            msg = sock.recv_multipart(copy=False)
            if len(msg) == 1:  # STOP
                return
            # [client identity, caller's User-Id, header, data...] (see Server._caller_frame)
            client, caller, frames = msg[0], security.Identity.from_user_id(msg[1].bytes.decode()), msg[2:]
            reply = handle(state, frames, caller, client.bytes)
            sock.send_multipart([client, *reply], copy=False)
            # An idle worker must not pin its last request and reply (up to
            # 64 MiB each) until it happens to serve another request.
            del msg, client, frames, reply
    finally:
        sock.close()


def _size(msg: list[Any]) -> int:
    return sum(len(f) for f in msg)


class _Backlog:
    """Replies waiting here for one client whose libzmq queue is full."""

    __slots__ = ("msgs", "bytes", "since")

    def __init__(self) -> None:
        self.msgs: collections.deque[list[Any]] = collections.deque()
        self.bytes = 0
        self.since = time.monotonic()


class Server:
    """``key``/``keys_dir`` given: CURVE with ZAP (only registered client keys get
    in); None: plain TCP, every peer acts as the daemon's owner."""

    def __init__(self, state: DaemonState, listen: str, key: security.ServerKey | None = None,
                 keys_dir: Any = None):
        self.state = state
        self.ctx = zmq.Context()
        # The I/O thread that a reply's send wakes runs when this thread
        # waits or on the other core, instead of preempting it before the
        # next request (transport.batch_io_threads).
        batch_io_threads(self.ctx)
        self.zap = None
        if key is not None:
            self.zap = ZapHandler(self.ctx, keys_dir, key.public)
            self.zap.start()
        self.frontend = self.ctx.socket(zmq.ROUTER)
        if key is not None:
            security.apply_server(self.frontend, key)
        # Hard memory guard; frames up to this size get a proper EMSGSIZE reply.
        self.frontend.setsockopt(zmq.MAXMSGSIZE, 2 * state.config.max_frame_size)
        self.frontend.linger = 5000  # flush replies of finished requests at exit
        # A few whole replies per client in libzmq; beyond that a send fails
        # with EAGAIN (ROUTER_MANDATORY, below) instead of dropping the reply,
        # and the receiving thread keeps it in a bounded per-client backlog.
        self.frontend.sndhwm = REPLY_HWM
        self.backlogs: dict[bytes, _Backlog] = {}
        self.dropped: collections.OrderedDict[bytes, None] = collections.OrderedDict()
        self.heavy_inflight: collections.Counter[bytes] = collections.Counter()
        # Data requests waiting per client: one client's queue (its replies
        # not taken) must never fill the shared one and stop the daemon
        # reading everybody's requests.
        self.heavy_queued: collections.Counter[bytes] = collections.Counter()
        # Locks are bound to the connection that took them: a send to a peer
        # that is gone must fail (EHOSTUNREACH) instead of vanishing, which
        # is how the lock probe learns a client died. ZMTP heartbeats close
        # the connection of a peer that stopped answering (a dead node).
        self.frontend.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self.frontend.setsockopt(zmq.HEARTBEAT_IVL, HEARTBEAT_IVL_MS)
        self.frontend.setsockopt(zmq.HEARTBEAT_TIMEOUT, HEARTBEAT_TIMEOUT_MS)
        self._probe = protocol.encode_reply(0, {"probe": True})[0]
        self._next_probe = 0.0
        self.frontend.bind(listen)
        self.address = self.frontend.getsockopt_string(zmq.LAST_ENDPOINT)
        self.backend = self.ctx.socket(zmq.ROUTER)
        self.backend.linger = 0
        self.backend.bind(BACKEND)
        self.stopping = threading.Event()
        self.inline_ops = INLINE_NO_COMMIT if state.config.sync else INLINE_OPS
        # ... and data requests of up to handlers.INLINE_DATA_MAX bytes when
        # nothing waits (_data_here; a write commits its size update: not
        # with sync).
        self.inline_data_ops = self.inline_ops | (INLINE_DATA_SYNC if state.config.sync else HEAVY_OPS)
        # security off: every request runs as the daemon's owner
        owner = security.Identity.of_process()
        self._owner_caller = (owner.user_id().encode(), owner)
        self._callers: dict[str, tuple[bytes, security.Identity | None]] = {}
        self.local: LocalListener | None = None
        self.threads = [threading.Thread(target=_worker, args=(self.ctx, state), name=f"worker-{i}", daemon=True)
                        for i in range(state.config.workers)]

    def listen_local(self, name: bytes) -> None:
        """Serve the local stream (1.1) at the abstract ``name`` too; OSError
        (EADDRINUSE: the name is taken) leaves the daemon on ZeroMQ alone."""
        self.local = LocalListener(name, self.state.config.max_frame_size, self._local_closed)
        self.state.local = self.local

    def serve(self) -> None:
        for t in self.threads:
            t.start()
        n_workers = len(self.threads)
        reserve = 1 if n_workers > 1 else 0
        idle: collections.deque[bytes] = collections.deque()
        heavy: collections.deque[list[Any]] = collections.deque()
        # metadata requests the receiving thread could not answer itself
        waiting: collections.deque[list[Any]] = collections.deque()
        waiting_bytes = 0
        waiting_limit = self.state.config.max_frame_size
        working: dict[bytes, tuple[bytes, bool]] = {}  # worker -> (client, heavy)
        heavy_bytes = 0
        heavy_limit = 4 * self.state.config.max_frame_size
        stuck_since: float | None = None
        stop_flush: float | None = None
        # The loop takes messages with non-blocking receives (no system call
        # while libzmq has messages queued; after a request answered here,
        # ZMQ_EVENTS says whether another one is queued, see the drain
        # below) and waits only when both sockets are drained, on their
        # ZMQ_FDs (one poll(2)). A ZMQ_FD signals
        # libzmq commands (a message in an empty pipe, a client's pipe that
        # drained, a new connection) and is reset by whatever processes
        # them (a receive that finds nothing, a send now and then), so each
        # socket is waited on only after a receive found it empty and no
        # send touched it since (*_maybe below). While replies wait in a
        # backlog, the frontend's signal also wakes the loop when a client's
        # pipe drains, so a backlog moves as soon as the client reads
        # instead of after the 2 ms timeout (a pipelining client otherwise
        # stalls 2 ms each time REPLY_HWM replies are in flight).
        frontend, backend = self.frontend, self.backend
        front_fd = frontend.getsockopt(zmq.FD)
        back_fd = backend.getsockopt(zmq.FD)
        wait_back = select.poll()
        wait_back.register(back_fd, select.POLLIN)
        wait_both = select.poll()
        wait_both.register(back_fd, select.POLLIN)
        wait_both.register(front_fd, select.POLLIN)
        # The local stream's epoll fd, in both waits: its events are taken even
        # while requests are not read (it never stays ready), its requests not.
        local = self.local
        local_fd = -1
        if local is not None:
            local_fd = local.fileno()
            wait_back.register(local_fd, select.POLLIN)
            wait_both.register(local_fd, select.POLLIN)
        local_events = local is not None
        local_more = False  # requests read or readable connections not handled yet
        NOBLOCK, Again = zmq.NOBLOCK, zmq.Again
        back_maybe = front_maybe = True
        inflight = -1
        stopping = False
        while True:
            # While stopping, the frontend is still read, but only to answer
            # ESHUTDOWN at once instead of leaving clients to time out.
            # Requests waiting for a worker are bounded in bytes, not only in
            # count, so a burst of 64 MiB writes cannot exhaust memory; below
            # those bounds requests are read whether or not a worker is idle.
            if not stopping and self.stopping.is_set():
                stopping = True
                stop_flush = time.monotonic() + 5.0  # replies waiting here get 5 s to go out
            accepting = stopping or (len(heavy) < 64 and heavy_bytes < heavy_limit
                                     and len(waiting) < WAITING_MAX and waiting_bytes < waiting_limit)
            if stopping and not working and not heavy and not waiting and (
                    not (self.backlogs or (local is not None and local.unsent)) or time.monotonic() > stop_flush):
                break
            msg = None
            if back_maybe:
                try:
                    msg = backend.recv_multipart(NOBLOCK, copy=False)
                except Again:
                    back_maybe = False
            if msg is not None:
                worker = msg[0].bytes
                if len(msg) > 2:  # a reply: [worker, client, header, data...]
                    client, was_heavy = working.pop(worker, (b"", False))
                    if was_heavy:
                        self._heavy_done(client)
                    self._deliver(msg[1:])
                    front_maybe = True
                idle.append(worker)
                msg = None  # libzmq has the reply now: pin nothing while idle
            if accepting and front_maybe:
                msg, too_many = self._recv_request()
                if msg is None:
                    front_maybe = False
            if msg is None and not back_maybe and not (accepting and front_maybe) and not local_events \
                    and not (accepting and local_more):
                # Both drained: wait. Backlogged replies are sent last
                # (after the receive that took the signals), until a round
                # sends nothing; a send may also have taken a signal, so the
                # frontend is looked at again after any that went out.
                if self.backlogs:
                    if self._flush_backlogs():
                        front_maybe = True
                        continue
                    if not accepting:  # nobody receives: take the signals here
                        frontend.getsockopt(_EVENTS)
                        if self._flush_backlogs():
                            continue
                if accepting or self.backlogs:
                    ready = wait_both.poll(2 if self.backlogs else 100)
                else:
                    ready = wait_back.poll(100)
                for fd, _ev in ready:
                    if fd == back_fd:
                        back_maybe = True
                    elif fd == local_fd:
                        local_events = True
                    elif accepting:
                        # Often only a pipe that drained (libzmq sends one such
                        # command per reply taken): ZMQ_EVENTS takes it and
                        # says whether a request came, without a receive
                        # that raises.
                        front_maybe = bool(frontend.getsockopt(_EVENTS) & _POLLIN)
                    else:
                        front_maybe = True
                if not ready:  # a timeout: look at both anyway (cheap, and never stuck on a lost signal)
                    back_maybe = front_maybe = True
                elif back_maybe or (accepting and front_maybe) or local_events:
                    # A message is there: straight back to the receives (the
                    # bookkeeping below runs once it has been handled).
                    continue
            if msg is not None:
                # Answer every request already queued, one after the other,
                # before looking at anything else: the bookkeeping below and a
                # wait only once per wake-up, not once per request. The drain
                # stops at the first request that goes to a worker (the
                # queues' bounds are looked at again), at a reply that has to
                # wait in a backlog, while stopping, and after DRAIN_MAX
                # requests (the workers' replies are not kept waiting long).
                front_maybe = True
                drained = 0
                while True:
                    client = msg[0]
                    queued = False
                    if len(msg) < 2 or client in self.dropped:
                        pass  # nothing to answer, or a client dropped for not reading
                    elif stopping:
                        self._refuse(msg, errno.ESHUTDOWN, "daemon is shutting down")
                    elif too_many:
                        self._refuse(msg, errno.EINVAL, f"request has more than {protocol.MAX_FRAMES} frames")
                    else:
                        caller, who = self._caller(msg[1])
                        if caller == PEER_USER_ID:
                            self._answer_peer(msg)
                        elif who is not None:
                            # answered here, or (its op back) for a worker
                            reply = handle(self.state, msg[1:], who, client, self.inline_ops)
                            if type(reply) is str and reply in HEAVY_OPS and self._data_here(client, heavy):
                                reply = handle(self.state, msg[1:], who, client, self.inline_data_ops)
                            if type(reply) is not str:
                                self._deliver_reply(msg[0], reply, client)
                            else:
                                queued = True
                                add_heavy, add_waiting = self._queue_for_worker(msg, caller, reply, heavy, waiting)
                                heavy_bytes += add_heavy
                                waiting_bytes += add_waiting
                    msg = reply = None
                    drained += 1
                    if queued or stopping or drained >= DRAIN_MAX or self.backlogs:
                        break
                    if drained == 1 and not frontend.getsockopt(_EVENTS) & _POLLIN:
                        # Mostly one request per wake-up: ZMQ_EVENTS says so
                        # without a receive that raises (pyzmq builds a
                        # ZMQError for every EAGAIN); after that, receives.
                        front_maybe = False  # it took the signals
                        break
                    msg, too_many = self._recv_request()
                    if msg is None:
                        front_maybe = False  # the receive that found nothing took the signals
                        break
            if local_events or (accepting and local_more):
                local_more, add_heavy, add_waiting = self._serve_local(local_events, accepting, stopping, heavy,
                                                                       waiting)
                heavy_bytes += add_heavy
                waiting_bytes += add_waiting
                local_events = False
            # Metadata waiting for a worker first (oldest first), then data.
            while waiting and idle:
                msg = waiting.popleft()
                waiting_bytes -= _size(msg)
                client = msg[0]
                if client in self.dropped:
                    continue
                worker = idle.popleft()
                working[worker] = (client, False)
                backend.send_multipart([worker, *msg], copy=False)
                back_maybe = True
            msg = None
            # Data requests: oldest first, skipping clients that already have
            # HEAVY_PER_CLIENT in the workers or replies waiting here.
            keep = reserve if not stopping else 0
            if heavy and len(idle) > keep:
                for msg in list(heavy):
                    if len(idle) <= keep:
                        break
                    client = msg[0]
                    if client in self.dropped:
                        heavy.remove(msg)
                        heavy_bytes -= _size(msg)
                        self._unqueue(client)
                        continue
                    if self.heavy_inflight[client] >= HEAVY_PER_CLIENT or client in self.backlogs:
                        continue
                    heavy.remove(msg)
                    heavy_bytes -= _size(msg)
                    self._unqueue(client)
                    self.heavy_inflight[client] += 1
                    worker = idle.popleft()
                    working[worker] = (client, True)
                    backend.send_multipart([worker, *msg], copy=False)
                    back_maybe = True
            if self.backlogs:
                self._flush_backlogs()
                front_maybe = True
            if (len(heavy) >= 64 or heavy_bytes >= heavy_limit) and self.backlogs:
                # The shared queue is full of requests of clients that do not
                # read their replies (so nobody else is read): a pipelining
                # client catches up within seconds; past QUEUE_STUCK_DROP_S
                # the worst is dropped, so the daemon never stops for good.
                if stuck_since is None:
                    stuck_since = time.monotonic()
                elif time.monotonic() - stuck_since > QUEUE_STUCK_DROP_S:
                    worst = max(self.backlogs, key=lambda c: self.heavy_queued.get(c, 0))
                    if self.heavy_queued.get(worst):
                        self._drop(worst, "its waiting data requests filled the daemon's queue")
                    stuck_since = None
            else:
                stuck_since = None
            if self.heavy_queued and any(c in self.dropped for c in self.heavy_queued):
                kept = collections.deque(m for m in heavy if m[0] not in self.dropped)
                heavy_bytes -= sum(_size(m) for m in heavy if m[0] in self.dropped)
                heavy = kept
                for c in [c for c in self.heavy_queued if c in self.dropped]:
                    del self.heavy_queued[c]
            n = len(working) + len(heavy) + len(waiting)
            if n != inflight:
                inflight = n
                with self.state.lock:
                    self.state.inflight = n
            if self._probe_lock_holders():
                front_maybe = True
        for w in idle:
            self.backend.send_multipart([w, STOP])
        # A worker that had not announced itself yet (a stop right after
        # start-up) gets its STOP when it does, instead of each join waiting
        # out its timeout.
        stopped = len(idle)
        deadline = time.monotonic() + 10
        while stopped < n_workers and time.monotonic() < deadline:
            if self.backend.poll(100):
                msg = self.backend.recv_multipart(copy=False)
                if len(msg) > 2:  # a late reply: deliver it
                    self._deliver(msg[1:])
                self.backend.send_multipart([msg[0].bytes, STOP])
                stopped += 1
        for t in self.threads:
            t.join(10)

    def _data_here(self, client: bytes, heavy: collections.deque) -> bool:
        """Whether the receiving thread serves a data request itself (up to
        handlers.INLINE_DATA_MAX bytes): the hand-off to a worker and back
        costs about what the pwrites of 1 MiB do. Only when it overtakes
        nothing (no data request waits for a worker, none of this client's
        is in one) and no other request is there to be read: with requests
        waiting, data goes to the workers, which pwrite and pread side by
        side (the GIL released), and nobody waits behind it here."""
        return (not heavy and client not in self.heavy_inflight
                and not self.frontend.getsockopt(_EVENTS) & _POLLIN)

    def _serve_local(self, events: bool, accepting: bool, stopping: bool, heavy: collections.deque,
                     waiting: collections.deque) -> tuple[bool, int, int]:
        """The local stream's turn: its events; while accepting, its requests,
        handled as the ZeroMQ drain does, each as the daemon's owner (only the
        owner's uid gets a connection; peers never come this way). Returns
        (more to read or handle, bytes added to heavy, to waiting)."""
        local = self.local
        if events:
            local.poll()
        if not accepting:
            return bool(local.inbox or local.readable), 0, 0
        inbox = local.inbox
        if not inbox:
            local.read()
        add_heavy = add_waiting = 0
        caller, who = self._owner_caller
        drained = 0
        while inbox:
            msg = inbox.popleft()
            client = msg[0]
            queued = False
            if client in self.dropped:
                continue
            if stopping:
                self._refuse(msg, errno.ESHUTDOWN, "daemon is shutting down")
                continue
            reply = handle(self.state, msg[1:], who, client, self.inline_ops)
            if type(reply) is str and reply in HEAVY_OPS and not inbox and self._data_here(client, heavy):
                reply = handle(self.state, msg[1:], who, client, self.inline_data_ops)
            if type(reply) is not str:
                self._deliver_local(client, reply)
            else:
                queued = True
                h, w = self._queue_for_worker(msg, caller, reply, heavy, waiting)
                add_heavy += h
                add_waiting += w
            msg = reply = None
            drained += 1
            if queued or drained >= DRAIN_MAX:
                break
        return bool(inbox or local.readable), add_heavy, add_waiting

    def _queue_for_worker(self, msg: list[Any], caller: bytes, op: str, heavy: collections.deque,
                          waiting: collections.deque) -> tuple[int, int]:
        """A request [client, header, data...] this thread does not answer:
        with its caller's User-Id for the worker, into the data queue (``op``
        a data op) or the metadata one. Returns the bytes added to each."""
        msg.insert(1, caller)
        if op in HEAVY_OPS:
            heavy.append(msg)
            self.heavy_queued[msg[0]] += 1
            return _size(msg), 0
        waiting.append(msg)
        return 0, _size(msg)

    def _deliver_local(self, client: bytes, reply: list[Any]) -> None:
        """A reply answered here to a local connection: straight to its
        socket, unless replies wait (its partial one, or its backlog)."""
        if client in self.backlogs or not self.local.send(client, reply):
            self._deliver([client, *reply], client)

    def _local_closed(self, client: bytes) -> None:
        """A local connection closed: what it held goes at once (as in
        _probe_lock_holders, which catches what a worker takes for it later)."""
        self.backlogs.pop(client, None)
        n = self.state.locks.drop_connection(client)
        h = self.state.holds.drop_connection(client)
        self.state.fences.drop_connection(client)
        if n or h:
            log.info("local connection closed: released its %d lock(s) and %d open(s)", n, h)

    def _recv_request(self) -> tuple[list[Any] | None, bool]:
        """One request's frames, at most protocol.MAX_FRAMES + 1 kept (the
        identity and the header at least); further frames are drained
        unkept, so a million empty frames cost no memory. (None, False):
        nothing queued (a multipart message arrives whole or not at all)."""
        recv = self.frontend.recv
        try:
            # The routing identity, as bytes: a ROUTER always delivers it
            # first, flagged "more", before the peer's own frames (so no
            # zmq.Frame to build and convert: the loop keys on the bytes).
            msg = [recv(_NOBLOCK)]
        except zmq.Again:
            return None, False
        too_many = False
        more = True
        while more:
            frame = recv(0, copy=False)
            more = frame.more
            if len(msg) <= protocol.MAX_FRAMES:
                msg.append(frame)
            else:
                too_many = True
        return msg, too_many

    def _unqueue(self, client: bytes) -> None:
        self.heavy_queued[client] -= 1
        if self.heavy_queued[client] <= 0:
            del self.heavy_queued[client]

    def _heavy_done(self, client: bytes) -> None:
        self.heavy_inflight[client] -= 1
        if self.heavy_inflight[client] <= 0:
            del self.heavy_inflight[client]

    def _deliver(self, msg: list[Any], client: bytes | None = None) -> None:
        """Send a reply [client, header, data...] without ever blocking
        (``client``: msg[0] as bytes, when the caller has it)."""
        if client is None:
            client = msg[0].bytes if hasattr(msg[0], "bytes") else bytes(msg[0])
        if client in self.dropped:
            return
        backlog = self.backlogs.get(client)
        if backlog is None and self.local is not None and self.local.is_local(client):
            if self.local.send(client, msg[1:]):
                return
            backlog = self.backlogs[client] = _Backlog()
        if backlog is None:
            for again in (False, True):
                try:
                    self.frontend.send_multipart(msg, copy=False, flags=zmq.NOBLOCK)
                    return
                except zmq.Again:
                    if again:  # really full: into its backlog
                        break
                    # Often the pipe is not full at all: libzmq learns that
                    # the client's I/O thread took earlier replies from a
                    # command the socket has not processed yet (a receive
                    # that finds a message processes none). ZMQ_EVENTS
                    # processes them; then send again.
                    self.frontend.getsockopt(_EVENTS)
                except zmq.ZMQError as exc:
                    if exc.errno == errno.EHOSTUNREACH:
                        return  # the client has gone: nobody to answer
                    raise
            backlog = self.backlogs[client] = _Backlog()
        backlog.msgs.append(msg)
        backlog.bytes += _size(msg)
        if backlog.bytes > self.state.config.max_frame_size or len(backlog.msgs) > BACKLOG_MAX_MSGS:
            self._drop(client, f"{backlog.bytes} bytes in {len(backlog.msgs)} replies waiting")

    def _deliver_reply(self, ident: Any, reply: list[Any], client: bytes) -> None:
        """_deliver([ident, *reply], client) for a reply answered here: the
        frames sent one by one (what send_multipart does, without its
        per-frame type checks and flag enums); a client that is dropped or
        has replies waiting goes the long way."""
        if client in self.backlogs or client in self.dropped:
            self._deliver([ident, *reply], client)
            return
        sock = self.frontend
        try:
            # ROUTER_MANDATORY: a full pipe (EAGAIN) or a client that has gone
            # (EHOSTUNREACH) fails the identity frame, before anything is queued.
            _send_frame(sock, ident, _MORE_NOBLOCK)
        except zmq.Again:
            self._deliver([ident, *reply], client)  # tried again there, else into its backlog
            return
        except zmq.ZMQError as exc:
            if exc.errno == errno.EHOSTUNREACH:
                return  # the client has gone: nobody to answer
            raise
        if len(reply) == 1:  # a header alone: the common reply
            _send_frame(sock, reply[0], _NOBLOCK, copy=False)
            return
        last = len(reply) - 1
        for i, frame in enumerate(reply):
            _send_frame(sock, frame, _NOBLOCK if i == last else _MORE_NOBLOCK, copy=False)

    def _flush_backlogs(self) -> int:
        """Send what the clients' pipes take now; the number of replies sent."""
        sent = 0
        now = time.monotonic()
        local = self.local
        for client, backlog in list(self.backlogs.items()):
            is_local = local is not None and local.is_local(client)
            while backlog.msgs:
                if is_local:
                    # (one that fails here is closed: the rest is discarded)
                    if not local.send(client, backlog.msgs[0][1:]):
                        break
                else:
                    try:
                        self.frontend.send_multipart(backlog.msgs[0], copy=False, flags=zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    except zmq.ZMQError as exc:
                        if exc.errno != errno.EHOSTUNREACH:
                            raise
                        backlog.msgs.clear()  # gone: its replies go nowhere
                        break
                backlog.bytes -= _size(backlog.msgs.popleft())
                backlog.since = now
                sent += 1
            if not backlog.msgs:
                self.backlogs.pop(client, None)
            elif now - backlog.since > STALL_DROP_S:
                self._drop(client, f"no reply taken for {STALL_DROP_S:g} s")
        return sent

    def _drop(self, client: bytes, why: str) -> None:
        """A client that stopped reading its replies: free what waits for it
        and ignore it from now on (libzmq frees its queue when it disconnects)."""
        self.backlogs.pop(client, None)
        self.dropped[client] = None
        if self.local is not None and self.local.is_local(client):
            self.local.close(client, f"dropped: {why}")
        while len(self.dropped) > DROPPED_MEMORY:
            self.dropped.popitem(last=False)
        self.state.count("dropped_clients", False)
        log.warning("dropped a client that stopped reading its replies (%s)", why)

    def _caller(self, header: Any) -> tuple[bytes | None, security.Identity | None]:
        """(User-Id, caller) of a request from its header frame (see
        _caller_frame); each distinct User-Id parsed once. (PEER_USER_ID,
        None): another daemon; (None, None): nobody to run it as."""
        if self.zap is None:
            return self._owner_caller
        user = header.get("User-Id")
        hit = self._callers.get(user)
        if hit is not None:
            return hit
        caller = self._caller_frame(header)
        if caller is None:
            return None, None
        hit = (caller, None if caller == PEER_USER_ID else security.Identity.from_user_id(caller.decode()))
        if len(self._callers) > 4096:
            self._callers.clear()
        self._callers[user] = hit
        return hit

    def _caller_frame(self, header: Any) -> bytes | None:
        """Who sent this: the ZAP User-Id libzmq attached to the frame (CURVE;
        security off, _caller answers the daemon's owner without it)."""
        user = header.get("User-Id")
        if not user:  # cannot happen with ZAP in place; never run a request as nobody in particular
            log.error("dropped a request without an authenticated User-Id")
            return None
        return user.encode()

    def _send(self, msg: list[Any]) -> bool:
        """Send a probe to a client without blocking; False when its
        connection is gone (a full queue means it is still there). A local
        connection is not probed: its closing is seen at once."""
        if self.local is not None and self.local.is_local(msg[0]):
            return msg[0] in self.local.conns
        try:
            self.frontend.send_multipart(msg, copy=False, flags=zmq.NOBLOCK)
            return True
        except zmq.Again:
            return True
        except zmq.ZMQError as exc:
            if exc.errno != errno.EHOSTUNREACH:
                raise
            return False

    def _probe_lock_holders(self) -> bool:
        """Drop the locks of every connection that no longer exists. The
        probe is a reply with id 0, which clients ignore. True: probes sent."""
        now = time.monotonic()
        if now < self._next_probe:
            return False
        self._next_probe = now + LOCK_PROBE_INTERVAL
        conns = set(self.state.locks.connections()) | set(self.state.holds.connections()) | \
            set(self.state.fences.connections())
        for conn in conns:
            if not self._send([conn, self._probe]):
                n = self.state.locks.drop_connection(conn)
                h = self.state.holds.drop_connection(conn)
                self.state.fences.drop_connection(conn)
                log.info("client connection %s closed: released its %d lock(s) and %d open(s)",
                         conn.hex(), n, h)
        return bool(conns)

    def _answer_peer(self, msg: list[Any]) -> None:
        """Another daemon asks for a record (``stat``: a permission check,
        daemon.peer) or tells this one to drop records it changed from the
        cache of other daemons' directories (``forget``, daemon.dircache):
        answered here, at once, so daemons waiting on each other never
        deadlock their workers. A peer may do nothing else; nobody but a
        peer (the cluster's daemon key, auth.PEER_USER_ID) reaches this."""
        try:
            header = protocol.unpack_bounded(msg[1].buffer)
        except protocol.ProtocolError:
            header = {}
        if not isinstance(header, dict):
            header = {}
        req_id = header.get("id", 0)
        if not isinstance(req_id, int) or isinstance(req_id, bool) or not 0 <= req_id < 2**64:
            req_id = 0
        args = header.get("args") if isinstance(header.get("args"), dict) else {}
        op = header.get("op")
        try:
            if op not in ("stat", "forget") or len(msg) != 2:
                raise OSError(errno.EPERM, "a peer daemon may only look up records or have them forgotten")
            if op == "forget":
                paths = args.get("paths")
                if not isinstance(paths, list) or not 0 < len(paths) <= PEER_FORGET_MAX_PATHS:
                    raise OSError(errno.EINVAL, f"forget needs 'paths': a list of 1..{PEER_FORGET_MAX_PATHS} paths")
                for path in paths:
                    protocol.check_path(path)
                if self.state.peers is not None:
                    self.state.peers.cache.forget(paths, bool(args.get("below")))
                reply = protocol.encode_reply(req_id, {}, [])
            else:
                path = args.get("path")
                protocol.check_path(path)
                rec = self.state.meta.get(path)
                if rec is None:
                    raise OSError(errno.ENOENT, f"no such file or directory: {path}")
                reply = protocol.encode_reply(req_id, {"stat": rec}, [])
        except protocol.ProtocolError as exc:
            reply = protocol.encode_error(req_id, exc.errno, exc.message)
        except OSError as exc:
            reply = protocol.encode_error(req_id, exc.errno or errno.EIO, exc.strerror or str(exc))
        self._deliver([msg[0], *reply])
        self.state.count("peer_forget" if op == "forget" else "peer_stat", True)

    def _refuse(self, msg: list[Any], code: int, message: str) -> None:
        """Answer from the receiving thread itself (shutting down, too many frames;
        a local request's header is bytes, not a zmq.Frame)."""
        req_id = protocol.peek_header(getattr(msg[1], "buffer", msg[1]))[1]
        self._deliver([msg[0], *protocol.encode_error(req_id, code, message)])
        self.state.count("refused", False)

    def stop(self) -> None:
        self.stopping.set()

    def close(self) -> None:
        # The frontend keeps its linger (replies already queued get out);
        # everything else, e.g. a worker that never started, closes at once.
        self.frontend.close()
        if self.local is not None:
            self.local.close_all()
        if self.zap is not None:
            self.zap.stop()
        self.ctx.destroy(linger=0)
