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
	SCRIPT_DUPLICATE,
	SCRIPT_PUBLISH,
	SCRIPT_DEAD,
	SCRIPT_RELEASE,
	SCRIPT_PENDING,
	SCRIPT_HANDOFF,
	SCRIPT_LOCK,
	SCRIPT_UNREGISTER,
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

/* nkeys 0: set by the caller once it has put the KEYS. */
static call *call_new(script_id s, rconn_reply_fn cb, void *arg, int nkeys)
{
	call *c = xzalloc(sizeof(*c));
	*c = (call){.s = s, .cb = cb, .arg = arg, .nkeys = nkeys};
	return c;
}

/* Shared by every script that acknowledges an entry or tells a reply stream. A reply stream
 * and the waiters set are the client's to break (a stream at its maximum id, a string at the
 * name): telling them goes through redis.pcall, so that a client's key never decides whether
 * a result is published (Redis does not roll a failed script back). */
#define PRELUDE                                                                                    \
	"local function ack(tasks, group, entry)\n"                                                \
	"  if entry ~= '' then\n"                                                                  \
	"    redis.call('XACK', tasks, group, entry)\n"                                            \
	"    redis.call('XDEL', tasks, entry)\n"                                                   \
	"  end\n"                                                                                  \
	"end\n"                                                                                    \
	"local function tell(stream, id, result, ttl)\n"                                           \
	"  redis.pcall('XADD', stream, '*', 'id', id, 'result', result)\n"                         \
	"  redis.pcall('PEXPIRE', stream, ttl)\n"                                                  \
	"end\n"                                                                                    \
	"local function wait(waiters, stream, ttl)\n"                                              \
	"  redis.pcall('SADD', waiters, stream)\n"                                                 \
	"  redis.pcall('PEXPIRE', waiters, ttl)\n"                                                 \
	"end\n"

static void put_key(call *c, const char *prefix, const char *id)
{
	_cleanup_free_ char *k = xasprintf("%s%s", prefix, id);
	put_str(c, k);
}

/* ---- LEASE ---- */

static const char lease_lua[] =
    PRELUDE "local existing = redis.call('GET', KEYS[1])\n"
            "if existing then\n"
            "  if KEYS[4] ~= '' then tell(KEYS[4], ARGV[6], existing, ARGV[7]) end\n"
            "  ack(KEYS[3], ARGV[3], ARGV[4])\n"
            "  return {0, 0}\n"
            "end\n"
            "local v = redis.call('GET', KEYS[2])\n"
            "if v and v ~= ARGV[1] then\n"
            "  if ARGV[5] ~= '1' then return {3, 0} end\n"
            "  if KEYS[4] ~= '' then wait(KEYS[5], KEYS[4], ARGV[7]) end\n"
            "  ack(KEYS[3], ARGV[3], ARGV[4])\n"
            "  return {2, 0}\n"
            "end\n"
            "local p = redis.call('XPENDING', KEYS[3], ARGV[3], ARGV[4], ARGV[4], 1)\n"
            "local n = 1\n"
            "if p[1] then n = p[1][4] end\n"
            "if redis.call('EXISTS', KEYS[6]) == 1 then return {4, n} end\n"
            "redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])\n"
            "return {1, n}\n";

void script_lease(rconn *rc, const script_lease_args *a, rconn_reply_fn cb, void *arg)
{
	call *c = call_new(SCRIPT_LEASE, cb, arg, 6);
	put_key(c, PROTO_KEY_RESULT_PREFIX, a->id);  /* KEYS[1] */
	put_key(c, PROTO_KEY_RUNNING_PREFIX, a->id); /* KEYS[2] */
	put_str(c, PROTO_KEY_TASKS);                 /* KEYS[3] */
	put_str(c, a->reply_stream);                 /* KEYS[4], "" for none */
	put_key(c, PROTO_KEY_WAITERS_PREFIX, a->id); /* KEYS[5] */
	put_key(c, PROTO_KEY_CANCEL_PREFIX, a->id);  /* KEYS[6] */
	put_str(c, a->node_id);                      /* ARGV[1] */
	put_int(c, a->ttl_ms);                       /* ARGV[2] */
	put_str(c, PROTO_GROUP);                     /* ARGV[3] */
	put_str(c, a->entry);                        /* ARGV[4] */
	put_str(c, a->fresh ? "1" : "0");            /* ARGV[5] */
	put_str(c, a->id);                           /* ARGV[6] */
	put_int(c, a->reply_ttl_ms);                 /* ARGV[7] */
	send_call(rc, c);
}

