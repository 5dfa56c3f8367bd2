/* The canonical, length-prefixed encodings of a task's input, its output, its exit and the
 * sandbox environment, and the digests built on them (ATTESTATION.md, "Encoding"). Any change
 * here changes every digest: the golden vectors in attest/testdata/ pin the bytes. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "attest/attest.h"
#include "common/cleanup.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "attest/internal.h"
#include "proto/json.h"

void attest_field(buf *b, const char *tag, const void *value, size_t len)
{
	buf_append(b, tag, strlen(tag) + 1);
	buf_append_u64be(b, (uint64_t)len);
	if (len)
		buf_append(b, value, len);
}

static void field_str(buf *b, const char *tag, const char *s)
{
	attest_field(b, tag, s ? s : "", s ? strlen(s) : 0);
}

static void field_u64(buf *b, const char *tag, uint64_t v)
{
	char s[24];
	int n = snprintf(s, sizeof(s), "%" PRIu64, v);
	attest_field(b, tag, s, (size_t)n);
}

static void field_bool(buf *b, const char *tag, bool v)
{
	field_str(b, tag, v ? "true" : "false");
}

void attest_sha256_str(const void *p, size_t n, char out[ATTEST_DIGEST_LEN])
{
	uint8_t md[32];
	unsigned int md_len = 0;
	if (EVP_Digest(p, n, md, &md_len, EVP_sha256(), NULL) != 1 || md_len != sizeof(md))
		abort(); /* SHA-256 of memory cannot fail short of a broken libcrypto */
	memcpy(out, "sha256:", 7);
	hex_encode(md, sizeof(md), out + 7);
}

bool attest_digest_valid(const char *s)
{
	if (strncmp(s, "sha256:", 7) || strlen(s) != ATTEST_DIGEST_LEN - 1)
		return false;
	return strspn(s + 7, "0123456789abcdef") == 64;
}

static int cmp_file(const void *a, const void *b)
{
	return strcmp(((const proto_file *)a)->path, ((const proto_file *)b)->path);
}

static int cmp_env(const void *a, const void *b)
{
	return strcmp(((const proto_env *)a)->name, ((const proto_env *)b)->name);
}

/* Files sorted by path (proto keeps them sorted; sorting a copy of the array costs little
 * and keeps the digest independent of that promise). */
static void fields_files(buf *b, const proto_file *files, size_t n)
{
	_cleanup_free_ proto_file *sorted = n ? xmemdup(files, n * sizeof(*files)) : NULL;
	if (n)
		qsort(sorted, n, sizeof(*sorted), cmp_file);
	field_u64(b, "files", n);
	for (size_t i = 0; i < n; i++) {
		field_str(b, "file.path", sorted[i].path);
		attest_field(b, "file.data", sorted[i].data, sorted[i].len);
	}
}

/* Skills, input blobs and the names of the secrets the sandbox received (PROTOCOL.md,
 * "Skills"); nothing for a task without them, so the digests of other tasks stay as they were. */
static void fields_skills(buf *out, const proto_task *t)
{
	if (!t->skill && !t->n_mount_skills && !t->n_blobs && !t->n_skill_refs)
		return;
	field_str(out, "skill", t->skill);
	field_u64(out, "skills", t->n_skill_refs);
	for (size_t i = 0; i < t->n_skill_refs; i++) {
		field_str(out, "skill.name", t->skill_refs[i].name);
		field_str(out, "skill.digest", t->skill_refs[i].digest);
	}
	field_u64(out, "blobs", t->n_blobs);
	for (size_t i = 0; i < t->n_blobs; i++)
		field_str(out, "blob", t->blobs[i]);
	if (t->blobs_age) /* only when set: the digests of other tasks stay as they were */
		field_str(out, "blobs_age", "true");
	field_u64(out, "secrets", t->n_secret_names);
	for (size_t i = 0; i < t->n_secret_names; i++)
		field_str(out, "secret.name", t->secret_names[i]);
}

void attest_input_encoding(const proto_task *t, buf *out)
{
	if (t->n_steps) {
		attest_chain_input_encoding(t, out);
		return;
	}
	field_str(out, "type", "aisp-input-v1");
	/* A skill task's lang is its skill's, which the skill's digest covers. */
	field_str(out, "lang", t->skill ? "" : proto_lang_name(t->lang));
	field_str(out, "mode", proto_mode_name(t->mode));
	/* A skill task's code is the node's loader of the skill's entrypoint: the skill's
	 * digest (below) covers what it runs. */
	attest_field(out, "code", t->code, t->code && !t->skill ? t->code_len : 0);
	attest_field(out, "stdin", t->stdin_data, t->stdin_data ? t->stdin_len : 0);
	field_str(out, "args", t->args_json);
	_cleanup_free_ proto_env *env = t->n_env ? xmemdup(t->env, t->n_env * sizeof(*env)) : NULL;
	if (t->n_env)
		qsort(env, t->n_env, sizeof(*env), cmp_env);
	field_u64(out, "env", t->n_env);
	for (size_t i = 0; i < t->n_env; i++) {
		field_str(out, "env.name", env[i].name);
		field_str(out, "env.value", env[i].value);
	}
	fields_files(out, t->files, t->n_files);
	fields_skills(out, t);
}

