/*
 * forward.c - forward_<rpc>: builds the requests of one protocol op,
 * places them (distribution.c), runs them together (rpc.c) and decodes the
 * results.  No POSIX semantics here (gkfs_*.c do that).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>

#include "libsyscall_intercept_hook_point.h"
#include "config.h"
#include "distribution.h"
#include "forward.h"
#include "paths.h"
#include "rpc.h"

static unsigned
owner(const char *path)
{
	return gk_metadata_owner(path, gkc_cfg.n_hosts);
}

/* Runs one call; returns -status.  The caller frees with gk_call_done. */
static int
run_one(struct gk_call *c)
{
	int rc = gk_rpc_run(c, 1);
	if (rc)
		return rc;
	return -c->status;
}

static int
record_of(struct gk_call *c, const char *key, struct gk_record *r)
{
	const msgpack_object *o = gk_mp_get(c->result, key);

	if (!r)
		return 0;
	if (!o || o->type == MSGPACK_OBJECT_NIL) {
		memset(r, 0, sizeof(*r));
		return 0;
	}
	return gk_record_decode(o, r);
}

/* Most metadata ops are one request to the owner of a path, with "path"
 * as the first argument: starts it; the caller packs the other
 * n_entries - 1 arguments and finishes with path_reply. */
static msgpack_packer *
path_request(struct gk_call *c, const char *op, const char *path, uint32_t n_entries)
{
	msgpack_packer *pk = gk_call_args(c, owner(path), op, n_entries);

	gk_pk_kv_str(pk, "path", path);
	return pk;
}

/* Runs a single request, decodes the record the reply holds under
 * `record_key` into r (either may be NULL: nothing wanted) and frees the
 * call.  0 or -errno (the daemon's status, or the transport's). */
static int
single_reply(struct gk_call *c, const char *record_key, struct gk_record *r)
{
	int rc = run_one(c);

	if (!rc && record_key)
		rc = record_of(c, record_key, r);
	gk_call_done(c);
	return rc;
}

/* Files unlinked while open whose last holder is gone: the reply that
 * learns of them (remove, rename, insert, release) removes their chunks. */
static void
reclaim(struct gk_call *c)
{
	const msgpack_object *o = gk_mp_get(c->result, "reclaim");
	const msgpack_object *caps = gk_mp_get(c->result, "reclaim_caps");
	char key[80], cap[64];

	if (!o || o->type != MSGPACK_OBJECT_ARRAY)
		return;
	for (uint32_t i = 0; i < o->via.array.size; i++) {
		cap[0] = '\0';
		if (caps && caps->type == MSGPACK_OBJECT_ARRAY && i < caps->via.array.size &&
		    gk_mp_strobj(&caps->via.array.ptr[i], cap, sizeof(cap)) != 0)
			cap[0] = '\0';
		if (gk_mp_strobj(&o->via.array.ptr[i], key, sizeof(key)) == 0 && key[0])
			gk_fwd_remove_chunks(key, cap);
	}
}

static int
has_cap(const char *cap)
{
	return cap && *cap;
}

/* single_reply for remove/rename/insert: also notes whether the file
 * named is still held open (r->held) and reclaims what the daemon says. */
static int
held_reply(struct gk_call *c, const char *record_key, const char *held_key,
           struct gk_record *r)
{
	int rc = run_one(c);

	if (!rc) {
		reclaim(c);
		if (r) {
			rc = record_of(c, record_key, r);
			r->held = gk_mp_bool(c->result, held_key);
		}
	}
	gk_call_done(c);
	return rc;
}

/* After a request that may have changed `path` (whatever its outcome, which
 * a timeout leaves unknown): the stat cache forgets it (dcache.h). */
static int
changed(const char *path, int tree, int rc)
{
	gk_dcache_changed(path, tree);
	return rc;
}

int
gk_fwd_stat(const char *path, struct gk_record *r)
{
	struct gk_call c;

	path_request(&c, "stat", path, 1);
	return single_reply(&c, "stat", r);
}

int
gk_fwd_fstat(const char *path, const char *data_key, struct gk_record *r)
{
	struct gk_call c;
	msgpack_packer *pk = path_request(&c, "stat", path, data_key && data_key[0] ? 2 : 1);

	if (data_key && data_key[0])
		gk_pk_kv_str(pk, "data_key", data_key);
	return single_reply(&c, "stat", r);
}

int
gk_fwd_stat_hold(const char *path, const char *hold, struct gk_record *r)
{
	struct gk_call c;
	msgpack_packer *pk = path_request(&c, "stat", path, 2);

	gk_pk_kv_str(pk, "hold", hold);
	gk_rpc_pin_thread();
	return single_reply(&c, "stat", r);
}

