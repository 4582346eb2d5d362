"""The protocol module alone: round trips and rejection of bad input."""
import errno

import msgpack
import pytest
from hypothesis import given, settings, strategies as st

from gkfs_client import protocol as P

uints = st.integers(min_value=0, max_value=2**64 - 1)
names = st.text(st.characters(blacklist_characters="/\x00", blacklist_categories=("Cs",)), min_size=1,
                max_size=20).filter(lambda s: s not in (".", "..") and len(s.encode()) <= 255)
paths = st.lists(names, min_size=0, max_size=6).map(lambda parts: "/" + "/".join(parts))


@given(paths, uints, uints, st.booleans())
def test_request_round_trip(path, req_id, mode, excl):
    frames = P.encode_request("create", {"path": path, "mode": mode, "exclusive": excl}, req_id=req_id)
    req = P.decode_request(frames)
    assert (req.op, req.req_id, req.args, req.data) == ("create", req_id, {"path": path, "mode": mode,
                                                                           "exclusive": excl}, [])


@given(st.lists(st.binary(max_size=300), min_size=1, max_size=5), uints)
def test_write_chunks_round_trip(blobs, req_id):
    chunks = [[i, 0, len(b)] for i, b in enumerate(blobs)]
    frames = P.encode_request("write_chunks", {"data_key": "k", "chunk_size": 4096, "chunks": chunks},
                              blobs, req_id=req_id)
    req = P.decode_request(frames)
    assert [bytes(d) for d in req.data] == blobs
    assert req.args["chunks"] == chunks


@given(uints, st.integers(min_value=0, max_value=200), st.text(max_size=50),
       st.dictionaries(st.text(max_size=5), st.integers(-2**63, 2**64 - 1) | st.text() | st.booleans(), max_size=5),
       st.lists(st.binary(max_size=100), max_size=3))
def test_reply_round_trip(req_id, status, msg, result, data):
    reply = P.decode_reply(P.encode_reply(req_id, result, data, status=status, message=msg))
    assert (reply.req_id, reply.status, reply.message, reply.result, reply.data) == (req_id, status, msg,
                                                                                      result, data)
    assert reply.ok == (status == 0)


def test_raise_for_status_maps_errno():
    with pytest.raises(FileNotFoundError):
        P.decode_reply(P.encode_error(3, errno.ENOENT, "nope")).raise_for_status()


@settings(max_examples=300)
@given(st.binary(max_size=64))
def test_garbage_header_is_protocol_error(blob):
    try:
        P.decode_request([blob])
    except P.ProtocolError as exc:
        assert exc.errno > 0 and exc.message
    else:  # only a well-formed request may pass
        assert msgpack.unpackb(blob)["v"] == P.PROTOCOL_VERSION


def _raw(header) -> list[bytes]:
    return [msgpack.packb(header)]


@pytest.mark.parametrize("frames,code", [
    ([], errno.EBADMSG),
    ([b"\xc1"], errno.EBADMSG),
    ([b"\x93\x01"], errno.EBADMSG),  # truncated array
    (_raw([1, 2]), errno.EBADMSG),
    (_raw({"v": 1, "op": "ping"}), errno.EBADMSG),  # no id
    (_raw({"v": 1, "op": "ping", "id": -1}), errno.EBADMSG),
    (_raw({"v": 1, "op": 5, "id": 1}), errno.EBADMSG),
    (_raw({"v": 1, "op": "frobnicate", "id": 1}), errno.ENOSYS),
    (_raw({"v": 1, "op": "stat", "id": 1, "args": {}}), errno.EINVAL),
    (_raw({"v": 1, "op": "stat", "id": 1, "args": {"path": b"/bytes"}}), errno.EINVAL),
    (_raw({"v": 1, "op": "stat", "id": 1, "args": {"path": "rel"}}), errno.EINVAL),
    (_raw({"v": 1, "op": "stat", "id": 1, "args": {"path": "/a/../.."}}), errno.EINVAL),
    (_raw({"v": 1, "op": "stat", "id": 1, "args": {"path": "/a\x00b"}}), errno.EINVAL),
    (_raw({"v": 1, "op": "stat", "id": 1, "args": {"path": "/" + "x" * 256}}), errno.ENAMETOOLONG),
    (_raw({"v": 1, "op": "stat", "id": 1, "args": {"path": "/x" * 2049}}), errno.ENAMETOOLONG),
    (_raw({"v": 1, "op": "create", "id": 1, "args": {"path": "/a", "mode": True}}), errno.EINVAL),
    (_raw({"v": 1, "op": "ping", "id": 1}) + [b"unexpected"], errno.EINVAL),
    (_raw({"v": 1, "op": "setattr", "id": 1, "args": {"mode": 0o755}}), errno.EINVAL),  # no path
    (_raw({"v": 1, "op": "setattr", "id": 1, "args": {"path": "/a", "mode": "0755"}}), errno.EINVAL),
    (_raw({"v": 1, "op": "setattr", "id": 1, "args": {"path": "/a", "uid": -1}}), errno.EINVAL),
    (_raw({"v": 1, "op": "write_chunks", "id": 1, "args": {"data_key": "k", "chunk_size": 8,
                                                           "chunks": [[0, 0, 3]]}}) + [b"toolong"], errno.EINVAL),
    (_raw({"v": 1, "op": "write_chunks", "id": 1, "args": {"data_key": "k", "chunk_size": 8,
                                                           "chunks": [[0, 0, 3], [1, 0, 3]]}}) + [b"abc"],
     errno.EINVAL),
])
def test_bad_requests(frames, code):
    with pytest.raises(P.ProtocolError) as info:
        P.decode_request(frames)
    assert info.value.errno == code, info.value


