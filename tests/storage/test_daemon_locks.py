"""Lock ops (docs/protocol.md 4.5) on a real daemon: conflicts, range
splitting, owners, and locks dropped when the connection that took them
closes (a dead client never holds a lock for ever)."""
import time

import pytest

RD, WR, UN = 0, 1, 2
KEY = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def d1(cluster):
    return cluster(n=1)


def lock(conn, owner, ltype, start=0, length=0, space="posix", test=False, key=KEY, pid=1):
    return conn.call("lock", {"data_key": key, "owner": owner, "space": space, "type": ltype,
                              "start": start, "len": length, "pid": pid, "test": test}).result


def test_conflicts_and_ranges(d1):
    a, b = d1.conn(0), d1.conn(0)
    assert lock(a, "A", WR, 0, 100)["granted"]
    r = lock(b, "B", RD, 50, 10)
    assert not r["granted"] and r["conflict"] == {"type": WR, "start": 0, "len": 100, "pid": 1, "owner": "A"}
    assert lock(b, "B", RD, 100, 10)["granted"]            # adjacent: no overlap
    assert lock(a, "A", UN, 40, 20)["granted"]             # A keeps [0,40) and [60,100)
    assert lock(b, "B", WR, 40, 20)["granted"]
    assert not lock(b, "B", WR, 39, 2)["granted"]
    assert lock(b, "B", RD, 0, 0, test=True)["conflict"]["owner"] == "A"
    # read locks share; the same owner never conflicts with itself
    assert lock(a, "A", RD, 200, 0)["granted"] and lock(b, "B", RD, 300, 0)["granted"]
    assert lock(a, "A", WR, 0, 10)["granted"]
    assert not lock(a, "A", WR, 250, 100)["granted"]       # B reads from 300 on
    # flock is another space: no conflict with posix locks
    assert lock(b, "B", WR, space="flock")["granted"]
    assert not lock(a, "A", RD, space="flock")["granted"]
    assert a.call("unlock_owner", {"owner": "B", "data_key": KEY}).result["released"] == 4
    assert lock(a, "A", WR, 0, 0)["granted"] and lock(a, "A", WR, space="flock")["granted"]
    assert d1.conn(0).call("status").result["locks"] == 2
    assert a.request("lock", {"data_key": KEY, "owner": "A", "space": "nfs", "type": WR,
                              "start": 0, "len": 0}).status == 22


def test_dead_connection_releases_its_locks(d1):
    holder, other = d1.conn(0), d1.conn(0)
    assert lock(holder, "H", WR)["granted"]
    assert lock(holder, "H2", WR, key="f" * 32, space="flock")["granted"]
    assert not lock(other, "O", WR)["granted"]
    time.sleep(0.6)                   # probes of a live holder change nothing
    assert not lock(other, "O", RD)["granted"]
    holder.close()                    # the client is gone (as when its process dies)
    deadline = time.monotonic() + 5
    while not lock(other, "O", WR)["granted"]:
        assert time.monotonic() < deadline, "a closed connection's lock was never released"
        time.sleep(0.05)
    assert lock(other, "O", WR, key="f" * 32, space="flock")["granted"]
    assert other.call("status").result["locks"] == 2
