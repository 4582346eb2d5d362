# planner.cmake - the pure planner (decode, plan, emit): no system calls, no
# allocation, so the same sources serve the run-time patcher (riscv64) and
# the host tools (cffi: libgkfs_plan.so) and native unit tests.
# The architecture (GKFS_PLAN_ARCH) brings its sources in its own
# src/arch/<arch>/arch.cmake; nothing here names one.
include(${CMAKE_CURRENT_LIST_DIR}/../src/arch/${GKFS_PLAN_ARCH}/arch.cmake)
set(GKFS_PLAN_SOURCES
  ${CMAKE_CURRENT_LIST_DIR}/../src/plan/scan.c
  ${CMAKE_CURRENT_LIST_DIR}/../src/plan/names.c
  ${GKFS_ARCH_PLAN_SOURCES}
)

add_library(gkfs_plan STATIC ${GKFS_PLAN_SOURCES})
set_target_properties(gkfs_plan PROPERTIES POSITION_INDEPENDENT_CODE ON)
target_include_directories(gkfs_plan
  PUBLIC  ${CMAKE_CURRENT_LIST_DIR}/../include
  PRIVATE ${CMAKE_CURRENT_LIST_DIR}/../src)
# The patcher runs it before libc is patched, possibly early: keep it free
# of stack protector/fortify calls into libc.
target_compile_options(gkfs_plan PRIVATE -O2 -fno-stack-protector -U_FORTIFY_SOURCE)

if(GKFS_ARCH STREQUAL "host")
  # Same sources as a shared object for cffi (ABI mode, ffi.dlopen).
  add_library(gkfs_plan_shared SHARED ${GKFS_PLAN_SOURCES})
  set_target_properties(gkfs_plan_shared PROPERTIES OUTPUT_NAME gkfs_plan C_VISIBILITY_PRESET default)
  target_include_directories(gkfs_plan_shared
    PUBLIC  ${CMAKE_CURRENT_LIST_DIR}/../include
    PRIVATE ${CMAKE_CURRENT_LIST_DIR}/../src)
  target_compile_options(gkfs_plan_shared PRIVATE -O2)

  # Native unit test: encoder/decoder round trips and planner invariants.
  add_executable(gkfs_plan_selftest ${CMAKE_CURRENT_LIST_DIR}/../tests/planner/plan_selftest.c)
  target_link_libraries(gkfs_plan_selftest PRIVATE gkfs_plan)
  target_include_directories(gkfs_plan_selftest PRIVATE ${CMAKE_CURRENT_LIST_DIR}/../src)
  enable_testing()
  add_test(NAME plan_selftest COMMAND gkfs_plan_selftest)
endif()
