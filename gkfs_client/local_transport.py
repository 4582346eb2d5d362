"""A Transport that reaches local members over the local stream, others over ZeroMQ.

docs/protocol.md 1.1: a client of the cluster's owner talks to a member on
its own host and in its own network namespace over an abstract UNIX stream
socket (``local_stream.local_name``); every other member, and every member
whose stream cannot be used, goes over a wrapped ``ZmqTransport``. The RPC
layer does not know which path a message took: request ids, timeouts and
resends on a restart stay in ``rpc``.

Why the details are as they are:

* Streams are non-blocking and written and read with direct system calls
  (``send``/``sendmsg``/``recv_into`` on a socket whose timeout is 0). A
  Python socket with a timeout polls before every send and receive (two
  system calls each); a blocking one with SO_RCVTIMEO restarts its whole
  wait after every signal (a program with a periodic timer would wait
  forever for a stopped daemon). Waits are ``select.poll`` /
  ``zmq_poll``, which count the time already waited across signals.
* Sends never wait: what the kernel does not take waits in the stream's
  queue and is written while the caller waits for replies (a DEALER's
  queue does the same), so a call to a stopped daemon ends at the Rpc
  layer's timeout, as over TCP.
* A message either goes into the stream whole or is resent over ZeroMQ: a
  daemon only runs a request whose last byte it read, and a stream that
  broke in the middle of a message is closed, so the partial copy can
  never run and the resent one runs once. Requests wholly written to a
  stream that then broke are lost, as in a daemon that crashed (1.1).
* The ZeroMQ socket of a member that uses its stream is not connected (no
  TCP connection and CURVE handshake the client would not use) until the
  member first has to go over TCP; from then on it stays connected, so
  replies to requests sent over it still arrive after the stream is back.
* Each process has its own streams: a forked child closes its copies of the
  parent's at once (``os.register_at_fork``). Two processes on one stream
  would interleave their bytes, and a copy left open would keep the
  parent's connection, and the locks bound to it (1.1 Lifetime), alive
  after the parent closed it.
"""
from __future__ import annotations

import os
import select
import socket
import weakref
from collections import deque
from time import monotonic
from typing import Sequence

import zmq

from gkfs_client import local_stream, security
from gkfs_client.transport import ZmqTransport

# How often a member on TCP gets another try of its stream (spec: at most once a second).
RETRY_INTERVAL_S = 1.0
# ... and a member whose name another user holds: that does not change while
# the member runs (it binds its name at start-up only), and each try costs
# the other side an accept (and the daemon of another user a log line).
FOREIGN_RETRY_INTERVAL_S = 60.0
# Replies come from a daemon of our own uid (checked with SO_PEERCRED); the
# daemon's own max_frame_size bounds them, and the client does not know it
# (it is the daemon's config): limit only what the u32 lengths can say.
_REPLY_LIMIT = 2**32 - 1
# Asked of the kernel (capped by net.core.wmem_max): a 1-64 MiB write then
# takes a few large writes into the stream instead of one per ~200 KiB.
SEND_BUFFER = 4 * 1024 * 1024
_POLLIN = select.POLLIN
_POLLOUT = select.POLLOUT
# zmq_poll's own event bits (not poll(2)'s: its POLLOUT is 2, its POLLERR 4)
_ZMQ_POLLIN = int(zmq.POLLIN)
_ZMQ_POLLOUT = int(zmq.POLLOUT)
_NOSIGNAL = socket.MSG_NOSIGNAL  # EPIPE, never SIGPIPE, for a daemon that died


class _Broken(Exception):
    """The stream cannot be used any more (its peer closed, reset, or broke the framing)."""


