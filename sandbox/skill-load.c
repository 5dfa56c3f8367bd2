/* A stored skill's files for a task's sandbox (proto/PROTOCOL.md, "Skills"): the tree is walked
 * with the store's rules and hashed again on every load, so a tree that changed in the store
 * since it was added is refused, never run; its entries and contents become the SKILL_FILE
 * frames the agent writes below /.aisp/skills/<name>/. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "sandbox/skill-internal.h"

static sandbox_skill_file *add(sandbox_payload *p, uint8_t kind, char *path)
{
	p->files = xreallocarray(p->files, p->n_files + 1, sizeof(*p->files));
	sandbox_skill_file *f = &p->files[p->n_files++];
	*f = (sandbox_skill_file){.kind = kind, .path = path};
	return f;
}

/* The entries of t (sorted by path, so parents first) with their contents from dirfd. */
static int add_tree(sandbox_payload *p, const char *name, int dirfd, const skill_tree *t, err **e)
{
	add(p, 'd', xstrdup(name));
	for (size_t i = 0; i < t->n; i++) {
		const skill_entry *en = &t->v[i];
		sandbox_skill_file *f = add(p,
		                            en->dir    ? 'd'
		                            : en->exec ? 'x'
		                                       : 'f',
		                            xasprintf("%s/%s", name, en->path));
		if (en->dir)
			continue;
		buf b = BUF_INIT;
		if (read_file_at(dirfd, en->path, SANDBOX_SKILL_BYTES_MAX, &b, e) < 0)
			return err_prefix(e, "skill %s", name);
		if (b.len != en->size) {
			buf_deinit(&b);
			return err_set(e, 0, "skill %s: %s changed while it was read", name,
			               en->path);
		}
		p->bytes += b.len;
		f->len = b.len;
		f->data = (uint8_t *)buf_steal(&b, NULL);
	}
	return 0;
}

int sandbox_skill_load(const char *store, const sandbox_skill *s, sandbox_payload *p, err **e)
{
	skill_tree t;
	_cleanup_close_ int fd = skill_store_open_tree(store, s, &t, e);
	if (fd < 0)
		return -1;
	int r = add_tree(p, s->manifest.name, fd, &t, e);
	skill_tree_deinit(&t);
	return r;
}
