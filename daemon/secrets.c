/* The node's secret store (secrets.h): its [secrets] configuration and the lookup of a skill's
 * declared secrets from root-only files. Every file and directory is opened relative to the
 * store's directory fd with O_NOFOLLOW and checked on the opened fd (owner, mode, type), so
 * what is checked is what is read. Values are wiped from memory when freed. */
#include "daemon/secrets.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "common/cleanup.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "proto/proto.h"
#include "sandbox/sandbox.h"

struct secrets {
	const secrets_config *c;
	char *dir;
	int fd;
};

/* ---- configuration ---- */

static void strv_free(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

void secrets_config_defaults(secrets_config *c)
{
	memset(c, 0, sizeof(*c));
	c->dir = xstrdup(SECRETS_DIR_DEFAULT);
	c->run_code_skills = xcalloc(1, sizeof(char *));
}

void secrets_config_deinit(secrets_config *c)
{
	free(c->dir);
	for (size_t i = 0; i < c->n_grants; i++) {
		free(c->grants[i].name);
		strv_free(c->grants[i].skills);
	}
	free(c->grants);
	strv_free(c->run_code_skills);
	memset(c, 0, sizeof(*c));
}

/* Skill names separated by commas and/or spaces, each valid: a NULL-terminated array. */
static int parse_skills(const char *key, const char *value, char ***out, size_t *n, err **e)
{
	static const char seps[] = ", \t";
	char **v = xcalloc(1, sizeof(*v));
	size_t k = 0;
	for (const char *p = value + strspn(value, seps); *p; p += strspn(p, seps)) {
		size_t len = strcspn(p, seps);
		_cleanup_free_ char *name = xstrndup(p, len);
		p += len;
		if (!sandbox_skill_name_valid(name)) {
			strv_free(v);
			return err_set(e, 0, "%s: \"%.64s\" is not a skill name", key, name);
		}
		v = xreallocarray(v, k + 2, sizeof(*v));
		v[k++] = steal_pointer(&name);
		v[k] = NULL;
	}
	*out = v;
	*n = k;
	return 0;
}

static bool secret_name_ok(const char *name)
{
	return proto_env_name_valid(name) && !proto_env_reserved(name);
}

static int set_grant(secrets_config *c, const char *key, const char *value, err **e)
{
	const char *name = key + strlen("grant.");
	if (!secret_name_ok(name))
		return err_set(e, 0,
		               "%s: \"%.64s\" is not a secret name (an environment variable name "
		               "a skill may receive)",
		               key, name);
	for (size_t i = 0; i < c->n_grants; i++)
		if (!strcmp(c->grants[i].name, name))
			return err_set(e, 0, "%s: set twice", key);
	if (c->n_grants == SECRETS_GRANTS_MAX)
		return err_set(e, 0, "%s: more than %d grants", key, SECRETS_GRANTS_MAX);
	secrets_grant g = {.name = xstrdup(name)};
	if (parse_skills(key, value, &g.skills, &g.n_skills, e) < 0 || g.n_skills == 0) {
		free(g.name);
		strv_free(g.skills);
		return e && *e ? -1 : err_set(e, 0, "%s: expected one or more skill names", key);
	}
	c->grants = xreallocarray(c->grants, c->n_grants + 1, sizeof(*c->grants));
	c->grants[c->n_grants++] = g;
	return 0;
}

int secrets_config_set(secrets_config *c, const char *key, const char *value, err **e)
{
	if (!strcmp(key, "dir")) {
		if (value[0] != '/')
			return err_set(e, 0, "dir: expected an absolute path, not \"%.80s\"",
			               value);
		free(c->dir);
		c->dir = xstrdup(value);
		return 0;
	}
	if (!strcmp(key, "run_code_skills")) {
		char **v;
		size_t n;
		if (parse_skills(key, value, &v, &n, e) < 0)
			return -1;
		strv_free(c->run_code_skills);
		c->run_code_skills = v;
		c->n_run_code_skills = n;
		return 0;
	}
	if (!strncmp(key, "grant.", strlen("grant.")))
		return set_grant(c, key, value, e);
	return err_set(e, 0, "unknown key %.64s (keys: dir, grant.NAME, run_code_skills)", key);
}

static bool listed(char *const *v, const char *s)
{
	for (size_t i = 0; v && v[i]; i++)
		if (!strcmp(v[i], s))
			return true;
	return false;
}

bool secrets_run_code_allowed(const secrets_config *c, const char *skill)
{
	return listed(c->run_code_skills, skill);
}

static bool granted(const secrets_config *c, const char *name, const char *skill)
{
	for (size_t i = 0; i < c->n_grants; i++)
		if (!strcmp(c->grants[i].name, name))
			return listed(c->grants[i].skills, skill);
	return false;
}

/* ---- the store ---- */

/* A directory of the store: the daemon's, 0700. */
static int check_dir(const secrets *s, int fd, const char *rel, err **e)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return err_set(e, errno, "secret store %s: stat %s", s->dir, rel);
	if (st.st_uid != geteuid() || (st.st_mode & 07777) != 0700)
		return err_set(
		    e, 0,
		    "secret store %s: %s is mode %04o owned by uid %d; it must be 0700 and "
		    "owned by uid %d",
		    s->dir, rel, (unsigned)(st.st_mode & 07777), (int)st.st_uid, (int)geteuid());
	return 0;
}

