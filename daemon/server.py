"""ZeroMQ serving: a ROUTER for clients, a pool of worker threads behind it.

The main thread runs a load-balancing broker: a request goes only to an
idle worker (workers announce themselves), never queued behind a busy one,
so one client's 64 MiB write cannot stall another's stat. Data-heavy ops
(write_chunks, read_chunks) may not take the last idle worker when there
is more than one, which keeps a worker free for metadata. Frames are
received with copy=False and handed through inproc untouched, so a write's
payload is pwritten from the buffer libzmq received it into.
"""
from __future__ import annotations

import collections
import errno
import logging
import threading
import time
from typing import Any

import msgpack
import zmq

from gkfs_client import protocol, security

from .auth import PEER_USER_ID, ZapHandler
from .handlers import CALLER, HANDLERS, DaemonState

log = logging.getLogger("gkfs_daemon.server")

READY = b"\x01"  # worker -> broker: "I am idle" (a 1-frame message)
STOP = b"\x00"  # broker -> worker: "exit"
HEAVY_OPS = frozenset({"write_chunks", "read_chunks"})
BACKEND = "inproc://gkfs-workers"
# How often the connections holding locks are probed (seconds); a lock of a
# client that died is released within about this long of its connection
# closing (a dead node's connection closes after the heartbeat timeout).
LOCK_PROBE_INTERVAL = 0.25
HEARTBEAT_IVL_MS = 2000
HEARTBEAT_TIMEOUT_MS = 10000


def handle(state: DaemonState, frames: list[Any], caller: security.Identity, peer: bytes = b"") -> list[Any]:
    """One request's frames (no envelope) -> reply frames. Never raises.

    ``caller`` is who the transport authenticated (never a request field);
    ``peer`` is the requesting connection's ROUTER identity (locks are bound
    to it)."""
    req_id, op = 0, "?"
    try:
        req = protocol.decode_request(frames, max_frame_size=state.config.max_frame_size)
        req_id, op = req.req_id, req.op
        token = CALLER.set(caller)
        try:
            # a directory rename in progress fences its trees (4.8): EAGAIN
            state.fences.check(req.op, req.args)
            if req.op in protocol.PEER_OPS:
                result, data = HANDLERS[req.op](state, req.args, req.data, peer)
            else:
                result, data = HANDLERS[req.op](state, req.args, req.data)
        finally:
            CALLER.reset(token)
        state.count(op, True)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("op %s (id %d) ok", op, req_id)
        return protocol.encode_reply(req_id, result, data)
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
    finally:
        sock.close()


def _size(msg: list[Any]) -> int:
    return sum(len(f) for f in msg)


def _peek(header: Any) -> dict:
    """The header map, or {} if unreadable: only to classify a request (the
    worker validates it properly)."""
    try:
        h = msgpack.unpackb(header.buffer, raw=False)
        return h if isinstance(h, dict) else {}
    except Exception:
        return {}


