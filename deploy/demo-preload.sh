#!/usr/bin/env bash
# The "workload" step of the main job: real, unmodified riscv64 programs
# (Debian's tar, sha256sum, ls, and an MPI program run by mpirun) run under
# qemu-riscv64-static with LD_PRELOAD=libgkfs_intercept.so and work on files
# under the mount prefix of an already running cluster; the results are then
# checked from the host side (gkfs-ctl / sha256sum), so the data really is
# on the daemons.
#
#   LIBGKFS_HOSTS_FILE=... bash deploy/demo-preload.sh [SOURCE_DIR]
#
# SOURCE_DIR (default: a generated sample) is archived into gkfs by tar,
# extracted inside gkfs, and checksummed there. The cluster is found like
# gkfs-ctl finds it; the mount prefix is $LIBGKFS_MOUNT, else the one the
# daemons recorded in the hosts file. Everything is written under
# <mount>/preload-demo-<date>-<pid> (left for inspection). Exits non-zero on any
# mismatch. Prepares what is missing: the riscv64 sysroot and binfmt entry
# (deploy/riscv64-sysroot.sh), the preload library (deploy/build-native.sh
# riscv64), the MPI program (deploy/build-e2e-programs.sh).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
say() { printf '\n== %s\n' "$*"; }
die() { printf 'demo-preload: error: %s\n' "$*" >&2; exit 1; }

command -v gkfs-ctl >/dev/null || die "gkfs-ctl not found (run deploy/setup-debian.sh)"
gkfs-ctl status >/dev/null || die "no running cluster answers (start one: gkfs-ctl cluster start -n 3)"
hosts="$(python3 -c 'from gkfs_client import hostsfile; print(hostsfile.resolve_hosts_file())')"
mount="${LIBGKFS_MOUNT:-$(awk '!/^#/ && NF >= 5 { print $5; exit }' "$hosts")}"
mount="${mount:-/gkfs}"

# --check reuses a complete sysroot (and registers binfmt); build one only when missing.
bash deploy/riscv64-sysroot.sh --check >/dev/null 2>&1 || bash deploy/riscv64-sysroot.sh
sysroot="$(bash deploy/riscv64-sysroot.sh --print-path)"
# Always (incrementally) rebuilt: a library left by an older checkout speaks
# an older protocol, and every call under the mount would fail with EIO.
bash deploy/build-native.sh riscv64 >&2
lib="$(gkfs-ctl lib-path --arch riscv64)"
progs="$(bash deploy/build-e2e-programs.sh)"
qemu=/usr/bin/qemu-riscv64-static

# The environment every riscv64 program gets: the sysroot for its libraries
# and children, the preload and where the cluster is; Open MPI's prefix
# (mpirun execs prterun by its install path, which qemu does not translate).
rv() {
  env -i PATH="$sysroot/usr/bin:$sysroot/usr/sbin" QEMU_LD_PREFIX="$sysroot" LC_ALL=C \
    HOME="$work" TMPDIR="$work" \
    LD_PRELOAD="$lib" LIBGKFS_HOSTS_FILE="$hosts" LIBGKFS_MOUNT="$mount" \
    OPAL_PREFIX="$sysroot/usr" PRTE_PREFIX="$sysroot/usr" PMIX_PREFIX="$sysroot/usr" \
    OMPI_MCA_btl=self,sm OMPI_MCA_pml=ob1 \
    "$qemu" "$@"
}
show() { printf '$ LD_PRELOAD=%s %s\n' "$(basename "$lib")" "$*" >&2; }
run() { show "$*"; local prog="$1"; shift; [[ "$prog" == */* ]] || prog="$sysroot/usr/bin/$prog"; rv "$prog" "$@"; }

work="$(mktemp -d "${TMPDIR:-/tmp}/gkfs-demo-preload.XXXXXX")"
trap 'rm -rf "$work"' EXIT
src="${1:-}"
if [[ -z "$src" ]]; then
  src="$work/sample"
  mkdir -p "$src/docs" "$src/data/deep"
  head -c 3000000 /dev/urandom >"$src/data/deep/big.bin"
  head -c 70000 /dev/urandom >"$src/data/medium.bin"
  seq 1 20000 >"$src/docs/numbers.txt"
  echo "hello from the host" >"$src/docs/hello.txt"
fi
[[ -d "$src" ]] || die "$src is not a directory"
name="preload-demo-$(date +%Y%m%d-%H%M%S)-$$"
d="$mount/$name"

say "riscv64 programs, preloaded with $lib, on $mount (cluster $hosts)"
run mkdir -p "$d/tree" "$d/mpi"
run tar -C "$src" -cf "$d/in.tar" .
run tar -C "$d/tree" --no-same-owner -xf "$d/in.tar"
run ls -lR "$d/tree"
# A riscv64 dash whose cwd is inside gkfs: find, sort and sha256sum there.
script="cd '$d/tree' && find . -type f | sort | xargs sha256sum"
sums_gkfs="$(run dash -c "$script")"
sums_host="$(cd "$src" && find . -type f | LC_ALL=C sort | xargs sha256sum)"
printf '%s\n' "$sums_gkfs"
[[ "$sums_gkfs" == "$sums_host" ]] || die "checksums in gkfs differ from the source's:
$sums_host"
echo "demo-preload: all $(printf '%s\n' "$sums_host" | wc -l) files extracted in gkfs match the source (sha256)"

run mpirun --allow-run-as-root --oversubscribe -np 2 "$progs/mpi_io" "$d/mpi" 786445 "$work"

say "the same data seen from the host through gkfs-ctl (the daemons hold it)"
gkfs-ctl ls -l "/$name"
gkfs-ctl ls -l "/$name/mpi"
big="$(cd "$src" && find . -type f -printf '%s %p\n' | sort -n | tail -n 1 | cut -d' ' -f2-)"
gkfs-ctl stat "/$name/tree/${big#./}"
gkfs-ctl cp-out "/$name/tree" "$work/out" -q
diff -r "$src" "$work/out" && echo "demo-preload: staged out with gkfs-ctl, identical to the source"
