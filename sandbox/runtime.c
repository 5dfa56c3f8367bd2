/* Runtime profiles: one driver for every OCI runtime command line (runsc, runc, crun, kata);
 * a profile only decides the global flags and what the bundle asks for. */
#include "sandbox/runtime.h"

#include <dirent.h>
#include <errno.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/spawn.h"
#include "common/util.h"
#include "common/xalloc.h"

sandbox_runtime *sandbox_runtime_free(sandbox_runtime *rt)
{
	if (!rt)
		return NULL;
	free(rt->name);
	free(rt->bin);
	free(rt->root);
	free(rt->version);
	free(rt->flags_text);
	for (size_t i = 0; i < rt->n_global; i++)
		free(rt->global[i]);
	free(rt->global);
	free(rt);
	return NULL;
}

static void add_global(sandbox_runtime *rt, char *owned)
{
	rt->global = xreallocarray(rt->global, rt->n_global + 1, sizeof(char *));
	rt->global[rt->n_global++] = owned;
}

int sandbox_runtime_new(sandbox_runtime **out, const sandbox_runtime_opts *o, const char *state_dir,
                        err **e)
{
	_cleanup_(sandbox_runtime_freep) sandbox_runtime *rt = xzalloc(sizeof(*rt));
	rt->name = xstrdup(o->name);
	rt->kind = o->kind;
	rt->bin = xstrdup(o->path ? o->path : o->name);
	rt->root = o->root ? xstrdup(o->root) : xasprintf("%s/%s", state_dir, o->name);
	const char *argv[] = {rt->bin, "--version", NULL};
	spawn_opts so = SPAWN_OPTS_INIT;
	so.argv = argv;
	so.timeout_ms = 10000;
	spawn_result r;
	if (spawn_run(&so, &r, e) < 0)
		return err_prefix(e, "runtime %s is not usable (is it installed?)", rt->name);
	if (r.status != 0) {
		_cleanup_free_ char *d = spawn_describe(&r);
		spawn_result_deinit(&r);
		return err_set(e, 0, "runtime %s: `%s --version` %s", rt->name, rt->bin, d);
	}
	char *nl = strchr(r.out, '\n');
	rt->version = nl ? xstrndup(r.out, (size_t)(nl - r.out)) : xstrdup(r.out);
	spawn_result_deinit(&r);

	if (mkdir_p(rt->root, 0700, e) < 0)
		return err_prefix(e, "runtime %s: state dir", rt->name);
	buf flags = BUF_INIT;
	if (rt->kind == SANDBOX_RT_RUNSC) {
		add_global(rt, xstrdup("--network=none"));
		add_global(rt, xasprintf("--platform=%s", o->platform ? o->platform : "ptrace"));
	}
	for (const char *const *f = o->extra_flags; f && *f; f++)
		add_global(rt, xstrdup(*f));
	for (size_t i = 0; i < rt->n_global; i++)
		buf_appendf(&flags, "%s%s", i ? " " : "", rt->global[i]);
	rt->flags_text = buf_steal(&flags, NULL);
	*out = steal_pointer(&rt);
	return 0;
}

const char *sandbox_runtime_name(const sandbox_runtime *rt)
{
	return rt->name;
}

const char *sandbox_runtime_version(const sandbox_runtime *rt)
{
	return rt->version;
}

const char *sandbox_runtime_flags(const sandbox_runtime *rt)
{
	return rt->flags_text;
}

sandbox_runtime_kind sandbox_runtime_get_kind(const sandbox_runtime *rt)
{
	return rt->kind;
}

const char **sandbox_runtime_argv(const sandbox_runtime *rt, const char *const *cmd)
{
	size_t n = 0;
	while (cmd[n])
		n++;
	const char **argv = xcalloc(n + rt->n_global + 4, sizeof(char *));
	size_t i = 0;
	argv[i++] = rt->bin;
	argv[i++] = "--root";
	argv[i++] = rt->root;
	for (size_t j = 0; j < rt->n_global; j++)
		argv[i++] = rt->global[j];
	for (size_t j = 0; j < n; j++)
		argv[i++] = cmd[j];
	argv[i] = NULL;
	return argv;
}

int sandbox_runtime_list(const sandbox_runtime *rt, const char *prefix, char ***ids, err **e)
{
	/* Every runtime keeps one entry per container in its --root directory. */
	DIR *d = opendir(rt->root);
	*ids = NULL;
	if (!d) {
		if (errno == ENOENT)
			return 0;
		return err_set(e, errno, "runtime %s: open %s", rt->name, rt->root);
	}
	size_t n = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.' || strncmp(de->d_name, prefix, strlen(prefix)))
			continue;
		/* runsc keeps "<id>_sandbox:<id>.state"-style files: take the id before '_'. */
		size_t len = strcspn(de->d_name, "_");
		char *id = xstrndup(de->d_name, len);
		bool dup = false;
		for (size_t i = 0; i < n; i++)
			dup |= !strcmp((*ids)[i], id);
		if (dup) {
			free(id);
			continue;
		}
		*ids = xreallocarray(*ids, n + 2, sizeof(char *));
		(*ids)[n++] = id;
		(*ids)[n] = NULL;
	}
	closedir(d);
	return (int)n;
}