/* ---- DUPLICATE ---- */

static const char duplicate_lua[] = PRELUDE "local existing = redis.call('GET', KEYS[1])\n"
                                            "local r = 0\n"
                                            "if existing and KEYS[3] ~= '' then\n"
                                            "  tell(KEYS[3], ARGV[3], existing, ARGV[4])\n"
                                            "elseif KEYS[3] ~= '' then\n"
                                            "  wait(KEYS[4], KEYS[3], ARGV[4])\n"
                                            "  r = 1\n"
                                            "end\n"
                                            "ack(KEYS[2], ARGV[1], ARGV[2])\n"
                                            "return r\n";

void script_duplicate(rconn *rc, const script_duplicate_args *a, rconn_reply_fn cb, void *arg)
{
	call *c = call_new(SCRIPT_DUPLICATE, cb, arg, 4);
	put_key(c, PROTO_KEY_RESULT_PREFIX, a->id);  /* KEYS[1] */
	put_str(c, PROTO_KEY_TASKS);                 /* KEYS[2] */
	put_str(c, a->reply_stream);                 /* KEYS[3], "" for none */
	put_key(c, PROTO_KEY_WAITERS_PREFIX, a->id); /* KEYS[4] */
	put_str(c, PROTO_GROUP);                     /* ARGV[1] */
	put_str(c, a->entry);                        /* ARGV[2] */
	put_str(c, a->id);                           /* ARGV[3] */
	put_int(c, a->reply_ttl_ms);                 /* ARGV[4] */
	send_call(rc, c);
}

/* ---- PUBLISH and DEAD ---- */

/* The waiting reply streams are named in a set, not in KEYS: fine on a single Redis (the
 * protocol does not support Redis Cluster). A result key that already holds exactly this
 * result is this call's own earlier publish (a retry after a lost reply): published, not
 * discarded, and nothing is told twice. */
