/* The agent's file handling inside /workspace: writing the task's input files and collecting
 * the output files from /workspace/out. Every path is walked one component at a time with
 * openat(O_NOFOLLOW) on directory fds, and every fd is checked to be what its directory entry
 * named: the program could have planted links anywhere. */
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
#include "proto/caps.h"
#include "sandbox/agent/agent.h"

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

/* Opens a directory below dfd without following a link. O_DIRECTORY is not asked for: gVisor
 * (2022) follows a link to a directory when it is combined with O_NOFOLLOW; O_NONBLOCK keeps a
 * FIFO from blocking the open. The fd is checked to be a directory, and (when ino is not 0) the
 * very inode the directory entry named. Returns the fd, or -1 with errno. */
static int open_dir_at(int dfd, const char *name, uint64_t ino)
{
	int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return -1;
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISDIR(st.st_mode) || (ino && st.st_ino != ino)) {
		close(fd);
		errno = ENOTDIR;
		return -1;
	}
	return fd;
}

/* Opens the directory path[0..n) below dfd, one component at a time, never following links;
 * with create, missing components are made. Returns a new fd or -1 with errno. */
int agent_open_dir_below(int dfd, const char *path, size_t n, bool create)
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
		int next = open_dir_at(cur, comp, 0);
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
	_cleanup_close_ int dfd = agent_open_dir_below(wsfd, path, dlen, true);
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

static int make_out(void *arg)
{
	return mkdirat(*(int *)arg, "out", 0755) < 0 && errno != EEXIST ? -1 : 0;
}

int agent_make_out(int wsfd, char *msg, size_t msz)
{
	if (agent_as_program(false, make_out, &wsfd, msg, msz) == 0)
		return 0;
	if (!*msg)
		snprintf(msg, msz, "mkdir /workspace/out: %s", strerror(errno));
	return -1;
}

int agent_write_inputs(int wsfd, const agent_task *t, char *msg, size_t msz)
{
	for (size_t i = 0; i < t->nfiles; i++)
		if (write_input(wsfd, &t->files[i], msg, msz) < 0)
			return -1;
	return 0;
}

/* ---- output files ----
 *
 * The regular files below out/, first by path: in the byte order of their whole paths. That is
 * a depth-first walk that orders each directory's entries by name, with '/' after the name of a
 * directory (so "a-b" comes before "a/c", as it does in strcmp of the paths). A directory is
 * read in passes of bounded memory: a pass keeps the entries that come next, as many as files
 * may still be returned plus one (to tell that more exist); while entries remain after those,
 * another pass starts after the last one taken. The walk reads at most OUT_ENTRIES_MAX
 * directory entries in all, and holds one fd per level (a valid path is at most
 * PROTO_FILE_PATH_MAX bytes, so at most 128 levels).
 *
 * Returned: the first max_files regular files by path whose path the protocol accepts (valid
 * UTF-8, no control bytes, at most PROTO_FILE_PATH_MAX bytes), up to the first one that does not
 * fit in what remains of max_bytes. *trunc is set when a regular file was left out: past the
 * count or the bytes, with a path the protocol refuses, inside a directory that is not empty and
 * where no path fits, or after the entry budget ran out. Links, FIFOs, devices and sockets are
 * never opened nor returned. */

#define OUT_ENTRIES_MAX 1000000u

typedef struct out_entry {
	char *key;    /* the name, with '/' after a directory's */
	size_t len;   /* the name's length */
	uint64_t ino; /* the entry's inode: what is opened must be it */
	bool dir;
} out_entry;

typedef struct out_walk {
	sandbox_frame_buf *b;
	uint64_t max_files, max_bytes, files, bytes;
	uint64_t budget; /* directory entries that may still be read */
	bool trunc, stop;
	char path[PROTO_FILE_PATH_MAX + 2];
	char dents[32768] __attribute__((aligned(8)));
} out_walk;

/* The next entries of a directory, as a max-heap by key of at most cap entries. */
typedef struct out_heap {
	out_entry *v;
	size_t n, cap;
} out_heap;

