# Cross toolchain for riscv64 Linux (Debian's gcc-riscv64-linux-gnu).
#
# By default the compiler's own cross glibc (/usr/riscv64-linux-gnu) is used,
# which is all the core needs. Set GKFS_RISCV64_SYSROOT (cache variable or
# environment) to a Debian riscv64 sysroot (deploy/riscv64-sysroot.sh
# --print-path) to find further libraries there (libzmq, msgpack-c, MPI):
# find_library/find_path then search the sysroot too, and the linker resolves
# their dependencies through -rpath-link. The core itself is still compiled
# against the cross glibc, so the library runs on any newer riscv64 glibc.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR riscv64)

set(GKFS_RISCV64_TRIPLE riscv64-linux-gnu)
find_program(GKFS_RISCV64_GCC ${GKFS_RISCV64_TRIPLE}-gcc)
if(NOT GKFS_RISCV64_GCC)
  message(FATAL_ERROR "riscv64-linux-gnu-gcc not found: install gcc-riscv64-linux-gnu "
                      "(deploy/setup-debian.sh --no-pip)")
endif()
set(CMAKE_C_COMPILER ${GKFS_RISCV64_GCC})
set(CMAKE_ASM_COMPILER ${GKFS_RISCV64_GCC})
find_program(GKFS_RISCV64_GXX ${GKFS_RISCV64_TRIPLE}-g++)
if(GKFS_RISCV64_GXX)
  set(CMAKE_CXX_COMPILER ${GKFS_RISCV64_GXX})
endif()

if(NOT DEFINED GKFS_RISCV64_SYSROOT AND DEFINED ENV{GKFS_RISCV64_SYSROOT})
  set(GKFS_RISCV64_SYSROOT "$ENV{GKFS_RISCV64_SYSROOT}")
endif()
set(GKFS_RISCV64_SYSROOT "${GKFS_RISCV64_SYSROOT}" CACHE PATH
    "optional riscv64 Debian sysroot for extra libraries (libzmq, msgpack-c, MPI)")
# try_compile projects re-read this file; pass the variable on to them.
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES GKFS_RISCV64_SYSROOT)

set(CMAKE_FIND_ROOT_PATH /usr/${GKFS_RISCV64_TRIPLE})
if(GKFS_RISCV64_SYSROOT)
  if(NOT EXISTS "${GKFS_RISCV64_SYSROOT}/usr/lib/${GKFS_RISCV64_TRIPLE}")
    message(FATAL_ERROR "GKFS_RISCV64_SYSROOT=${GKFS_RISCV64_SYSROOT} is not a riscv64 sysroot "
                        "(no usr/lib/${GKFS_RISCV64_TRIPLE}); run deploy/riscv64-sysroot.sh")
  endif()
  list(APPEND CMAKE_FIND_ROOT_PATH "${GKFS_RISCV64_SYSROOT}")
  # Debian's multiarch directories inside the sysroot.
  list(APPEND CMAKE_LIBRARY_PATH "/usr/lib/${GKFS_RISCV64_TRIPLE}")
  string(APPEND CMAKE_EXE_LINKER_FLAGS_INIT
         " -Wl,-rpath-link,${GKFS_RISCV64_SYSROOT}/usr/lib/${GKFS_RISCV64_TRIPLE}")
  string(APPEND CMAKE_SHARED_LINKER_FLAGS_INIT
         " -Wl,-rpath-link,${GKFS_RISCV64_SYSROOT}/usr/lib/${GKFS_RISCV64_TRIPLE}")
endif()

# Programs (cmake, python, capstone tools) come from the host; libraries and
# headers only from the target roots.
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# How riscv64 programs run here (ctest, custom commands): the static qemu
# with the sysroot (or the cross glibc) as loader prefix.
find_program(GKFS_QEMU_RISCV64 qemu-riscv64-static)
if(GKFS_QEMU_RISCV64)
  if(GKFS_RISCV64_SYSROOT)
    set(CMAKE_CROSSCOMPILING_EMULATOR ${GKFS_QEMU_RISCV64} -L ${GKFS_RISCV64_SYSROOT})
  else()
    set(CMAKE_CROSSCOMPILING_EMULATOR ${GKFS_QEMU_RISCV64} -L /usr/${GKFS_RISCV64_TRIPLE})
  endif()
endif()
