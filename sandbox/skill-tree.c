/* Skill trees: walking a skill directory with the store's rules, copying it, and its canonical
 * file list and digest (proto/SKILLS.md, "Digest").
 *
 * The walk never follows a link (every open is openat(..., O_NOFOLLOW) on a directory fd),
 * opens files O_NONBLOCK and checks the opened fd is a regular file (a fifo swapped in after
 * the fstatat cannot block it), and stops at the caps before reading more: entries, depth,
 * path length, bytes. What the digest covers is a function of names, kinds, the owner's
 * execute bit and contents only, so times, owners, umask and readdir order cannot change it. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "common/cleanup.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "sandbox/sandbox.h"
#include "sandbox/skill-internal.h"

#define LIST_HEADER "aisp-skill-v1\n"
#define CHUNK       (64u * 1024)

static bool path_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       (c && strchr("._@+=,~-", c));
}

bool skill_path_valid(const char *p)
{
	size_t n = strlen(p);
	if (n < 1 || n > SANDBOX_SKILL_PATH_MAX)
		return false;
	for (size_t i = 0; i < n;) {
		size_t len = strcspn(p + i, "/");
		if (len == 0 || len > SANDBOX_SKILL_NAME_PART_MAX || (len == 1 && p[i] == '.') ||
		    (len == 2 && !strncmp(p + i, "..", 2)))
			return false;
		for (size_t j = i; j < i + len; j++)
			if (!path_char(p[j]))
				return false;
		i += len;
		if (p[i] == '/' && !p[++i])
			return false;
	}
	return true;
}

static size_t depth_of(const char *p)
{
	size_t d = 1;
	for (; *p; p++)
		d += *p == '/';
	return d;
}

void skill_tree_deinit(skill_tree *t)
{
	for (size_t i = 0; i < t->n; i++)
		free(t->v[i].path);
	free(t->v);
	memset(t, 0, sizeof(*t));
}

typedef struct walk {
	const char *label;
	skill_tree *t;
	err **e;
	EVP_MD_CTX *md;
	uint8_t *chunk;
} walk;

char *skill_shown_path(const char *s)
{
	buf b = BUF_INIT;
	for (size_t i = 0; s[i] && i < SANDBOX_SKILL_PATH_MAX; i++)
		if (path_char(s[i]) || s[i] == '/')
			buf_append(&b, &s[i], 1);
		else
			buf_appendf(&b, "\\x%02x", (unsigned char)s[i]);
	return buf_steal(&b, NULL);
}

static int fail(walk *w, int code, const char *path, const char *what)
{
	_cleanup_free_ char *p = skill_shown_path(path);
	return err_set(w->e, code, "%s: %s: %s", w->label, p, what);
}

static skill_entry *add_entry(walk *w, const char *path, bool dir)
{
	w->t->v = xreallocarray(w->t->v, w->t->n + 1, sizeof(*w->t->v));
	skill_entry *en = &w->t->v[w->t->n++];
	*en = (skill_entry){.path = xstrdup(path), .dir = dir};
	return en;
}

/* Reads the open file fd (expected size bytes) into the hash and, when out >= 0, into out. */
static int copy_contents(walk *w, int fd, int out, const char *path, uint64_t size, skill_entry *en)
{
	EVP_DigestInit_ex(w->md, EVP_sha256(), NULL);
	uint64_t total = 0;
	for (;;) {
		ssize_t r = read(fd, w->chunk, CHUNK);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return fail(w, errno, path, "read");
		if (r == 0)
			break;
		total += (uint64_t)r;
		if (total > size)
			return fail(w, 0, path, "changed while being read");
		EVP_DigestUpdate(w->md, w->chunk, (size_t)r);
		if (out >= 0 && write_all(out, w->chunk, (size_t)r) < 0)
			return fail(w, errno, path, "write the copy");
	}
	if (total != size)
		return fail(w, 0, path, "changed while being read");
	EVP_DigestFinal_ex(w->md, en->sha256, NULL);
	en->size = size;
	return 0;
}

static int walk_file(walk *w, int srcfd, int dstfd, const char *name, const char *path)
{
	_cleanup_close_ int fd =
	    openat(srcfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0)
		return fail(w, errno, path, "open");
	if (!S_ISREG(st.st_mode))
		return fail(w, 0, path, "not a regular file (replaced while being read)");
	if ((uint64_t)st.st_size > SANDBOX_SKILL_BYTES_MAX - w->t->bytes)
		return err_set(w->e, 0, "%s: more than %u bytes of files (the cap of a skill)",
		               w->label, SANDBOX_SKILL_BYTES_MAX);
	bool exec = st.st_mode & S_IXUSR;
	_cleanup_close_ int out = -1;
	if (dstfd >= 0) {
		out =
		    openat(dstfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (out < 0)
			return fail(w, errno, path, "create the copy");
	}
	skill_entry *en = add_entry(w, path, false);
	en->exec = exec;
	if (copy_contents(w, fd, out, path, (uint64_t)st.st_size, en) < 0)
		return -1;
	if (out >= 0 && (fchmod(out, exec ? 0755 : 0644) < 0 || fsync(out) < 0))
		return fail(w, errno, path, "finish the copy");
	w->t->bytes += (uint64_t)st.st_size;
	return 0;
}

/* The names in dirfd (without . and ..), at most room of them. */
static int read_names(walk *w, int dirfd, const char *path, size_t room, char ***names, size_t *n)
{
	*names = NULL;
	*n = 0;
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC); /* its own offset */
	DIR *d = fd < 0 ? NULL : fdopendir(fd);
	if (!d) {
		if (fd >= 0)
			close(fd);
		return fail(w, errno, path, "open the directory");
	}
	struct dirent *de;
	int r = 0;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (*n == room) {
			r = err_set(w->e, 0,
			            "%s: more than %d files and directories (the cap of a skill)",
			            w->label, SANDBOX_SKILL_FILES_MAX);
			break;
		}
		*names = xreallocarray(*names, *n + 1, sizeof(**names));
		(*names)[(*n)++] = xstrdup(de->d_name);
	}
	closedir(d);
	return r;
}

