"""Regenerate local_stream.tsv: python3 tests/vectors/make_local_stream_vectors.py

The vectors pin gkfs_client.local_stream (docs/protocol.md section 1.1):
the listener's abstract name and the framing of a message. Every
implementation (Python, C) checks itself against the file; regenerate only
when the rule deliberately changes (a protocol version bump).

Lines (tab-separated, hex for bytes):
  name   <cluster uuid>  <member id>  <address utf-8 hex>  <name hex>
  frame  <frames hex, comma-separated ("-" for an empty frame)>  <encoded message hex>
"""
from pathlib import Path

from gkfs_client import local_stream

UUIDS = ["00000000-0000-0000-0000-000000000000", "9f1c2a4e-7b3d-4e8f-a1b2-c3d4e5f60718"]
MEMBERS = [0, 1, 7, 65535]
ADDRESSES = ["tcp://127.0.0.1:5555", "tcp://10.200.3.1:40123", "tcp://[fe80::1%eth0]:9000",
             "ipc:///tmp/gkfs-0/d.sock", "tcp://ünïcödé.example:1"]
FRAMES = [[b""], [b"x"], [b"\x84\xa1v\x01\xa2op\xa4stat"], [b"h", b""], [b"head", b"\x00" * 5, b"\xff" * 3],
          [b"a" * 300]]


def lines():
    for u in UUIDS:
        for m in MEMBERS:
            for a in ADDRESSES:
                yield f"name\t{u}\t{m}\t{a.encode().hex()}\t{local_stream.local_name(u, m, a).hex()}"
    for frames in FRAMES:
        enc = b"".join(bytes(b) for b in local_stream.encode(frames))
        yield "frame\t" + ",".join(f.hex() or "-" for f in frames) + f"\t{enc.hex()}"


if __name__ == "__main__":
    out = Path(__file__).with_name("local_stream.tsv")
    out.write_text("# gkfs local stream vectors (docs/protocol.md 1.1); see make_local_stream_vectors.py\n"
                   + "\n".join(lines()) + "\n")