int
gk_fwd_release(const char *path, const char *data_key, const char *hold, int wait)
{
	struct gk_call c;
	msgpack_packer *pk = path_request(&c, "release", path, 4);
	int rc;

	gk_pk_kv_str(pk, "data_key", data_key);
	gk_pk_kv_str(pk, "owner", hold);
	gk_pk_kv_bool(pk, "reclaim", wait);   /* a posted call's reply is never read */
	if (!wait) {
		rc = gk_rpc_post(&c, 1);
		gk_call_done(&c);
		return rc;
	}
	rc = run_one(&c);
	if (!rc)
		reclaim(&c);
	gk_call_done(&c);
	return rc;
}

int
gk_fwd_create(const char *path, uint32_t mode, int exclusive,
              struct gk_record *r, int *created)
{
	return gk_fwd_create_hold(path, mode, exclusive, NULL, r, created);
}

static void
pack_create(struct gk_call *c, const char *path, uint32_t mode, int exclusive, const char *hold)
{
	msgpack_packer *pk = path_request(c, "create", path, hold ? 6 : 5);

	if (hold) {
		gk_pk_kv_str(pk, "hold", hold);
		gk_rpc_pin_thread();
	}
	gk_pk_kv_u64(pk, "mode", mode);
	gk_pk_kv_bool(pk, "exclusive", exclusive);
	gk_pk_kv_u64(pk, "uid", syscall_no_intercept(SYS_geteuid));
	gk_pk_kv_u64(pk, "gid", syscall_no_intercept(SYS_getegid));
}

/* Security on: the daemon looks the parent up itself (its permission
 * check) and creates nothing below a missing parent or a non-directory
 * (ENOENT), so the create is one RPC.  Only that ENOENT costs a parent
 * stat, to answer ENOTDIR for a file parent as the kernel does. */
static int
create_checked(const char *path, const char *parent, uint32_t mode, int exclusive,
               const char *hold, struct gk_record *r, int *created)
{
	struct gk_call c;
	struct gk_record pr;
	int rc;

	*created = 0;
	pack_create(&c, path, mode, exclusive, hold);
	rc = run_one(&c);
	if (!rc) {
		*created = gk_mp_bool(c.result, "created");
		rc = record_of(&c, "stat", r);
	}
	gk_call_done(&c);
	if (rc != -ENOENT)
		return rc;
	int prc = gk_fwd_stat(parent, &pr);
	if (prc)
		return prc;
	/* a symlink parent: ENOENT here, the caller follows it */
	if ((pr.mode & GK_S_IFMT) != GK_S_IFDIR && (pr.mode & GK_S_IFMT) != GK_S_IFLNK)
		return -ENOTDIR;
	return -ENOENT;
}

int
gk_fwd_create_hold(const char *path, uint32_t mode, int exclusive, const char *hold,
                   struct gk_record *r, int *created)
{
	char parent[GK_PATH_MAX + 1];
	struct gk_call c[2];
	struct gk_record pr;
	int rc;

	if (!strcmp(path, "/"))
		return -EEXIST;
	gk_parent_path(path, parent);
	if (!gkc_cfg.security_off)
		return changed(path, 1, create_checked(path, parent, mode, exclusive, hold, r, created));
	path_request(&c[0], "stat", parent, 1);
	pack_create(&c[1], path, mode, exclusive, hold);
	rc = gk_rpc_run(c, 2);
	if (!rc) {
		int perr = c[0].status;
		if (!perr && record_of(&c[0], "stat", &pr))
			perr = EBADMSG;
		/* a symlink parent: ENOENT here, the caller follows it */
		if (!perr && (pr.mode & GK_S_IFMT) == GK_S_IFLNK)
			perr = ENOENT;
		else if (!perr && (pr.mode & GK_S_IFMT) != GK_S_IFDIR)
			perr = ENOTDIR;
		*created = c[1].status == 0 && gk_mp_bool(c[1].result, "created");
		if (!c[1].status)
			rc = record_of(&c[1], "stat", r);
		if (perr) {
			/* The parent is missing: take the new record back. */
			if (hold && !c[1].status)
				gk_fwd_release(path, r->data_key, hold, 1);
			if (*created)
				gk_fwd_remove(path, -1, r->data_key[0] ? r->data_key : NULL, NULL);
			rc = -perr;
		} else if (c[1].status) {
			rc = -c[1].status;
		}
	}
	gk_calls_done(c, 2);
	return changed(path, 1, rc);
}

