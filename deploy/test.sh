#!/usr/bin/env bash
# The one test command: installs what is missing (Debian packages, the
# riscv64 sysroot, the Python package), builds the native core for the host
# and for riscv64, then runs the whole pytest suite.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
bash deploy/setup-debian.sh
if [[ -x deploy/riscv64-sysroot.sh ]]; then bash deploy/riscv64-sysroot.sh; fi
if [[ -x deploy/build-native.sh ]]; then bash deploy/build-native.sh; fi
exec python3 -m pytest "$@"
