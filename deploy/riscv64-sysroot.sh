#!/usr/bin/env bash
# Prepares a riscv64 Debian sysroot and the binfmt_misc entry that lets
# riscv64 programs run (and exec riscv64 children) under qemu user mode.
#
#   deploy/riscv64-sysroot.sh               build or reuse the sysroot, register binfmt
#   deploy/riscv64-sysroot.sh --print-path  print where the sysroot is and exit
#   deploy/riscv64-sysroot.sh --force       rebuild from scratch
#   deploy/riscv64-sysroot.sh --binfmt-only register binfmt and check it, no sysroot build
#   deploy/riscv64-sysroot.sh --check       verify an existing sysroot (no build), exit non-zero if bad
#
# Every mode but --print-path and --help first installs the host side (qemu-user-static,
#   the riscv64 cross compiler, mmdebstrap) through deploy/setup-debian.sh --no-pip.
# Where: $GKFS_RISCV64_SYSROOT, default /var/cache/gkfs/riscv64-sysroot.
# Reuse: a complete sysroot carries a stamp with the hash of the package list;
#   it is reused when the hash matches. With CI=true it is rebuilt from scratch
#   (CI must prove a fresh machine can build it) unless GKFS_SYSROOT_REUSE=1.
# Suites: tried in order (GKFS_SYSROOT_SUITES, default "trixie forky sid"):
#   one riscv64 index was once inconsistent, so the first suite that builds wins.
# Mirror: taken from the host's own apt sources (the reachable one), or
#   GKFS_DEBIAN_MIRROR.
#
# The binfmt entry uses the statically linked qemu with the F flag (the kernel
# opens the interpreter at registration, so it works in any mount namespace
# or chroot) and P (argv[0] preserved). A dynamically linked qemu would read
# LD_PRELOAD itself, which is why the static one is required.
set -euo pipefail

SYSROOT="${GKFS_RISCV64_SYSROOT:-/var/cache/gkfs/riscv64-sysroot}"
QEMU=/usr/bin/qemu-riscv64-static
BINFMT_DIR=/proc/sys/fs/binfmt_misc
BINFMT_NAME=qemu-riscv64
STAMP_NAME=.gkfs-sysroot-stamp
read -r -a SUITES <<<"${GKFS_SYSROOT_SUITES:-trixie forky sid}"

# What the sysroot holds. Changing this list changes the stamp hash, so an
# existing sysroot is rebuilt.
PACKAGES=(
  libc6 libc6-dev                  # glibc: the code we patch, and headers
  libzmq5 libzmq3-dev              # native client RPC
  libmsgpack-c-dev                 # msgpack-c (named so from trixie on)
  coreutils dash bash findutils tar gzip grep sed diffutils
  python3                          # python3 with threads in the tests
  fio                              # I/O workloads
  openmpi-bin libopenmpi-dev       # MPI programs run by mpirun
  sqlite3 libsqlite3-dev           # POSIX locks: the sqlite3 shell and its journal
  hdf5-tools libhdf5-dev           # POSIX locks: h5dump/h5repack/h5copy, HDF5 C programs
)

log() { printf 'riscv64-sysroot: %s\n' "$*" >&2; }
die() { printf 'riscv64-sysroot: error: %s\n' "$*" >&2; exit 1; }

package_hash() {
  # Format version 1; sorted, so reordering the list does not force a rebuild.
  { echo "gkfs-sysroot-v1 arch=riscv64"; printf '%s\n' "${PACKAGES[@]}" | sort -u; } |
    sha256sum | cut -d' ' -f1
}

# The Debian archive URI the host already uses (deb822 .sources or one-line
# .list files), skipping the security archive. Printed without trailing slash.
host_mirror() {
  if [[ -n "${GKFS_DEBIAN_MIRROR:-}" ]]; then echo "${GKFS_DEBIAN_MIRROR%/}"; return; fi
  local f uri
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -r "$f" ]] || continue
    # Each stanza: remember URIs and Suites; emit the URI of a stanza whose
    # suites are not security ones and whose URI path ends in /debian.
    uri=$(awk '
      function flush() { if (!done && u != "" && s !~ /-security/ && u ~ /\/debian\/?$/) { print u; done=1 } u=""; s="" }
      /^[[:space:]]*$/ { flush(); next }
      done { exit }
      tolower($1) == "uris:" { u=$2 }
      tolower($1) == "suites:" { $1=""; s=$0 }
      END { flush() }' "$f")
    if [[ -n "$uri" ]]; then echo "${uri%/}"; return; fi
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -r "$f" ]] || continue
    uri=$(awk '$1 == "deb" { i=2; if ($2 ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
               if ($(i+1) !~ /-security/ && $i ~ /\/debian\/?$/) { print $i; exit } }' "$f")
    if [[ -n "$uri" ]]; then echo "${uri%/}"; return; fi
  done
  return 1
}

