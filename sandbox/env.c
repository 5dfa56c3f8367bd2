/* The fixed environment programs see, and the environment facts that go into the
 * environment digest (ATTESTATION.md, "Environment"). */
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/xalloc.h"
#include "sandbox/agent/frame.h"
#include "sandbox/sandbox.h"

const char *const sandbox_base_env[] = {
    "PATH=/usr/local/bin:/usr/bin:/bin",
    "HOME=/workspace",
    "LANG=C.UTF-8",
    "TZ=UTC",
    "PYTHONHASHSEED=0",
    "PYTHONDONTWRITEBYTECODE=1",
    "PYTHONUNBUFFERED=1",
    "TMPDIR=/tmp",
    "HOSTNAME=sandbox",
    NULL,
};

typedef struct kv_list {
	proto_env *v;
	size_t n, cap;
} kv_list;

static void kv_add(kv_list *l, const char *k, char *owned_value)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 32;
		l->v = xreallocarray(l->v, l->cap, sizeof(*l->v));
	}
	l->v[l->n].name = xstrdup(k);
	l->v[l->n].value = owned_value;
	l->n++;
}

static void kv_addi(kv_list *l, const char *k, int64_t v)
{
	kv_add(l, k, xasprintf("%lld", (long long)v));
}

static int kv_cmp(const void *a, const void *b)
{
	return strcmp(((const proto_env *)a)->name, ((const proto_env *)b)->name);
}

size_t sandbox_environment(const sandbox_spec *spec, const proto_task *t, const proto_limits *l,
                           proto_env **out)
{
	kv_list kv = {0};
	struct utsname u;
	uname(&u);
	kv_add(&kv, "arch", xstrdup(u.machine));
	kv_add(&kv, "agent.version", xstrdup(AGENT_VERSION));
	kv_add(&kv, "cwd", xstrdup("/workspace"));
	kv_add(&kv, "hostname", xstrdup("sandbox"));
	kv_add(&kv, "network", xstrdup("none"));
	kv_add(&kv, "uid", xstrdup("65534"));
	kv_add(&kv, "gid", xstrdup("65534"));
	kv_add(&kv, "runtime.name", xstrdup(sandbox_runtime_name(spec->rt)));
	kv_add(&kv, "runtime.version", xstrdup(sandbox_runtime_version(spec->rt)));
	kv_add(&kv, "runtime.flags", xstrdup(sandbox_runtime_flags(spec->rt)));
	for (size_t i = 0; i < PROTO_LIMIT_COUNT; i++) {
		const proto_limit_field *f = &proto_limit_fields[i];
		_cleanup_free_ char *k = xasprintf("limits.%s", f->field);
		kv_addi(&kv, k, proto_limit_get(l, f));
	}
	for (const char *const *e = sandbox_base_env; *e; e++) {
		const char *eq = strchr(*e, '=');
		char *k = xasprintf("env.%.*s", (int)(eq - *e), *e);
		kv_add(&kv, k, xstrdup(eq + 1));
		free(k);
	}
	for (size_t i = 0; t && i < t->n_env; i++) {
		char *k = xasprintf("env.%s", t->env[i].name);
		kv_add(&kv, k, xstrdup(t->env[i].value));
		free(k);
	}
	qsort(kv.v, kv.n, sizeof(*kv.v), kv_cmp);
	*out = kv.v;
	return kv.n;
}

sandbox_runtime_kind sandbox_runtime_kind_for(const char *name)
{
	if (!strcmp(name, "runsc"))
		return SANDBOX_RT_RUNSC;
	if (!strcmp(name, "runc"))
		return SANDBOX_RT_RUNC;
	return SANDBOX_RT_OCI;
}

char *sandbox_agent_default_path(void)
{
	const char *env = getenv("AISP_AGENT");
	if (env && *env)
		return xstrdup(env);
	char exe[4096];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = 0;
		char *slash = strrchr(exe, '/');
		if (slash) {
			*slash = 0;
			char *p = xasprintf("%s/../sandbox/agent/aisp-agent", exe);
			if (access(p, X_OK) == 0)
				return p;
			free(p);
		}
	}
	return xstrdup(AISP_LIBEXECDIR "/aisp/aisp-agent");
}
