/*
 * relocate.h - moving the instructions of a gateway window into its stub.
 *
 * The stub runs them in the program's exact register state (the gateway
 * prologue is undone first), so only pc-relative instructions change:
 *   auipc rd       -> auipc rd + addi rd   (exact original value, +-2 GiB)
 *   jal rd!=0      -> auipc rd + jalr rd   (rd is overwritten by the link)
 *   branches, c.beqz/c.bnez, c.j, jal x0
 *                  -> a 4-byte stub-local branch/jal: to `reentry` (the
 *                     stub's copy of the window start) or `exit` (the return
 *                     into the window tail) when the target is the window's
 *                     start or end; else to a "far exit" k, which re-saves
 *                     ra and jumps back (auipc ra; jalr x0) to gadget k in
 *                     the window's never-executed middle: `c.ldsp ra,0(sp);
 *                     c.addi sp,16; jal x0, target`.  The window is near the
 *                     target, the stub need not be: no register is clobbered.
 * Everything else is not pc-relative and is copied byte for byte.
 */
#ifndef GKFS_RV_RELOCATE_H
#define GKFS_RV_RELOCATE_H

#include <stdint.h>
#include "decode.h"

#define RV_MAX_FAR 2

struct rv_win {
	uint64_t start, end;     /* original window [start, end) */
	uint64_t reentry, exit;  /* stub labels standing for start and end */
	unsigned n_far;          /* distinct out-of-window targets */
	uint64_t far_target[RV_MAX_FAR];
	uint64_t far_exit[RV_MAX_FAR];   /* stub labels, one per far target */
};

/* Bytes the relocated copy of `in` (at pc) takes, or -1 if it can't move.
   Depends only on the window, never on where the stub goes.  Records far
   targets in w (call it once per instruction, in order). */
int rv_reloc_size(const struct rv_insn *in, uint64_t pc, struct rv_win *w);

/* Write the relocated copy (at new_pc) to out; `orig` is the original
   bytes.  Returns the bytes written or -1 if a reach is exceeded. */
int rv_reloc_emit(const struct rv_insn *in, const uint8_t *orig, uint64_t pc,
                  uint64_t new_pc, const struct rv_win *w, uint8_t *out);

#endif
