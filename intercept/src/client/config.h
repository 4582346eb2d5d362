/*
 * config.h - the client's configuration, from the environment and the
 * hosts file (docs/protocol.md section 6, format v2): the cluster record
 * fixes the member count N and the chunk size; slot i is member id i,
 * read from <hosts>.d/<i> (or an inline line).  Placement uses N, never
 * the number of members registered now.
 *
 *   LIBGKFS_HOSTS_FILE     hosts file; else $XDG_RUNTIME_DIR/gkfs/hosts,
 *                          else /tmp/gkfs-<uid>/hosts (as hostsfile.py)
 *   LIBGKFS_MOUNT          mount prefix; else the daemons' recorded mount,
 *                          else /gkfs
 *   LIBGKFS_RPC_TIMEOUT_MS bound on every wait for a daemon (default 10000);
 *                          LIBGKFS_RPC_TIMEOUT (seconds, the Python client's
 *                          variable) is read when the _MS one is unset
 *   LIBGKFS_SECURITY       "off": plain TCP (the daemons must run with
 *                          security off too); else CURVE with the key below
 *   LIBGKFS_KEY_FILE       client key; else <hosts file>.keys/client.key
 *                          (owner-only, as security.py writes it)
 *   LIBGKFS_LOCAL_STREAM   "off": every member over ZeroMQ/TCP; else a
 *                          member on this host and network namespace over
 *                          its local stream (docs/protocol.md 1.1)
 *   LIBGKFS_LOG, LIBGKFS_LOG_OUTPUT: see log.h
 *
 * The hosts file must be owned by us or root and writable by nobody else,
 * the key file readable by nobody else: anything else is refused (EACCES),
 * never used, as another user could have planted it.
 */
#ifndef GKFS_CLIENT_CONFIG_H
#define GKFS_CLIENT_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#define GK_PATH_MAX 4096        /* protocol limit on a path, bytes */
#define GK_NAME_MAX 255

struct gkc_host {
	uint64_t id;
	char address[256];         /* "" = member not registered (down) */
	unsigned gen;              /* bumped when the address changes */
};

struct gkc_config {
	char hosts_file[GK_PATH_MAX];
	char mount[GK_PATH_MAX];   /* canonical, no trailing '/', never "/" */
	size_t mount_len;
	struct gkc_host *hosts;    /* one per member slot, index = member id */
	unsigned n_hosts;          /* the cluster's fixed member count N */
	char cluster[40];          /* cluster uuid of the record */
	uint64_t chunk_size;       /* of the record */
	int hosts_errno;           /* why the hosts file could not be used;
	                              EAGAIN: member entries not read yet */
	int timeout_ms;
	int security_off;          /* LIBGKFS_SECURITY=off */
	int local_stream_off;      /* LIBGKFS_LOCAL_STREAM=off */
	char key_file[GK_PATH_MAX];
	int key_loaded;            /* 1 once the three keys below are read */
	char server_key[41];       /* Z85, NUL-terminated */
	char public_key[41];
	char secret_key[41];
};

extern struct gkc_config gkc_cfg;

/* Environment and the hosts file's cluster record (raw calls), once per
 * process: gkc_config_ensure() before the first use of gkc_cfg.  Not in
 * the constructor (unless logging is on): a process that never makes a
 * call the client hooks reads neither (under qemu-user every first-run
 * basic block costs ~3 us of translation).  Threads racing the first
 * call wait for the one that loads; a fork child of a process caught
 * mid-load loads again (gkc_config_after_fork). */
extern int gkc_config_state;   /* 0 not loaded, 1 loading, 2 loaded */
void gkc_config_load_once(void);
static inline void
gkc_config_ensure(void)
{
	if (__builtin_expect(__atomic_load_n(&gkc_config_state, __ATOMIC_ACQUIRE) != 2, 0))
		gkc_config_load_once();
}
void gkc_config_after_fork(void);
/* Reads the hosts file again (a cluster started after this process). */
int gkc_config_reload_hosts(void);
/* Reads the client key file (0, or -errno; EACCES for an unsafe file,
 * EINVAL for a malformed one). */
int gkc_config_load_key(void);
/* 1 when this client may use the local stream as the cluster's owner:
 * security off, or its key is the owner's own (docs/protocol.md 1.1). */
int gkc_config_owner_key(void);
/* Reads member i's entry again; 1 if its address changed (a restart). */
int gkc_config_refresh_member(unsigned i);
/* Copies member i's address (under the config lock); "" if none. */
void gkc_config_address(unsigned i, char *out, size_t size, unsigned *gen);

#endif