class _Stream:
    """One connected local stream to one member.

    Writes never wait: what the kernel does not take at once waits in
    ``out`` (whole messages, the first maybe partly written) and goes out
    while the caller waits for replies, as a DEALER's queue would. So a
    call to a daemon that stopped reading ends at the call's timeout, like
    over TCP, and a request is never cut off by a send's own deadline."""

    __slots__ = ("sock", "fd", "decoder", "ready", "poll", "out")

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.fd = sock.fileno()
        self.decoder = local_stream.Decoder(max_frame=_REPLY_LIMIT, max_message=_REPLY_LIMIT)
        self.ready: deque[list] = deque()  # whole messages read, not yet handed out
        # (frames, the views of its bytes not yet written) per message waiting to go out
        self.out: deque[tuple[Sequence, list[memoryview]]] = deque()
        self.poll = select.poll()
        self.poll.register(self.fd, _POLLIN)

    def read(self) -> bool:
        """One non-blocking receive into the decoder; False if nothing was there."""
        try:
            n = self.sock.recv_into(self.decoder.buffer())
        except BlockingIOError:
            return False
        except OSError as exc:
            raise _Broken(str(exc)) from None
        if n == 0:
            raise _Broken("closed by the daemon")
        try:
            self.ready.extend(self.decoder.received(n))
        except local_stream.FramingError as exc:
            raise _Broken(str(exc)) from None
        return True

    def salvage(self) -> None:
        """Before closing a stream that broke: keep the whole replies already
        in the kernel's buffer (a daemon that answered and then died)."""
        try:
            while self.read():
                pass
        except _Broken:
            pass

    def queue(self, frames: Sequence, buffers: list) -> None:
        """Append a message to ``out`` and write what the kernel takes now."""
        if not self.out:
            self.poll.modify(self.fd, _POLLIN | _POLLOUT)
        self.out.append((frames, [memoryview(b).cast("B") for b in buffers]))
        self.flush()

    def flush(self) -> None:
        """Write queued messages until the kernel takes no more."""
        out = self.out
        while out:
            views = out[0][1]
            try:
                n = local_stream.send_some(self.sock, views, _NOSIGNAL)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                raise _Broken(str(exc)) from None
            views[:] = local_stream.unsent(views, n)  # drop what went out
            if views:
                return  # the kernel is full: the rest when POLLOUT says so
            out.popleft()
        self.poll.modify(self.fd, _POLLIN)

    def unsent(self) -> list[Sequence]:
        """The messages not wholly written (none of them can have run)."""
        frames = [f for f, _ in self.out]
        self.out.clear()
        return frames

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class ForeignListener(Exception):
    """The name's listener runs as another user (its uid is given)."""


