/*
 * rpc.c - ZeroMQ transport (docs/protocol.md section 1, 2).
 *
 * Sockets are per thread (ZeroMQ sockets are not thread-safe, and a lock
 * around them would serialise every thread's I/O); they are created at the
 * thread's first request and closed by a pthread key destructor when it
 * exits.  A forked child gets a new context and new sockets: the parent's
 * belong to I/O threads that do not exist in the child, so they are
 * abandoned, never touched.
 *
 * A member of this host and network namespace is reached over its local
 * stream instead (docs/protocol.md 1.1, local_conn.c): same messages, no
 * libzmq I/O thread on the way.  Each member slot has both; a call goes
 * over the stream when it is connected, else over ZeroMQ.
 */
#include <dlfcn.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>

#include "libsyscall_intercept_hook_point.h"
#include "config.h"
#include "internal_fds.h"
#include "local_conn.h"
#include "log.h"
#include "proto.h"
#include "rpc.h"

/* --- libzmq, loaded on demand --------------------------------------------- */
/* Constants from zmq.h (stable ABI since 3.x); we do not include zmq.h so the
 * library is not a link-time dependency. */
#define Z_DEALER 5
#define Z_LINGER 17
#define Z_SNDTIMEO 28
#define Z_RCVTIMEO 27
#define Z_SNDMORE 2
#define Z_DONTWAIT 1
#define Z_POLLIN 1
#define Z_RCVMORE 13
#define Z_CURVE_PUBLICKEY 48
#define Z_CURVE_SECRETKEY 49
#define Z_CURVE_SERVERKEY 50

typedef struct { unsigned char _[64]; } __attribute__((aligned(8))) z_msg_t;
typedef struct { void *socket; int fd; short events; short revents; } z_pollitem_t;

static struct {
	void *(*ctx_new)(void);
	void *(*socket)(void *, int);
	int (*close)(void *);
	int (*connect)(void *, const char *);
	int (*setsockopt)(void *, int, const void *, size_t);
	int (*send)(void *, const void *, size_t, int);
	int (*msg_init)(z_msg_t *);
	int (*msg_recv)(z_msg_t *, void *, int);
	int (*msg_close)(z_msg_t *);
	void *(*msg_data)(z_msg_t *);
	size_t (*msg_size)(const z_msg_t *);
	int (*msg_more)(const z_msg_t *);
	int (*poll)(z_pollitem_t *, int, long);
	int (*errno_)(void);
	const char *(*strerror)(int);
} z;

static int z_loaded;   /* 1 ok, -1 failed */
#define REFRESH_MS 500  /* how often a silent member's entry is read again */

static int
load_zmq(void)
{
	void *h;

	if (z_loaded)
		return z_loaded > 0 ? 0 : -1;
	h = dlopen("libzmq.so.5", RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		static int warned;
		gkc_warn_once(&warned, "cannot load libzmq.so.5: %s", dlerror());
		z_loaded = -1;
		return -1;
	}
#define SYM(field, name) \
	if (!(*(void **)&z.field = dlsym(h, name))) { z_loaded = -1; return -1; }
	SYM(ctx_new, "zmq_ctx_new");
	SYM(socket, "zmq_socket");
	SYM(close, "zmq_close");
	SYM(connect, "zmq_connect");
	SYM(setsockopt, "zmq_setsockopt");
	SYM(send, "zmq_send");
	SYM(msg_init, "zmq_msg_init");
	SYM(msg_recv, "zmq_msg_recv");
	SYM(msg_close, "zmq_msg_close");
	SYM(msg_data, "zmq_msg_data");
	SYM(msg_size, "zmq_msg_size");
	SYM(msg_more, "zmq_msg_more");
	SYM(poll, "zmq_poll");
	SYM(errno_, "zmq_errno");
	SYM(strerror, "zmq_strerror");
#undef SYM
	z_loaded = 1;
	return 0;
}

/* --- process and thread state --------------------------------------------- */
static pthread_mutex_t init_lock = PTHREAD_MUTEX_INITIALIZER;
static void *z_ctx;
static unsigned long rpc_gen = 1;       /* bumped in a forked child */
static int ready_errno = -1;            /* -1 not tried, 0 ok, else errno */
static pthread_key_t conn_key;
static int conn_key_made;
uint64_t gk_chunk_size;

