/* Sealed tasks on the node (attest/SEALED.md): opening a task's age parts into memory, the
 * digests of its parts, the salted commitments, and the sealed result: one document with the
 * real output, its digests and the commitments' salts, age-encrypted to the buyer, beside a
 * public result that carries no plaintext. */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "attest/attest.h"
#include "attest/internal.h"
#include "common/cleanup.h"
#include "common/xalloc.h"
#include "proto/json.h"

static const char *const commit_names[ATTEST_COMMIT__COUNT] = {
    "code",        "stdin", "args",   "files", "steps",
    "chain_input", "input", "output", "exit",  "execution",
};
/* A sealed part's commitment has the part's index. */
_Static_assert((int)ATTEST_COMMIT_STEPS == (int)PROTO_SEALED_STEPS &&
                   (int)ATTEST_COMMIT_CHAIN_INPUT == (int)PROTO_SEALED_INPUT &&
                   (int)ATTEST_COMMIT_INPUT == (int)PROTO_SEALED__COUNT,
               "the part commitments come first, in the parts' order");
/* What a sealed part holds, for messages. */
static const char *const part_what[PROTO_SEALED__COUNT] = {"code",  "stdin", "args",
                                                           "files", "steps", "input"};

const char *attest_commit_name(attest_commit c)
{
	return (unsigned)c < ATTEST_COMMIT__COUNT ? commit_names[c] : NULL;
}

void attest_commitment(const uint8_t salt[ATTEST_SALT_LEN], const char *digest,
                       char out[ATTEST_DIGEST_LEN])
{
	buf b = BUF_INIT;
	buf_append(&b, salt, ATTEST_SALT_LEN);
	buf_append_str(&b, digest);
	attest_sha256_str(b.data, b.len, out);
	buf_deinit(&b);
}

/* ---- opening ---- */

static int open_part(proto_task *t, proto_sealed_part p, attest_age_identity *const *ids,
                     size_t n_ids, err **e)
{
	proto_sealed *sl = t->sealed;
	const char *name = proto_sealed_part_name(p);
	attest_age_decrypt_opts o = {.max_size = sl->age_len[p], .armor = ATTEST_AGE_ARMOR_AUTO};
	uint8_t *plain = NULL;
	size_t n = 0;
	attest_age_failure why = ATTEST_AGE_OK;
	if (attest_age_decrypt(sl->age[p], sl->age_len[p], ids, n_ids, &o, &plain, &n, &why, e) <
	    0) {
		err_prefix(e, "sealed part %s", name);
		return why == ATTEST_AGE_FAIL_NO_MATCH ? -2 : -1;
	}
	err *pe = NULL;
	int r = proto_task_open_part(t, p, plain, n, &pe);
	OPENSSL_cleanse(plain, n);
	free(plain);
	if (r < 0) {
		free(sl->private_error);
		sl->private_error = xasprintf("sealed part %s: %s", name, err_msg(pe));
		err_free(pe);
		return err_set(
		    e, 0,
		    "sealed part %s: the decrypted %s is not valid (the reason is in the "
		    "result sealed to reply_to)",
		    name, part_what[p]);
	}
	return 0;
}

int attest_sealed_open(proto_task *t, attest_age_identity *const *ids, size_t n_ids, err **e)
{
	proto_sealed *sl = t->sealed;
	if (!sl || sl->opened)
		return 0;
	attest_age_recipient r;
	if (sl->reply_to && attest_age_recipient_parse(&r, sl->reply_to, e) < 0)
		return err_prefix(e, "field \"reply_to\"");
	for (int p = 0; p < PROTO_SEALED__COUNT; p++) {
		int rc = sl->age[p] ? open_part(t, (proto_sealed_part)p, ids, n_ids, e) : 0;
		if (rc < 0)
			return rc;
	}
	sl->opened = true;
	return 0;
}

/* ---- digests and commitments ---- */

