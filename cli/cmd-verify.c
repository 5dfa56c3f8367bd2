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
	bool any_unchecked; /* a check could not be made here (ATTEST_ERROR) */
	bool replay;        /* --replay: re-execute each result's task and compare */
	const char *store;  /* --store: the image store for --replay */
};

static void verify_usage(FILE *f)
{
	fprintf(f,
	        "usage: aisp verify RESULT... [--task TASK.json] [--pubkey PEM | --redis "
	        "HOST:PORT]\n"
	        "                  [--replay --task TASK.json [--store DIR]]\n"
	        "  RESULT is a result JSON file, or a task id with --redis (the node's key is\n"
	        "  then read from aisp:key:<key id>, else from the node registry). Several\n"
	        "  results are also checked as one node's hash chain, in the order given.\n"
	        "  --task    also checks the input digest (else: SKIP input_digest (no --task))\n"
	        "  --replay  re-executes the task in the same image, runtime and limits, and\n"
	        "            compares input, output, exit, environment and the execution digest\n"
	        "  Prints one line per check: PASS name, FAIL name: why, SKIP name (why),\n"
	        "  EXPECTED name: why (a replay of a task marked nondeterministic whose output\n"
	        "  differs), ERROR name: why (could not be checked here).\n"
	        "Exit status: 0 every check passed (SKIP and EXPECTED lines included); 1 a check\n"
	        "failed or a result is unreadable; 2 usage error, or the task, key or Redis is\n"
	        "unavailable; 3 no check failed but one could not be made (ERROR).\n");
}

static void on_check(void *ud, const char *name, attest_verdict v, const char *detail)
{
	struct verify_opts *o = ud;
	switch (v) {
	case ATTEST_PASS:
		printf("PASS %s\n", name);
		break;
	case ATTEST_SKIP:
		printf("SKIP %s (%s)\n", name, detail);
		break;
	case ATTEST_EXPECTED:
		printf("EXPECTED %s: %s\n", name, detail);
		break;
	case ATTEST_ERROR:
		o->any_unchecked = true;
		printf("ERROR %s: %s\n", name, detail);
		break;
	default:
		o->any_failed = true;
		printf("FAIL %s: %s\n", name, detail);
		break;
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

/* The key kept by key id (aisp:key:<id>, which outlives the node): it must hash to that id,
 * and the result's node must have registered it (field node.<node id>; nodes may share a
 * key). 0 with *out, 1 when Redis has no such key, or -1 with *e. */
static int key_by_id(struct verify_opts *o, const proto_result *r, const char *kid,
                     attest_key **out, err **e)
{
	_cleanup_free_ char *key = xasprintf("%s%s", PROTO_KEY_KEY_PREFIX, kid);
	_cleanup_free_ char *field = xasprintf("node.%s", r->node_id);
	buf pem = BUF_INIT, seen = BUF_INIT;
	int ret = redis_string(o, "HGET", key, "pubkey", &pem, e);
	int owner = ret == 0 ? redis_string(o, "HGET", key, field, &seen, e) : 0;
	if (ret == 0 && owner < 0)
		ret = -1;
	if (ret == 0)
		ret = attest_key_from_public_pem(out, buf_str(&pem), pem.len, e);
	if (ret == 0 && strcmp(attest_key_id(*out), kid))
		ret = err_set(e, 0, "%s holds a key whose id is not %s", key, kid);
	else if (ret == 0 && owner == 1)
		ret = err_set(e, 0, "key %s is not registered to node %s (%s has no %s)", kid,
		              r->node_id, key, field);
	if (ret != 0)
		*out = attest_key_free(*out);
	buf_deinit(&pem);
	buf_deinit(&seen);
	return ret;
}

/* The key that checks r: --pubkey's, or from Redis: by the envelope's key id, else the node's
 * registry entry (caller frees). */
static int result_key(struct verify_opts *o, const proto_result *r, attest_key **out, err **e)
{
	*out = NULL;
	if (o->pubkey || !o->redis)
		return 0;
	if (!r->node_id || !*r->node_id)
		return err_set(e, 0, "the result names no node");
	char kid[ATTEST_DIGEST_LEN];
	int ret = 1;
	if (r->attestation && attest_envelope_key_id(r->attestation, kid, NULL) == 0 &&
	    (ret = key_by_id(o, r, kid, out, e)) <= 0)
		return ret;
	_cleanup_free_ char *key = xasprintf("%s%s", PROTO_KEY_NODE_PREFIX, r->node_id);
	buf pem = BUF_INIT;
	ret = redis_string(o, "HGET", key, "pubkey", &pem, e);
	if (ret == 1)
		ret = err_set(e, 0,
		              "no public key in Redis for this result (neither %s<key id> nor %s "
		              "pubkey): it may have expired; use --pubkey",
		              PROTO_KEY_KEY_PREFIX, key);
	if (ret == 0)
		ret = attest_key_from_public_pem(out, buf_str(&pem), pem.len, e);
	buf_deinit(&pem);
	return ret;
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
		if (o->replay)
			cli_replay(task, &r, o->store, on_check, o);
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
	if (o->replay && !o->task_path) {
		fprintf(stderr, "aisp verify: --replay needs the task: --task TASK.json\n");
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
		ret = o.any_failed ? 1 : o.any_unchecked ? 3 : 0;
	}
	if (o.redis)
		redisFree(o.redis);
	attest_key_free(o.pubkey);
	proto_task_deinit(&task);
	return ret;
}
