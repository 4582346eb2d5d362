"""Slurm for real: munge, slurmctld and one slurmd per network-namespace
node, from Debian's packages. An sbatch job on 3 nodes starts gkfs with
`gkfs-ctl cluster start --slurm` (one daemon per node through srun, running
one member process per CPU of the node), stages
data in, runs riscv64 programs with the preload (a copy, then an MPI job
started by mpirun), stages the results out with a checksum check, and stops
gkfs; the test then checks the staged-out bytes, that each node's own
directory held data, and that nothing of gkfs is left running."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from mn_harness import MOUNT, mpi_pattern as pattern
from e2e_harness import QEMU, build_programs
from gkfs_client import hostsfile
from mn_slurm import Slurm

BLOCK = 300_001
RANKS = 3  # one per node


@pytest.fixture
def slurm(make_net, tmp_path):
    net = make_net(["n1", "n2", "n3"])
    s = Slurm(net, net.nodes, tmp_path / "slurm")
    try:
        yield s.start()
    finally:
        s.close()


def test_sbatch_job_runs_gkfs(slurm: Slurm, tmp_path, rv_sysroot, rv_preload):
    programs = build_programs()
    submit = tmp_path / "submit"          # the shared file system: where the job is submitted
    nodes = tmp_path / "nodes"            # node-local storage: nodes/<hostname>
    stage_in, stage_out = tmp_path / "in", tmp_path / "out"
    (stage_in / "d").mkdir(parents=True)
    (stage_in / "d" / "input.bin").write_bytes(pattern(7, 500_000))
    submit.mkdir()
    # The preload environment of the riscv64 programs (as the e2e suite runs them).
    from e2e_harness import Riscv64Preload

    class Where:  # what Riscv64Preload.env needs to know of the cluster
        hosts_file = "$LIBGKFS_HOSTS_FILE"
        mount = MOUNT
    work = tmp_path / "rvwork"
    work.mkdir()
    rv_env = Riscv64Preload(rv_sysroot, rv_preload, Where(), work, work).env(True)
    # mpirun inside the allocation: PRRTE finds Slurm ($SLURM_* kept) and starts its
    # prted on every node with the host's srun; ranks talk over TCP on eth0.
    rv_env.update(PATH=f"{rv_env['PATH']}:/usr/bin:/bin", OMPI_MCA_btl="self,tcp", OMPI_MCA_btl_tcp_if_include="eth0",
                  PRTE_MCA_prte_if_include="eth0", PMIX_MCA_ptl_tcp_if_include="eth0")
    rv_env_words = " ".join(f'{k}="{v}"' for k, v in rv_env.items())
    venv_bin = Path(sys.executable).parent
    script = submit / "job.sh"
    script.write_text(f"""#!/bin/bash
set -euo pipefail
export PATH={venv_bin}:/usr/sbin:/usr/bin:/sbin:/bin
echo "job $SLURM_JOB_ID on $(hostname), nodes $SLURM_JOB_NODELIST"
eval "$(gkfs-ctl cluster start --slurm --rootdir {nodes}/%h --chunk-size 65536 --mount {MOUNT} -q)"
echo "hosts file: $LIBGKFS_HOSTS_FILE"
cat "$LIBGKFS_HOSTS_FILE" "$LIBGKFS_HOSTS_FILE".d/*
gkfs-ctl cp-in {stage_in} /in -q
gkfs-ctl ls /in/d
rv() {{ env {rv_env_words} {QEMU} "$@"; }}
rv {rv_sysroot}/usr/bin/mkdir {MOUNT}/out
rv {rv_sysroot}/usr/bin/cp {MOUNT}/in/d/input.bin {MOUNT}/out/copy.bin
rv {rv_sysroot}/usr/bin/mpirun --allow-run-as-root --display map -np {RANKS} --map-by node {programs}/mpi_io {MOUNT}/out {BLOCK} {work} mpiio
gkfs-ctl cp-out /out {stage_out} --verify -q
gkfs-ctl status --timeout 5
gkfs-ctl cluster stop
echo "job done"
""")
    script.chmod(0o755)
    cp = slurm.run(["sbatch", "--wait", "--nodes=3", "--output", str(submit / "job-%j.out"), "--chdir", str(submit),
                    str(script)], timeout=400, cwd=submit)
    outs = list(submit.glob("job-*.out"))
    job_out = outs[0].read_text(errors="replace") if outs else "(no job output)"
    assert cp.returncode == 0, f"sbatch --wait exited {cp.returncode}: {cp.stdout}{cp.stderr}\n{job_out}\n{slurm.logs()}"
    assert "job done" in job_out, job_out
    jobid = re.search(r"Submitted batch job (\d+)", cp.stdout).group(1)
    # The launcher's default hosts file: next to the job on the shared file system; gone after stop.
    hosts = submit / f"gkfs-{jobid}" / "hosts"
    assert f"hosts file: {hosts}" in job_out, job_out
    assert not hostsfile.entries_dir(hosts).exists()
    assert not hostsfile.read_membership(hosts).listed()  # the record stays, no member registered
    lines = [ln for ln in job_out.splitlines() if re.match(r"^\d+ tcp://", ln)]
    # The default: one member process per CPU the job has on a node (CPUs=2,
    # select/linear gives whole nodes), ids rank*2, rank*2+1 on node rank.
    per_node = 2
    assert [ln.split()[3] for ln in lines] == [n.name for n in slurm.nodes for _ in range(per_node)], job_out
    for ln, n in zip(lines, [n for n in slurm.nodes for _ in range(per_node)]):
        assert ln.split()[1].startswith(f"tcp://{n.address}:"), ln
    assert "6/6 members up on 3 node(s)" in job_out
    # PRRTE's map: one rank on each node of the allocation.
    procs = dict(re.findall(r"Data for node: (\w+)\s.*?Num procs: (\d+)", job_out, flags=re.S))
    assert procs == {"n1": "1", "n2": "1", "n3": "1"}, job_out
    # Staged out, byte for byte.
    assert (stage_out / "copy.bin").read_bytes() == pattern(7, 500_000)
    mpiio = (stage_out / "mpiio.dat").read_bytes()
    for k in range(RANKS):
        assert (stage_out / f"rank-{k}.dat").read_bytes() == pattern(k, BLOCK)
        assert mpiio[k * BLOCK:(k + 1) * BLOCK] == pattern(k, BLOCK)
    # Each node kept its data in its own directory.
    for n in slurm.nodes:
        assert any((nodes / n.name).glob("daemon-*/chunks/*/*")), f"no chunk files under {nodes / n.name}"
    # Nothing of gkfs left on the nodes.
    for n in slurm.nodes:
        left = [pid for pid in n.pids_inside() if "gkfs-daemon" in Path(f"/proc/{pid}/cmdline").read_text(errors="replace")]
        assert not left, f"gkfs processes left on {n.name}: {left}"
