"""Real software on gkfs that needs more than plain I/O (issue 12): Debian's
riscv64 sqlite3 shell and HDF5 tools and an HDF5 C program, all with their
file locking on, Python's tempfile (open-unlinked files) and mv of a
populated directory, preloaded on the 3-daemon cluster under qemu."""
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


TEMPFILE_SCRIPT = r'''
import json, os, sys, tempfile
top = sys.argv[1]
tempfile.tempdir = top
out = {}
blob = os.urandom(300_000)
with tempfile.TemporaryFile() as f:            # O_TMPFILE refused: mkstemp + unlink
    f.write(blob)
    out["listed_while_open"] = os.listdir(top)
    out["nlink"] = os.fstat(f.fileno()).st_nlink
    f.seek(0)
    out["tempfile_ok"] = f.read() == blob
    f.seek(100)
    f.write(b"patched")
    f.seek(95)
    out["patched"] = f.read(15) == blob[95:100] + b"patched" + blob[107:110]
with tempfile.NamedTemporaryFile(suffix=".dat") as f:
    f.write(b"named")
    f.flush()
    out["named_exists"] = os.path.exists(f.name)
    name = f.name
out["named_gone"] = not os.path.exists(name)
sp = tempfile.SpooledTemporaryFile(max_size=1000)
sp.write(b"s" * 5000)                          # rolls over to a TemporaryFile in gkfs
sp.seek(0)
out["spooled"] = sp.read() == b"s" * 5000 and sp._rolled
sp.close()
with tempfile.TemporaryDirectory() as d:
    os.makedirs(os.path.join(d, "a", "b"))
    with open(os.path.join(d, "a", "b", "f"), "w") as f:
        f.write("x")
    tdir = d
out["tmpdir_gone"] = not os.path.exists(tdir)
fd, p = tempfile.mkstemp()
os.write(fd, b"kept")
os.close(fd)
out["mkstemp"] = os.path.basename(p)
out["left"] = os.listdir(top)
print(json.dumps(out))
'''


def test_python_tempfile(rv: Riscv64Preload, gkfs: LocalCluster, gkdir: str):
    r = rv.run(["python3", "-c", TEMPFILE_SCRIPT, gkdir]).ok()
    out = __import__("json").loads(r.out.strip().splitlines()[-1])
    assert out["listed_while_open"] == [] and out["nlink"] == 0, out
    assert out["tempfile_ok"] and out["patched"] and out["spooled"], out
    assert out["named_exists"] and out["named_gone"] and out["tmpdir_gone"], out
    assert out["left"] == [out["mkstemp"]], out
    assert gkfs.read(f"{gkdir}/{out['mkstemp']}") == b"kept"


def test_mv_populated_directory(rv: Riscv64Preload, gkfs: LocalCluster, gkdir: str):
    """mv of a populated directory inside gkfs: one atomic rename (protocol
    4.8; mv copies nothing); the tree must arrive whole."""
    script = f"""
mkdir -p {gkdir}/out.tmp/sub/deeper
i=0; while [ $i -lt 20 ]; do echo "file $i" > {gkdir}/out.tmp/f$i; i=$((i+1)); done
head -c 200000 /dev/urandom > {gkdir}/out.tmp/sub/deeper/big.bin
ln -s ../f1 {gkdir}/out.tmp/sub/link
sha256sum {gkdir}/out.tmp/sub/deeper/big.bin
mv {gkdir}/out.tmp {gkdir}/out
cat {gkdir}/out/f7 {gkdir}/out/sub/link
sha256sum {gkdir}/out/sub/deeper/big.bin
"""
    r = rv.sh(script).ok()
    lines = r.out.split("\n")
    assert "file 7" in lines and "file 1" in lines, r.describe()
    sums = [ln.split()[0] for ln in lines if ln.endswith("big.bin")]
    assert len(sums) == 2 and sums[0] == sums[1], r.describe()
    assert not gkfs.exists(f"{gkdir}/out.tmp")
    assert sorted(gkfs.listdir(f"{gkdir}/out")) == sorted([f"f{i}" for i in range(20)] + ["sub"])
