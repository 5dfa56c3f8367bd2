/* Startup self-checks, each failing with a message that tells the operator what to do:
 * directories, cgroups, the node key, runtimes, images, the agent; then the sandbox context and
 * the pool with its warm targets. Redis is not checked here: it is waited for. */
#include "daemon/node.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xalloc.h"

static int check_dir(const char *what, const char *path, mode_t mode, int *dirfd_out, err **e)
{
	if (mkdir_p(path, mode, e) < 0)
		return err_prefix(e, "%s %s is not usable", what, path);
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return err_set(e, errno, "%s %s: open", what, path);
	_cleanup_free_ char *probe = xasprintf(".probe.%d", (int)getpid());
	if (write_file_at(fd, probe, "x", 1, 0600, e) < 0) {
		close(fd);
		return err_prefix(e, "%s %s is not writable", what, path);
	}
	unlinkat(fd, probe, 0);
	if (dirfd_out)
		*dirfd_out = fd;
	else
		close(fd);
	return 0;
}

static int check_cgroup(err **e)
{
	const char *base = access("/sys/fs/cgroup/cgroup.controllers", F_OK) == 0
	                       ? "/sys/fs/cgroup"
	                       : "/sys/fs/cgroup/memory";
	_cleanup_free_ char *probe = xasprintf("%s/aisp-probe-%d", base, (int)getpid());
	if (mkdir(probe, 0755) < 0 && errno != EEXIST)
		return err_set(e, errno,
		               "cgroup not usable: mkdir %s (aispd must run as root with a "
		               "writable cgroup hierarchy)",
		               probe);
	if (rmdir(probe) < 0)
		return err_set(e, errno, "cgroup not usable: rmdir %s", probe);
	return 0;
}

static int check_key(node *n, err **e)
{
	const config *c = n->cfg;
	if (access(c->key_path, F_OK) < 0) {
		_cleanup_free_ char *copy = xstrdup(c->key_path);
		const char *dir = dirname(copy);
		if (!c->create_key)
			return err_set(e, 0,
			               "no node key at %s: run `aisp keygen --out %s` or set "
			               "create_key = true",
			               c->key_path, dir);
		_cleanup_free_ char *base = xstrdup(c->key_path);
		if (strcmp(basename(base), "private.pem"))
			return err_set(e, 0, "create_key: key must be DIR/private.pem, not %s",
			               c->key_path);
		if (mkdir_p(dir, 0700, e) < 0)
			return err_prefix(e, "create_key");
		attest_key *k = NULL;
		if (attest_key_generate(&k, e) < 0 || attest_key_write_pair(k, dir, false, e) < 0) {
			attest_key_free(k);
			return err_prefix(e, "create_key %s", dir);
		}
		log_info("created a node key in %s (key_id %s)", dir, attest_key_id(k));
		attest_key_free(k);
	}
	if (attest_key_load_private(&n->key, c->key_path, e) < 0)
		return err_prefix(e, "node key");
	n->pubkey_pem = attest_key_public_pem(n->key);
	if (attest_chain_load(n->state_dirfd, "chain.json", &n->chain, e) < 0)
		return err_prefix(e, "chain state in %s", c->state_dir);
	return 0;
}

static sandbox_runtime_kind kind_of(const config_runtime *r, const char *name)
{
	const char *k = r && r->kind ? r->kind : name;
	if (!strcmp(k, "runsc"))
		return SANDBOX_RT_RUNSC;
	if (!strcmp(k, "runc"))
		return SANDBOX_RT_RUNC;
	return SANDBOX_RT_OCI;
}

static int check_runtimes(node *n, err **e)
{
	const config *c = n->cfg;
	n->rts = xcalloc(c->n_enabled, sizeof(*n->rts));
	for (size_t i = 0; i < c->n_enabled; i++) {
		const char *name = c->enabled[i];
		const config_runtime *r = config_find_runtime(c, name);
		sandbox_runtime_opts o = {
		    .name = name,
		    .path = r ? r->path : NULL,
		    .kind = kind_of(r, name),
		    .platform = r ? r->platform : NULL,
		    .extra_flags = r ? (const char *const *)r->flags : NULL,
		};
		if (sandbox_runtime_new(&n->rts[n->n_rts], &o, c->run_dir, e) < 0)
			return err_prefix(e, "runtime %s", name);
		log_info("runtime %s: %s", name, sandbox_runtime_version(n->rts[n->n_rts]));
		n->n_rts++;
	}
	n->runtimes_csv = config_enabled_list(c, ",");
	return 0;
}

