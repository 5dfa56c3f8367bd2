/* A node's result is verified before a caller sees it. Anyone who can write to Redis can add
 * an entry to the gateway's reply stream or set aisp:result:<id>, so a result counts only when
 * it is the result of the task asked for, signed by the node it names: its DSSE envelope
 * verifies (attest_verifier_check, every check) with the public key that aisp:key:<key id>
 * holds for the envelope's key id (nodes keep their keys there: PROTOCOL.md, "Keys";
 * ATTESTATION.md, "Finding the node's key"), that key hashes to the key id, the hash has a
 * node.<node id> field for the result's node (the key is that node's), and the statement's
 * task_id is the task's id (the metadata check ties it to the result's id, compared here).
 * Given the task as submitted (a waiting call), the statement's input_digest must also be that
 * task's: a task id is the caller's choice, so a genuine result of another task that had the
 * same id (an earlier one in aisp:result:<id>, another caller's, a task added to aisp:tasks
 * behind the gateway's back) is not this call's result. GET /v1/tasks/{id} has no task, and
 * checks the rest. The key is read with one HMGET per result, on the command connection. */
#include "gateway/gateway.h"

#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/xalloc.h"

typedef struct vreq {
	gw *g;
	char *task_id;
	const proto_task *task; /* borrowed, or NULL: the input is not checked */
	char *json;             /* a copy: the caller's reply is gone when Redis answers */
	size_t len;
	proto_result r;
	char kid[ATTEST_DIGEST_LEN];
	char *key_name;
	gw_verified_fn cb;
	void *arg;
} vreq;

static void vreq_done(vreq *v, gw_result_state st, const char *why)
{
	v->cb(v->g, st, why, v->json, v->len, v->arg);
	proto_result_deinit(&v->r);
	free(v->task_id);
	free(v->json);
	free(v->key_name);
	free(v);
}

/* The first failed check of the verifier, as "name: detail". */
static void on_check(void *ud, const char *name, attest_verdict verdict, const char *detail)
{
	char **first = ud;
	if (verdict == ATTEST_FAIL && !*first)
		*first = xasprintf("%s: %s", name, detail ? detail : "failed");
}

/* Why the result does not verify with the PEM text of the key (NULL when it does). */
static char *check_with(vreq *v, const char *pem, size_t pem_len)
{
	attest_key *pub = NULL;
	_cleanup_err_ err *e = NULL;
	if (attest_key_from_public_pem(&pub, pem, pem_len, &e) < 0)
		return xasprintf("%s holds no usable public key: %s", v->key_name, err_msg(e));
	char *why = NULL;
	if (strcmp(attest_key_id(pub), v->kid)) {
		why = xasprintf("%s holds a key whose id is %s", v->key_name, attest_key_id(pub));
	} else {
		attest_verifier *ver = attest_verifier_new();
		if (attest_verifier_check(ver, &v->r, pub, v->task, on_check, &why) != 0 && !why)
			why = xstrdup("its attestation does not verify");
		attest_verifier_free(ver);
	}
	attest_key_free(pub);
	return why;
}

/* HMGET aisp:key:<key id> pubkey node.<node id>. */
static void on_key(rconn *rc, redisReply *r, void *arg)
{
	vreq *v = arg;
	if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
		_cleanup_free_ char *why =
		    xasprintf("%s could not be read: %s", v->key_name,
		              r && r->type == REDIS_REPLY_ERROR ? r->str : "Redis did not answer");
		vreq_done(v, GW_RESULT_UNCHECKED, why);
		return;
	}
	const redisReply *pem = r->element[0], *owner = r->element[1];
	_cleanup_free_ char *why = NULL;
	if (pem->type != REDIS_REPLY_STRING)
		why = xasprintf("the key %s it is signed with is not in Redis (%s has no pubkey)",
		                v->kid, v->key_name);
	else if (owner->type != REDIS_REPLY_STRING)
		why = xasprintf("the key %s is not node %s's (%s has no node.%s)", v->kid,
		                v->r.node_id, v->key_name, v->r.node_id);
	else
		why = check_with(v, pem->str, pem->len);
	vreq_done(v, why ? GW_RESULT_BAD : GW_RESULT_OK, why);
}

/* What the document itself says wrong (NULL when it may be checked against the key). */
static char *precheck(vreq *v)
{
	_cleanup_err_ err *e = NULL;
	if (proto_result_parse(v->json, v->len, &v->r, &e) < 0)
		return xasprintf("it is not a result document: %s", err_msg(e));
	if (!v->r.id || strcmp(v->r.id, v->task_id))
		return xasprintf("it is the result of task %s", v->r.id ? v->r.id : "(none)");
	if (!v->r.node_id || !v->r.node_id[0])
		return xstrdup("it names no node");
	if (!v->r.attestation)
		return xstrdup("it carries no attestation");
	if (attest_envelope_key_id(v->r.attestation, v->kid, &e) < 0)
		return xasprintf("its attestation: %s", err_msg(e));
	return NULL;
}

void gw_result_verify(gw *g, const char *task_id, const proto_task *task, const char *json,
                      size_t len, gw_verified_fn cb, void *arg)
{
	if (len > PROTO_TASK_MAX_BYTES) { /* not even copied */
		_cleanup_free_ char *why =
		    xasprintf("it is %zu bytes, above the %u-byte maximum of a result", len,
		              PROTO_TASK_MAX_BYTES);
		cb(g, GW_RESULT_BAD, why, NULL, 0, arg);
		return;
	}
	vreq *v = xzalloc(sizeof(*v));
	v->g = g;
	v->task_id = xstrdup(task_id);
	v->task = task;
	v->len = len;
	v->json = xmalloc(len + 1);
	memcpy(v->json, json, len);
	v->json[len] = '\0';
	v->cb = cb;
	v->arg = arg;
	proto_result_init(&v->r);
	_cleanup_free_ char *why = precheck(v);
	if (why) {
		vreq_done(v, GW_RESULT_BAD, why);
		return;
	}
	v->key_name = xasprintf(PROTO_KEY_KEY_PREFIX "%s", v->kid);
	_cleanup_free_ char *field = xasprintf("node.%s", v->r.node_id);
	rconn_cmd(g->rc, on_key, v, "HMGET", v->key_name, "pubkey", field, NULL);
}