int
gk_fwd_remove(const char *path, int rmdir, const char *data_key,
              struct gk_record *removed)
{
	struct gk_call c;
	msgpack_packer *pk = path_request(&c, "remove", path,
	                                  1 + (rmdir >= 0) + (data_key != NULL));

	if (rmdir >= 0)
		gk_pk_kv_bool(pk, "rmdir", rmdir);
	if (data_key)
		gk_pk_kv_str(pk, "data_key", data_key);
	return changed(path, rmdir != 0, held_reply(&c, "stat", "held", removed));
}

int
gk_fwd_update_size(const char *path, const char *data_key, const char *cap, uint64_t offset,
                   uint64_t count, int append, uint64_t *write_at)
{
	struct gk_call c;
	int with_key = data_key && data_key[0];
	msgpack_packer *pk = path_request(&c, "update_size", path, 4 + with_key + has_cap(cap));
	int rc;

	if (has_cap(cap))
		gk_pk_kv_str(pk, "cap", cap);
	if (with_key)
		gk_pk_kv_str(pk, "data_key", data_key);
	gk_pk_kv_u64(pk, "offset", offset);
	gk_pk_kv_u64(pk, "count", count);
	gk_pk_kv_bool(pk, "append", append);
	rc = run_one(&c);
	if (!rc && write_at)
		*write_at = gk_mp_u64(c.result, "offset", offset);
	gk_call_done(&c);
	return changed(path, 0, rc);
}

int
gk_fwd_truncate(const char *path, const char *data_key, const char *cap, uint64_t size,
                struct gk_record *r)
{
	struct gk_call c;
	int with_key = data_key && data_key[0];
	msgpack_packer *pk = path_request(&c, "truncate", path, 2 + with_key + has_cap(cap));

	if (has_cap(cap))
		gk_pk_kv_str(pk, "cap", cap);
	if (with_key)
		gk_pk_kv_str(pk, "data_key", data_key);
	gk_pk_kv_u64(pk, "size", size);
	return changed(path, 0, single_reply(&c, "stat", r));
}

/* One request per daemon; returns the first error, else 0. */
static int
broadcast(struct gk_call *c)
{
	int rc = gk_rpc_run(c, gkc_cfg.n_hosts);
	for (unsigned i = 0; !rc && i < gkc_cfg.n_hosts; i++)
		if (c[i].status)
			rc = -c[i].status;
	return rc;
}

static struct gk_call *
new_calls(size_t n)
{
	return calloc(n ? n : 1, sizeof(struct gk_call));
}

int
gk_fwd_has_children(const char *path)
{
	unsigned n = gkc_cfg.n_hosts;
	struct gk_call *c = new_calls(n);
	int rc, any = 0;

	if (!c)
		return -ENOMEM;
	for (unsigned i = 0; i < n; i++) {
		msgpack_packer *pk = gk_call_args(&c[i], i, "get_dirents", 2);
		gk_pk_kv_str(pk, "path", path);
		gk_pk_kv_u64(pk, "limit", 1);
	}
	rc = broadcast(c);
	for (unsigned i = 0; !rc && i < n; i++) {
		const msgpack_object *e = gk_mp_get(c[i].result, "entries");
		if (e && e->type == MSGPACK_OBJECT_ARRAY && e->via.array.size)
			any = 1;
	}
	gk_calls_done(c, n);
	free(c);
	return rc ? rc : any;
}

void
gk_dirents_free(struct gk_dirent *e, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(e[i].name);
		free(e[i].attr);
	}
	free(e);
}

/* One row of a get_dirents "stats" list (docs/protocol.md 4.3: mode, size,
 * nlink, uid, gid, atime_ns, mtime_ns, ctime_ns, data_key), as the cache
 * keeps it; NULL when malformed. */
static struct gk_attr *
attr_of(const msgpack_object *o)
{
	struct gk_attr *a;
	uint64_t v[8];

	if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size < 9)
		return NULL;
	const msgpack_object *f = o->via.array.ptr;
	for (int i = 0; i < 8; i++) {
		if (f[i].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
			return NULL;
		v[i] = f[i].via.u64;
	}
	if (f[8].type != MSGPACK_OBJECT_STR || f[8].via.str.size >= sizeof(a->data_key))
		return NULL;
	a = calloc(1, sizeof(*a));
	if (!a)
		return NULL;
	a->mode = (uint32_t)v[0];
	a->size = v[1];
	a->nlink = v[2];
	a->uid = v[3];
	a->gid = v[4];
	a->atime_ns = v[5];
	a->mtime_ns = v[6];
	a->ctime_ns = v[7];
	memcpy(a->data_key, f[8].via.str.ptr, f[8].via.str.size);
	return a;
}

