/* The agent's file handling inside /workspace: writing the task's input files and collecting
 * the output files from /workspace/out. Every path is walked one component at a time with
 * openat(O_NOFOLLOW) on directory fds: the program could have planted links anywhere. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "sandbox/agent/agent.h"

#define WALK_DEPTH_MAX   32
#define WALK_ENTRIES_MAX 100000

/* Length of the UTF-8 sequence at p (at most n bytes), or 0 when it is not valid. */
static size_t utf8_len(const uint8_t *p, size_t n)
{
	size_t len;
	uint32_t c;
	if (p[0] < 0x80)
		return 1;
	if ((p[0] & 0xe0) == 0xc0)
		len = 2, c = p[0] & 0x1f;
	else if ((p[0] & 0xf0) == 0xe0)
		len = 3, c = p[0] & 0x0f;
	else if ((p[0] & 0xf8) == 0xf0)
		len = 4, c = p[0] & 0x07;
	else
		return 0;
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		c = c << 6 | (p[i] & 0x3f);
	}
	static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
	if (c < min[len] || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	return len;
}

bool agent_path_valid(const char *s, size_t n)
{
	const uint8_t *p = (const uint8_t *)s;
	if (n == 0 || n > AGENT_PATH_MAX || p[0] == '/')
		return false;
	size_t start = 0;
	for (size_t i = 0; i <= n; i++) {
		if (i == n || p[i] == '/') {
			size_t clen = i - start;
			if (clen == 0 || (clen == 1 && p[start] == '.') ||
			    (clen == 2 && p[start] == '.' && p[start + 1] == '.'))
				return false;
			start = i + 1;
			continue;
		}
		if (p[i] < 0x20 || p[i] == 0x7f)
			return false;
		size_t l = utf8_len(p + i, n - i);
		if (!l)
			return false;
		i += l - 1;
	}
	return true;
}

/* Opens the directory path[0..n) below dfd, one component at a time, never following links;
 * with create, missing components are made. Returns a new fd or -1 with errno. */
