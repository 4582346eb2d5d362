/*
 * sysnames.c - riscv64 system call names, for the log and the
 * INTERCEPT_SYS_* filters.  The table body is generated at configure time
 * from the cross compiler's <asm/unistd.h> (runtime.cmake), so it always
 * matches the kernel headers the core is built against.
 */
#include <asm/unistd.h>
#include <string.h>

#include "runtime.h"

static const char *const names[GK_MAX_SYSNO] = {
#include "gk_sysnames_table.h"
};

const char *
gk_sysname(long nr)
{
	if (nr < 0 || nr >= GK_MAX_SYSNO)
		return NULL;
	return names[nr];
}

long
gk_sysno_by_name(const char *s, size_t len)
{
	for (long i = 0; i < GK_MAX_SYSNO; i++)
		if (names[i] && strlen(names[i]) == len &&
		    memcmp(names[i], s, len) == 0)
			return i;
	return -1;
}