/* The records go into the stat cache, then are freed. */
static void
cache_listing(const char *path, struct gk_dirent *ents, size_t cnt, uint64_t gen)
{
	char **names = malloc((cnt ? cnt : 1) * sizeof(*names));
	struct gk_attr **attrs = malloc((cnt ? cnt : 1) * sizeof(*attrs));

	if (names && attrs) {
		for (size_t i = 0; i < cnt; i++) {
			names[i] = ents[i].name;
			attrs[i] = ents[i].attr;
			if (attrs[i])
				attrs[i]->member = ents[i].member;
		}
		gk_dcache_fill(path, names, attrs, cnt, gen);
	}
	free(names);
	free(attrs);
	for (size_t i = 0; i < cnt; i++) {
		free(ents[i].attr);
		ents[i].attr = NULL;
	}
}

static int
cmp_dirent(const void *a, const void *b)
{
	return strcmp(((const struct gk_dirent *)a)->name,
	              ((const struct gk_dirent *)b)->name);
}

int
gk_fwd_list_dir(const char *path, struct gk_dirent **out, size_t *nout)
{
	unsigned n = gkc_cfg.n_hosts;
	struct gk_call *c = new_calls(n);
	char (*after)[GK_NAME_MAX * 4 + 1] = calloc(n ? n : 1, sizeof(*after));
	int *more = calloc(n ? n : 1, sizeof(int));
	struct gk_dirent *ents = NULL;
	size_t cnt = 0, cap = 0, kept = 0;
	int rc = 0;
	/* records only while the cache could keep them */
	int stats = gk_dcache_enabled();
	size_t max_kept = stats ? gk_dcache_capacity() : 0;
	uint64_t gen = gk_dcache_generation();

	if (!c || !after || !more) {
		rc = -ENOMEM;
		goto out;
	}
	for (unsigned i = 0; i < n; i++)
		more[i] = 1;
	/* Every daemon's next page in flight together, until none has more. */
	for (;;) {
		int k = 0;
		unsigned who[n ? n : 1];
		for (unsigned i = 0; i < n; i++) {
			if (!more[i])
				continue;
			int want = stats && kept < max_kept;
			msgpack_packer *pk = gk_call_args(&c[k], i, "get_dirents", 3 + want);
			gk_pk_kv_str(pk, "path", path);
			gk_pk_kv_str(pk, "start_after", after[i]);
			gk_pk_kv_u64(pk, "limit", GK_DIRENTS_PAGE);
			if (want)
				gk_pk_kv_bool(pk, "stats", 1);
			who[k++] = i;
		}
		if (!k)
			break;
		rc = gk_rpc_run(c, k);
		for (int j = 0; !rc && j < k; j++) {
			if (c[j].status) {
				rc = -c[j].status;
				break;
			}
			const msgpack_object *e = gk_mp_get(c[j].result, "entries");
			const msgpack_object *st = gk_mp_get(c[j].result, "stats");
			unsigned i = who[j];
			more[i] = gk_mp_bool(c[j].result, "more");
			if (!e || e->type != MSGPACK_OBJECT_ARRAY) {
				more[i] = 0;
				continue;
			}
			for (uint32_t x = 0; x < e->via.array.size; x++) {
				const msgpack_object *row = &e->via.array.ptr[x];
				if (row->type != MSGPACK_OBJECT_ARRAY || row->via.array.size < 3)
					continue;
				const msgpack_object *nm = &row->via.array.ptr[0];
				if (nm->type != MSGPACK_OBJECT_STR)
					continue;
				if (cnt == cap) {
					cap = cap ? cap * 2 : 64;
					struct gk_dirent *ne = realloc(ents, cap * sizeof(*ents));
					if (!ne) {
						rc = -ENOMEM;
						break;
					}
					ents = ne;
				}
				ents[cnt].name = strndup(nm->via.str.ptr, nm->via.str.size);
				ents[cnt].mode = (uint32_t)row->via.array.ptr[1].via.u64;
				ents[cnt].size = row->via.array.ptr[2].via.u64;
				ents[cnt].attr = NULL;
				ents[cnt].member = i;
				if (!ents[cnt].name) {
					rc = -ENOMEM;
					break;
				}
				if (st && st->type == MSGPACK_OBJECT_ARRAY &&
				    st->via.array.size == e->via.array.size && kept < max_kept &&
				    (ents[cnt].attr = attr_of(&st->via.array.ptr[x])))
					kept++;
				cnt++;
				if (x + 1 == e->via.array.size)
					gk_mp_strobj(nm, after[i], sizeof(after[i]));
			}
			if (!e->via.array.size)
				more[i] = 0;
		}
		gk_calls_done(c, k);
		if (rc)
			break;
	}
out:
	free(c);
	free(after);
	free(more);
	if (rc) {
		gk_dirents_free(ents, cnt);
		return rc;
	}
	if (cnt)
		qsort(ents, cnt, sizeof(*ents), cmp_dirent);
	if (kept)
		cache_listing(path, ents, cnt, gen);
	*out = ents;
	*nout = cnt;
	return 0;
}

