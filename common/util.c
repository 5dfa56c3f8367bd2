/* Clocks, fd I/O, strict parsing and link-safe file helpers (see util.h). */
#include "common/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/xalloc.h"

int64_t now_mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t now_mono_ms(void)
{
	return now_mono_us() / 1000;
}

int64_t now_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int write_all(int fd, const void *p, size_t n)
{
	const uint8_t *c = p;
	while (n > 0) {
		ssize_t w = write(fd, c, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

ssize_t read_all(int fd, buf *b, size_t max)
{
	size_t total = 0;
	while (total < max) {
		size_t want = max - total < 65536 ? max - total : 65536;
		buf_reserve(b, want);
		ssize_t r = read(fd, b->data + b->len, want);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (r == 0)
			break;
		b->len += (size_t)r;
		b->data[b->len] = 0;
		total += (size_t)r;
	}
	return (ssize_t)total;
}

int fd_set_nonblock(int fd, bool on)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0)
		return -1;
	fl = on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK;
	return fcntl(fd, F_SETFL, fl);
}

int fd_set_cloexec(int fd, bool on)
{
	int fl = fcntl(fd, F_GETFD);
	if (fl < 0)
		return -1;
	fl = on ? fl | FD_CLOEXEC : fl & ~FD_CLOEXEC;
	return fcntl(fd, F_SETFD, fl);
}

int parse_i64(const char *s, int64_t min, int64_t max, int64_t *out)
{
	if (!s || !*s) {
		errno = EINVAL;
		return -1;
	}
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno == ERANGE || v < min || v > max) {
		errno = ERANGE;
		return -1;
	}
	if (*end != '\0' || end == s) {
		errno = EINVAL;
		return -1;
	}
	*out = v;
	return 0;
}

static int write_at(int dirfd, const char *name, const void *data, size_t len, mode_t mode,
                    bool durable, err **e)
{
	/* The temporary name stays short whatever name is (a NAME_MAX-long name must still be
	 * writable); the pid and a counter keep concurrent writers apart. */
	static unsigned seq;
	_cleanup_free_ char *tmp = xasprintf(".aisp-tmp.%d.%u.%.32s", (int)getpid(), seq++, name);
	unlinkat(dirfd, tmp, 0);
	_cleanup_close_ int fd =
	    openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0)
		return err_set(e, errno, "create %s", tmp);
	/* exactly the mode asked for, whatever the umask (a UMask=0077 unit must not make the
	 * agent unreadable to a sandbox's user namespace) */
	if (fchmod(fd, mode) < 0 || write_all(fd, data, len) < 0 || (durable && fsync(fd) < 0)) {
		int saved = errno;
		unlinkat(dirfd, tmp, 0);
		return err_set(e, saved, "write %s", tmp);
	}
	if (renameat(dirfd, tmp, dirfd, name) < 0) {
		int saved = errno;
		unlinkat(dirfd, tmp, 0);
		return err_set(e, saved, "rename %s to %s", tmp, name);
	}
	/* The rename is the directory's change: until the directory is synced a crash can bring
	 * the old file back (ext4 commits it with the next journal transaction), which for the
	 * chain state would hand out a signed sequence number again. */
	if (durable && fsync(dirfd) < 0)
		return err_set(e, errno, "sync the directory of %s", name);
	return 0;
}

int write_file_at(int dirfd, const char *name, const void *data, size_t len, mode_t mode, err **e)
{
	return write_at(dirfd, name, data, len, mode, true, e);
}

int write_file_at_volatile(int dirfd, const char *name, const void *data, size_t len, mode_t mode,
                           err **e)
{
	return write_at(dirfd, name, data, len, mode, false, e);
}

int write_file_path(const char *path, const void *data, size_t len, mode_t mode, err **e)
{
	_cleanup_free_ char *d = xstrdup(path), *b = xstrdup(path);
	const char *dir = dirname(d), *name = basename(b);
	_cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return err_set(e, errno, "open directory %s", dir);
	return write_file_at(dfd, name, data, len, mode, e) < 0 ? err_prefix(e, "%s", dir) : 0;
}

int read_file_at(int dirfd, const char *name, size_t max, buf *out, err **e)
{
	_cleanup_close_ int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return err_set(e, errno, "open %s", name);
	struct stat st;
	if (fstat(fd, &st) < 0)
		return err_set(e, errno, "stat %s", name);
	if (!S_ISREG(st.st_mode))
		return err_set(e, 0, "%s: not a regular file", name);
	if ((size_t)st.st_size > max)
		return err_set(e, 0, "%s: larger than %zu bytes", name, max);
	if (read_all(fd, out, max) < 0)
		return err_set(e, errno, "read %s", name);
	return 0;
}

