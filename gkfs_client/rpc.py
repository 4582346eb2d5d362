"""Request/reply over a Transport: request ids, fan-out, timeouts, errors.

``Rpc.call_many`` is the only primitive the client uses: it sends every
request first (to any mix of daemons) and only then waits, matching replies
by request id, so N daemons cost one round trip, not N. A daemon that does
not answer within the timeout becomes OSError(ETIMEDOUT) naming it; replies
that arrive later for a forgotten request are recognised by id and dropped.
"""
from __future__ import annotations

import errno
import itertools
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

from gkfs_client import protocol
from gkfs_client.transport import Transport

DEFAULT_TIMEOUT_S = 10.0


@dataclass
class Call:
    target: int
    op: str
    args: dict[str, Any] = field(default_factory=dict)
    data: Sequence[Any] = ()


class Rpc:
    def __init__(self, transport: Transport, timeout_s: float = DEFAULT_TIMEOUT_S):
        self.transport = transport
        self.timeout_s = timeout_s
        self._ids = itertools.count(1)
        # Seconds from sending to each reply of the last exchange (None if
        # silent): per-daemon latency for `gkfs-ctl status`, at no extra cost.
        self.last_rtts: list[float | None] = []

    @property
    def addresses(self) -> Sequence[str]:
        return self.transport.addresses

    def call(self, target: int, op: str, args: dict[str, Any] | None = None,
             data: Sequence[Any] = (), *, check: bool = True) -> protocol.Reply:
        return self.call_many([Call(target, op, args or {}, data)], check=check)[0]

    def call_many(self, calls: Sequence[Call], *, check: bool = True,
                  timeout_s: float | None = None) -> list[protocol.Reply]:
        """Send all calls, then collect all replies (in the order of ``calls``).

        A daemon that stays silent raises TimeoutError (errno ETIMEDOUT)
        naming it. With ``check`` the first failed reply (in call order) is
        raised as OSError(status, message) once every reply is in, so no
        request is left outstanding behind an exception.
        """
        timeout = self.timeout_s if timeout_s is None else timeout_s
        replies = self._exchange(calls, timeout)
        silent = [i for i, r in enumerate(replies) if r is None]
        if silent:
            names = ", ".join(sorted({self.addresses[calls[i].target] for i in silent}))
            ops = "/".join(sorted({calls[i].op for i in silent}))
            raise TimeoutError(errno.ETIMEDOUT,
                               f"gkfs daemon(s) {names} did not answer {ops} within {timeout:g} s "
                               f"(down, or refusing this client's key)")
        if check:
            for c, r in zip(calls, replies):
                if r.status:
                    raise _error(c, r, self.addresses[c.target])
        return replies  # type: ignore[return-value]

    def call_each(self, calls: Sequence[Call], *, timeout_s: float | None = None
                  ) -> list[protocol.Reply | OSError]:
        """Like call_many, but one result per call: a Reply (any status) or
        the OSError for a daemon that did not answer. For status/ping, where
        a down daemon is an answer, not a failure of the whole command."""
        timeout = self.timeout_s if timeout_s is None else timeout_s
        out: list[protocol.Reply | OSError] = []
        for c, r in zip(calls, self._exchange(calls, timeout, tolerate_bad=True)):
            if r is None:
                r = TimeoutError(errno.ETIMEDOUT, f"gkfs daemon {self.addresses[c.target]} did not answer "
                                                  f"{c.op} within {timeout:g} s")
            out.append(r)
        return out

    def _exchange(self, calls: Sequence[Call], timeout: float, tolerate_bad: bool = False
                  ) -> list[protocol.Reply | OSError | None]:
        """Send everything, then wait; None marks a call whose daemon stayed silent."""
        pending: dict[int, int] = {}  # request id -> position in calls
        for pos, c in enumerate(calls):
            rid = next(self._ids)
            pending[rid] = pos
            self.transport.send(c.target, protocol.encode_request(c.op, c.args, c.data, req_id=rid))
        replies: list[protocol.Reply | OSError | None] = [None] * len(calls)
        rtts: list[float | None] = [None] * len(calls)
        self.last_rtts = rtts
        started = time.monotonic()
        deadline = started + timeout
        while pending:
            left_ms = int((deadline - time.monotonic()) * 1000)
            if left_ms <= 0:
                # Drop what is still queued for the silent daemons: after a
                # timeout those requests are stale and must not run later.
                for target in sorted({calls[pos].target for pos in pending.values()}):
                    self.transport.reset(target)
                break
            for target, frames in self.transport.receive(left_ms):
                try:
                    reply = protocol.decode_reply(frames)
                except protocol.ProtocolError as exc:
                    err = OSError(exc.errno, f"daemon {self.addresses[target]}: {exc.message}")
                    pos = pending.pop(exc.req_id, None)
                    if tolerate_bad and pos is not None:
                        replies[pos] = err
                        continue
                    raise err from None
                pos = pending.pop(reply.req_id, None)
                if pos is None:
                    continue  # late reply to a request we already gave up on
                if reply.status == errno.EAGAIN and time.monotonic() < deadline:
                    # a directory rename is moving this path (protocol 4.8): ask again
                    time.sleep(0.005)
                    rid = next(self._ids)
                    pending[rid] = pos
                    c = calls[pos]
                    self.transport.send(c.target, protocol.encode_request(c.op, c.args, c.data, req_id=rid))
                    continue
                replies[pos] = reply
                rtts[pos] = time.monotonic() - started
        return replies

    def close(self) -> None:
        self.transport.close()


def _error(call: Call, reply: protocol.Reply, address: str) -> OSError:
    what = call.args.get("path") or call.args.get("old") or call.args.get("data_key") or ""
    msg = reply.message or protocol.strerror(reply.status)
    # OSError(errno, ...) picks the subclass (FileNotFoundError, FileExistsError...).
    return OSError(reply.status, f"{call.op} {what}: {msg} (daemon {address})".replace("  ", " "))
