/* aisp task: sealed and signed task documents without a network (proto/PROTOCOL.md, "Sealed and signed tasks").
 *   aisp task seal TASK.json --seal-to NODE --reply-to BUYER [...]  seal its parts
 *   aisp task sign TASK.json --sign-key KEY [--passport P] [...]     sign it
 *   aisp task check TASK.json -i AGE.key [--issuer ID]... [--redis ADDR]
 * `check` runs a node's admission of a task locally, with the node's own functions in the
 * node's order: parse (a signed envelope too), open the sealed parts with the node's identity,
 * the signature and passport, the revocation store, and the trust decision; it prints the
 * verdict and exits 0 (admitted) or 2 (rejected, with the node's message). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "attest/attest.h"
#include "cli/cli.h"
#include "cli/redis.h"
#include "cli/sealed.h"
#include "common/cleanup.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "proto/proto.h"

#define EXIT_REJECTED 2

static void task_usage(FILE *f)
{
	fprintf(f,
	        "usage: aisp task seal TASK.json --seal-to R [--reply-to R] [options] [-o OUT]\n"
	        "                      [--redis ADDR] (where --seal-to node:ID is read)\n"
	        "       aisp task sign TASK.json --sign-key PEM [--passport FILE] [options] [-o "
	        "OUT]\n"
	        "       aisp task check TASK.json -i IDENTITY [--issuer KEY]... [--min-level L]\n"
	        "                       [--clock-skew S] [--now UNIX] [--redis ADDR]\n\n"
	        "seal and sign write the task document (seal: its parts as age ciphertext for\n"
	        "the node; sign: the signed-task envelope around it) to OUT or standard output.\n"
	        "Their options (both take all of them):\n%s"
	        "check runs a node's admission checks on a task (or a signed envelope): the\n"
	        "sealed parts opened with the node's age identity (-i, e.g. DIR/age.key), the\n"
	        "signature, the passport against the trusted issuers (--issuer: a key id or a\n"
	        "PEM public key, as [trust] issuers), revocations in Redis (with --redis), the\n"
	        "trust level. Exit 0 admitted, 2 rejected (the message a node would publish).\n",
	        cli_seal_usage);
}

static int write_out(const char *path, const buf *b, err **e)
{
	if (!path || !strcmp(path, "-")) {
		fwrite(b->data, 1, b->len, stdout);
		fputc('\n', stdout);
		return fflush(stdout) ? err_set(e, 0, "write standard output") : 0;
	}
	buf nl = BUF_INIT;
	buf_append(&nl, b->data, b->len);
	buf_append_str(&nl, "\n");
	int r = write_file_path(path, nl.data, nl.len, 0644, e);
	buf_deinit(&nl);
	return r;
}

/* seal and sign: one function, the options decide (cli/sealed.c). */
static int task_make(const char *cmd, int argc, char **argv)
{
	cli_seal_opts o = {.any = false};
	const char *in = NULL, *out = NULL;
	_cleanup_err_ err *e = NULL;
	for (int i = 1; i < argc; i++) {
		int k = cli_seal_opt(&o, argc, argv, &i, &e);
		if (k < 0)
			goto fail;
		if (k > 0)
			continue;
		if (!strcmp(argv[i], "-o") && i + 1 < argc)
			out = argv[++i];
		else if (!strcmp(argv[i], "--redis") && i + 1 < argc)
			o.redis = argv[++i];
		else if (argv[i][0] != '-' && !in)
			in = argv[i];
		else {
			fprintf(stderr, "aisp task %s: unknown or incomplete option \"%s\"\n", cmd,
			        argv[i]);
			task_usage(stderr);
			return 2;
		}
	}
	bool seal = !strcmp(cmd, "seal");
	if (!in || (seal && !o.to.n && !o.to_node) || (!seal && !o.sign_key)) {
		fprintf(stderr, "aisp task %s: give TASK.json and %s\n", cmd,
		        seal ? "--seal-to" : "--sign-key");
		return 2;
	}
	proto_task t;
	proto_task_init(&t);
	buf doc = BUF_INIT;
	int r = cli_read_task(in, &t, &e);
	if (r == 0)
		r = cli_seal_finish(&t, &o, &doc, &e);
	if (r == 0)
		r = write_out(out, &doc, &e);
	proto_task_deinit(&t);
	buf_deinit(&doc);
	if (r == 0)
		return 0;
fail:
	fprintf(stderr, "aisp task %s: %s\n", cmd, err_msg(e));
	return 1;
}

