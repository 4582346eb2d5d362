"""The daemon end of the local stream (docs/protocol.md 1.1).

One job: own the abstract UNIX stream socket and its connections, and turn
them into the same messages the ZeroMQ ROUTER gives the serving loop,
``[identity, header, data...]``, and replies back into bytes on the right
connection. What a request does, and the per-client backlog and drop rules
for replies, stay in daemon.server.

Everything is non-blocking and read by the serving thread itself (no I/O
thread: that is the point of the local stream). One epoll set holds the
listening socket (level-triggered) and the connections (edge-triggered for
input, so a connection the loop is not reading right now, because the
daemon's queues are full, does not keep the epoll fd, which the loop polls
beside the ZeroMQ FDs, ready; the loop remembers it in ``readable``
instead). EPOLLOUT is asked for only while a connection has a partial reply
pending: asked for always, every reply the client takes would wake the loop.

Identities: a connection is known to the serving loop (backlogs, dropped
clients, locks, holds and fences, the workers' replies) by a bytes routing
identity, as a ZeroMQ peer is. They must never collide with one a ZeroMQ
peer presents, and a ZeroMQ peer may present any identity: libzmq 4.3.5
takes a 300-byte Identity property from a hand-made ZMTP handshake (tried;
its 255-byte limit applies only to ZMQ_ROUTING_ID set on a libzmq socket),
so "longer than 255 bytes" is no namespace. Refusing ROUTER requests in
the local namespace would cost a check on every ZeroMQ request. Instead a
local identity carries a 128-bit secret drawn at start-up that never leaves
this process (not logged, not in any reply): a ZeroMQ peer cannot present
a live local identity without guessing it, and the ZeroMQ path checks
nothing. The counter after it makes identities unique for the daemon's
lifetime (never reused, so a late worker reply for a closed connection
finds nobody instead of another client).
"""
from __future__ import annotations

import collections
import errno
import logging
import os
import select
import socket
from typing import Any, Callable

from gkfs_client import local_stream

log = logging.getLogger("gkfs_daemon.local")

_EPOLLIN = select.EPOLLIN
_CONN_EVENTS = select.EPOLLIN | select.EPOLLRDHUP | select.EPOLLET
_CONN_EVENTS_OUT = _CONN_EVENTS | select.EPOLLOUT
_HANGUP = select.EPOLLHUP | select.EPOLLERR | select.EPOLLRDHUP
_SEND_FLAGS = socket.MSG_NOSIGNAL
_BACKLOG = 128  # listen(2) queue: connections come one per client process
class _Conn:
    __slots__ = ("sock", "fd", "ident", "pid", "decoder", "pending", "number")

    def __init__(self, sock: socket.socket, ident: bytes, pid: int, number: int, decoder: local_stream.Decoder):
        self.sock = sock
        self.fd = sock.fileno()
        self.ident = ident
        self.pid = pid
        self.number = number
        self.decoder = decoder
        # The unsent rest of one reply (memoryviews, in order), or None.
        self.pending: list[memoryview] | None = None