void attest_files_digest(const proto_task *t, char out[ATTEST_DIGEST_LEN])
{
	buf b = BUF_INIT;
	attest_field(&b, "type", "aisp-files-v1", strlen("aisp-files-v1"));
	char n[32];
	snprintf(n, sizeof(n), "%zu", t->n_files);
	attest_field(&b, "files", n, strlen(n));
	for (size_t i = 0; i < t->n_files; i++) {
		attest_field(&b, "file.path", t->files[i].path, strlen(t->files[i].path));
		attest_field(&b, "file.data", t->files[i].data, t->files[i].len);
	}
	attest_sha256_str(b.data, b.len, out);
	OPENSSL_cleanse(b.data, b.len);
	buf_deinit(&b);
}

void attest_part_digest(const proto_task *t, attest_commit c, char out[ATTEST_DIGEST_LEN])
{
	const char *args = t->args_json ? t->args_json : "";
	switch (c) {
	case ATTEST_COMMIT_CODE:
		attest_sha256_str(t->code ? t->code : "", t->code_len, out);
		break;
	case ATTEST_COMMIT_STDIN:
		attest_sha256_str(t->stdin_data ? (const void *)t->stdin_data : "", t->stdin_len,
		                  out);
		break;
	case ATTEST_COMMIT_ARGS:
		attest_sha256_str(args, strlen(args), out);
		break;
	case ATTEST_COMMIT_STEPS:
	case ATTEST_COMMIT_CHAIN_INPUT: {
		size_t n = 0;
		char *text = c == ATTEST_COMMIT_STEPS ? proto_chain_steps_json(t, &n)
		             : t->input               ? proto_value_json(t->input, &n)
		                                      : xstrdup("");
		attest_sha256_str(text, n, out);
		OPENSSL_cleanse(text, n);
		free(text);
		break;
	}
	default:
		attest_files_digest(t, out);
		break;
	}
}

static int set_commit(attest_sealed_out *o, attest_commit c, const char *digest, err **e)
{
	if (RAND_bytes(o->salt[c], ATTEST_SALT_LEN) != 1)
		return err_set(e, 0, "random salt: %s", attest_ossl_reason());
	memcpy(o->digest[c], digest, ATTEST_DIGEST_LEN);
	attest_commitment(o->salt[c], digest, o->commitment[c]);
	o->has[c] = true;
	return 0;
}

/* Every commitment of a run: the sealed parts and the input once all are open, always the
 * output, the exit and the execution. */
static int commit_all(const proto_task *t, const proto_result *r, const proto_output *o,
                      const proto_env *env, size_t n_env, attest_sealed_out *out, err **e)
{
	bool open = !proto_task_sealed_pending(t);
	attest_digests d;
	if (attest_compute_digests(r->image_digest, open ? t : NULL, o, env, n_env, &d, e) < 0)
		return -1;
	memset(out, 0, sizeof(*out));
	memcpy(out->environment_digest, d.environment, ATTEST_DIGEST_LEN);
	for (int p = 0; open && p < PROTO_SEALED__COUNT; p++) {
		char dg[ATTEST_DIGEST_LEN];
		if (!proto_task_part_sealed(t, (proto_sealed_part)p))
			continue;
		attest_part_digest(t, (attest_commit)p, dg);
		if (set_commit(out, (attest_commit)p, dg, e) < 0)
			return -1;
	}
	buf exit = BUF_INIT;
	attest_exit_encoding(o->status, o->exit_code, o->signal, &exit);
	char exit_digest[ATTEST_DIGEST_LEN];
	attest_sha256_str(exit.data, exit.len, exit_digest);
	buf_deinit(&exit);
	if ((open && set_commit(out, ATTEST_COMMIT_INPUT, d.input, e) < 0) ||
	    set_commit(out, ATTEST_COMMIT_OUTPUT, d.output, e) < 0 ||
	    set_commit(out, ATTEST_COMMIT_EXIT, exit_digest, e) < 0 ||
	    set_commit(out, ATTEST_COMMIT_EXECUTION, d.execution, e) < 0)
		return -1;
	return 0;
}