/* --- data ------------------------------------------------------------------ */
/* Groups the chunk pieces of a range by owner into requests of at most
 * GK_MAX_PAYLOAD bytes / GK_MAX_CHUNKS_PER_REQUEST pieces, all in flight
 * together.  write: tx frames from buf; read: rx frames into buf.
 * size_path (write): the size update folded in when the whole write is one
 * request to the path's metadata owner.  size_path (read): likewise, the
 * size lookup folded in: that daemon reads the file's size before the
 * chunks and clips the frames to it; the result is then the bytes read
 * (EOF-clipped).  *folded says whether it was folded (and, for a read,
 * answered with a size: a daemon that ignores size_path did not). */
static ssize_t
data_op(int is_write, const char *data_key, const char *cap, char *buf, uint64_t offset,
        uint64_t count, uint64_t file_size, const char *size_path, int *folded)
{
	int fold = 0;
	uint64_t cs, npieces;
	unsigned nh;
	struct gk_chunk_piece *pc;
	unsigned *own;
	struct iovec *iov;
	struct gk_call *calls;
	size_t *rx_len = NULL;
	ssize_t done = (ssize_t)count;
	int ncalls = 0, rc = 0;

	if (!count)
		return 0;
	/* the chunk size comes from the handshake at the first request (the
	 * first request of a process may be this one, on an inherited fd) */
	if ((rc = gk_rpc_ready()) != 0)
		return rc;
	cs = gk_chunk_size;
	nh = gkc_cfg.n_hosts;
	npieces = gk_chunk_count(offset, count, cs);
	pc = malloc(npieces * sizeof(*pc));
	own = malloc(npieces * sizeof(*own));
	iov = malloc(npieces * sizeof(*iov));
	calls = new_calls(npieces);   /* at most one request per piece */
	if (!pc || !own || !iov || !calls) {
		rc = -ENOMEM;
		goto out;
	}
	for (uint64_t i = 0; i < npieces; i++) {
		pc[i] = gk_chunk_piece(offset, count, cs, i);
		own[i] = gk_chunk_owner(data_key, pc[i].index, nh);
	}
	/* A write that is one request to the file's metadata owner carries
	 * its size update (applied by the daemon after the chunks): one RPC. */
	if (size_path && npieces <= GK_MAX_CHUNKS_PER_REQUEST && count <= GK_MAX_PAYLOAD) {
		unsigned mo = owner(size_path);
		fold = 1;
		for (uint64_t i = 0; i < npieces && fold; i++)
			fold = own[i] == mo;
	}
	if (size_path && !is_write && !fold) {
		done = 0;       /* a read asked to fold that cannot: nothing sent, *folded = 0 */
		goto out;
	}
	if (fold && !is_write && !(rx_len = calloc(npieces, sizeof(*rx_len)))) {
		rc = -ENOMEM;
		goto out;
	}
	/* For each owner, walk its pieces in order, cutting requests at the
	 * limits; iov entries of one request are contiguous in `iov`. */
	uint64_t used = 0;
	for (unsigned h = 0; h < nh; h++) {
		uint64_t i = 0;
		while (i < npieces) {
			uint64_t first = used, bytes = 0, k = 0;
			for (; i < npieces; i++) {
				if (own[i] != h)
					continue;
				if (k && (bytes + pc[i].len > GK_MAX_PAYLOAD ||
				          k == GK_MAX_CHUNKS_PER_REQUEST))
					break;
				iov[used].iov_base = buf + pc[i].buf_off;
				iov[used].iov_len = pc[i].len;
				used++;
				k++;
				bytes += pc[i].len;
			}
			if (!k)
				break;
			struct gk_call *c = &calls[ncalls++];
			msgpack_packer *pk = gk_call_args(c, h, is_write ? "write_chunks" : "read_chunks",
			                                  (is_write ? 3 + 3 * fold : 4) + has_cap(cap));
			gk_pk_kv_str(pk, "data_key", data_key);
			if (fold && is_write) {
				gk_pk_kv_str(pk, "size_path", size_path);
				gk_pk_kv_u64(pk, "size_offset", offset);
				gk_pk_kv_u64(pk, "size_count", count);
			}
			if (has_cap(cap))
				gk_pk_kv_str(pk, "cap", cap);
			gk_pk_kv_u64(pk, "chunk_size", cs);
			gk_pk_str(pk, "chunks");
			msgpack_pack_array(pk, k);
			/* the pieces again, in the same order */
			for (uint64_t j = first; j < first + k; j++) {
				uint64_t p = 0;
				/* find the piece from its buffer address */
				p = (uint64_t)((char *)iov[j].iov_base - buf);
				struct gk_chunk_piece q = gk_chunk_piece(offset, count, cs,
				        (offset + p) / cs - offset / cs);
				msgpack_pack_array(pk, 3);
				msgpack_pack_uint64(pk, q.index);
				msgpack_pack_uint64(pk, q.off);
				msgpack_pack_uint64(pk, q.len);
			}
			if (is_write) {
				c->tx = &iov[first];
				c->ntx = (int)k;
			} else {
				if (fold)   /* the daemon reads the size first (protocol.md) */
					gk_pk_kv_str(pk, "size_path", size_path);
				else
					gk_pk_kv_u64(pk, "file_size", file_size);
				c->rx = &iov[first];
				c->nrx = (int)k;
				if (fold)
					c->rx_len = &rx_len[first];
			}
		}
	}
	rc = gk_rpc_run(calls, ncalls);
	for (int i = 0; !rc && i < ncalls; i++)
		if (calls[i].status)
			rc = -calls[i].status;
	if (!rc && fold && !is_write) {
		/* one request (fold needs all pieces in one): its size and frames */
		const msgpack_object *so = gk_mp_get(calls[0].result, "size");
		if (!so || so->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
			fold = 0;       /* not understood: the caller asks the size apart */
			done = 0;
		} else {
			/* every frame exactly its piece clipped at that size (pieces
			 * are in file order in the one request): never hand out a gap
			 * of stale buffer bytes as data */
			uint64_t size = so->via.u64;
			done = 0;
			for (uint64_t i = 0; i < npieces && !rc; i++) {
				uint64_t at = offset + pc[i].buf_off;
				uint64_t want = size <= at ? 0 : (size - at < pc[i].len ? size - at : pc[i].len);
				if (rx_len[i] != want)
					rc = -EIO;
				done += (ssize_t)want;
			}
		}
	}
	gk_calls_done(calls, ncalls);
	if (folded)
		*folded = fold;
out:
	free(pc);
	free(own);
	free(iov);
	free(calls);
	free(rx_len);
	return rc ? rc : done;
}

