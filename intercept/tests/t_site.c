/*
 * Whether libc's own system call instruction in a function is still the
 * ecall (left as the program's) or was patched (a jal to a trampoline):
 *     t_site getppid getpid ...
 * prints "getppid: ecall" or "getppid: patched" per name: whichever of an
 * ecall or a `jal x0` comes first in the function's first 64 bytes ("none"
 * if neither).  Meant for functions that are `li a7, N; ecall` (their
 * ecall comes first when unpatched: the tests check the bare run).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const unsigned char *f = dlsym(RTLD_DEFAULT, argv[i]);
		const char *what = "none";

		for (int off = 0; f && off < 64; off += 2) {
			uint32_t w;
			memcpy(&w, f + off, 4);
			if (w == 0x00000073) {
				what = "ecall";
				break;
			}
			if ((w & 0xfff) == 0x06f) {   /* jal x0 */
				what = "patched";
				break;
			}
		}
		printf("%s: %s\n", argv[i], what);
	}
	return 0;
}
