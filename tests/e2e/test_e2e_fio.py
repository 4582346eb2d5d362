"""fio (riscv64, preloaded): two forked jobs write files in gkfs and verify
them (crc32c), a second run re-reads and verifies; the verify headers fio
wrote are checked in the data the daemons hold."""
from __future__ import annotations

import json
import struct

from e2e_harness import LocalCluster, Riscv64Preload

BS = 64 * 1024
SIZE = 1024 * 1024
FIO_HDR_MAGIC = 0xACCA


def _fio(rv, gkdir, local, rw, out_name, extra=()):
    return rv.run(["fio", "--name=e2e", f"--directory={gkdir}", f"--rw={rw}", f"--bs={BS}",
                   f"--size={SIZE}", "--numjobs=2", "--ioengine=psync", "--verify=crc32c",
                   "--verify_state_save=0", "--output-format=json", f"--output={local}/{out_name}",
                   *extra])


def test_fio_write_then_verify(rv: Riscv64Preload, gkfs: LocalCluster, gkdir: str, local):
    r = _fio(rv, gkdir, local, "write", "write.json", ["--do_verify=1"]).ok()
    report = json.loads((local / "write.json").read_text())
    jobs = report["jobs"]
    assert len(jobs) == 2 and all(j["error"] == 0 for j in jobs), r.describe()
    assert all(j["write"]["io_bytes"] == SIZE for j in jobs), [j["write"]["io_bytes"] for j in jobs]
    assert all(j["read"]["io_bytes"] == SIZE for j in jobs), "do_verify must read everything back"

    files = [f"{gkdir}/e2e.{i}.0" for i in range(2)]
    assert gkfs.listdir(gkdir) == ["e2e.0.0", "e2e.1.0"]
    for f in files:
        data = gkfs.read(f)
        assert len(data) == SIZE, (f, len(data))
        for off in range(0, SIZE, BS):
            magic, _vtype, length, _seed, offset = struct.unpack_from("<HHIQQ", data, off)
            assert (magic, length, offset) == (FIO_HDR_MAGIC, BS, off), (f, off, hex(magic), length, offset)
    gkfs.assert_spread(files)

    # A separate run, new processes: verify what is on the daemons.
    r = _fio(rv, gkdir, local, "read", "verify.json", ["--verify_only=1"]).ok()
    report = json.loads((local / "verify.json").read_text())
    assert all(j["error"] == 0 for j in report["jobs"]), r.describe()


def test_fio_threads_random_and_aio(rv: Riscv64Preload, gkfs: LocalCluster, gkdir: str, local):
    """fio variants: 3 threads of one process writing random 4 KiB blocks
    with periodic fsync; POSIX AIO (helper threads) with iodepth 4; then the
    mmap engine reading a file back. All verified."""
    common = [f"--directory={gkdir}", "--verify_state_save=0", "--output-format=json"]
    rv.run(["fio", "--name=rnd", "--rw=randwrite", "--bs=4k", "--size=512k", "--thread", "--numjobs=3",
            "--fsync=16", "--ioengine=psync", "--verify=crc32c", "--do_verify=1", *common,
            f"--output={local}/rnd.json"]).ok()
    rv.run(["fio", "--name=aio", "--rw=randwrite", "--bs=8k", "--size=512k", "--ioengine=posixaio",
            "--iodepth=4", "--verify=md5", "--do_verify=1", *common, f"--output={local}/aio.json"]).ok()
    rv.run(["fio", "--name=aio", "--rw=randread", "--bs=8k", "--size=512k", "--ioengine=mmap",
            "--verify=md5", "--verify_only=1", *common, f"--output={local}/mmap.json"]).ok()
    for name in ("rnd", "aio", "mmap"):
        jobs = json.loads((local / f"{name}.json").read_text())["jobs"]
        assert all(j["error"] == 0 for j in jobs), (name, jobs)
    assert gkfs.listdir(gkdir) == ["aio.0.0", "rnd.0.0", "rnd.1.0", "rnd.2.0"]
    for f in gkfs.listdir(gkdir):
        assert len(gkfs.read(f"{gkdir}/{f}")) == 512 * 1024, f
