"""ZAP handler: which client keys may connect, and whom each stands for.

libzmq asks the handler bound at inproc://zeromq.zap.01 (in the daemon's
own context) about every CURVE handshake before the connection carries a
single request. We answer 200 with User-Id "uid:gid:groups" for a public
key listed in the cluster's registry, 400 otherwise. The registry is
re-read whenever its file changes (stat per handshake, cheap: handshakes
happen once per connection), so ``gkfs-ctl key revoke`` refuses the next
connection of that key without restarting anything.
"""
from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import zmq
from zmq.utils import z85

from gkfs_client import security

log = logging.getLogger("gkfs_daemon.auth")
ZAP_ENDPOINT = "inproc://zeromq.zap.01"


class KeyRegistry:
    def __init__(self, keys_dir: Path):
        self.path = keys_dir / security.REGISTRY
        self.keys_dir = keys_dir
        self._sig: tuple | None = None
        self._by_key: dict[bytes, security.RegistryEntry] = {}

    def lookup(self, public_z85: bytes) -> security.RegistryEntry | None:
        try:
            s = os.stat(self.path)
            sig = (s.st_ino, s.st_mtime_ns, s.st_size)
            if sig != self._sig:
                security.check_safe(self.path, what="gkfs key registry", private=True, st_result=s)
                self._by_key = {e.public: e for e in security.read_registry(self.keys_dir)}
                self._sig = sig
        except (OSError, security.SecurityError, ValueError) as exc:
            # A registry that cannot be read safely admits nobody.
            log.error("key registry %s unusable, refusing every client: %s", self.path, exc)
            self._by_key, self._sig = {}, None
        return self._by_key.get(public_z85)


PEER_USER_ID = b"peer"


class ZapHandler:
    """``peer_public``: the daemons' own public key; a connection made with
    the daemons' key pair is another daemon of the cluster (User-Id "peer",
    which may only look up records: server.Server._answer_peer)."""

    def __init__(self, ctx: zmq.Context, keys_dir: Path, peer_public: bytes):
        self.registry = KeyRegistry(keys_dir)
        self.peer_public = peer_public
        self.sock = ctx.socket(zmq.ROUTER)
        self.sock.linger = 0
        self.sock.bind(ZAP_ENDPOINT)  # before the frontend binds: no handshake escapes ZAP
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="zap", daemon=True)
        self.refused = 0

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        poller = zmq.Poller()
        poller.register(self.sock, zmq.POLLIN)
        while not self._stop.is_set():
            if not poller.poll(100):
                continue
            try:
                msg = self.sock.recv_multipart()
            except zmq.ZMQError:
                return
            self._answer(msg)

    def _answer(self, msg: list[bytes]) -> None:
        # [envelope..., b"", version, request_id, domain, address, identity, mechanism, credentials...]
        try:
            i = msg.index(b"")
        except ValueError:
            return
        envelope, body = msg[:i + 1], msg[i + 1:]
        if len(body) < 6:
            return
        version, request_id, _domain, address, _identity, mechanism = body[:6]
        creds = body[6:]
        status, text, user = b"400", b"unknown client key", b""
        if mechanism == b"CURVE" and creds and len(creds[0]) == 32:
            public = z85.encode(creds[0])
            entry = None if public == self.peer_public else self.registry.lookup(public)
            if public == self.peer_public:
                status, text, user = b"200", b"OK", PEER_USER_ID
            elif entry is not None:
                status, text, user = b"200", b"OK", entry.identity.user_id().encode()
                log.debug("client key %s (%s) from %s accepted", entry.name, entry.identity.user_id(),
                          address.decode(errors="replace"))
        else:
            text = b"CURVE required"
        if status != b"200":
            self.refused += 1
            log.warning("refused a connection from %s: %s", address.decode(errors="replace"), text.decode())
        self.sock.send_multipart(envelope + [version, request_id, status, text, user, b""])

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(2)
        self.sock.close(0)