def connect_local(name: bytes) -> socket.socket | None:
    """A non-blocking stream connected to the listener ``name`` when that
    listener runs as our effective uid; None when there is none (or its
    backlog is full). ForeignListener, having sent nothing and closed the
    connection, when another user's process holds the name."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
    try:
        # Non-blocking: a listener whose backlog is full (a stopped daemon)
        # fails at once instead of holding the call.
        sock.connect(name)
        uid = local_stream.peer_credentials(sock)[1]
        if uid != os.geteuid():
            raise ForeignListener(uid)  # a name taken by another user: never talked to
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        except OSError:
            pass
    except OSError:
        sock.close()
        return None
    except ForeignListener:
        sock.close()
        raise
    return sock


# Live transports, for the fork handler (weak: a transport's life is its owner's).
_LIVE: "weakref.WeakSet[LocalFirstTransport]" = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for t in list(_LIVE):
        t._drop_streams_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class LocalFirstTransport:
    """The local stream to each member that has one, ZeroMQ otherwise.

    ``cluster_uuid`` and the member ids (slot indexes) name the streams;
    ``key``: the ZeroMQ client key (None: security off). Sends never wait
    (see _Stream), so a call's only wait is the Rpc layer's receive."""

    def __init__(self, addresses: Sequence[str], cluster_uuid: str, *,
                 key: security.ClientKey | None = None, context: zmq.Context | None = None):
        self.addresses = list(addresses)
        self._uuid = cluster_uuid
        n = len(self.addresses)
        # Every ZeroMQ socket starts unconnected: connected on a member's first TCP send.
        self._zmq = ZmqTransport([""] * n, context=context, key=key)
        self._on_tcp = [False] * n  # that member's ZeroMQ socket is connected
        self._streams: list[_Stream | None] = [None] * n
        self._retry_at = [0.0] * n  # when that member's stream may be tried (again)
        # Whole replies read from streams closed since (handed out next)
        self._orphans: deque[tuple[int, list]] = deque()
        self._pid = os.getpid()
        _LIVE.add(self)

    # ----------------------------------------------------------- streams

    def uses_stream(self, target: int) -> bool:
        """Whether messages to ``target`` go over its local stream now."""
        return self._streams[target] is not None

    def stream_socket(self, target: int) -> socket.socket | None:
        """The connected stream to ``target`` (None: it goes over TCP)."""
        st = self._streams[target]
        return st.sock if st is not None else None

    def _open_stream(self, target: int) -> _Stream | None:
        address = self.addresses[target]
        try:
            sock = connect_local(local_stream.local_name(self._uuid, target, address)) if address else None
        except ForeignListener:
            # Another user's name (a daemon run by someone else with
            # security off, or a squatter): that lasts, as the member does
            # not bind again while it runs; looked at again only seldom.
            self._retry_at[target] = monotonic() + FOREIGN_RETRY_INTERVAL_S
            return None
        if sock is None:
            self._retry_at[target] = monotonic() + RETRY_INTERVAL_S
            return None
        st = self._streams[target] = _Stream(sock)
        return st

    def _drop_stream(self, target: int) -> None:
        """Close ``target``'s broken stream; it goes over TCP until the next
        retry. Whole replies it already holds are handed out by the next
        receive; requests not wholly written go over TCP (the daemon never
        had all of one, so none of them ran)."""
        st = self._streams[target]
        if st is None:
            return
        self._streams[target] = None
        self._retry_at[target] = monotonic() + RETRY_INTERVAL_S
        st.salvage()
        if st.ready:
            self._orphans.extend((target, m) for m in st.ready)
            st.ready.clear()
        st.close()
        unsent = st.unsent()
        if unsent:
            self._tcp(target)
            for frames in unsent:
                self._zmq.send(target, frames)

    def _drop_streams_after_fork(self) -> None:
        if os.getpid() == self._pid:
            return
        # Only this process's copies of the descriptors: the parent's
        # connections stay as they are. Nothing read here is ours.
        for i, st in enumerate(self._streams):
            if st is not None:
                st.close()
                self._streams[i] = None

    # ------------------------------------------------------------- sends

    def _tcp(self, target: int) -> None:
        if not self._on_tcp[target]:
            self._zmq.retarget(target, self.addresses[target])
            self._on_tcp[target] = True

    def send(self, target: int, frames: Sequence[bytes | memoryview]) -> None:
        st = self._streams[target]
        if st is None and self._retry_at[target] <= monotonic():
            st = self._open_stream(target)
        if st is None:
            self._tcp(target)
            self._zmq.send(target, frames)
            return
        try:
            f = frames[0]
            if not st.out and len(frames) == 1 and type(f) is bytes and len(f) <= 4096:
                # A header-only request (nearly every call): one buffer, one system call.
                buf = local_stream.encode_lone(f)
                try:
                    n = st.sock.send(buf, _NOSIGNAL)
                except BlockingIOError:
                    n = 0
                except OSError:  # (EPIPE: the process at the other end died)
                    st.out.append((frames, []))  # unsent: goes over TCP with the rest
                    raise _Broken from None
                if n != len(buf):
                    st.queue(frames, [memoryview(buf)[n:]])
            else:
                st.queue(frames, local_stream.encode(frames))
        except _Broken:
            self._drop_stream(target)  # this message too goes over TCP, whole

    # ---------------------------------------------------------- receives

    def _serve(self, target: int, st: _Stream, writable: bool, readable: bool) -> None:
        """Act on what a poll said of ``target``'s stream (``readable``: data,
        or an end or error, which the read finds)."""
        try:
            if writable:
                st.flush()
            if readable:
                st.read()
        except _Broken:
            self._drop_stream(target)

    def receive(self, timeout_ms: int) -> list[tuple[int, list]]:
        out: list[tuple[int, list]] = []
        items: list = []
        for target, st in enumerate(self._streams):
            if st is not None:
                if st.ready:
                    out.extend((target, m) for m in st.ready)
                    st.ready.clear()
                items.append((st.fd, _ZMQ_POLLIN | _ZMQ_POLLOUT if st.out else _ZMQ_POLLIN))
        for target, on in enumerate(self._on_tcp):
            if on:
                items.append((self._zmq.socket(target), _ZMQ_POLLIN))
        if self._orphans:
            out.extend(self._orphans)
            self._orphans.clear()
        if not items:
            return out
        # Local streams and ZeroMQ sockets in one wait (zmq_poll takes plain
        # descriptors too); pyzmq resumes it after a signal with the time left.
        zmq_ready = False
        for what, events in zmq.zmq_poll(items, 0 if out or timeout_ms <= 0 else timeout_ms):
            if type(what) is not int:
                zmq_ready = True
                continue
            target = self._target_of_fd(what)
            if target is not None:
                st = self._streams[target]
                self._serve(target, st, bool(events & _ZMQ_POLLOUT), bool(events & ~_ZMQ_POLLOUT))
                out.extend((target, m) for m in st.ready)
                st.ready.clear()
        if zmq_ready:
            out.extend(self._zmq.receive(0))
        if self._orphans:
            out.extend(self._orphans)
            self._orphans.clear()
        return out

    def _target_of_fd(self, fd: int) -> int | None:
        for target, st in enumerate(self._streams):
            if st is not None and st.fd == fd:
                return target
        return None

    def receive_from(self, target: int, timeout_ms: int) -> list | None:
        st = self._streams[target]
        if st is None:
            for i, (t, m) in enumerate(self._orphans):
                if t == target:
                    del self._orphans[i]
                    return m
            return self._zmq.receive_from(target, timeout_ms)
        ready = st.ready
        if ready:
            return ready.popleft()
        # The hot path of every call: one poll, one receive, one message.
        wait = timeout_ms if timeout_ms > 0 else 0
        deadline = monotonic() + wait / 1000
        while True:
            polled = st.poll.poll(wait)
            if not polled:
                return None
            events = polled[0][1]
            if events == _POLLIN:
                try:
                    st.read()
                except _Broken:
                    self._drop_stream(target)
            else:  # room for a queued request, or the end of the stream
                self._serve(target, st, bool(events & _POLLOUT), bool(events & ~_POLLOUT))
            if ready:
                return ready.popleft()
            if self._streams[target] is not st:
                # It broke: what was not wholly written went over TCP, and
                # the caller's next receive waits for both paths.
                return None
            # Part of a large reply, or a request still going out: on the
            # same clock (a stream that stays writable must not hold the
            # caller past it either).
            wait = int((deadline - monotonic()) * 1000)
            if wait <= 0:
                return None

    # ------------------------------------------------------ reset, close

    def _forget(self, target: int) -> None:
        """Close ``target``'s stream with everything queued for and from it."""
        st = self._streams[target]
        if st is not None:
            self._streams[target] = None
            st.close()
        if self._orphans:
            self._orphans = deque((t, m) for t, m in self._orphans if t != target)

    def reset(self, target: int) -> None:
        # After a timeout: what is queued for or from the member is stale.
        self._forget(target)
        if self._on_tcp[target]:
            self._zmq.reset(target)
        self._retry_at[target] = 0.0  # its stream again at the next send

    def retarget(self, target: int, address: str) -> None:
        # The member moved: its stream has another name now.
        self.addresses[target] = address
        self._forget(target)
        if self._on_tcp[target]:
            self._zmq.retarget(target, address)
        self._retry_at[target] = 0.0

    def close(self) -> None:
        for i, st in enumerate(self._streams):
            if st is not None:
                st.close()
                self._streams[i] = None
        self._orphans.clear()
        self._zmq.close()
        _LIVE.discard(self)
