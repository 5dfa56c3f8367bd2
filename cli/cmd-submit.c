/* aisp submit / wait / result / nodes: the scheduler's side of the Redis protocol
 * (proto/PROTOCOL.md). Synchronous hiredis with connect and command timeouts. */
#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <yajl/yajl_tree.h>

#include "cli/cli.h"
#include "cli/follow.h"
#include "cli/redis.h"
#include "cli/sealed.h"
#include "cli/taskopts.h"
#include "common/cleanup.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "proto/proto.h"

#define EXIT_WAIT_TIMEOUT 3
/* Redis could not be reached, or a command failed (distinct from a program's exit 1). */
#define EXIT_REDIS    4
#define POLL_BLOCK_MS 1000

DEFINE_CLEANUP_FUNC(redisContext *, redisFree)
DEFINE_CLEANUP_FUNC(redisReply *, freeReplyObject)
#define _cleanup_redis_ _cleanup_(redisFreep)
#define _cleanup_reply_ _cleanup_(freeReplyObjectp)

static const char redis_usage[] = CLI_REDIS_USAGE;

/* Connects and authenticates; commands time out after block_ms + 5 s. Prints the error. */
static redisContext *connect_redis(const char *cmd, const char *addr, int64_t block_ms)
{
	_cleanup_err_ err *e = NULL;
	redisContext *c = cli_redis_connect(addr, block_ms + 5000, &e);
	if (!c)
		fprintf(stderr, "aisp %s: %s\n", cmd, err_msg(e));
	return c;
}

static bool reply_failed(const char *cmd, redisContext *c, const redisReply *r)
{
	if (!r) {
		fprintf(stderr, "aisp %s: redis: %s\n", cmd, c->errstr[0] ? c->errstr : "error");
		return true;
	}
	if (r->type == REDIS_REPLY_ERROR) {
		fprintf(stderr, "aisp %s: redis: %s\n", cmd, r->str);
		return true;
	}
	return false;
}

/* Prints a result as `aisp run` does (or the document itself); returns the exit status. */
static int print_result(const char *cmd, const char *json, size_t len, bool as_json,
                        const char *out_dir, cli_follow *follow)
{
	proto_result r;
	proto_result_init(&r);
	_cleanup_err_ err *e = NULL;
	if (proto_result_parse(json, len, &r, &e) < 0) {
		fprintf(stderr, "aisp %s: unreadable result: %s\n", cmd, err_msg(e));
		return 1;
	}
	int status;
	if (r.sealed && !as_json) {
		/* Only status and usage are public: the rest is sealed to reply_to. */
		fprintf(stderr,
		        "aisp %s: status %s; the output is sealed to the task's reply_to: read it "
		        "with aisp unseal --verify (save the result with --json)\n",
		        cmd, proto_status_name(r.output.status));
		status =
		    r.output.status == PROTO_STATUS_OK ? 0 : cli_exit_status(r.output.status, 0, 0);
	} else if (as_json) {
		fwrite(json, 1, len, stdout);
		fputc('\n', stdout);
		fflush(stdout);
		status = cli_exit_status(r.output.status, r.output.exit_code, r.output.signal);
		_cleanup_err_ err *se = NULL;
		if (out_dir && r.output.n_files && cli_save_outputs(&r.output, out_dir, &se) < 0) {
			fprintf(stderr, "aisp %s: %s\n", cmd, err_msg(se));
			status = status ? status : CLI_EXIT_NOT_SAVED;
		}
	} else {
		if (follow) /* what --follow already printed is not printed again */
			cli_follow_finish(follow, &r.output);
		status = cli_print_output(&r.output, out_dir);
	}
	proto_result_deinit(&r);
	return status;
}

/* The result document of id, or NULL (caller frees). *failed on a Redis error. */
static char *get_result(const char *cmd, redisContext *c, const char *id, size_t *len, bool *failed)
{
	_cleanup_reply_ redisReply *r = redisCommand(c, "GET %s%s", PROTO_KEY_RESULT_PREFIX, id);
	*failed = reply_failed(cmd, c, r);
	if (*failed || r->type != REDIS_REPLY_STRING)
		return NULL;
	*len = r->len;
	return xmemdup(r->str, r->len + 1);
}

/* Waits for id's result: GET, then blocking reads on stream (the task's reply stream, or
 * aisp:results) from last, GET again whenever an entry names id; follow (or NULL) is shown
 * the entry's live events. Returns the document or NULL (timeout or Redis error, already
 * reported). */