struct member_conn {
	void *s;                 /* DEALER, or NULL */
	unsigned addr_gen;
	struct gk_lslot ls;      /* local stream */
};

struct conn {
	unsigned long gen;
	unsigned n;
	uint64_t next_id;
	struct member_conn sock[];   /* one per member */
};

/* The lock session (see gk_rpc_run_session). */
static pthread_mutex_t session_lock = PTHREAD_MUTEX_INITIALIZER;
static struct conn *session;
static uint64_t session_owner;

static __thread struct conn *tls_conn __attribute__((tls_model("initial-exec")));

static void
close_conn(struct conn *c)
{
	if (!c)
		return;
	for (unsigned i = 0; i < c->n; i++) {
		if (c->gen != rpc_gen) {
			/* another generation's: sockets abandoned, descriptors of
			 * local streams closed at the fork (gk_lconn_after_fork) */
			gk_lconn_abandon(c->sock[i].ls.lc);
			continue;
		}
		if (c->sock[i].s)
			z.close(c->sock[i].s);
		gk_lconn_close(c->sock[i].ls.lc);
	}
	free(c);
}

/* This thread's sockets registered opens (holds): they must live as long
 * as the process, since the daemons drop a connection's holds when it
 * closes (docs/protocol.md 4.6), and the descriptors outlive the thread. */
static __thread int thread_pinned __attribute__((tls_model("initial-exec")));

void
gk_rpc_pin_thread(void)
{
	thread_pinned = 1;
}

static void
conn_destructor(void *p)
{
	if (thread_pinned)
		return;   /* left open (never used again) until the process ends */
	/* Runs at thread exit, outside any hook: libzmq's calls made here must
	 * be treated as the client's (internal_fds.c), not the program's. */
	int old = gk_hook_enter_client();
	close_conn(p);
	gk_hook_leave_client(old);
}

/* A socket to member i at its current address; NULL when the member has
 * no entry in the hosts file (down: the call fails with EIO naming it). */
static void *
open_socket(unsigned i, unsigned *addr_gen)
{
	char address[256];
	void *s;
	int zero = 0, t = gkc_cfg.timeout_ms;

	gkc_config_address(i, address, sizeof(address), addr_gen);
	if (!address[0]) {
		gkc_config_refresh_member(i);
		gkc_config_address(i, address, sizeof(address), addr_gen);
	}
	if (!address[0]) {
		GKC_LOG(GKC_ERR, "member %u of the cluster in %s is not registered (down? see "
		        "gkfs-ctl status)", i, gkc_cfg.hosts_file);
		return NULL;
	}
	s = z.socket(z_ctx, Z_DEALER);
	if (!s)
		return NULL;
	z.setsockopt(s, Z_LINGER, &zero, sizeof(zero));
	z.setsockopt(s, Z_SNDTIMEO, &t, sizeof(t));
	/* CURVE: the daemons admit only keys their owner issued; Z85 keys are
	 * passed as 40-character strings. */
	if (!gkc_cfg.security_off &&
	    (z.setsockopt(s, Z_CURVE_SERVERKEY, gkc_cfg.server_key, 40) != 0 ||
	     z.setsockopt(s, Z_CURVE_PUBLICKEY, gkc_cfg.public_key, 40) != 0 ||
	     z.setsockopt(s, Z_CURVE_SECRETKEY, gkc_cfg.secret_key, 40) != 0)) {
		GKC_LOG(GKC_ERR, "CURVE keys refused by libzmq: %s (built without CURVE?)",
		        z.strerror(z.errno_()));
		z.close(s);
		return NULL;
	}
	if (z.connect(s, address) != 0) {
		GKC_LOG(GKC_ERR, "connect member %u at %s: %s", i, address,
		        z.strerror(z.errno_()));
		z.close(s);
		return NULL;
	}
	return s;
}

static void
member_address(unsigned i, char *out, size_t size)
{
	gkc_config_address(i, out, size, NULL);
}

