/* The Lua scripts aispd runs in Redis (scripts.h), each beside the function that turns its
 * typed arguments into KEYS and ARGV, and their EVALSHA call (EVAL on NOSCRIPT). */
#include "daemon/scripts.h"

#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "proto/proto.h"

typedef enum script_id {
	SCRIPT_LEASE = 0,
	SCRIPT_PUBLISH,
	SCRIPT_DEAD,
	SCRIPT_RELEASE,
	SCRIPT__COUNT,
} script_id;

/* One script call being built: KEYS then ARGV, copied. */
typedef struct call {
	script_id s;
	rconn_reply_fn cb;
	void *arg;
	int nkeys, argc;
	char *argv[24];
	size_t lens[24];
	bool retried;
} call;

static void put(call *c, const char *s, size_t n)
{
	char *v = xmalloc(n + 1);
	memcpy(v, s, n);
	v[n] = '\0';
	c->argv[c->argc] = v;
	c->lens[c->argc++] = n;
}

static void put_str(call *c, const char *s)
{
	s = s ? s : "";
	put(c, s, strlen(s));
}

static void put_int(call *c, int64_t v)
{
	char b[24];
	int n = snprintf(b, sizeof(b), "%lld", (long long)v);
	put(c, b, (size_t)n);
}

static void send_call(rconn *rc, call *c);

/* ---- LEASE ---- */

static const char lease_lua[] = "if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end\n"
                                "local v = redis.call('GET', KEYS[2])\n"
                                "if v and v ~= ARGV[1] then return 2 end\n"
                                "redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])\n"
                                "return 1\n";

void script_lease(rconn *rc, const script_lease_args *a, rconn_reply_fn cb, void *arg)
{
	call *c = xzalloc(sizeof(*c));
	*c = (call){.s = SCRIPT_LEASE, .cb = cb, .arg = arg, .nkeys = 2};
	put_str(c, a->result_key);  /* KEYS[1] */
	put_str(c, a->running_key); /* KEYS[2] */
	put_str(c, a->node_id);     /* ARGV[1] */
	put_int(c, a->ttl_ms);      /* ARGV[2] */
	send_call(rc, c);
}

/* ---- PUBLISH and DEAD ---- */

#define PUBLISH_LUA                                                                                \
	"local published = 0\n"                                                                    \
	"if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then\n"                       \
	"  published = 1\n"                                                                        \
	"  redis.call('XADD', KEYS[2], 'MAXLEN', '~', '100000', '*', 'id', ARGV[5],\n"             \
	"             'status', ARGV[6], 'node', ARGV[7])\n"                                       \
	"  if KEYS[4] ~= '' then\n"                                                                \
	"    redis.call('XADD', KEYS[4], 'MAXLEN', '~', '1000', '*', 'id', ARGV[5],\n"             \
	"               'result', ARGV[1])\n"                                                      \
	"  end\n"                                                                                  \
	"end\n"                                                                                    \
	"if ARGV[4] ~= '' then\n"                                                                  \
	"  redis.call('XACK', KEYS[3], ARGV[3], ARGV[4])\n"                                        \
	"  redis.call('XDEL', KEYS[3], ARGV[4])\n"                                                 \
	"end\n"                                                                                    \
	"if redis.call('GET', KEYS[5]) == ARGV[7] then redis.call('DEL', KEYS[5]) end\n"           \
	"return published\n"

static const char publish_lua[] = PUBLISH_LUA;
static const char dead_lua[] =
    "redis.call('XADD', KEYS[6], 'MAXLEN', '~', '100000', '*', 'id', ARGV[5],\n"
    "           'entry', ARGV[4], 'reason', ARGV[8], 'deliveries', ARGV[9],\n"
    "           'task', ARGV[10])\n" PUBLISH_LUA;