static char *wait_result(const char *cmd, redisContext *c, const char *id, const char *stream,
                         double timeout_s, cli_follow *follow, size_t *len)
{
	_cleanup_free_ char *last = xstrdup("0-0");
	if (!strcmp(stream, PROTO_KEY_RESULTS)) {
		_cleanup_reply_ redisReply *r =
		    redisCommand(c, "XREVRANGE %s + - COUNT 1", PROTO_KEY_RESULTS);
		if (reply_failed(cmd, c, r))
			return NULL;
		if (r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
		    r->element[0]->type == REDIS_REPLY_ARRAY && r->element[0]->elements >= 1) {
			free(last);
			last = xstrdup(r->element[0]->element[0]->str);
		}
	}
	int64_t deadline = now_mono_ms() + (int64_t)(timeout_s * 1000);
	for (;;) {
		bool failed;
		char *doc = get_result(cmd, c, id, len, &failed);
		if (doc || failed)
			return doc;
		int64_t left = deadline - now_mono_ms();
		if (timeout_s > 0 && left <= 0) {
			fprintf(stderr, "aisp %s: no result for %s after %gs\n", cmd, id,
			        timeout_s);
			return NULL;
		}
		int64_t block = timeout_s > 0 && left < POLL_BLOCK_MS ? left : POLL_BLOCK_MS;
		_cleanup_free_ char *bs = xasprintf("%lld", (long long)(block > 0 ? block : 1));
		_cleanup_reply_ redisReply *r =
		    redisCommand(c, "XREAD COUNT 100 BLOCK %s STREAMS %s %s", bs, stream, last);
		if (reply_failed(cmd, c, r))
			return NULL;
		if (r->type != REDIS_REPLY_ARRAY || r->elements < 1)
			continue;
		const redisReply *entries = r->element[0]->element[1];
		for (size_t i = 0; i < entries->elements; i++) {
			const redisReply *en = entries->element[i];
			free(last);
			last = xstrdup(en->element[0]->str);
			const redisReply *f = en->element[1];
			bool mine = false;
			const redisReply *doc_field = NULL;
			for (size_t j = 0; f->type == REDIS_REPLY_ARRAY && j + 1 < f->elements;
			     j += 2) {
				if (!strcmp(f->element[j]->str, "id") &&
				    !strcmp(f->element[j + 1]->str, id))
					mine = true;
				if (!strcmp(f->element[j]->str, "result"))
					doc_field = f->element[j + 1];
			}
			if (mine && doc_field) {
				*len = doc_field->len;
				return xmemdup(doc_field->str, doc_field->len + 1);
			}
			if (mine && follow)
				cli_follow_event(follow, f);
		}
	}
}

static void submit_usage(FILE *f)
{
	fprintf(f,
	        "usage: aisp submit [task options] (-c CODE | FILE) [--wait [--wait-timeout S]]\n"
	        "                   [--json] [--out DIR] [--redis ADDR]\n\n%s%s"
	        "  --wait             wait for the result, print it as `aisp run` does and exit\n"
	        "                     with the program's status\n"
	        "  --wait-timeout S   give up waiting after S seconds (default: wait forever)\n"
	        "  --follow           --wait, printing the program's output as it runs (the\n"
	        "                     node's live events; the signed result follows)\n"
	        "  --json             with --wait, print the result document\n"
	        "  --nondeterministic mark the task nondeterministic: a replay (aisp verify\n"
	        "                     --replay) then accepts a different output\n"
	        "  --task-out FILE    write the exact task document sent (for aisp verify --task)\n"
	        "%s\n"
	        "Without --wait, prints the task id. Exit status with --wait: the program's exit\n"
	        "code; 124 timeout, 125 output limit, 126 sandbox error or internal, 137 out of\n"
	        "memory, 1 function error, 2 rejected or usage error, 3 --wait-timeout reached,\n"
	        "4 Redis unreachable or failing, 5 --out could not save the output files (the\n"
	        "program succeeded), 130 cancelled. The status is also printed on\n"
	        "stderr (\"aisp: timeout\"), so a program's own exit 124 or SIGKILL (137) is told\n"
	        "apart from a timeout or out of memory by that line, or by --json's status.\n"
	        "  --out DIR          with --wait, save the output files below DIR\n",
	        cli_task_usage, cli_seal_usage, redis_usage);
}

static int parse_seconds(const char *cmd, const char *s, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || v < 0) {
		fprintf(stderr, "aisp %s: bad number of seconds \"%s\"\n", cmd, s);
		return -1;
	}
	*out = v;
	return 0;
}

