/* RVV and compressed instructions mixed: capstone 5 cannot decode the vector
   ones; the decoder must still size them from their low bits. */
	.option norelax
	.option arch, +v
	.text
	.globl vec
vec:
	vsetvli t0, a2, e8, m8, ta, ma
	c.nop
	vle8.v v0, (a1)
	c.add a1, t0
	vadd.vv v8, v0, v16
	vse8.v v8, (a0)
	sub a2, a2, t0
	vmv.x.s a3, v8
	li a7, 64
	ecall
	ret
