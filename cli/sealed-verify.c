/* aisp unseal --verify / aisp verify --sealed: the buyer's (and the auditor's) check of a sealed
 * result (attest/SEALED.md, "Verification"). One line per check on standard error (PASS, FAIL,
 * SKIP); when every check passed and an identity was given, the decrypted output on standard
 * output as `aisp run` prints it (or the decrypted result document with --json). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attest/attest.h"
#include "cli/cli.h"
#include "cli/sealed.h"
#include "cli/taskopts.h"
#include "common/cleanup.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "proto/proto.h"

DEFINE_CLEANUP_FUNC(attest_key *, attest_key_free)

typedef struct sv_args {
	const char *result, *key, *task, *input, *out;
	bool json;
	attest_age_identity **ids;
	size_t n_ids;
} sv_args;

static void usage(FILE *f, const char *cmd)
{
	fprintf(
	    f,
	    "usage: aisp %s RESULT.json --key NODE_PUB [-i IDENTITY]... [--task SENT.json]\n"
	    "                       [--input PLAIN.json] [--json] [--out DIR]\n"
	    "  Verifies a sealed result: its signature by the node (--key: a PEM public key or a\n"
	    "  key directory), the ciphertext it delivered, its public fields; with the task as\n"
	    "  sent (--task), the ciphertexts the node received; with the buyer's identity (-i,\n"
	    "  age-keygen format, mode 0600), the sealed document: its outputs, the commitments\n"
	    "  the node signed, and, with the plaintext task (--input), the input. Prints one\n"
	    "  line per check on standard error; when all pass, the decrypted output (--json:\n"
	    "  the decrypted result document; --out DIR saves its output files below DIR).\n"
	    "  Exit 0 when every check passed, 1 otherwise.\n",
	    cmd);
}

static int add_identities(sv_args *a, const char *path, err **e)
{
	attest_age_identity **more = NULL;
	size_t n = 0;
	if (attest_age_identities_load(path, &more, &n, e) < 0)
		return -1;
	a->ids = xreallocarray(a->ids, a->n_ids + n, sizeof(*a->ids));
	memcpy(a->ids + a->n_ids, more, n * sizeof(*more));
	a->n_ids += n;
	free(more);
	return 0;
}

static int parse(sv_args *a, int argc, char **argv, err **e)
{
	for (int i = 1; i < argc; i++) {
		const char *s = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(s, "--verify") || !strcmp(s, "--sealed"))
			continue;
		if (!strcmp(s, "--json")) {
			a->json = true;
			continue;
		}
		if (s[0] != '-' && !a->result) {
			a->result = s;
			continue;
		}
		const char **dst = !strcmp(s, "--key") || !strcmp(s, "--pubkey") ? &a->key
		                   : !strcmp(s, "--task")                        ? &a->task
		                   : !strcmp(s, "--input")                       ? &a->input
		                   : !strcmp(s, "--out")                         ? &a->out
		                                                                 : NULL;
		if (!v || (!dst && strcmp(s, "-i")))
			return err_set(e, 0, "unknown or incomplete option \"%s\"", s);
		i++;
		if (dst)
			*dst = v;
		else if (add_identities(a, v, e) < 0)
			return -1;
	}
	if (!a->result || !a->key)
		return err_set(e, 0, "give RESULT.json and --key NODE_PUB");
	return 0;
}

static int load_key(const char *spec, attest_key **k, err **e)
{
	uint8_t raw[ATTEST_RAW_KEY_LEN];
	char id[ATTEST_DIGEST_LEN];
	return cli_public_key(spec, raw, id, e) < 0 ? -1 : attest_key_from_raw(k, raw, e);
}

static void on_check(void *ud, const char *name, attest_sealed_verdict v, const char *detail)
{
	static const char *const words[] = {"PASS", "FAIL", "SKIP"};
	fprintf(stderr, "%s %s%s%s\n", words[v], name, detail ? ": " : "", detail ? detail : "");
}

static int verify(const sv_args *a, err **e)
{
	_cleanup_(attest_key_freep) attest_key *k = NULL;
	proto_task sent, plain;
	proto_task_init(&sent);
	proto_task_init(&plain);
	buf res = BUF_INIT;
	proto_result inner;
	proto_result_init(&inner);
	int rc = load_key(a->key, &k, e);
	if (rc == 0 && a->task)
		rc = cli_read_task(a->task, &sent, e);
	if (rc == 0 && a->input)
		rc = cli_read_task(a->input, &plain, e);
	if (rc == 0)
		rc = read_file_at(AT_FDCWD, a->result, 2 * PROTO_TASK_MAX_BYTES, &res, e);
	attest_sealed_verify_opts o = {.node_key = k,
	                               .ids = a->ids,
	                               .n_ids = a->n_ids,
	                               .sealed_task = a->task ? &sent : NULL,
	                               .plain_task = a->input ? &plain : NULL};
	if (rc == 0)
		rc = attest_sealed_verify(buf_str(&res), res.len, &o, on_check, NULL, &inner, e);
	if (rc == 0 && inner.id && a->json) {
		buf doc = BUF_INIT;
		proto_result_to_json(&inner, &doc);
		printf("%s\n", buf_str(&doc));
		buf_deinit(&doc);
	} else if (rc == 0 && inner.id) {
		cli_print_output(&inner.output, a->out);
	}
	proto_result_deinit(&inner);
	buf_deinit(&res);
	proto_task_deinit(&sent);
	proto_task_deinit(&plain);
	return rc;
}

int cli_sealed_verify(const char *cmd, int argc, char **argv)
{
	sv_args a = {0};
	_cleanup_err_ err *e = NULL;
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			usage(stdout, cmd);
			return 0;
		}
	int rc = parse(&a, argc, argv, &e);
	if (rc < 0) {
		fprintf(stderr, "aisp %s: %s\n", cmd, err_msg(e));
		usage(stderr, cmd);
		attest_age_identities_free(a.ids, a.n_ids);
		return 2;
	}
	rc = verify(&a, &e);
	if (rc < 0)
		fprintf(stderr, "aisp %s: %s\n", cmd, err_msg(e));
	attest_age_identities_free(a.ids, a.n_ids);
	return rc == 0 ? 0 : 1;
}