/* The task document to submit: the shared task options through the same parser the node
 * uses, and the nondeterministic flag; sealed and signed by seal (cli/sealed.c). *reply: the
 * reply stream to wait on (with wait): the task's own --reply-stream, or a private one made
 * here (*own_reply: delete it after). */
static int build_task(const cli_task_opts *o, const cli_seal_opts *seal, bool wait,
                      bool nondeterministic, bool follow, buf *out, char **id, char **reply,
                      bool *own_reply)
{
	_cleanup_err_ err *e = NULL;
	buf raw = BUF_INIT;
	if (cli_task_json(o, &raw, &e) < 0) {
		fprintf(stderr, "aisp submit: %s\n", err_msg(e));
		buf_deinit(&raw);
		return -1;
	}
	proto_task t;
	proto_task_init(&t);
	int rc = proto_task_parse(buf_str(&raw), raw.len, &t, NULL, &e);
	buf_deinit(&raw);
	if (rc < 0) {
		fprintf(stderr, "aisp submit: invalid task: %s\n", err_msg(e));
		proto_task_deinit(&t);
		return -1;
	}
	*own_reply = false;
	if (wait && t.reply_stream) {
		*reply = xstrdup(t.reply_stream);
	} else if (wait) {
		uint8_t rnd[8];
		char hex[17];
		int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
		if (fd < 0 || read(fd, rnd, sizeof(rnd)) != (ssize_t)sizeof(rnd)) {
			fprintf(stderr, "aisp submit: /dev/urandom: %s\n", strerror(errno));
			if (fd >= 0)
				close(fd);
			proto_task_deinit(&t);
			return -1;
		}
		close(fd);
		hex_encode(rnd, sizeof(rnd), hex);
		free(t.reply_stream);
		t.reply_stream = xasprintf(PROTO_KEY_REPLY_PREFIX "%s", hex);
		*reply = xstrdup(t.reply_stream);
		*own_reply = true;
	}
	t.nondeterministic |= nondeterministic;
	t.live_output |= follow; /* the node's live events on the reply stream (--follow) */
	*id = xstrdup(t.id);
	rc = cli_seal_finish(&t, seal, out, &e); /* sealed parts, signature: cli/sealed.c */
	if (rc < 0)
		fprintf(stderr, "aisp submit: %s\n", err_msg(e));
	proto_task_deinit(&t);
	return rc;
}

/* Says on stderr when no live node is registered: the task waits until one starts. */
static void warn_if_no_node(redisContext *c)
{
	_cleanup_reply_ redisReply *m = redisCommand(c, "SMEMBERS %s", PROTO_KEY_NODES);
	for (size_t i = 0; m && m->type == REDIS_REPLY_ARRAY && i < m->elements; i++) {
		_cleanup_reply_ redisReply *x =
		    redisCommand(c, "EXISTS %s%s", PROTO_KEY_NODE_PREFIX, m->element[i]->str);
		if (x && x->type == REDIS_REPLY_INTEGER && x->integer == 1)
			return;
	}
	if (m && m->type == REDIS_REPLY_ARRAY)
		fprintf(stderr,
		        "aisp submit: no live node is registered in this Redis; the task "
		        "waits in %s until one starts\n",
		        PROTO_KEY_TASKS);
}

typedef struct submit_args {
	cli_task_opts task;
	cli_seal_opts seal;
	bool wait, json, nondeterministic, follow;
	double wait_timeout;
	const char *addr, *out;
	const char *task_out; /* --task-out FILE */
} submit_args;

