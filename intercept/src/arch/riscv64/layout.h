/*
 * layout.h - sizes of the patch shapes (see plan.h's convention).
 *
 * JAL trampoline (44 bytes, all uncompressed so ret1 = ret0 + 12):
 *   addi sp,-16; sd ra,0(sp); auipc ra; jalr ra -> gk_entry      16
 *   ret0: ld ra,0(sp); addi sp,16; jal x0, ecall+4               12
 *   ret1: ld ra,0(sp); addi sp,16; ecall; jal x0, ecall+4        16
 *
 * Gateway window (16..32 bytes of whole instructions):
 *   c.addi sp,-16; c.sdsp ra,0(sp); auipc ra; jalr ra -> stub;       12
 *   gadget k: c.ldsp ra,0(sp); c.addi sp,16; jal x0, far target k     8 each
 *   c.nop...  (never executed)
 *   tail: c.ldsp ra,0(sp); c.addi sp,16                                4
 * Gateway stub (68 bytes + the relocated instructions):
 *   ld ra,0(sp); addi sp,16                      undo the gateway: exact state
 *   reentry: <relocated instructions before the ecall>
 *   <the 44-byte trampoline shape, jal x0 -> after>
 *   after: <relocated instructions after the ecall>
 *   exit: addi sp,-16; sd ra,0(sp); auipc ra; jalr x0 -> tail
 *   far exit k: addi sp,-16; sd ra,0(sp); auipc ra; jalr x0 -> gadget k
 */
#ifndef GKFS_RV_LAYOUT_H
#define GKFS_RV_LAYOUT_H

#define RV_JAL_TRAMP_LEN 44
#define RV_TRAMP_CALL_LEN 16      /* addi, sd, auipc, jalr */
#define RV_TRAMP_RET0_OFF 16      /* ret0 after the call */
#define RV_GW_MIN_LEN 16
#define RV_GW_MAX_LEN 32
#define RV_GW_HEAD_LEN 12         /* prologue + auipc + jalr */
#define RV_GW_GADGET_LEN 8
#define RV_STUB_FAR_LEN 16
#define RV_GW_TAIL_LEN 4          /* c.ldsp + c.addi at the window's end */
#define RV_STUB_UNDO_LEN 8
#define RV_STUB_EXIT_LEN 16
#define RV_STUB_FIXED (RV_STUB_UNDO_LEN + RV_JAL_TRAMP_LEN + RV_STUB_EXIT_LEN)

#endif