int secrets_open(secrets **out, const secrets_config *c, err **e)
{
	secrets *s = xzalloc(sizeof(*s));
	s->c = c;
	s->dir = xstrdup(c->dir);
	s->fd = open(c->dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (s->fd < 0 || check_dir(s, s->fd, ".", e) < 0) {
		struct stat st;
		int saved = errno;
		if (s->fd < 0 && lstat(c->dir, &st) == 0 && S_ISLNK(st.st_mode))
			err_set(
			    e, 0,
			    "secret store %s: a symbolic link (it must be the directory itself)",
			    c->dir);
		else if (s->fd < 0)
			err_set(e, saved, "secret store %s", c->dir);
		secrets_free(s);
		return -1;
	}
	*out = s;
	return 0;
}

secrets *secrets_free(secrets *s)
{
	if (!s)
		return NULL;
	if (s->fd >= 0)
		close(s->fd);
	free(s->dir);
	free(s);
	return NULL;
}

/* <dir>/<a>/<b> (b NULL: <dir>/<a>) as a checked directory fd; -1 with *missing when absent. */
static int open_subdir(const secrets *s, const char *a, const char *b, bool *missing, err **e)
{
	*missing = false;
	_cleanup_free_ char *rel = b ? xasprintf("%s/%s", a, b) : xstrdup(a);
	int fd = openat(s->fd, a, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd >= 0 && b) {
		int sub = check_dir(s, fd, a, e) < 0
		              ? -2
		              : openat(fd, b, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		int saved = errno;
		close(fd);
		if (sub == -2)
			return -1;
		errno = saved;
		fd = sub;
	}
	if (fd < 0) {
		*missing = errno == ENOENT;
		return *missing ? -1 : err_set(e, errno, "secret store %s: open %s", s->dir, rel);
	}
	if (check_dir(s, fd, rel, e) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int file_error(const secrets *s, const char *rel, const char *what, err **e)
{
	return err_set(e, 0, "secret store %s: %s: %s", s->dir, rel, what);
}

/* The value in the opened file fd (its checks passed), into *out. */
static int read_value(const secrets *s, int fd, const char *rel, secret_value *out, err **e)
{
	buf b = BUF_INIT;
	if (read_all(fd, &b, SECRETS_VALUE_MAX + 3) < 0) {
		buf_deinit(&b);
		return err_set(e, errno, "secret store %s: read %s", s->dir, rel);
	}
	size_t n = b.len;
	if (n && b.data[n - 1] == '\n')
		n -= (n >= 2 && b.data[n - 2] == '\r') ? 2 : 1;
	const char *bad = memchr(b.data, '\0', n) ? "holds a NUL byte"
	                  : n < SECRETS_VALUE_MIN ? "shorter than 8 bytes (too short to redact)"
	                  : n > SECRETS_VALUE_MAX ? "longer than 8192 bytes"
	                                          : NULL;
	if (bad) {
		OPENSSL_cleanse(b.data, b.cap);
		buf_deinit(&b);
		return file_error(s, rel, bad, e);
	}
	b.data[n] = '\0';
	out->value = b.data;
	out->len = n;
	return 0;
}

/* <dirfd>/<name>: 1 read, 0 missing, -1 refused. rel names it in messages. */
static int read_secret(const secrets *s, int dirfd, const char *rel, const char *name,
                       secret_value *out, err **e)
{
	_cleanup_close_ int fd =
	    openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT)
		return 0;
	if (fd < 0 && errno == ELOOP)
		return file_error(s, rel, "a symbolic link", e);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0)
		return err_set(e, errno, "secret store %s: open %s", s->dir, rel);
	mode_t mode = st.st_mode & 07777;
	if (!S_ISREG(st.st_mode))
		return file_error(s, rel, "not a regular file", e);
	if (st.st_uid != geteuid() || (mode != 0600 && mode != 0400)) {
		_cleanup_free_ char *what =
		    xasprintf("mode %04o owned by uid %d; secret files must be 0600 or 0400 and "
		              "owned by uid %d",
		              (unsigned)mode, (int)st.st_uid, (int)geteuid());
		return file_error(s, rel, what, e);
	}
	if (read_value(s, fd, rel, out, e) < 0)
		return -1;
	out->name = xstrdup(name);
	return 1;
}

/* One declared secret: the skill's own file, else the granted node-wide one. */
static int lookup_one(const secrets *s, const char *skill, int skillfd, int nodefd,
                      const char *name, secret_value *out, err **e)
{
	if (!secret_name_ok(name))
		return err_set(e, 0, "skill %s declares \"%.64s\", which is not a secret name",
		               skill, name);
	_cleanup_free_ char *srel = xasprintf("skills/%s/%s", skill, name);
	int r = skillfd >= 0 ? read_secret(s, skillfd, srel, name, out, e) : 0;
	if (r == 0 && nodefd >= 0 && granted(s->c, name, skill)) {
		_cleanup_free_ char *nrel = xasprintf("node/%s", name);
		r = read_secret(s, nodefd, nrel, name, out, e);
	}
	if (r == 0)
		return err_set(e, 0,
		               "skill %s declares the secret %s, which this node does not hold",
		               skill, name);
	return r < 0 ? -1 : 0;
}

int secrets_lookup(const secrets *s, const char *skill, char *const *names, size_t n,
                   secret_value **out, err **e)
{
	*out = NULL;
	if (!sandbox_skill_name_valid(skill))
		return err_set(e, 0, "invalid skill name \"%.64s\"", skill);
	if (n == 0)
		return 0;
	bool missing;
	int skillfd = open_subdir(s, "skills", skill, &missing, e);
	if (skillfd < 0 && !missing)
		return -1;
	int nodefd = open_subdir(s, "node", NULL, &missing, e);
	if (nodefd < 0 && !missing) {
		if (skillfd >= 0)
			close(skillfd);
		return -1;
	}
	secret_value *v = xcalloc(n, sizeof(*v));
	int r = 0;
	for (size_t i = 0; i < n && r == 0; i++)
		r = lookup_one(s, skill, skillfd, nodefd, names[i], &v[i], e);
	if (skillfd >= 0)
		close(skillfd);
	if (nodefd >= 0)
		close(nodefd);
	if (r < 0) {
		secrets_values_free(v, n);
		return -1;
	}
	*out = v;
	return 0;
}

void secrets_values_free(secret_value *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++) {
		if (v[i].value)
			OPENSSL_cleanse(v[i].value, v[i].len);
		free(v[i].value);
		free(v[i].name);
	}
	free(v);
}

int secrets_lookup_node(const secrets *s, const char *name, secret_value **out, err **e)
{
	*out = NULL;
	if (!secret_name_ok(name))
		return err_set(e, 0, "\"%.64s\" is not a secret name", name);
	bool missing;
	_cleanup_close_ int nodefd = open_subdir(s, "node", NULL, &missing, e);
	if (nodefd < 0)
		return missing ? err_set(e, 0, "this node does not hold the secret %s", name) : -1;
	_cleanup_free_ char *rel = xasprintf("node/%s", name);
	secret_value *v = xcalloc(1, sizeof(*v));
	int r = read_secret(s, nodefd, rel, name, v, e);
	if (r <= 0) {
		secrets_values_free(v, 1);
		return r == 0 ? err_set(e, 0, "this node does not hold the secret %s", name) : -1;
	}
	*out = v;
	return 0;
}
