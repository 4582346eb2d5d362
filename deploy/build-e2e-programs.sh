#!/usr/bin/env bash
# Builds the riscv64 programs of the end-to-end tests and the e2e benchmark
# (plain C, no CMake: each is one file) against the riscv64 sysroot's glibc
# and Open MPI, into <build>/riscv64/e2e/:
#   tests/e2e/programs/mpi_io.c      MPI ranks writing own + shared files
#   tests/e2e/programs/threads_io.c  threads writing own + shared files
#   bench/programs/fsbench.c         create/stat/unlink and write/read timing
#   tests/e2e/programs/hdf5_rw.c     HDF5 write/read with file locking on
# Only what is out of date is rebuilt. Prints the output directory last.
#
#   deploy/build-e2e-programs.sh            build
#   deploy/build-e2e-programs.sh --print-dir  print the output directory only
#
# Environment: GKFS_BUILD_DIR (default <repo>/build), GKFS_RISCV64_SYSROOT
# (default: deploy/riscv64-sysroot.sh --print-path), CC_RISCV64 (default
# riscv64-linux-gnu-gcc).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${GKFS_BUILD_DIR:-$root/build}/riscv64/e2e"
if [[ "${1:-}" == --print-dir ]]; then echo "$out"; exit 0; fi
[[ $# -eq 0 ]] || { echo "build-e2e-programs: unknown argument '$1'" >&2; exit 1; }

die() { printf 'build-e2e-programs: error: %s\n' "$*" >&2; exit 1; }
cc="${CC_RISCV64:-riscv64-linux-gnu-gcc}"
command -v "$cc" >/dev/null || die "$cc not found (run deploy/setup-debian.sh --no-pip)"
sysroot="${GKFS_RISCV64_SYSROOT:-$(bash "$root/deploy/riscv64-sysroot.sh" --print-path)}"
lib="$sysroot/usr/lib/riscv64-linux-gnu"
[[ -e "$lib/libc.so.6" ]] || die "no riscv64 sysroot at $sysroot (run deploy/riscv64-sysroot.sh)"
mpi_inc="$lib/openmpi/include"
[[ -e "$mpi_inc/mpi.h" ]] || die "Open MPI headers missing in $mpi_inc (sysroot lacks libopenmpi-dev: deploy/riscv64-sysroot.sh --force)"
mkdir -p "$out"

# Linked against the sysroot (its crt files and glibc), like a program
# built on a riscv64 Debian machine, so it runs with QEMU_LD_PREFIX=sysroot.
common=(--sysroot="$sysroot" -O2 -g -Wall -Wextra -Wno-unused-parameter
        -L"$lib" -Wl,-rpath-link,"$lib")

build() {  # build NAME SOURCE [flags and libraries, after the source...]
  local name="$1" src="$root/$2"; shift 2
  if [[ "$out/$name" -nt "$src" && "$out/$name" -nt "$0" ]]; then return 0; fi
  echo "build-e2e-programs: $name <- ${src#"$root"/}" >&2
  "$cc" "${common[@]}" -o "$out/$name.tmp" "$src" "$@" || die "compiling $src failed"
  mv "$out/$name.tmp" "$out/$name"
}

build mpi_io tests/e2e/programs/mpi_io.c -I"$mpi_inc" -L"$lib/openmpi/lib" -lmpi
build threads_io tests/e2e/programs/threads_io.c -pthread
build fsbench bench/programs/fsbench.c
hdf5_inc="$sysroot/usr/include/hdf5/serial"
[[ -e "$hdf5_inc/hdf5.h" ]] || die "HDF5 headers missing in $hdf5_inc (sysroot lacks libhdf5-dev: deploy/riscv64-sysroot.sh --force)"
build hdf5_rw tests/e2e/programs/hdf5_rw.c -I"$hdf5_inc" -lhdf5_serial
echo "$out"