static int walk_dir(walk *w, int srcfd, int dstfd, const char *path);

static int walk_subdir(walk *w, int srcfd, int dstfd, const char *name, const char *path)
{
	if (depth_of(path) > SANDBOX_SKILL_DEPTH_MAX)
		return fail(w, 0, path,
		            "nested more than 16 directories deep (the cap of a skill)");
	_cleanup_close_ int sub =
	    openat(srcfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (sub < 0)
		return fail(w, errno, path, "open the directory");
	_cleanup_close_ int dsub = -1;
	if (dstfd >= 0) {
		if (mkdirat(dstfd, name, 0700) < 0)
			return fail(w, errno, path, "create the copy");
		dsub = openat(dstfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (dsub < 0 || fchmod(dsub, 0755) < 0)
			return fail(w, errno, path, "create the copy");
	}
	add_entry(w, path, true);
	return walk_dir(w, sub, dsub, path);
}

static int walk_entry(walk *w, int srcfd, int dstfd, const char *name, const char *path)
{
	if (!skill_path_valid(path))
		return fail(w, 0, path,
		            "not a valid skill path (at most 150 bytes; components of at most 100 "
		            "bytes of [A-Za-z0-9._@+=,~-])");
	struct stat st;
	if (fstatat(srcfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return fail(w, errno, path, "stat");
	if (S_ISLNK(st.st_mode))
		return fail(w, 0, path,
		            "a symbolic link (a skill holds only regular files and directories)");
	if (S_ISDIR(st.st_mode))
		return walk_subdir(w, srcfd, dstfd, name, path);
	if (S_ISREG(st.st_mode))
		return walk_file(w, srcfd, dstfd, name, path);
	return fail(w, 0, path,
	            "a device, fifo or socket (a skill holds only regular files and directories)");
}

static int walk_dir(walk *w, int srcfd, int dstfd, const char *path)
{
	char **names = NULL;
	size_t n = 0;
	int r = read_names(w, srcfd, path, SANDBOX_SKILL_FILES_MAX - w->t->n, &names, &n);
	for (size_t i = 0; i < n; i++) {
		if (r == 0 && w->t->n >= SANDBOX_SKILL_FILES_MAX)
			r = err_set(w->e, 0,
			            "%s: more than %d files and directories (the cap of a skill)",
			            w->label, SANDBOX_SKILL_FILES_MAX);
		if (r == 0) {
			_cleanup_free_ char *sub =
			    *path ? xasprintf("%s/%s", path, names[i]) : xstrdup(names[i]);
			r = walk_entry(w, srcfd, dstfd, names[i], sub);
		}
		free(names[i]);
	}
	free(names);
	return r;
}

static int entry_cmp(const void *a, const void *b)
{
	return strcmp(((const skill_entry *)a)->path, ((const skill_entry *)b)->path);
}

int skill_tree_walk(int srcfd, int dstfd, const char *label, skill_tree *t, err **e)
{
	memset(t, 0, sizeof(*t));
	walk w = {.label = label, .t = t, .e = e, .md = EVP_MD_CTX_new(), .chunk = xmalloc(CHUNK)};
	if (!w.md)
		abort();
	int r = walk_dir(&w, srcfd, dstfd, "");
	EVP_MD_CTX_free(w.md);
	free(w.chunk);
	if (r < 0) {
		skill_tree_deinit(t);
		return -1;
	}
	qsort(t->v, t->n, sizeof(*t->v), entry_cmp);
	return 0;
}

void skill_tree_list(const skill_tree *t, buf *out)
{
	buf_append_str(out, LIST_HEADER);
	for (size_t i = 0; i < t->n; i++) {
		const skill_entry *en = &t->v[i];
		if (en->dir) {
			buf_appendf(out, "d 755 %s\n", en->path);
			continue;
		}
		char hex[65];
		hex_encode(en->sha256, sizeof(en->sha256), hex);
		buf_appendf(out, "f %s %s %llu %s\n", en->exec ? "755" : "644", hex,
		            (unsigned long long)en->size, en->path);
	}
}

void skill_tree_digest(const skill_tree *t, char out[72])
{
	buf b = BUF_INIT;
	skill_tree_list(t, &b);
	proto_blob_id_of(b.data, b.len, out);
	buf_deinit(&b);
}

const skill_entry *skill_tree_find(const skill_tree *t, const char *path)
{
	for (size_t i = 0; i < t->n; i++)
		if (!strcmp(t->v[i].path, path))
			return &t->v[i];
	return NULL;
}
