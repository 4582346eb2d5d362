/*
 * hooks_route.c - the decision every path-taking hook starts with: is the
 * path gkfs's, the kernel's as spelled, or the kernel's once made absolute
 * (a path through the mount prefix or a gkfs cwd that leads out of gkfs)?
 * The last case is finished here, so hooks only see "gkfs" or "done".
 */
#include <errno.h>

#include "hooks.h"

int
gk_route_path(long nr, const long *a, int di, int pi, struct gk_resolved *r,
              long *res)
{
	int kind = gk_resolve(di >= 0 ? (int)a[di] : AT_FDCWD, (const char *)a[pi], r);

	if (kind < 0)
		return HANDLED(kind);
	if (kind == GK_KERNEL_ABS)
		return HANDLED(gk_kernel_abs(nr, a, di, pi, r->path));
	if (kind != GK_GKFS)
		return PASS;
	return GK_ON_GKFS;
}

int
gk_route_two_paths(long nr, const long *a, struct gk_resolved *o,
                   struct gk_resolved *n, long *res)
{
	/* both resolved first: the old path's error wins, as in the kernel */
	int ko = gk_resolve((int)a[0], (const char *)a[1], o);
	int kn = gk_resolve((int)a[2], (const char *)a[3], n);
	long b[6] = {a[0], a[1], a[2], a[3], a[4], a[5]};

	if (ko < 0)
		return HANDLED(ko);
	if (kn < 0)
		return HANDLED(kn);
	if (ko == GK_GKFS && kn == GK_GKFS)
		return GK_ON_GKFS;
	if (ko == GK_GKFS || kn == GK_GKFS)
		return HANDLED(-EXDEV);
	if (ko == GK_KERNEL && kn == GK_KERNEL)
		return PASS;
	if (ko == GK_KERNEL_ABS) {
		b[0] = AT_FDCWD;
		b[1] = (long)o->path;
	}
	if (kn == GK_KERNEL_ABS) {
		b[2] = AT_FDCWD;
		b[3] = (long)n->path;
	}
	return HANDLED(gk_kernel(nr, b));
}
