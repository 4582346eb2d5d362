/*
 * local_conn.h - one connection over the local stream (docs/protocol.md
 * 1.1): connect to a member's abstract UNIX socket, check who listens,
 * send and receive whole messages; when a member's stream is tried
 * (gk_lslot).  Framing is local_stream.h; which call goes where, rpc.c.
 *
 * One connection is used by one thread at a time (rpc.c keeps them per
 * thread, and the lock session's under its mutex).  Every wait is bounded;
 * any error means the stream is broken: close it, never resynchronise.
 */
#ifndef GKFS_CLIENT_LOCAL_CONN_H
#define GKFS_CLIENT_LOCAL_CONN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

struct gk_lconn;

/* Connects to member `member_id` (at `address`) of cluster `uuid`; NULL
 * when no listener is there, it is not of our effective uid (closed before
 * a byte is sent), or anything else fails: the member then goes over TCP. */
struct gk_lconn *gk_lconn_open(const char *uuid, uint64_t member_id, const char *address);
void gk_lconn_close(struct gk_lconn *lc);
/* Frees without closing: a forked child's copy of a parent's connection,
 * whose descriptor gk_lconn_after_fork already closed. */
void gk_lconn_abandon(struct gk_lconn *lc);
int gk_lconn_fd(const struct gk_lconn *lc);

/* Sends [header, tx...] whole, waiting at most timeout_ms for room;
 * 0 or -errno. */
int gk_lconn_send(struct gk_lconn *lc, const void *header, size_t header_len,
                  const struct iovec *tx, int ntx, int timeout_ms);

/* Receives the next message's prefix and header frame into a malloc'd
 * buffer (*header, the caller's to free; the reply parser keeps it), then,
 * with gk_lconn_recv_data, its data frames.  Waits until deadline_ms
 * (CLOCK_MONOTONIC ms).  0 or -errno (broken: close it). */
int gk_lconn_recv_header(struct gk_lconn *lc, long deadline_ms, char **header,
                         size_t *header_len);
/* Data frame i goes to rx[i] (at most its iov_len bytes; *rx_len[i] set
 * when rx_len), straight from the socket; frames beyond nrx and bytes
 * beyond an iov_len are read and dropped.  rx may be NULL (drop all). */
int gk_lconn_recv_data(struct gk_lconn *lc, long deadline_ms, const struct iovec *rx,
                       int nrx, size_t *rx_len);
/* Bytes of a next message already read from the socket: receive it
 * without waiting for the descriptor to poll readable. */
int gk_lconn_buffered(const struct gk_lconn *lc);

/* CLOCK_MONOTONIC in milliseconds (a raw call): the clock of every
 * deadline_ms here, and of rpc.c's deadlines, which it passes on. */
long gk_lconn_now_ms(void);

/* poll(2) on local connections only, with the kernel directly (raw ppoll:
 * no libzmq, no hook); fds may be empty (a bounded sleep). */
struct pollfd;
int gk_lconn_poll(struct pollfd *fds, unsigned n, long timeout_ms);

/* A member slot's stream, as rpc.c keeps one per member per thread (and
 * in the lock session), with when to try it (protocol.md 1.1, Lifetime):
 * at the member's first use, after a reset, when the member moved (its
 * hosts-file address changed: another name), else at most once a second. */
struct gk_lslot {
	struct gk_lconn *lc;   /* connected, or NULL: the member goes over TCP */
	unsigned gen;          /* the address generation last tried */
	long retry;            /* no new try before (CLOCK_MONOTONIC ms; 0: now) */
};
/* The slot's stream for member `member` (connecting it when it is time);
 * NULL with LIBGKFS_LOCAL_STREAM=off or when it is not usable. */
struct gk_lconn *gk_lslot_get(struct gk_lslot *s, unsigned member);
/* Closes the slot's stream; the next try at the next use (later = 0) or
 * in a second (1: it just failed). */
void gk_lslot_drop(struct gk_lslot *s, int later);

/* In a forked child: close every inherited connection's descriptor.  A
 * child writing into its parent's stream would interleave bytes with the
 * parent's, and an open copy would keep the parent's locks and holds
 * alive on the daemon after the parent is gone. */
void gk_lconn_after_fork(void);

#endif
