"""Byte transport between one client and N daemons.

The client never talks to sockets directly: it hands a ``Transport`` lists of
frames addressed to a daemon index and collects whatever replies arrive.
Keeping this interface this small is deliberate: a second transport (for
example Mercury, as GekkoFS uses) only has to implement these five methods,
while request ids, encoding and timeouts stay in ``gkfs_client.rpc``.
"""
from __future__ import annotations

import os
import threading
from typing import Protocol, Sequence

import zmq

from gkfs_client import security

_EVENTS = int(zmq.EVENTS)  # plain ints: the enum's __and__ costs a few us per call
_POLLIN = int(zmq.POLLIN)
_NOBLOCK = int(zmq.NOBLOCK)
_zmq_poll = zmq.zmq_poll
# pyzmq's Socket.send is a Python wrapper (routing_id and group handling)
# around its Cython base class's send: the base's costs ~0.2 us less.
_send_frame = zmq.backend.Socket.send


_BATCH_OK: bool | None = None


def _batch_allowed() -> bool:
    """Whether a thread of this process may switch itself to SCHED_BATCH
    (tried once, on a throwaway thread). libzmq aborts the process when the
    policy it is given cannot be set, so it is only given one that can:
    never from a real-time thread (its priority is invalid for SCHED_BATCH),
    never where sched_setscheduler is refused (a seccomp filter)."""
    global _BATCH_OK
    if _BATCH_OK is None:
        ok = [False]

        def probe() -> None:
            try:
                if os.sched_getscheduler(0) == os.SCHED_OTHER:
                    os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
                    ok[0] = os.sched_getscheduler(0) == os.SCHED_BATCH
            except (OSError, AttributeError):
                pass

        t = threading.Thread(target=probe, name="gkfs-sched-probe", daemon=True)
        t.start()
        t.join()
        _BATCH_OK = ok[0]
    return _BATCH_OK


def batch_io_threads(ctx: zmq.Context) -> bool:
    """Run ``ctx``'s libzmq I/O threads under SCHED_BATCH, if they have not
    started yet (the option is read when they start: at the first socket).

    Every message crosses an I/O thread: a send wakes it. A normal thread
    woken preempts the sender at once when it lands on the sender's core,
    so a request or reply cost two more context switches (there and back)
    before the sender reached its wait (measured: ~0.6 involuntary switches
    per stat in each of the client's and the daemon's Python threads, 4
    clients on one daemon, 2 cores). A SCHED_BATCH thread has the same
    share of the CPU but does not preempt on wake-up: it runs when the
    sender waits (right after its send, here) or on an idle core. The
    creating thread's policy must be SCHED_OTHER (else False, nothing set)."""
    policy = getattr(zmq, "THREAD_SCHED_POLICY", None)
    if policy is None or not hasattr(os, "SCHED_BATCH") or not _batch_allowed():
        return False
    try:
        if os.sched_getscheduler(0) != os.SCHED_OTHER:
            return False
        ctx.set(policy, os.SCHED_BATCH)
    except (OSError, zmq.ZMQError):
        return False
    return True


class Transport(Protocol):
    """What the RPC layer needs from a transport."""

    addresses: Sequence[str]

    def send(self, target: int, frames: Sequence[bytes | memoryview]) -> None:
        """Queue one multipart message for daemon ``target`` (never blocks on the peer)."""

    def receive(self, timeout_ms: int) -> list[tuple[int, list[memoryview]]]:
        """Wait at most ``timeout_ms`` for replies; return (daemon index, frames) pairs."""

    def receive_from(self, target: int, timeout_ms: int) -> list[memoryview] | None:
        """Wait at most ``timeout_ms`` for the next message from ``target``
        alone; None if none came. (The one-request case: messages queued
        from other daemons stay queued for the next ``receive``.)"""

    def reset(self, target: int) -> None:
        """Forget everything queued for / from ``target`` (after a timeout)."""

    def retarget(self, target: int, address: str) -> None:
        """Point ``target`` at a new address (a member that restarted), dropping the old queue."""

    def close(self) -> None:
        ...