static void heap_swap(out_heap *h, size_t i, size_t j)
{
	out_entry t = h->v[i];
	h->v[i] = h->v[j];
	h->v[j] = t;
}

static void heap_down(out_heap *h, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < h->n && strcmp(h->v[l].key, h->v[m].key) > 0)
			m = l;
		if (r < h->n && strcmp(h->v[r].key, h->v[m].key) > 0)
			m = r;
		if (m == i)
			return;
		heap_swap(h, i, m);
		i = m;
	}
}

/* Keeps key if it is among the cap smallest seen; returns false when an entry was left out. */
static bool heap_offer(out_heap *h, const char *key, size_t len, uint64_t ino, bool dir)
{
	if (h->n == h->cap && strcmp(key, h->v[0].key) >= 0)
		return false;
	out_entry e = {xstrdup(key), len, ino, dir};
	if (h->n < h->cap) {
		size_t i = h->n++;
		h->v[i] = e;
		for (; i && strcmp(h->v[(i - 1) / 2].key, h->v[i].key) < 0; i = (i - 1) / 2)
			heap_swap(h, i, (i - 1) / 2);
		return true;
	}
	free(h->v[0].key);
	h->v[0] = e;
	heap_down(h, 0);
	return false;
}

static int cmp_entry(const void *a, const void *b)
{
	return strcmp(((const out_entry *)a)->key, ((const out_entry *)b)->key);
}