/* Resolves every warm target first (nothing is created while a later one may still fail),
 * then, unless dry, creates the sandbox context and the pool and declares the targets. */
static int check_pool(node *n, bool dry, err **e)
{
	const config *c = n->cfg;
	_cleanup_free_ sandbox_spec *specs = xcalloc(c->n_targets + 1, sizeof(*specs));
	for (size_t i = 0; i < c->n_targets; i++) {
		const config_pool_target *pt = &c->targets[i];
		sandbox_spec *spec = &specs[i];
		proto_lang lang;
		spec->rt = node_runtime(n, pt->runtime);
		if (!spec->rt)
			return err_set(e, 0, "[pool] %s/%s/%s: runtime not enabled", pt->runtime,
			               pt->image, pt->lang);
		if (proto_lang_parse(pt->lang, &lang) < 0)
			return err_set(e, 0, "[pool] %s/%s/%s: unknown language \"%s\"",
			               pt->runtime, pt->image, pt->lang, pt->lang);
		const sandbox_image *img = node_image(n, pt->image, e);
		if (!img)
			return err_prefix(e, "[pool] %s/%s/%s: image", pt->runtime, pt->image,
			                  pt->lang);
		spec->rootfs = img->rootfs;
		spec->image_digest = img->digest;
		spec->lang = lang;
		sandbox_spec_set_limits(spec, &c->limits_default);
		for (size_t k = 0; k < i; k++)
			if (specs[k].rt == spec->rt && specs[k].lang == spec->lang &&
			    !strcmp(specs[k].image_digest, spec->image_digest))
				return err_set(e, 0, "[pool] %s/%s/%s: declared twice", pt->runtime,
				               pt->image, pt->lang);
	}
	if (dry)
		return 0;
	_cleanup_free_ char *prefix = xasprintf("aisp-%s-", c->node_id);
	sandbox_ctx_opts so = {
	    .state_dir = c->run_dir,
	    .agent_path = c->agent_path,
	    .id_prefix = prefix,
	};
	if (sandbox_ctx_new(&n->sbx, n->base, &so, e) < 0)
		return err_prefix(e, "sandbox context");
	pool_opts po = {
	    .max_live = (size_t)c->pool_max_live,
	    .max_creating = (size_t)c->pool_max_creating,
	    .max_age_ms = c->pool_max_age_s * 1000,
	};
	if (pool_new(&n->pool, n->base, &pool_sandbox_ops, n->sbx, &po, e) < 0)
		return err_prefix(e, "pool");
	for (size_t i = 0; i < c->n_targets; i++) {
		const config_pool_target *pt = &c->targets[i];
		if (pool_add(n->pool, &specs[i], (size_t)pt->warm, e) < 0)
			return err_prefix(e, "[pool] %s/%s/%s", pt->runtime, pt->image, pt->lang);
	}
	return 0;
}

int checks_run(node *n, bool dry, err **e)
{
	const config *c = n->cfg;
	if (check_dir("state dir", c->state_dir, 0700, &n->state_dirfd, e) < 0)
		return -1;
	if (check_dir("run dir", c->run_dir, 0711, NULL, e) < 0)
		return -1;
	if (check_cgroup(e) < 0)
		return -1;
	if (check_key(n, e) < 0)
		return -1;
	if (access(c->agent_path, X_OK) < 0)
		return err_set(e, errno, "agent %s is missing ([node] agent)", c->agent_path);
	if (check_runtimes(n, e) < 0)
		return -1;
	if (!node_image(n, c->image_default, e))
		return err_prefix(e, "image %s (build it with `aisp image build %s`)",
		                  c->image_default, c->image_default);
	node_list_images(n);
	return check_pool(n, dry, e);
}