/* ---- the sealed result document ---- */

void attest_sealed_output_digests(proto_gen *j, const proto_output *o)
{
	char d[ATTEST_DIGEST_LEN];
	proto_json_gen_open(j, true);
	attest_sha256_str(o->out.data ? o->out.data : (const uint8_t *)"", o->out.len, d);
	proto_json_gen_kstr(j, "stdout", d);
	attest_sha256_str(o->err.data ? o->err.data : (const uint8_t *)"", o->err.len, d);
	proto_json_gen_kstr(j, "stderr", d);
	for (size_t i = 0; i < o->n_files; i++) {
		_cleanup_free_ char *name = xasprintf("out/%s", o->files[i].path);
		attest_sha256_str(o->files[i].data, o->files[i].len, d);
		proto_json_gen_kstr(j, name, d);
	}
	_cleanup_free_ char *rv = attest_return_text(o->return_value);
	if (rv) {
		attest_sha256_str(rv, strlen(rv), d);
		proto_json_gen_kstr(j, "return_value", d);
	}
	if (o->error) {
		attest_sha256_str(o->error, strlen(o->error), d);
		proto_json_gen_kstr(j, "error", d);
	}
	proto_json_gen_close(j, true);
}

static void gen_commitments(proto_gen *j, const attest_sealed_out *o)
{
	proto_json_gen_open(j, true);
	for (int c = 0; c < ATTEST_COMMIT__COUNT; c++) {
		if (!o->has[c])
			continue;
		_cleanup_free_ char *salt = proto_b64_encode(o->salt[c], ATTEST_SALT_LEN);
		proto_json_gen_str(j, commit_names[c]);
		proto_json_gen_open(j, true);
		proto_json_gen_kstr(j, "digest", o->digest[c]);
		proto_json_gen_kstr(j, "salt", salt);
		proto_json_gen_close(j, true);
	}
	proto_json_gen_close(j, true);
}

/* The document (plaintext: caller wipes and frees *out). */
static int gen_doc(const proto_result *inner, const attest_sealed_out *o, buf *out, err **e)
{
	buf res = BUF_INIT;
	proto_result_to_json(inner, &res);
	_cleanup_json_gen_ proto_gen *j = proto_json_gen_new();
	proto_json_gen_open(j, true);
	proto_json_gen_kstr(j, "_type", ATTEST_SEALED_RESULT_TYPE);
	proto_json_gen_kstr(j, "task_id", inner->id);
	proto_json_gen_str(j, "result");
	int r = proto_json_gen_json(j, (const char *)res.data, res.len, e);
	OPENSSL_cleanse(res.data, res.len);
	buf_deinit(&res);
	if (r < 0)
		return -1;
	proto_json_gen_str(j, "outputs");
	attest_sealed_output_digests(j, &inner->output);
	proto_json_gen_str(j, "commitments");
	gen_commitments(j, o);
	proto_json_gen_close(j, true);
	char *text = NULL;
	size_t len = 0;
	if (!(text = proto_json_gen_steal(j, &len, e)))
		return -1;
	/* The generator's buffer held the plaintext too: proto_json_gen_take() wiped it. */
	buf_deinit(out);
	out->data = (uint8_t *)text;
	out->len = len;
	out->cap = len + 1;
	return 0;
}

/* Makes room: drops output files from the end (files_truncated), then cuts stdout and stderr
 * (truncated), so that the next document is smaller by at least excess bytes. o is a shallow
 * copy: nothing is freed. */
static void trim(proto_output *o, size_t excess)
{
	while (o->n_files && excess) {
		const proto_file *f = &o->files[o->n_files - 1];
		size_t est = f->len / 3 * 4 + strlen(f->path) + 128;
		excess = est >= excess ? 0 : excess - est;
		o->n_files--;
		o->files_truncated = true;
	}
	if (!excess)
		return;
	size_t keep = PROTO_SEALED_DOC_MAX / 4;
	if (o->out.len > keep) {
		o->out.len = keep;
		o->stdout_truncated = true;
	}
	if (o->err.len > keep) {
		o->err.len = keep;
		o->stderr_truncated = true;
	}
}

