"""The local stream's framing (gkfs_client.local_stream): pure encode/decode.

Every message survives any split of the byte stream into receives, small
ones come out as bytes, big ones as views of their own buffer, and every
limit is enforced before memory is spent on it."""
from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings, strategies as hs

from gkfs_client import local_stream as ls
from gkfs_client import protocol


def _stream(messages):
    return b"".join(b"".join(bytes(b) for b in ls.encode(m)) for m in messages)


def _feed(dec: ls.Decoder, data: bytes, cuts) -> list:
    """Deliver ``data`` through dec.buffer() in pieces no longer than each cut."""
    out, pos, i = [], 0, 0
    while pos < len(data):
        view = dec.buffer()
        assert len(view) > 0
        n = min(len(view), cuts[i % len(cuts)], len(data) - pos)
        view[:n] = data[pos:pos + n]
        pos += n
        i += 1
        out.extend(dec.received(n))
    return out


# big frames from a small seed (hypothesis draws few bytes), crossing SMALL_BUFFER
big_st = hs.tuples(hs.binary(min_size=1, max_size=8), hs.integers(60_000, 70_000)).map(
    lambda t: (t[0] * (t[1] // len(t[0]) + 1))[:t[1]])
frames_st = hs.lists(hs.one_of(hs.binary(max_size=300), big_st), min_size=1, max_size=5)


@settings(max_examples=150, deadline=None)
@given(messages=hs.lists(frames_st, min_size=1, max_size=6),
       cuts=hs.lists(hs.integers(1, 200_000), min_size=1, max_size=8))
def test_any_split_gives_back_the_messages(messages, cuts):
    dec = ls.Decoder()
    got = _feed(dec, _stream(messages), cuts)
    assert [[bytes(f) for f in m] for m in got] == messages
    assert dec.pending() == 0


def test_small_message_is_bytes_big_is_a_view_of_its_own_buffer():
    dec = ls.Decoder()
    small = [b"h" * 100]
    big = [b"H" * 50, b"d" * (ls.SMALL_BUFFER + 10)]
    got = _feed(dec, _stream([small, big, small]), [1 << 20])
    assert got[0] == small and got[2] == small
    assert all(type(f) is bytes for f in got[0])
    assert [bytes(f) for f in got[1]] == big
    assert all(isinstance(f, memoryview) for f in got[1])
    # the big message's frames share one buffer the decoder no longer uses
    assert got[1][0].obj is got[1][1].obj
    assert got[1][0].obj is not dec.buffer().obj


def test_lone_frame_encodes_as_one_buffer():
    assert len(ls.encode([b"x" * 40])) == 1
    assert ls.encode([b"ab"])[0] == struct.pack("<II", 1, 2) + b"ab"


@pytest.mark.parametrize("nframes", [0, protocol.MAX_FRAMES + 1, 2**32 - 1])
def test_frame_count_out_of_range_is_refused_at_once(nframes):
    dec = ls.Decoder()
    view = dec.buffer()
    view[:4] = struct.pack("<I", nframes)
    with pytest.raises(ls.FramingError, match="frames"):
        dec.received(4)


def test_oversized_frame_is_refused_before_its_bytes_arrive():
    dec = ls.Decoder(max_frame=1000, max_message=5000)
    view = dec.buffer()
    view[:8] = struct.pack("<II", 1, 1001)
    with pytest.raises(ls.FramingError, match="frame of 1001"):
        dec.received(8)


def test_oversized_message_is_refused_before_its_bytes_arrive():
    dec = ls.Decoder(max_frame=1000, max_message=1500)
    prefix = struct.pack("<III", 2, 1000, 1000)
    view = dec.buffer()
    view[:len(prefix)] = prefix
    with pytest.raises(ls.FramingError, match="message of 2000"):
        dec.received(len(prefix))


def test_largest_frame_count_fits_the_buffer():
    msg = [b"h"] + [b""] * (protocol.MAX_FRAMES - 1)
    got = _feed(ls.Decoder(), _stream([msg, [b"next"]]), [7])
    assert got == [msg, [b"next"]]


def test_names_differ_by_cluster_member_and_address():
    a = ls.local_name("c1", 0, "tcp://10.0.0.1:4000")
    assert a.startswith(b"\0gkfs-local/c1/") and len(a) == 31
    # a real uuid and the longest address still give 65 bytes (sun_path holds 108)
    assert len(ls.local_name("9f1c2a4e-7b3d-4e8f-a1b2-c3d4e5f60718", 65535, "ipc:///" + "x" * 4000)) == 65
    assert a == ls.local_name("c1", 0, "tcp://10.0.0.1:4000")
    assert len({a, ls.local_name("c2", 0, "tcp://10.0.0.1:4000"), ls.local_name("c1", 1, "tcp://10.0.0.1:4000"),
                ls.local_name("c1", 0, "tcp://10.0.0.1:4001")}) == 4


def test_decoder_refuses_a_frame_limit_its_buffer_cannot_hold():
    with pytest.raises(ValueError):
        ls.Decoder(max_frames=protocol.MAX_FRAMES + 1)


def test_shared_vectors():
    """tests/vectors/local_stream.tsv, which the C client checks too."""
    from pathlib import Path
    rows = [ln.split("\t") for ln in (Path(__file__).parents[1] / "vectors" / "local_stream.tsv").read_text()
            .splitlines() if ln and not ln.startswith("#")]
    names = [r for r in rows if r[0] == "name"]
    frames = [r for r in rows if r[0] == "frame"]
    assert len(names) == 40 and len(frames) == 6
    for _, uuid, member, addr, want in names:
        assert ls.local_name(uuid, int(member), bytes.fromhex(addr).decode()).hex() == want
    for _, hexframes, want in frames:
        msg = [b"" if h == "-" else bytes.fromhex(h) for h in hexframes.split(",")]
        assert b"".join(bytes(b) for b in ls.encode(msg)).hex() == want
        assert _feed(ls.Decoder(), bytes.fromhex(want), [3]) == [msg]
