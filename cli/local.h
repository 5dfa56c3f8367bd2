/* Running one task in a local sandbox without Redis (aisp run, aisp verify --replay), and the
 * execution digest of a local run, computed exactly as the node computes it. */
#pragma once

#include "attest/attest.h"
#include "common/err.h"
#include "proto/proto.h"
#include "sandbox/sandbox.h"

struct event_base;

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

/* What a local run is made of: its loop, runtime, image, sandbox context and spec. */
typedef struct cli_local {
	struct event_base *base;
	sandbox_runtime *rt;
	sandbox_ctx *ctx;
	sandbox_image img;
	sandbox_spec spec;
	const char *state;
	char *state_own; /* the state dir made for this run (removed when left empty) */
} cli_local;

/* Sets up a local run of t (resolving the image and the runtime, creating the context) and fills
 * r's image digest, runtime version and environment. Returns 0 or -1 with *e; in both cases
 * cli_local_close() releases it. */
int cli_local_open(cli_local *l, const cli_local_opts *o, const proto_task *t,
                   const proto_limits *lim, cli_local_result *r, err **e);
void cli_local_close(cli_local *l);

/* A chain replayed locally (aisp verify --replay; attest/CHAINS.md, "Replay"): its script steps
 * re-executed one after another in one fresh sandbox, each fed the output of the step before;
 * its llm steps taken from recorded (the result's records, which the verifier has checked
 * against the statement). r->out.chain is the replayed run (stopping where a step fails) and
 * r->digests its digests. Returns -1 with *e only when the node side failed. */
int cli_local_chain(const cli_local_opts *o, const proto_task *t, const proto_limits *lim,
                    const proto_chain_run *recorded, cli_local_result *r, err **e);