static struct conn *
get_conn(void)
{
	struct conn *c = tls_conn;

	if (c && c->gen == rpc_gen && c->n == gkc_cfg.n_hosts)
		return c;
	if (c)
		close_conn(c);
	c = calloc(1, sizeof(*c) + gkc_cfg.n_hosts * sizeof(c->sock[0]));
	if (!c)
		return NULL;
	c->gen = rpc_gen;
	c->n = gkc_cfg.n_hosts;
	c->next_id = 1;
	tls_conn = c;
	if (conn_key_made)
		pthread_setspecific(conn_key, c);
	return c;
}

void
gk_rpc_after_fork(void)
{
	/* Runs in the child: forget the parent's context and sockets. */
	rpc_gen++;
	z_ctx = NULL;
	tls_conn = NULL;   /* this thread's; it is the only one in the child */
	gk_lconn_after_fork();   /* closed, not abandoned: see local_conn.h */
	session = NULL;    /* the parent's locks are not the child's */
	thread_pinned = 0;
	session_owner = 0;
	pthread_mutex_init(&session_lock, NULL);
	pthread_mutex_init(&init_lock, NULL);
	if (ready_errno == 0)
		ready_errno = -2;     /* connect again, chunk size is known */
}

/* --- calls ------------------------------------------------------------------ */
enum { C_NEW, C_SENT, C_DONE };

/* The fence token of a directory rename this thread is doing: every
 * request it sends carries it (docs/protocol.md 4.8). */
static __thread const char *tls_fence __attribute__((tls_model("initial-exec")));

void
gk_rpc_set_fence(const char *token)
{
	tls_fence = token;
}

msgpack_packer *
gk_call_args(struct gk_call *c, unsigned target, const char *op, uint32_t n)
{
	static __thread msgpack_packer pk __attribute__((tls_model("initial-exec")));

	memset(c, 0, sizeof(*c));
	c->target = target;
	c->op = op;
	msgpack_sbuffer_init(&c->args);
	msgpack_packer_init(&pk, &c->args, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, n + (tls_fence != NULL));
	if (tls_fence)
		gk_pk_kv_str(&pk, "fence", tls_fence);
	return &pk;
}

void
gk_call_done(struct gk_call *c)
{
	msgpack_sbuffer_destroy(&c->args);
	if (c->state == C_DONE && c->result)
		msgpack_unpacked_destroy(&c->reply);
	free(c->reply_frame);   /* after the objects that point into it */
	c->reply_frame = NULL;
	c->result = NULL;
	c->state = C_NEW;
}

void
gk_calls_done(struct gk_call *c, int n)
{
	for (int i = 0; i < n; i++)
		gk_call_done(&c[i]);
}

static int
send_call(struct conn *cn, struct gk_call *c)
{
	msgpack_sbuffer h;
	msgpack_packer pk;
	struct gk_lconn *lc = gk_lslot_get(&cn->sock[c->target].ls, c->target);
	void *s = cn->sock[c->target].s;
	int rc;

	c->id = cn->next_id++;
	msgpack_sbuffer_init(&h);
	msgpack_packer_init(&pk, &h, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, c->args.size ? 4 : 3);
	gk_pk_kv_u64(&pk, "v", GK_PROTOCOL_VERSION);
	gk_pk_kv_str(&pk, "op", c->op);
	gk_pk_kv_u64(&pk, "id", c->id);
	if (c->args.size) {
		gk_pk_str(&pk, "args");
		msgpack_sbuffer_write(&h, c->args.data, c->args.size);
	}
	c->via_local = 0;
	if (lc) {
		rc = gk_lconn_send(lc, h.data, h.size, c->tx, c->ntx, gkc_cfg.timeout_ms);
		if (rc == 0) {
			msgpack_sbuffer_destroy(&h);
			c->via_local = 1;
			c->state = C_SENT;
			return 0;
		}
		/* not sent whole: the daemon drops a broken message unread */
		GKC_LOG(GKC_INFO, "local stream to member %u: %s: over TCP", c->target,
		        strerror(-rc));
		gk_lslot_drop(&cn->sock[c->target].ls, 1);
	}
	if (s && cn->sock[c->target].addr_gen != gkc_cfg.hosts[c->target].gen) {
		z.close(s);   /* the member registered a new address (restart) */
		s = cn->sock[c->target].s = NULL;
	}
	if (!s)
		s = cn->sock[c->target].s = open_socket(c->target, &cn->sock[c->target].addr_gen);
	if (!s) {
		msgpack_sbuffer_destroy(&h);
		return -EIO;
	}
	rc = z.send(s, h.data, h.size, c->ntx ? Z_SNDMORE : 0);
	msgpack_sbuffer_destroy(&h);
	for (int i = 0; rc >= 0 && i < c->ntx; i++)
		rc = z.send(s, c->tx[i].iov_base, c->tx[i].iov_len,
		            i + 1 < c->ntx ? Z_SNDMORE : 0);
	if (rc < 0) {
		char a[256];
		member_address(c->target, a, sizeof(a));
		GKC_LOG(GKC_ERR, "send %s to member %u (%s): %s", c->op, c->target, a,
		        z.strerror(z.errno_()));
		return -EIO;
	}
	c->state = C_SENT;
	return 0;
}

