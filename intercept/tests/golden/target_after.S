/* Golden windows: a jump target right after the ecall, and an EINTR-style
   retry loop whose branch goes back to the window's first byte. */
	.option norelax
	.text
	.globl after
after:
	c.mv a1, a0
	c.mv a2, a0
	c.mv a3, a0
	c.mv a4, a0
	c.beqz a0, 1f           /* target: the instruction right after the ecall */
	li a7, 63
	ecall
1:	c.mv a5, a0
	c.mv a6, a0
	ret
	.globl retry
retry:
2:	li a7, 64               /* window start = branch target */
	ecall
	c.li a5, -4
	beq a0, a5, 2b
	ret
