/* The node registry (PROTOCOL.md, "The node registry"): aisp:node:<id>, a hash with a TTL of
 * three heartbeats (public key, runtimes, images, pools, slots, state), and the set aisp:nodes.
 * Written on every heartbeat, on every reconnect of the command connection, and when the node
 * starts draining; deleted on shutdown.
 *
 * The public key is also kept by key id, aisp:key:<key id> (pubkey, node.<id>), written with
 * every heartbeat and once more on shutdown, never deleted, with a TTL of the result TTL plus
 * three heartbeats: it outlives every result the key signed, so a stopped node's results still
 * verify (ATTESTATION.md, "Finding the node's key").
 *
 * The node id lock. Two processes with one id (cloned VMs keep the host name, the default id)
 * would fork the hash chain, share one consumer and delete each other's entry. So the entry
 * belongs to whoever holds aisp:lock:<id>, a token unique to the process ("host/pid/random")
 * with the same TTL as the entry, refreshed by every heartbeat through the LOCK script (set
 * when free, refreshed when ours: a compare-and-set). Nothing is read from the stream and
 * nothing registered before the lock is held. A process that finds the lock held by another
 * token waits: the holder may be a dead process whose lock expires within one TTL (a restart
 * after a crash). Refused for longer than a TTL plus a heartbeat, the holder is alive: the
 * node logs so and stops with exit status 1. A node that loses its lock to another process
 * while serving stops the same way. Shutdown deletes the entry and the lock only while the
 * lock holds this process's token (UNREGISTER). */
#include "daemon/node.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "daemon/scripts.h"

/* max_<field> and default_<field> for every limit (internal units, PROTOCOL.md "Limits"), for
 * schedulers and gateways routing tasks and for nodes handing off a task they do not serve. */
static void advertise_limits(node *n, const char *key)
{
	enum { N = 2 * PROTO_LIMIT_COUNT };
	const char *argv[2 + 2 * N];
	size_t lens[2 + 2 * N];
	char names[N][48], values[N][24];
	int argc = 0;
	argv[argc++] = "HSET";
	argv[argc++] = key;
	for (size_t i = 0; i < N; i++) {
		const proto_limit_field *f = &proto_limit_fields[i % PROTO_LIMIT_COUNT];
		bool max = i < PROTO_LIMIT_COUNT;
		snprintf(names[i], sizeof(names[i]), "%s_%s", max ? "max" : "default", f->field);
		snprintf(values[i], sizeof(values[i]), "%lld",
		         (long long)proto_limit_get(
		             max ? &n->cfg->limits_max : &n->cfg->limits_default, f));
		argv[argc++] = names[i];
		argv[argc++] = values[i];
	}
	for (int i = 0; i < argc; i++)
		lens[i] = strlen(argv[i]);
	rconn_cmdv(n->rc, NULL, NULL, 0, argc, argv, lens);
}

/* aisp:key:<key id>: the key and this node's claim to it, renewed. cb per command; returns the
 * number of commands sent. */
static int keep_key(node *n, rconn_reply_fn cb, void *arg)
{
	if (!n->key)
		return 0;
	_cleanup_free_ char *key = xasprintf(PROTO_KEY_KEY_PREFIX "%s", attest_key_id(n->key));
	_cleanup_free_ char *field = xasprintf("node.%s", n->cfg->node_id);
	_cleanup_free_ char *now = xasprintf("%lld", (long long)now_wall_ms());
	_cleanup_free_ char *ttl =
	    xasprintf("%lld", (long long)(n->cfg->result_ttl_s * 1000 + 3 * n->cfg->heartbeat_ms));
	rconn_cmd(n->rc, cb, arg, "HSET", key, "pubkey", n->pubkey_pem, field, now, NULL);
	rconn_cmd(n->rc, cb, arg, "PEXPIRE", key, ttl, NULL);
	return 2;
}

static void write_entry(node *n)
{
	const config *c = n->cfg;
	node_update_health(n);
	node_list_images(n); /* images built since the start are served: announce them */
	_cleanup_free_ char *key = xasprintf(PROTO_KEY_NODE_PREFIX "%s", c->node_id);
	_cleanup_free_ char *slots = xasprintf("%lld", (long long)c->slots);
	_cleanup_free_ char *busy = xasprintf("%zu", n->n_tasks);
	_cleanup_free_ char *done = xasprintf("%llu", (unsigned long long)n->m.tasks_done);
	_cleanup_free_ char *started = xasprintf("%lld", (long long)n->started_ms);
	_cleanup_free_ char *now = xasprintf("%lld", (long long)now_wall_ms());
	_cleanup_free_ char *ttl = xasprintf("%lld", (long long)c->heartbeat_ms * 3);
	buf pools = BUF_INIT;
	pool_describe_json(n->pool, &pools);
	const char *key_id = n->key ? attest_key_id(n->key) : "";
	rconn_cmd(n->rc, NULL, NULL, "HSET", key, "version", AISP_VERSION, "pubkey",
	          n->pubkey_pem ? n->pubkey_pem : "", "key_id", key_id, "runtimes", n->runtimes_csv,
	          "default_runtime", c->runtime_default, "images", n->images_csv, "image_digests",
	          n->image_digests_csv, "default_image", c->image_default, "slots", slots, "busy",
	          busy, "tasks_done", done, "pools", buf_str(&pools), "started_ms", started,
	          "heartbeat_ms", now, "draining", n->cons.draining ? "1" : "0", NULL);
	advertise_limits(n, key);
	if (n->age_recipient_env)
		rconn_cmd(n->rc, NULL, NULL, "HSET", key, "age_recipient", n->age_recipient_env,
		          "age", n->age_recipient, NULL);
	else /* a node restarted without its age key never leaves its old recipient published */
		rconn_cmd(n->rc, NULL, NULL, "HDEL", key, "age_recipient", "age", NULL);
	rconn_cmd(n->rc, NULL, NULL, "PEXPIRE", key, ttl, NULL);
	rconn_cmd(n->rc, NULL, NULL, "SADD", PROTO_KEY_NODES, c->node_id, NULL);
	keep_key(n, NULL, NULL);
	buf_deinit(&pools);
}

