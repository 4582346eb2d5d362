/*
 * local_stream.h - the local stream's pure part (docs/protocol.md 1.1), as
 * gkfs_client/local_stream.py: the listener's abstract name and the
 * framing of one message.  No system calls: also built for the host test
 * program that checks tests/vectors/local_stream.tsv.  The connection
 * (sockets, credentials, waits) is local_conn.c.
 *
 * A message is <u32 n> <u32 len_0> ... <u32 len_{n-1}> (little endian),
 * then the n frames' bytes: the frames a ZeroMQ message would carry
 * (header first, raw data after).
 */
#ifndef GKFS_CLIENT_LOCAL_STREAM_H
#define GKFS_CLIENT_LOCAL_STREAM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* A header and one frame per chunk (protocol.md 2.3). */
#define GK_LS_MAX_FRAMES 4097u
#define GK_LS_MAX_PREFIX (4u + 4u * GK_LS_MAX_FRAMES)
/* Twice the daemon's default max_frame_size (64 MiB + 64 KiB), per frame
 * and per message: what the spec lets a reader accept before it closes
 * the stream (the daemon answers EMSGSIZE to what lies between). */
#define GK_LS_MAX_FRAME (2ull * (64ull * 1024 * 1024 + 64 * 1024))
#define GK_LS_MAX_MESSAGE GK_LS_MAX_FRAME
/* "\0gkfs-local/" + uuid + "/" + 16 hex digits fits sun_path (108). */
#define GK_LS_NAME_MAX 108

/* The abstract name (leading NUL, not NUL-terminated) of member
 * `member_id`'s listener at `address`, in cluster `uuid`; its length, or
 * -1 when it does not fit `size`. */
int gk_ls_name(char *out, size_t size, const char *uuid, uint64_t member_id,
               const char *address);

/* The prefix of a message whose frames are a header of `header_len` bytes
 * and `ndata` data frames: 4 + 4 x (1 + ndata) bytes written to `out`
 * (returned).  1 + ndata must be <= GK_LS_MAX_FRAMES. */
size_t gk_ls_prefix(unsigned char *out, size_t header_len, const struct iovec *data,
                    int ndata);

/* Reads a received prefix of `have` bytes: 1 and *nframes, *total (bytes
 * of all frames) when it is complete and within the limits, 0 when more
 * bytes are needed (*need: how many the prefix has in all, once known), -1
 * when it breaks a limit (the stream is then closed, never resynchronised). */
int gk_ls_parse_prefix(const unsigned char *p, size_t have, uint32_t *nframes,
                       uint64_t *total, size_t *need);
/* Length of frame i of a prefix that gk_ls_parse_prefix accepted. */
uint32_t gk_ls_frame_len(const unsigned char *p, uint32_t i);

#endif
