/*
 * entry.S - gk_entry, the one shared entry every patched ecall reaches.
 *
 * Convention (plan.h): a per-site trampoline did
 *     addi sp,sp,-16 ; sd ra,0(sp) ; auipc ra ; jalr ra -> gk_entry
 * so here every register is as at the ecall except ra (= ret0 in the
 * trampoline) and sp (16 lower, the program's ra at 0(sp)).  We return to
 * ret0 with a0 = result, or to ret0 + GK_TRAMP_RAW_OFFSET (ret1) with every
 * register restored so the trampoline performs the real ecall itself.
 * Calls the hook does not want take that second way at once (fast path
 * below), the rest after the dispatcher.
 */
#include "../arch_runtime.h"

	.option	push
	.option	norvc           /* plain 4-byte instructions: easy to read in gdb */

/* Build a 16-byte aligned frame below the current sp without assuming sp
 * is aligned (inside hand-written assembly it may not be) and without
 * writing below sp (no red zone: a signal could land there). */
.macro	FRAME_PUSH
	addi	sp, sp, -(GK_FRAME_SIZE + 16)
	sd	t0, (GK_FRAME_SIZE + 8)(sp)     /* scratch slot at old sp - 8 */
	addi	t0, sp, (GK_FRAME_SIZE + 16)    /* t0 = old sp */
	andi	sp, sp, -16
	sd	t0, GK_FR_SPIN(sp)
	ld	t0, -8(t0)                      /* the program's t0 again */
	sd	ra, GK_FR_RA(sp)
	sd	t0, GK_FR_T0+0(sp)
	sd	t1, GK_FR_T0+8(sp)
	sd	t2, GK_FR_T0+16(sp)
	sd	t3, GK_FR_T0+24(sp)
	sd	t4, GK_FR_T0+32(sp)
	sd	t5, GK_FR_T0+40(sp)
	sd	t6, GK_FR_T0+48(sp)
	sd	a0, GK_FR_A0+0(sp)
	sd	a1, GK_FR_A0+8(sp)
	sd	a2, GK_FR_A0+16(sp)
	sd	a3, GK_FR_A0+24(sp)
	sd	a4, GK_FR_A0+32(sp)
	sd	a5, GK_FR_A0+40(sp)
	sd	a6, GK_FR_A0+48(sp)
	sd	a7, GK_FR_A0+56(sp)
	frcsr	t0
	sd	t0, GK_FR_FCSR(sp)
	fsd	ft0, GK_FR_FT0+0(sp)
	fsd	ft1, GK_FR_FT0+8(sp)
	fsd	ft2, GK_FR_FT0+16(sp)
	fsd	ft3, GK_FR_FT0+24(sp)
	fsd	ft4, GK_FR_FT0+32(sp)
	fsd	ft5, GK_FR_FT0+40(sp)
	fsd	ft6, GK_FR_FT0+48(sp)
	fsd	ft7, GK_FR_FT0+56(sp)
	fsd	ft8, GK_FR_FT0+64(sp)
	fsd	ft9, GK_FR_FT0+72(sp)
	fsd	ft10, GK_FR_FT0+80(sp)
	fsd	ft11, GK_FR_FT0+88(sp)
	fsd	fa0, GK_FR_FA0+0(sp)
	fsd	fa1, GK_FR_FA0+8(sp)
	fsd	fa2, GK_FR_FA0+16(sp)
	fsd	fa3, GK_FR_FA0+24(sp)
	fsd	fa4, GK_FR_FA0+32(sp)
	fsd	fa5, GK_FR_FA0+40(sp)
	fsd	fa6, GK_FR_FA0+48(sp)
	fsd	fa7, GK_FR_FA0+56(sp)
.endm

