/* Golden windows: ecall as a function's first and last instruction. */
	.option norelax
	.text
	.globl first
first:                      /* ecall is the first instruction */
	ecall
	c.li a5, 1
	c.add a0, a5
	c.mv a1, a0
	c.mv a2, a0
	c.mv a3, a0
	c.mv a4, a0
	ret
	.globl last
last:                       /* ecall is the last instruction: next function follows */
	c.mv a1, a0
	c.mv a2, a0
	c.mv a3, a0
	c.mv a4, a0
	c.li a7, 29
	ecall
	.globl next
next:
	c.li a0, 0
	ret
	.globl last2
last2:                      /* same, with room for a gateway window */
	c.mv a1, a0
	c.mv a2, a0
	c.mv a3, a0
	c.mv a4, a0
	c.mv a5, a0
	c.li a7, 29
	ecall
	.globl next2
next2:
	c.li a0, 0
	ret
