/* The cgroup v2 backend (cgroup.h): the unified hierarchy, where a sandbox's cgroup is one
 * directory, <root><parent>/<id>, holding every controller's files.
 *
 * config.json: linux.cgroupsPath is "<parent>/<id>", the same absolute form as on v1 (runc's
 * and runsc's cgroupfs drivers both place it below the unified mount, and both enable the
 * controllers in every ancestor's cgroup.subtree_control). The priority goes in twice:
 * cpu.shares, which every runtime converts to a weight (runc 1.1 and runsc: 16 -> 1,
 * 1024 -> 39), and linux.resources.unified["cpu.weight"], which runc, crun and recent runsc
 * write as is, after the converted value. unified is v2 only: runc refuses it on v1.
 *
 * Memory peak: memory.peak exists from Linux 5.19; before that the host samples
 * memory.current while a task runs (sandbox_cgroup_sample) and keeps the highest value. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/xalloc.h"
#include "sandbox/cgroup.h"

static const int64_t weight[] = {[SANDBOX_CGROUP_WARMING] = 1, [SANDBOX_CGROUP_RUNNING] = 100};
/* What runtimes that ignore unified convert to a weight: the v1 values. */
static const int64_t shares[] = {[SANDBOX_CGROUP_WARMING] = 16, [SANDBOX_CGROUP_RUNNING] = 1024};

/* <root><parent>/<id>/<file>; owned */
static char *path_of(const sandbox_cgroup *cg, const char *id, const char *file)
{
	return xasprintf("%s%s/%s/%s", cg->root, cg->parent, id, file);
}

static bool has_word(const char *text, const char *word)
{
	size_t n = strlen(word);
	for (const char *p = text; (p = strstr(p, word)); p += n)
		if ((p == text || p[-1] == ' ' || p[-1] == '\n') &&
		    (p[n] == 0 || p[n] == ' ' || p[n] == '\n'))
			return true;
	return false;
}

static void write_weight(const char *file, sandbox_cgroup_prio p)
{
	char v[24];
	snprintf(v, sizeof(v), "%lld", (long long)weight[p]);
	sandbox_cgroup_write(file, v);
}

/* cpu.weight of a child of the root exists only with "cpu" in the root's subtree_control. */
static char *v2_plumbing_setup(const sandbox_cgroup *cg)
{
	_cleanup_free_ char *ctl = xasprintf("%s/cgroup.subtree_control", cg->root);
	char b[256];
	if (sandbox_cgroup_read_file(ctl, b, sizeof(b)) >= 0 && !has_word(b, "cpu"))
		sandbox_cgroup_write(ctl, "+cpu");
	_cleanup_free_ char *dir = xasprintf("%s/aisp-plumbing", cg->root);
	if (mkdir(dir, 0755) == 0 || errno == EEXIST) {
		_cleanup_free_ char *f = xasprintf("%s/cpu.weight", dir);
		write_weight(f, SANDBOX_CGROUP_WARMING);
	}
	return xasprintf("%s/cgroup.procs", dir);
}

static void v2_config(sandbox_cgroup_prio p, sandbox_cgroup_config *out)
{
	out->cpu_shares = shares[p];
	out->cpu_weight = weight[p];
}

static void v2_set_prio(const sandbox_cgroup *cg, const char *id, sandbox_cgroup_prio p)
{
	_cleanup_free_ char *f = path_of(cg, id, "cpu.weight");
	write_weight(f, p);
}

/* Learns, from the first sandbox cgroup seen, whether the kernel has memory.peak. */
static void probe_peak(sandbox_cgroup *cg, const char *id)
{
	if (cg->has_peak >= 0)
		return;
	_cleanup_free_ char *dir = xasprintf("%s%s/%s", cg->root, cg->parent, id);
	_cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0)
		return; /* no cgroup yet: ask again next time */
	cg->has_peak = faccessat(dfd, "memory.peak", F_OK, 0) == 0;
}

static bool v2_sample(sandbox_cgroup *cg, const char *id, uint64_t *peak_bytes)
{
	probe_peak(cg, id);
	if (cg->has_peak == 1)
		return false;
	_cleanup_free_ char *f = path_of(cg, id, "memory.current");
	uint64_t now = sandbox_cgroup_read_u64(f);
	if (now > *peak_bytes)
		*peak_bytes = now;
	return true;
}

static uint64_t memory_peak(sandbox_cgroup *cg, const char *id, uint64_t sampled_peak)
{
	probe_peak(cg, id);
	_cleanup_free_ char *f =
	    path_of(cg, id, cg->has_peak == 1 ? "memory.peak" : "memory.current");
	uint64_t v = sandbox_cgroup_read_u64(f);
	return cg->has_peak == 1 || v > sampled_peak ? v : sampled_peak;
}

static uint64_t v2_cpu(const sandbox_cgroup *cg, const char *id)
{
	_cleanup_free_ char *cpu = path_of(cg, id, "cpu.stat");
	return sandbox_cgroup_read_key(cpu, "usage_usec") * 1000;
}

static void v2_read(sandbox_cgroup *cg, const char *id, uint64_t sampled_peak,
                    sandbox_cgroup_usage *out)
{
	_cleanup_free_ char *events = path_of(cg, id, "memory.events");
	_cleanup_free_ char *pids = path_of(cg, id, "pids.events");
	out->cpu_ns = v2_cpu(cg, id);
	out->memory_peak_bytes = memory_peak(cg, id, sampled_peak);
	out->oom_kills = sandbox_cgroup_read_key(events, "oom_kill");
	out->pids_max_hits = sandbox_cgroup_read_key(pids, "max");
}

static void v2_remove(const sandbox_cgroup *cg, const char *id)
{
	_cleanup_free_ char *dir = xasprintf("%s%s/%s", cg->root, cg->parent, id);
	rmdir(dir);
}

const sandbox_cgroup_ops sandbox_cgroup_v2_ops = {
    .name = "v2",
    .plumbing_setup = v2_plumbing_setup,
    .config = v2_config,
    .set_prio = v2_set_prio,
    .sample = v2_sample,
    .read = v2_read,
    .cpu = v2_cpu,
    .remove = v2_remove,
};
