/* Small helpers shared by every module: clocks, fd I/O, strict number parsing, files written
 * atomically through directory fds, hex. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/buf.h"
#include "common/err.h"

/* Monotonic clock in milliseconds / microseconds; wall clock in milliseconds since the epoch. */
int64_t now_mono_ms(void);
int64_t now_mono_us(void);
int64_t now_wall_ms(void);

/* Writes all of p, retrying on EINTR/short writes (blocking fds). Returns 0 or -1 with errno. */
int write_all(int fd, const void *p, size_t n);
/* Reads until EOF or max bytes into b (blocking fds). Returns bytes read, or -1 with errno. */
ssize_t read_all(int fd, buf *b, size_t max);
int fd_set_nonblock(int fd, bool on);
int fd_set_cloexec(int fd, bool on);

/* Parses a whole decimal integer within [min, max]; returns 0 or -1 (ERANGE/EINVAL in errno). */
int parse_i64(const char *s, int64_t min, int64_t max, int64_t *out);

/* Writes data to dirfd/name atomically: a temporary file created O_EXCL|O_NOFOLLOW beside it,
 * fsync, renameat, fsync of the directory (the rename is durable too). Never follows a link.
 * The file gets exactly mode, whatever the umask. */
int write_file_at(int dirfd, const char *name, const void *data, size_t len, mode_t mode, err **e);
/* write_file_at() without the fsync: for files that matter only while the node runs (a
 * sandbox's bundle, gone with the sandbox and reaped at startup), whose fsync would block the
 * loop for a journal commit. */
int write_file_at_volatile(int dirfd, const char *name, const void *data, size_t len, mode_t mode,
                           err **e);
/* write_file_at() of path's last component in its directory (relative paths from the current
 * directory). Returns 0, or -1 with *e naming the directory. */
int write_file_path(const char *path, const void *data, size_t len, mode_t mode, err **e);
/* Reads a regular file (not following a final symlink) of at most max bytes. */
int read_file_at(int dirfd, const char *name, size_t max, buf *out, err **e);
/* Removes dirfd/name and everything below it without following links. Missing is fine. */
int rm_rf_at(int dirfd, const char *name, err **e);
/* mkdir -p of an absolute path; existing directories are fine. */
int mkdir_p(const char *path, mode_t mode, err **e);

/* Splits a network address: "host:port", "[v6 address]:port", or "unix:/absolute/path" (then
 * *unix_path is set and *host is NULL). Returns 0 (strings owned by the caller) or -1 with a
 * message naming the address in *e. */
int addr_split(const char *addr, char **host, int *port, char **unix_path, err **e);

/* A list of host:port addresses separated by commas or blanks (Sentinel lists) into a
 * NULL-terminated array of at most max items. With pairs, every item is
 * "announced->local" (a tunnel: announced is host:port, local any address_split address) and
 * the array holds announced, local, announced, local, ... Returns the array (free it with
 * addr_list_free) or NULL with a message naming the item in *e. */
char **addr_list_parse(const char *s, bool pairs, size_t max, err **e);
/* Frees what addr_list_parse returned. NULL is fine. */
void addr_list_free(char **v);

/* Lower-case hex of n bytes into out (2n+1 bytes). */
void hex_encode(const uint8_t *p, size_t n, char *out);