/* Reload every saved register except sp (the frame stays addressable). */
.macro	FRAME_RELOAD
	ld	t0, GK_FR_FCSR(sp)
	fscsr	t0
	fld	ft0, GK_FR_FT0+0(sp)
	fld	ft1, GK_FR_FT0+8(sp)
	fld	ft2, GK_FR_FT0+16(sp)
	fld	ft3, GK_FR_FT0+24(sp)
	fld	ft4, GK_FR_FT0+32(sp)
	fld	ft5, GK_FR_FT0+40(sp)
	fld	ft6, GK_FR_FT0+48(sp)
	fld	ft7, GK_FR_FT0+56(sp)
	fld	ft8, GK_FR_FT0+64(sp)
	fld	ft9, GK_FR_FT0+72(sp)
	fld	ft10, GK_FR_FT0+80(sp)
	fld	ft11, GK_FR_FT0+88(sp)
	fld	fa0, GK_FR_FA0+0(sp)
	fld	fa1, GK_FR_FA0+8(sp)
	fld	fa2, GK_FR_FA0+16(sp)
	fld	fa3, GK_FR_FA0+24(sp)
	fld	fa4, GK_FR_FA0+32(sp)
	fld	fa5, GK_FR_FA0+40(sp)
	fld	fa6, GK_FR_FA0+48(sp)
	fld	fa7, GK_FR_FA0+56(sp)
	ld	ra, GK_FR_RA(sp)
	ld	t0, GK_FR_T0+0(sp)
	ld	t1, GK_FR_T0+8(sp)
	ld	t2, GK_FR_T0+16(sp)
	ld	t3, GK_FR_T0+24(sp)
	ld	t4, GK_FR_T0+32(sp)
	ld	t5, GK_FR_T0+40(sp)
	ld	t6, GK_FR_T0+48(sp)
	ld	a0, GK_FR_A0+0(sp)
	ld	a1, GK_FR_A0+8(sp)
	ld	a2, GK_FR_A0+16(sp)
	ld	a3, GK_FR_A0+24(sp)
	ld	a4, GK_FR_A0+32(sp)
	ld	a5, GK_FR_A0+40(sp)
	ld	a6, GK_FR_A0+48(sp)
	ld	a7, GK_FR_A0+56(sp)
.endm

	.text
/* Reached from a far veneer (runtime.c: gk_arch_far_veneer), which pushed
 * 16 bytes holding the program's t0: give both back, then be gk_entry. */
	.globl	gk_entry_far
	.hidden	gk_entry_far
	.type	gk_entry_far, @function
	.p2align 2
gk_entry_far:
	ld	t0, 0(sp)
	addi	sp, sp, 16
	.size	gk_entry_far, .-gk_entry_far
	/* falls through */
	.globl	gk_entry
	.hidden	gk_entry
	.type	gk_entry, @function
gk_entry:
/*
 * Fast path (arch_runtime.h, "Which calls"): a call the hook never wants
 * - by its number, or a descriptor call on an unmarked descriptor - goes
 * back to ret1, where the trampoline makes the program's own ecall, before
 * anything else is saved.  t0 and t1 are the only registers used, kept in
 * 16 bytes taken below sp first (no red zone) and restored on both ways
 * out: every register is the program's again when we leave.
 */
	addi	sp, sp, -16
	sd	t0, 0(sp)
	sd	t1, 8(sp)
	/* index = a7, or the table's last entry (always wanted) for any
	 * number beyond it, negative ones included: no branch */
	sltiu	t1, a7, GK_WANT_NR - 1
	addi	t1, t1, -1
	or	t0, a7, t1
	andi	t0, t0, GK_WANT_NR - 1
	lla	t1, gk_want
	add	t0, t0, t1
	lbu	t0, 0(t0)
	bnez	t0, .Lclass
.Lunwanted:
	ld	t1, 8(sp)
	ld	t0, 0(sp)
	addi	sp, sp, 16
	jr	GK_ENTRY_RAW_OFFSET(ra)  /* -> ret1: the trampoline's ecall */
.Lfd_out:                               /* t0 = a descriptor beyond the table */
	sext.w	t1, t0
	bne	t1, t0, .Lwanted        /* not an int: the dispatcher decides */
	bltz	t0, .Lunwanted          /* a negative int: nobody's mark */
	j	.Lwanted                /* above the table: may be anybody's */
.Lclass:
	addi	t0, t0, -GK_WANT_FD_ARG0
	beqz	t0, .Lfd_arg0
	addi	t0, t0, GK_WANT_FD_ARG0 - GK_WANT_FD_ARG4
	beqz	t0, .Lfd_arg4
	addi	t0, t0, GK_WANT_FD_ARG4 - GK_WANT_FD_KEPT_ARG0
	bnez	t0, .Lwanted            /* GK_WANT_ALWAYS */
	mv	t0, a0                  /* close: any record of the descriptor */
	li	t1, GK_WANT_FDS
	bgeu	t0, t1, .Lfd_out
	lla	t1, gk_want_fd_kept
	j	.Lfd_load
