/*
 * proto.c - msgpack encoding and decoding helpers (docs/protocol.md).
 */
#include <errno.h>
#include <string.h>

#include "proto.h"

void
gk_pk_str(msgpack_packer *pk, const char *s)
{
	size_t n = strlen(s);
	msgpack_pack_str(pk, n);
	msgpack_pack_str_body(pk, s, n);
}

void
gk_pk_kv_str(msgpack_packer *pk, const char *key, const char *val)
{
	gk_pk_str(pk, key);
	gk_pk_str(pk, val);
}

void
gk_pk_kv_u64(msgpack_packer *pk, const char *key, uint64_t val)
{
	gk_pk_str(pk, key);
	msgpack_pack_uint64(pk, val);
}

void
gk_pk_kv_bool(msgpack_packer *pk, const char *key, int val)
{
	gk_pk_str(pk, key);
	if (val)
		msgpack_pack_true(pk);
	else
		msgpack_pack_false(pk);
}

void
gk_pk_record(msgpack_packer *pk, const struct gk_record *r)
{
	int n = 8 + (r->data_key[0] != 0) + (r->target[0] != 0);

	msgpack_pack_map(pk, n);
	gk_pk_kv_u64(pk, "mode", r->mode);
	gk_pk_kv_u64(pk, "size", r->size);
	gk_pk_kv_u64(pk, "nlink", r->nlink);
	gk_pk_kv_u64(pk, "uid", r->uid);
	gk_pk_kv_u64(pk, "gid", r->gid);
	gk_pk_kv_u64(pk, "atime_ns", r->atime_ns);
	gk_pk_kv_u64(pk, "mtime_ns", r->mtime_ns);
	gk_pk_kv_u64(pk, "ctime_ns", r->ctime_ns);
	if (r->data_key[0])
		gk_pk_kv_str(pk, "data_key", r->data_key);
	if (r->target[0])
		gk_pk_kv_str(pk, "target", r->target);
}

const msgpack_object *
gk_mp_get(const msgpack_object *map, const char *key)
{
	size_t kl = strlen(key);

	if (!map || map->type != MSGPACK_OBJECT_MAP)
		return NULL;
	for (uint32_t i = 0; i < map->via.map.size; i++) {
		const msgpack_object *k = &map->via.map.ptr[i].key;
		if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == kl &&
		    !memcmp(k->via.str.ptr, key, kl))
			return &map->via.map.ptr[i].val;
	}
	return NULL;
}

uint64_t
gk_mp_u64(const msgpack_object *map, const char *key, uint64_t dflt)
{
	const msgpack_object *o = gk_mp_get(map, key);

	if (o && o->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
		return o->via.u64;
	return dflt;
}

int
gk_mp_bool(const msgpack_object *map, const char *key)
{
	const msgpack_object *o = gk_mp_get(map, key);
	return o && o->type == MSGPACK_OBJECT_BOOLEAN && o->via.boolean;
}

int
gk_mp_strobj(const msgpack_object *o, char *buf, size_t size)
{
	if (!o || o->type != MSGPACK_OBJECT_STR || o->via.str.size >= size) {
		if (size)
			buf[0] = '\0';
		return -1;
	}
	memcpy(buf, o->via.str.ptr, o->via.str.size);
	buf[o->via.str.size] = '\0';
	return 0;
}

int
gk_mp_str(const msgpack_object *map, const char *key, char *buf, size_t size)
{
	return gk_mp_strobj(gk_mp_get(map, key), buf, size);
}

int
gk_record_decode(const msgpack_object *o, struct gk_record *r)
{
	if (!o || o->type != MSGPACK_OBJECT_MAP || !gk_mp_get(o, "mode"))
		return -EBADMSG;
	r->mode = (uint32_t)gk_mp_u64(o, "mode", 0);
	r->size = gk_mp_u64(o, "size", 0);
	r->nlink = gk_mp_u64(o, "nlink", 1);
	r->uid = gk_mp_u64(o, "uid", 0);
	r->gid = gk_mp_u64(o, "gid", 0);
	r->atime_ns = gk_mp_u64(o, "atime_ns", 0);
	r->mtime_ns = gk_mp_u64(o, "mtime_ns", 0);
	r->ctime_ns = gk_mp_u64(o, "ctime_ns", 0);
	gk_mp_str(o, "data_key", r->data_key, sizeof(r->data_key));
	if (gk_mp_str(o, "cap", r->cap, sizeof(r->cap)) != 0)
		r->cap[0] = '\0';
	gk_mp_str(o, "target", r->target, sizeof(r->target));
	return 0;
}