/* Decodes a reply's header frame (buf, which the call keeps if it is
 * answered: see receive_one) into *up and finds the call it answers; NULL
 * for a stale or undecodable reply (up is then freed, buf is not). */
static struct gk_call *
match_reply(unsigned target, struct gk_call *calls, int n, char *buf, size_t len,
            msgpack_unpacked *up)
{
	size_t off = 0;

	msgpack_unpacked_init(up);
	if (msgpack_unpack_next(up, buf, len, &off) == MSGPACK_UNPACK_SUCCESS) {
		uint64_t id = gk_mp_u64(&up->data, "id", 0);
		for (int i = 0; i < n; i++)
			if (calls[i].state == C_SENT && calls[i].target == target &&
			    calls[i].id == id)
				return &calls[i];
	}
	msgpack_unpacked_destroy(up);
	return NULL;
}

/* Gives call c its reply (header frame buf, decoded as up). */
static void
settle(struct gk_call *c, unsigned target, msgpack_unpacked *up, char *buf)
{
	uint64_t v = gk_mp_u64(&up->data, "v", 0);
	c->reply = *up;
	c->reply_frame = buf;
	c->state = C_DONE;
	c->result = gk_mp_get(&c->reply.data, "result");
	c->status = (int)gk_mp_u64(&c->reply.data, "status", EIO);
	if (v != GK_PROTOCOL_VERSION) {
		GKC_LOG(GKC_ERR, "client speaks protocol %d, daemon speaks %lu",
		        GK_PROTOCOL_VERSION, (unsigned long)v);
		c->status = EPROTO;
	}
	if (c->status && gkc_log_level >= GKC_DEBUG) {
		char msg[256];
		gk_mp_str(&c->reply.data, "msg", msg, sizeof(msg));
		gkc_log(GKC_DEBUG, "%s on member %u: errno %d (%s)", c->op, target,
		        c->status, msg);
	}
	if (!c->result) {
		static const msgpack_object empty = {.type = MSGPACK_OBJECT_MAP};
		c->result = &empty;
	}
}

/* The ZeroMQ frame p is copied first: its memory goes back to libzmq. */
static struct gk_call *
file_reply(unsigned target, struct gk_call *calls, int n, const char *p, size_t len)
{
	msgpack_unpacked up;
	struct gk_call *c;
	char *buf = malloc(len ? len : 1);

	if (!buf)
		return NULL;
	memcpy(buf, p, len);
	if (!(c = match_reply(target, calls, n, buf, len, &up))) {
		free(buf);
		return NULL;
	}
	settle(c, target, &up, buf);
	return c;
}

/* Reads one whole message from socket i and files it under its call.
 *
 * msgpack_unpack_next() does not copy str/bin payloads: the objects point
 * into the bytes they were unpacked from.  The zmq frame is closed (and its
 * memory reused by the next receive or another thread) long before the
 * caller reads the reply, so the header frame is first copied into a buffer
 * the call owns until gk_call_done(). */
