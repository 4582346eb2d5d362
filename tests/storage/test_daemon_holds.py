"""Holds and orphans (docs/protocol.md 4.6) on a real daemon: a file
removed while held keeps its record (by data key) until the last release
or the holder's connection closes; only a waiting release, remove or rename
hands it out for reclaiming."""
import time

import pytest


@pytest.fixture
def d1(cluster):
    return cluster(n=1)


def test_removed_while_held_then_released(d1):
    a, b = d1.conn(0), d1.conn(0)
    rec = a.call("create", {"path": "/f", "mode": 0o100644, "hold": "pA"}).result["stat"]
    key = rec["data_key"]
    a.call("update_size", {"path": "/f", "offset": 0, "count": 100})
    assert a.call("stat", {"path": "/f", "hold": "pA"}).result["stat"]["size"] == 100   # 2 opens
    res = b.call("remove", {"path": "/f"}).result
    assert res["held"] is True and res["reclaim"] == []
    assert b.request("stat", {"path": "/f"}).status == 2
    orphan = a.call("stat", {"path": "/f", "data_key": key}).result["stat"]
    assert orphan["nlink"] == 0 and orphan["size"] == 100
    # a new file at the name is another file: the old key still finds the orphan
    b.call("create", {"path": "/f", "mode": 0o100644})
    assert a.call("update_size", {"path": "/f", "offset": 0, "count": 300, "data_key": key}).result["size"] == 300
    assert b.call("stat", {"path": "/f"}).result["stat"]["size"] == 0
    assert a.call("truncate", {"path": "/f", "size": 7, "data_key": key}).result["stat"]["size"] == 7
    st = a.call("status").result
    assert st["open_files"] == 2 and st["orphans"] == 1
    assert a.call("release", {"path": "/f", "data_key": key, "owner": "pA", "reclaim": True}).result["reclaim"] == []
    # the last release: without "reclaim" nothing is handed out (nobody reads it)
    assert a.call("release", {"path": "/f", "data_key": key, "owner": "pA"}).result["reclaim"] == []
    assert b.call("remove", {"path": "/f"}).result["reclaim"] == [key]
    assert a.request("stat", {"path": "/x", "data_key": key}).status == 2
    assert a.call("status").result["orphans"] == 0


def test_rename_over_held_file_and_dead_holder(d1):
    holder, other = d1.conn(0), d1.conn(0)
    key = holder.call("create", {"path": "/g", "mode": 0o100644, "hold": "pH"}).result["stat"]["data_key"]
    other.call("create", {"path": "/h", "mode": 0o100644})
    res = other.call("rename", {"old": "/h", "new": "/g"}).result
    assert res["replaced"]["data_key"] == key and res["replaced_held"] is True
    assert other.call("status").result["orphans"] == 1
    holder.close()                          # the holding process died
    deadline = time.monotonic() + 5
    while True:
        other.call("create", {"path": "/p", "mode": 0o100644})
        got = other.call("remove", {"path": "/p"}).result["reclaim"]
        if got:
            break
        assert time.monotonic() < deadline, "a dead holder's orphan was never reclaimable"
        time.sleep(0.1)
    assert got == [key]
    st = other.call("status").result
    assert st["orphans"] == 0 and st["open_files"] == 0
