/* Moving skills between nodes (proto/SKILLS.md, "Export and import"): a bundle is the skill's
 * digest and its files, as a reproducible ustar archive or as a directory with the same
 * layout (what `tar -x` makes of the archive):
 *   digest          "sha256:<hex>\n"
 *   skill/...       the skill's tree
 * Import unpacks into a temporary tree of the store and publishes it only when the digest of
 * what was written equals the bundle's digest file and the digest the caller expects, so a
 * bundle changed in transit is refused whole. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "sandbox/sandbox.h"
#include "sandbox/skill-internal.h"

/* An archive holds at most the caps: contents, plus a header and padding per member, plus
 * the end blocks and GNU tar's 10 KiB record padding. */
#define BUNDLE_MAX                                                                                 \
	((size_t)SANDBOX_SKILL_BYTES_MAX + (SANDBOX_SKILL_FILES_MAX + 2) * 1024u + 20 * 512u)
#define DIGEST_FILE_MAX 128

int skill_read_entry(int treefd, const skill_entry *en, buf *out, err **e)
{
	_cleanup_close_ int fd = skill_open_below(treefd, en->path, 0, e);
	if (fd < 0)
		return -1;
	if (read_all(fd, out, (size_t)en->size + 1) < 0)
		return err_set(e, errno, "read %s", en->path);
	char want[SANDBOX_SKILL_DIGEST_LEN + 1], got[SANDBOX_SKILL_DIGEST_LEN + 1];
	proto_blob_id_of(out->data, out->len, got);
	memcpy(want, "sha256:", 7);
	hex_encode(en->sha256, sizeof(en->sha256), want + 7);
	if (out->len != en->size || strcmp(want, got) != 0)
		return err_set(e, 0, "%s: changed while being exported", en->path);
	return 0;
}

int skill_tar_tree(int treefd, const skill_tree *t, const char *prefix, buf *tar, err **e)
{
	for (size_t i = 0; i < t->n; i++) {
		const skill_entry *en = &t->v[i];
		_cleanup_free_ char *path = xasprintf("%s%s", prefix, en->path);
		buf b = BUF_INIT;
		int r = en->dir ? 0 : skill_read_entry(treefd, en, &b, e);
		if (r == 0)
			r = skill_tar_add(tar, path, en->dir, en->exec, b.data, b.len, e);
		buf_deinit(&b);
		if (r < 0)
			return -1;
	}
	skill_tar_finish(tar);
	return 0;
}

static int build_archive(int treefd, const skill_tree *t, const char *digest, buf *tar, err **e)
{
	_cleanup_free_ char *text = xasprintf("%s\n", digest);
	if (skill_tar_add(tar, "digest", false, false, (const uint8_t *)text, strlen(text), e) <
	        0 ||
	    skill_tar_add(tar, "skill", true, false, NULL, 0, e) < 0)
		return -1;
	return skill_tar_tree(treefd, t, "skill/", tar, e);
}