def test_version_mismatch_message_and_id():
    with pytest.raises(P.VersionMismatch) as info:
        P.decode_request(P.encode_request("ping", req_id=42, version=2))
    assert info.value.errno == errno.EPROTO and info.value.req_id == 42
    assert "client speaks protocol 2, daemon speaks 1" in str(info.value)
    reply = _raw({"v": 3, "id": 1, "status": 0, "msg": "", "result": {}})
    with pytest.raises(P.VersionMismatch, match="client speaks protocol 1, daemon speaks 3"):
        P.decode_reply(reply)


def test_frame_size_limit_keeps_request_id():
    frames = P.encode_request("ping", req_id=9) + [b"x" * 100]
    with pytest.raises(P.ProtocolError) as info:
        P.decode_request(frames, max_frame_size=50)
    assert info.value.errno == errno.EMSGSIZE and info.value.req_id == 9


def test_a_lone_header_frame_is_held_to_max_frame_size():
    """decode_request skips the frame-size sums for a request of one frame
    when max_frame_size >= MAX_HEADER_BYTES (the header passed that bound
    already): a smaller max_frame_size must still refuse a header above it."""
    frames = P.encode_request("stat", {"path": "/" + "a" * 200}, req_id=11)
    assert len(frames) == 1 and len(frames[0]) > 100
    with pytest.raises(P.ProtocolError) as info:
        P.decode_request(frames, max_frame_size=100)
    assert info.value.errno == errno.EMSGSIZE and info.value.req_id == 11
    assert P.decode_request(frames, max_frame_size=len(frames[0])).req_id == 11
    assert P.decode_request(frames).args == {"path": "/" + "a" * 200}


@pytest.mark.parametrize("path,cwd,expect", [
    ("/a/./b//c/", "/", "/a/b/c"), ("b", "/a", "/a/b"), ("../x", "/a/b", "/a/x"), ("/", "/", "/"),
    ("/a/..", "/", "/"),
])
def test_normalize_path(path, cwd, expect):
    assert P.normalize_path(path, cwd) == expect


@pytest.mark.parametrize("path,expect", [
    ("f/", True), ("/a/b/", True), ("/a/b/.", True), ("a/..", True), (".", True), ("/", True),
    ("/a/b", False), ("f", False), ("/a/.x", False), ("/a/..b", False),
])
def test_names_directory_sees_what_normalising_drops(path, expect):
    # "f/" and "f/." require a directory (ENOTDIR for a file); the
    # canonical path has lost that, so the client asks before normalising
    assert P.names_directory(path) is expect


@pytest.mark.parametrize("path", ["/..", "../..", "/a/../.."])
def test_normalize_path_escaping_root(path):
    with pytest.raises(P.ProtocolError) as info:
        P.normalize_path(path, "/a")
    assert info.value.errno == errno.EINVAL


@pytest.mark.parametrize("path", ["/", "/a", "/a b/ü", "/a:b", "/.x", "/a..b"])
def test_check_path_accepts(path):
    assert P.check_path(path) == path


@pytest.mark.parametrize("path", ["", "a", "/a/", "//a", "/a//b", "/.", "/a/./b", "/a/..", "/\x00"])
def test_check_path_rejects(path):
    with pytest.raises(P.ProtocolError):
        P.check_path(path)


def test_every_op_is_documented():
    doc = (__import__("pathlib").Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()
    for op in P.OPS:
        assert f"**{op}**" in doc, op


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="/.aü\x00\udcff", max_size=40), st.integers(0, 300))
def test_normalize_fast_path_agrees_with_the_full_walk(tail, pad):
    """normalize_path returns an already canonical path at once; a leading
    '//' forces the full component walk: both must agree, error or not."""
    path = "/" + "a" * pad + tail

    def outcome(p):
        try:
            return P.normalize_path(p, "/")
        except P.ProtocolError as exc:
            return exc.errno
    assert outcome(path) == outcome("/" + path)