# Files whose absence means the sysroot is not usable.
REQUIRED_FILES=(
  usr/lib/ld-linux-riscv64-lp64d.so.1
  usr/lib/riscv64-linux-gnu/libc.so.6
  usr/include/stdio.h
  usr/bin/ls usr/bin/dash usr/bin/bash usr/bin/python3 usr/bin/fio usr/bin/tar usr/bin/find
  usr/bin/mpirun
  usr/lib/riscv64-linux-gnu/libzmq.so
  usr/include/msgpack.h
)

check_sysroot() {
  local root="$1" f missing=0
  for f in "${REQUIRED_FILES[@]}"; do
    if [[ ! -e "$root/$f" ]]; then log "missing in sysroot: $f"; missing=1; fi
  done
  local d
  for d in bin sbin lib; do
    if [[ ! -L "$root/$d" ]]; then log "not a merged-/usr link: $d"; missing=1; fi
  done
  return $missing
}

# merged-/usr: bin, sbin, lib (and lib64 when a package ships it) point into
# usr/. Created before extraction (so packages that still ship /lib/... land in
# usr/lib) by the setup hook below; this function repairs anything left over.
merge_usr() {
  local root="$1" d
  for d in bin sbin lib lib64; do
    if [[ -d "$root/$d" && ! -L "$root/$d" ]]; then
      mkdir -p "$root/usr/$d"
      cp -a "$root/$d/." "$root/usr/$d/"
      rm -rf "${root:?}/$d"
    fi
    if [[ -d "$root/usr/$d" && ! -e "$root/$d" ]]; then
      ln -s "usr/$d" "$root/$d"
    fi
  done
}

# The extract variant runs no maintainer scripts, so update-alternatives never
# ran: make the links the MPI packages would have registered (only where the
# target exists and the name is still free).
link_alternatives() {
  local root="$1" name impl
  for name in mpirun mpiexec mpicc mpicxx mpic++ mpif77 mpif90 mpifort orterun; do
    for impl in openmpi mpich; do
      if [[ -e "$root/usr/bin/$name.$impl" && ! -e "$root/usr/bin/$name" ]]; then
        ln -s "$name.$impl" "$root/usr/bin/$name"
      fi
    done
  done
  # libopenmpi-dev's "mpi-<triplet>" alternative: headers and pkg-config.
  local t=riscv64-linux-gnu
  if [[ -d "$root/usr/lib/$t/openmpi/include" && ! -e "$root/usr/include/$t/mpi" ]]; then
    mkdir -p "$root/usr/include/$t"
    ln -s "../../lib/$t/openmpi/include" "$root/usr/include/$t/mpi"
  fi
  if [[ -e "$root/usr/lib/$t/pkgconfig/ompi.pc" && ! -e "$root/usr/lib/$t/pkgconfig/mpi.pc" ]]; then
    ln -s ompi.pc "$root/usr/lib/$t/pkgconfig/mpi.pc"
  fi
}

build_sysroot() {
  local mirror tmp suite ok="" t0 t1
  mirror=$(host_mirror) || die "cannot find a Debian mirror in /etc/apt/sources.list*; set GKFS_DEBIAN_MIRROR"
  log "mirror (from host apt configuration): $mirror"
  command -v mmdebstrap >/dev/null || die "mmdebstrap not installed (run deploy/setup-debian.sh --no-pip)"
  mkdir -p "$(dirname "$SYSROOT")"
  tmp="$SYSROOT.partial"
  t0=$(date +%s)
  for suite in "${SUITES[@]}"; do
    rm -rf "$tmp"
    log "building $suite riscv64 sysroot in $tmp (${#PACKAGES[@]} packages and their dependencies)"
    local include
    include=$(IFS=,; echo "${PACKAGES[*]}")
    if mmdebstrap \
        --variant=extract --arch=riscv64 --mode=root \
        --aptopt='Acquire::Check-Valid-Until "false"' \
        --aptopt='Acquire::Retries "3"' \
        --keyring=/usr/share/keyrings/debian-archive-keyring.gpg \
        --setup-hook='for d in bin sbin lib; do mkdir -p "$1/usr/$d"; ln -s "usr/$d" "$1/$d"; done' \
        --include="$include" \
        "$suite" "$tmp" "deb $mirror $suite main" >&2; then
      merge_usr "$tmp"
      link_alternatives "$tmp"
      if check_sysroot "$tmp"; then ok=$suite; break; fi
      log "$suite: sysroot incomplete, trying the next suite"
    else
      log "$suite: mmdebstrap failed, trying the next suite"
    fi
  done
  [[ -n "$ok" ]] || { rm -rf "$tmp"; die "no suite of (${SUITES[*]}) gave a complete riscv64 sysroot"; }
  t1=$(date +%s)
  printf 'hash=%s\nsuite=%s\nmirror=%s\nbuilt=%s\nseconds=%s\n' \
    "$(package_hash)" "$ok" "$mirror" "$(date -u +%FT%TZ)" "$((t1 - t0))" >"$tmp/$STAMP_NAME"
  rm -rf "$SYSROOT"
  mv "$tmp" "$SYSROOT"
  log "built $ok sysroot at $SYSROOT in $((t1 - t0)) s ($(du -sh "$SYSROOT" | cut -f1))"
}

