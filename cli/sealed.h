/* The options that seal and sign a task, shared by `aisp submit` and `aisp task seal|sign`
 * (proto/PROTOCOL.md, "Sealed and signed tasks"): which parts go to the node as age ciphertext, where the result goes
 * (reply_to), the trust level asked for, the signer and its passport. */
#pragma once

#include <stdbool.h>

#include "cli/cli.h"
#include "common/buf.h"
#include "common/err.h"
#include "proto/proto.h"

typedef struct cli_seal_opts {
	cli_recipients to;    /* --seal-to: the node's age1... (or its age.pub file) */
	const char *to_node;  /* --seal-to node:ID: the recipient ID publishes in the registry */
	const char *redis;    /* where to read it (NULL: $AISP_REDIS, the default) */
	const char *reply_to; /* --reply-to: the buyer's age1... (or a file holding it) */
	const char *parts;    /* --seal-parts code,stdin,args,files (default: each one given) */
	const char *sign_key; /* --sign-key: the submitter's Ed25519 private key (PEM) */
	const char *passport; /* --passport: a passport file, presented by the signer */
	const char *level;    /* --trust-level L0|L1|L2 */
	bool any;             /* some option of these was given */
} cli_seal_opts;

extern const char cli_seal_usage[];

/* A public key given on the command line: a PEM public key file, a key directory
 * (DIR/public.pem, from aisp keygen), or the base64 of its 32 raw bytes; into raw and id.
 * Returns 0, or -1 with *e. */
int cli_public_key(const char *spec, uint8_t raw[ATTEST_RAW_KEY_LEN], char id[ATTEST_DIGEST_LEN],
                   err **e);
/* A key id: given as one ("sha256:<hex>"), or as a public key (cli_public_key). */
int cli_key_id(const char *spec, char id[ATTEST_DIGEST_LEN], err **e);

/* Consumes the option at argv[*i] (advancing *i past its value). Returns 1 when it was one,
 * 0 when it is not one of these, -1 with *e (a missing or bad value). */
int cli_seal_opt(cli_seal_opts *o, int argc, char **argv, int *i, err **e);
/* Reads a task document or a signed-task envelope (proto_task_parse_entry) from path into t
 * (initialised first, so always safe to deinit). Returns 0, or -1 with *e. */
int cli_read_task(const char *path, proto_task *t, err **e);
/* Applies o to t (a parsed task, plain or already partly sealed) and writes the document to
 * out: the task JSON, or with --sign-key the signed-task envelope around it. The document is
 * parsed again as a node would (proto_task_parse_entry) before it is handed out. Returns 0, or
 * -1 with *e. */
int cli_seal_finish(proto_task *t, const cli_seal_opts *o, buf *out, err **e);
