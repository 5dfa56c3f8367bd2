/* Sealed skills (issue 20; proto/SKILLS.md, "Sealed skills"): a skill whose code is stored only
 * encrypted to the node. Its stored tree is exactly two files,
 *   skill.toml   the manifest, in the clear (mode = "sealed"): what the node and its buyers
 *                must know to call it (name, version, language, entrypoint, secrets, services)
 *   skill.age    an age file to the node's recipient whose plaintext is a ustar archive of the
 *                skill's own tree (skill.toml included, byte for byte the same)
 * so the store's digest, walk, export, import and removal serve it unchanged, and its digest
 * names the ciphertext, never the plaintext. Only the holder of the node's age identity opens
 * it (aispd for a task, `aisp skill add -i` to check it); this module never decrypts: it makes
 * the archive to seal and checks and unpacks the plaintext the caller decrypted. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "common/cleanup.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "sandbox/sandbox.h"
#include "sandbox/skill-internal.h"

void sandbox_payload_deinit(sandbox_payload *p)
{
	for (size_t i = 0; i < p->n_files; i++) {
		free(p->files[i].path);
		if (p->files[i].data) /* a sealed skill's code: wiped, not only freed */
			OPENSSL_cleanse(p->files[i].data, p->files[i].len);
		free(p->files[i].data);
	}
	free(p->files);
	memset(p, 0, sizeof(*p));
}

int skill_sealed_check_tree(const skill_tree *t, const char *label, err **e)
{
	const skill_entry *toml = skill_tree_find(t, "skill.toml");
	const skill_entry *age = skill_tree_find(t, SANDBOX_SKILL_SEALED_FILE);
	if (t->n != 2 || !toml || !age || age->dir)
		return err_set(
		    e, 0,
		    "%s: a sealed skill holds only skill.toml and " SANDBOX_SKILL_SEALED_FILE
		    " (its code, encrypted to the node: aisp skill seal DIR --to age1...)",
		    label);
	return 0;
}

int sandbox_skill_seal_archive(const char *dir, buf *manifest, buf *tar, err **e)
{
	skill_tree t;
	_cleanup_close_ int fd = skill_walk_dir(dir, &t, e);
	if (fd < 0)
		return -1;
	sandbox_skill_manifest m;
	int r = skill_load_manifest(fd, dir, &m, e);
	if (r < 0) {
		skill_tree_deinit(&t);
		return -1;
	}
	const skill_entry *en = skill_tree_find(&t, m.entry_path);
	const skill_entry *toml = skill_tree_find(&t, "skill.toml");
	if (m.mode != SANDBOX_SKILL_SEALED)
		r = err_set(e, 0,
		            "%s/skill.toml: mode: is \"source\"; a skill to seal says mode = "
		            "\"sealed\" (what the node shows of it depends on that)",
		            dir);
	else if (skill_tree_find(&t, SANDBOX_SKILL_SEALED_FILE) && t.n == 2)
		r = err_set(e, 0,
		            "%s: already sealed (it holds skill.toml and " SANDBOX_SKILL_SEALED_FILE
		            " only)",
		            dir);
	else if (!en || en->dir)
		r = err_set(e, 0, "%s/skill.toml: entrypoint: %s is not a file of the skill", dir,
		            m.entry_path);
	if (r == 0)
		r = skill_read_entry(fd, toml, manifest, e);
	if (r == 0)
		r = skill_tar_tree(fd, &t, "", tar, e);
	sandbox_skill_manifest_deinit(&m);
	skill_tree_deinit(&t);
	return r;
}

