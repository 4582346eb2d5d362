#!/usr/bin/env bash
# Configures and builds the native interception core twice (incrementally:
# re-running only rebuilds what changed):
#   build/host     the pure planner for the host (libgkfs_plan.so, for cffi
#                  and the host unit tests)
#   build/riscv64  the riscv64 core (libsyscall_intercept.so,
#                  libgkfs_intercept.so), C test programs and example hooks
#
#   deploy/build-native.sh              both builds
#   deploy/build-native.sh host         host only
#   deploy/build-native.sh riscv64      riscv64 only
#   deploy/build-native.sh --clean ...  remove the build directories first
#
# Environment: GKFS_BUILD_DIR (default <repo>/build), GKFS_RISCV64_SYSROOT
# (default: what deploy/riscv64-sysroot.sh --print-path says, used when it
# exists), CMAKE_BUILD_TYPE (default RelWithDebInfo), GKFS_BUILD_JOBS.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
src="$root/intercept"
build="${GKFS_BUILD_DIR:-$root/build}"
jobs="${GKFS_BUILD_JOBS:-$(nproc)}"
build_type="${CMAKE_BUILD_TYPE:-RelWithDebInfo}"

log() { printf 'build-native: %s\n' "$*" >&2; }
die() { printf 'build-native: error: %s\n' "$*" >&2; exit 1; }

clean=""
targets=()
for a in "$@"; do
  case "$a" in
    --clean) clean=1 ;;
    host|riscv64) targets+=("$a") ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$a' (expected host, riscv64, --clean)" ;;
  esac
done
((${#targets[@]})) || targets=(host riscv64)

command -v cmake >/dev/null || die "cmake not found (run deploy/setup-debian.sh --no-pip)"
[[ -f "$src/CMakeLists.txt" ]] || die "$src/CMakeLists.txt missing"
generator=()
if command -v ninja >/dev/null; then generator=(-G Ninja); fi

# Configuring an existing build directory is cheap and keeps its cache in
# step with the arguments (a new sysroot path, say). An existing directory
# keeps the generator it was made with; a new one uses Ninja when present.
configure() {
  local dir="$1"; shift
  local gen=()
  [[ -f "$dir/CMakeCache.txt" ]] || gen=("${generator[@]}")
  log "configuring $dir"
  mkdir -p "$dir"
  cmake -S "$src" -B "$dir" "${gen[@]}" -DCMAKE_BUILD_TYPE="$build_type" "$@" >"$dir.configure.log" 2>&1 || {
    cat "$dir.configure.log" >&2
    die "configuring $dir failed (CMake messages above, also in $dir.configure.log)"
  }
  grep -E '^CMake (Warning|Error)' -A4 "$dir.configure.log" >&2 || true
}

build_one() {
  local arch="$1" dir="$build/$1" t0
  t0=$(date +%s)
  [[ -n "$clean" ]] && rm -rf "$dir"
  mkdir -p "$build"
  case "$arch" in
    host)
      configure "$dir"
      ;;
    riscv64)
      command -v riscv64-linux-gnu-gcc >/dev/null ||
        die "riscv64-linux-gnu-gcc not found (run deploy/setup-debian.sh --no-pip)"
      local sysroot="${GKFS_RISCV64_SYSROOT:-}"
      if [[ -z "$sysroot" && -x "$root/deploy/riscv64-sysroot.sh" ]]; then
        sysroot="$(bash "$root/deploy/riscv64-sysroot.sh" --print-path)"
      fi
      local sysroot_arg=()
      if [[ -n "$sysroot" && -d "$sysroot/usr/lib/riscv64-linux-gnu" ]]; then
        sysroot_arg=(-DGKFS_RISCV64_SYSROOT="$sysroot")
      else
        log "no riscv64 sysroot at '${sysroot:-?}': linking against the cross glibc only"
      fi
      configure "$dir" -DCMAKE_TOOLCHAIN_FILE="$src/cmake/toolchain-riscv64.cmake" "${sysroot_arg[@]}"
      ;;
  esac
  log "building $dir"
  cmake --build "$dir" -j "$jobs" || die "building $arch failed (see the compiler messages above)"
  log "$arch done in $(( $(date +%s) - t0 )) s"
}

for t in "${targets[@]}"; do build_one "$t"; done
