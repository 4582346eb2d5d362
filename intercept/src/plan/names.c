/* names.c - printable names of patch kinds and reasons (report, logs). */
#include "gkfs_intercept/plan.h"

const char *gk_patch_kind_name(int kind)
{
	switch (kind) {
	case GK_PATCH_NONE: return "none";
	case GK_PATCH_JAL: return "jal";
	case GK_PATCH_GATEWAY: return "gateway";
	case GK_PATCH_GPOLINE: return "gpoline";
	}
	return "?";
}

const char *gk_reason_name(int reason)
{
	switch (reason) {
	case GK_OK: return "ok";
	case GK_NO_TRAMPOLINE_IN_RANGE: return "no trampoline in range";
	case GK_WINDOW_HAS_TARGET: return "jump target inside every window";
	case GK_WINDOW_UNRELOCATABLE: return "instruction in window cannot move";
	case GK_WINDOW_TOO_SMALL: return "no room for a window";
	case GK_FILTERED: return "filtered";
	}
	return "?";
}
