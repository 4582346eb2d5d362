"""Bad input to a real daemon: each answered with an error, the daemon keeps serving."""
import errno

import msgpack
import pytest

from gkfs_client import protocol as P

SMALL_FRAME = 1 << 20  # daemon started with a 1 MiB frame limit to test oversize cheaply


@pytest.fixture
def one(cluster, raw):
    c = cluster(n=1, chunk_size=65536, extra_args=["--max-frame-size", str(SMALL_FRAME)])
    return c, raw(c.address(0))


def _still_serving(conn):
    r = conn.request("ping")
    assert r.ok and r.result["protocol"] == P.PROTOCOL_VERSION


def _header(**h):
    return msgpack.packb(h)


@pytest.mark.parametrize("frames,code,text", [
    ([b"\xc1\xc1\xc1"], errno.EBADMSG, "not valid msgpack"),
    ([b"\x85\xa1v"], errno.EBADMSG, "not valid msgpack"),  # truncated map
    ([msgpack.packb([1, "ping", 1])], errno.EBADMSG, "must be a msgpack map"),
    ([_header(v=1, op="frobnicate", id=5)], errno.ENOSYS, "unknown op 'frobnicate'"),
    ([_header(v=2, op="ping", id=5)], errno.EPROTO, "client speaks protocol 2, daemon speaks 1"),
    ([_header(v=0, op="ping", id=5)], errno.EPROTO, "client speaks protocol 0, daemon speaks 1"),
    ([_header(v=1, op="stat", id=5, args={"path": "/../../etc/passwd"})], errno.EINVAL, "'..'"),
    ([_header(v=1, op="create", id=5, args={"path": "/a/../../x", "mode": 0o644})], errno.EINVAL, "'..'"),
    ([_header(v=1, op="stat", id=5, args={"path": "relative"})], errno.EINVAL, "absolute"),
    ([_header(v=1, op="stat", id=5, args={})], errno.EINVAL, "missing argument 'path'"),
    ([_header(v=1, op="ping", id=5, args={"chunk_size": 4096})], errno.EINVAL,
     "client chunk size 4096 differs from the cluster's chunk size 65536"),
    ([_header(v=1, op="write_chunks", id=5, args={"data_key": "k", "chunk_size": 524288,
                                                  "chunks": [[0, 0, 3]]}), b"abc"], errno.EINVAL,
     "client chunk size 524288 differs"),
    ([_header(v=1, op="read_chunks", id=5, args={"data_key": "k", "chunk_size": 524288,
                                                 "chunks": [[0, 0, 3]]})], errno.EINVAL, "chunk size"),
    ([_header(v=1, op="write_chunks", id=5, args={"data_key": "k", "chunk_size": 65536,
                                                  "chunks": [[0, 65530, 10]]}), b"0123456789"], errno.EINVAL,
     "exceeds chunk size"),
    ([_header(v=1, op="ping", id=5), b"x" * (SMALL_FRAME + 1)], errno.EMSGSIZE, "exceeds max_frame_size"),
    ([_header(v=1, op="write_chunks", id=5, args={"data_key": "k", "chunk_size": 65536,
                                                  "chunks": [[i, 0, 65536] for i in range(17)]})]
     + [b"y" * 65536] * 17, errno.EMSGSIZE, "message of"),
])
def test_bad_input_answered_and_daemon_survives(one, frames, code, text):
    c, conn = one
    conn.send_frames(frames)
    reply = conn.recv_reply()
    assert reply.status == code, reply
    assert text in reply.message, reply.message
    if code != errno.EBADMSG:
        assert reply.req_id == 5
    _still_serving(conn)
    assert c.daemons[0].poll() is None


def test_escaping_path_writes_nothing_outside_rootdir(one, tmp_path):
    c, conn = one
    before = sorted(p for p in tmp_path.rglob("*") if "daemon-0" not in p.parts)
    for path in ["/../escape", "/a/../../escape", "/./x", "//x"]:
        r = conn.request("create", {"path": path, "mode": 0o100644})
        assert r.status == errno.EINVAL, (path, r)
    after = sorted(p for p in tmp_path.rglob("*") if "daemon-0" not in p.parts)
    assert [p for p in after if p not in before and not p.name.startswith("daemon-0")] == []


def test_many_bad_messages_then_real_work(one):
    c, conn = one
    for i in range(200):
        conn.send_frames([bytes([i % 256]) * (i % 7 + 1)])
    errors = [conn.recv_reply() for _ in range(200)]
    assert all(e.status for e in errors)
    r = conn.call("create", {"path": "/ok", "mode": 0o100644})
    assert r.result["created"]
    status = conn.call("status").result
    assert status["errors"] >= 200


def test_status_fields(one):
    c, conn = one
    s = conn.call("status").result
    for key in ("id", "address", "pid", "uptime_s", "files", "bytes_stored", "free_bytes", "total_bytes",
                "ops", "chunk_size", "protocol"):
        assert key in s, key
    assert s["pid"] == c.daemons[0].pid and s["chunk_size"] == 65536 and s["address"] == c.address(0)


def test_frame_above_hard_cap_drops_only_that_peer(one, raw):
    """Above 2 x max_frame_size libzmq itself disconnects the sender; others go on."""
    c, conn = one
    rogue = raw(c.address(0), timeout=2)
    rogue.send_frames([msgpack.packb({"v": 1, "op": "ping", "id": 1}), b"z" * (2 * SMALL_FRAME + 10)])
    with pytest.raises(TimeoutError):
        rogue.recv_frames(timeout=1)
    _still_serving(conn)
    _still_serving(raw(c.address(0)))


def test_hostile_data_key_stays_inside_rootdir(one, tmp_path):
    c, conn = one
    for key in ["../../../../escape", "/etc/passwd", "a/b", "..", "."]:
        r = conn.request("write_chunks", {"data_key": key, "chunk_size": 65536, "chunks": [[0, 0, 4]]}, [b"evil"])
        assert r.ok, r
        r = conn.call("read_chunks", {"data_key": key, "chunk_size": 65536, "chunks": [[0, 0, 4]]})
        assert r.data == [b"evil"]
    outside = [p for p in tmp_path.rglob("*") if p.is_file() and c.rootdirs[0] not in p.parents
               and p.suffix not in (".log",) and p.name not in ("hosts", "hosts.lock")
               and p.parent.name not in ("hosts.keys", "hosts.d")]
    assert outside == []
    chunk_dirs = list((c.rootdirs[0] / "chunks").iterdir())
    assert len(chunk_dirs) == 5 and all(len(d.name) == 64 for d in chunk_dirs)
