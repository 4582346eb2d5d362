/*
 * log_decode.c - INTERCEPT_LOG's decoding of one call, strace-like, as
 * syscall_intercept's log does: names, C strings and buffers quoted and
 * escaped, AT_FDCWD, open flags, octal modes, whence, fcntl commands,
 * errno names for failed calls.  Calls without a description here get six
 * hex arguments.  Runs only when the log is on (log.c checks first).
 *
 * Memory the call points at is read only after the kernel (or a hook)
 * answered and did not say EFAULT, so a bad pointer is printed as a
 * pointer, never followed; calls logged before they run (execve, exit:
 * result unknown) have their strings read as the kernel is about to.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <stddef.h>
#include <string.h>
#include <sys/syscall.h>

#include "runtime.h"

/* Argument kinds, one letter each:
 *   d int   l long   u unsigned   x hex   p pointer   s C string
 *   A dirfd (AT_FDCWD)   O open flags   m octal mode   W lseek whence
 *   F fcntl command   a access mode   C clone flags
 *   i buffer the call reads (length: the next argument)
 *   o buffer the call fills (length: the result)
 * Result kinds: d decimal, x hex (addresses), n no return. */
struct desc {
	short nr;
	char ret;
	char args[7];
};

#define D(name, r, a) {SYS_##name, r, a}
static const struct desc descs[] = {
	D(read, 'd', "dou"), D(write, 'd', "diu"),
	D(pread64, 'd', "doul"), D(pwrite64, 'd', "diul"),
	D(readv, 'd', "dpd"), D(writev, 'd', "dpd"),
	D(openat, 'd', "AsOm"), D(close, 'd', "d"),
#ifdef SYS_openat2
	D(openat2, 'd', "Aspu"),
#endif
#ifdef SYS_close_range
	D(close_range, 'd', "ddx"),
#endif
	D(dup, 'd', "d"), D(dup3, 'd', "ddO"), D(fcntl, 'd', "dFx"),
	D(lseek, 'd', "dlW"), D(fstat, 'd', "dp"), D(newfstatat, 'd', "Aspx"),
	D(statx, 'd', "Asxxp"), D(faccessat, 'd', "Asa"),
#ifdef SYS_faccessat2
	D(faccessat2, 'd', "Asax"),
#endif
	D(mkdirat, 'd', "Asm"), D(unlinkat, 'd', "Asx"),
	D(renameat2, 'd', "AsAsx"), D(symlinkat, 'd', "sAs"),
	D(readlinkat, 'd', "Asou"), D(linkat, 'd', "AsAsx"),
	D(mknodat, 'd', "Asmx"), D(getdents64, 'd', "dpu"),
	D(truncate, 'd', "sl"), D(ftruncate, 'd', "dl"),
	D(fsync, 'd', "d"), D(fdatasync, 'd', "d"),
	D(chdir, 'd', "s"), D(fchdir, 'd', "d"), D(getcwd, 'd', "pu"),
	D(statfs, 'd', "sp"), D(fstatfs, 'd', "dp"),
	D(utimensat, 'd', "Aspx"), D(fchmodat, 'd', "Asm"),
	D(fchmod, 'd', "dm"), D(fchownat, 'd', "Asddx"), D(fchown, 'd', "ddd"),
	D(mmap, 'x', "puxxdl"), D(munmap, 'd', "pu"), D(mprotect, 'd', "pux"),
	D(brk, 'x', "p"), D(execve, 'd', "spp"), D(execveat, 'd', "Asppx"),
	D(exit, 'n', "d"), D(exit_group, 'n', "d"),
	D(getpid, 'd', ""), D(gettid, 'd', ""), D(getppid, 'd', ""),
	D(getuid, 'd', ""), D(geteuid, 'd', ""), D(getgid, 'd', ""),
	D(getegid, 'd', ""), D(sched_yield, 'd', ""),
	D(clone, 'd', "Cppxp"),
#ifdef SYS_clone3
	D(clone3, 'd', "pu"),
#endif
	D(wait4, 'd', "dpxp"), D(kill, 'd', "dd"), D(tgkill, 'd', "ddd"),
	D(rt_sigaction, 'd', "dppu"), D(rt_sigprocmask, 'd', "dppu"),
	D(ioctl, 'd', "dxx"), D(pipe2, 'd', "pO"), D(socket, 'd', "ddd"),
	D(connect, 'd', "dpd"), D(nanosleep, 'd', "pp"),
	D(clock_nanosleep, 'd', "dxpp"), D(futex, 'd', "pxdppd"),
	D(set_tid_address, 'd', "p"), D(set_robust_list, 'd', "pu"),
	D(prlimit64, 'd', "ddpp"), D(getrandom, 'd', "oux"), D(uname, 'd', "p"),
	D(readahead, 'd', "dlu"), D(fallocate, 'd', "dxll"),
	D(fadvise64, 'd', "dlld"), D(sendfile, 'd', "ddpu"),
	D(copy_file_range, 'd', "dpdpux"), D(flock, 'd', "dx"),
	D(sync, 'd', ""), D(syncfs, 'd', "d"), D(umask, 'm', "m"),
	D(madvise, 'd', "pud"), D(mremap, 'x', "puuxp"),
};
#undef D

