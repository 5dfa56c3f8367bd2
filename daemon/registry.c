/* The node registry (PROTOCOL.md, "The node registry"): aisp:node:<id>, a hash with a TTL of
 * three heartbeats (public key, runtimes, images, pools, slots, state), and the set aisp:nodes.
 * Written on every heartbeat, on every reconnect of the command connection, and when the node
 * starts draining; deleted on shutdown.
 *
 * The public key is also kept by key id, aisp:key:<key id> (pubkey, node.<id>), written with
 * every heartbeat and once more on shutdown, never deleted, with a TTL of the result TTL plus
 * three heartbeats: it outlives every result the key signed, so a stopped node's results still
 * verify (ATTESTATION.md, "Finding the node's key"). */
#include "daemon/node.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/util.h"
#include "common/xalloc.h"

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

void registry_heartbeat(node *n)
{
	const config *c = n->cfg;
	if (!rconn_ready(n->rc) || n->cons.stopping)
		return;
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
	rconn_cmd(n->rc, NULL, NULL, "PEXPIRE", key, ttl, NULL);
	rconn_cmd(n->rc, NULL, NULL, "SADD", PROTO_KEY_NODES, c->node_id, NULL);
	keep_key(n, NULL, NULL);
	buf_deinit(&pools);
}

static void on_heartbeat(evutil_socket_t fd, short what, void *arg)
{
	registry_heartbeat(arg);
}

void registry_start(node *n)
{
	n->ev_heartbeat = event_new(n->base, -1, EV_PERSIST, on_heartbeat, n);
	struct timeval tv = {n->cfg->heartbeat_ms / 1000, (n->cfg->heartbeat_ms % 1000) * 1000};
	event_add(n->ev_heartbeat, &tv);
}

int registry_remove(node *n, rconn_reply_fn cb, void *arg)
{
	_cleanup_free_ char *key = xasprintf(PROTO_KEY_NODE_PREFIX "%s", n->cfg->node_id);
	rconn_cmd(n->rc, cb, arg, "DEL", key, NULL);
	rconn_cmd(n->rc, cb, arg, "SREM", PROTO_KEY_NODES, n->cfg->node_id, NULL);
	/* The key stays: results signed during the drain outlive the last heartbeat. */
	return 2 + keep_key(n, cb, arg);
}

void registry_deinit(node *n)
{
	if (n->ev_heartbeat)
		event_free(n->ev_heartbeat);
	n->ev_heartbeat = NULL;
}
