/* Verifying a sealed result (attest/SEALED.md, "Verification"): the public part with the
 * node's key alone (signature, statement, the delivered ciphertext, metadata, environment,
 * and the ciphertexts received when the task is given), then, with the buyer's identity, the
 * sealed document: its outputs, the commitments the node signed, and the digests recomputed
 * from the plaintext. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "attest/attest.h"
#include "attest/internal.h"
#include "common/cleanup.h"
#include "common/xalloc.h"
#include "proto/json.h"

typedef struct vctx {
	attest_sealed_check_fn cb;
	void *ud;
	int failed;
	const attest_sealed_verify_opts *o;
	proto_result r; /* the public result */
	uint8_t *age;   /* its sealed document, the age file */
	size_t age_len;
	yajl_val stmt, pred; /* the statement (owned) and its predicate (borrowed) */
	yajl_val doc;        /* the decrypted document (owned) */
	proto_result inner;  /* the document's result */
	bool have_inner;
} vctx;

static void report(vctx *v, const char *name, attest_sealed_verdict verdict, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void report(vctx *v, const char *name, attest_sealed_verdict verdict, const char *fmt, ...)
{
	_cleanup_free_ char *detail = NULL;
	if (fmt) {
		va_list ap;
		va_start(ap, fmt);
		if (vasprintf(&detail, fmt, ap) < 0)
			abort();
		va_end(ap);
	}
	if (verdict == ATTEST_SEALED_FAIL)
		v->failed = 1;
	if (v->cb)
		v->cb(v->ud, name, verdict, detail);
}

static const char *pstr(yajl_val obj, const char *k)
{
	const char *s = proto_json_get_str(obj, k);
	return s ? s : "";
}

/* ---- the public part ---- */

static bool check_signature(vctx *v)
{
	_cleanup_err_ err *e = NULL;
	attest_dsse d;
	if (!v->r.attestation) {
		report(v, "signature", ATTEST_SEALED_FAIL, "the result has no attestation");
		return false;
	}
	if (attest_dsse_parse(v->r.attestation, strlen(v->r.attestation), ATTEST_PAYLOAD_TYPE, &d,
	                      &e) < 0) {
		report(v, "signature", ATTEST_SEALED_FAIL, "envelope: %s", err_msg(e));
		return false;
	}
	bool ok = v->o->node_key &&
	          attest_dsse_verify(v->o->node_key, ATTEST_PAYLOAD_TYPE, d.payload, d.len, d.sig);
	if (!ok) {
		report(v, "signature", ATTEST_SEALED_FAIL,
		       v->o->node_key ? "does not verify with the node's key" : "no public key");
		attest_dsse_deinit(&d);
		return false;
	}
	report(v, "signature", ATTEST_SEALED_PASS, NULL);
	if (strcmp(d.keyid, attest_key_id(v->o->node_key)))
		report(v, "key_id", ATTEST_SEALED_FAIL, "the envelope names %s, the key is %s",
		       d.keyid, attest_key_id(v->o->node_key));
	else
		report(v, "key_id", ATTEST_SEALED_PASS, NULL);
	int rc = proto_json_parse((const char *)d.payload, d.len, &v->stmt, &e);
	attest_dsse_deinit(&d);
	v->pred = proto_json_get(v->stmt, "predicate");
	if (rc < 0 || strcmp(pstr(v->stmt, "_type"), ATTEST_STATEMENT_TYPE) ||
	    strcmp(pstr(v->stmt, "predicateType"), ATTEST_SEALED_PREDICATE_TYPE) ||
	    !YAJL_IS_OBJECT(v->pred)) {
		report(v, "statement", ATTEST_SEALED_FAIL,
		       "not an in-toto Statement with predicateType %s",
		       ATTEST_SEALED_PREDICATE_TYPE);
		return false;
	}
	report(v, "statement", ATTEST_SEALED_PASS, NULL);
	return true;
}

/* The hex digest of subject name, or NULL. */
static const char *subject_digest(vctx *v, const char *name)
{
	yajl_val subs = proto_json_get(v->stmt, "subject");
	for (size_t i = 0; YAJL_IS_ARRAY(subs) && i < subs->u.array.len; i++) {
		yajl_val s = subs->u.array.values[i];
		if (!strcmp(pstr(s, "name"), name))
			return proto_json_get_str(proto_json_get(s, "digest"), "sha256");
	}
	return NULL;
}

static bool hex_is(const char *hex, const void *p, size_t n)
{
	char d[ATTEST_DIGEST_LEN];
	attest_sha256_str(p, n, d);
	return hex && !strcmp(hex, d + 7);
}

static void check_delivered(vctx *v)
{
	const char *s = v->r.sealed;
	if (!s || proto_b64_decode(s, strlen(s), &v->age, &v->age_len) < 0) {
		report(v, "sealed_result", ATTEST_SEALED_FAIL,
		       "the result has no \"sealed\" field, or it is not base64");
		return;
	}
	if (!hex_is(subject_digest(v, "sealed_result"), v->age, v->age_len))
		report(v, "sealed_result", ATTEST_SEALED_FAIL,
		       "the sealed document is not the one the subject \"sealed_result\" names");
	else
		report(v, "sealed_result", ATTEST_SEALED_PASS, NULL);
}

static int64_t pint(yajl_val obj, const char *k)
{
	int64_t n = -1;
	proto_json_get_int(obj, k, &n);
	return n;
}

/* The public fields against the signed ones, and no plaintext in the public part. */
static void check_metadata(vctx *v)
{
	const proto_result *r = &v->r;
	yajl_val md = proto_json_get(v->pred, "metadata"), u = proto_json_get(md, "usage");
	const char *bad =
	    strcmp(pstr(v->pred, "task_id"), r->id) ? "task_id"
	    : strcmp(pstr(proto_json_get(v->pred, "result"), "status"),
	             proto_status_name(r->output.status))
	        ? "status"
	    : strcmp(pstr(md, "node_id"), r->node_id ? r->node_id : "")      ? "node"
	    : strcmp(pstr(v->pred, "runtime"), r->runtime ? r->runtime : "") ? "runtime"
	    : strcmp(pstr(v->pred, "image_digest"), r->image_digest ? r->image_digest : "")
	        ? "image_digest"
	    : pint(md, "received_ms") != r->received_ms ||
	            pint(md, "started_ms") != r->started_ms ||
	            pint(md, "finished_ms") != r->finished_ms
	        ? "times"
	    : pint(u, "wall_ms") != r->usage.wall_ms || pint(u, "cpu_ms") != r->usage.cpu_ms ||
	            pint(u, "memory_peak_bytes") != r->usage.memory_peak_bytes
	        ? "usage"
	    : pint(md, "attempt") != r->attempts ? "attempts"
	                                         : NULL;
	const proto_output *o = &r->output;
	if (bad)
		report(v, "metadata", ATTEST_SEALED_FAIL, "the result's %s is not the signed one",
		       bad);
	else if (o->out.len || o->err.len || o->n_files || o->return_value || o->exit_code >= 0 ||
	         o->signal || r->execution_digest)
		report(v, "metadata", ATTEST_SEALED_FAIL,
		       "the public result carries output (a sealed result must not)");
	else
		report(v, "metadata", ATTEST_SEALED_PASS, NULL);
}

static void on_cost(void *ud, const char *name, attest_verdict verdict, const char *detail)
{
	report(ud, name,
	       verdict == ATTEST_PASS   ? ATTEST_SEALED_PASS
	       : verdict == ATTEST_SKIP ? ATTEST_SEALED_SKIP
	                                : ATTEST_SEALED_FAIL,
	       detail ? "%s" : NULL, detail);
}

/* The public cost (the total only) against the signed one; after decryption, the document's
 * cost (with its breakdown) against the public total. */
static void check_cost(vctx *v)
{
	attest_cost_check(v->pred, &v->r, true, on_cost, v);
}

static void check_inner_cost(vctx *v)
{
	const proto_cost *pub = v->r.cost, *in = v->inner.cost;
	if (!pub && !in)
		return;
	if (!pub || !in)
		report(v, "cost total", ATTEST_SEALED_FAIL, "%s",
		       pub ? "the public result has a cost, the sealed document none"
		           : "the sealed document has a cost, the public result none");
	else if (in->breakdown_sealed || !pub->breakdown_sealed)
		report(v, "cost total", ATTEST_SEALED_FAIL, "%s",
		       in->breakdown_sealed
		           ? "the sealed document's cost says its breakdown is sealed"
		           : "the public cost shows a breakdown it should seal");
	else if (in->total != pub->total)
		report(v, "cost total", ATTEST_SEALED_FAIL,
		       "the sealed document's cost total %" PRId64 " is not the public %" PRId64,
		       in->total, pub->total);
	else if (attest_cost_sum(in) != in->total)
		report(v, "cost total", ATTEST_SEALED_FAIL,
		       "the sealed document's total %" PRId64
		       " is not the sum of its breakdown (%" PRId64 ")",
		       in->total, attest_cost_sum(in));
	else
		report(v, "cost total", ATTEST_SEALED_PASS, NULL);
}

static void check_environment(vctx *v)
{
	_cleanup_free_ proto_env *pairs = NULL;
	size_t n = 0;
	char d[ATTEST_DIGEST_LEN];
	_cleanup_err_ err *e = NULL;
	if (attest_pred_env(v->pred, &pairs, &n, &e) < 0 ||
	    attest_environment_digest(pairs, n, d, &e) < 0)
		report(v, "environment_digest", ATTEST_SEALED_FAIL, "predicate.environment: %s",
		       err_msg(e));
	else if (strcmp(d, pstr(v->pred, "environment_digest")))
		report(v, "environment_digest", ATTEST_SEALED_FAIL, "recomputed %s, signed %s", d,
		       pstr(v->pred, "environment_digest"));
	else
		report(v, "environment_digest", ATTEST_SEALED_PASS, NULL);
}

/* The ciphertexts of the task as sent are exactly the subjects received. */
static void check_received(vctx *v)
{
	const proto_task *t = v->o->sealed_task;
	if (!t) {
		report(v, "received", ATTEST_SEALED_SKIP, "no task given (--task)");
		return;
	}
	yajl_val subs = proto_json_get(v->stmt, "subject");
	size_t want = 1;
	for (int p = 0; p < PROTO_SEALED__COUNT; p++) {
		const char *name = proto_sealed_part_name((proto_sealed_part)p);
		const char *hex = subject_digest(v, name);
		bool sealed = proto_task_part_sealed(t, (proto_sealed_part)p);
		want += sealed;
		if (sealed && !hex_is(hex, t->sealed->age[p], t->sealed->age_len[p])) {
			report(v, "received", ATTEST_SEALED_FAIL,
			       "%s: not the ciphertext the task "
			       "sent",
			       name);
			return;
		}
	}
	const char *reply = t->sealed && t->sealed->reply_to ? t->sealed->reply_to : "";
	if (!YAJL_IS_ARRAY(subs) || subs->u.array.len != want)
		report(v, "received", ATTEST_SEALED_FAIL,
		       "the subjects are not the task's sealed "
		       "parts and the sealed result");
	else if (strcmp(pstr(v->pred, "task_id"), t->id) ||
	         strcmp(pstr(v->pred, "reply_to"), reply))
		report(v, "received", ATTEST_SEALED_FAIL, "task_id or reply_to is not the task's");
	else
		report(v, "received", ATTEST_SEALED_PASS, NULL);
}

/* ---- the sealed document ---- */

static bool decrypt(vctx *v)
{
	if (!v->o->n_ids) {
		report(v, "decrypt", ATTEST_SEALED_SKIP, "no identity given (-i)");
		return false;
	}
	if (!v->age)
		return false;
	attest_age_decrypt_opts ao = {.max_size = v->age_len};
	uint8_t *plain = NULL;
	size_t n = 0;
	_cleanup_err_ err *e = NULL;
	if (attest_age_decrypt(v->age, v->age_len, v->o->ids, v->o->n_ids, &ao, &plain, &n, NULL,
	                       &e) < 0) {
		report(v, "decrypt", ATTEST_SEALED_FAIL, "%s", err_msg(e));
		return false;
	}
	int rc =
	    n > PROTO_SEALED_DOC_MAX ? -1 : proto_json_parse((const char *)plain, n, &v->doc, &e);
	OPENSSL_cleanse(plain, n);
	free(plain);
	if (rc < 0 || !YAJL_IS_OBJECT(v->doc)) {
		report(v, "decrypt", ATTEST_SEALED_FAIL, "the document is not a JSON object%s%s",
		       e ? ": " : "", e ? err_msg(e) : "");
		return false;
	}
	report(v, "decrypt", ATTEST_SEALED_PASS, NULL);
	return true;
}

static bool check_document(vctx *v)
{
	yajl_val res = proto_json_get(v->doc, "result");
	_cleanup_err_ err *e = NULL;
	buf b = BUF_INIT;
	if (YAJL_IS_OBJECT(res)) {
		_cleanup_json_gen_ proto_gen *g = proto_json_gen_new();
		proto_json_gen_value(g, res);
		v->have_inner = proto_json_gen_take(g, &b, &e) == 0 &&
		                proto_result_parse((const char *)b.data, b.len, &v->inner, &e) == 0;
		OPENSSL_cleanse(b.data, b.len);
	}
	buf_deinit(&b);
	const char *why =
	    strcmp(pstr(v->doc, "_type"), ATTEST_SEALED_RESULT_TYPE) ? "_type"
	    : strcmp(pstr(v->doc, "task_id"), v->r.id)               ? "task_id"
	    : !v->have_inner                                         ? "result"
	    : strcmp(v->inner.id, v->r.id) || v->inner.output.status != v->r.output.status
	        ? "result's id or status"
	    : !YAJL_IS_OBJECT(proto_json_get(v->doc, "outputs"))     ? "outputs"
	    : !YAJL_IS_OBJECT(proto_json_get(v->doc, "commitments")) ? "commitments"
	                                                             : NULL;
	if (why) {
		report(v, "document", ATTEST_SEALED_FAIL, "%s is missing or wrong%s%s", why,
		       e ? ": " : "", e ? err_msg(e) : "");
		return false;
	}
	report(v, "document", ATTEST_SEALED_PASS, NULL);
	return true;
}

static void check_outputs(vctx *v)
{
	_cleanup_json_gen_ proto_gen *j = proto_json_gen_new();
	attest_sealed_output_digests(j, &v->inner.output);
	_cleanup_free_ char *text = NULL;
	size_t len = 0;
	_cleanup_yajl_val_ yajl_val want = NULL;
	yajl_val have = proto_json_get(v->doc, "outputs");
	if (!(text = proto_json_gen_steal(j, &len, NULL)) ||
	    proto_json_parse(text, len, &want, NULL) < 0)
		abort(); /* generated here */
	for (size_t i = 0; i < want->u.object.len; i++) {
		const char *k = want->u.object.keys[i];
		const char *d = YAJL_GET_STRING(want->u.object.values[i]);
		if (strcmp(pstr(have, k), d)) {
			report(v, "outputs", ATTEST_SEALED_FAIL,
			       "%s: the document says %s, its bytes "
			       "hash to %s",
			       k, pstr(have, k), d);
			return;
		}
	}
	if (have->u.object.len != want->u.object.len)
		report(v, "outputs", ATTEST_SEALED_FAIL, "lists %zu outputs, the result has %zu",
		       have->u.object.len, want->u.object.len);
	else
		report(v, "outputs", ATTEST_SEALED_PASS, NULL);
}

/* The document's digest for commitment c, or NULL. */
static const char *doc_digest(vctx *v, attest_commit c)
{
	yajl_val m = proto_json_get(proto_json_get(v->doc, "commitments"), attest_commit_name(c));
	return proto_json_get_str(m, "digest");
}

/* Every commitment of the document opens to the one signed, and they are the same set. */
static void check_commitments(vctx *v)
{
	yajl_val have = proto_json_get(v->doc, "commitments");
	yajl_val sig = proto_json_get(v->pred, "commitments");
	size_t n = 0;
	for (int c = 0; c < ATTEST_COMMIT__COUNT; c++) {
		const char *name = attest_commit_name((attest_commit)c);
		yajl_val m = proto_json_get(have, name);
		const char *signed_c = proto_json_get_str(sig, name);
		if (!m && !signed_c)
			continue;
		n++;
		const char *d = proto_json_get_str(m, "digest"),
		           *s64 = proto_json_get_str(m, "salt");
		_cleanup_free_ uint8_t *salt = NULL;
		size_t sl = 0;
		char got[ATTEST_DIGEST_LEN];
		if (!d || !s64 || !signed_c || proto_b64_decode(s64, strlen(s64), &salt, &sl) < 0 ||
		    sl != ATTEST_SALT_LEN) {
			report(v, "commitments", ATTEST_SEALED_FAIL,
			       "%s: missing on one side, or "
			       "malformed",
			       name);
			return;
		}
		attest_commitment(salt, d, got);
		if (strcmp(got, signed_c)) {
			report(v, "commitments", ATTEST_SEALED_FAIL,
			       "%s: SHA-256(salt || digest) is %s, the node signed %s", name, got,
			       signed_c);
			return;
		}
	}
	if (!YAJL_IS_OBJECT(sig) || n != have->u.object.len || n != sig->u.object.len)
		report(v, "commitments", ATTEST_SEALED_FAIL,
		       "unknown commitments in the document "
		       "or the statement");
	else
		report(v, "commitments", ATTEST_SEALED_PASS, NULL);
}

static void check_digest(vctx *v, const char *name, attest_commit c, const char *recomputed)
{
	const char *d = doc_digest(v, c);
	if (!d || strcmp(d, recomputed))
		report(v, name, ATTEST_SEALED_FAIL, "recomputed %s, the document commits to %s",
		       recomputed, d ? d : "nothing");
	else
		report(v, name, ATTEST_SEALED_PASS, NULL);
}

static void exit_digest(const proto_output *o, char out[ATTEST_DIGEST_LEN])
{
	buf b = BUF_INIT;
	attest_exit_encoding(o->status, o->exit_code, o->signal, &b);
	attest_sha256_str(b.data, b.len, out);
	buf_deinit(&b);
}

/* The buyer's plaintext of the task against the commitments: each part it has in the clear,
 * and the whole input when it has every part. */
static void check_input(vctx *v)
{
	const proto_task *t = v->o->plain_task;
	if (!t) {
		report(v, "input", ATTEST_SEALED_SKIP, "no plaintext task given (--input)");
		return;
	}
	if (!doc_digest(v, ATTEST_COMMIT_INPUT)) {
		report(v, "input", ATTEST_SEALED_SKIP,
		       "the task was not opened: no input commitment");
		return;
	}
	char d[ATTEST_DIGEST_LEN];
	bool all = true;
	for (int p = 0; p < PROTO_SEALED__COUNT; p++) {
		const char *want = doc_digest(v, (attest_commit)p);
		if (proto_task_part_sealed(t, (proto_sealed_part)p)) {
			all = false;
			continue;
		}
		attest_part_digest(t, (attest_commit)p, d);
		if (want && strcmp(want, d)) {
			report(v, "input", ATTEST_SEALED_FAIL,
			       "%s: the plaintext given hashes to %s, the document commits to %s",
			       attest_commit_name((attest_commit)p), d, want);
			return;
		}
	}
	if (!all) {
		report(v, "input", ATTEST_SEALED_PASS,
		       "the parts given match; the input digest needs every part in the clear");
		return;
	}
	attest_input_digest(t, d);
	check_digest(v, "input", ATTEST_COMMIT_INPUT, d);
}

static void check_execution(vctx *v)
{
	const char *in = doc_digest(v, ATTEST_COMMIT_INPUT),
	           *out = doc_digest(v, ATTEST_COMMIT_OUTPUT);
	buf exit = BUF_INIT;
	attest_exit_encoding(v->inner.output.status, v->inner.output.exit_code,
	                     v->inner.output.signal, &exit);
	char d[ATTEST_DIGEST_LEN];
	attest_execution_digest(pstr(v->pred, "image_digest"), in ? in : "", out ? out : "",
	                        exit.data, exit.len, pstr(v->pred, "environment_digest"), d);
	buf_deinit(&exit);
	if (v->inner.execution_digest && strcmp(v->inner.execution_digest, d))
		report(v, "execution", ATTEST_SEALED_FAIL,
		       "the result's execution_digest %s is not the recomputed %s",
		       v->inner.execution_digest, d);
	else
		check_digest(v, "execution", ATTEST_COMMIT_EXECUTION, d);
}

static void check_plaintext(vctx *v)
{
	char d[ATTEST_DIGEST_LEN];
	check_outputs(v);
	check_inner_cost(v);
	check_commitments(v);
	attest_output_digest(&v->inner.output, d);
	check_digest(v, "output", ATTEST_COMMIT_OUTPUT, d);
	exit_digest(&v->inner.output, d);
	check_digest(v, "exit", ATTEST_COMMIT_EXIT, d);
	check_input(v);
	check_execution(v);
}

int attest_sealed_verify(const char *result_json, size_t len, const attest_sealed_verify_opts *o,
                         attest_sealed_check_fn cb, void *ud, proto_result *inner, err **e)
{
	vctx v = {.cb = cb, .ud = ud, .o = o};
	if (inner)
		proto_result_init(inner);
	if (proto_result_parse(result_json, len, &v.r, e) < 0)
		return -1;
	proto_result_init(&v.inner);
	if (check_signature(&v)) {
		check_delivered(&v);
		check_metadata(&v);
		check_cost(&v);
		check_environment(&v);
		check_received(&v);
		if (decrypt(&v) && check_document(&v))
			check_plaintext(&v);
	}
	if (inner && v.have_inner)
		*inner = v.inner;
	else
		proto_result_deinit(&v.inner);
	yajl_tree_free(v.stmt);
	yajl_tree_free(v.doc);
	free(v.age);
	proto_result_deinit(&v.r);
	return v.failed;
}