static const char *const errnames[] = {
#include "gk_errnames_table.h"
};

struct flag {
	long bit;
	const char *name;
};
static const struct flag open_flags[] = {
	{O_APPEND, "O_APPEND"}, {O_CLOEXEC, "O_CLOEXEC"}, {O_CREAT, "O_CREAT"},
	{O_DIRECTORY, "O_DIRECTORY"}, {O_DSYNC, "O_DSYNC"}, {O_EXCL, "O_EXCL"},
	{O_NOCTTY, "O_NOCTTY"}, {O_NOFOLLOW, "O_NOFOLLOW"},
	{O_NONBLOCK, "O_NONBLOCK"}, {O_TRUNC, "O_TRUNC"},
	{O_SYNC & ~O_DSYNC, "O_SYNC"}, {O_NOATIME, "O_NOATIME"},
	{O_PATH, "O_PATH"}, {O_DIRECT, "O_DIRECT"}, {O_LARGEFILE, "O_LARGEFILE"},
	{0, NULL}};
static const struct flag clone_flag_names[] = {
	{CLONE_VM, "CLONE_VM"}, {CLONE_FS, "CLONE_FS"},
	{CLONE_FILES, "CLONE_FILES"}, {CLONE_SIGHAND, "CLONE_SIGHAND"},
	{CLONE_PIDFD, "CLONE_PIDFD"}, {CLONE_VFORK, "CLONE_VFORK"},
	{CLONE_PARENT, "CLONE_PARENT"}, {CLONE_THREAD, "CLONE_THREAD"},
	{CLONE_SYSVSEM, "CLONE_SYSVSEM"}, {CLONE_SETTLS, "CLONE_SETTLS"},
	{CLONE_PARENT_SETTID, "CLONE_PARENT_SETTID"},
	{CLONE_CHILD_CLEARTID, "CLONE_CHILD_CLEARTID"},
	{CLONE_CHILD_SETTID, "CLONE_CHILD_SETTID"}, {0, NULL}};
static const struct flag access_flags[] = {
	{4, "R_OK"}, {2, "W_OK"}, {1, "X_OK"}, {0, NULL}};
static const struct flag fcntl_cmds[] = {
	{F_DUPFD, "F_DUPFD"}, {F_DUPFD_CLOEXEC, "F_DUPFD_CLOEXEC"},
	{F_GETFD, "F_GETFD"}, {F_SETFD, "F_SETFD"}, {F_GETFL, "F_GETFL"},
	{F_SETFL, "F_SETFL"}, {F_GETLK, "F_GETLK"}, {F_SETLK, "F_SETLK"},
	{F_SETLKW, "F_SETLKW"}, {F_OFD_GETLK, "F_OFD_GETLK"},
	{F_OFD_SETLK, "F_OFD_SETLK"}, {F_OFD_SETLKW, "F_OFD_SETLKW"},
	{F_GETPIPE_SZ, "F_GETPIPE_SZ"}, {F_SETPIPE_SZ, "F_SETPIPE_SZ"},
	{F_ADD_SEALS, "F_ADD_SEALS"}, {F_GET_SEALS, "F_GET_SEALS"}, {0, NULL}};
/* 'F' and 'W' match whole values, the others OR bits together. */

static void
put_flags(struct gk_buf *b, unsigned long v, const struct flag *f, int first)
{
	for (; f->name; f++)
		if (f->bit && (v & (unsigned long)f->bit) == (unsigned long)f->bit) {
			if (!first)
				gk_buf_str(b, "|");
			gk_buf_str(b, f->name);
			v &= ~(unsigned long)f->bit;
			first = 0;
		}
	if (v || first) {
		if (!first)
			gk_buf_str(b, "|");
		gk_buf_hex(b, v);
	}
}

static void
put_octal(struct gk_buf *b, unsigned long v)
{
	char t[24];
	int i = sizeof(t);

	do {
		t[--i] = (char)('0' + (v & 7));
		v >>= 3;
	} while (v);
	t[--i] = '0';
	gk_buf_mem(b, t + i, sizeof(t) - i);
}

/* "...": quoted, escaped, at most `max` bytes shown (paths: 256,
 * buffers: 64). */
static void
put_string(struct gk_buf *b, const char *s, long len, int max)
{
	static const char hex[] = "0123456789abcdef";
	int shown = 0;

	gk_buf_str(b, "\"");
	for (long i = 0; len < 0 ? s[i] != '\0' : i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		char e[4] = {'\\', 0, 0, 0};
		if (shown++ == max) {
			gk_buf_str(b, "\"...");
			return;
		}
		if (c == '"' || c == '\\') {
			e[1] = (char)c;
			gk_buf_mem(b, e, 2);
		} else if (c == '\n' || c == '\t' || c == '\r') {
			e[1] = c == '\n' ? 'n' : c == '\t' ? 't' : 'r';
			gk_buf_mem(b, e, 2);
		} else if (c < 0x20 || c >= 0x7f) {
			e[1] = 'x';
			e[2] = hex[c >> 4];
			e[3] = hex[c & 15];
			gk_buf_mem(b, e, 4);
		} else {
			gk_buf_mem(b, (const char *)&c, 1);
		}
	}
	gk_buf_str(b, "\"");
}