#define PUBLISH_LUA                                                                                \
	"local function audit()\n"                                                                 \
	"  if KEYS[7] == '' then return end\n"                                                     \
	"  redis.call('XADD', KEYS[7], 'MAXLEN', '~', '100000', '*', 'id', ARGV[5],\n"             \
	"             'sequence', ARGV[9], 'result', ARGV[1])\n"                                   \
	"  redis.call('PEXPIRE', KEYS[7], ARGV[2])\n"                                              \
	"end\n"                                                                                    \
	"if redis.call('GET', KEYS[1]) == ARGV[1] then\n"                                          \
	"  ack(KEYS[3], ARGV[3], ARGV[4])\n"                                                       \
	"  if redis.call('GET', KEYS[5]) == ARGV[7] then redis.call('DEL', KEYS[5]) end\n"         \
	"  return 1\n"                                                                             \
	"end\n"                                                                                    \
	"if ARGV[8] == '1' then\n"                                                                 \
	"  local existing = redis.call('GET', KEYS[1])\n"                                          \
	"  if existing then\n"                                                                     \
	"    if KEYS[4] ~= '' then tell(KEYS[4], ARGV[5], existing, ARGV[2]) end\n"                \
	"    ack(KEYS[3], ARGV[3], ARGV[4])\n"                                                     \
	"    audit()\n"                                                                            \
	"    return 0\n"                                                                           \
	"  end\n"                                                                                  \
	"  if redis.call('EXISTS', KEYS[5]) == 1 then\n"                                           \
	"    if KEYS[4] ~= '' then wait(KEYS[6], KEYS[4], ARGV[2]) end\n"                          \
	"    ack(KEYS[3], ARGV[3], ARGV[4])\n"                                                     \
	"    audit()\n"                                                                            \
	"    return 2\n"                                                                           \
	"  end\n"                                                                                  \
	"end\n"                                                                                    \
	"local published = 0\n"                                                                    \
	"if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then\n"                       \
	"  published = 1\n"                                                                        \
	"  redis.call('XADD', KEYS[2], 'MAXLEN', '~', '100000', '*', 'id', ARGV[5],\n"             \
	"             'status', ARGV[6], 'node', ARGV[7])\n"                                       \
	"  if KEYS[4] ~= '' then tell(KEYS[4], ARGV[5], ARGV[1], ARGV[2]) end\n"                   \
	"  for _, s in ipairs(redis.call('SMEMBERS', KEYS[6])) do\n"                               \
	"    if s ~= KEYS[4] then tell(s, ARGV[5], ARGV[1], ARGV[2]) end\n"                        \
	"  end\n"                                                                                  \
	"  redis.call('DEL', KEYS[6])\n"                                                           \
	"else\n"                                                                                   \
	"  audit()\n"                                                                              \
	"end\n"                                                                                    \
	"ack(KEYS[3], ARGV[3], ARGV[4])\n"                                                         \
	"if redis.call('GET', KEYS[5]) == ARGV[7] then redis.call('DEL', KEYS[5]) end\n"           \
	"return published\n"

static const char publish_lua[] = PRELUDE PUBLISH_LUA;
static const char dead_lua[] =
    PRELUDE "redis.call('XADD', KEYS[8], 'MAXLEN', '~', '100000', '*', 'id', ARGV[5],\n"
            "           'entry', ARGV[4], 'reason', ARGV[10], 'deliveries', ARGV[11],\n"
            "           'task', ARGV[12])\n" PUBLISH_LUA;

