/* aisp verify: the auditor's check of results' signed attestations, one line per check, with
 * the node's public key from a file or from the node registry in Redis. Results given in order
 * are also checked as one hash chain. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "attest/attest.h"
#include "cli/cli.h"
#include "cli/redis.h"
#include "cli/replay.h"
#include "sandbox/image.h"
#include "common/cleanup.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "proto/proto.h"

#define VERIFY_RESULT_MAX (ATTEST_ENVELOPE_MAX + 2 * PROTO_TASK_MAX_BYTES)
#define REDIS_TIMEOUT_MS  5000

struct verify_opts {
	const char *task_path;
	const char *pubkey_path;
	const char *redis_addr;
	redisContext *redis;
	attest_key *pubkey; /* from --pubkey: used for every result */
	bool any_failed;
	bool replay;       /* --replay: re-execute each result's task and compare */
	const char *store; /* --store: the image store for --replay */
};

static void verify_usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: aisp verify RESULT... [--task TASK.json] [--pubkey PEM | --redis "
	    "HOST:PORT]\n"
	    "                  [--replay [--store DIR]]\n"
	    "  --replay re-executes the task (needs --task) in the same image, runtime and\n"
	    "  limits, and compares output, exit, environment and the execution digest.\n"
	    "  RESULT is a result JSON file, or a task id with --redis. Prints one line per\n"
	    "  check (PASS name / FAIL name: why); exits 0 only when every check passes.\n"
	    "  Several results are also checked as one node's hash chain, in the order given.\n");
}

static void on_check(void *ud, const char *name, bool ok, const char *detail)
{
	struct verify_opts *o = ud;
	if (ok) {
		printf("PASS %s\n", name);
	} else {
		o->any_failed = true;
		printf("FAIL %s: %s\n", name, detail);
	}
}

static int redis_open(struct verify_opts *o, err **e)
{
	o->redis = cli_redis_connect(o->redis_addr, REDIS_TIMEOUT_MS, e);
	return o->redis ? 0 : -1;
}

/* A string reply to a command (argv form), into out. 0, 1 when nil, or -1 with *e. */
static int redis_string(struct verify_opts *o, const char *cmd, const char *key, const char *field,
                        buf *out, err **e)
{
	const char *argv[3] = {cmd, key, field};
	int argc = field ? 3 : 2;
	redisReply *r = redisCommandArgv(o->redis, argc, argv, NULL);
	if (!r)
		return err_set(e, 0, "Redis %s %s: %s", cmd, key, o->redis->errstr);
	int ret = 0;
	if (r->type == REDIS_REPLY_NIL)
		ret = 1;
	else if (r->type == REDIS_REPLY_STRING && r->len <= VERIFY_RESULT_MAX)
		buf_append(out, r->str, r->len);
	else
		ret = err_set(e, 0, "Redis %s %s: unexpected reply", cmd, key);
	freeReplyObject(r);
	return ret;
}

/* RESULT as a file, else (with --redis) as a task id. */
static int load_result(struct verify_opts *o, const char *arg, buf *out, err **e)
{
	if (!o->redis || access(arg, F_OK) == 0)
		return read_file_at(AT_FDCWD, arg, VERIFY_RESULT_MAX, out, e);
	if (!proto_id_valid(arg))
		return err_set(e, 0, "%s: no such file, and not a task id", arg);
	_cleanup_free_ char *key = xasprintf("%s%s", PROTO_KEY_RESULT_PREFIX, arg);
	int r = redis_string(o, "GET", key, NULL, out, e);
	if (r == 1)
		return err_set(e, 0, "no result for task %s in Redis (%s)", arg, key);
	return r;
}

/* The key that checks r: --pubkey's, or the node's from the registry (caller frees). */
static int result_key(struct verify_opts *o, const proto_result *r, attest_key **out, err **e)
{
	if (o->pubkey || !o->redis) {
		*out = NULL;
		return 0;
	}
	if (!r->node_id || !*r->node_id)
		return err_set(e, 0, "the result names no node");
	_cleanup_free_ char *key = xasprintf("%s%s", PROTO_KEY_NODE_PREFIX, r->node_id);
	buf pem = BUF_INIT;
	int ret = redis_string(o, "HGET", key, "pubkey", &pem, e);
	if (ret == 1)
		ret = err_set(e, 0,
		              "node %s has no public key in Redis (%s pubkey): it may have "
		              "expired; use --pubkey",
		              r->node_id, key);
	if (ret == 0)
		ret = attest_key_from_public_pem(out, buf_str(&pem), pem.len, e);
	buf_deinit(&pem);
	return ret;
}