static int
receive_one(struct conn *cn, unsigned target, struct gk_call *calls, int n)
{
	z_msg_t m;
	struct gk_call *c = NULL;
	int frame = 0, more = 1;

	while (more) {
		z.msg_init(&m);
		if (z.msg_recv(&m, cn->sock[target].s, Z_DONTWAIT) < 0) {
			z.msg_close(&m);
			break;
		}
		more = z.msg_more(&m);
		const char *p = z.msg_data(&m);
		size_t len = z.msg_size(&m);
		if (frame == 0)
			c = file_reply(target, calls, n, p, len);
		else if (c && frame - 1 < c->nrx) {
			struct iovec *d = &c->rx[frame - 1];
			size_t k = len < d->iov_len ? len : d->iov_len;
			memcpy(d->iov_base, p, k);
			if (c->rx_len)
				c->rx_len[frame - 1] = k;
		}
		z.msg_close(&m);
		frame++;
	}
	return frame > 0;
}

/* One message from member t's local stream, its data frames read
 * straight into the call's buffers; the call is answered only once the
 * whole message is in.  0, or -errno: the stream is broken. */
static int
receive_local(struct conn *cn, unsigned t, struct gk_call *calls, int n, long deadline)
{
	struct gk_lconn *lc = cn->sock[t].ls.lc;
	msgpack_unpacked up;
	struct gk_call *c;
	char *buf;
	size_t len;
	int rc = gk_lconn_recv_header(lc, deadline, &buf, &len);

	if (rc)
		return rc;
	c = match_reply(t, calls, n, buf, len, &up);
	rc = gk_lconn_recv_data(lc, deadline, c ? c->rx : NULL, c ? c->nrx : 0,
	                        c ? c->rx_len : NULL);
	if (c && !rc) {
		settle(c, t, &up, buf);
		return 0;
	}
	if (c)
		msgpack_unpacked_destroy(&up);
	free(buf);
	return rc;
}

static void
reset_socket(struct conn *cn, unsigned i)
{
	/* Requests still queued for a daemon that did not answer must never
	 * reach it later (a late write): drop the socket (linger 0), and the
	 * local stream (connected again at the next use). */
	if (cn->sock[i].s) {
		z.close(cn->sock[i].s);
		cn->sock[i].s = NULL;
	}
	gk_lslot_drop(&cn->sock[i].ls, 0);
}

/* Ops whose repetition cannot change the outcome: sent again to a member
 * that restarted while they were in flight (as REPEATABLE_OPS in rpc.py;
 * create/update_size/insert are repeatable there only with some args, so
 * this side, which does not look into args, never repeats them). */
static int
repeatable(const char *op)
{
	static const char *const ops[] = {
		"ping", "status", "statfs", "stat", "get_dirents", "read_chunks",
		"write_chunks", "truncate", "truncate_chunks", "remove_chunks", "fsync",
		"readlink", "utimens", "setattr", NULL,
	};
	for (int i = 0; ops[i]; i++)
		if (!strcmp(op, ops[i]))
			return 1;
	return 0;
}

/* Members with calls in flight that registered a new address (restarted):
 * reconnect and send repeatable calls again; others fail with EIO, since
 * the old process may have run them before it died. */
static void
follow_restarts(struct conn *cn, struct gk_call *calls, int n)
{
	for (unsigned t = 0; t < cn->n; t++) {
		int waiting = 0;
		for (int i = 0; i < n; i++)
			waiting += calls[i].state == C_SENT && calls[i].target == t;
		if (!waiting || !gkc_config_refresh_member(t))
			continue;
		reset_socket(cn, t);
		for (int i = 0; i < n; i++) {
			if (calls[i].state != C_SENT || calls[i].target != t)
				continue;
			if (repeatable(calls[i].op) && send_call(cn, &calls[i]) == 0)
				continue;
			GKC_LOG(GKC_ERR, "%s: member %u restarted while it was in flight: "
			        "outcome unknown, EIO", calls[i].op, t);
			calls[i].status = EIO;
			calls[i].state = C_NEW;
		}
	}
}

static int run_on(struct conn *cn, struct gk_call *calls, int n, int rc);

/* Polls the items, nz of them DEALERs; local streams alone (the usual case
 * on one node) go to the kernel directly, without libzmq's poll; none at
 * all is a bounded sleep (calls lost with a broken stream wait for the
 * member's new entry or their timeout).  Returns >= 0, or -errno. */
