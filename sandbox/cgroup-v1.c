/* The cgroup v1 backend (cgroup.h): one hierarchy per controller, so a sandbox's cgroup is a
 * directory in each, <root>/<controller><parent>/<id>, and the plumbing cgroup lives in the
 * cpu hierarchy only. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/xalloc.h"
#include "sandbox/cgroup.h"

static const int64_t shares[] = {[SANDBOX_CGROUP_WARMING] = 16, [SANDBOX_CGROUP_RUNNING] = 1024};

/* Every controller the runtimes create a directory in (runc, runsc and crun differ). */
static const char *const controllers[] = {"memory",     "cpu",     "cpuacct", "pids",    "cpuset",
                                          "devices",    "freezer", "blkio",   "net_cls", "net_prio",
                                          "perf_event", "hugetlb", "systemd", NULL};

/* <root>/<ctrl><parent>/<id>/<file>; owned */
static char *path_of(const sandbox_cgroup *cg, const char *ctrl, const char *id, const char *file)
{
	return xasprintf("%s/%s%s/%s/%s", cg->root, ctrl, cg->parent, id, file);
}

static char *v1_plumbing_setup(const sandbox_cgroup *cg)
{
	_cleanup_free_ char *dir = xasprintf("%s/cpu/aisp-plumbing", cg->root);
	if (mkdir(dir, 0755) == 0 || errno == EEXIST) {
		_cleanup_free_ char *f = xasprintf("%s/cpu.shares", dir);
		char v[24];
		snprintf(v, sizeof(v), "%lld", (long long)shares[SANDBOX_CGROUP_WARMING]);
		sandbox_cgroup_write(f, v);
	}
	return xasprintf("%s/cgroup.procs", dir);
}

static void v1_config(sandbox_cgroup_prio p, sandbox_cgroup_config *out)
{
	out->cpu_shares = shares[p];
}

static void v1_set_prio(const sandbox_cgroup *cg, const char *id, sandbox_cgroup_prio p)
{
	_cleanup_free_ char *f = path_of(cg, "cpu", id, "cpu.shares");
	char v[24];
	snprintf(v, sizeof(v), "%lld", (long long)shares[p]);
	sandbox_cgroup_write(f, v);
}

/* memory.max_usage_in_bytes records the peak: nothing to sample. */
static bool v1_sample(sandbox_cgroup *cg, const char *id, uint64_t *peak_bytes)
{
	return false;
}

static uint64_t v1_cpu(const sandbox_cgroup *cg, const char *id)
{
	_cleanup_free_ char *cpu = path_of(cg, "cpuacct", id, "cpuacct.usage");
	return sandbox_cgroup_read_u64(cpu);
}

static void v1_read(sandbox_cgroup *cg, const char *id, uint64_t sampled_peak,
                    sandbox_cgroup_usage *out)
{
	_cleanup_free_ char *peak = path_of(cg, "memory", id, "memory.max_usage_in_bytes");
	_cleanup_free_ char *oom = path_of(cg, "memory", id, "memory.oom_control");
	_cleanup_free_ char *pids = path_of(cg, "pids", id, "pids.events");
	out->cpu_ns = v1_cpu(cg, id);
	out->memory_peak_bytes = sandbox_cgroup_read_u64(peak);
	out->oom_kills = sandbox_cgroup_read_key(oom, "oom_kill");
	out->pids_max_hits = sandbox_cgroup_read_key(pids, "max");
}

static void v1_remove(const sandbox_cgroup *cg, const char *id)
{
	for (const char *const *c = controllers; *c; c++) {
		_cleanup_free_ char *dir = xasprintf("%s/%s%s/%s", cg->root, *c, cg->parent, id);
		rmdir(dir);
	}
}

const sandbox_cgroup_ops sandbox_cgroup_v1_ops = {
    .name = "v1",
    .plumbing_setup = v1_plumbing_setup,
    .config = v1_config,
    .set_prio = v1_set_prio,
    .sample = v1_sample,
    .read = v1_read,
    .cpu = v1_cpu,
    .remove = v1_remove,
};