ssize_t
gk_fwd_write(const char *data_key, const char *cap, const void *buf, uint64_t offset,
             uint64_t count)
{
	return data_op(1, data_key, cap, (char *)buf, offset, count, 0, NULL, NULL);
}

ssize_t
gk_fwd_write_sized(const char *path, const char *data_key, const char *cap, const void *buf,
                   uint64_t offset, uint64_t count)
{
	int folded = 0;
	ssize_t n = data_op(1, data_key, cap, (char *)buf, offset, count, 0, path, &folded);

	if (n < 0 || folded) {
		gk_dcache_changed(path, 0);
		return n;
	}
	int rc = gk_fwd_update_size(path, data_key, cap, offset, count, 0, NULL);
	return rc ? rc : n;
}

ssize_t
gk_fwd_read(const char *data_key, const char *cap, void *buf, uint64_t offset, uint64_t count,
            uint64_t file_size)
{
	return data_op(0, data_key, cap, buf, offset, count, file_size, NULL, NULL);
}

ssize_t
gk_fwd_read_sized(const char *path, const char *data_key, const char *cap, void *buf,
                  uint64_t offset, uint64_t count, int *folded)
{
	*folded = 0;
	return data_op(0, data_key, cap, buf, offset, count, 0, path, folded);
}

static int
broadcast_key(const char *op, const char *data_key, const char *cap, int with_size,
              uint64_t size)
{
	unsigned n = gkc_cfg.n_hosts;
	struct gk_call *c = new_calls(n);
	int rc;

	if (!c)
		return -ENOMEM;
	for (unsigned i = 0; i < n; i++) {
		msgpack_packer *pk = gk_call_args(&c[i], i, op,
		                                  (data_key != NULL) * (1 + has_cap(cap)) +
		                                  (with_size ? 2 : 0));
		if (data_key)
			gk_pk_kv_str(pk, "data_key", data_key);
		if (data_key && has_cap(cap))
			gk_pk_kv_str(pk, "cap", cap);
		if (with_size) {
			gk_pk_kv_u64(pk, "chunk_size", gk_chunk_size);
			gk_pk_kv_u64(pk, "size", size);
		}
	}
	rc = broadcast(c);
	gk_calls_done(c, n);
	free(c);
	return rc;
}

