#!/usr/bin/env bash
# The newcomer's "main job" on a fresh Debian machine:
#   set up -> start a local 3-daemon cluster -> stage a directory in and out
#   -> check the copy is identical -> run unmodified riscv64 programs (tar,
#   sha256sum, an MPI job under mpirun) with LD_PRELOAD=libgkfs_intercept.so
#   on the cluster -> show `gkfs-ctl status` -> stop the cluster.
# Everything lives under one scratch directory (removed at the end unless
# GKFS_DEMO_KEEP=1), so the demo never touches an existing cluster's hosts file.
#   bash deploy/demo.sh            3 daemons
#   GKFS_DEMO_DAEMONS=4 bash deploy/demo.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

bash deploy/setup-debian.sh

n="${GKFS_DEMO_DAEMONS:-3}"
work="$(mktemp -d "${TMPDIR:-/tmp}/gkfs-demo.XXXXXX")"
export LIBGKFS_HOSTS_FILE="$work/gkfs_hosts.txt"

stop_cluster() {
  gkfs-ctl cluster stop || true
  if [[ "${GKFS_DEMO_KEEP:-0}" != 1 ]]; then rm -rf "$work"; else echo "demo: kept $work"; fi
}
trap stop_cluster EXIT

echo "== starting $n daemons (hosts file $LIBGKFS_HOSTS_FILE)"
gkfs-ctl cluster start -n "$n" --rootdir "$work/daemons"

echo "== making a sample directory"
src="$work/sample"
mkdir -p "$src/sub/deeper"
python3 - "$src" <<'EOF'
import os, sys
root = sys.argv[1]
# Sizes chosen to cross chunk boundaries and to include an empty file.
for name, size in [("empty", 0), ("small.txt", 100), ("one-mib.bin", 1 << 20),
                   ("sub/odd.bin", 3 * 524288 + 17), ("sub/deeper/big.bin", 8 << 20)]:
    with open(os.path.join(root, name), "wb") as f:
        f.write(os.urandom(size))
EOF

echo "== staging in: $src -> gkfs:/demo"
gkfs-ctl cp-in "$src" /demo
gkfs-ctl ls -l /demo
gkfs-ctl ls -l /demo/sub
gkfs-ctl stat /demo/sub/deeper/big.bin

echo "== staging out: gkfs:/demo -> $work/out"
gkfs-ctl cp-out /demo "$work/out"
diff -r "$src" "$work/out"
echo "demo: staged-out copy is identical to the source"

echo "== a real workload through the preload library (riscv64 tar, sha256sum, mpirun under qemu)"
bash deploy/demo-preload.sh "$src"

echo "== cluster status"
gkfs-ctl status
