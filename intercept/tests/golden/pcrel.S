/* Golden windows: auipc pairs and compressed branches moved into the stub. */
	.option norelax
	.text
	.globl pcrel
pcrel:
	auipc a5, 0x12          /* auipc + ld pair before the ecall */
	ld a5, 0x34(a5)
	li a7, 56
	ecall
	auipc ra, 0x1           /* auipc + jalr call after the ecall */
	jalr ra, -0x10(ra)
	ret
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