int
gk_fwd_remove_chunks(const char *data_key, const char *cap)
{
	return broadcast_key("remove_chunks", data_key, cap, 0, 0);
}

int
gk_fwd_truncate_chunks(const char *data_key, const char *cap, uint64_t size)
{
	int rc = gk_rpc_ready();
	if (rc)
		return rc;
	return broadcast_key("truncate_chunks", data_key, cap, 1, size);
}

int
gk_fwd_fsync(const char *data_key, const char *cap)
{
	return broadcast_key("fsync", data_key && *data_key ? data_key : NULL, cap, 0, 0);
}

int
gk_fwd_statfs(struct gk_fsstat *out)
{
	unsigned n = gkc_cfg.n_hosts;
	struct gk_call *c = new_calls(n);
	int rc;

	if (!c)
		return -ENOMEM;
	for (unsigned i = 0; i < n; i++)
		gk_call_args(&c[i], i, "statfs", 0);
	rc = broadcast(c);
	memset(out, 0, sizeof(*out));
	out->name_max = GK_NAME_MAX;
	out->chunk_size = gk_chunk_size;
	for (unsigned i = 0; !rc && i < n; i++) {
		out->total_bytes += gk_mp_u64(c[i].result, "total_bytes", 0);
		out->free_bytes += gk_mp_u64(c[i].result, "free_bytes", 0);
		out->avail_bytes += gk_mp_u64(c[i].result, "avail_bytes", 0);
		out->files += gk_mp_u64(c[i].result, "files", 0);
	}
	gk_calls_done(c, n);
	free(c);
	return rc;
}

int
gk_fwd_rename(const char *old, const char *new_, struct gk_record *replaced)
{
	struct gk_call c;
	msgpack_packer *pk = gk_call_args(&c, owner(old), "rename", 2);

	gk_pk_kv_str(pk, "old", old);
	gk_pk_kv_str(pk, "new", new_);
	int rc = held_reply(&c, "replaced", "replaced_held", replaced);
	gk_dcache_changed(new_, 1);
	return changed(old, 1, rc);
}

int
gk_fwd_insert(const char *path, const char *from, const struct gk_record *rec, int replace,
              struct gk_record *replaced)
{
	struct gk_call c;
	msgpack_packer *pk = path_request(&c, "insert", path, 4);

	/* the daemon takes the record from `from` itself, never ours */
	gk_pk_kv_str(pk, "from", from);
	gk_pk_str(pk, "record");
	gk_pk_record(pk, rec);
	gk_pk_kv_bool(pk, "replace", replace);
	int rc = held_reply(&c, "replaced", "replaced_held", replaced);
	gk_dcache_changed(from, 1);
	return changed(path, 1, rc);
}

int
gk_fwd_symlink(const char *path, const char *target)
{
	struct gk_call c;
	msgpack_packer *pk = path_request(&c, "symlink", path, 4);

	gk_pk_kv_str(pk, "target", target);
	gk_pk_kv_u64(pk, "uid", syscall_no_intercept(SYS_geteuid));
	gk_pk_kv_u64(pk, "gid", syscall_no_intercept(SYS_getegid));
	return changed(path, 1, single_reply(&c, NULL, NULL));
}

int
gk_fwd_readlink(const char *path, char *buf, size_t size)
{
	struct gk_call c;
	int rc;

	path_request(&c, "readlink", path, 1);
	rc = run_one(&c);
	if (!rc && gk_mp_str(c.result, "target", buf, size) != 0)
		rc = -EBADMSG;
	gk_call_done(&c);
	return rc;
}

int
gk_fwd_utimens(const char *path, uint64_t atime_ns, uint64_t mtime_ns)
{
	struct gk_call c;
	msgpack_packer *pk = path_request(&c, "utimens", path,
	                                  1 + (atime_ns != UINT64_MAX) + (mtime_ns != UINT64_MAX));

	if (atime_ns != UINT64_MAX)
		gk_pk_kv_u64(pk, "atime_ns", atime_ns);
	if (mtime_ns != UINT64_MAX)
		gk_pk_kv_u64(pk, "mtime_ns", mtime_ns);
	return changed(path, 0, single_reply(&c, NULL, NULL));
}