static int
poll_items(z_pollitem_t *items, int ni, int nz, long timeout_ms)
{
	struct pollfd p[64];
	int r;

	if (nz) {
		r = z.poll(items, ni, timeout_ms);
		return r < 0 ? -z.errno_() : r;
	}
	for (int k = 0; k < ni; k++)
		p[k] = (struct pollfd){items[k].fd, POLLIN, 0};
	r = gk_lconn_poll(p, (unsigned)ni, timeout_ms);
	for (int k = 0; k < ni && r > 0; k++)
		items[k].revents = p[k].revents;
	return r;
}

int
gk_rpc_run(struct gk_call *calls, int n)
{
	struct conn *cn = NULL;
	long deadline = 0, delay_us = 1000;
	int rc = 0;

	if (gk_rpc_ready() != 0)
		rc = -EIO;
	cn = rc ? NULL : get_conn();
	for (;;) {
		rc = run_on(cn, calls, n, rc);
		/* EAGAIN: a directory rename is moving this path (protocol 4.8):
		 * ask again shortly, within the usual bound */
		int again = 0;
		for (int i = 0; !rc && i < n; i++)
			again |= calls[i].state == C_DONE && calls[i].status == EAGAIN;
		if (!again)
			return rc;
		/* from the first answer that says so (a clock read less on
		 * every call: under qemu each one is an emulated system call) */
		if (!deadline)
			deadline = gk_lconn_now_ms() + gkc_cfg.timeout_ms;
		else if (gk_lconn_now_ms() > deadline)
			return rc;
		for (int i = 0; i < n; i++)
			if (calls[i].state == C_DONE && calls[i].status == EAGAIN) {
				if (calls[i].result)
					msgpack_unpacked_destroy(&calls[i].reply);
				free(calls[i].reply_frame);
				calls[i].reply_frame = NULL;
				calls[i].result = NULL;
				calls[i].state = C_NEW;
			}
		struct timespec ts = {0, delay_us * 1000};
		syscall_no_intercept(SYS_nanosleep, &ts, NULL);
		if (delay_us < 20000)
			delay_us *= 2;
		cn = get_conn();
	}
}

int
gk_rpc_post(struct gk_call *calls, int n)
{
	struct conn *cn;
	int rc = 0;

	if (gk_rpc_ready() != 0 || !(cn = get_conn()))
		return -EIO;
	for (int i = 0; i < n; i++) {
		if (calls[i].target >= cn->n)
			continue;
		if (send_call(cn, &calls[i]) != 0) {
			reset_socket(cn, calls[i].target);
			rc = -EIO;
		}
		calls[i].state = C_NEW;   /* its reply, if any, is dropped as stale */
	}
	return rc;
}

/* --- the lock session ---------------------------------------------------------
 * Locks are bound by the daemons to the connection that took them (they go
 * when it closes: docs/protocol.md 4.5), so lock requests use one set of
 * sockets per process that lives as long as the process, never a thread's
 * (closed at thread exit).  A forked child starts its own (its parent's
 * locks are not its own); exec closes it (CLOEXEC), dropping the locks. */

int
gk_rpc_run_session(struct gk_call *calls, int n)
{
	int rc = 0;

	if (gk_rpc_ready() != 0)
		rc = -EIO;
	pthread_mutex_lock(&session_lock);
	if (!rc && (!session || session->gen != rpc_gen || session->n != gkc_cfg.n_hosts)) {
		struct conn *c = calloc(1, sizeof(*c) + gkc_cfg.n_hosts * sizeof(c->sock[0]));
		if (c) {
			c->gen = rpc_gen;
			c->n = gkc_cfg.n_hosts;
			c->next_id = 1;
		}
		if (session && session->gen == rpc_gen)
			close_conn(session);
		session = c;
	}
	rc = run_on(rc ? NULL : session, calls, n, rc);
	pthread_mutex_unlock(&session_lock);
	return rc;
}

