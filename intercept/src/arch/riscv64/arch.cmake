# riscv64: the planner's decoder, sweeps, windows, relocation and emitter,
# and the run-time side of arch_runtime.h (entry, raw call, cache flush).
set(GKFS_ARCH_PLAN_SOURCES
  ${CMAKE_CURRENT_LIST_DIR}/decode.c
  ${CMAKE_CURRENT_LIST_DIR}/sweep.c
  ${CMAKE_CURRENT_LIST_DIR}/relocate.c
  ${CMAKE_CURRENT_LIST_DIR}/window.c
  ${CMAKE_CURRENT_LIST_DIR}/emit.c)
set(GKFS_ARCH_RT_SOURCES
  ${CMAKE_CURRENT_LIST_DIR}/entry.S
  ${CMAKE_CURRENT_LIST_DIR}/runtime.c)
