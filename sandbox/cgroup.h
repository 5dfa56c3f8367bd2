/* cgroup backends (internal to sandbox/). The runtime creates each sandbox's cgroup from
 * config.json's cgroupsPath; the host only reads its usage, raises its CPU priority when it is
 * ready, and removes what the runtime left. One backend per hierarchy, one file each:
 *
 *   cgroup-v1.c  a hierarchy per controller: <root>/<controller><parent>/<id>
 *                cpuacct.usage, memory.max_usage_in_bytes, memory.oom_control (oom_kill),
 *                pids.events (max), cpu.shares
 *   cgroup-v2.c  the unified hierarchy: <root><parent>/<id>
 *                cpu.stat (usage_usec), memory.peak (kernel >= 5.19; else memory.current,
 *                sampled), memory.events (oom_kill), pids.events (max), cpu.weight
 *
 * The hierarchy is detected once, when the context is created: statfs(<root>) reporting
 * CGROUP2_SUPER_MAGIC means unified (v2); anything else (a tmpfs holding one mount per
 * controller, with or without an empty v2 hierarchy at <root>/unified: "hybrid") means v1.
 * The root is a parameter so that tests run both backends against fixture trees laid out like
 * the kernel's (tests/unit/fixtures/cgroup-v*).
 *
 * Runtime commands that are not on a task's path (`run` for a refill, `delete`) run in a
 * "plumbing" cgroup of low CPU priority: <root>/cpu/aisp-plumbing on v1, <root>/aisp-plumbing
 * on v2.
 *
 * Every operation is best effort: a counter that cannot be read reads 0, a priority that cannot
 * be written leaves the runtime's. A cgroup never decides whether a sandbox works. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

typedef enum sandbox_cgroup_version {
	SANDBOX_CGROUP_AUTO = 0, /* detect from <root> */
	SANDBOX_CGROUP_V1,
	SANDBOX_CGROUP_V2,
} sandbox_cgroup_version;

/* CPU priority. A sandbox warming up (runtime start, interpreter start-up) gets a small share
 * so that it never slows a task that is running, and the full share once its agent is READY;
 * runtime plumbing stays at the warming share. v1: cpu.shares 16 / 1024 (1024 is the kernel's
 * default); v2: cpu.weight 1 / 100 (100 is the default). */
typedef enum sandbox_cgroup_prio {
	SANDBOX_CGROUP_WARMING = 0,
	SANDBOX_CGROUP_RUNNING,
} sandbox_cgroup_prio;

/* A sandbox's counters since its cgroup was created; what cannot be read is 0. */
typedef struct sandbox_cgroup_usage {
	uint64_t cpu_ns;            /* CPU time of every process in it */
	uint64_t memory_peak_bytes; /* highest memory use */
	uint64_t oom_kills;         /* processes the OOM killer ended */
	uint64_t pids_max_hits;     /* forks refused by the pids limit */
} sandbox_cgroup_usage;

/* The cgroup part of a sandbox's config.json. */
typedef struct sandbox_cgroup_config {
	char *path;         /* linux.cgroupsPath: "<parent>/<id>"; owned */
	int64_t cpu_shares; /* linux.resources.cpu.shares (v2 runtimes convert it to a weight) */
	int64_t cpu_weight; /* v2 only, else 0: linux.resources.unified["cpu.weight"], exact */
} sandbox_cgroup_config;

typedef struct sandbox_cgroup_opts {
	const char *root;               /* default "/sys/fs/cgroup" */
	const char *parent;             /* default "/aisp"; starts with '/' */
	sandbox_cgroup_version version; /* AUTO: detect */
} sandbox_cgroup_opts;

typedef struct sandbox_cgroup sandbox_cgroup;

/* What statfs says root is (V1 or V2; never AUTO). */
sandbox_cgroup_version sandbox_cgroup_detect(const char *root);

/* Picks the backend (detecting it when asked) and prepares the plumbing cgroup (best effort).
 * Returns 0, or -1 with *e when opts are invalid. */
int sandbox_cgroup_new(sandbox_cgroup **out, const sandbox_cgroup_opts *o, err **e);
sandbox_cgroup *sandbox_cgroup_free(sandbox_cgroup *cg);