/* Returns -1 to go on, or the exit status (--help, a usage error). */
static int parse_submit(submit_args *s, int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		_cleanup_err_ err *e = NULL;
		int k = cli_task_opt(&s->task, argc, argv, &i, &e);
		if (k == 0)
			k = cli_seal_opt(&s->seal, argc, argv, &i, &e);
		if (k < 0) {
			fprintf(stderr, "aisp submit: %s\n", err_msg(e));
			return 2;
		}
		if (k > 0)
			continue;
		const char *a = argv[i];
		const char *next = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--wait")) {
			s->wait = true;
		} else if (!strcmp(a, "--follow")) {
			s->wait = s->follow = true;
		} else if (!strcmp(a, "--json")) {
			s->json = true;
		} else if (!strcmp(a, "--nondeterministic")) {
			s->nondeterministic = true;
		} else if (next && !strcmp(a, "--task-out")) {
			s->task_out = argv[++i];
		} else if (next && !strcmp(a, "--wait-timeout")) {
			if (parse_seconds("submit", argv[++i], &s->wait_timeout) < 0)
				return 2;
		} else if (next && !strcmp(a, "--redis")) {
			s->addr = argv[++i];
		} else if (next && !strcmp(a, "--out")) {
			s->out = argv[++i];
		} else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			submit_usage(stdout);
			return 0;
		} else if (a[0] != '-' && !s->task.code && !s->task.code_file) {
			s->task.code_file = a;
		} else {
			fprintf(stderr, "aisp submit: unknown or incomplete option \"%s\"\n", a);
			submit_usage(stderr);
			return 2;
		}
	}
	if (!s->task.code && !s->task.code_file) {
		fprintf(stderr, "aisp submit: no program: give -c CODE or FILE\n");
		submit_usage(stderr);
		return 2;
	}
	s->seal.redis = s->addr; /* --seal-to node:ID reads the registry there */
	return -1;
}

int cmd_submit(int argc, char **argv)
{
	submit_args s = {0};
	int rc = parse_submit(&s, argc, argv);
	if (rc >= 0)
		return rc;
	buf doc = BUF_INIT;
	_cleanup_free_ char *id = NULL, *reply = NULL;
	bool own_reply = false;
	if (build_task(&s.task, &s.seal, s.wait, s.nondeterministic, s.follow && !s.json, &doc, &id,
	               &reply, &own_reply) < 0) {
		buf_deinit(&doc);
		return 2;
	}
	/* Written before it is sent: a task that cannot be audited later is not submitted. */
	_cleanup_err_ err *we = NULL;
	if (s.task_out && write_file_path(s.task_out, doc.data, doc.len, 0644, &we) < 0) {
		fprintf(stderr, "aisp submit: --task-out %s: %s\n", s.task_out, err_msg(we));
		buf_deinit(&doc);
		return 1;
	}
	_cleanup_redis_ redisContext *c = connect_redis("submit", s.addr, POLL_BLOCK_MS);
	if (!c) {
		buf_deinit(&doc);
		return EXIT_REDIS;
	}
	_cleanup_reply_ redisReply *r =
	    redisCommand(c, "XADD %s * task %b", PROTO_KEY_TASKS, doc.data, doc.len);
	buf_deinit(&doc);
	if (reply_failed("submit", c, r))
		return EXIT_REDIS;
	if (!s.wait) {
		printf("%s\n", id);
		return 0;
	}
	size_t len = 0;
	warn_if_no_node(c);
	cli_follow follow;
	cli_follow_init(&follow);
	cli_follow *fw = s.follow && !s.json ? &follow : NULL;
	_cleanup_free_ char *res = wait_result("submit", c, id, reply, s.wait_timeout, fw, &len);
	if (own_reply)
		freeReplyObject(redisCommand(c, "DEL %s", reply));
	rc = !res ? (c->err ? EXIT_REDIS : EXIT_WAIT_TIMEOUT)
	          : print_result("submit", res, len, s.json, s.out, fw);
	cli_follow_deinit(&follow);
	return rc;
}

/* aisp wait ID / aisp result ID share their options. */
static int id_command(const char *cmd, int argc, char **argv, bool wait)
{
	const char *addr = NULL, *id = NULL, *out = NULL;
	bool json = false;
	double timeout = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *next = i + 1 < argc ? argv[i + 1] : NULL;
		if (next && !strcmp(a, "--redis")) {
			addr = argv[++i];
		} else if (wait && next && !strcmp(a, "--out")) {
			out = argv[++i];
		} else if (wait && next && !strcmp(a, "--timeout")) {
			if (parse_seconds(cmd, argv[++i], &timeout) < 0)
				return 2;
		} else if (wait && !strcmp(a, "--json")) {
			json = true;
		} else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			printf("usage: aisp %s ID %s[--redis ADDR]\n%s", cmd,
			       wait ? "[--timeout S] [--json] [--out DIR] " : "", redis_usage);
			if (wait)
				printf(
				    "Waits for the result of task ID and prints it as `aisp run` "
				    "does; exit status as `aisp submit --wait`.\n");
			else
				printf("Prints the result document of task ID (exit 1 when there "
				       "is none).\n");
			return 0;
		} else if (a[0] != '-' && !id) {
			id = a;
		} else {
			fprintf(stderr, "aisp %s: unknown or incomplete option \"%s\"\n", cmd, a);
			return 2;
		}
	}
	if (!id) {
		fprintf(stderr, "aisp %s: which task? (aisp %s ID)\n", cmd, cmd);
		return 2;
	}
	_cleanup_redis_ redisContext *c = connect_redis(cmd, addr, POLL_BLOCK_MS);
	if (!c)
		return EXIT_REDIS;
	size_t len = 0;
	if (!wait) {
		bool failed;
		_cleanup_free_ char *doc = get_result(cmd, c, id, &len, &failed);
		if (failed)
			return EXIT_REDIS;
		if (!doc) {
			fprintf(stderr,
			        "aisp result: no result for %s (not finished, or expired)\n", id);
			return 1;
		}
		fwrite(doc, 1, len, stdout);
		fputc('\n', stdout);
		return 0;
	}
	_cleanup_free_ char *doc = wait_result(cmd, c, id, PROTO_KEY_RESULTS, timeout, NULL, &len);
	if (!doc)
		return c->err ? EXIT_REDIS : EXIT_WAIT_TIMEOUT;
	return print_result(cmd, doc, len, json, out, NULL);
}

