#!/usr/bin/env bash
# Installs the Debian packages gkfs needs on the host (idempotent: apt skips
# what is already there) and the Python package itself in editable mode.
#   deploy/setup-debian.sh            host packages + pip install -e .[test]
#   deploy/setup-debian.sh --no-pip   host packages only
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
pkgs=(
  build-essential cmake pkg-config
  libzmq3-dev libmsgpack-dev liblmdb-dev      # native client + C tests
  libcapstone-dev                              # decoder oracle in C tests
  qemu-user-static binfmt-support              # riscv64 user-mode emulation
  gcc-riscv64-linux-gnu g++-riscv64-linux-gnu libc6-dev-riscv64-cross
  mmdebstrap debian-archive-keyring            # riscv64 sysroot builder
  fio tar coreutils
  tcpdump passwd                               # security tests: loopback capture, a second local user
  python3-zmq python3-msgpack                  # the attack tests' second user runs Debian's python3
  iproute2 util-linux                          # multi-host tests: network namespaces, nsenter/unshare
  slurmd slurmctld slurm-client munge          # Slurm launcher tests (real Slurm on namespaces)
  openmpi-bin                                  # mpirun launcher tests (host mpirun, nsenter as its rsh)
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  echo "setup: installing ${missing[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
if [[ "${1:-}" != "--no-pip" ]]; then
  python3 -m pip install -q -e "$here[test]"
fi