static bool node_status(proto_status s)
{
	return s == PROTO_STATUS_REJECTED || s == PROTO_STATUS_INTERNAL ||
	       s == PROTO_STATUS_REVOKED || s == PROTO_STATUS_SANDBOX_ERROR;
}

static void public_result(const proto_result *real, proto_result *pub)
{
	proto_result_init(pub);
	pub->id = xstrdup(real->id);
	pub->output.status = real->output.status;
	if (node_status(real->output.status) && real->output.error)
		pub->output.error = xstrdup(real->output.error);
	pub->usage = real->usage;
	pub->node_id = real->node_id ? xstrdup(real->node_id) : NULL;
	pub->runtime = real->runtime ? xstrdup(real->runtime) : NULL;
	pub->image_digest = real->image_digest ? xstrdup(real->image_digest) : NULL;
	pub->received_ms = real->received_ms;
	pub->started_ms = real->started_ms;
	pub->finished_ms = real->finished_ms;
	pub->attempts = real->attempts;
	if (real->cost) { /* the total is public (the buyer is billed it), the breakdown sealed */
		pub->cost = proto_cost_new();
		pub->cost->total = real->cost->total;
		pub->cost->breakdown_sealed = true;
	}
}

/* The document for inner (its output trimmed until it fits), with its commitments. */
static int build(const proto_task *t, proto_result *inner, const proto_env *env, size_t n_env,
                 attest_sealed_out *out, buf *doc, err **e)
{
	for (int round = 0; round < 4; round++) {
		if (commit_all(t, inner, &inner->output, env, n_env, out, e) < 0)
			return -1;
		free(inner->execution_digest);
		inner->execution_digest = xstrdup(out->digest[ATTEST_COMMIT_EXECUTION]);
		if (gen_doc(inner, out, doc, e) < 0)
			return -1;
		if (doc->len <= PROTO_SEALED_DOC_MAX)
			return 0;
		trim(&inner->output, doc->len - PROTO_SEALED_DOC_MAX);
		OPENSSL_cleanse(doc->data, doc->len);
	}
	return err_set(e, 0, "sealed result: the document does not fit %u bytes",
	               PROTO_SEALED_DOC_MAX);
}

int attest_sealed_result(const proto_task *t, const proto_result *real, const proto_env *env,
                         size_t n_env, proto_result *pub, attest_sealed_out *out, err **e)
{
	attest_age_recipient r;
	if (!t->sealed || !t->sealed->reply_to)
		return err_set(e, 0, "sealed result: the task has no reply_to");
	if (attest_age_recipient_parse(&r, t->sealed->reply_to, e) < 0)
		return err_prefix(e, "sealed result: field \"reply_to\"");
	/* inner borrows everything of real (never deinit), except what is set here. */
	proto_result inner = *real;
	inner.attestation = NULL;
	inner.sealed = NULL;
	inner.execution_digest = NULL;
	if (t->sealed->private_error)
		inner.output.error = t->sealed->private_error;
	buf doc = BUF_INIT;
	int rc = build(t, &inner, env, n_env, out, &doc, e);
	free(inner.execution_digest);
	uint8_t *age = NULL;
	size_t age_len = 0;
	if (rc == 0)
		rc = attest_age_encrypt(doc.data, doc.len, &r, 1, false, &age, &age_len, e);
	if (doc.data)
		OPENSSL_cleanse(doc.data, doc.len);
	buf_deinit(&doc);
	if (rc < 0)
		return err_prefix(e, "sealed result");
	attest_sha256_str(age, age_len, out->delivered);
	public_result(real, pub);
	pub->sealed = proto_b64_encode(age, age_len);
	free(age);
	return 0;
}