void attest_input_digest(const proto_task *t, char out[ATTEST_DIGEST_LEN])
{
	buf b = BUF_INIT;
	attest_input_encoding(t, &b);
	attest_sha256_str(b.data, b.len, out);
	buf_deinit(&b);
}

char *attest_return_text(const char *rv)
{
	if (!rv)
		return NULL;
	_cleanup_yajl_val_ yajl_val v = NULL;
	if (proto_json_parse(rv, strlen(rv), &v, NULL) < 0)
		return NULL;
	_cleanup_json_gen_ proto_gen *g = proto_json_gen_new();
	proto_json_gen_value(g, v);
	return proto_json_gen_steal(g, NULL, NULL);
}

void attest_output_encoding(const proto_output *o, buf *out)
{
	if (o->chain) {
		attest_chain_output_encoding(o->chain, out);
		return;
	}
	field_str(out, "type", "aisp-output-v1");
	attest_field(out, "stdout", o->out.data, o->out.len);
	attest_field(out, "stderr", o->err.data, o->err.len);
	field_bool(out, "stdout_truncated", o->stdout_truncated);
	field_bool(out, "stderr_truncated", o->stderr_truncated);
	fields_files(out, o->files, o->n_files);
	field_bool(out, "files_truncated", o->files_truncated);
	_cleanup_free_ char *rv = attest_return_text(o->return_value);
	field_str(out, "return_value", rv);
	if (!o->runtime_fields)
		return;
	field_u64(out, "output_blobs", o->n_out_blobs);
	for (size_t i = 0; i < o->n_out_blobs; i++)
		field_str(out, "output_blob", o->out_blobs[i].id);
	field_bool(out, "output_blobs_truncated", o->out_blobs_truncated);
	field_str(out, "logs", o->logs_json ? o->logs_json : "[]");
	field_bool(out, "logs_truncated", o->logs_truncated);
}

void attest_output_digest(const proto_output *o, char out[ATTEST_DIGEST_LEN])
{
	buf b = BUF_INIT;
	attest_output_encoding(o, &b);
	attest_sha256_str(b.data, b.len, out);
	buf_deinit(&b);
}

void attest_exit_encoding(proto_status status, int exit_code, int signal, buf *out)
{
	const char *name = proto_status_name(status);
	field_str(out, "type", "aisp-exit-v1");
	field_str(out, "status", name ? name : "");
	_cleanup_free_ char *code = exit_code >= 0 ? xasprintf("%d", exit_code) : xstrdup("");
	_cleanup_free_ char *sig = signal > 0 ? xasprintf("%d", signal) : xstrdup("");
	field_str(out, "exit_code", code);
	field_str(out, "signal", sig);
}

int attest_environment_encoding(const proto_env *pairs, size_t n, buf *out, err **e)
{
	_cleanup_free_ proto_env *sorted = n ? xmemdup(pairs, n * sizeof(*pairs)) : NULL;
	if (n)
		qsort(sorted, n, sizeof(*sorted), cmp_env);
	for (size_t i = 1; i < n; i++)
		if (!strcmp(sorted[i - 1].name, sorted[i].name))
			return err_set(e, 0, "environment: duplicate key \"%s\"", sorted[i].name);
	field_str(out, "type", "aisp-environment-v1");
	field_u64(out, "pairs", n);
	for (size_t i = 0; i < n; i++) {
		field_str(out, "key", sorted[i].name);
		field_str(out, "value", sorted[i].value);
	}
	return 0;
}

int attest_environment_digest(const proto_env *pairs, size_t n, char out[ATTEST_DIGEST_LEN],
                              err **e)
{
	buf b = BUF_INIT;
	int r = attest_environment_encoding(pairs, n, &b, e);
	if (r == 0)
		attest_sha256_str(b.data, b.len, out);
	buf_deinit(&b);
	return r;
}

void attest_execution_digest(const char *image_digest, const char *input_digest,
                             const char *output_digest, const void *exit_enc, size_t exit_len,
                             const char *environment_digest, char out[ATTEST_DIGEST_LEN])
{
	buf b = BUF_INIT;
	field_str(&b, "type", "aisp-execution-v1");
	field_str(&b, "image", image_digest);
	field_str(&b, "input", input_digest);
	field_str(&b, "output", output_digest);
	attest_field(&b, "exit", exit_enc, exit_len);
	field_str(&b, "environment", environment_digest);
	attest_sha256_str(b.data, b.len, out);
	buf_deinit(&b);
}

int attest_compute_digests(const char *image_digest, const proto_task *task, const proto_output *o,
                           const proto_env *env, size_t n_env, attest_digests *out, err **e)
{
	out->input[0] = '\0';
	if (task)
		attest_input_digest(task, out->input);
	attest_output_digest(o, out->output);
	if (attest_environment_digest(env, n_env, out->environment, e) < 0)
		return -1;
	buf ex = BUF_INIT;
	attest_exit_encoding(o->status, o->exit_code, o->signal, &ex);
	attest_execution_digest(image_digest, out->input, out->output, ex.data, ex.len,
	                        out->environment, out->execution);
	buf_deinit(&ex);
	return 0;
}
