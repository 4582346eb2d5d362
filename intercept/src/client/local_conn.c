/*
 * local_conn.c - a connection over the local stream (local_conn.h).
 *
 * Every system call here is raw (syscall_no_intercept): the descriptor is
 * the client's own, and under qemu-user a call that went through libc and
 * the hook's dispatch would cost several times the bare call on every
 * message.  The socket is non-blocking: each wait is a ppoll bounded by
 * the call's deadline, so a daemon that stops reading or answering gives
 * a timeout, never a hang.
 *
 * Receiving: the socket is read into a small per-connection buffer only
 * up to the header (with READ_AHEAD bytes to spare, so that a small reply
 * is one read); a data frame's bytes go straight from the socket into the
 * caller's buffers (readv), so file data is copied only where it arrived
 * with the header, at most READ_AHEAD bytes per message.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>

#include "libsyscall_intercept_hook_point.h"
#include "config.h"
#include "internal_fds.h"
#include "local_conn.h"
#include "local_stream.h"
#include "log.h"

#define READ_AHEAD 4096
#define RETRY_MS 1000   /* a member over TCP: how often its stream is tried */
#define IOV_BATCH 64

struct gk_lconn {
	int fd;
	unsigned char *buf;   /* [0, end): bytes read; the current message starts at 0 */
	size_t cap, end;
	size_t cur;           /* first byte of the current message not consumed */
	uint32_t nframes;     /* of the current message (its prefix is buf[0..]) */
};

/* --- descriptors of this process's connections (for the fork child) ------ */
#define MAX_TRACKED 65536
static unsigned long open_bits[MAX_TRACKED / (8 * sizeof(unsigned long))];
#define WBITS (8 * sizeof(unsigned long))

static void
track(int fd, int on)
{
	if (fd < 0 || fd >= MAX_TRACKED)
		return;
	if (on)
		__atomic_fetch_or(&open_bits[fd / WBITS], 1UL << (fd % WBITS), __ATOMIC_RELAXED);
	else
		__atomic_fetch_and(&open_bits[fd / WBITS], ~(1UL << (fd % WBITS)), __ATOMIC_RELAXED);
}

void
gk_lconn_after_fork(void)
{
	for (unsigned i = 0; i < MAX_TRACKED / WBITS; i++)
		for (unsigned k = 0; open_bits[i] && k < WBITS; k++)
			if (open_bits[i] & (1UL << k)) {
				syscall_no_intercept(SYS_close, (long)(i * WBITS + k));
				open_bits[i] &= ~(1UL << k);
			}
}

