"""Which address a daemon listens on: by interface, by network, or a default.

On a cluster every daemon must publish an address the other nodes can
reach, so the listen spec may name the address indirectly and each node
resolves it to its own IPv4 address:

    tcp://10.87.0.5:*      that address (as before)
    tcp://eth0:*           the IPv4 address of interface eth0 on this node
    tcp://10.87.0.0/24:*   this node's address in that network
    tcp://auto:*           the default: the interface of the default route,
                           else the first up, non-loopback interface
    tcp://*:* / 0.0.0.0    bind every interface, publish the default address

The short forms ``eth0``, ``10.87.0.0/24``, ``auto`` (no scheme, no port)
mean port ``*``. The hosts file only ever gets a concrete address, never
0.0.0.0. Only IPv4 (the primary address of each interface) is looked at.
"""
from __future__ import annotations

import fcntl
import ipaddress
import socket
import struct
from dataclasses import dataclass

SIOCGIFFLAGS = 0x8913
SIOCGIFADDR = 0x8915
SIOCGIFNETMASK = 0x891B
IFF_UP = 0x1
IFF_LOOPBACK = 0x8
WILDCARDS = ("*", "0.0.0.0")


class ListenError(ValueError):
    """A listen spec that cannot be resolved on this node."""


@dataclass(frozen=True)
class Interface:
    name: str
    address: ipaddress.IPv4Address
    network: ipaddress.IPv4Network
    up: bool
    loopback: bool


def _ioctl(sock: socket.socket, request: int, name: str) -> bytes:
    return fcntl.ioctl(sock.fileno(), request, struct.pack("256s", name.encode()[:15]))


def interfaces() -> list[Interface]:
    """Interfaces of this network namespace that have an IPv4 address, by index."""
    out = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _, name in sorted(socket.if_nameindex()):
            try:
                addr = socket.inet_ntoa(_ioctl(s, SIOCGIFADDR, name)[20:24])
                mask = socket.inet_ntoa(_ioctl(s, SIOCGIFNETMASK, name)[20:24])
                flags = struct.unpack("H", _ioctl(s, SIOCGIFFLAGS, name)[16:18])[0]
            except OSError:  # no IPv4 address on it
                continue
            out.append(Interface(name, ipaddress.IPv4Address(addr),
                                 ipaddress.IPv4Network(f"{addr}/{mask}", strict=False),
                                 bool(flags & IFF_UP), bool(flags & IFF_LOOPBACK)))
    return out


def _default_route_interface() -> str | None:
    try:
        with open("/proc/net/route") as f:
            next(f)
            for line in f:
                fields = line.split()
                if len(fields) > 3 and fields[1] == "00000000" and int(fields[3], 16) & 0x1:
                    return fields[0]
    except (OSError, StopIteration, ValueError):
        pass
    return None


def default_address() -> str:
    """The address other nodes most likely reach this one at."""
    ifs = [i for i in interfaces() if i.up and not i.loopback]
    route = _default_route_interface()
    for i in ifs:
        if i.name == route:
            return str(i.address)
    if ifs:
        return str(ifs[0].address)
    raise ListenError("no up, non-loopback interface with an IPv4 address on this node; "
                      "name one with --listen tcp://IFACE:* or tcp://NETWORK/PREFIX:*")


def resolve_host(host: str) -> str:
    """An address, interface name, CIDR network or 'auto' -> this node's IPv4 address."""
    if host == "auto":
        return default_address()
    try:
        return str(ipaddress.IPv4Address(host))
    except ValueError:
        pass
    if "/" in host:
        try:
            net = ipaddress.IPv4Network(host, strict=False)
        except ValueError:
            raise ListenError(f"not an IPv4 network: {host!r}") from None
        found = [i for i in interfaces() if i.address in net]
        if not found:
            have = ", ".join(f"{i.name} {i.address}" for i in interfaces()) or "none"
            raise ListenError(f"no interface of this node ({socket.gethostname()}) has an address in "
                              f"{net} (addresses here: {have})")
        return str(found[0].address)
    for i in interfaces():
        if i.name == host:
            if not i.up:
                raise ListenError(f"interface {host} is down")
            return str(i.address)
    names = ", ".join(n for _, n in socket.if_nameindex())
    raise ListenError(f"{host!r} is neither an IPv4 address, a network (a.b.c.d/n), 'auto' nor an "
                      f"interface with an IPv4 address on this node (interfaces: {names})")


def resolve_listen(spec: str) -> tuple[str, str | None]:
    """Listen spec -> (endpoint to bind, address to publish or None = the bound one).

    The bind endpoint always has a concrete host (or the wildcard); the
    published host is never 0.0.0.0.
    """
    if spec.startswith("ipc://"):
        return spec, None
    if not spec.startswith("tcp://"):
        spec = f"tcp://{spec}:*"  # short form: eth0, 10.87.0.0/24, auto
    host, sep, port = spec[len("tcp://"):].rpartition(":")
    if not sep or not host:
        raise ListenError(f"listen must be tcp://HOST:PORT or ipc:///path, got {spec!r}")
    if port in ("", "0"):
        port = "*"
    if host in WILDCARDS:
        return f"tcp://0.0.0.0:{port}", default_address()
    return f"tcp://{resolve_host(host)}:{port}", None