/* ---- check ---- */

typedef struct check_args {
	const char *task, *identity, *redis;
	attest_trust_config cfg;
	int64_t now;
} check_args;

/* --issuer KEY: a key id, a key file or a key directory (cli_key_id). */
static int add_issuer(attest_trust_config *cfg, const char *spec, err **e)
{
	char id[ATTEST_DIGEST_LEN];
	if (cli_key_id(spec, id, e) < 0)
		return err_prefix(e, "--issuer");
	return attest_trust_config_set(cfg, "issuers", id, e);
}

static int parse_check(check_args *c, int argc, char **argv, err **e)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		int r = 0;
		if (v && !strcmp(a, "-i"))
			c->identity = v;
		else if (v && !strcmp(a, "--redis"))
			c->redis = v;
		else if (v && !strcmp(a, "--issuer"))
			r = add_issuer(&c->cfg, v, e);
		else if (v && !strcmp(a, "--min-level"))
			r = attest_trust_config_set(&c->cfg, "min_level", v, e);
		else if (v && !strcmp(a, "--clock-skew"))
			r = attest_trust_config_set(&c->cfg, "clock_skew_s", v, e);
		else if (v && !strcmp(a, "--now"))
			r = parse_i64(v, 0, INT64_MAX / 2, &c->now) < 0
			        ? err_set(e, 0, "--now: \"%s\" is not seconds since the epoch", v)
			        : 0;
		else if (a[0] != '-' && !c->task) {
			c->task = a;
			continue;
		} else
			return err_set(e, 0, "unknown or incomplete option \"%s\"", a);
		if (r < 0)
			return -1;
		i++;
	}
	return c->task ? 0 : err_set(e, 0, "which task? (aisp task check TASK.json)");
}

/* The revocation store's answers for a's parties (a blocking HMGET). */
static int read_revocations(const char *addr, const attest_task_auth *a, attest_revocations *rev,
                            err **e)
{
	char *fields[ATTEST_PARTY__COUNT];
	attest_party party[ATTEST_PARTY__COUNT];
	size_t n = attest_task_auth_fields(a, fields, party);
	redisContext *c = n ? cli_redis_connect(addr, 5000, e) : NULL;
	int r = n && !c ? -1 : 0;
	const char *argv[2 + ATTEST_PARTY__COUNT] = {"HMGET", PROTO_KEY_REVOKED};
	for (size_t i = 0; i < n; i++)
		argv[2 + i] = fields[i];
	redisReply *rep = c ? redisCommandArgv(c, (int)n + 2, argv, NULL) : NULL;
	if (c && (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != n))
		r = err_set(e, 0, "HMGET %s: %s", PROTO_KEY_REVOKED,
		            rep && rep->type == REDIS_REPLY_ERROR ? rep->str : c->errstr);
	for (size_t i = 0; r == 0 && i < n; i++)
		if (rep->element[i]->type == REDIS_REPLY_STRING)
			attest_revocations_set(rev, party[i], fields[i], rep->element[i]->str,
			                       rep->element[i]->len);
	for (size_t i = 0; i < n; i++)
		free(fields[i]);
	freeReplyObject(rep);
	if (c)
		redisFree(c);
	return r;
}