.Lfd_arg4:
	mv	t0, a4
	j	.Lfd
.Lfd_arg0:
	mv	t0, a0
.Lfd:
	li	t1, GK_WANT_FDS
	bgeu	t0, t1, .Lfd_out        /* negative or beyond the table */
	lla	t1, gk_want_fd
.Lfd_load:
	add	t1, t1, t0
	lbu	t1, 0(t1)
	beqz	t1, .Lunwanted          /* not a marked descriptor */
.Lwanted:
	ld	t1, 8(sp)
	ld	t0, 0(sp)
	addi	sp, sp, 16
	FRAME_PUSH
	mv	a0, sp
	call	gk_dispatch
	li	t0, GK_ACT_CLONE
	beq	a0, t0, .Lclone
	li	t0, GK_ACT_VFORK
	beq	a0, t0, .Lvfork
	bnez	a0, .Lraw
	FRAME_RELOAD                    /* a0 = result written by dispatcher */
	ld	sp, GK_FR_SPIN(sp)
	ret                             /* -> ret0 */
.Lraw:
	FRAME_RELOAD
	ld	sp, GK_FR_SPIN(sp)
	jr	GK_ENTRY_RAW_OFFSET(ra)     /* -> ret1: trampoline does the ecall */

/*
 * vfork-like clone (CLONE_VFORK): the child runs on the parent's stack
 * (or a stack posix_spawn gave it) until it execs or exits, so nothing of
 * ours may stay on the stack across the ecall: the program's ra (which the
 * trampoline pushed) goes to the thread's gk_vfork_ra, every register is
 * the program's (ra aside: ret0, which the kernel preserves), sp exactly
 * the program's.  After the ecall, in the child and (once the child is
 * gone) in the parent, memory below sp is the caller's to use again: a
 * fresh frame there runs gk_vfork_post, which pushes the program's ra back
 * below sp for ret0 to pop, as after any other call.
 */
.Lvfork:
	ld	t0, GK_FR_SPIN(sp)
	ld	t1, 0(t0)                       /* the program's ra */
	la.tls.ie t2, gk_vfork_ra
	add	t2, t2, tp
	sd	t1, 0(t2)
	FRAME_RELOAD
	ld	sp, GK_FR_SPIN(sp)
	addi	sp, sp, GK_ARCH_TRAMP_STACK_DEPTH /* the program's own sp */
	ecall
	FRAME_PUSH
	mv	a0, sp
	call	gk_vfork_post                   /* hooks; pushes the program's ra */
	FRAME_RELOAD
	ld	sp, GK_FR_SPIN(sp)
	ret                                     /* -> ret0 */

/*
 * clone/clone3 with a new stack.  The ecall is made here with every
 * register as the program had it (sp aside: the parent keeps our frame,
 * the kernel gives the child its new stack).  Before the call the
 * dispatcher copied the trampoline's stack words (the program's ra, and
 * for a gateway the window's too) to just below the child's stack top;
 * the child builds a frame under them, runs the child hook, and leaves
 * through ret0 with sp pointing at the copy, so the trampoline (and a
 * gateway window's tail) pop it exactly as in the parent and the child
 * reaches the code after the ecall with sp = its new stack.  The child
 * never touches the parent's stack.
 */
.Lclone:
	FRAME_RELOAD
	ecall
	bnez	a0, .Lclone_parent      /* child tid, or -errno */
	addi	sp, sp, -64             /* child: keep clear of the copied words */
	FRAME_PUSH                      /* on the child's own stack */
	mv	a0, sp
	call	gk_clone_child_post     /* points the frame's sp at the copy */
	FRAME_RELOAD                    /* a0 = 0 as saved */
	ld	sp, GK_FR_SPIN(sp)
	ret                             /* ra = ret0 survived the ecall */
.Lclone_parent:
	mv	a1, a0                  /* result; frame keeps the flags for the log */
	mv	a0, sp
	call	gk_clone_parent_post    /* stores the result in the frame's a0 */
	FRAME_RELOAD
	ld	sp, GK_FR_SPIN(sp)
	ret
	.size	gk_entry, .-gk_entry

	.option	pop
	.section .note.GNU-stack,"",@progbits