static int64_t lock_ttl_ms(const node *n)
{
	return n->cfg->heartbeat_ms * 3;
}

/* Another process holds the id (its token is holder). */
static void lock_refused(node *n, const char *holder)
{
	const config *c = n->cfg;
	int64_t now = now_mono_ms();
	if (n->lock_held) {
		n->lock_held = false;
		log_error(
		    "node id %s: the lock %s%s is now held by %s: another aispd runs with this "
		    "id; stopping (give each node its own [node] id)",
		    c->node_id, PROTO_KEY_LOCK_PREFIX, c->node_id, holder);
	} else if (!n->lock_refused_ms) {
		n->lock_refused_ms = now;
		log_warn("node id %s is in use: %s%s is held by %s; waiting up to %lld ms for it "
		         "to expire (it does if its holder is dead), reading nothing",
		         c->node_id, PROTO_KEY_LOCK_PREFIX, c->node_id, holder,
		         (long long)(lock_ttl_ms(n) + c->heartbeat_ms));
		return;
	} else if (now - n->lock_refused_ms <= lock_ttl_ms(n) + c->heartbeat_ms) {
		return;
	} else {
		log_error("node id %s: %s%s is still held by %s after %lld ms: another live aispd "
		          "has this id; exiting (give each node its own [node] id)",
		          c->node_id, PROTO_KEY_LOCK_PREFIX, c->node_id, holder,
		          (long long)(now - n->lock_refused_ms));
	}
	n->exit_code = 1;
	consumer_drain(n);
}

static void on_lock(rconn *rc, redisReply *r, void *arg)
{
	node *n = arg;
	if (!r || n->cons.stopping)
		return; /* connection lost: tried again on the next heartbeat */
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
	    r->element[0]->type != REDIS_REPLY_INTEGER ||
	    r->element[1]->type != REDIS_REPLY_STRING) {
		log_error("node id lock %s%s: %s; the node reads nothing until it holds its lock",
		          PROTO_KEY_LOCK_PREFIX, n->cfg->node_id,
		          r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
		return;
	}
	if (r->element[0]->integer != 1) {
		if (!n->cons.draining)
			lock_refused(n, r->element[1]->str);
		return;
	}
	if (!n->lock_held)
		log_info("node id %s: lock %s%s taken (%s)", n->cfg->node_id, PROTO_KEY_LOCK_PREFIX,
		         n->cfg->node_id, n->lock_token);
	bool first = !n->lock_held;
	n->lock_held = true;
	n->lock_refused_ms = 0;
	write_entry(n);
	if (first)
		consumer_read_more(n);
}

void registry_heartbeat(node *n)
{
	if (!rconn_ready(n->rc) || n->cons.stopping)
		return;
	script_lock_args a = {
	    .node_id = n->cfg->node_id, .token = n->lock_token, .ttl_ms = lock_ttl_ms(n)};
	script_lock(n->rc, &a, on_lock, n);
}

static void on_heartbeat(evutil_socket_t fd, short what, void *arg)
{
	registry_heartbeat(arg);
}

/* "host/pid/random": unique to this process, and says which process holds an id. */
static char *make_token(void)
{
	char host[256] = "?";
	unsigned char rnd[8] = {0};
	char hex[2 * sizeof(rnd) + 1];
	if (gethostname(host, sizeof(host) - 1) < 0)
		strcpy(host, "?");
	host[sizeof(host) - 1] = '\0';
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		abort(); /* the kernel always has 8 random bytes once booted */
	hex_encode(rnd, sizeof(rnd), hex);
	return xasprintf("host %s pid %d token %s", host, (int)getpid(), hex);
}

void registry_start(node *n)
{
	n->lock_token = make_token();
	n->ev_heartbeat = event_new(n->base, -1, EV_PERSIST, on_heartbeat, n);
	struct timeval tv = {n->cfg->heartbeat_ms / 1000, (n->cfg->heartbeat_ms % 1000) * 1000};
	event_add(n->ev_heartbeat, &tv);
}

int registry_remove(node *n, rconn_reply_fn cb, void *arg)
{
	if (n->lock_held)
		log_info("deregistering %s", n->cfg->node_id);
	else
		log_info("not deregistering %s: its lock is not this process's", n->cfg->node_id);
	script_unregister_args a = {.node_id = n->cfg->node_id, .token = n->lock_token};
	script_unregister(n->rc, &a, cb, arg);
	/* The key stays: results signed during the drain outlive the last heartbeat. */
	return 1 + (n->lock_held ? keep_key(n, cb, arg) : 0);
}

void registry_deinit(node *n)
{
	if (n->ev_heartbeat)
		event_free(n->ev_heartbeat);
	n->ev_heartbeat = NULL;
	free(n->lock_token);
	n->lock_token = NULL;
}