static int rejected(const char *msg)
{
	printf("rejected: %s\n", msg);
	return EXIT_REJECTED;
}

/* What a node does with the task, step by step (after parsing). */
static int admit(check_args *c, proto_task *t, attest_age_identity **ids, size_t n_ids)
{
	_cleanup_err_ err *e = NULL;
	if (t->sealed && attest_sealed_open(t, ids, n_ids, &e) < 0) {
		if (t->sealed->private_error)
			printf("sealed to the buyer: %s\n", t->sealed->private_error);
		return rejected(err_msg(e));
	}
	if (t->sealed)
		printf("opened: exec_mode %s, reply_to %s\n",
		       t->sealed->exec_mode == PROTO_EXEC_SEALED ? "sealed" : "source",
		       t->sealed->reply_to ? t->sealed->reply_to : "(none)");
	attest_task_auth a;
	attest_task_auth_init(&a, t);
	attest_revocations rev = {0};
	if (c->redis && read_revocations(c->redis, &a, &rev, &e) < 0) {
		attest_task_auth_deinit(&a);
		fprintf(stderr, "aisp task check: %s\n", err_msg(e));
		return 1;
	}
	if (!c->redis)
		printf("revocations: not checked (no --redis)\n");
	const proto_trust_req *reqs[] = {t->auth ? &t->auth->req : NULL};
	attest_trust_decision d;
	int rc = attest_trust_decide(&c->cfg, reqs, t->auth ? 1 : 0, &a, &rev, c->now, &d);
	if (rc == 0)
		printf("admitted: trust level %s%s%s\n", proto_trust_level_name(d.level),
		       a.signer_id[0] ? ", signed by " : ", unsigned", a.signer_id);
	else
		rc = rejected(d.message);
	attest_trust_decision_deinit(&d);
	attest_revocations_deinit(&rev);
	attest_task_auth_deinit(&a);
	return rc;
}

static int task_check(int argc, char **argv)
{
	check_args c = {.now = (int64_t)time(NULL)};
	attest_trust_config_init(&c.cfg);
	_cleanup_err_ err *e = NULL;
	attest_age_identity **ids = NULL;
	size_t n_ids = 0;
	int rc = 1;
	proto_task t;
	proto_task_init(&t);
	buf b = BUF_INIT;
	if (parse_check(&c, argc, argv, &e) < 0) {
		fprintf(stderr, "aisp task check: %s\n", err_msg(e));
		rc = 2;
	} else if (c.identity && attest_age_identities_load(c.identity, &ids, &n_ids, &e) < 0) {
		fprintf(stderr, "aisp task check: %s\n", err_msg(e));
	} else if (read_file_at(AT_FDCWD, c.task, PROTO_TASK_MAX_BYTES, &b, &e) < 0) {
		fprintf(stderr, "aisp task check: %s\n", err_msg(e));
	} else if (proto_task_parse_entry(buf_str(&b), b.len, &t, NULL, &e) < 0) {
		rc = rejected(err_msg(e));
	} else {
		rc = admit(&c, &t, ids, n_ids);
	}
	proto_task_deinit(&t);
	buf_deinit(&b);
	attest_age_identities_free(ids, n_ids);
	attest_trust_config_deinit(&c.cfg);
	return rc;
}

int cmd_task(int argc, char **argv)
{
	const char *sub = argc > 1 ? argv[1] : NULL;
	if (sub && (!strcmp(sub, "seal") || !strcmp(sub, "sign")))
		return task_make(sub, argc - 1, argv + 1);
	if (sub && !strcmp(sub, "check"))
		return task_check(argc - 1, argv + 1);
	if (sub && (!strcmp(sub, "--help") || !strcmp(sub, "-h"))) {
		task_usage(stdout);
		return 0;
	}
	fprintf(stderr, "aisp task: %s\n", sub ? "unknown subcommand" : "which subcommand?");
	task_usage(stderr);
	return 2;
}