int cmd_wait(int argc, char **argv)
{
	return id_command("wait", argc, argv, true);
}

int cmd_result(int argc, char **argv)
{
	return id_command("result", argc, argv, false);
}

/* ---- aisp cancel ---- */

/* As long as a result lives (the node default, result_ttl_s = 86400). */
#define CANCEL_TTL_MS 86400000

static int cancel_usage(FILE *f, int rc)
{
	fprintf(
	    f,
	    "usage: aisp cancel ID [--wait] [--timeout S] [--json] [--out DIR] [--redis ADDR]\n%s"
	    "Asks the nodes to cancel task ID (SET " PROTO_KEY_CANCEL_PREFIX
	    "ID, kept as long as a result):\n"
	    "a queued task is never run, a running one is stopped; either way its one "
	    "result\nhas status cancelled (with what the program printed so far). "
	    "--wait prints that\nresult as `aisp wait` does (exit 130 when cancelled).\n",
	    redis_usage);
	return rc;
}

int cmd_cancel(int argc, char **argv)
{
	const char *addr = NULL, *id = NULL, *out = NULL;
	bool wait = false, json = false;
	double timeout = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *next = i + 1 < argc ? argv[i + 1] : NULL;
		if (next && !strcmp(a, "--redis"))
			addr = argv[++i];
		else if (next && !strcmp(a, "--out"))
			out = argv[++i];
		else if (next && !strcmp(a, "--timeout") &&
		         parse_seconds("cancel", next, &timeout) == 0)
			i++;
		else if (!strcmp(a, "--wait") || !strcmp(a, "--json"))
			*(a[2] == 'w' ? &wait : &json) = true;
		else if (!strcmp(a, "--help") || !strcmp(a, "-h"))
			return cancel_usage(stdout, 0);
		else if (a[0] != '-' && !id && proto_id_valid(a))
			id = a;
		else
			return fprintf(stderr, "aisp cancel: bad argument \"%s\"\n", a),
			       cancel_usage(stderr, 2);
	}
	if (!id)
		return cancel_usage(stderr, 2);
	_cleanup_redis_ redisContext *c = connect_redis("cancel", addr, POLL_BLOCK_MS);
	if (!c)
		return EXIT_REDIS;
	_cleanup_reply_ redisReply *r =
	    redisCommand(c, "SET " PROTO_KEY_CANCEL_PREFIX "%s %lld PX %d", id,
	                 (long long)now_wall_ms(), CANCEL_TTL_MS);
	if (reply_failed("cancel", c, r))
		return EXIT_REDIS;
	if (!wait) {
		printf("cancel requested for %s\n", id);
		return 0;
	}
	size_t len = 0;
	_cleanup_free_ char *doc =
	    wait_result("cancel", c, id, PROTO_KEY_RESULTS, timeout, NULL, &len);
	if (!doc)
		return c->err ? EXIT_REDIS : EXIT_WAIT_TIMEOUT;
	return print_result("cancel", doc, len, json, out, NULL);
}

/* ---- aisp nodes ---- */

static const char *hash_get(const redisReply *h, const char *k)
{
	for (size_t i = 0; h->type == REDIS_REPLY_ARRAY && i + 1 < h->elements; i += 2)
		if (!strcmp(h->element[i]->str, k))
			return h->element[i + 1]->str;
	return "";
}

