/* Verification of a result's attestation, check by check (ATTESTATION.md, "Verification"):
 * the DSSE signature first, over the exact payload bytes, and only then the statement, whose
 * every claim is recomputed from the result (and the task, when given). */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "attest/attest.h"
#include "attest/internal.h"
#include "common/cleanup.h"
#include "common/xalloc.h"
#include "proto/json.h"

struct attest_verifier {
	bool have_prev;
	char prev_digest[ATTEST_DIGEST_LEN];
	long long prev_seq;
	char *prev_node;
};

attest_verifier *attest_verifier_new(void)
{
	return xzalloc(sizeof(attest_verifier));
}

attest_verifier *attest_verifier_free(attest_verifier *v)
{
	if (v) {
		free(v->prev_node);
		free(v);
	}
	return NULL;
}

typedef struct vctx {
	attest_check_fn cb;
	void *ud;
	bool failed;
	const proto_result *r;
	yajl_val st;   /* the statement */
	yajl_val pred; /* its predicate */
	char output[ATTEST_DIGEST_LEN];
	char environment[ATTEST_DIGEST_LEN];
	proto_env *env; /* predicate.environment, strings borrowed from st */
	size_t n_env;
	bool have_env;
} vctx;

static void report(vctx *c, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Reports a check: passed when fmt is NULL, else failed with the formatted detail. */
static void report(vctx *c, const char *name, const char *fmt, ...)
{
	if (!fmt) {
		c->cb(c->ud, name, ATTEST_PASS, NULL);
		return;
	}
	va_list ap;
	va_start(ap, fmt);
	_cleanup_free_ char *detail = xvasprintf(fmt, ap);
	va_end(ap);
	c->failed = true;
	c->cb(c->ud, name, ATTEST_FAIL, detail);
}

/* The value at a path of up to three object keys, or NULL. */
static yajl_val jget(yajl_val v, const char *a, const char *b, const char *k)
{
	const char *path[] = {a, b, k, NULL};
	return v ? yajl_tree_get(v, path, yajl_t_any) : NULL;
}

static const char *jstr(yajl_val v, const char *a, const char *b, const char *k)
{
	yajl_val x = jget(v, a, b, k);
	return YAJL_IS_STRING(x) ? YAJL_GET_STRING(x) : NULL;
}

/* Integer at a path into *out; false when missing or not an integer. */
static bool jint(yajl_val v, const char *a, const char *b, const char *k, long long *out)
{
	yajl_val x = jget(v, a, b, k);
	if (!YAJL_IS_INTEGER(x))
		return false;
	*out = YAJL_GET_INTEGER(x);
	return true;
}

static const char *nz(const char *s)
{
	return s ? s : "";
}

static const char *show(const char *s)
{
	return s ? s : "(missing)";
}

/* Decodes the envelope and checks its signature. On success *payload holds the statement
 * bytes (caller frees) and kid the envelope's key id. */
static bool check_signature(vctx *c, const attest_key *pub, uint8_t **payload, size_t *len,
                            char **kid)
{
	if (!c->r->attestation)
		return report(c, "signature", "the result carries no attestation"), false;
	_cleanup_err_ err *pe = NULL;
	_cleanup_yajl_val_ yajl_val env = NULL;
	if (proto_json_parse(c->r->attestation, strlen(c->r->attestation), &env, &pe) < 0)
		return report(c, "signature", "envelope is not JSON: %s", err_msg(pe)), false;
	const char *type = jstr(env, "payloadType", NULL, NULL);
	const char *p64 = jstr(env, "payload", NULL, NULL);
	yajl_val sigs = jget(env, "signatures", NULL, NULL);
	if (!type || strcmp(type, ATTEST_PAYLOAD_TYPE))
		return report(c, "signature", "payloadType is %s, expected %s", show(type),
		              ATTEST_PAYLOAD_TYPE),
		       false;
	if (!p64 || !YAJL_IS_ARRAY(sigs) || sigs->u.array.len != 1)
		return report(c, "signature", "envelope needs a payload and exactly one signature"),
		       false;
	const char *s64 = jstr(sigs->u.array.values[0], "sig", NULL, NULL);
	const char *keyid = jstr(sigs->u.array.values[0], "keyid", NULL, NULL);
	size_t sig_len = 0;
	_cleanup_free_ uint8_t *sig = NULL, *pl = NULL;
	if (!s64 || proto_b64_decode(s64, strlen(s64), &sig, &sig_len) < 0 ||
	    proto_b64_decode(p64, strlen(p64), &pl, len) < 0)
		return report(c, "signature", "payload or sig is not base64"), false;
	if (!pub)
		return report(c, "signature", "no public key to check it with"), false;
	buf pae = BUF_INIT;
	attest_pae(ATTEST_PAYLOAD_TYPE, pl, *len, &pae);
	bool ok = attest_key_verify(pub, pae.data, pae.len, sig, sig_len);
	buf_deinit(&pae);
	if (!ok)
		return report(c, "signature", "Ed25519 signature does not verify with key %s",
		              attest_key_id(pub)),
		       false;
	report(c, "signature", NULL);
	*payload = steal_pointer(&pl);
	*kid = xstrdup(nz(keyid));
	return true;
}

struct subj {
	const char *name;
	char digest[ATTEST_DIGEST_LEN];
	bool seen;
};

static size_t expected_subjects(const proto_output *o, struct subj *s, char **names, char **rv)
{
	size_t n = 0;
	s[n].name = "stdout";
	attest_sha256_str(o->out.data, o->out.len, s[n++].digest);
	s[n].name = "stderr";
	attest_sha256_str(o->err.data, o->err.len, s[n++].digest);
	for (size_t i = 0; i < o->n_files; i++) {
		names[i] = xasprintf("out/%s", o->files[i].path);
		s[n].name = names[i];
		attest_sha256_str(o->files[i].data, o->files[i].len, s[n++].digest);
	}
	*rv = attest_return_text(o->return_value);
	if (*rv) {
		s[n].name = "return_value";
		attest_sha256_str(*rv, strlen(*rv), s[n++].digest);
	}
	/* output blobs: named blob/<id>, their digest is their id */
	for (size_t i = 0; i < o->n_out_blobs; i++) {
		names[o->n_files + i] = xasprintf("blob/%s", o->out_blobs[i].id);
		s[n].name = names[o->n_files + i];
		memcpy(s[n++].digest, o->out_blobs[i].id, PROTO_BLOB_ID_LEN + 1);
	}
	return n;
}

static void subjects_compare(yajl_val arr, struct subj *s, size_t n, buf *why)
{
	for (size_t i = 0; i < arr->u.array.len; i++) {
		const char *name = jstr(arr->u.array.values[i], "name", NULL, NULL);
		const char *hex = jstr(arr->u.array.values[i], "digest", "sha256", NULL);
		size_t k = 0;
		while (name && k < n && (s[k].seen || strcmp(s[k].name, name)))
			k++;
		if (!name || !hex || k == n) {
			buf_appendf(why, "%s%s in the statement is not in the result",
			            why->len ? "; " : "", show(name));
			continue;
		}
		s[k].seen = true;
		if (strcmp(s[k].digest + 7, hex))
			buf_appendf(why, "%s%s differs (statement sha256:%s, result %s)",
			            why->len ? "; " : "", name, hex, s[k].digest);
	}
	for (size_t k = 0; k < n; k++)
		if (!s[k].seen)
			buf_appendf(why, "%s%s in the result is not in the statement",
			            why->len ? "; " : "", s[k].name);
}

static void check_subjects(vctx *c)
{
	const proto_output *o = &c->r->output;
	yajl_val arr = jget(c->st, "subject", NULL, NULL);
	if (!YAJL_IS_ARRAY(arr))
		return report(c, "subjects", "statement has no subject list");
	struct subj *s = xcalloc(o->n_files + o->n_out_blobs + 3, sizeof(*s));
	char **names = xcalloc(o->n_files + o->n_out_blobs + 1, sizeof(*names));
	_cleanup_free_ char *rv = NULL;
	size_t n = expected_subjects(o, s, names, &rv);
	buf why = BUF_INIT;
	subjects_compare(arr, s, n, &why);
	if (why.len)
		report(c, "subjects", "%s", buf_str(&why));
	else
		report(c, "subjects", NULL);
	buf_deinit(&why);
	for (size_t i = 0; i < o->n_files + o->n_out_blobs; i++)
		free(names[i]);
	free(names);
	free(s);
}

/* Compares a recomputed digest with the statement's. */
static void check_digest(vctx *c, const char *check, const char *what, const char *stated,
                         const char *computed)
{
	if (!stated || strcmp(stated, computed))
		report(c, check, "%s differs (statement %s, recomputed %s)", what, show(stated),
		       computed);
	else
		report(c, check, NULL);
}

static void check_exit(vctx *c)
{
	const proto_output *o = &c->r->output;
	const char *status = jstr(c->pred, "result", "status", NULL);
	yajl_val code = jget(c->pred, "result", "exit_code", NULL);
	long long sig = 0, want_code = o->exit_code >= 0 ? o->exit_code : -1;
	long long got_code = YAJL_IS_INTEGER(code) ? YAJL_GET_INTEGER(code) : -1;
	const char *want_status = nz(proto_status_name(o->status));
	if (!status || strcmp(status, want_status))
		return report(c, "exit", "status differs (statement %s, result %s)", show(status),
		              want_status);
	if ((!YAJL_IS_NULL(code) && !YAJL_IS_INTEGER(code)) || got_code != want_code)
		return report(c, "exit", "exit_code differs (statement %lld, result %lld)",
		              got_code, want_code);
	if (!jint(c->pred, "result", "signal", NULL, &sig) || sig != o->signal)
		return report(c, "exit", "signal differs (statement %lld, result %d)", sig,
		              o->signal);
	report(c, "exit", NULL);
}

/* The environment list is read once (borrowed from the tree) for its digest and the limits. */
/* The error text is signed as predicate.result.error: a string, or null when there is none. */
static void check_error(vctx *c)
{
	yajl_val v = jget(c->pred, "result", "error", NULL);
	const char *want = c->r->output.error;
	if (!v || !(YAJL_IS_NULL(v) || YAJL_IS_STRING(v)))
		return report(c, "error", "the statement has no result.error (a string or null)");
	const char *got = YAJL_IS_STRING(v) ? YAJL_GET_STRING(v) : NULL;
	if (!got == !want && (!got || !strcmp(got, want)))
		return report(c, "error", NULL);
	_cleanup_free_ char *qg = got ? proto_quote(got, strlen(got)) : xstrdup("none");
	_cleanup_free_ char *qw = want ? proto_quote(want, strlen(want)) : xstrdup("none");
	report(c, "error", "error differs (statement %s, result %s)", qg, qw);
}

static void check_environment(vctx *c)
{
	_cleanup_err_ err *e = NULL;
	if (attest_pred_env(c->pred, &c->env, &c->n_env, &e) < 0)
		return report(c, "environment_digest", "%s", err_msg(e));
	c->have_env = true;
	if (attest_environment_digest(c->env, c->n_env, c->environment, &e) < 0)
		return report(c, "environment_digest", "%s", err_msg(e));
	check_digest(c, "environment_digest", "environment digest",
	             jstr(c->pred, "environment_digest", NULL, NULL), c->environment);
}

/* predicate.limits and the environment's limits.* are two copies of one value. */
static void check_limits(vctx *c)
{
	_cleanup_err_ err *e = NULL;
	proto_limits l;
	if (!c->have_env)
		return report(c, "limits", "the statement's environment list is malformed");
	if (attest_pred_limits(c->pred, &l, &e) < 0 ||
	    attest_limits_match(&l, c->env, c->n_env, &e) < 0)
		return report(c, "limits", "%s", err_msg(e));
	report(c, "limits", NULL);
}

/* The input digest of t with what the node resolved for it (proto/PROTOCOL.md, "Skills"): the
 * skills' digests and the secrets' names, as the statement records them; the task names its
 * skills only by name or digest. A statement that names other skills than the task fails. */
static void with_skills_digest(vctx *c, const proto_task *t, char d[ATTEST_DIGEST_LEN])
{
	yajl_val sk = jget(c->pred, "skills", NULL, NULL),
	         se = jget(c->pred, "secrets", NULL, NULL);
	proto_task copy = *t;
	size_t ns = YAJL_IS_ARRAY(sk) ? sk->u.array.len : 0,
	       nn = YAJL_IS_ARRAY(se) ? se->u.array.len : 0;
	_cleanup_free_ proto_skill_ref *refs = xcalloc(ns + 1, sizeof(*refs));
	_cleanup_free_ char **names = xcalloc(nn + 1, sizeof(*names));
	for (size_t i = 0; i < ns; i++)
		refs[i] = (proto_skill_ref){
		    (char *)nz(jstr(sk->u.array.values[i], "name", NULL, NULL)),
		    (char *)nz(jstr(sk->u.array.values[i], "digest", NULL, NULL))};
	for (size_t i = 0; i < nn; i++)
		names[i] = (char *)nz(
		    YAJL_IS_STRING(se->u.array.values[i]) ? se->u.array.values[i]->u.string : NULL);
	if (t->skill || t->n_mount_skills || t->n_blobs) {
		copy.skill_refs = refs;
		copy.n_skill_refs = ns;
		copy.secret_names = names;
		copy.n_secret_names = nn;
	}
	attest_input_digest(&copy, d);
}

static void check_input(vctx *c, const proto_task *t)
{
	if (!t) {
		c->cb(c->ud, "input_digest", ATTEST_SKIP, "no --task");
		return;
	}
	const char *id = jstr(c->pred, "task_id", NULL, NULL);
	yajl_val nd = jget(c->pred, "nondeterministic", NULL, NULL);
	if (!id || strcmp(id, nz(t->id)))
		return report(c, "input_digest", "task_id differs (statement %s, task %s)",
		              show(id), nz(t->id));
	if ((bool)YAJL_IS_TRUE(nd) !=
	    (t->nondeterministic || t->n_services || proto_task_has_step(t, PROTO_STEP_LLM)))
		return report(c, "input_digest", "nondeterministic flag differs from the task");
	char d[ATTEST_DIGEST_LEN];
	with_skills_digest(c, t, d);
	check_digest(c, "input_digest", "input digest", jstr(c->pred, "input_digest", NULL, NULL),
	             d);
}

static void check_execution(vctx *c)
{
	const char *stated = jstr(c->pred, "execution_digest", NULL, NULL);
	const char *status = jstr(c->pred, "result", "status", NULL);
	yajl_val code = jget(c->pred, "result", "exit_code", NULL);
	long long sig = 0;
	jint(c->pred, "result", "signal", NULL, &sig);
	proto_status st = PROTO_STATUS__COUNT;
	if (status)
		proto_status_parse(status, &st);
	buf ex = BUF_INIT;
	attest_exit_encoding(st, YAJL_IS_INTEGER(code) ? (int)YAJL_GET_INTEGER(code) : -1, (int)sig,
	                     &ex);
	char d[ATTEST_DIGEST_LEN];
	attest_execution_digest(nz(jstr(c->pred, "image_digest", NULL, NULL)),
	                        nz(jstr(c->pred, "input_digest", NULL, NULL)),
	                        nz(jstr(c->pred, "result", "output_digest", NULL)), ex.data, ex.len,
	                        nz(jstr(c->pred, "environment_digest", NULL, NULL)), d);
	buf_deinit(&ex);
	if (!c->r->execution_digest || !stated || strcmp(c->r->execution_digest, stated))
		return report(c, "execution_digest", "result says %s, statement %s",
		              show(c->r->execution_digest), show(stated));
	check_digest(c, "execution_digest", "execution digest", stated, d);
}

static bool md_int(vctx *c, const char *k, const char *k2, long long want, buf *why)
{
	long long got = 0;
	if (jint(c->pred, "metadata", k, k2, &got) && got == want)
		return true;
	buf_appendf(why, "%s%s%s%s differs (statement %lld, result %lld)", why->len ? "; " : "", k,
	            k2 ? "." : "", k2 ? k2 : "", got, want);
	return false;
}

static bool md_str(vctx *c, const char *what, const char *stated, const char *want, buf *why)
{
	if (stated && !strcmp(stated, nz(want)))
		return true;
	buf_appendf(why, "%s%s differs (statement %s, result %s)", why->len ? "; " : "", what,
	            show(stated), nz(want));
	return false;
}

static void check_metadata(vctx *c, const char *kid)
{
	const proto_result *r = c->r;
	buf why = BUF_INIT;
	md_str(c, "task_id", jstr(c->pred, "task_id", NULL, NULL), r->id, &why);
	md_str(c, "runtime", jstr(c->pred, "runtime", NULL, NULL), r->runtime, &why);
	md_str(c, "node_id", jstr(c->pred, "metadata", "node_id", NULL), r->node_id, &why);
	md_str(c, "key_id", jstr(c->pred, "metadata", "key_id", NULL), kid, &why);
	md_int(c, "received_ms", NULL, r->received_ms, &why);
	md_int(c, "started_ms", NULL, r->started_ms, &why);
	md_int(c, "finished_ms", NULL, r->finished_ms, &why);
	md_int(c, "usage", "wall_ms", r->usage.wall_ms, &why);
	md_int(c, "usage", "cpu_ms", r->usage.cpu_ms, &why);
	md_int(c, "usage", "memory_peak_bytes", r->usage.memory_peak_bytes, &why);
	md_int(c, "attempt", NULL, r->attempts, &why);
	if (why.len)
		report(c, "metadata", "%s", buf_str(&why));
	else
		report(c, "metadata", NULL);
	buf_deinit(&why);
}

static void check_chain(vctx *c, attest_verifier *v, const char *digest)
{
	const char *prev = jstr(c->pred, "metadata", "previous", NULL);
	const char *node = nz(jstr(c->pred, "metadata", "node_id", NULL));
	long long seq = -1;
	bool have_seq = jint(c->pred, "metadata", "sequence", NULL, &seq);
	if (v->have_prev) {
		if (strcmp(node, v->prev_node))
			report(c, "chain", "node %s follows a result of node %s", node,
			       v->prev_node);
		else if (!prev || strcmp(prev, v->prev_digest))
			report(c, "chain", "previous is %s, the result before is %s", show(prev),
			       v->prev_digest);
		else if (!have_seq || seq != v->prev_seq + 1)
			report(c, "chain", "sequence %lld does not follow %lld", seq, v->prev_seq);
		else
			report(c, "chain", NULL);
	}
	v->have_prev = true;
	snprintf(v->prev_digest, sizeof(v->prev_digest), "%s", digest);
	v->prev_seq = seq;
	free(v->prev_node);
	v->prev_node = xstrdup(node);
}

/* Every check after the signature, on a parsed statement. */
static void check_statement(vctx *c, attest_verifier *v, const attest_key *pub,
                            const proto_task *task, const char *kid, const char *digest)
{
	if (pub && strcmp(kid, attest_key_id(pub)))
		report(c, "key_id", "envelope names key %s, the key used is %s", kid,
		       attest_key_id(pub));
	else
		report(c, "key_id", NULL);
	const char *type = jstr(c->st, "_type", NULL, NULL);
	const char *ptype = jstr(c->st, "predicateType", NULL, NULL);
	if (ptype && !strcmp(ptype, ATTEST_SEALED_PREDICATE_TYPE))
		return report(c, "statement",
		              "a sealed result: verify it with aisp unseal --verify "
		              "(attest/SEALED.md)");
	if (!type || strcmp(type, ATTEST_STATEMENT_TYPE) || !ptype ||
	    strcmp(ptype, ATTEST_PREDICATE_TYPE) || !YAJL_IS_OBJECT(c->pred))
		return report(c, "statement", "not an %s statement with predicate %s",
		              ATTEST_STATEMENT_TYPE, ATTEST_PREDICATE_TYPE);
	/* An ordinary statement signs no sealed document: one beside it would be unsigned. */
	if (c->r->sealed)
		return report(c, "statement",
		              "the result carries \"sealed\", which an execution "
		              "statement does not sign");
	report(c, "statement", NULL);
	check_subjects(c);
	attest_output_digest(&c->r->output, c->output);
	check_digest(c, "output_digest", "output digest",
	             jstr(c->pred, "result", "output_digest", NULL), c->output);
	check_exit(c);
	check_error(c);
	const char *img = jstr(c->pred, "image_digest", NULL, NULL);
	if (!img || strcmp(img, nz(c->r->image_digest)))
		report(c, "image_digest", "image digest differs (statement %s, result %s)",
		       show(img), nz(c->r->image_digest));
	else
		report(c, "image_digest", NULL);
	check_environment(c);
	check_limits(c);
	check_input(c, task);
	check_execution(c);
	check_metadata(c, kid);
	if (!attest_steps_check(c->pred, c->r, task, c->cb, c->ud))
		c->failed = true;
	check_chain(c, v, digest);
}

int attest_verifier_check(attest_verifier *v, const proto_result *r, const attest_key *pub,
                          const proto_task *task, attest_check_fn cb, void *ud)
{
	vctx c = {.cb = cb, .ud = ud, .r = r};
	_cleanup_free_ uint8_t *payload = NULL;
	_cleanup_free_ char *kid = NULL;
	size_t len = 0;
	if (!check_signature(&c, pub, &payload, &len, &kid))
		return 1;
	char digest[ATTEST_DIGEST_LEN];
	attest_sha256_str(payload, len, digest);
	_cleanup_err_ err *pe = NULL;
	_cleanup_yajl_val_ yajl_val st = NULL;
	if (proto_json_parse((const char *)payload, len, &st, &pe) < 0 || !YAJL_IS_OBJECT(st)) {
		report(&c, "statement", "payload is not a JSON object: %s",
		       pe ? err_msg(pe) : "another JSON value");
		return 1;
	}
	c.st = st;
	c.pred = jget(st, "predicate", NULL, NULL);
	check_statement(&c, v, pub, task, kid, digest);
	free(c.env);
	return c.failed ? 1 : 0;
}

int attest_verify_result(const char *result_json, size_t len, const attest_key *pub,
                         const proto_task *task, attest_check_fn cb, void *ud, err **e)
{
	proto_result r;
	proto_result_init(&r);
	if (proto_result_parse(result_json, len, &r, e) < 0) {
		proto_result_deinit(&r);
		return err_prefix(e, "result");
	}
	attest_verifier *v = attest_verifier_new();
	int ret = attest_verifier_check(v, &r, pub, task, cb, ud);
	attest_verifier_free(v);
	proto_result_deinit(&r);
	return ret;
}

int attest_envelope_digest(const char *envelope_json, char out[ATTEST_DIGEST_LEN], err **e)
{
	_cleanup_free_ uint8_t *pl = NULL;
	size_t len = 0;
	if (attest_envelope_payload(envelope_json, &pl, &len, e) < 0)
		return -1;
	attest_sha256_str(pl, len, out);
	return 0;
}

int attest_envelope_key_id(const char *envelope_json, char out[ATTEST_DIGEST_LEN], err **e)
{
	_cleanup_yajl_val_ yajl_val env = NULL;
	if (proto_json_parse(envelope_json, strlen(envelope_json), &env, e) < 0)
		return err_prefix(e, "envelope");
	yajl_val sigs = jget(env, "signatures", NULL, NULL);
	const char *kid = YAJL_IS_ARRAY(sigs) && sigs->u.array.len == 1
	                      ? jstr(sigs->u.array.values[0], "keyid", NULL, NULL)
	                      : NULL;
	if (!kid || !attest_digest_valid(kid))
		return err_set(e, 0, "the envelope names no key id (\"sha256:<64 hex>\")");
	snprintf(out, ATTEST_DIGEST_LEN, "%s", kid);
	return 0;
}