sandbox_cgroup_version sandbox_cgroup_get_version(const sandbox_cgroup *cg);
/* "v1" or "v2". */
const char *sandbox_cgroup_name(const sandbox_cgroup *cg);
/* The plumbing cgroup's cgroup.procs, for spawn_opts.cgroup_procs. Borrowed. */
const char *sandbox_cgroup_plumbing_procs(const sandbox_cgroup *cg);

/* Fills *out for sandbox id starting at priority p (release with sandbox_cgroup_config_deinit). */
void sandbox_cgroup_config_for(const sandbox_cgroup *cg, const char *id, sandbox_cgroup_prio p,
                               sandbox_cgroup_config *out);
void sandbox_cgroup_config_deinit(sandbox_cgroup_config *c);

/* Sets the CPU priority of sandbox id's cgroup. */
void sandbox_cgroup_set_prio(const sandbox_cgroup *cg, const char *id, sandbox_cgroup_prio p);
/* Samples what the hierarchy does not record itself (v2 without memory.peak: memory.current)
 * into *peak_bytes, which the caller keeps per sandbox, starting at 0. Returns true while
 * sampling is useful, false when the hierarchy keeps the peak itself: the caller may stop. */
bool sandbox_cgroup_sample(sandbox_cgroup *cg, const char *id, uint64_t *peak_bytes);
/* Reads sandbox id's counters; sampled_peak is what sandbox_cgroup_sample() gathered. */
void sandbox_cgroup_read(sandbox_cgroup *cg, const char *id, uint64_t sampled_peak,
                         sandbox_cgroup_usage *out);
/* Only the CPU time of sandbox id's cgroup (one file read: the run's hot path). */
uint64_t sandbox_cgroup_cpu_ns(const sandbox_cgroup *cg, const char *id);
/* Removes sandbox id's cgroup (every controller's on v1); missing is fine. */
void sandbox_cgroup_remove(const sandbox_cgroup *cg, const char *id);

/* ---- for the backends (cgroup-v1.c, cgroup-v2.c) ---- */

typedef struct sandbox_cgroup_ops {
	const char *name;
	/* the plumbing cgroup's directory below root, and its cgroup.procs path (owned) */
	char *(*plumbing_setup)(const sandbox_cgroup *cg);
	void (*config)(sandbox_cgroup_prio p, sandbox_cgroup_config *out);
	void (*set_prio)(const sandbox_cgroup *cg, const char *id, sandbox_cgroup_prio p);
	bool (*sample)(sandbox_cgroup *cg, const char *id, uint64_t *peak_bytes);
	void (*read)(sandbox_cgroup *cg, const char *id, uint64_t sampled_peak,
	             sandbox_cgroup_usage *out);
	uint64_t (*cpu)(const sandbox_cgroup *cg, const char *id);
	void (*remove)(const sandbox_cgroup *cg, const char *id);
} sandbox_cgroup_ops;

struct sandbox_cgroup {
	const sandbox_cgroup_ops *ops;
	sandbox_cgroup_version version;
	char *root;
	char *parent;
	char *plumbing_procs;
	int has_peak; /* v2: memory.peak exists (1), does not (0), not known yet (-1) */
};

extern const sandbox_cgroup_ops sandbox_cgroup_v1_ops;
extern const sandbox_cgroup_ops sandbox_cgroup_v2_ops;

/* Reads a cgroup file (never through a link) into b (n bytes, NUL-terminated). Returns the
 * length, or -1 with errno. */
int sandbox_cgroup_read_file(const char *path, char *b, size_t n);
/* The leading decimal number of path's contents; 0 when unreadable. */
uint64_t sandbox_cgroup_read_u64(const char *path);
/* The value of key in a flat-keyed file ("key value" lines: cpu.stat, memory.events,
 * pids.events, memory.oom_control); 0 when the file or the key is missing. */
uint64_t sandbox_cgroup_read_key(const char *path, const char *key);
/* Writes v to path, replacing its contents. Returns 0, or -1 with errno. */
int sandbox_cgroup_write(const char *path, const char *v);
/* The value of key in a flat-keyed text (exposed for the tests); 0 when missing. */
uint64_t sandbox_cgroup_keyed(const char *text, const char *key);