/* The hook for `--replay` (to come): called for every parsed result after its attestation
 * checks, with the task (NULL without --task). Re-execution reports its checks through
 * on_check(o, ...). Nothing is replayed yet. */
static void verify_replay_hook(struct verify_opts *o, const proto_task *task, const proto_result *r)
{
	if (o->replay)
		cli_replay(task, r, o->store, on_check, o);
}

static int verify_one(struct verify_opts *o, attest_verifier *v, const char *arg,
                      const proto_task *task)
{
	_cleanup_err_ err *e = NULL;
	buf text = BUF_INIT;
	proto_result r;
	proto_result_init(&r);
	attest_key *fetched = NULL;
	int ret = load_result(o, arg, &text, &e);
	if (ret == 0 && (ret = proto_result_parse(buf_str(&text), text.len, &r, &e)) < 0)
		err_prefix(&e, "%s", arg);
	if (ret == 0)
		ret = result_key(o, &r, &fetched, &e);
	if (ret == 0) {
		attest_verifier_check(v, &r, o->pubkey ? o->pubkey : fetched, task, on_check, o);
		verify_replay_hook(o, task, &r);
	} else {
		o->any_failed = true;
		printf("FAIL result: %s\n", err_msg(e));
	}
	attest_key_free(fetched);
	proto_result_deinit(&r);
	buf_deinit(&text);
	return ret;
}

static int load_task(const char *path, proto_task *t, err **e)
{
	buf b = BUF_INIT;
	int r = read_file_at(AT_FDCWD, path, PROTO_TASK_MAX_BYTES, &b, e);
	if (r == 0)
		r = proto_task_parse(buf_str(&b), b.len, t, NULL, e);
	buf_deinit(&b);
	return r < 0 ? err_prefix(e, "task %s", path) : 0;
}

static int parse_args(int argc, char **argv, struct verify_opts *o)
{
	static const struct option opts[] = {
	    {"task", required_argument, NULL, 't'},
	    {"pubkey", required_argument, NULL, 'k'},
	    {"redis", required_argument, NULL, 'r'},
	    {"replay", no_argument, NULL, 'R'},
	    {"store", required_argument, NULL, 's'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "t:k:r:Rs:h", opts, NULL)) != -1) {
		switch (c) {
		case 't':
			o->task_path = optarg;
			break;
		case 'k':
			o->pubkey_path = optarg;
			break;
		case 'r':
			o->redis_addr = optarg;
			break;
		case 'R':
			o->replay = true;
			break;
		case 's':
			o->store = optarg;
			break;
		case 'h':
			verify_usage(stdout);
			return 0;
		default:
			verify_usage(stderr);
			return 2;
		}
	}
	if (optind == argc || (!o->pubkey_path == !o->redis_addr)) {
		fprintf(stderr,
		        "aisp verify: give results and exactly one of --pubkey or --redis\n");
		verify_usage(stderr);
		return 2;
	}
	return -1;
}

int cmd_verify(int argc, char **argv)
{
	struct verify_opts o = {.store = getenv("AISP_IMAGE_STORE")};
	int ret = parse_args(argc, argv, &o);
	if (!o.store || !*o.store)
		o.store = SANDBOX_IMAGE_STORE_DEFAULT;
	if (ret >= 0)
		return ret;
	_cleanup_err_ err *e = NULL;
	proto_task task;
	proto_task_init(&task);
	if ((o.task_path && load_task(o.task_path, &task, &e) < 0) ||
	    (o.pubkey_path && attest_key_load_public(&o.pubkey, o.pubkey_path, &e) < 0) ||
	    (o.redis_addr && redis_open(&o, &e) < 0)) {
		fprintf(stderr, "aisp verify: %s\n", err_msg(e));
		ret = 2;
	} else {
		attest_verifier *v = attest_verifier_new();
		for (int i = optind; i < argc; i++) {
			if (argc - optind > 1)
				printf("== %s\n", argv[i]);
			verify_one(&o, v, argv[i], o.task_path ? &task : NULL);
		}
		attest_verifier_free(v);
		ret = o.any_failed ? 1 : 0;
	}
	if (o.redis)
		redisFree(o.redis);
	attest_key_free(o.pubkey);
	proto_task_deinit(&task);
	return ret;
}