class LocalListener:
    """Bind ``name`` (abstract, leading NUL) or raise OSError (EADDRINUSE:
    someone holds the name). ``on_close(identity)`` runs when a connection
    is closed for any reason (the server releases its locks, holds,
    fences and backlog)."""

    def __init__(self, name: bytes, max_frame_size: int, on_close: Callable[[bytes], None]):
        self.name = name
        self.on_close = on_close
        self.max_frame = 2 * max_frame_size
        self.uid = os.geteuid()
        self.prefix = b"\0gkfs-local-conn\0" + os.urandom(16)
        self._counter = 0
        lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
        try:
            lsock.bind(name)
            lsock.listen(_BACKLOG)
        except OSError:
            lsock.close()
            raise
        self.lsock = lsock
        self.lfd = lsock.fileno()
        self.epoll = select.epoll()
        self.epoll.register(self.lfd, _EPOLLIN)
        self.conns: dict[bytes, _Conn] = {}
        self.by_fd: dict[int, _Conn] = {}
        # Connections that may have bytes to read (insertion-ordered: read
        # in turn, nobody starved).
        self.readable: dict[_Conn, None] = {}
        # Messages read but not yet handled, [identity, header, data...].
        self.inbox: collections.deque[list[Any]] = collections.deque()
        # Connections with a partial reply pending (a stopping daemon waits
        # for them as for its backlogs).
        self.unsent: set[_Conn] = set()

    def fileno(self) -> int:
        """The epoll fd: readable when a connection, a client connecting or
        a pending reply's socket has something for the loop."""
        return self.epoll.fileno()

    def is_local(self, ident: bytes) -> bool:
        return ident[:len(self.prefix)] == self.prefix

    # -- events ---------------------------------------------------------
    def poll(self) -> None:
        """Take the epoll events: accept clients, note readable connections,
        send pending replies whose socket has room again."""
        for fd, ev in self.epoll.poll(0):
            if fd == self.lfd:
                self._accept()
                continue
            conn = self.by_fd.get(fd)
            if conn is None:
                continue
            if ev & select.EPOLLOUT and conn.pending is not None:
                self._send_pending(conn)
            if ev & (_EPOLLIN | _HANGUP) and conn.ident in self.conns:
                # (a hang-up is found by the read: requests sent before it
                # are still read and answered)
                self.readable[conn] = None

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.lsock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # EMFILE and the like: the client will see its connect fail or hang
                log.warning("local stream: accept failed: %s", exc)
                return
            try:
                pid, uid, _gid = local_stream.peer_credentials(sock)
            except OSError:
                sock.close()
                continue
            if uid != self.uid:
                # Not the cluster's owner: closed before a byte is read (1.1).
                log.info("local stream: refused a connection from pid %d (uid %d, not the owner's %d)",
                         pid, uid, self.uid)
                sock.close()
                continue
            sock.setblocking(False)
            self._counter += 1
            ident = self.prefix + self._counter.to_bytes(8, "big")
            conn = _Conn(sock, ident, pid, self._counter,
                         local_stream.Decoder(max_frame=self.max_frame, max_message=self.max_frame))
            self.conns[ident] = conn
            self.by_fd[conn.fd] = conn
            self.epoll.register(conn.fd, _CONN_EVENTS)
            # Whatever it sent before the registration is read on the first turn.
            self.readable[conn] = None
            log.debug("local stream: connection %d from pid %d", conn.number, pid)

    # -- input ----------------------------------------------------------
    def read(self) -> None:
        """One receive on each readable connection; complete messages go to
        ``inbox``. A connection stays readable while a receive fills the
        whole buffer it was given (a stream socket returns less only when it
        has no more queued)."""
        inbox = self.inbox
        for conn in list(self.readable):
            decoder = conn.decoder
            view = decoder.buffer()
            want = len(view)
            try:
                n = conn.sock.recv_into(view)
            except (BlockingIOError, InterruptedError):
                del self.readable[conn]
                continue
            except OSError as exc:
                self.close(conn.ident, f"receive failed: {exc}")
                continue
            finally:
                del view
            if n == 0:
                self.close(conn.ident, None)
                continue
            if n < want:
                del self.readable[conn]
            try:
                msgs = decoder.received(n)
            except local_stream.FramingError as exc:
                log.info("local stream: closed connection %d of pid %d: %s", conn.number, conn.pid, exc)
                self.close(conn.ident, None)
                continue
            ident = conn.ident
            for frames in msgs:
                frames.insert(0, ident)
                inbox.append(frames)

    # -- output ---------------------------------------------------------
    def send(self, ident: bytes, frames: list[Any]) -> bool:
        """Send one reply without blocking. False: the connection still has
        a partial reply pending (the caller keeps this one in its backlog);
        True: sent, or the kernel took part and the rest waits here, or the
        connection is gone (nobody to answer)."""
        conn = self.conns.get(ident)
        if conn is None:
            return True
        if conn.pending is not None:
            return False
        bufs = local_stream.encode(frames)
        try:
            if len(bufs) == 1:  # a small reply: one buffer, nearly always taken whole
                n = conn.sock.send(bufs[0], _SEND_FLAGS)
                if n == len(bufs[0]):
                    return True
            else:
                n = local_stream.send_some(conn.sock, bufs, _SEND_FLAGS)
        except (BlockingIOError, InterruptedError):
            n = 0
        except OSError as exc:
            self.close(ident, None if exc.errno in (errno.EPIPE, errno.ECONNRESET) else f"send failed: {exc}")
            return True
        rest = local_stream.unsent(bufs, n)
        if rest:
            conn.pending = rest
            self.unsent.add(conn)
            self.epoll.modify(conn.fd, _CONN_EVENTS_OUT)
        return True

    def _send_pending(self, conn: _Conn) -> None:
        try:
            n = local_stream.send_some(conn.sock, conn.pending, _SEND_FLAGS)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self.close(conn.ident, None if exc.errno in (errno.EPIPE, errno.ECONNRESET) else f"send failed: {exc}")
            return
        rest = local_stream.unsent(conn.pending, n)
        if rest:
            conn.pending = rest
            return
        conn.pending = None
        self.unsent.discard(conn)
        self.epoll.modify(conn.fd, _CONN_EVENTS)

    # -- closing --------------------------------------------------------
    def close(self, ident: bytes, why: str | None) -> None:
        """Close one connection (``why``: logged at info level; None: an
        ordinary end) and tell the server, which releases what it held."""
        conn = self.conns.pop(ident, None)
        if conn is None:
            return
        self.by_fd.pop(conn.fd, None)
        self.readable.pop(conn, None)
        try:
            self.epoll.unregister(conn.fd)
        except OSError:
            pass
        conn.sock.close()
        conn.pending = None
        self.unsent.discard(conn)
        if why:
            log.info("local stream: closed connection %d of pid %d: %s", conn.number, conn.pid, why)
        else:
            log.debug("local stream: connection %d of pid %d closed", conn.number, conn.pid)
        self.on_close(ident)

    def close_all(self) -> None:
        for ident in list(self.conns):
            self.close(ident, None)
        self.epoll.close()
        self.lsock.close()