uint64_t
gk_rpc_process_owner(void)
{
	uint64_t v = __atomic_load_n(&session_owner, __ATOMIC_ACQUIRE);

	while (!v) {
		if (syscall_no_intercept(SYS_getrandom, &v, sizeof(v), 0) != (long)sizeof(v))
			v = ((uint64_t)syscall_no_intercept(SYS_getpid) << 32) ^ (uint64_t)gk_lconn_now_ms();
		uint64_t zero = 0;
		if (!__atomic_compare_exchange_n(&session_owner, &zero, v, 0,
		                                 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
			v = zero;
	}
	return v;
}

static int
run_on(struct conn *cn, struct gk_call *calls, int n, int rc)
{
	z_pollitem_t items[64];
	unsigned idx[64];
	int pending = 0;
	long deadline, next_refresh;

	if (!cn)
		rc = -EIO;
	for (int i = 0; i < n && !rc; i++) {
		if (calls[i].state == C_DONE)
			continue;     /* answered in an earlier round (gk_rpc_run's retry) */
		calls[i].status = EIO;
		if (calls[i].target >= cn->n) {
			calls[i].state = C_DONE;
			continue;
		}
		if (send_call(cn, &calls[i]) == 0)
			pending++;
		else
			reset_socket(cn, calls[i].target);
	}
	if (rc) {
		for (int i = 0; i < n; i++)
			calls[i].status = EIO;
		return rc;
	}
	/* one clock read per round: under qemu each is an emulated call */
	long now = gk_lconn_now_ms();
	deadline = now + gkc_cfg.timeout_ms;
	next_refresh = now + REFRESH_MS;
	for (int first = 1; pending; first = 0) {
		int ni = 0;
		if (!first)
			now = gk_lconn_now_ms();
		if (now >= next_refresh) {
			next_refresh = now + REFRESH_MS;
			follow_restarts(cn, calls, n);
		}
		/* a member's DEALER and local stream, each if a call waits on it
		 * (a call sent on a stream since broken waits on neither: lost) */
		int nz = 0;
		for (unsigned t = 0; t < cn->n && ni < 63; t++) {
			int on_z = 0, on_l = 0;
			for (int i = 0; i < n; i++)
				if (calls[i].state == C_SENT && calls[i].target == t) {
					on_l |= calls[i].via_local;
					on_z |= !calls[i].via_local;
				}
			if (on_z && cn->sock[t].s) {
				items[ni] = (z_pollitem_t){cn->sock[t].s, 0, Z_POLLIN, 0};
				idx[ni++] = t;
				nz++;
			}
			if (on_l && cn->sock[t].ls.lc) {
				items[ni] = (z_pollitem_t){NULL, gk_lconn_fd(cn->sock[t].ls.lc), Z_POLLIN, 0};
				idx[ni++] = t;
			}
		}
		long left = deadline - now;
		if (left <= 0)
			break;
		int r = poll_items(items, ni, nz, left < REFRESH_MS ? left : REFRESH_MS);
		if (r < 0) {
			if (r == -EINTR)
				continue;
			break;
		}
		for (int k = 0; k < ni; k++) {
			unsigned t = idx[k];
			if (items[k].socket && (items[k].revents & Z_POLLIN))
				/* everything waiting: replies to posted calls and lock
				 * probes are dropped here in one go */
				while (receive_one(cn, t, calls, n))
					;
			if (items[k].socket || !items[k].revents)
				continue;
			/* readable, or hung up (the read then says so); what was
			 * read ahead of the next message is received too */
			int lr;
			do
				lr = receive_local(cn, t, calls, n, deadline);
			while (!lr && gk_lconn_buffered(cn->sock[t].ls.lc));
			if (lr) {
				GKC_LOG(GKC_INFO, "local stream to member %u: %s: closed, its calls "
				        "in flight are lost as on a daemon crash", t, strerror(-lr));
				gk_lslot_drop(&cn->sock[t].ls, 1);
			}
		}
		pending = 0;
		for (int i = 0; i < n; i++)
			pending += calls[i].state == C_SENT;
	}
	if (pending) {
		for (int i = 0; i < n; i++)
			if (calls[i].state == C_SENT) {
				char a[256];
				member_address(calls[i].target, a, sizeof(a));
				GKC_LOG(GKC_ERR, "%s: no answer from member %u (%s) within %d ms "
				        "(down? see gkfs-ctl status)", calls[i].op, calls[i].target,
				        a, gkc_cfg.timeout_ms);
				calls[i].status = EIO;
				calls[i].state = C_NEW;
				reset_socket(cn, calls[i].target);
			}
		rc = -EIO;
	}
	return rc;
}

/* --- first use ---------------------------------------------------------------- */
/* Every registered member that answers must be of this cluster, in its
 * own slot, with the record's chunk size.  A member that is down is not an
 * error here: the calls that need it fail with EIO; placement never moves. */
static int
handshake(void)
{
	unsigned n = gkc_cfg.n_hosts;
	struct gk_call *calls = calloc(n, sizeof(*calls));
	int err = 0;

	if (!calls)
		return ENOMEM;
	for (unsigned i = 0; i < n; i++)
		gk_call_args(&calls[i], i, "ping", 0);
	ready_errno = 0;        /* let gk_rpc_run through */
	gk_rpc_run(calls, n);
	for (unsigned i = 0; i < n && !err; i++) {
		char cluster[40];
		if (calls[i].state != C_DONE || !calls[i].result)
			continue;   /* down or not registered */
		if (calls[i].status == EPROTO) {
			err = EPROTO;
			break;
		}
		if (calls[i].status)
			continue;
		uint64_t c = gk_mp_u64(calls[i].result, "chunk_size", 0);
		uint64_t id = gk_mp_u64(calls[i].result, "id", UINT64_MAX);
		gk_mp_str(calls[i].result, "cluster", cluster, sizeof(cluster));
		if (c != gkc_cfg.chunk_size || id != i || strcmp(cluster, gkc_cfg.cluster)) {
			GKC_LOG(GKC_ERR, "member %u answers as member %lu of cluster %s (chunk size "
			        "%lu), not member %u of cluster %s (chunk size %lu): refusing the "
			        "cluster", i, (unsigned long)id, cluster, (unsigned long)c, i,
			        gkc_cfg.cluster, (unsigned long)gkc_cfg.chunk_size);
			err = EINVAL;
		}
	}
	gk_calls_done(calls, n);
	free(calls);
	if (!err)
		gk_chunk_size = gkc_cfg.chunk_size;
	return err;
}

int
gk_rpc_ready(void)
{
	int err;

	if (__atomic_load_n(&ready_errno, __ATOMIC_ACQUIRE) == 0)
		return 0;
	pthread_mutex_lock(&init_lock);
	if (ready_errno == 0) {
		pthread_mutex_unlock(&init_lock);
		return 0;
	}
	if (ready_errno == -2) {   /* forked child: new context only */
		z_ctx = z.ctx_new();
		ready_errno = z_ctx ? 0 : EIO;
		err = ready_errno;
		pthread_mutex_unlock(&init_lock);
		return -err;
	}
	err = 0;
	if ((!gkc_cfg.n_hosts || gkc_cfg.hosts_errno) && gkc_config_reload_hosts() != 0) {
		static int warned;
		gkc_warn_once(&warned, "no usable gkfs hosts file at %s (%s): start a cluster "
		              "with 'gkfs-ctl cluster start -n 3' or set LIBGKFS_HOSTS_FILE",
		              gkc_cfg.hosts_file, strerror(gkc_cfg.hosts_errno));
		err = EIO;
	}
	if (!err && (err = -gkc_config_load_key()) != 0) {
		static int warned;
		gkc_warn_once(&warned, "no usable gkfs client key at %s (%s): a cluster's key is made "
		              "with it beside its hosts file; set LIBGKFS_KEY_FILE to a key issued by "
		              "the cluster's owner (LIBGKFS_SECURITY=off only on a trusted network)",
		              gkc_cfg.key_file, strerror(err));
		err = EIO;
	}
	if (!err && load_zmq() != 0)
		err = EIO;
	if (!err && !conn_key_made) {
		pthread_key_create(&conn_key, conn_destructor);
		conn_key_made = 1;
	}
	if (!err && !z_ctx && !(z_ctx = z.ctx_new()))
		err = EIO;
	if (!err) {
		err = handshake();
		if (err) {
			static int warned;
			gkc_warn_once(&warned, "gkfs daemons of %s do not answer properly "
			              "(errno %d): file system calls under %s fail with EIO",
			              gkc_cfg.hosts_file, err, gkc_cfg.mount);
		}
	}
	/* A failure is not cached for ever: a later call tries again. */
	ready_errno = err ? -1 : 0;
	pthread_mutex_unlock(&init_lock);
	return err ? -EIO : 0;
}