sysroot_is_current() {
  [[ -f "$SYSROOT/$STAMP_NAME" ]] || return 1
  grep -qx "hash=$(package_hash)" "$SYSROOT/$STAMP_NAME" || return 1
  check_sysroot "$SYSROOT"
}

register_binfmt() {
  [[ -x "$QEMU" ]] || die "$QEMU not found (install qemu-user-static: deploy/setup-debian.sh --no-pip)"
  if [[ ! -e "$BINFMT_DIR/register" ]]; then
    mkdir -p "$BINFMT_DIR" 2>/dev/null || true
    mount -t binfmt_misc binfmt_misc "$BINFMT_DIR" ||
      die "cannot mount binfmt_misc on $BINFMT_DIR (needed so riscv64 programs can exec riscv64 children)"
  fi
  if [[ -e "$BINFMT_DIR/status" ]] && [[ "$(cat "$BINFMT_DIR/status")" != enabled ]]; then
    echo 1 >"$BINFMT_DIR/status"
  fi
  local entry="$BINFMT_DIR/$BINFMT_NAME"
  if [[ -e "$entry" ]]; then
    if grep -qx "interpreter $QEMU" "$entry" && grep -q '^flags: .*F' "$entry" && grep -qx enabled "$entry"; then
      return 0
    fi
    log "replacing binfmt entry $BINFMT_NAME ($(grep '^interpreter' "$entry"))"
    echo -1 >"$entry"
  fi
  # ELF header of a 64-bit little-endian RISC-V executable or shared object
  # (e_machine 0xf3); the mask ignores the OS ABI byte and ET_EXEC/ET_DYN.
  local magic='\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xf3\x00'
  local mask='\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff'
  if ! printf '%s' ":$BINFMT_NAME:M::$magic:$mask:$QEMU:PF" >"$BINFMT_DIR/register" 2>/dev/null; then
    log "registering with flags PF failed, trying F"
    printf '%s' ":$BINFMT_NAME:M::$magic:$mask:$QEMU:F" >"$BINFMT_DIR/register" ||
      die "cannot register binfmt entry for riscv64"
  fi
  log "binfmt: $BINFMT_NAME -> $QEMU ($(grep '^flags' "$entry"))"
}

# The proof that matters: a riscv64 dash, run by qemu, forks and execs a
# riscv64 ls (kernel -> binfmt -> static qemu) and both see the sysroot.
check_exec_children() {
  local out
  out=$(QEMU_LD_PREFIX="$SYSROOT" "$QEMU" "$SYSROOT/usr/bin/dash" -c \
        "'$SYSROOT/usr/bin/ls' -d '$SYSROOT/usr/bin' | '$SYSROOT/usr/bin/cat'" 2>&1) ||
    die "riscv64 dash could not run a riscv64 ls child: $out"
  [[ "$out" == "$SYSROOT/usr/bin" ]] || die "riscv64 child exec gave unexpected output: $out"
  log "ok: riscv64 dash ran riscv64 ls and cat children under qemu"
}

main() {
  local mode=build
  case "${1:-}" in
    --print-path) echo "$SYSROOT"; exit 0 ;;
    --force) mode=force ;;
    --binfmt-only) mode=binfmt ;;
    --check) mode=check ;;
    "") ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
  # The sysroot is deleted and replaced on rebuild: only accept an absolute
  # path at least two levels deep (never /, /usr, /var, ...).
  [[ "$SYSROOT" == /?*/?* ]] ||
    die "refusing sysroot path '$SYSROOT': give an absolute path at least two levels deep"
  [[ $(id -u) -eq 0 ]] || die "must run as root (mmdebstrap root mode, binfmt_misc registration)"
  # qemu-user-static, the riscv64 cross compiler and mmdebstrap: the host
  # packages come from setup-debian.sh's one list (idempotent: a dpkg query
  # when all are installed), so this script alone prepares a fresh machine.
  bash "$(dirname "$0")/setup-debian.sh" --no-pip
  if [[ $mode == check ]]; then
    sysroot_is_current || die "sysroot at $SYSROOT is missing, incomplete or stale"
    register_binfmt; check_exec_children; exit 0
  fi
  if [[ $mode == build || $mode == force ]]; then
    local rebuild=""
    if [[ $mode == force ]]; then rebuild="--force"
    elif [[ "${CI:-}" == true && "${GKFS_SYSROOT_REUSE:-}" != 1 ]]; then rebuild="CI=true"
    elif ! sysroot_is_current; then rebuild="no complete sysroot with this package list"
    fi
    if [[ -n "$rebuild" ]]; then
      log "building ($rebuild)"
      build_sysroot
    else
      log "reusing $SYSROOT ($(grep '^suite=' "$SYSROOT/$STAMP_NAME"))"
    fi
  fi
  register_binfmt
  if [[ -e "$SYSROOT/usr/bin/dash" ]]; then check_exec_children; fi
}

main "$@"
