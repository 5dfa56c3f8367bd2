/* Running one task in a local sandbox without Redis (aisp run, aisp verify --replay), and the
 * execution digest of a local run, computed exactly as the node computes it. */
#pragma once

#include "attest/attest.h"
#include "common/err.h"
#include "proto/proto.h"

typedef struct cli_local_opts {
	const char *runtime;   /* runsc, runc, crun... */
	const char *image;     /* name or sha256 digest */
	const char *store;     /* image store */
	const char *state_dir; /* NULL: /run/aisp/run-<pid>, removed afterwards when empty */
} cli_local_opts;

/* What one local run produced; everything owned. */
typedef struct cli_local_result {
	proto_output out;
	proto_usage usage;
	char *runtime_version;
	char image_digest[ATTEST_DIGEST_LEN];
	proto_env *env; /* the environment facts (sandbox_environment) */
	size_t n_env;
	attest_digests digests;
} cli_local_result;

/* Runs t with the resolved limits in a fresh sandbox and fills r (also on a program failure:
 * the status is in r->out). Returns -1 with *e only when the node side failed (runtime
 * missing, image missing, sandbox failed to start). */
int cli_local_run(const cli_local_opts *o, const proto_task *t, const proto_limits *lim,
                  cli_local_result *r, err **e);
void cli_local_result_deinit(cli_local_result *r);
