"""Attribution baseline: the suite's workloads with the gkfs preload active and
pointed at the running cluster, but on local paths only. These must behave
exactly as without the preload; when they pass and a gkfs test fails, the
fault is in the gkfs path of the hook, not in the core, qemu or the program.
(Runs first: pytest orders files by name.)"""
from __future__ import annotations

import json
import os
import tarfile

import pytest

from e2e_harness import LocalCluster, Riscv64Preload


@pytest.mark.parametrize("preload", [False, True], ids=["bare", "preload"])
def test_local_workloads(rv: Riscv64Preload, gkfs: LocalCluster, local, programs, preload):
    # tar create + extract
    src = local / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "f.bin").write_bytes(os.urandom(100_000))
    rv.run(["tar", "-C", str(local), "-czf", str(local / "a.tgz"), "src"], preload=preload).ok()
    (local / "x").mkdir()
    rv.run(["tar", "-C", str(local / "x"), "-xzf", str(local / "a.tgz")], preload=preload).ok()
    assert (local / "x/src/sub/f.bin").read_bytes() == (src / "sub" / "f.bin").read_bytes()
    with tarfile.open(local / "a.tgz") as tf:
        assert "src/sub/f.bin" in tf.getnames()

    # fio write + verify, two forked jobs
    (local / "fio").mkdir()
    rv.run(["fio", "--name=b", f"--directory={local}/fio", "--rw=write", "--bs=64k", "--size=512k",
            "--numjobs=2", "--ioengine=psync", "--verify=crc32c", "--do_verify=1",
            "--verify_state_save=0", "--output-format=json", f"--output={local}/fio.json"],
           preload=preload).ok()
    assert all(j["error"] == 0 for j in json.loads((local / "fio.json").read_text())["jobs"])

    # python3 with threads
    r = rv.run(["python3", "-c", "import threading,sys\n"
                "def w(i): open(f'{sys.argv[1]}/p{i}','w').write(str(i)*999)\n"
                "ts=[threading.Thread(target=w,args=(i,)) for i in range(4)]\n"
                "[t.start() for t in ts]; [t.join() for t in ts]; print('ok')", str(local)],
               preload=preload).ok()
    assert r.out == "ok\n" and (local / "p3").read_text() == "3" * 999

    # dash pipeline with forks and execs
    r = rv.sh(f"seq 1 500 | sort -rn | tee {local}/s.txt | wc -l", preload=preload).ok()
    assert r.out.strip() == "500" and (local / "s.txt").read_text().startswith("500\n499\n")

    # threads_io and mpirun on local paths
    (local / "thr").mkdir()
    rv.run([str(programs / "threads_io"), str(local / "thr"), "4", "70001"], preload=preload).ok()
    (local / "mpi").mkdir()
    r = rv.run(["mpirun", "--allow-run-as-root", "--oversubscribe", "-np", "2",
                str(programs / "mpi_io"), str(local / "mpi"), "100003"], preload=preload).ok()
    assert "mpi_io: 2 ranks ok" in r.out, r.describe()