static void
put_pointer(struct gk_buf *b, long v)
{
	if (v)
		gk_buf_hex(b, (unsigned long)v);
	else
		gk_buf_str(b, "NULL");
}

static const struct desc *
find(long nr)
{
	for (size_t i = 0; i < sizeof(descs) / sizeof(descs[0]); i++)
		if (descs[i].nr == nr)
			return &descs[i];
	return NULL;
}

static void
put_arg(struct gk_buf *b, char kind, const long *a, int i, long result,
        int readable)
{
	long v = a[i];

	switch (kind) {
	case 'd':
		gk_buf_dec(b, (int)v);
		break;
	case 'l':
		gk_buf_dec(b, v);
		break;
	case 'u':
		if (v < 0)
			gk_buf_hex(b, (unsigned long)v);
		else
			gk_buf_dec(b, v);
		break;
	case 'A':
		if ((int)v == AT_FDCWD)
			gk_buf_str(b, "AT_FDCWD");
		else
			gk_buf_dec(b, (int)v);
		break;
	case 'O':
		gk_buf_str(b, (v & O_ACCMODE) == O_WRONLY ? "O_WRONLY" :
		              (v & O_ACCMODE) == O_RDWR ? "O_RDWR" :
		              (v & O_ACCMODE) == O_RDONLY ? "O_RDONLY" : "O_ACCMODE");
		if (v & ~(long)O_ACCMODE) {
			gk_buf_str(b, "|");
			put_flags(b, (unsigned long)(v & ~(long)O_ACCMODE), open_flags, 1);
		}
		break;
	case 'm':
		put_octal(b, (unsigned long)v);
		break;
	case 'W':
		gk_buf_str(b, v == 0 ? "SEEK_SET" : v == 1 ? "SEEK_CUR" :
		              v == 2 ? "SEEK_END" : v == 3 ? "SEEK_DATA" :
		              v == 4 ? "SEEK_HOLE" : "");
		if (v < 0 || v > 4)
			gk_buf_dec(b, v);
		break;
	case 'F': {
		const struct flag *f = fcntl_cmds;
		while (f->name && f->bit != v)
			f++;
		if (f->name)
			gk_buf_str(b, f->name);
		else
			gk_buf_dec(b, v);
		break;
	}
	case 'a':
		if (v == 0)
			gk_buf_str(b, "F_OK");
		else
			put_flags(b, (unsigned long)v, access_flags, 1);
		break;
	case 'C':
		put_flags(b, (unsigned long)v & ~0xffUL, clone_flag_names, 1);
		if (v & 0xff) {
			gk_buf_str(b, "|");
			gk_buf_dec(b, v & 0xff);   /* the exit signal */
		}
		break;
	case 's':
		if (v && readable)
			put_string(b, (const char *)v, -1, 256);
		else
			put_pointer(b, v);
		break;
	case 'i':
		if (v && readable && a[i + 1] >= 0)
			put_string(b, (const char *)v, a[i + 1], 64);
		else
			put_pointer(b, v);
		break;
	case 'o':
		if (v && readable && result > 0)
			put_string(b, (const char *)v, result, 64);
		else
			put_pointer(b, v);
		break;
	case 'p':
		put_pointer(b, v);
		break;
	default:
		gk_buf_hex(b, (unsigned long)v);
		break;
	}
}

void
gk_log_decode(struct gk_buf *b, long nr, const long *args, long result,
              int result_known)
{
	const struct desc *d = find(nr);
	const char *name = gk_sysname(nr);
	/* after the call: follow pointers unless the kernel refused them
	 * (EFAULT); before it (result unknown): as the kernel will */
	int readable = !result_known || result != -14;
	int n;

	if (name) {
		gk_buf_str(b, name);
		gk_buf_str(b, "(");
	} else {
		gk_buf_str(b, "syscall(");
		gk_buf_dec(b, nr);
		if (!d)
			gk_buf_str(b, ", ");
	}
	n = d ? (int)strlen(d->args) : 6;
	for (int i = 0; i < n; i++) {
		if (i)
			gk_buf_str(b, ", ");
		put_arg(b, d ? d->args[i] : 'x', args, i, result, readable);
	}
	gk_buf_str(b, ") = ");
	if (!result_known) {
		gk_buf_str(b, "?");
	} else if (result < 0 && result >= -4095) {
		gk_buf_dec(b, result);
		if ((size_t)-result < sizeof(errnames) / sizeof(errnames[0]) &&
		    errnames[-result]) {
			gk_buf_str(b, " ");
			gk_buf_str(b, errnames[-result]);
		}
	} else if (d && d->ret == 'x') {
		gk_buf_hex(b, (unsigned long)result);
	} else if (d && d->ret == 'm') {
		put_octal(b, (unsigned long)result);
	} else {
		gk_buf_dec(b, result);
	}
}