int
gk_fwd_utimens_now(const char *path)
{
	struct gk_call c;
	msgpack_packer *pk = path_request(&c, "utimens", path, 2);

	gk_pk_kv_bool(pk, "now", 1);
	return changed(path, 0, single_reply(&c, NULL, NULL));
}

int
gk_fwd_setattr(const char *path, long mode, long uid, long gid)
{
	struct gk_call c;
	msgpack_packer *pk = path_request(&c, "setattr", path,
	                                  1 + (mode >= 0) + (uid >= 0) + (gid >= 0));

	if (mode >= 0)
		gk_pk_kv_u64(pk, "mode", (uint64_t)mode);
	if (uid >= 0)
		gk_pk_kv_u64(pk, "uid", (uint64_t)uid);
	if (gid >= 0)
		gk_pk_kv_u64(pk, "gid", (uint64_t)gid);
	return changed(path, 1, single_reply(&c, NULL, NULL));
}

/* Locks go to the owner of chunk 0 of the file's data key (the key, not
 * the path, survives rename), on the process's lock session. */
int
gk_fwd_lock(const char *data_key, const char *cap, const char *owner, const char *space,
            int type, uint64_t start, uint64_t len, int test,
            struct gk_lock_conflict *conflict)
{
	struct gk_call c;
	msgpack_packer *pk = gk_call_args(&c, gk_chunk_owner(data_key, 0, gkc_cfg.n_hosts),
	                                  "lock", 8 + has_cap(cap));
	int rc;

	gk_pk_kv_str(pk, "data_key", data_key);
	if (has_cap(cap))   /* only a user who could open the file may lock it */
		gk_pk_kv_str(pk, "cap", cap);
	gk_pk_kv_str(pk, "owner", owner);
	gk_pk_kv_str(pk, "space", space);
	gk_pk_kv_u64(pk, "type", (uint64_t)type);
	gk_pk_kv_u64(pk, "start", start);
	gk_pk_kv_u64(pk, "len", len);
	gk_pk_kv_u64(pk, "pid", (uint64_t)syscall_no_intercept(SYS_getpid));
	gk_pk_kv_bool(pk, "test", test);
	rc = gk_rpc_run_session(&c, 1);
	if (!rc)
		rc = -c.status;
	if (!rc) {
		const msgpack_object *o = gk_mp_get(c.result, "conflict");
		rc = gk_mp_bool(c.result, "granted") ? 0 : 1;
		if (conflict) {
			memset(conflict, 0, sizeof(*conflict));
			if (o && o->type == MSGPACK_OBJECT_MAP) {
				conflict->found = 1;
				conflict->type = (int)gk_mp_u64(o, "type", 1);
				conflict->start = gk_mp_u64(o, "start", 0);
				conflict->len = gk_mp_u64(o, "len", 0);
				conflict->pid = (int64_t)gk_mp_u64(o, "pid", 0);
				gk_mp_str(o, "owner", conflict->owner, sizeof(conflict->owner));
			}
		}
	}
	gk_call_done(&c);
	return rc;
}

int
gk_fwd_unlock_owner(const char *data_key, const char *owner)
{
	struct gk_call c;
	msgpack_packer *pk = gk_call_args(&c, gk_chunk_owner(data_key, 0, gkc_cfg.n_hosts),
	                                  "unlock_owner", 2);
	int rc;

	gk_pk_kv_str(pk, "owner", owner);
	gk_pk_kv_str(pk, "data_key", data_key);
	rc = gk_rpc_run_session(&c, 1);
	if (!rc)
		rc = -c.status;
	gk_call_done(&c);
	return rc;
}

/* Fences of a directory rename on daemon `target` (docs/protocol.md 4.8). */
int
gk_fwd_fence(unsigned target, const char *token, const char *old, const char *new_,
             const char *old_parent, const char *new_parent, int on)
{
	struct gk_call c;
	msgpack_packer *pk = gk_call_args(&c, target, "fence", 4);
	int rc;

	gk_pk_kv_str(pk, "owner", token);
	gk_pk_kv_bool(pk, "on", on);
	gk_pk_str(pk, "tree");
	msgpack_pack_array(pk, 2);
	gk_pk_str(pk, old);
	gk_pk_str(pk, new_);
	gk_pk_str(pk, "list");
	msgpack_pack_array(pk, 2);
	gk_pk_str(pk, old_parent);
	gk_pk_str(pk, new_parent);
	rc = gk_rpc_run_session(&c, 1);
	if (!rc)
		rc = -c.status;
	gk_call_done(&c);
	return rc;
}