class ZmqTransport:
    """One DEALER socket per daemon, all driven from one poller.

    DEALER (not REQ) because REQ allows one outstanding request per socket;
    with DEALER we can pipeline and send to every daemon before waiting for
    any of them, which is what makes multi-daemon requests parallel.
    """

    def __init__(self, addresses: Sequence[str], context: zmq.Context | None = None,
                 key: security.ClientKey | None = None):
        """``key``: connect over CURVE with this client key (None: plain, security off)."""
        self.addresses = list(addresses)
        self._key = key
        if context is None:
            context = zmq.Context.instance()
            # Our own context (the process's shared one): its I/O thread
            # need not preempt the thread that sends (batch_io_threads).
            # A context passed in is the caller's to configure.
            batch_io_threads(context)
        self._ctx = context
        self._sockets: list[zmq.Socket] = []
        self._poller = zmq.Poller()
        self._index_of: dict[zmq.Socket, int] = {}
        for i in range(len(self.addresses)):
            self._sockets.append(self._open(i))

    def _open(self, target: int) -> zmq.Socket:
        sock = self._ctx.socket(zmq.DEALER)
        # LINGER 0: closing a client must never hang on a dead daemon.
        sock.setsockopt(zmq.LINGER, 0)
        # Reconnect quickly when a daemon restarts during a test or a job.
        sock.setsockopt(zmq.RECONNECT_IVL, 50)
        sock.setsockopt(zmq.RECONNECT_IVL_MAX, 1000)
        security.apply_client(sock, self._key)
        if self.addresses[target]:  # "" = a member with no entry: never sent to
            sock.connect(self.addresses[target])
        self._poller.register(sock, zmq.POLLIN)
        self._index_of[sock] = target
        return sock

    def socket(self, target: int) -> zmq.Socket:
        """``target``'s socket now (``reset`` replaces it), for a transport
        that waits on it together with descriptors of its own
        (local_transport.LocalFirstTransport)."""
        return self._sockets[target]

    def send(self, target: int, frames: Sequence[bytes | memoryview]) -> None:
        # copy=False: large data frames go to libzmq without a Python-side copy.
        # A header-only request, the common case: a single send, no list,
        # copied (a header is small, and pyzmq copies frames below 64 KiB
        # even with copy=False, after building a memoryview to see that).
        if len(frames) == 1:
            _send_frame(self._sockets[target], frames[0])
        else:
            self._sockets[target].send_multipart(frames, copy=False)

    def receive(self, timeout_ms: int) -> list[tuple[int, list[memoryview]]]:
        out: list[tuple[int, list[memoryview]]] = []
        for sock, _ev in self._poller.poll(timeout_ms if timeout_ms > 0 else 0):
            target = self._index_of[sock]
            # POLLIN: a whole message is queued (ZeroMQ delivers multipart
            # messages atomically). Then drain what else is queued, asking
            # ZMQ_EVENTS rather than receiving until zmq.Again is raised
            # (an exception on every call costs ~10 us). NOBLOCK all the
            # same: a receive here must never wait.
            while True:
                try:
                    msg = sock.recv_multipart(_NOBLOCK, copy=False)
                except zmq.Again:
                    break
                out.append((target, [f.buffer for f in msg]))
                if not sock.getsockopt(_EVENTS) & _POLLIN:
                    break
        return out

    def receive_from(self, target: int, timeout_ms: int) -> list[memoryview] | None:
        # One zmq_poll of this socket, then one frame: the common reply is
        # a single frame, and this is ~4 us cheaper per call than the
        # Poller over every socket + recv_multipart + ZMQ_EVENTS. Not a
        # blocking recv with RCVTIMEO: pyzmq restarts that wait with the
        # full timeout after every signal (EINTR), so a program with a
        # periodic timer signal would wait forever for a dead daemon, where
        # zmq_poll counts the time already waited.
        sock = self._sockets[target]
        if not _zmq_poll([(sock, _POLLIN)], timeout_ms if timeout_ms > 0 else 0):
            return None
        try:
            frame = sock.recv(_NOBLOCK, copy=False)
        except zmq.Again:  # POLLIN said a message was there; never wait here
            return None
        if not frame.more:
            return [frame.buffer]
        # the rest of a multipart message is there already (atomic delivery)
        return [frame.buffer, *[f.buffer for f in sock.recv_multipart(_NOBLOCK, copy=False)]]

    def reset(self, target: int) -> None:
        # A DEALER keeps messages for a peer that is down and delivers them
        # when it comes back; after a timeout they are stale, so drop the socket.
        old = self._sockets[target]
        self._poller.unregister(old)
        del self._index_of[old]
        old.close(linger=0)
        self._sockets[target] = self._open(target)

    def retarget(self, target: int, address: str) -> None:
        self.addresses[target] = address
        self.reset(target)

    def close(self) -> None:
        for sock in self._sockets:
            try:
                self._poller.unregister(sock)
            except KeyError:
                pass
            sock.close(linger=0)
        self._sockets = []
        self._index_of = {}
