/* The cgroup backend interface (cgroup.h): detection, dispatch to the hierarchy's backend, and
 * the file helpers both backends share. */
#include "sandbox/cgroup.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/xalloc.h"

#define CGROUP_ROOT_DEFAULT   "/sys/fs/cgroup"
#define CGROUP_PARENT_DEFAULT "/aisp"

sandbox_cgroup_version sandbox_cgroup_detect(const char *root)
{
	struct statfs st;
	if (statfs(root, &st) == 0 && st.f_type == CGROUP2_SUPER_MAGIC)
		return SANDBOX_CGROUP_V2;
	return SANDBOX_CGROUP_V1;
}

/* The parent becomes part of every path: absolute, of non-empty components other than "." and
 * "..", no control bytes. */
static bool parent_valid(const char *p)
{
	if (p[0] != '/')
		return false;
	for (const char *c = p + 1;;) {
		size_t n = strcspn(c, "/");
		if (n == 0 || (n == 1 && c[0] == '.') || (n == 2 && !strncmp(c, "..", 2)))
			return false;
		for (size_t i = 0; i < n; i++)
			if ((unsigned char)c[i] < 0x20 || c[i] == 0x7f)
				return false;
		if (!c[n])
			return true;
		c += n + 1;
	}
}

int sandbox_cgroup_new(sandbox_cgroup **out, const sandbox_cgroup_opts *o, err **e)
{
	const char *parent = o->parent ? o->parent : CGROUP_PARENT_DEFAULT;
	if (!parent_valid(parent))
		return err_set(e, 0, "cgroup parent %s: not an absolute path of plain components",
		               parent);
	sandbox_cgroup *cg = xzalloc(sizeof(*cg));
	cg->root = xstrdup(o->root ? o->root : CGROUP_ROOT_DEFAULT);
	cg->parent = xstrdup(parent);
	cg->version =
	    o->version != SANDBOX_CGROUP_AUTO ? o->version : sandbox_cgroup_detect(cg->root);
	cg->ops =
	    cg->version == SANDBOX_CGROUP_V2 ? &sandbox_cgroup_v2_ops : &sandbox_cgroup_v1_ops;
	cg->has_peak = -1;
	cg->plumbing_procs = cg->ops->plumbing_setup(cg);
	*out = cg;
	return 0;
}

sandbox_cgroup *sandbox_cgroup_free(sandbox_cgroup *cg)
{
	if (!cg)
		return NULL;
	free(cg->root);
	free(cg->parent);
	free(cg->plumbing_procs);
	free(cg);
	return NULL;
}

sandbox_cgroup_version sandbox_cgroup_get_version(const sandbox_cgroup *cg)
{
	return cg->version;
}

const char *sandbox_cgroup_name(const sandbox_cgroup *cg)
{
	return cg->ops->name;
}

const char *sandbox_cgroup_plumbing_procs(const sandbox_cgroup *cg)
{
	return cg->plumbing_procs;
}

void sandbox_cgroup_config_for(const sandbox_cgroup *cg, const char *id, sandbox_cgroup_prio p,
                               sandbox_cgroup_config *out)
{
	*out = (sandbox_cgroup_config){.path = xasprintf("%s/%s", cg->parent, id)};
	cg->ops->config(p, out);
}

void sandbox_cgroup_config_deinit(sandbox_cgroup_config *c)
{
	free(c->path);
	c->path = NULL;
}

void sandbox_cgroup_set_prio(const sandbox_cgroup *cg, const char *id, sandbox_cgroup_prio p)
{
	cg->ops->set_prio(cg, id, p);
}

bool sandbox_cgroup_sample(sandbox_cgroup *cg, const char *id, uint64_t *peak_bytes)
{
	return cg->ops->sample(cg, id, peak_bytes);
}

void sandbox_cgroup_read(sandbox_cgroup *cg, const char *id, uint64_t sampled_peak,
                         sandbox_cgroup_usage *out)
{
	*out = (sandbox_cgroup_usage){0};
	cg->ops->read(cg, id, sampled_peak, out);
}

uint64_t sandbox_cgroup_cpu_ns(const sandbox_cgroup *cg, const char *id)
{
	return cg->ops->cpu(cg, id);
}

void sandbox_cgroup_remove(const sandbox_cgroup *cg, const char *id)
{
	cg->ops->remove(cg, id);
}

/* ---- file helpers ---- */

int sandbox_cgroup_read_file(const char *path, char *b, size_t n)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t r;
	while ((r = read(fd, b, n - 1)) < 0 && errno == EINTR)
		;
	if (r < 0)
		return -1;
	b[r] = 0;
	return (int)r;
}

uint64_t sandbox_cgroup_read_u64(const char *path)
{
	char b[64];
	if (sandbox_cgroup_read_file(path, b, sizeof(b)) < 0)
		return 0;
	return strtoull(b, NULL, 10);
}

uint64_t sandbox_cgroup_keyed(const char *text, const char *key)
{
	size_t kl = strlen(key);
	for (const char *line = text; *line;) {
		if (!strncmp(line, key, kl) && line[kl] == ' ')
			return strtoull(line + kl + 1, NULL, 10);
		const char *nl = strchr(line, '\n');
		if (!nl)
			break;
		line = nl + 1;
	}
	return 0;
}

uint64_t sandbox_cgroup_read_key(const char *path, const char *key)
{
	char b[1024]; /* the longest of these files (cpu.stat) is under 300 bytes */
	if (sandbox_cgroup_read_file(path, b, sizeof(b)) < 0)
		return 0;
	return sandbox_cgroup_keyed(b, key);
}

int sandbox_cgroup_write(const char *path, const char *v)
{
	_cleanup_close_ int fd = open(path, O_WRONLY | O_TRUNC | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -1;
	size_t n = strlen(v);
	return write(fd, v, n) == (ssize_t)n ? 0 : -1;
}