int rm_rf_at(int dfd, const char *name, err **e)
{
	struct stat st;
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno == ENOENT)
			return 0;
		return err_set(e, errno, "stat %s", name);
	}
	if (!S_ISDIR(st.st_mode)) {
		if (unlinkat(dfd, name, 0) < 0 && errno != ENOENT)
			return err_set(e, errno, "unlink %s", name);
		return 0;
	}
	int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return err_set(e, errno, "open %s", name);
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return err_set(e, errno, "opendir %s", name);
	}
	struct dirent *de;
	int r = 0;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (rm_rf_at(dirfd(d), de->d_name, e) < 0) {
			r = err_prefix(e, "%s", name);
			break;
		}
	}
	closedir(d);
	if (r < 0)
		return r;
	if (unlinkat(dfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		return err_set(e, errno, "rmdir %s", name);
	return 0;
}

int mkdir_p(const char *path, mode_t mode, err **e)
{
	_cleanup_free_ char *p = xstrdup(path);
	for (char *s = p + 1;; s++) {
		if (*s == '/' || *s == '\0') {
			char c = *s;
			*s = '\0';
			if (mkdir(p, mode) < 0 && errno != EEXIST)
				return err_set(e, errno, "mkdir %s", p);
			*s = c;
			if (c == '\0')
				break;
		}
	}
	return 0;
}

void hex_encode(const uint8_t *p, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * n] = '\0';
}

int addr_split(const char *addr, char **host, int *port, char **unix_path, err **e)
{
	*host = NULL;
	*unix_path = NULL;
	*port = 0;
	if (!strncmp(addr, "unix:", 5)) {
		if (addr[5] != '/')
			return err_set(e, 0, "\"%s\": expected unix:/absolute/path", addr);
		*unix_path = xstrdup(addr + 5);
		return 0;
	}
	const char *colon = strrchr(addr, ':');
	if (!colon || colon == addr)
		return err_set(e, 0, "\"%s\": expected host:port or unix:/path", addr);
	int64_t p;
	if (parse_i64(colon + 1, 1, 65535, &p) < 0)
		return err_set(e, 0, "\"%s\": bad port", addr);
	const char *h = addr;
	size_t hl = (size_t)(colon - addr);
	if (h[0] == '[' && hl >= 2 && h[hl - 1] == ']') {
		h++;
		hl -= 2;
	}
	*host = xstrndup(h, hl);
	*port = (int)p;
	return 0;
}

void addr_list_free(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

/* Checks one address of a list: host:port, or (allow_unix) also unix:/path. */
static int list_addr(const char *a, bool allow_unix, err **e)
{
	char *h = NULL, *u = NULL;
	int port;
	int r = addr_split(a, &h, &port, &u, e);
	free(h);
	free(u);
	if (r == 0 && u && !allow_unix)
		return err_set(e, 0, "\"%s\": expected host:port", a);
	return r;
}

char **addr_list_parse(const char *s, bool pairs, size_t max, err **e)
{
	char *copy = xstrdup(s), *save = NULL;
	size_t n = 0, items = 0;
	char **v = xcalloc(1, sizeof(*v));
	for (char *tok = strtok_r(copy, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
		char *arrow = pairs ? strstr(tok, "->") : NULL;
		if (++items > max) {
			err_set(e, 0, "more than %zu addresses", max);
			goto fail;
		}
		if (pairs && (!arrow || arrow == tok || !arrow[2])) {
			err_set(e, 0,
			        "\"%s\": expected announced->local (like "
			        "10.0.0.5:6379->127.0.0.1:16379)",
			        tok);
			goto fail;
		}
		if (arrow)
			*arrow = '\0';
		if (list_addr(tok, false, e) < 0 || (arrow && list_addr(arrow + 2, true, e) < 0))
			goto fail;
		v = xreallocarray(v, n + 3, sizeof(*v));
		v[n++] = xstrdup(tok);
		if (arrow)
			v[n++] = xstrdup(arrow + 2);
		v[n] = NULL;
	}
	free(copy);
	if (n == 0) {
		addr_list_free(v);
		err_set(e, 0, "\"%s\": no address", s);
		return NULL;
	}
	return v;
fail:
	free(copy);
	addr_list_free(v);
	return NULL;
}
