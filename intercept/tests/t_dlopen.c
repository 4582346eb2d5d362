/*
 * Objects opened after start: getpid through libt_rawsys.so's own ecall
 * (opened with dlopen, closed and opened again) and through a second libc
 * in a new namespace (dlmopen(LM_ID_NEWLM)).  Prints
 *     lib=<pid> reopened=<pid> nslibc=<pid> code=<hex>
 * so that, with the getpid-faking hook, the output shows which of them the
 * core patched; code: the first 16 bytes of rawsys_getpid as the first
 * dlopen left them (a patched ecall's jal names its trampoline's place).
 * argv[1]: path of libt_rawsys.so.
 */
#define _GNU_SOURCE
#include <dlfcn.h>

#include "t_common.h"

static long call(void *h, const char *sym)
{
	long (*fn)(void) = (long (*)(void))dlsym(h, sym);
	CHECK(fn != NULL);
	return fn();
}

int main(int argc, char **argv)
{
	void *h, *ns;
	long lib, reopened, nslibc;
	const unsigned char *code;
	char hex[33];

	CHECK(argc == 2);
	h = dlopen(argv[1], RTLD_NOW);
	CHECK(h != NULL);
	code = (const unsigned char *)dlsym(h, "rawsys_getpid");
	CHECK(code != NULL);
	for (int i = 0; i < 16; i++)
		snprintf(hex + 2 * i, 3, "%02x", code[i]);
	lib = call(h, "rawsys_getpid");
	CHECK(dlclose(h) == 0);
	h = dlopen(argv[1], RTLD_NOW);
	CHECK(h != NULL);
	reopened = call(h, "rawsys_getpid");
	ns = dlmopen(LM_ID_NEWLM, "libc.so.6", RTLD_NOW);
	CHECK(ns != NULL);
	nslibc = call(ns, "getpid");
	printf("lib=%ld reopened=%ld nslibc=%ld code=%s\n", lib, reopened, nslibc, hex);
	return 0;
}