int sandbox_skill_sealed_write(const char *out, const void *manifest, size_t manifest_len,
                               const void *age, size_t age_len, err **e)
{
	if (mkdir(out, 0755) < 0)
		return err_set(e, errno, "create %s", out);
	_cleanup_close_ int fd = open(out, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	int r = fd < 0 ? err_set(e, errno, "open %s", out) : 0;
	if (r == 0)
		r = write_file_at(fd, "skill.toml", manifest, manifest_len, 0644, e);
	if (r == 0)
		r = write_file_at(fd, SANDBOX_SKILL_SEALED_FILE, age, age_len, 0644, e);
	if (r < 0) {
		rm_rf_at(AT_FDCWD, out, NULL);
		return err_prefix(e, "%s", out);
	}
	return 0;
}

int sandbox_skill_sealed_read(const char *store, const sandbox_skill *s, buf *manifest, buf *age,
                              err **e)
{
	skill_tree t;
	_cleanup_close_ int fd = skill_store_open_tree(store, s, &t, e);
	if (fd < 0)
		return -1;
	_cleanup_free_ char *label = xasprintf("skill %s", s->manifest.name);
	int r = skill_sealed_check_tree(&t, label, e);
	if (r == 0 &&
	    (skill_read_entry(fd, skill_tree_find(&t, "skill.toml"), manifest, e) < 0 ||
	     skill_read_entry(fd, skill_tree_find(&t, SANDBOX_SKILL_SEALED_FILE), age, e) < 0))
		r = err_prefix(e, "skill %s", s->manifest.name);
	skill_tree_deinit(&t);
	return r;
}

/* ---- the plaintext: a ustar archive of the skill's tree ---- */

typedef struct unpack {
	const sandbox_skill_manifest *m;
	const uint8_t *manifest;
	size_t manifest_len;
	sandbox_payload *p; /* the entries, "<name>/<path>"; owned by the caller */
	size_t first;       /* p's entries of this skill start here */
	uint64_t bytes;
	bool toml_seen, entry_seen;
} unpack;

static const sandbox_skill_file *find(const unpack *u, const char *path)
{
	size_t nl = strlen(u->m->name);
	for (size_t i = u->first; i < u->p->n_files; i++) {
		const char *q = u->p->files[i].path;
		if (!strncmp(q, u->m->name, nl) && q[nl] == '/' && !strcmp(q + nl + 1, path))
			return &u->p->files[i];
	}
	return NULL;
}

/* The member's checks: a skill path, its caps, its directory before it, once. */
static int member_check(unpack *u, const char *path, size_t len, err **e)
{
	_cleanup_free_ char *shown = skill_shown_path(path);
	size_t depth = 1;
	for (const char *c = path; *c; c++)
		depth += *c == '/';
	if (!skill_path_valid(path) || depth > SANDBOX_SKILL_DEPTH_MAX)
		return err_set(e, 0, "%s: not a valid skill path", shown);
	if (u->p->n_files - u->first >= SANDBOX_SKILL_FILES_MAX + 1u ||
	    len > SANDBOX_SKILL_BYTES_MAX - u->bytes)
		return err_set(e, 0, "more than the caps of a skill (%d entries, %u bytes)",
		               SANDBOX_SKILL_FILES_MAX, SANDBOX_SKILL_BYTES_MAX);
	if (find(u, path))
		return err_set(e, 0, "%s: listed twice", shown);
	const char *slash = strrchr(path, '/');
	if (slash) {
		_cleanup_free_ char *parent = xstrndup(path, (size_t)(slash - path));
		const sandbox_skill_file *d = find(u, parent);
		if (!d || d->kind != 'd')
			return err_set(e, 0, "%s: its directory is not in the archive before it",
			               shown);
	}
	return 0;
}

static int on_member(const char *path, bool dir, bool exec, const uint8_t *data, size_t len,
                     void *arg, err **e)
{
	unpack *u = arg;
	if (member_check(u, path, len, e) < 0)
		return -1;
	if (!strcmp(path, "skill.toml")) {
		u->toml_seen = true;
		if (dir || len != u->manifest_len || memcmp(data, u->manifest, len))
			return err_set(e, 0,
			               "skill.toml: not the skill's public skill.toml (the sealed "
			               "archive must hold the same manifest, byte for byte)");
	}
	if (!strcmp(path, u->m->entry_path) && !dir)
		u->entry_seen = true;
	u->bytes += len;
	u->p->files = xreallocarray(u->p->files, u->p->n_files + 1, sizeof(*u->p->files));
	u->p->files[u->p->n_files++] = (sandbox_skill_file){
	    .kind = dir    ? 'd'
	            : exec ? 'x'
	                   : 'f',
	    .path = xasprintf("%s/%s", u->m->name, path),
	    .data = dir ? NULL : xmemdup(data, len),
	    .len = dir ? 0 : len,
	};
	return 0;
}

int sandbox_skill_sealed_unpack(const uint8_t *tar, size_t n, const void *manifest,
                                size_t manifest_len, const sandbox_skill_manifest *m,
                                sandbox_payload *p, err **e)
{
	sandbox_payload local = {0};
	sandbox_payload *dst = p ? p : &local;
	unpack u = {.m = m, .manifest = manifest, .manifest_len = manifest_len, .p = dst};
	u.first = dst->n_files;
	/* the root first: 's', a sealed skill's (the agent keeps its tracebacks free of source) */
	dst->files = xreallocarray(dst->files, dst->n_files + 1, sizeof(*dst->files));
	dst->files[dst->n_files++] = (sandbox_skill_file){.kind = 's', .path = xstrdup(m->name)};
	int r = skill_tar_parse(tar, n, on_member, &u, e);
	if (r == 0 && !u.toml_seen)
		r = err_set(e, 0, "skill.toml: missing from the sealed archive");
	else if (r == 0 && !u.entry_seen)
		r = err_set(e, 0, "skill.toml: entrypoint: %s is not a file of the sealed skill",
		            m->entry_path);
	if (r < 0) {
		for (size_t i = u.first; i < dst->n_files; i++) {
			free(dst->files[i].path);
			if (dst->files[i].data)
				OPENSSL_cleanse(dst->files[i].data, dst->files[i].len);
			free(dst->files[i].data);
		}
		dst->n_files = u.first;
		if (!dst->n_files) { /* as it was: no array */
			free(dst->files);
			dst->files = NULL;
		}
		sandbox_payload_deinit(&local);
		return err_prefix(e, "sealed skill %s", m->name);
	}
	dst->bytes += u.bytes;
	if (!p)
		sandbox_payload_deinit(&local);
	return 0;
}
