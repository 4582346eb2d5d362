/*
 * tree_move.c - rename of a directory with entries (docs/protocol.md 4.8).
 *
 * A record's key and its metadata owner come from its full path, so
 * renaming a populated directory moves the record of every descendant
 * (records only: chunks are keyed by data key and never move).  Atomic
 * for every observer: first the client fences both trees on every daemon
 * (daemon 0 first, which orders competing renames): any request of
 * another client that names a path in either tree, or lists either
 * parent, is answered EAGAIN and retried by its client until the fence
 * goes, so nobody sees a state with both names or neither.  Then:
 * list the tree and stat every entry; insert every record at its new path
 * (parents first); remove every old one (children first, each only if
 * it still has its data key); drop the fences.  A failed insert takes the
 * inserted records back.  The fences are bound to this client's
 * connection (like locks): if it dies mid-way they go, and the tree is
 * left split between the names (no data is lost; nothing repairs it).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>

#include "libsyscall_intercept_hook_point.h"
#include "config.h"
#include "forward.h"
#include "gkfs_ops.h"
#include "log.h"
#include "paths.h"
#include "rpc.h"

struct moved {
	char *rel;               /* "" for the top, else "/a/b" under it */
	struct gk_record *rec;
};

struct tree {
	struct moved *v;
	size_t n, cap;
};

static int
push(struct tree *t, const char *rel, const struct gk_record *r)
{
	if (t->n == t->cap) {
		size_t cap = t->cap ? 2 * t->cap : 64;
		struct moved *v = realloc(t->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		t->v = v;
		t->cap = cap;
	}
	t->v[t->n].rel = strdup(rel);
	t->v[t->n].rec = malloc(sizeof(*r));
	if (!t->v[t->n].rel || !t->v[t->n].rec)
		return -ENOMEM;
	memcpy(t->v[t->n].rec, r, sizeof(*r));
	t->n++;
	return 0;
}

static void
tree_free(struct tree *t)
{
	for (size_t i = 0; i < t->n; i++) {
		free(t->v[i].rel);
		free(t->v[i].rec);
	}
	free(t->v);
}

static void
join(char *out, const char *top, const char *rel)
{
	snprintf(out, GK_PATH_MAX + 1, "%s%s", top, rel);
}

/* Every entry under top/rel, parents before children. */
static int
collect(const char *top, const char *rel, struct tree *t, int depth)
{
	char dir[GK_PATH_MAX + 1], child_rel[GK_PATH_MAX + 1], child[GK_PATH_MAX + 1];
	struct gk_dirent *ents = NULL;
	struct gk_record r;
	size_t n = 0;
	int rc;

	if (depth > 4096)
		return -ELOOP;
	join(dir, top, rel);
	if ((rc = gk_fwd_list_dir(dir, &ents, &n)) != 0)
		return rc;
	for (size_t i = 0; i < n && !rc; i++) {
		if (strlen(rel) + 1 + strlen(ents[i].name) + strlen(top) > GK_PATH_MAX) {
			rc = -ENAMETOOLONG;
			break;
		}
		snprintf(child_rel, sizeof(child_rel), "%s/%s", rel, ents[i].name);
		join(child, top, child_rel);
		if ((rc = gk_fwd_stat(child, &r)) != 0)
			break;
		if ((rc = push(t, child_rel, &r)) != 0)
			break;
		if ((r.mode & GK_S_IFMT) == GK_S_IFDIR)
			rc = collect(top, child_rel, t, depth + 1);
	}
	gk_dirents_free(ents, n);
	return rc;
}

static int
fence_all(const char *token, const char *old, const char *new_, int on)
{
	char po[GK_PATH_MAX + 1], pn[GK_PATH_MAX + 1];
	int rc = 0;

	gk_parent_path(old, po);
	gk_parent_path(new_, pn);
	/* daemon 0 first: of two renames fencing overlapping trees, the one
	 * that has daemon 0 goes on, the other waits there (EAGAIN, retried) */
	for (unsigned i = 0; i < gkc_cfg.n_hosts; i++) {
		long delay_us = 1000, waited_us = 0;
		int e;
		while ((e = gk_fwd_fence(i, token, old, new_, po, pn, on)) == -EAGAIN && on &&
		       waited_us < 1000L * gkc_cfg.timeout_ms) {
			struct timespec ts = {0, delay_us * 1000};
			syscall_no_intercept(SYS_nanosleep, &ts, NULL);
			waited_us += delay_us;
			if (delay_us < 20000)
				delay_us *= 2;
		}
		if (e && !rc)
			rc = e;
		if (rc && on)
			break;
	}
	return rc;
}

int
gkfs_move_tree(const char *old, const char *new_, int new_exists)
{
	char token[40], from[GK_PATH_MAX + 1], to[GK_PATH_MAX + 1];
	struct tree t = {0};
	struct gk_record top, replaced;
	size_t inserted = 0;
	int rc;
	uint64_t id = gk_rpc_process_owner();

	snprintf(token, sizeof(token), "m%016llx%08lx", (unsigned long long)id,
	         (long)syscall_no_intercept(SYS_gettid));
	rc = fence_all(token, old, new_, 1);
	if (rc) {
		fence_all(token, old, new_, 0);
		return rc;
	}
	gk_rpc_set_fence(token);
	/* checked again behind the fence: nobody else changes the trees now */
	rc = gk_fwd_stat(old, &top);
	if (!rc && (top.mode & GK_S_IFMT) != GK_S_IFDIR)
		rc = -ENOTDIR;
	if (!rc && new_exists) {
		int k = gk_fwd_has_children(new_);
		rc = k < 0 ? k : k ? -ENOTEMPTY : 0;
	}
	if (!rc)
		rc = push(&t, "", &top);
	if (!rc)
		rc = collect(old, "", &t, 0);
	for (size_t i = 0; !rc && i < t.n; i++, inserted++) {
		join(to, new_, t.v[i].rel);
		join(from, old, t.v[i].rel);
		memset(&replaced, 0, sizeof(replaced));
		/* the daemon takes the record from `from` (security on), which
		 * still exists: old records go only after every insert */
		rc = gk_fwd_insert(to, from, t.v[i].rec, i == 0 && new_exists, &replaced);
	}
	if (rc) {
		/* take back what was inserted (children first); the old tree is whole */
		for (size_t i = inserted; i-- > 0;) {
			join(to, new_, t.v[i].rel);
			gk_fwd_remove(to, -1, t.v[i].rec->data_key, NULL);
		}
	} else {
		for (size_t i = t.n; i-- > 0;) {
			join(from, old, t.v[i].rel);
			int e = gk_fwd_remove(from, -1, t.v[i].rec->data_key, NULL);
			if (e && !rc)
				rc = e == -ENOENT ? 0 : e;
		}
	}
	gk_rpc_set_fence(NULL);
	fence_all(token, old, new_, 0);
	GKC_LOG(GKC_INFO, "rename of directory %s -> %s: %zu records moved -> %d", old, new_, t.n, rc);
	tree_free(&t);
	return rc;
}