void script_publish(rconn *rc, const script_publish_args *a, rconn_reply_fn cb, void *arg)
{
	bool dead = a->dead_reason != NULL;
	call *c = xzalloc(sizeof(*c));
	*c = (call){.s = dead ? SCRIPT_DEAD : SCRIPT_PUBLISH, .cb = cb, .arg = arg};
	put_str(c, a->result_key);     /* KEYS[1] */
	put_str(c, PROTO_KEY_RESULTS); /* KEYS[2] */
	put_str(c, PROTO_KEY_TASKS);   /* KEYS[3] */
	put_str(c, a->reply_stream);   /* KEYS[4], "" for none */
	put_str(c, a->running_key);    /* KEYS[5] */
	if (dead)
		put_str(c, PROTO_KEY_DEAD); /* KEYS[6] */
	c->nkeys = c->argc;
	put(c, a->result_json, a->result_len); /* ARGV[1] */
	put_int(c, a->ttl_ms);                 /* ARGV[2] */
	put_str(c, PROTO_GROUP);               /* ARGV[3] */
	put_str(c, a->entry);                  /* ARGV[4], "" for none */
	put_str(c, a->id);                     /* ARGV[5] */
	put_str(c, a->status);                 /* ARGV[6] */
	put_str(c, a->node_id);                /* ARGV[7] */
	if (dead) {
		put_str(c, a->dead_reason);                                 /* ARGV[8] */
		put_int(c, a->dead_deliveries);                             /* ARGV[9] */
		put(c, a->dead_task ? a->dead_task : "", a->dead_task_len); /* ARGV[10] */
	}
	send_call(rc, c);
}

/* ---- RELEASE ---- */

/* The idle time given to released entries: longer than any sensible reclaim time. */
#define RELEASE_IDLE_MS 315360000000LL

static const char release_lua[] =
    "redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3],\n"
    "           'IDLE', ARGV[4], 'JUSTID')\n"
    "if redis.call('GET', KEYS[2]) == ARGV[2] then redis.call('DEL', KEYS[2]) end\n"
    "return 1\n";

void script_release(rconn *rc, const script_release_args *a, rconn_reply_fn cb, void *arg)
{
	call *c = xzalloc(sizeof(*c));
	*c = (call){.s = SCRIPT_RELEASE, .cb = cb, .arg = arg, .nkeys = 2};
	put_str(c, PROTO_KEY_TASKS); /* KEYS[1] */
	put_str(c, a->running_key);  /* KEYS[2], "" for none */
	put_str(c, PROTO_GROUP);     /* ARGV[1] */
	put_str(c, a->node_id);      /* ARGV[2] */
	put_str(c, a->entry);        /* ARGV[3] */
	put_int(c, RELEASE_IDLE_MS); /* ARGV[4] */
	send_call(rc, c);
}

/* ---- EVALSHA / EVAL ---- */

static const char *const texts[SCRIPT__COUNT] = {
    [SCRIPT_LEASE] = lease_lua,
    [SCRIPT_PUBLISH] = publish_lua,
    [SCRIPT_DEAD] = dead_lua,
    [SCRIPT_RELEASE] = release_lua,
};

static const char *script_sha(script_id s)
{
	static char shas[SCRIPT__COUNT][41];
	if (!shas[s][0]) {
		unsigned char md[SHA_DIGEST_LENGTH];
		SHA1((const unsigned char *)texts[s], strlen(texts[s]), md);
		hex_encode(md, sizeof(md), shas[s]);
	}
	return shas[s];
}

static void call_free(call *c)
{
	for (int i = 0; i < c->argc; i++)
		free(c->argv[i]);
	free(c);
}

/* argv of the command: EVALSHA|EVAL, sha|text, nkeys, then KEYS and ARGV. */
static void send_now(rconn *rc, call *c, rconn_reply_fn on_reply)
{
	const char *argv[3 + ARRAY_SIZE(c->argv)];
	size_t lens[3 + ARRAY_SIZE(c->argv)];
	char nk[16];
	snprintf(nk, sizeof(nk), "%d", c->nkeys);
	argv[0] = c->retried ? "EVAL" : "EVALSHA";
	argv[1] = c->retried ? texts[c->s] : script_sha(c->s);
	argv[2] = nk;
	for (int i = 0; i < 3; i++)
		lens[i] = strlen(argv[i]);
	for (int i = 0; i < c->argc; i++) {
		argv[3 + i] = c->argv[i];
		lens[3 + i] = c->lens[i];
	}
	rconn_cmdv(rc, on_reply, c, 0, 3 + c->argc, argv, lens);
}

static void on_eval(rconn *rc, redisReply *r, void *arg)
{
	call *c = arg;
	if (!c->retried && rconn_reply_is_error(r, "NOSCRIPT")) {
		c->retried = true;
		send_now(rc, c, on_eval);
		return;
	}
	if (c->cb)
		c->cb(rc, r, c->arg);
	call_free(c);
}

static void send_call(rconn *rc, call *c)
{
	send_now(rc, c, on_eval);
}