class Server:
    """``key``/``keys_dir`` given: CURVE with ZAP (only registered client keys get
    in); None: plain TCP, every peer acts as the daemon's owner."""

    def __init__(self, state: DaemonState, listen: str, key: security.ServerKey | None = None,
                 keys_dir: Any = None):
        self.state = state
        self.ctx = zmq.Context()
        self.zap = None
        if key is not None:
            self.zap = ZapHandler(self.ctx, keys_dir, key.public)
            self.zap.start()
        self.frontend = self.ctx.socket(zmq.ROUTER)
        if key is not None:
            security.apply_server(self.frontend, key)
        self._owner_id = security.Identity.of_process().user_id().encode()
        # Hard memory guard; frames up to this size get a proper EMSGSIZE reply.
        self.frontend.setsockopt(zmq.MAXMSGSIZE, 2 * state.config.max_frame_size)
        self.frontend.linger = 5000  # flush replies of finished requests at exit
        # A ROUTER silently drops replies to a peer above its send high-water
        # mark; a client pipelining many requests must never lose a reply, so
        # no limit here (clients bound their own requests in flight).
        self.frontend.sndhwm = 0
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
        self.threads = [threading.Thread(target=_worker, args=(self.ctx, state), name=f"worker-{i}", daemon=True)
                        for i in range(state.config.workers)]

    def serve(self) -> None:
        for t in self.threads:
            t.start()
        n_workers = len(self.threads)
        reserve = 1 if n_workers > 1 else 0
        idle: collections.deque[bytes] = collections.deque()
        heavy: collections.deque[list[Any]] = collections.deque()
        busy = 0
        heavy_bytes = 0
        heavy_limit = 4 * self.state.config.max_frame_size
        poller = zmq.Poller()
        poller.register(self.backend, zmq.POLLIN)
        accepting = False
        while True:
            # While stopping, the frontend is still read, but only to answer
            # ESHUTDOWN at once instead of leaving clients to time out.
            # Waiting heavy requests are bounded in bytes, not only in count,
            # so a burst of 64 MiB writes cannot exhaust memory.
            want_front = self.stopping.is_set() or (len(idle) > 0 and len(heavy) < 64
                                                    and heavy_bytes < heavy_limit)
            if want_front != accepting:
                if want_front:
                    poller.register(self.frontend, zmq.POLLIN)
                else:
                    poller.unregister(self.frontend)
                accepting = want_front
            if self.stopping.is_set() and busy == 0 and not heavy:
                break
            events = dict(poller.poll(100))
            if self.backend in events:
                msg = self.backend.recv_multipart(copy=False)
                worker = msg[0].bytes
                if len(msg) > 2:  # a reply: [worker, client, header, data...]
                    self._send(msg[1:])
                    busy -= 1
                idle.append(worker)
            if accepting and self.frontend in events:
                msg = self.frontend.recv_multipart(copy=False)
                if len(msg) < 2:
                    continue  # an identity with no frames: nothing to answer
                if self.stopping.is_set():
                    self._refuse(msg)
                    continue
                caller = self._caller_frame(msg[1])
                if caller is None:
                    continue
                if caller == PEER_USER_ID:
                    self._answer_peer(msg)
                    continue
                msg.insert(1, caller)
                if _peek(msg[2]).get("op") in HEAVY_OPS:
                    heavy.append(msg)
                    heavy_bytes += _size(msg)
                else:
                    self.backend.send_multipart([idle.popleft(), *msg], copy=False)
                    busy += 1
            while heavy and len(idle) > (reserve if not self.stopping.is_set() else 0):
                msg = heavy.popleft()
                heavy_bytes -= _size(msg)
                self.backend.send_multipart([idle.popleft(), *msg], copy=False)
                busy += 1
            with self.state.lock:
                self.state.inflight = busy + len(heavy)
            self._probe_lock_holders()
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
                    self._send(msg[1:])
                self.backend.send_multipart([msg[0].bytes, STOP])
                stopped += 1
        for t in self.threads:
            t.join(10)

    def _caller_frame(self, header: Any) -> bytes | None:
        """Who sent this: the ZAP User-Id libzmq attached to the frame (CURVE),
        else (security off) the daemon's owner."""
        if self.zap is None:
            return self._owner_id
        user = header.get("User-Id")
        if not user:  # cannot happen with ZAP in place; never run a request as nobody in particular
            log.error("dropped a request without an authenticated User-Id")
            return None
        return user.encode()

    def _send(self, msg: list[Any]) -> bool:
        """Send to a client; False when its connection is gone (the reply
        is dropped, as a ROUTER without ROUTER_MANDATORY would)."""
        try:
            self.frontend.send_multipart(msg, copy=False)
            return True
        except zmq.ZMQError as exc:
            if exc.errno != errno.EHOSTUNREACH:
                raise
            return False

    def _probe_lock_holders(self) -> None:
        """Drop the locks of every connection that no longer exists. The
        probe is a reply with id 0, which clients ignore."""
        now = time.monotonic()
        if now < self._next_probe:
            return
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

    def _answer_peer(self, msg: list[Any]) -> None:
        """Another daemon asks for a record (a permission check, daemon.peer):
        answered here, at once, so daemons waiting on each other never
        deadlock their workers. A peer may do nothing else."""
        header = _peek(msg[1])
        req_id = header.get("id", 0)
        if not isinstance(req_id, int) or isinstance(req_id, bool) or not 0 <= req_id < 2**64:
            req_id = 0
        args = header.get("args") if isinstance(header.get("args"), dict) else {}
        path = args.get("path")
        try:
            if header.get("op") != "stat" or len(msg) != 2:
                raise OSError(errno.EPERM, "a peer daemon may only look up records")
            protocol.check_path(path)
            rec = self.state.meta.get(path)
            if rec is None:
                raise OSError(errno.ENOENT, f"no such file or directory: {path}")
            reply = protocol.encode_reply(req_id, {"stat": rec}, [])
        except protocol.ProtocolError as exc:
            reply = protocol.encode_error(req_id, exc.errno, exc.message)
        except OSError as exc:
            reply = protocol.encode_error(req_id, exc.errno or errno.EIO, exc.strerror or str(exc))
        self._send([msg[0], *reply])
        self.state.count("peer_stat", True)

    def _refuse(self, msg: list[Any]) -> None:
        req_id = _peek(msg[1]).get("id", 0)
        if not isinstance(req_id, int) or isinstance(req_id, bool) or not 0 <= req_id < 2**64:
            req_id = 0
        reply = protocol.encode_error(req_id, errno.ESHUTDOWN, "daemon is shutting down")
        self._send([msg[0], *reply])
        self.state.count("refused", False)

    def stop(self) -> None:
        self.stopping.set()

    def close(self) -> None:
        # The frontend keeps its linger (replies already queued get out);
        # everything else, e.g. a worker that never started, closes at once.
        self.frontend.close()
        if self.zap is not None:
            self.zap.stop()
        self.ctx.destroy(linger=0)
