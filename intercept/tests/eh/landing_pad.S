/* A landing pad 4 bytes before an ecall, known only from the unwind
   tables: .eh_frame's FDE points (LSDA) at a hand-written call-site table
   in .gcc_except_table.  No branch in the code reaches the pad, so only a
   reader of those tables keeps a gateway window from swallowing it
   (tests/intercept/test_landing_pads.py).  Layout, from eh_pad_fn (F):
     F+0  c.mv a1,a0 x4     call-site region [F, F+8) -> pad F+8
     F+8  li a7,172          the landing pad
     F+12 ecall              getpid
     F+16 ret
   Gateway window without the pad: [F, F+16); with it: [F+8, F+24). */
	.option norelax
	.text
	.type eh_personality, @function
eh_personality:             /* never called: nothing throws here */
	li a0, 9                /* _URC_FATAL_PHASE1_ERROR-like, never used */
	ret
	.globl eh_pad_fn
	.type eh_pad_fn, @function
eh_pad_fn:
	.cfi_startproc
	.cfi_personality 0x1b, eh_personality
	.cfi_lsda 0x1b, .Llsda
	c.mv a1, a0
	c.mv a2, a0
	c.mv a3, a0
	c.mv a4, a0
	li a7, 172
	ecall
	c.mv a5, a0
	c.mv a6, a0
	c.mv t0, a0
	c.mv t1, a0
	ret
	.cfi_endproc
	.size eh_pad_fn, . - eh_pad_fn

	.section .gcc_except_table, "a", @progbits
.Llsda:
	.byte 0xff              /* LPStart omitted: the function start */
	.byte 0xff              /* no type table */
	.byte 0x01              /* call-site fields: uleb128 */
	.uleb128 4              /* call-site table bytes */
	.uleb128 0              /* region start, from F */
	.uleb128 8              /* region length */
	.uleb128 8              /* landing pad, from F */
	.uleb128 0              /* action: cleanup only */