/* Resolves and walks a stored skill and checks its files still hash to its digest. */
static int open_export(skill_store *s, const char *ref, sandbox_skill *sk, skill_tree *t, int *fd,
                       err **e)
{
	if (skill_store_walk(s, ref, sk, t, e) < 0)
		return -1;
	char got[SANDBOX_SKILL_DIGEST_LEN + 1];
	skill_tree_digest(t, got);
	if (strcmp(got, sk->digest) != 0)
		return err_set(e, 0,
		               "skill %s: the stored files hash to %s, not %s (aisp skill verify)",
		               sk->manifest.name, got, sk->digest);
	*fd = open(sk->dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (*fd < 0)
		return err_set(e, errno, "open %s", sk->dir);
	return 0;
}

typedef struct exporting {
	skill_store s;
	sandbox_skill sk;
	skill_tree t;
	int fd;
} exporting;

static int export_begin(exporting *x, const char *store, const char *ref, err **e)
{
	memset(x, 0, sizeof(*x));
	x->fd = -1;
	x->s = (skill_store)SKILL_STORE_INIT;
	if (skill_store_open(&x->s, store, false, e) < 0)
		return -1;
	return open_export(&x->s, ref, &x->sk, &x->t, &x->fd, e);
}

static void export_end(exporting *x)
{
	if (x->fd >= 0)
		close(x->fd);
	skill_tree_deinit(&x->t);
	sandbox_skill_deinit(&x->sk);
	skill_store_close(&x->s);
}

int sandbox_skill_export(const char *store, const char *name_or_digest, int fd, err **e)
{
	exporting x;
	buf tar = BUF_INIT;
	int r = export_begin(&x, store, name_or_digest, e);
	if (r == 0)
		r = build_archive(x.fd, &x.t, x.sk.digest, &tar, e);
	if (r == 0 && write_all(fd, tar.data, tar.len) < 0)
		r = err_set(e, errno, "write the archive");
	buf_deinit(&tar);
	export_end(&x);
	return r;
}

static int write_bundle_dir(exporting *x, int dirfd, const char *dir, err **e)
{
	_cleanup_free_ char *text = xasprintf("%s\n", x->sk.digest);
	if (write_file_at(dirfd, "digest", text, strlen(text), 0644, e) < 0)
		return err_prefix(e, "%s", dir);
	_cleanup_close_ int skillfd = -1;
	if (mkdirat(dirfd, "skill", 0755) < 0 ||
	    (skillfd = openat(dirfd, "skill", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) <
	        0 ||
	    fchmod(skillfd, 0755) < 0)
		return err_set(e, errno, "%s: create skill/", dir);
	skill_tree copy;
	if (skill_tree_walk(x->fd, skillfd, x->sk.dir, &copy, e) < 0)
		return -1;
	char got[SANDBOX_SKILL_DIGEST_LEN + 1];
	skill_tree_digest(&copy, got);
	skill_tree_deinit(&copy);
	if (strcmp(got, x->sk.digest) != 0)
		return err_set(e, 0, "%s: the copy hashes to %s, not %s", dir, got, x->sk.digest);
	return 0;
}

int sandbox_skill_export_dir(const char *store, const char *name_or_digest, const char *dir,
                             err **e)
{
	if (!dir || !*dir)
		return err_set(e, 0, "export: no bundle directory");
	exporting x;
	int r = export_begin(&x, store, name_or_digest, e);
	if (r == 0 && mkdir(dir, 0755) < 0)
		r = err_set(e, errno, "bundle directory %s", dir);
	if (r == 0) {
		_cleanup_close_ int dirfd =
		    open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (dirfd < 0 || fchmod(dirfd, 0755) < 0)
			r = err_set(e, errno, "bundle directory %s", dir);
		else
			r = write_bundle_dir(&x, dirfd, dir, e);
		if (r < 0)
			rm_rf_at(AT_FDCWD, dir, NULL);
	}
	export_end(&x);
	return r;
}

/* ---- import ---- */

/* "sha256:<hex>" with at most one trailing newline, into out. */
static int parse_digest_file(const uint8_t *p, size_t n, const char *label, char *out, err **e)
{
	if (n && p[n - 1] == '\n')
		n--;
	if (n != SANDBOX_SKILL_DIGEST_LEN)
		return err_set(e, 0, "%s: digest: expected sha256: and 64 lower-case hex digits",
		               label);
	memcpy(out, p, n);
	out[n] = '\0';
	if (!proto_blob_id_valid(out))
		return err_set(e, 0, "%s: digest: expected sha256: and 64 lower-case hex digits",
		               label);
	return 0;
}

typedef struct extract {
	int rootfd;
	char digest[SANDBOX_SKILL_DIGEST_LEN + 1];
	bool have_digest, have_skill;
	size_t count;
	uint64_t bytes;
} extract;

/* Creates one member of skill/ below the temporary tree; its directory must already exist. */
static int extract_entry(extract *x, const char *rel, bool dir, bool exec, const uint8_t *data,
                         size_t len, err **e)
{
	_cleanup_free_ char *shown = skill_shown_path(rel);
	if (!skill_path_valid(rel))
		return err_set(e, 0, "archive: skill/%s: not a valid skill path", shown);
	if (++x->count > SANDBOX_SKILL_FILES_MAX || len > SANDBOX_SKILL_BYTES_MAX - x->bytes)
		return err_set(e, 0,
		               "archive: more than the caps of a skill (%d entries, %u bytes)",
		               SANDBOX_SKILL_FILES_MAX, SANDBOX_SKILL_BYTES_MAX);
	x->bytes += len;
	const char *slash = strrchr(rel, '/');
	_cleanup_free_ char *parent = slash ? xstrndup(rel, (size_t)(slash - rel)) : NULL;
	const char *base = slash ? slash + 1 : rel;
	_cleanup_close_ int pfd = parent ? skill_open_below(x->rootfd, parent, O_DIRECTORY, NULL)
	                                 : fcntl(x->rootfd, F_DUPFD_CLOEXEC, 0);
	if (pfd < 0)
		return err_set(e, 0,
		               "archive: skill/%s: its directory is not in the archive before it",
		               shown);
	if (dir) {
		if (mkdirat(pfd, base, 0700) < 0)
			return err_set(e, errno == EEXIST ? 0 : errno, "archive: skill/%s: %s",
			               shown, errno == EEXIST ? "listed twice" : "create");
		_cleanup_close_ int d =
		    openat(pfd, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		return d < 0 || fchmod(d, 0755) < 0 ? err_set(e, errno, "archive: skill/%s", shown)
		                                    : 0;
	}
	_cleanup_close_ int fd =
	    openat(pfd, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return err_set(e, errno == EEXIST ? 0 : errno, "archive: skill/%s: %s", shown,
		               errno == EEXIST ? "listed twice" : "create");
	if (write_all(fd, data, len) < 0 || fchmod(fd, exec ? 0755 : 0644) < 0 || fsync(fd) < 0)
		return err_set(e, errno, "archive: skill/%s: write", shown);
	return 0;
}

static int on_member(const char *path, bool dir, bool exec, const uint8_t *data, size_t len,
                     void *arg, err **e)
{
	extract *x = arg;
	if (!strcmp(path, "digest") && !dir) {
		if (x->have_digest)
			return err_set(e, 0, "archive: digest: listed twice");
		x->have_digest = true;
		return parse_digest_file(data, len, "archive", x->digest, e);
	}
	if (!strcmp(path, "skill") && dir) {
		if (x->have_skill)
			return err_set(e, 0, "archive: skill/: listed twice");
		x->have_skill = true;
		return 0;
	}
	if (!strncmp(path, "skill/", 6) && x->have_skill)
		return extract_entry(x, path + 6, dir, exec, data, len, e);
	_cleanup_free_ char *shown = skill_shown_path(path);
	if (!strncmp(path, "skill/", 6))
		return err_set(e, 0, "archive: %s: before the skill/ directory", shown);
	return err_set(e, 0, "archive: unexpected member %s (a bundle holds digest and skill/)",
	               shown);
}

static int import_archive(int fd, int tmpfd, char *digest, err **e)
{
	buf b = BUF_INIT;
	ssize_t n = read_all(fd, &b, BUNDLE_MAX + 1);
	int r = 0;
	if (n < 0)
		r = err_set(e, errno, "archive: read");
	else if ((size_t)n > BUNDLE_MAX)
		r = err_set(e, 0, "archive: larger than %zu bytes (the caps of a skill)",
		            BUNDLE_MAX);
	extract x = {.rootfd = tmpfd};
	if (r == 0)
		r = skill_tar_parse(b.data, b.len, on_member, &x, e);
	buf_deinit(&b);
	if (r == 0 && (!x.have_digest || !x.have_skill))
		r = err_set(e, 0, "archive: not a skill bundle (no %s member)",
		            x.have_digest ? "skill/" : "digest");
	if (r == 0)
		memcpy(digest, x.digest, sizeof(x.digest));
	return r;
}

static int import_dir(const char *dir, int tmpfd, char *digest, err **e)
{
	_cleanup_close_ int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		return err_set(e, errno, "bundle directory %s", dir);
	buf b = BUF_INIT;
	int r = read_file_at(dirfd, "digest", DIGEST_FILE_MAX, &b, e);
	if (r == 0)
		r = parse_digest_file(b.data, b.len, dir, digest, e);
	buf_deinit(&b);
	if (r < 0)
		return err_prefix(e, "bundle directory %s", dir);
	_cleanup_close_ int skillfd =
	    openat(dirfd, "skill", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (skillfd < 0)
		return err_set(e, errno, "bundle directory %s: skill/", dir);
	_cleanup_free_ char *label = xasprintf("%s/skill", dir);
	skill_tree t;
	if (skill_tree_walk(skillfd, tmpfd, label, &t, e) < 0)
		return -1;
	skill_tree_deinit(&t);
	return 0;
}

int sandbox_skill_import(const char *store, int fd, const char *dir, const char *expect,
                         bool replace, const sandbox_skill_import_check *check, sandbox_skill *out,
                         bool *added, err **e)
{
	if (expect && !proto_blob_id_valid(expect))
		return err_set(e, 0, "invalid skill digest \"%.80s\"", expect);
	skill_store s;
	if (skill_store_open(&s, store, true, e) < 0)
		return -1;
	_cleanup_free_ char *name = NULL;
	_cleanup_close_ int tmpfd = -1;
	char digest[SANDBOX_SKILL_DIGEST_LEN + 1];
	int r = skill_store_tmp(&s, &name, &tmpfd, e);
	if (r == 0)
		r = dir ? import_dir(dir, tmpfd, digest, e) : import_archive(fd, tmpfd, digest, e);
	if (r == 0 && expect && strcmp(expect, digest) != 0)
		r = err_set(e, 0, "the bundle is skill %s, not the expected %s", digest, expect);
	_cleanup_free_ char *label = dir ? xasprintf("bundle %s", dir) : xstrdup("archive");
	if (r == 0 && check && check->fn(tmpfd, label, check->arg, e) < 0)
		r = -1;
	if (r < 0 && name) {
		_cleanup_close_ int t = openat(s.fd, "tmp", O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
		rm_rf_at(t, name, NULL);
	}
	if (r == 0)
		r = skill_store_publish(&s, name, tmpfd, label, digest, replace, out, added, e);
	skill_store_close(&s);
	return r;
}
