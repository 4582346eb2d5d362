/*
 * log.h - the client's own log (LIBGKFS_LOG, LIBGKFS_LOG_OUTPUT), separate
 * from the core's INTERCEPT_LOG: it tells what gkfs did with a call.
 */
#ifndef GKFS_CLIENT_LOG_H
#define GKFS_CLIENT_LOG_H

enum gkc_level { GKC_OFF = 0, GKC_ERR = 1, GKC_INFO = 2, GKC_DEBUG = 3 };

extern int gkc_log_level;

void gkc_log_init(void);         /* reads the environment */
void gkc_log_after_fork(void);   /* per-pid output file: reopen */
void gkc_log(int level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Always printed on stderr (and in the log): a problem the user must see,
 * such as a missing hosts file.  Printed once per process per `key`. */
void gkc_warn_once(int *key, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define GKC_LOG(level, ...) \
	do { if (gkc_log_level >= (level)) gkc_log((level), __VA_ARGS__); } while (0)

#endif
