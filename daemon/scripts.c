/* The Lua scripts aispd runs in Redis (one atomic step each) and their EVALSHA/EVAL call.
 *
 * LEASE    KEYS result, running          ARGV node, ttl_ms
 *          0: the id already has a result; 1: leased (also when the lease was this node's
 *          own, left by a previous life); 2: another node holds the lease.
 * PUBLISH  KEYS result, results, tasks, reply (or ""), running
 *          ARGV result JSON, ttl_ms, group, entry (or ""), id, status, node
 *          SET NX; only if set: XADD results and the reply stream. Always XACK+XDEL the entry
 *          and DEL the lease if it is this node's. Returns 1 if published, 0 if a result
 *          already existed.
 * DEAD     KEYS as PUBLISH + dead stream; ARGV as PUBLISH + reason, deliveries, task JSON:
 *          XADD aisp:dead, then exactly PUBLISH.
 * RELEASE  KEYS tasks, running           ARGV group, node, entry, idle_ms
 *          (shutdown) sets the entry's idle time past every reclaim time so another node's
 *          XAUTOCLAIM takes it at once, and drops this node's lease. */
#include "daemon/node.h"

#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"

#define PUBLISH_BODY                                                                               \
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

static const char *const scripts[SCRIPT__COUNT] = {
    [SCRIPT_LEASE] = "if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end\n"
                     "local v = redis.call('GET', KEYS[2])\n"
                     "if v and v ~= ARGV[1] then return 2 end\n"
                     "redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])\n"
                     "return 1\n",
    [SCRIPT_PUBLISH] = PUBLISH_BODY,
    [SCRIPT_DEAD] = "redis.call('XADD', KEYS[6], 'MAXLEN', '~', '100000', '*', 'id', ARGV[5],\n"
                    "           'entry', ARGV[4], 'reason', ARGV[8], 'deliveries', ARGV[9],\n"
                    "           'task', ARGV[10])\n" PUBLISH_BODY,
    [SCRIPT_RELEASE] =
        "redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3],\n"
        "           'IDLE', ARGV[4], 'JUSTID')\n"
        "if redis.call('GET', KEYS[2]) == ARGV[2] then redis.call('DEL', KEYS[2]) end\n"
        "return 1\n",
};

static char shas[SCRIPT__COUNT][41];

const char *script_text(script_id s)
{
	return scripts[s];
}

static const char *script_sha(script_id s)
{
	if (!shas[s][0]) {
		unsigned char md[SHA_DIGEST_LENGTH];
		SHA1((const unsigned char *)scripts[s], strlen(scripts[s]), md);
		for (int i = 0; i < SHA_DIGEST_LENGTH; i++) {
			static const char hex[] = "0123456789abcdef";
			shas[s][2 * i] = hex[md[i] >> 4];
			shas[s][2 * i + 1] = hex[md[i] & 15];
		}
		shas[s][40] = '\0';
	}
	return shas[s];
}

/* One call, kept until its reply so that it can be resent as EVAL. */
struct call {
	script_id s;
	rconn_reply_fn cb;
	void *arg;
	int argc;
	char **argv;
	size_t *lens;
	bool retried;
};

static void call_free(struct call *c)
{
	for (int i = 0; i < c->argc; i++)
		free(c->argv[i]);
	free(c->argv);
	free(c->lens);
	free(c);
}

static void on_eval(rconn *rc, redisReply *r, void *arg)
{
	struct call *c = arg;
	if (!c->retried && rconn_reply_is_error(r, "NOSCRIPT")) {
		c->retried = true;
		free(c->argv[1]);
		strcpy(c->argv[0], "EVAL");
		c->lens[0] = 4;
		c->argv[1] = xstrdup(scripts[c->s]);
		c->lens[1] = strlen(scripts[c->s]);
		rconn_cmdv(rc, on_eval, c, 0, c->argc, (const char **)c->argv, c->lens);
		return;
	}
	if (c->cb)
		c->cb(rc, r, c->arg);
	call_free(c);
}

void script_call(rconn *rc, script_id s, rconn_reply_fn cb, void *arg, int nkeys, int nargs,
                 const char *const *kv, const size_t *lens)
{
	struct call *c = xzalloc(sizeof(*c));
	c->s = s;
	c->cb = cb;
	c->arg = arg;
	c->argc = 3 + nkeys + nargs;
	c->argv = xcalloc((size_t)c->argc, sizeof(*c->argv));
	c->lens = xcalloc((size_t)c->argc, sizeof(*c->lens));
	c->argv[0] = xstrdup("EVALSHA");
	c->argv[1] = xstrdup(script_sha(s));
	c->argv[2] = xasprintf("%d", nkeys);
	for (int i = 0; i < 3; i++)
		c->lens[i] = strlen(c->argv[i]);
	for (int i = 0; i < nkeys + nargs; i++) {
		size_t l = lens ? lens[i] : strlen(kv[i]);
		c->argv[3 + i] = xmalloc(l + 1);
		memcpy(c->argv[3 + i], kv[i], l);
		c->argv[3 + i][l] = '\0';
		c->lens[3 + i] = l;
	}
	rconn_cmdv(rc, on_eval, c, 0, c->argc, (const char **)c->argv, c->lens);
}
