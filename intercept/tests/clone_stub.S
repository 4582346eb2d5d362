/*
 * syscall_on_new_stack(nr, a0, a1, a2, a3, a4, fn, arg): see t_common.h.
 * Its arguments arrive exactly as syscall() wants them (nr in a0, the
 * system call's arguments in a1..a5), fn and arg in a6/a7.
 *
 * Why assembly: after a clone with a new stack the child returns from
 * syscall() with sp on the new, empty stack, so no C frame of the caller
 * is usable there.  fn and arg ride in callee-saved registers s1/s2, which
 * the kernel copies into the child and which an interception core must
 * preserve: if it does not, the child jumps to garbage.
 */
	.text
	.globl	syscall_on_new_stack
	.type	syscall_on_new_stack, @function
syscall_on_new_stack:
	addi	sp, sp, -32
	sd	ra, 24(sp)
	sd	s1, 16(sp)
	sd	s2, 8(sp)
	mv	s1, a6			/* fn */
	mv	s2, a7			/* arg */
	call	syscall@plt
	beqz	a0, 1f
	ld	ra, 24(sp)
	ld	s1, 16(sp)
	ld	s2, 8(sp)
	addi	sp, sp, 32
	ret
1:	/* child, on its new stack: record where it starts (an interception
	 * core must hand it exactly the stack top it asked for) */
	lla	t0, clone_stub_child_sp
	sd	sp, 0(t0)
	mv	a0, s2
	jalr	s1
	li	a7, 93			/* exit (this thread only) */
	ecall
	unimp
	.size	syscall_on_new_stack, .-syscall_on_new_stack

	.bss
	.p2align 3
	.globl	clone_stub_child_sp
	.hidden	clone_stub_child_sp
	.type	clone_stub_child_sp, @object
clone_stub_child_sp:
	.zero	8
	.size	clone_stub_child_sp, 8
	.section .note.GNU-stack,"",@progbits
