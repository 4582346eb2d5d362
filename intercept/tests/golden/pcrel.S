/* Golden windows: auipc pairs and compressed branches moved into the stub.
   Runnable (tests/intercept/test_golden_run.py): the pairs address real
   symbols; in the object file their immediates are 0 until linked. */
	.option norelax
	.text
	.globl pcrel
pcrel:
1:	auipc a5, %pcrel_hi(pcrel_word)   /* auipc + ld pair before the ecall */
	ld a5, %pcrel_lo(1b)(a5)
	li a7, 56
	ecall
2:	auipc t1, %pcrel_hi(pcrel_done)   /* auipc + jalr pair after the ecall */
	jalr x0, %pcrel_lo(2b)(t1)
	ret                               /* not reached: keeps cbranch's offsets */
	.globl cbranch
cbranch:                    /* the window must take the branches after the ecall */
	li a7, 57
	ecall
	c.bnez a0, 3f           /* target = window end: a stub-local branch */
	c.li a1, 7
	c.j 4f                  /* past the window: a gadget in the window */
	c.nop
	c.nop
	c.nop
	c.nop
	c.nop
	c.nop
	c.nop
	c.nop
3:	c.li a0, -1
4:	ret
pcrel_done:                 /* the tail jump's target: proves the pair ran */
	c.li a4, 13
	ret

	.section .rodata
	.balign 8
pcrel_word:
	.dword 0x1122334455667788
