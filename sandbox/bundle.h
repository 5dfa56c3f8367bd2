/* OCI bundle generation (internal to sandbox/). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/util.h"
#include "sandbox/sandbox.h"

typedef struct sandbox_bundle_spec {
	sandbox_runtime_kind kind;
	const char *rootfs;
	const char *agent_dir;    /* bind-mounted read-only at /.aisp */
	const char *const *args;  /* the agent's argv */
	const char *const *env;   /* NAME=VALUE, NULL-terminated */
	const char *cgroups_path; /* linux.cgroupsPath (sandbox_cgroup_config_for) */
	int64_t cpus_milli, memory_bytes, pids, nofile, workspace_bytes;
	int64_t cpu_shares;  /* 0: the runtime's default */
	int64_t cpu_weight;  /* cgroup v2 only, else 0: linux.resources.unified["cpu.weight"] */
	bool userns;         /* runc-like runtimes: a user namespace mapping 0..65535 */
	int64_t userns_base; /* host id that container id 0 maps to */
} sandbox_bundle_spec;

/* Appends the config.json for b to out. */
void sandbox_bundle_config_json(const sandbox_bundle_spec *b, buf *out);
/* Writes dirfd/config.json atomically. */
int sandbox_bundle_write(int dirfd, const sandbox_bundle_spec *b, err **e);
