/*
 * proto.h - msgpack helpers for the wire protocol (docs/protocol.md 2, 4):
 * packing argument maps, reading reply maps, the stat record.  No I/O.
 */
#ifndef GKFS_CLIENT_PROTO_H
#define GKFS_CLIENT_PROTO_H

#include <stdint.h>
#include <msgpack.h>

#include "config.h"

#define GK_PROTOCOL_VERSION 1
#define GK_DEFAULT_CHUNK_SIZE (512u * 1024u)
/* Per-request payload bound: the daemon's default max_frame_size is 64 MiB
 * + 64 KiB per message; stay well below so headers always fit. */
#define GK_MAX_PAYLOAD (16u * 1024u * 1024u)
#define GK_MAX_CHUNKS_PER_REQUEST 4096
#define GK_DIRENTS_PAGE 1024

#define GK_S_IFMT   0170000
#define GK_S_IFREG  0100000
#define GK_S_IFDIR  0040000
#define GK_S_IFLNK  0120000

/* The stat record of 4.1. */
struct gk_record {
	uint32_t mode;
	uint64_t size, nlink, uid, gid;
	uint64_t atime_ns, mtime_ns, ctime_ns;
	char data_key[80];
	char cap[64];                   /* data capability for us ("" with security off) */
	char target[GK_PATH_MAX + 1];   /* symlinks only, else "" */
	/* not a record field: set by remove/rename/insert when the file it
	 * names stays open somewhere, so its data must stay (the daemon keeps
	 * it as an orphan until the last release) */
	int held;
};

/* Packing (all keys are str). */
void gk_pk_str(msgpack_packer *pk, const char *s);
void gk_pk_kv_str(msgpack_packer *pk, const char *key, const char *val);
void gk_pk_kv_u64(msgpack_packer *pk, const char *key, uint64_t val);
void gk_pk_kv_bool(msgpack_packer *pk, const char *key, int val);
void gk_pk_record(msgpack_packer *pk, const struct gk_record *r);

/* Reading: NULL / defaults when absent or of another type. */
const msgpack_object *gk_mp_get(const msgpack_object *map, const char *key);
uint64_t gk_mp_u64(const msgpack_object *map, const char *key, uint64_t dflt);
int gk_mp_bool(const msgpack_object *map, const char *key);
/* Copies a str value into buf (NUL-terminated); -1 if absent/too long. */
int gk_mp_str(const msgpack_object *map, const char *key, char *buf, size_t size);
int gk_mp_strobj(const msgpack_object *o, char *buf, size_t size);
/* A stat record map -> struct; -EBADMSG if it is not one. */
int gk_record_decode(const msgpack_object *o, struct gk_record *r);

#endif