/* "runc/default/python 2/2 warm, 0 busy; ..." from the pools JSON. */
static void describe_pools(const char *json, buf *out)
{
	char errbuf[128];
	yajl_val v = yajl_tree_parse(json, errbuf, sizeof(errbuf));
	if (!YAJL_IS_ARRAY(v)) {
		buf_append_str(out, "-");
		yajl_tree_free(v);
		return;
	}
	for (size_t i = 0; i < v->u.array.len; i++) {
		yajl_val p = v->u.array.values[i];
		const char *rt[] = {"runtime", NULL}, *im[] = {"image", NULL},
		           *la[] = {"lang", NULL}, *ta[] = {"target", NULL}, *wa[] = {"warm", NULL},
		           *bu[] = {"busy", NULL};
		yajl_val r = yajl_tree_get(p, rt, yajl_t_string);
		yajl_val im_v = yajl_tree_get(p, im, yajl_t_string);
		yajl_val l = yajl_tree_get(p, la, yajl_t_string);
		yajl_val t = yajl_tree_get(p, ta, yajl_t_number);
		yajl_val w = yajl_tree_get(p, wa, yajl_t_number);
		yajl_val b = yajl_tree_get(p, bu, yajl_t_number);
		const char *image = im_v ? YAJL_GET_STRING(im_v) : "?";
		if (!strncmp(image, "sha256:", 7) && strlen(image) > 19)
			image += 7; /* shortened below */
		buf_appendf(out, "%s%s/%.12s/%s %lld/%lld warm %lld busy", i ? "; " : "",
		            r ? YAJL_GET_STRING(r) : "?", image, l ? YAJL_GET_STRING(l) : "?",
		            w ? YAJL_GET_INTEGER(w) : 0LL, t ? YAJL_GET_INTEGER(t) : 0LL,
		            b ? YAJL_GET_INTEGER(b) : 0LL);
	}
	if (v->u.array.len == 0)
		buf_append_str(out, "-");
	yajl_tree_free(v);
}

int cmd_nodes(int argc, char **argv)
{
	const char *addr = NULL;
	for (int i = 1; i < argc; i++) {
		if (i + 1 < argc && !strcmp(argv[i], "--redis")) {
			addr = argv[++i];
		} else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			printf("usage: aisp nodes [--redis ADDR]\n%s"
			       "Lists live nodes (aisp:nodes) and their pools; drops ids whose "
			       "registry hash expired.\n",
			       redis_usage);
			return 0;
		} else {
			fprintf(stderr, "aisp nodes: unknown or incomplete option \"%s\"\n",
			        argv[i]);
			return 2;
		}
	}
	_cleanup_redis_ redisContext *c = connect_redis("nodes", addr, 0);
	if (!c)
		return EXIT_REDIS;
	_cleanup_reply_ redisReply *m = redisCommand(c, "SMEMBERS %s", PROTO_KEY_NODES);
	if (reply_failed("nodes", c, m))
		return EXIT_REDIS;
	printf("%-20s %-8s %5s %5s %8s %9s %-14s %s\n", "ID", "VERSION", "SLOTS", "BUSY", "DONE",
	       "HEARTBEAT", "RUNTIMES", "POOLS");
	int64_t now = now_wall_ms();
	for (size_t i = 0; i < m->elements; i++) {
		const char *id = m->element[i]->str;
		_cleanup_reply_ redisReply *h =
		    redisCommand(c, "HGETALL %s%s", PROTO_KEY_NODE_PREFIX, id);
		if (reply_failed("nodes", c, h))
			return EXIT_REDIS;
		if (h->type != REDIS_REPLY_ARRAY || h->elements == 0) {
			freeReplyObject(redisCommand(c, "SREM %s %s", PROTO_KEY_NODES, id));
			continue;
		}
		int64_t hb = 0;
		parse_i64(hash_get(h, "heartbeat_ms"), 0, INT64_MAX, &hb);
		buf pools = BUF_INIT;
		describe_pools(hash_get(h, "pools"), &pools);
		const char *draining = !strcmp(hash_get(h, "draining"), "1") ? " (draining)" : "";
		printf("%-20s %-8s %5s %5s %8s %8.1fs %-14s %s%s\n", id, hash_get(h, "version"),
		       hash_get(h, "slots"), hash_get(h, "busy"), hash_get(h, "tasks_done"),
		       hb ? (double)(now - hb) / 1000.0 : -1.0, hash_get(h, "runtimes"),
		       buf_str(&pools), draining);
		buf_deinit(&pools);
	}
	return 0;
}
