/* The skill store (layout in sandbox/sandbox.h, format in proto/SKILLS.md): adding a skill
 * directory, resolving a name or digest to its read-only tree, listing, removing, verifying.
 *
 * A tree is built in <store>/tmp/, its digest computed from what was written there (so the
 * digest names exactly what is stored), its manifest validated, and only then renamed into
 * skills/<hex>/ and named in names/<name>: a reader sees a whole skill or none. Writers hold
 * the store's flock; readers need no lock. Nothing below the store is followed through a link. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "sandbox/sandbox.h"
#include "sandbox/skill-internal.h"

#define DIGEST_PREFIX "sha256:"

static int open_dir_at(int at, const char *name)
{
	return openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

/* mkdir at/name with exactly mode (whatever the umask); an existing directory is fine. */
static int ensure_dir(int at, const char *name, mode_t mode, err **e)
{
	if (mkdirat(at, name, mode) == 0) {
		_cleanup_close_ int fd = open_dir_at(at, name);
		if (fd < 0 || fchmod(fd, mode) < 0)
			return err_set(e, errno, "%s", name);
	} else if (errno != EEXIST) {
		return err_set(e, errno, "create %s", name);
	}
	return 0;
}

static int store_create(const char *store, err **e)
{
	if (mkdir_p(store, 0755, e) < 0)
		return -1;
	_cleanup_close_ int fd = open(store, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return err_set(e, errno, "open");
	if (ensure_dir(fd, "skills", 0755, e) < 0 || ensure_dir(fd, "names", 0755, e) < 0 ||
	    ensure_dir(fd, "tmp", 0700, e) < 0)
		return -1;
	return 0;
}

static int store_lock(skill_store *s, err **e)
{
	s->lockfd = openat(s->fd, ".lock", O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (s->lockfd < 0)
		return err_set(e, errno, "open .lock");
	while (flock(s->lockfd, LOCK_EX) < 0)
		if (errno != EINTR)
			return err_set(e, errno, "lock .lock");
	return 0;
}

int skill_store_open(skill_store *s, const char *store, bool writer, err **e)
{
	*s = (skill_store)SKILL_STORE_INIT;
	if (!store || !*store)
		store = SANDBOX_SKILL_STORE_DEFAULT;
	if (writer && store_create(store, e) < 0)
		return err_prefix(e, "skill store %s", store);
	char abs[PATH_MAX];
	if (!realpath(store, abs))
		return err_set(e, errno, "skill store %s", store);
	s->abs = xstrdup(abs);
	s->fd = open(abs, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->fd < 0 || (writer && store_lock(s, e) < 0)) {
		if (s->fd < 0)
			err_set(e, errno, "open");
		skill_store_close(s);
		return err_prefix(e, "skill store %s", store);
	}
	return 0;
}

void skill_store_close(skill_store *s)
{
	if (s->lockfd >= 0)
		close(s->lockfd);
	if (s->fd >= 0)
		close(s->fd);
	free(s->abs);
	*s = (skill_store)SKILL_STORE_INIT;
}

int skill_store_tmp(skill_store *s, char **name, int *fd, err **e)
{
	_cleanup_free_ char *tmpl = xasprintf("%s/tmp/skill.XXXXXX", s->abs);
	if (!mkdtemp(tmpl))
		return err_set(e, errno, "skill store %s: create a temporary tree", s->abs);
	*name = xstrdup(strrchr(tmpl, '/') + 1);
	_cleanup_close_ int tmpfd = open_dir_at(s->fd, "tmp");
	*fd = tmpfd < 0 ? -1 : open_dir_at(tmpfd, *name);
	if (*fd < 0) {
		int saved = errno;
		rmdir(tmpl);
		free(*name);
		*name = NULL;
		return err_set(e, saved, "skill store %s: open %s", s->abs, tmpl);
	}
	return 0;
}

/* Removes <store>/<sub>/<name>, renamed into tmp/ first so that it vanishes at once. */
static int remove_tree(skill_store *s, const char *sub, const char *name, err **e)
{
	_cleanup_close_ int tmp = open_dir_at(s->fd, "tmp");
	if (tmp < 0)
		return err_set(e, errno, "skill store %s: open tmp", s->abs);
	if (!strcmp(sub, "tmp"))
		return rm_rf_at(tmp, name, e);
	_cleanup_close_ int from = open_dir_at(s->fd, sub);
	_cleanup_free_ char *gone = xasprintf("rm.%s.%d", name, (int)getpid());
	if (from < 0 || renameat(from, name, tmp, gone) < 0)
		return errno == ENOENT
		           ? 0
		           : err_set(e, errno, "skill store %s: remove %s/%s", s->abs, sub, name);
	return rm_rf_at(tmp, gone, e);
}

int skill_open_below(int rootfd, const char *path, int flags, err **e)
{
	_cleanup_free_ char *copy = xstrdup(path);
	int at = rootfd;
	char *save = NULL;
	for (char *part = strtok_r(copy, "/", &save); part;) {
		char *next = strtok_r(NULL, "/", &save);
		int f =
		    next || (flags & O_DIRECTORY) ? O_RDONLY | O_DIRECTORY : O_RDONLY | O_NONBLOCK;
		int fd = openat(at, part, f | O_NOFOLLOW | O_CLOEXEC);
		int saved = errno;
		if (at != rootfd)
			close(at);
		if (fd < 0)
			return err_set(e, saved, "open %s", path);
		at = fd;
		part = next;
	}
	return at == rootfd ? fcntl(rootfd, F_DUPFD_CLOEXEC, 0) : at;
}

/* names/<name> into *digest (owned). Returns 1 when present, 0 when missing, -1 on error. */
static int read_name(skill_store *s, const char *name, char **digest, err **e)
{
	_cleanup_close_ int namesfd = open_dir_at(s->fd, "names");
	if (namesfd < 0 && errno == ENOENT)
		return 0;
	if (namesfd < 0)
		return err_set(e, errno, "skill store %s: open names", s->abs);
	buf b = BUF_INIT;
	err *ie = NULL;
	if (read_file_at(namesfd, name, 128, &b, &ie) < 0) {
		int code = ie->code;
		buf_deinit(&b);
		err_free(ie);
		if (code == ENOENT)
			return 0;
		return err_set(e, code, "skill store %s: read names/%s", s->abs, name);
	}
	_cleanup_free_ char *text = buf_steal(&b, NULL);
	text[strcspn(text, "\n")] = '\0';
	if (!proto_blob_id_valid(text))
		return err_set(e, 0, "skill store %s: names/%s does not hold a sha256 digest",
		               s->abs, name);
	*digest = steal_pointer(&text);
	return 1;
}

int skill_load_manifest(int treefd, const char *label, sandbox_skill_manifest *m, err **e)
{
	buf b = BUF_INIT;
	err *ie = NULL;
	if (read_file_at(treefd, "skill.toml", SANDBOX_SKILL_MANIFEST_MAX, &b, &ie) < 0) {
		bool missing = ie->code == ENOENT;
		err_free(ie);
		buf_deinit(&b);
		if (missing)
			return err_set(e, 0,
			               "%s: skill.toml: missing (every skill has one at its root)",
			               label);
		return err_set(e, 0, "%s: skill.toml: not a regular file of at most %u bytes",
		               label, SANDBOX_SKILL_MANIFEST_MAX);
	}
	_cleanup_free_ char *file = xasprintf("%s/skill.toml", label);
	int r = sandbox_skill_manifest_parse(file, (const char *)b.data, b.len, m, e);
	buf_deinit(&b);
	return r;
}

/* The stored tree must be the store writer's and not writable by others: it is mounted into
 * sandboxes as it is. */
static int check_tree_owner(skill_store *s, int treefd, const char *hex, err **e)
{
	struct stat st;
	if (fstat(treefd, &st) < 0)
		return err_set(e, errno, "skill store %s: stat skills/%s", s->abs, hex);
	if (st.st_uid != geteuid() || (st.st_mode & 022))
		return err_set(e, 0,
		               "skill store %s: skills/%s is not owned by uid %d or is writable by "
		               "others; refusing to use it",
		               s->abs, hex, (int)geteuid());
	return 0;
}

static int not_found(skill_store *s, const char *ref, err **e)
{
	return err_set(e, 0, "skill %s is not in the store at %s", ref, s->abs);
}

int skill_store_resolve(skill_store *s, const char *ref, sandbox_skill *out, err **e)
{
	memset(out, 0, sizeof(*out));
	bool by_digest = ref && !strncmp(ref, DIGEST_PREFIX, strlen(DIGEST_PREFIX));
	if (by_digest ? !proto_blob_id_valid(ref) : !sandbox_skill_name_valid(ref))
		return err_set(e, 0, "invalid skill %s \"%.80s\"", by_digest ? "digest" : "name",
		               ref ? ref : "");
	_cleanup_free_ char *digest = by_digest ? xstrdup(ref) : NULL;
	int found = by_digest ? 1 : read_name(s, ref, &digest, e);
	if (found <= 0)
		return found < 0 ? -1 : not_found(s, ref, e);
	const char *hex = digest + strlen(DIGEST_PREFIX);
	_cleanup_close_ int skillsfd = open_dir_at(s->fd, "skills");
	_cleanup_close_ int treefd = skillsfd < 0 ? -1 : open_dir_at(skillsfd, hex);
	if (treefd < 0)
		return errno == ENOENT
		           ? not_found(s, ref, e)
		           : err_set(e, errno, "skill store %s: open skills/%s", s->abs, hex);
	_cleanup_free_ char *dir = xasprintf("%s/skills/%s", s->abs, hex);
	if (check_tree_owner(s, treefd, hex, e) < 0 ||
	    skill_load_manifest(treefd, dir, &out->manifest, e) < 0)
		return -1;
	if (!by_digest && strcmp(out->manifest.name, ref) != 0) {
		sandbox_skill_deinit(out);
		return err_set(e, 0, "skill store %s: names/%s names a skill called %s", s->abs,
		               ref, out->manifest.name);
	}
	out->digest = steal_pointer(&digest);
	out->dir = steal_pointer(&dir);
	return 0;
}

/* The checks on a complete temporary tree before it is published. */
static int check_tree(const skill_tree *t, const sandbox_skill_manifest *m, const char *label,
                      err **e)
{
	if (m->mode == SANDBOX_SKILL_SEALED)
		return skill_sealed_check_tree(t, label, e);
	const skill_entry *en = skill_tree_find(t, m->entry_path);
	if (!en || en->dir)
		return err_set(e, 0, "%s/skill.toml: entrypoint: %s is not a file of the skill",
		               label, m->entry_path);
	return 0;
}

/* Renames tmp/<name> to skills/<hex>. *fresh is false when that tree was already there. */
static int move_into_place(skill_store *s, const char *name, const char *hex, bool *fresh, err **e)
{
	_cleanup_close_ int tmpfd = open_dir_at(s->fd, "tmp");
	_cleanup_close_ int skillsfd = open_dir_at(s->fd, "skills");
	if (tmpfd < 0 || skillsfd < 0)
		return err_set(e, errno, "skill store %s: open tmp and skills", s->abs);
	*fresh = true;
	if (renameat(tmpfd, name, skillsfd, hex) < 0) {
		if (errno != EEXIST && errno != ENOTEMPTY)
			return err_set(e, errno, "skill store %s: rename tmp/%s to skills/%s",
			               s->abs, name, hex);
		*fresh = false;
		if (remove_tree(s, "tmp", name, e) < 0)
			return -1;
	}
	if (fsync(skillsfd) < 0)
		return err_set(e, errno, "skill store %s: fsync skills", s->abs);
	return 0;
}

static int write_name(skill_store *s, const char *name, const char *digest, err **e)
{
	_cleanup_close_ int namesfd = open_dir_at(s->fd, "names");
	if (namesfd < 0)
		return err_set(e, errno, "skill store %s: open names", s->abs);
	_cleanup_free_ char *text = xasprintf("%s\n", digest);
	if (write_file_at(namesfd, name, text, strlen(text), 0644, e) < 0)
		return err_prefix(e, "skill store %s: names", s->abs);
	return 0;
}

typedef struct publish {
	skill_tree tree;
	sandbox_skill skill;
	char digest[SANDBOX_SKILL_DIGEST_LEN + 1];
	char *old; /* the digest the name had, or NULL */
} publish;

/* Every check, before anything is published. */
static int publish_check(skill_store *s, int fd, const char *label, const char *expect,
                         bool replace, publish *p, err **e)
{
	if (skill_tree_walk(fd, -1, label, &p->tree, e) < 0)
		return -1;
	skill_tree_digest(&p->tree, p->digest);
	if (expect && strcmp(expect, p->digest) != 0)
		return err_set(e, 0, "%s: the files hash to %s, not %s", label, p->digest, expect);
	sandbox_skill_manifest *m = &p->skill.manifest;
	if (skill_load_manifest(fd, label, m, e) < 0 || check_tree(&p->tree, m, label, e) < 0)
		return -1;
	if (read_name(s, m->name, &p->old, e) < 0)
		return -1;
	if (p->old && strcmp(p->old, p->digest) != 0 && !replace)
		return err_set(
		    e, 0,
		    "skill %s is already in the store as %s; remove it first (aisp skill "
		    "rm %s) or replace it (--replace)",
		    m->name, p->old, m->name);
	if (fchmod(fd, 0755) < 0)
		return err_set(e, errno, "%s: chmod the new tree", label);
	return 0;
}

static int publish_tree(skill_store *s, const char *name, int fd, const char *label,
                        const char *expect, bool replace, publish *p, bool *added, err **e)
{
	if (publish_check(s, fd, label, expect, replace, p, e) < 0) {
		remove_tree(s, "tmp", name, NULL);
		return -1;
	}
	const char *hex = p->digest + strlen(DIGEST_PREFIX);
	bool fresh = false;
	if (move_into_place(s, name, hex, &fresh, e) < 0) {
		remove_tree(s, "tmp", name, NULL);
		return -1;
	}
	bool renamed = !p->old || strcmp(p->old, p->digest) != 0;
	if (renamed && write_name(s, p->skill.manifest.name, p->digest, e) < 0) {
		if (fresh)
			remove_tree(s, "skills", hex, NULL);
		return -1;
	}
	if (p->old && renamed && remove_tree(s, "skills", p->old + strlen(DIGEST_PREFIX), e) < 0)
		return err_prefix(e, "%s is added, but the tree it replaced is left", p->digest);
	*added = fresh || renamed;
	return 0;
}

int skill_store_publish(skill_store *s, const char *name, int fd, const char *label,
                        const char *expect, bool replace, sandbox_skill *out, bool *added, err **e)
{
	publish p = {0};
	bool dummy;
	int r = publish_tree(s, name, fd, label, expect, replace, &p, added ? added : &dummy, e);
	if (r == 0 && out) {
		*out = p.skill;
		memset(&p.skill, 0, sizeof(p.skill));
		out->digest = xstrdup(p.digest);
		out->dir = xasprintf("%s/skills/%s", s->abs, p.digest + strlen(DIGEST_PREFIX));
		out->files = p.tree.n;
		out->bytes = p.tree.bytes;
	}
	skill_tree_deinit(&p.tree);
	sandbox_skill_deinit(&p.skill);
	free(p.old);
	return r;
}

int sandbox_skill_add(const char *store, const char *src, bool replace, sandbox_skill *out,
                      bool *added, err **e)
{
	_cleanup_close_ int srcfd = open(src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (srcfd < 0)
		return err_set(e, errno, "skill directory %s", src);
	skill_store s;
	if (skill_store_open(&s, store, true, e) < 0)
		return -1;
	_cleanup_free_ char *name = NULL;
	_cleanup_close_ int fd = -1;
	skill_tree t;
	int r = skill_store_tmp(&s, &name, &fd, e);
	if (r == 0 && (r = skill_tree_walk(srcfd, fd, src, &t, e)) < 0)
		remove_tree(&s, "tmp", name, NULL);
	if (r == 0) {
		skill_tree_deinit(&t);
		r = skill_store_publish(&s, name, fd, src, NULL, replace, out, added, e);
	}
	skill_store_close(&s);
	return r;
}

int sandbox_skill_resolve(const char *store, const char *name_or_digest, sandbox_skill *out,
                          err **e)
{
	skill_store s;
	memset(out, 0, sizeof(*out));
	if (skill_store_open(&s, store, false, e) < 0)
		return -1;
	int r = skill_store_resolve(&s, name_or_digest, out, e);
	skill_store_close(&s);
	return r;
}

int skill_store_walk(skill_store *s, const char *ref, sandbox_skill *out, skill_tree *t, err **e)
{
	if (skill_store_resolve(s, ref, out, e) < 0)
		return -1;
	_cleanup_close_ int fd = open(out->dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || skill_tree_walk(fd, -1, out->dir, t, e) < 0) {
		if (fd < 0)
			err_set(e, errno, "open %s", out->dir);
		sandbox_skill_deinit(out);
		return -1;
	}
	out->files = t->n;
	out->bytes = t->bytes;
	return 0;
}

static int skill_cmp(const void *a, const void *b)
{
	return strcmp(((const sandbox_skill *)a)->manifest.name,
	              ((const sandbox_skill *)b)->manifest.name);
}

static int list_names(skill_store *s, DIR *d, bool walk, sandbox_skill **out, size_t *n, err **e)
{
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!sandbox_skill_name_valid(de->d_name))
			continue; /* ".", "..", a write_file_at() temporary */
		sandbox_skill sk;
		skill_tree t;
		if (walk ? skill_store_walk(s, de->d_name, &sk, &t, e)
		         : skill_store_resolve(s, de->d_name, &sk, e))
			return -1;
		if (walk)
			skill_tree_deinit(&t);
		*out = xreallocarray(*out, *n + 1, sizeof(**out));
		(*out)[(*n)++] = sk;
	}
	if (*n)
		qsort(*out, *n, sizeof(**out), skill_cmp);
	return 0;
}

int sandbox_skill_list(const char *store, bool walk, sandbox_skill **out, size_t *n, err **e)
{
	*out = NULL;
	*n = 0;
	skill_store s;
	err *oe = NULL;
	if (skill_store_open(&s, store, false, &oe) < 0) {
		bool missing = oe->code == ENOENT;
		if (missing || !e)
			err_free(oe);
		else
			*e = oe;
		return missing ? 0 : -1;
	}
	int fd = openat(s.fd, "names", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *d = fd < 0 ? NULL : fdopendir(fd);
	int r = 0;
	if (!d && errno != ENOENT)
		r = err_set(e, errno, "skill store %s: open names", s.abs);
	if (d && (r = list_names(&s, d, walk, out, n, e)) < 0) {
		sandbox_skill_list_free(*out, *n);
		*out = NULL;
		*n = 0;
	}
	if (d)
		closedir(d);
	else if (fd >= 0)
		close(fd);
	skill_store_close(&s);
	return r;
}

int sandbox_skill_remove(const char *store, const char *name_or_digest, char **digest_out, err **e)
{
	skill_store s;
	if (skill_store_open(&s, store, true, e) < 0)
		return -1;
	sandbox_skill sk;
	int r = skill_store_resolve(&s, name_or_digest, &sk, e);
	_cleanup_free_ char *named = NULL;
	if (r == 0 && (r = read_name(&s, sk.manifest.name, &named, e)) > 0 &&
	    !strcmp(named, sk.digest)) {
		_cleanup_close_ int namesfd = open_dir_at(s.fd, "names");
		if (namesfd < 0 || unlinkat(namesfd, sk.manifest.name, 0) < 0)
			r = err_set(e, errno, "skill store %s: remove names/%s", s.abs,
			            sk.manifest.name);
	}
	if (r >= 0)
		r = remove_tree(&s, "skills", sk.digest + strlen(DIGEST_PREFIX), e);
	if (r >= 0 && digest_out)
		*digest_out = xstrdup(sk.digest);
	sandbox_skill_deinit(&sk);
	skill_store_close(&s);
	return r < 0 ? -1 : 0;
}

int sandbox_skill_verify(const char *store, const char *name_or_digest, sandbox_skill *out, err **e)
{
	skill_store s;
	if (skill_store_open(&s, store, false, e) < 0)
		return -1;
	sandbox_skill sk;
	skill_tree t;
	int r = skill_store_walk(&s, name_or_digest, &sk, &t, e);
	if (r == 0) {
		char got[SANDBOX_SKILL_DIGEST_LEN + 1];
		skill_tree_digest(&t, got);
		if (strcmp(got, sk.digest) != 0)
			r = err_set(e, 0, "skill %s: the stored files hash to %s, not %s",
			            sk.manifest.name, got, sk.digest);
		skill_tree_deinit(&t);
		if (r == 0 && out)
			*out = sk;
		else
			sandbox_skill_deinit(&sk);
	}
	skill_store_close(&s);
	return r;
}

int skill_walk_dir(const char *dir, skill_tree *t, err **e)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return err_set(e, errno, "skill directory %s", dir);
	if (skill_tree_walk(fd, -1, dir, t, e) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

int sandbox_skill_digest_dir(const char *dir, char out[SANDBOX_SKILL_DIGEST_LEN + 1], err **e)
{
	skill_tree t;
	_cleanup_close_ int fd = skill_walk_dir(dir, &t, e);
	if (fd < 0)
		return -1;
	skill_tree_digest(&t, out);
	skill_tree_deinit(&t);
	return 0;
}

int skill_store_open_tree(const char *store, const sandbox_skill *s, skill_tree *t, err **e)
{
	skill_store st;
	if (skill_store_open(&st, store, false, e) < 0)
		return -1;
	sandbox_skill sk;
	int r = skill_store_walk(&st, s->digest, &sk, t, e);
	skill_store_close(&st);
	if (r < 0)
		return err_prefix(e, "skill %s", s->manifest.name);
	char d[SANDBOX_SKILL_DIGEST_LEN + 1];
	skill_tree_digest(t, d);
	int fd = -1;
	if (strcmp(d, s->digest))
		err_set(e, 0,
		        "skill %s: the stored tree hashes to %s, not %s (it changed in the "
		        "store: aisp skill verify %s)",
		        s->manifest.name, d, s->digest, s->manifest.name);
	else if ((fd = open(sk.dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		err_set(e, errno, "skill %s: open %s", s->manifest.name, sk.dir);
	sandbox_skill_deinit(&sk);
	if (fd < 0)
		skill_tree_deinit(t);
	return fd;
}

void sandbox_skill_deinit(sandbox_skill *s)
{
	if (!s)
		return;
	sandbox_skill_manifest_deinit(&s->manifest);
	free(s->digest);
	free(s->dir);
	memset(s, 0, sizeof(*s));
}

void sandbox_skill_list_free(sandbox_skill *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		sandbox_skill_deinit(&v[i]);
	free(v);
}
