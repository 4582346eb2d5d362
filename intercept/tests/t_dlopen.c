/*
 * Objects opened after start: getpid through libt_rawsys.so's own ecall
 * (opened with dlopen, closed and opened again) and through a second libc
 * in a new namespace (dlmopen(LM_ID_NEWLM)).  Prints
 *     lib=<pid> reopened=<pid> nslibc=<pid>
 * so that, with the getpid-faking hook, the output shows which of them the
 * core patched.  argv[1]: path of libt_rawsys.so.
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

	CHECK(argc == 2);
	h = dlopen(argv[1], RTLD_NOW);
	CHECK(h != NULL);
	lib = call(h, "rawsys_getpid");
	CHECK(dlclose(h) == 0);
	h = dlopen(argv[1], RTLD_NOW);
	CHECK(h != NULL);
	reopened = call(h, "rawsys_getpid");
	ns = dlmopen(LM_ID_NEWLM, "libc.so.6", RTLD_NOW);
	CHECK(ns != NULL);
	nslibc = call(ns, "getpid");
	printf("lib=%ld reopened=%ld nslibc=%ld\n", lib, reopened, nslibc);
	return 0;
}
