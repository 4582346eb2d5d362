"""Real software on gkfs that needs more than plain I/O (issue 12): Debian's
riscv64 sqlite3 shell and HDF5 tools and an HDF5 C program, all with their
file locking on, preloaded on the 3-daemon cluster under qemu."""
from __future__ import annotations

from e2e_harness import LocalCluster, Riscv64Preload


def test_sqlite3_locks_and_two_writers(rv: Riscv64Preload, gkfs: LocalCluster, gkdir: str, local):
    db = f"{gkdir}/t.db"
    rv.run(["sqlite3", db, "CREATE TABLE t(who TEXT, n INT);"]).ok()
    # A holds an EXCLUSIVE transaction open (its .shell pauses inside it):
    # B without a busy timeout is refused, B with one waits for A's commit.
    script = f"""
sqlite3 {db} "BEGIN EXCLUSIVE;" "INSERT INTO t VALUES('A', 0);" ".shell touch {local}/ready; sleep 3" "COMMIT;" &
while [ ! -e {local}/ready ]; do sleep 0.1; done
if sqlite3 {db} "INSERT INTO t VALUES('B-nowait', 0);" 2>{local}/nowait.err; then echo NOT-LOCKED; fi
sqlite3 -cmd ".timeout 60000" {db} "INSERT INTO t VALUES('B-wait', 0);"
wait
"""
    r = rv.sh(script).ok()
    assert "NOT-LOCKED" not in r.out, r.describe()
    assert "database is locked" in (local / "nowait.err").read_text()
    # two writers in turn: 40 transactions each, interleaved by the locks
    script = f"""
w() {{ i=0; while [ $i -lt 40 ]; do echo "INSERT INTO t VALUES('$1', $i);"; i=$((i+1)); done; }}
w P | sqlite3 -cmd ".timeout 60000" {db} &
w Q | sqlite3 -cmd ".timeout 60000" {db} &
wait
"""
    rv.sh(script, timeout=600).ok()
    r = rv.run(["sqlite3", db, "SELECT who, count(*), sum(n) FROM t GROUP BY who ORDER BY who;",
                "PRAGMA integrity_check;"]).ok()
    assert r.out.split() == ["A|1|0", "B-wait|1|0", "P|40|780", "Q|40|780", "ok"], r.describe()
    # the rollback journal was created and removed each time: only the db is left
    assert gkfs.listdir(gkdir) == ["t.db"]


def test_hdf5_tools_and_program_with_locking(rv: Riscv64Preload, gkfs: LocalCluster, gkdir: str,
                                             local, programs):
    h5 = str(programs / "hdf5_rw")
    a, b, c = f"{gkdir}/a.h5", f"{gkdir}/b.h5", f"{gkdir}/c.h5"
    env = {"HDF5_USE_FILE_LOCKING": "TRUE"}       # the default, spelled out
    assert rv.run([h5, "write", a], env=env).ok().out.strip() == "ok write"
    assert rv.run([h5, "read", a], env=env).ok().out.strip() == "ok read"
    # a writer holds the file: a reader's lock request is refused
    script = f"""
{h5} hold {a} {local}/ready 3 &
while [ ! -e {local}/ready ]; do sleep 0.1; done
if {h5} read {a} >{local}/locked.out 2>&1; then echo NOT-LOCKED; fi
wait
"""
    r = rv.sh(script, env=env).ok()
    assert "NOT-LOCKED" not in r.out, r.describe()
    assert "unable to lock file, errno = 11" in (local / "locked.out").read_text()
    rv.run(["h5repack", a, b], env=env).ok()
    rv.run(["h5copy", "-i", a, "-o", c, "-s", "/grp/data", "-d", "/copied"], env=env).ok()
    rv.run(["h5diff", a, b], env=env).ok()
    r = rv.run(["h5dump", "-d", "/copied", "-s", "63,98", "-c", "1,2", c], env=env).ok()
    assert "(63,98): 63098, 63099" in r.out, r.describe()
    r = rv.run(["h5dump", "-A", "-d", "/grp/data", b], env=env).ok()
    assert "(0): 2.5" in r.out, r.describe()
    assert rv.run([h5, "read", b], env=env).ok().out.strip() == "ok read"
    assert gkfs.read(a)[:8] == b"\x89HDF\r\n\x1a\n"
