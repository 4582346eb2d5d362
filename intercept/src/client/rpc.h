/*
 * rpc.h - the transport: one ZeroMQ DEALER per daemon per thread (a daemon
 * of this host and network namespace: its local stream, local_conn.h and
 * docs/protocol.md 1.1), requests to several daemons sent together and
 * their replies polled for together, matched by request id; every wait
 * bounded by LIBGKFS_RPC_TIMEOUT_MS (EIO when it runs out, never a hang).
 *
 * libzmq is loaded with dlopen the first time a process touches gkfs, so
 * processes that never do load nothing and start no thread.
 */
#ifndef GKFS_CLIENT_RPC_H
#define GKFS_CLIENT_RPC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>
#include <msgpack.h>

struct gk_call {
	/* in */
	unsigned target;            /* host index */
	const char *op;
	msgpack_sbuffer args;       /* packed args map (gk_call_args) */
	const struct iovec *tx;     /* data frames to send */
	int ntx;
	struct iovec *rx;           /* where received data frames go */
	int nrx;
	/* out */
	int status;                 /* 0 or a positive errno */
	size_t *rx_len;             /* bytes received per rx entry (optional) */
	msgpack_unpacked reply;     /* owns `result` */
	const msgpack_object *result;
	/* private */
	char *reply_frame;          /* header frame bytes: reply's strings point
	                               into it (msgpack-c does not copy them) */
	uint64_t id;
	int state;
	int via_local;              /* sent over the member's local stream */
};

/* Starts the args map with n entries; pack the entries with proto.h. */
msgpack_packer *gk_call_args(struct gk_call *c, unsigned target,
                             const char *op, uint32_t n_entries);
/* Sends every call, waits for every reply (or the timeout). Returns 0 when
 * all were answered (look at each status), -EIO/-ENOTCONN on transport
 * failure (unanswered calls then have status EIO). */
int gk_rpc_run(struct gk_call *calls, int n);
/* gk_rpc_run on the process's lock session: sockets that live as long as
 * the process (locks are bound to the connection that took them). */
int gk_rpc_run_session(struct gk_call *calls, int n);
/* A random id of this process (new in a forked child): its lock owner. */
uint64_t gk_rpc_process_owner(void);
/* This thread's sockets carried a hold: keep them open after the thread
 * exits (until the process does). */
void gk_rpc_pin_thread(void);
/* Sends the calls on this thread's sockets without waiting for replies
 * (they are dropped when they come); 0 or -EIO. */
int gk_rpc_post(struct gk_call *calls, int n);
/* Every request this thread sends carries this fence token (NULL: none). */
void gk_rpc_set_fence(const char *token);
/* Frees what a call holds (args and reply). */
void gk_call_done(struct gk_call *c);
void gk_calls_done(struct gk_call *c, int n);

/* Cluster facts learnt at the first use. */
int gk_rpc_ready(void);                 /* 0, or -errno: cluster unusable */
extern uint64_t gk_chunk_size;

/* A forked child must never use its parent's ZeroMQ context. */
void gk_rpc_after_fork(void);

#endif