static int open_dir_below(int dfd, const char *path, size_t n, bool create)
{
	int cur = dfd;
	size_t start = 0;
	while (start < n) {
		const char *slash = memchr(path + start, '/', n - start);
		size_t end = slash ? (size_t)(slash - path) : n;
		char comp[AGENT_PATH_MAX + 1];
		memcpy(comp, path + start, end - start);
		comp[end - start] = '\0';
		if (create && mkdirat(cur, comp, 0755) < 0 && errno != EEXIST)
			goto fail;
		int next = openat(cur, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (next < 0)
			goto fail;
		if (cur != dfd)
			close(cur);
		cur = next;
		start = end + 1;
	}
	return cur == dfd ? fcntl(dfd, F_DUPFD_CLOEXEC, 0) : cur;
fail:
	if (cur != dfd) {
		int saved = errno;
		close(cur);
		errno = saved;
	}
	return -1;
}

static int write_input(int wsfd, const agent_bytes *f, char *msg, size_t msz)
{
	const char *path = (const char *)f->p;
	const uint8_t *nul = memchr(f->p, '\0', f->n);
	if (!nul) {
		snprintf(msg, msz, "input file: no NUL after the path");
		return -1;
	}
	size_t plen = (size_t)(nul - f->p);
	if (!agent_path_valid(path, plen)) {
		snprintf(msg, msz, "input file: invalid path");
		return -1;
	}
	const char *slash = memrchr(path, '/', plen);
	size_t dlen = slash ? (size_t)(slash - path) : 0;
	const char *name = slash ? slash + 1 : path;
	_cleanup_close_ int dfd = open_dir_below(wsfd, path, dlen, true);
	if (dfd < 0) {
		snprintf(msg, msz, "input file %s: directory: %s", path, strerror(errno));
		return -1;
	}
	_cleanup_close_ int fd =
	    openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0 || write_all(fd, nul + 1, f->n - plen - 1) < 0) {
		snprintf(msg, msz, "input file %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

int agent_write_inputs(int wsfd, const agent_task *t, char *msg, size_t msz)
{
	for (size_t i = 0; i < t->nfiles; i++)
		if (write_input(wsfd, &t->files[i], msg, msz) < 0)
			return -1;
	return 0;
}

typedef struct out_list {
	char **paths;
	size_t n, cap, seen;
} out_list;

static void walk(int dfd, const char *prefix, int depth, out_list *l)
{
	DIR *d = fdopendir(dfd); /* takes dfd */
	if (!d) {
		close(dfd);
		return;
	}
	struct dirent *de;
	while ((de = readdir(d)) && l->seen++ < WALK_ENTRIES_MAX) {
		const char *name = de->d_name;
		if (!strcmp(name, ".") || !strcmp(name, ".."))
			continue;
		_cleanup_free_ char *path =
		    prefix[0] ? xasprintf("%s/%s", prefix, name) : xstrdup(name);
		if (!agent_path_valid(path, strlen(path)))
			continue;
		struct stat st;
		if (fstatat(dirfd(d), name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (S_ISDIR(st.st_mode) && depth < WALK_DEPTH_MAX) {
			int sub =
			    openat(dirfd(d), name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub >= 0)
				walk(sub, path, depth + 1, l);
		} else if (S_ISREG(st.st_mode)) {
			if (l->n == l->cap) {
				l->cap = l->cap ? l->cap * 2 : 16;
				l->paths = xreallocarray(l->paths, l->cap, sizeof(char *));
			}
			l->paths[l->n++] = steal_pointer(&path);
		}
	}
	closedir(d);
}

static int cmp_path(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Reads the regular file path below outfd (at most max bytes) into a FILE frame payload
 * "path NUL contents". Returns the payload length, or 0 when the file is to be skipped; sets
 * *over when it holds more than max bytes. */
static size_t read_output(int outfd, const char *path, size_t max, uint8_t **out, bool *over)
{
	size_t plen = strlen(path);
	const char *slash = strrchr(path, '/');
	_cleanup_close_ int dfd =
	    open_dir_below(outfd, path, slash ? (size_t)(slash - path) : 0, false);
	if (dfd < 0)
		return 0;
	_cleanup_close_ int fd =
	    openat(dfd, slash ? slash + 1 : path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		return 0;
	if ((uint64_t)st.st_size > max) {
		*over = true;
		return 0;
	}
	size_t size = (size_t)st.st_size;
	uint8_t *p = xmalloc(plen + 1 + size);
	memcpy(p, path, plen + 1);
	size_t got = 0;
	while (got < size) {
		ssize_t r = read(fd, p + plen + 1 + got, size - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	*out = p;
	return plen + 1 + got;
}

void agent_collect_outputs(int wsfd, uint64_t max_files, uint64_t max_bytes, sandbox_frame_buf *b,
                           bool *trunc)
{
	out_list l = {0};
	_cleanup_close_ int outfd =
	    openat(wsfd, "out", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (outfd < 0)
		return;
	int walkfd = fcntl(outfd, F_DUPFD_CLOEXEC, 0);
	if (walkfd >= 0)
		walk(walkfd, "", 0, &l);
	if (l.seen > WALK_ENTRIES_MAX)
		*trunc = true;
	qsort(l.paths, l.n, sizeof(char *), cmp_path);
	uint64_t total = 0, count = 0;
	for (size_t i = 0; i < l.n; i++) {
		if (count >= max_files) {
			*trunc = true;
			break;
		}
		bool over = false;
		_cleanup_free_ uint8_t *payload = NULL;
		size_t n = read_output(outfd, l.paths[i], max_bytes - total, &payload, &over);
		if (over) {
			*trunc = true;
			break;
		}
		if (!n)
			continue;
		sandbox_frame_put(b, FRAME_FILE, payload, n);
		total += n - strlen(l.paths[i]) - 1;
		count++;
	}
	for (size_t i = 0; i < l.n; i++)
		free(l.paths[i]);
	free(l.paths);
}