void script_publish(rconn *rc, const script_publish_args *a, rconn_reply_fn cb, void *arg)
{
	bool dead = a->dead_reason != NULL;
	call *c = call_new(dead ? SCRIPT_DEAD : SCRIPT_PUBLISH, cb, arg, 0);
	put_key(c, PROTO_KEY_RESULT_PREFIX, a->id);  /* KEYS[1] */
	put_str(c, PROTO_KEY_RESULTS);               /* KEYS[2] */
	put_str(c, PROTO_KEY_TASKS);                 /* KEYS[3] */
	put_str(c, a->reply_stream);                 /* KEYS[4], "" for none */
	put_key(c, PROTO_KEY_RUNNING_PREFIX, a->id); /* KEYS[5] */
	put_key(c, PROTO_KEY_WAITERS_PREFIX, a->id); /* KEYS[6] */
	if (a->sequence)
		put_key(c, PROTO_KEY_AUDIT_PREFIX, a->node_id); /* KEYS[7] */
	else
		put_str(c, ""); /* KEYS[7]: unsigned, nothing to account for */
	if (dead)
		put_str(c, PROTO_KEY_DEAD); /* KEYS[8] */
	c->nkeys = c->argc;
	put(c, a->result_json, a->result_len);   /* ARGV[1] */
	put_int(c, a->ttl_ms);                   /* ARGV[2] */
	put_str(c, PROTO_GROUP);                 /* ARGV[3] */
	put_str(c, a->entry);                    /* ARGV[4], "" for none */
	put_str(c, a->id);                       /* ARGV[5] */
	put_str(c, a->status);                   /* ARGV[6] */
	put_str(c, a->node_id);                  /* ARGV[7] */
	put_str(c, a->only_if_free ? "1" : "0"); /* ARGV[8] */
	put_int(c, (int64_t)a->sequence);        /* ARGV[9] */
	if (dead) {
		put_str(c, a->dead_reason);                                 /* ARGV[10] */
		put_int(c, a->dead_deliveries);                             /* ARGV[11] */
		put(c, a->dead_task ? a->dead_task : "", a->dead_task_len); /* ARGV[12] */
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
	call *c = call_new(SCRIPT_RELEASE, cb, arg, 2);
	put_str(c, PROTO_KEY_TASKS); /* KEYS[1] */
	if (a->id)
		put_key(c, PROTO_KEY_RUNNING_PREFIX, a->id); /* KEYS[2] */
	else
		put_str(c, "");      /* KEYS[2]: no lease held */
	put_str(c, PROTO_GROUP);     /* ARGV[1] */
	put_str(c, a->node_id);      /* ARGV[2] */
	put_str(c, a->entry);        /* ARGV[3] */
	put_int(c, RELEASE_IDLE_MS); /* ARGV[4] */
	send_call(rc, c);
}

/* ---- PENDING ---- */

static const char pending_lua[] =
    "local out = {}\n"
    "local p = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', ARGV[3], ARGV[2])\n"
    "for _, e in ipairs(p) do\n"
    "  local r = redis.call('XRANGE', KEYS[1], e[1], e[1])\n"
    "  local fields = false\n"
    "  if r[1] then fields = r[1][2] end\n"
    "  out[#out + 1] = {e[1], fields, e[4]}\n"
    "end\n"
    "return out\n";

void script_pending(rconn *rc, const script_pending_args *a, rconn_reply_fn cb, void *arg)
{
	call *c = call_new(SCRIPT_PENDING, cb, arg, 1);
	put_str(c, PROTO_KEY_TASKS); /* KEYS[1] */
	put_str(c, PROTO_GROUP);     /* ARGV[1] */
	put_str(c, a->node_id);      /* ARGV[2] */
	put_int(c, a->count);        /* ARGV[3] */
	send_call(rc, c);
}

/* ---- HANDOFF ---- */

/* Node hashes are read by name (aisp:node:<id>), not through KEYS: fine on a single Redis. */
static const char handoff_lua[] =
    "local hops = tonumber(redis.call('GET', KEYS[3]) or '0')\n"
    "if hops >= tonumber(ARGV[6]) then return {0, hops, ''} end\n"
    "local function has(csv, x)\n"
    "  return (',' .. (csv or '') .. ','):find(',' .. x .. ',', 1, true) ~= nil\n"
    "end\n"
    "local function fits(h)\n"
    "  if h.draining == '1' or not h.runtimes then return false end\n"
    "  if ARGV[9] == '1' and (not h.age or h.age == ARGV[10]) then return false end\n"
    "  if ARGV[9] == '2' and h.age ~= ARGV[10] then return false end\n"
    "  if ARGV[4] ~= '' and not has(h.runtimes, ARGV[4]) then return false end\n"
    "  if ARGV[5] ~= '' and not has(h.images, ARGV[5]) and not has(h.image_digests, ARGV[5])\n"
    "  then return false end\n"
    "  for f, v in string.gmatch(ARGV[7], '([%w_]+)=(%d+)') do\n"
    "    local m = tonumber(h['max_' .. f] or '-1')\n"
    "    if m < tonumber(v) then return false end\n"
    "  end\n"
    "  return true\n"
    "end\n"
    "local cands = {}\n"
    "for _, id in ipairs(redis.call('SMEMBERS', KEYS[2])) do\n"
    "  if id ~= ARGV[3] then\n"
    "    local kv = redis.call('HGETALL', 'aisp:node:' .. id)\n"
    "    local h = {}\n"
    "    for i = 1, #kv, 2 do h[kv[i]] = kv[i + 1] end\n"
    "    if fits(h) then cands[#cands + 1] = id end\n"
    "  end\n"
    "end\n"
    "if #cands == 0 then return {1, hops, ''} end\n"
    "table.sort(cands)\n"
    "local target = cands[(hops % #cands) + 1]\n"
    "redis.call('XCLAIM', KEYS[1], ARGV[1], target, 0, ARGV[2], 'JUSTID')\n"
    "redis.call('INCR', KEYS[3])\n"
    "redis.call('PEXPIRE', KEYS[3], ARGV[8])\n"
    "return {2, hops + 1, target}\n";

void script_handoff(rconn *rc, const script_handoff_args *a, rconn_reply_fn cb, void *arg)
{
	call *c = call_new(SCRIPT_HANDOFF, cb, arg, 3);
	put_str(c, PROTO_KEY_TASKS);                    /* KEYS[1] */
	put_str(c, PROTO_KEY_NODES);                    /* KEYS[2] */
	put_key(c, PROTO_KEY_HANDOFF_PREFIX, a->entry); /* KEYS[3] */
	put_str(c, PROTO_GROUP);                        /* ARGV[1] */
	put_str(c, a->entry);                           /* ARGV[2] */
	put_str(c, a->node_id);                         /* ARGV[3] */
	put_str(c, a->runtime);                         /* ARGV[4], "" any */
	put_str(c, a->image);                           /* ARGV[5], "" any */
	put_int(c, a->max_hops);                        /* ARGV[6] */
	put_str(c, a->limits);                          /* ARGV[7] */
	put_int(c, a->ttl_ms);                          /* ARGV[8] */
	put_str(c, a->age_rule == SCRIPT_AGE_OTHER  ? "1"
	           : a->age_rule == SCRIPT_AGE_SAME ? "2"
	                                            : ""); /* ARGV[9] */
	put_str(c, a->age_recipient);                      /* ARGV[10] */
	send_call(rc, c);
}

/* ---- LOCK and UNREGISTER ---- */

static const char lock_lua[] = "local v = redis.call('GET', KEYS[1])\n"
                               "if v and v ~= ARGV[1] then return {0, v} end\n"
                               "if v then\n"
                               "  redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
                               "else\n"
                               "  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])\n"
                               "end\n"
                               "return {1, ''}\n";

void script_lock(rconn *rc, const script_lock_args *a, rconn_reply_fn cb, void *arg)
{
	call *c = call_new(SCRIPT_LOCK, cb, arg, 1);
	put_key(c, PROTO_KEY_LOCK_PREFIX, a->node_id); /* KEYS[1] */
	put_str(c, a->token);                          /* ARGV[1] */
	put_int(c, a->ttl_ms);                         /* ARGV[2] */
	send_call(rc, c);
}

static const char unregister_lua[] = "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end\n"
                                     "redis.call('DEL', KEYS[2])\n"
                                     "redis.call('SREM', KEYS[3], ARGV[2])\n"
                                     "redis.call('DEL', KEYS[1])\n"
                                     "return 1\n";

void script_unregister(rconn *rc, const script_unregister_args *a, rconn_reply_fn cb, void *arg)
{
	call *c = call_new(SCRIPT_UNREGISTER, cb, arg, 3);
	put_key(c, PROTO_KEY_LOCK_PREFIX, a->node_id); /* KEYS[1] */
	put_key(c, PROTO_KEY_NODE_PREFIX, a->node_id); /* KEYS[2] */
	put_str(c, PROTO_KEY_NODES);                   /* KEYS[3] */
	put_str(c, a->token);                          /* ARGV[1] */
	put_str(c, a->node_id);                        /* ARGV[2] */
	send_call(rc, c);
}

/* ---- EVALSHA / EVAL ---- */

static const char *const texts[SCRIPT__COUNT] = {
    [SCRIPT_LEASE] = lease_lua,           [SCRIPT_DUPLICATE] = duplicate_lua,
    [SCRIPT_PUBLISH] = publish_lua,       [SCRIPT_DEAD] = dead_lua,
    [SCRIPT_RELEASE] = release_lua,       [SCRIPT_PENDING] = pending_lua,
    [SCRIPT_HANDOFF] = handoff_lua,       [SCRIPT_LOCK] = lock_lua,
    [SCRIPT_UNREGISTER] = unregister_lua,
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