/* The type of a directory entry: DT_REG, DT_DIR or something never taken. */
static unsigned char entry_type(int fd, const struct dirent64 *d)
{
	if (d->d_type != DT_UNKNOWN)
		return d->d_type;
	struct stat st;
	if (fstatat(fd, d->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return DT_UNKNOWN;
	return S_ISREG(st.st_mode) ? DT_REG : S_ISDIR(st.st_mode) ? DT_DIR : DT_UNKNOWN;
}

/* One pass over the directory fd: h gets the entries that come next after lower (NULL: from
 * the start). Returns true when entries after those remain. */
static bool walk_pass(out_walk *w, int fd, const char *lower, out_heap *h)
{
	bool more = false;
	if (lower && lseek(fd, 0, SEEK_SET) < 0) /* a later pass reads from the start again */
		return false;
	ssize_t n;
	while ((n = getdents64(fd, w->dents, sizeof(w->dents))) > 0) {
		for (ssize_t off = 0; off < n;) {
			const struct dirent64 *d = (const void *)(w->dents + off);
			off += d->d_reclen;
			const char *name = d->d_name;
			if (!strcmp(name, ".") || !strcmp(name, ".."))
				continue;
			if (!w->budget) {
				w->trunc = w->stop = true;
				return false;
			}
			w->budget--;
			unsigned char t = entry_type(fd, d);
			if (t != DT_REG && t != DT_DIR)
				continue;
			char key[sizeof(d->d_name) + 2];
			size_t len = strlen(name);
			snprintf(key, sizeof(key), "%s%s", name, t == DT_DIR ? "/" : "");
			if (lower && strcmp(key, lower) <= 0)
				continue;
			if (!heap_offer(h, key, len, d->d_ino, t == DT_DIR))
				more = true;
		}
	}
	return more;
}

/* True when the directory fd holds no entry but "." and "..". */
static bool dir_empty(out_walk *w, int fd)
{
	ssize_t n = getdents64(fd, w->dents, sizeof(w->dents));
	for (ssize_t off = 0; off < n;) {
		const struct dirent64 *d = (const void *)(w->dents + off);
		off += d->d_reclen;
		if (strcmp(d->d_name, ".") && strcmp(d->d_name, ".."))
			return false;
	}
	return true;
}

/* A regular file whose path is in w->path: a FILE frame, or the end of the walk when it does not
 * fit in the bytes left. */
static void take_file(out_walk *w, int dfd, const out_entry *e, size_t plen)
{
	_cleanup_close_ int fd =
	    openat(dfd, e->key, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_ino != e->ino)
		return;
	if ((uint64_t)st.st_size > w->max_bytes - w->bytes) {
		w->trunc = w->stop = true;
		return;
	}
	size_t size = (size_t)st.st_size;
	_cleanup_free_ uint8_t *p = xmalloc(plen + 1 + size);
	memcpy(p, w->path, plen + 1);
	size_t got = 0;
	while (got < size) {
		ssize_t r = read(fd, p + plen + 1 + got, size - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	sandbox_frame_put(w->b, FRAME_FILE, p, plen + 1 + got);
	w->files++;
	w->bytes += got;
}

static void walk_dir(out_walk *w, int fd, size_t plen);

/* One entry of the directory dfd, whose path is w->path[0..plen). */
static void walk_entry(out_walk *w, int dfd, size_t plen, const out_entry *e)
{
	size_t len = plen + (plen ? 1 : 0) + e->len;
	bool fits = len <= PROTO_FILE_PATH_MAX;
	if (fits) {
		snprintf(w->path + plen, sizeof(w->path) - plen, "%s%.*s", plen ? "/" : "",
		         (int)e->len, e->key);
		fits = agent_path_valid(w->path, len);
	}
	if (!e->dir) {
		if (!fits)
			w->trunc = true;
		else if (w->files >= w->max_files)
			w->trunc = w->stop = true;
		else
			take_file(w, dfd, e, len);
	} else {
		char name[sizeof(((struct dirent64 *)0)->d_name) + 1];
		snprintf(name, sizeof(name), "%.*s", (int)e->len, e->key);
		_cleanup_close_ int sub = open_dir_at(dfd, name, e->ino);
		if (sub < 0)
			;
		else if (!fits || len + 2 > PROTO_FILE_PATH_MAX)
			w->trunc |= !dir_empty(w, sub); /* no file in it can have a valid path */
		else
			walk_dir(w, sub, len);
	}
	w->path[plen] = '\0';
}

static void walk_dir(out_walk *w, int fd, size_t plen)
{
	_cleanup_free_ char *lower = NULL;
	for (bool more = true; more && !w->stop;) {
		out_heap h = {.cap = (size_t)(w->max_files - w->files) + 1};
		h.v = xcalloc(h.cap, sizeof(*h.v));
		more = walk_pass(w, fd, lower, &h);
		qsort(h.v, h.n, sizeof(*h.v), cmp_entry);
		for (size_t i = 0; i < h.n && !w->stop; i++)
			walk_entry(w, fd, plen, &h.v[i]);
		free(lower);
		lower = h.n ? xstrdup(h.v[h.n - 1].key) : NULL;
		more &= h.n > 0;
		for (size_t i = 0; i < h.n; i++)
			free(h.v[i].key);
		free(h.v);
	}
}

bool agent_out_empty(int wsfd)
{
	_cleanup_close_ int fd = open_dir_at(wsfd, "out", 0);
	if (fd < 0)
		return errno !=
		       EACCES; /* gone or not a directory: nothing; unreadable: look closer */
	char b[1024] __attribute__((aligned(8)));
	ssize_t n;
	while ((n = getdents64(fd, b, sizeof(b))) > 0)
		for (ssize_t off = 0; off < n;) {
			const struct dirent64 *d = (const void *)(b + off);
			off += d->d_reclen;
			if (strcmp(d->d_name, ".") && strcmp(d->d_name, ".."))
				return false;
		}
	return n == 0;
}

void agent_collect_outputs(int wsfd, uint64_t max_files, uint64_t max_bytes, sandbox_frame_buf *b,
                           bool *trunc)
{
	_cleanup_close_ int fd = open_dir_at(wsfd, "out", 0);
	if (fd < 0)
		return; /* gone, or replaced by a link or a file: nothing to return */
	out_walk *w = xzalloc(sizeof(*w));
	*w = (out_walk){
	    .b = b, .max_files = max_files, .max_bytes = max_bytes, .budget = OUT_ENTRIES_MAX};
	walk_dir(w, fd, 0);
	*trunc |= w->trunc;
	free(w);
}