long
gk_lconn_now_ms(void)
{
	struct timespec ts;
	syscall_no_intercept(SYS_clock_gettime, CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

int
gk_lconn_poll(struct pollfd *fds, unsigned n, long timeout_ms)
{
	struct timespec ts = {timeout_ms / 1000, (timeout_ms % 1000) * 1000000L};
	/* -errno on failure, as raw calls give it */
	return (int)syscall_no_intercept(SYS_ppoll, fds, n, timeout_ms < 0 ? NULL : &ts, NULL, 0);
}

/* Waits until fd is ready for `events` or the deadline passes. */
static int
wait_fd(int fd, short events, long deadline_ms)
{
	for (;;) {
		struct pollfd p = {fd, events, 0};
		long left = deadline_ms - gk_lconn_now_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		int r = gk_lconn_poll(&p, 1, left);
		if (r == -EINTR || r == 0)
			continue;
		if (r < 0)
			return r;
		if (p.revents & (POLLERR | POLLNVAL))
			return -ECONNRESET;
		return 0;   /* ready, or POLLHUP: the read or write then says which */
	}
}

struct gk_lconn *
gk_lconn_open(const char *uuid, uint64_t member_id, const char *address)
{
	struct sockaddr_un sa;
	struct ucred cred;
	socklen_t cl = sizeof(cred);
	struct gk_lconn *lc;
	int len;
	long fd, r;

	/* qemu-user (7.2) lengthens a sockaddr_un by one byte when its last
	 * byte is not NUL and the byte after it is (a path whose NUL was left
	 * out): an abstract name would gain a NUL and be another name.  So
	 * the bytes after the name are not NUL; the kernel never reads them. */
	memset(&sa, '!', sizeof(sa));
	sa.sun_family = AF_UNIX;
	len = gk_ls_name(sa.sun_path, sizeof(sa.sun_path) - 1, uuid, member_id, address);
	if (len < 0)
		return NULL;
	fd = syscall_no_intercept(SYS_socket, AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return NULL;
	fd = gk_internal_adopt(fd);   /* high number, out of the program's reach */
	r = syscall_no_intercept(SYS_connect, fd, &sa,
	                         (long)(offsetof(struct sockaddr_un, sun_path) + (size_t)len));
	if (r == 0)
		r = syscall_no_intercept(SYS_getsockopt, fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl);
	if (r == 0 && cred.uid != (uid_t)syscall_no_intercept(SYS_geteuid)) {
		static int warned;
		gkc_warn_once(&warned, "the local stream of member %llu (%s) is held by "
		              "uid %u, not ours: not used, that member goes over TCP",
		              (unsigned long long)member_id, address, (unsigned)cred.uid);
		r = -EACCES;
	}
	if (r != 0 || !(lc = calloc(1, sizeof(*lc)))) {
		gk_internal_forget(fd);
		syscall_no_intercept(SYS_close, fd);
		return NULL;
	}
	lc->fd = (int)fd;
	track(lc->fd, 1);
	GKC_LOG(GKC_DEBUG, "member %llu: local stream connected", (unsigned long long)member_id);
	return lc;
}

void
gk_lconn_abandon(struct gk_lconn *lc)
{
	if (!lc)
		return;
	free(lc->buf);
	free(lc);
}

void
gk_lconn_close(struct gk_lconn *lc)
{
	if (!lc)
		return;
	track(lc->fd, 0);
	gk_internal_forget(lc->fd);
	syscall_no_intercept(SYS_close, lc->fd);
	gk_lconn_abandon(lc);
}

int
gk_lconn_fd(const struct gk_lconn *lc)
{
	return lc->fd;
}

int
gk_lconn_buffered(const struct gk_lconn *lc)
{
	return lc->end > lc->cur;
}

void
gk_lslot_drop(struct gk_lslot *s, int later)
{
	gk_lconn_close(s->lc);
	s->lc = NULL;
	s->retry = later ? gk_lconn_now_ms() + RETRY_MS : 0;
}

struct gk_lconn *
gk_lslot_get(struct gk_lslot *s, unsigned member)
{
	char address[256];

	if (gkc_cfg.local_stream_off || !gkc_config_owner_key())
		return NULL;
	if (s->gen != gkc_cfg.hosts[member].gen)
		gk_lslot_drop(s, 0);   /* moved: another name, try it now */
	if (s->lc || (s->retry && gk_lconn_now_ms() < s->retry))
		return s->lc;
	gkc_config_address(member, address, sizeof(address), &s->gen);
	if (address[0])
		s->lc = gk_lconn_open(gkc_cfg.cluster, member, address);
	s->retry = s->lc ? 0 : gk_lconn_now_ms() + RETRY_MS;
	return s->lc;
}

/* Drops the first done bytes of *iov[0..*n) (what one sendmsg or readv
 * moved): whole entries go, a partial one is shortened in place. */
static void
iov_advance(struct iovec **iov, int *n, size_t done)
{
	while (*n > 0 && done >= (*iov)->iov_len) {
		done -= (*iov)->iov_len;
		(*iov)++;
		(*n)--;
	}
	if (*n > 0) {
		(*iov)->iov_base = (char *)(*iov)->iov_base + done;
		(*iov)->iov_len -= done;
	}
}

/* --- sending ---------------------------------------------------------------- */
/* Writes iov[0..n) whole (advancing it), waiting for room at most until the
 * deadline, taken from timeout_ms at the first wait (most sends never wait). */
static int
write_all(int fd, struct iovec *iov, int n, int timeout_ms, long *deadline)
{
	while (n > 0) {
		struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)(n < IOV_BATCH ? n : IOV_BATCH)};
		/* MSG_NOSIGNAL: a daemon gone is EPIPE here, not the program's SIGPIPE */
		long w = syscall_no_intercept(SYS_sendmsg, fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w == -EINTR)
			continue;
		if (w == -EAGAIN) {
			if (!*deadline)
				*deadline = gk_lconn_now_ms() + timeout_ms;
			int r = wait_fd(fd, POLLOUT, *deadline);
			if (r)
				return r;
			continue;
		}
		if (w < 0)
			return (int)w;
		iov_advance(&iov, &n, (size_t)w);
	}
	return 0;
}

int
gk_lconn_send(struct gk_lconn *lc, const void *header, size_t header_len,
              const struct iovec *tx, int ntx, int timeout_ms)
{
	unsigned char small[8 + 4 * IOV_BATCH];
	struct iovec iov[2 + IOV_BATCH];
	unsigned char *prefix = small;
	long deadline = 0;
	int rc;

	if (ntx < 0 || (unsigned)ntx + 1 > GK_LS_MAX_FRAMES)
		return -EMSGSIZE;
	if (ntx > IOV_BATCH && !(prefix = malloc(8 + 4 * (size_t)ntx)))
		return -ENOMEM;
	iov[0] = (struct iovec){prefix, gk_ls_prefix(prefix, header_len, tx, ntx)};
	iov[1] = (struct iovec){(void *)header, header_len};
	/* the data frames follow from the caller's buffers, a batch at a time
	 * (write_all moves along a copy of the iovecs, never the caller's) */
	int k = ntx < IOV_BATCH ? ntx : IOV_BATCH;
	memcpy(iov + 2, tx, (size_t)k * sizeof(*tx));
	rc = write_all(lc->fd, iov, 2 + k, timeout_ms, &deadline);
	for (int i = k; !rc && i < ntx; i += k) {
		k = ntx - i < IOV_BATCH ? ntx - i : IOV_BATCH;
		memcpy(iov, tx + i, (size_t)k * sizeof(*tx));
		rc = write_all(lc->fd, iov, k, timeout_ms, &deadline);
	}
	if (prefix != small)
		free(prefix);
	return rc;
}

/* --- receiving -------------------------------------------------------------- */
/* One read of at most `want` bytes into the buffer (grown to hold them):
 * never more, so that little of a message's data lands in the buffer. */
static int
fill(struct gk_lconn *lc, size_t want, long deadline_ms)
{
	if (lc->cap - lc->end < want) {
		size_t cap = lc->end + want;
		unsigned char *b = realloc(lc->buf, cap);
		if (!b)
			return -ENOMEM;
		lc->buf = b;
		lc->cap = cap;
	}
	for (;;) {
		long r = syscall_no_intercept(SYS_read, lc->fd, lc->buf + lc->end, want);
		if (r > 0) {
			lc->end += (size_t)r;
			return 0;
		}
		if (r == 0)
			return -ECONNRESET;   /* the daemon closed it (stopped, or dropped us) */
		if (r == -EINTR)
			continue;
		if (r != -EAGAIN)
			return (int)r;
		if ((r = wait_fd(lc->fd, POLLIN, deadline_ms)) != 0)
			return (int)r;
	}
}

/* Reads straight into iov[0..n) until all of it is filled. */
static int
read_all(int fd, struct iovec *iov, int n, long deadline_ms)
{
	while (n > 0) {
		long r = syscall_no_intercept(SYS_readv, fd, iov, n < IOV_BATCH ? n : IOV_BATCH);
		if (r == 0)
			return -ECONNRESET;
		if (r == -EINTR)
			continue;
		if (r == -EAGAIN) {
			int w = wait_fd(fd, POLLIN, deadline_ms);
			if (w)
				return w;
			continue;
		}
		if (r < 0)
			return (int)r;
		iov_advance(&iov, &n, (size_t)r);
	}
	return 0;
}

int
gk_lconn_recv_header(struct gk_lconn *lc, long deadline_ms, char **header,
                     size_t *header_len)
{
	uint32_t n;
	uint64_t total;
	size_t need;
	int rc;

	*header = NULL;
	if (lc->cur) {   /* the previous message's rest: what was read ahead */
		memmove(lc->buf, lc->buf + lc->cur, lc->end - lc->cur);
		lc->end -= lc->cur;
		lc->cur = 0;
	}
	while ((rc = gk_ls_parse_prefix(lc->buf, lc->end, &n, &total, &need)) == 0)
		if ((rc = fill(lc, need - lc->end + READ_AHEAD, deadline_ms)) != 0)
			return rc;
	if (rc < 0) {
		GKC_LOG(GKC_ERR, "local stream: a message breaks the framing limits: closed");
		return -EPROTO;
	}
	size_t prefix = 4 + 4 * (size_t)n, hlen = gk_ls_frame_len(lc->buf, 0);
	size_t have = lc->end - prefix < hlen ? lc->end - prefix : hlen;
	char *h = malloc(hlen ? hlen : 1);
	if (!h)
		return -ENOMEM;
	memcpy(h, lc->buf + prefix, have);
	if (have < hlen) {
		struct iovec rest = {h + have, hlen - have};
		if ((rc = read_all(lc->fd, &rest, 1, deadline_ms)) != 0) {
			free(h);
			return rc;
		}
	}
	lc->cur = prefix + have;
	lc->nframes = n;
	*header = h;
	*header_len = hlen;
	return 0;
}

int
gk_lconn_recv_data(struct gk_lconn *lc, long deadline_ms, const struct iovec *rx,
                   int nrx, size_t *rx_len)
{
	struct iovec batch[IOV_BATCH];
	int nb = 0, rc = 0;
	/* bytes nobody reads (a stale reply's data): one buffer for every
	 * thread, only the kernel writes it */
	static char sink[4096];

	for (uint32_t i = 1; i < lc->nframes && !rc; i++) {
		size_t len = gk_ls_frame_len(lc->buf, i);
		size_t room = rx && (int)i - 1 < nrx ? rx[i - 1].iov_len : 0;
		size_t keep = len < room ? len : room;
		char *dst = keep ? rx[i - 1].iov_base : NULL;
		/* what arrived with the header comes out of the buffer */
		size_t have = lc->end - lc->cur < len ? lc->end - lc->cur : len;
		size_t copy = have < keep ? have : keep;
		if (copy)
			memcpy(dst, lc->buf + lc->cur, copy);
		lc->cur += have;
		if (rx_len && (int)i - 1 < nrx)
			rx_len[i - 1] = keep;
		/* the rest straight from the socket: kept bytes into the
		 * caller's buffer, bytes beyond it into a sink */
		size_t pos = have;
		if (pos < keep) {
			batch[nb++] = (struct iovec){dst + pos, keep - pos};
			pos = keep;
		}
		while (pos < len && !rc) {
			size_t k = len - pos < sizeof(sink) ? len - pos : sizeof(sink);
			if (nb == IOV_BATCH)
				rc = read_all(lc->fd, batch, nb, deadline_ms), nb = 0;
			batch[nb++] = (struct iovec){sink, k};
			pos += k;
		}
		if (nb == IOV_BATCH && !rc)
			rc = read_all(lc->fd, batch, nb, deadline_ms), nb = 0;
	}
	if (nb && !rc)
		rc = read_all(lc->fd, batch, nb, deadline_ms);
	return rc;
}
