/*
 * dlopen.c - objects loaded after start are patched too.
 *
 * The core defines dlopen, dlmopen and dlclose (it is preloaded, so its
 * definitions come first for every caller through a PLT: the program,
 * Python's ctypes and imports, MPI's component loaders), calls libc's,
 * and then lets init.c patch whatever new object is selected.  glibc's
 * internal loads (NSS modules, iconv) do not come this way and stay
 * unpatched unless already loaded at start (README).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stddef.h>

#include "runtime.h"

typedef void *(*dlopen_fn)(const char *, int);
typedef void *(*dlmopen_fn)(Lmid_t, const char *, int);
typedef int (*dlclose_fn)(void *);

static void *
next(const char *name)
{
	return dlsym(RTLD_NEXT, name);
}

__attribute__((visibility("default"))) void *
dlopen(const char *file, int mode)
{
	static dlopen_fn real;
	void *h;

	if (!real && !(real = (dlopen_fn)next("dlopen")))
		return NULL;
	h = real(file, mode);
	if (h)
		gk_objects_refresh(NULL);
	return h;
}

__attribute__((visibility("default"))) void *
dlmopen(Lmid_t lmid, const char *file, int mode)
{
	static dlmopen_fn real;
	void *h;

	if (!real && !(real = (dlmopen_fn)next("dlmopen")))
		return NULL;
	h = real(lmid, file, mode);
	if (h)
		gk_objects_refresh(h);
	return h;
}

__attribute__((visibility("default"))) int
dlclose(void *handle)
{
	static dlclose_fn real;
	int r;

	if (!real && !(real = (dlclose_fn)next("dlclose")))
		return -1;
	r = real(handle);
	gk_objects_refresh(NULL);
	return r;
}
