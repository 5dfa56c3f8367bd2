/* A task's skills, secrets and blobs (proto/PROTOCOL.md, "Skills"): the work the task path
 * does for them, around the plain run in task.c.
 *
 *   before the lease   skill_prepare(): each skill resolved in the node's store, its tree
 *                      hashed again and read (the files the agent writes into the sandbox's
 *                      /.aisp/skills), the executing skill's declared secrets looked up (run_code
 *                      gets none unless [secrets] run_code_skills names the skill), the loader
 *                      of a skill task's entrypoint; any failure is a precise rejection.
 *   TS_BLOBS           the input blobs read from Redis (GETRANGE, bounded) and checked against
 *                      their ids: missing, over the caps or not the blob -> rejected.
 *   after the run      skill_finish(): every secret value redacted from what leaves the node
 *                      (stdout, stderr, the error, the return value, output files, logs and
 *                      output blobs, which are then named by the digest of what remains);
 *   TS_STORE           the output blobs written to Redis (SET NX EX) before the result is
 *                      made and published.
 * Secret values go only into the TASK frame's environment: never into the task, a digest, a log
 * line or Redis. */
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attest/attest.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "daemon/secrets.h"
#include "daemon/task-internal.h"
#include "proto/json.h"
#include "sandbox/agent/frame.h"

struct task_skills {
	sandbox_payload payload;
	char **env; /* "NAME=VALUE" of the secrets, NULL-terminated; wiped when freed */
	size_t n_env;
	secrets_redactor *red; /* NULL: no secret to redact */
	proto_blob *blobs;     /* the input blobs, in t->t.blobs' order */
	size_t n_blobs;
	uint64_t blob_bytes;
	proto_output out; /* after the run: the redacted copy of the run's output */
	proto_usage usage;
	size_t stored; /* TS_STORE: output blobs written so far */
};

bool skill_has_secrets(const task *t)
{
	return t->sk && t->sk->n_env;
}

bool skill_used(const task *t)
{
	return t->parsed && (t->t.skill || t->t.n_mount_skills || t->t.n_blobs);
}

void skill_free(task *t)
{
	task_skills *s = t->sk;
	if (!s)
		return;
	sandbox_payload_deinit(&s->payload);
	for (size_t i = 0; i < s->n_env; i++) {
		OPENSSL_cleanse(s->env[i], strlen(s->env[i]));
		free(s->env[i]);
	}
	free(s->env);
	secrets_redactor_free(s->red);
	proto_blobs_free(s->blobs, s->n_blobs);
	proto_output_deinit(&s->out);
	free(s);
	t->sk = NULL;
}

/* ---- before the lease ---- */

static int cmp_ref(const void *a, const void *b)
{
	return strcmp(((const proto_skill_ref *)a)->name, ((const proto_skill_ref *)b)->name);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The loader of a skill task: the entrypoint as the bootstrap's main (function mode). */
static void set_loader(proto_task *pt, const sandbox_skill *sk)
{
	_cleanup_free_ char *mod = sandbox_skill_entry_module(&sk->manifest);
	const char *fn = sk->manifest.entry_func;
	free(pt->code);
	if (sk->manifest.lang == PROTO_LANG_JAVASCRIPT)
		pt->code = xasprintf("const main = require('%s').%s;\n", mod, fn);
	else
		pt->code = xasprintf("from %s import %s as main\n", mod, fn);
	pt->code_len = strlen(pt->code);
}

/* The secrets sk declares, as environment entries; none for a mounted skill the operator did
 * not allow run_code to receive secrets through. */
static int add_secrets(task *t, const sandbox_skill *sk, bool executing, secret_value **vals,
                       size_t *n_vals, char **msg)
{
	const sandbox_skill_manifest *m = &sk->manifest;
	const task_host *h = t->h;
	if (!m->n_secrets || (!executing && !secrets_run_code_allowed(h->secrets_cfg, m->name)))
		return 0;
	if (!h->secrets) {
		*msg = xasprintf("skill %s declares the secret %s, which this node does not hold",
		                 m->name, m->secrets[0]);
		return -1;
	}
	_cleanup_err_ err *e = NULL;
	secret_value *v = NULL;
	if (secrets_lookup(h->secrets, m->name, m->secrets, m->n_secrets, &v, &e) < 0) {
		*msg = xstrdup(err_msg(e));
		return -1;
	}
	task_skills *s = t->sk;
	proto_task *pt = &t->t;
	for (size_t i = 0; i < m->n_secrets; i++) {
		for (size_t j = 0; j < pt->n_env; j++)
			if (!strcmp(pt->env[j].name, v[i].name)) {
				*msg =
				    xasprintf("field \"env\" sets %s, the secret skill %s receives",
				              v[i].name, m->name);
				secrets_values_free(v, m->n_secrets);
				return -1;
			}
		s->env = xreallocarray(s->env, s->n_env + 2, sizeof(char *));
		s->env[s->n_env++] = xasprintf("%s=%s", v[i].name, (const char *)v[i].value);
		s->env[s->n_env] = NULL;
		pt->secret_names =
		    xreallocarray(pt->secret_names, pt->n_secret_names + 1, sizeof(char *));
		pt->secret_names[pt->n_secret_names++] = xstrdup(v[i].name);
	}
	*vals = xreallocarray(*vals, *n_vals + m->n_secrets, sizeof(**vals));
	memcpy(*vals + *n_vals, v, m->n_secrets * sizeof(*v));
	*n_vals += m->n_secrets;
	free(v); /* the values moved to *vals */
	return 0;
}

/* A sealed skill's files (proto/SKILLS.md, "Sealed skills"): its skill.age read from the store,
 * opened with the node's age identity into memory, checked against the public manifest and
 * unpacked into the payload; the plaintext is wiped. Only the skill a task executes: mounted
 * beside other code, its files would be readable by that code. */
static int load_sealed(task *t, const sandbox_skill *sk, bool executing, char **msg)
{
	const char *name = sk->manifest.name;
	if (!executing) {
		*msg = xasprintf("skill %s is sealed: it runs only as a task's \"skill\", never "
		                 "mounted beside other code (which could read it)",
		                 name);
		return -1;
	}
	if (!t->h->n_age_ids) {
		*msg = xasprintf("skill %s is sealed, and this node has no age identity to open it "
		                 "([node] age_key)",
		                 name);
		return -1;
	}
	_cleanup_err_ err *e = NULL;
	buf toml = BUF_INIT, age = BUF_INIT;
	uint8_t *plain = NULL;
	size_t n = 0;
	int rc = sandbox_skill_sealed_read(t->h->skill_store, sk, &toml, &age, &e);
	if (rc == 0 && attest_age_decrypt(age.data, age.len, t->h->age_ids, t->h->n_age_ids, NULL,
	                                  &plain, &n, NULL, &e) < 0)
		rc = err_prefix(&e, "sealed skill %s: %s", name, SANDBOX_SKILL_SEALED_FILE);
	if (rc == 0)
		rc = sandbox_skill_sealed_unpack(plain, n, toml.data, toml.len, &sk->manifest,
		                                 &t->sk->payload, &e);
	if (plain)
		OPENSSL_cleanse(plain, n);
	free(plain);
	buf_deinit(&toml);
	buf_deinit(&age);
	if (rc < 0)
		*msg = xstrdup(err_msg(e));
	return rc;
}

/* One skill of the task: resolved, checked against the task's language, loaded. */
/* An executing skill reaches only the services its manifest declares ([permissions]
 * services): a task naming another one is rejected, so that a caller cannot widen what the
 * seller's code may call. NULL, or the reason (caller frees). */
static char *undeclared_service(const proto_task *pt, const sandbox_skill_manifest *m)
{
	for (size_t i = 0; i < pt->n_services; i++) {
		bool found = false;
		for (size_t k = 0; k < m->n_services && !found; k++)
			found = !strcmp(pt->services[i], m->services[k]);
		if (found)
			continue;
		buf b = BUF_INIT;
		for (size_t k = 0; k < m->n_services; k++)
			buf_appendf(&b, "%s%s", k ? ", " : "", m->services[k]);
		char *why =
		    xasprintf("service \"%s\" is not declared by skill %s (its [permissions] "
		              "services: %s)",
		              pt->services[i], m->name, b.len ? buf_str(&b) : "none");
		buf_deinit(&b);
		return why;
	}
	return NULL;
}

static int add_skill(task *t, const char *ref, bool executing, secret_value **vals, size_t *n_vals,
                     char **msg)
{
	proto_task *pt = &t->t;
	_cleanup_err_ err *e = NULL;
	sandbox_skill sk;
	const char *at = strchr(ref, '@'); /* NAME@DIGEST: the node's NAME must be that digest */
	_cleanup_free_ char *name = at ? xstrndup(ref, (size_t)(at - ref)) : xstrdup(ref);
	if (sandbox_skill_resolve(t->h->skill_store, name, &sk, &e) < 0) {
		*msg = xasprintf("unknown skill \"%s\": %s", name, err_msg(e));
		return -1;
	}
	if (at && strcmp(sk.digest, at + 1)) {
		*msg = xasprintf("skill %s is %s on this node, not the %s the task pins", name,
		                 sk.digest, at + 1);
		sandbox_skill_deinit(&sk);
		return -1;
	}
	int rc = -1;
	const char *lang = proto_lang_name(sk.manifest.lang);
	if (executing && pt->lang_given && pt->lang != sk.manifest.lang)
		*msg = xasprintf("field \"lang\" is %s, but skill %s is %s",
		                 proto_lang_name(pt->lang), sk.manifest.name, lang);
	else if (executing && pt->n_services && (*msg = undeclared_service(pt, &sk.manifest)))
		rc = -1; /* said why */
	else if (!executing && pt->lang != sk.manifest.lang)
		*msg = xasprintf("skill %s is %s: a %s task cannot import it", sk.manifest.name,
		                 lang, proto_lang_name(pt->lang));
	else if (sk.manifest.mode == SANDBOX_SKILL_SEALED) {
		if (load_sealed(t, &sk, executing, msg) == 0)
			rc = add_secrets(t, &sk, executing, vals, n_vals, msg);
	} else if (sandbox_skill_load(t->h->skill_store, &sk, &t->sk->payload, &e) < 0)
		*msg = xstrdup(err_msg(e));
	else
		rc = add_secrets(t, &sk, executing, vals, n_vals, msg);
	if (rc == 0) {
		if (executing) {
			pt->lang = sk.manifest.lang;
			set_loader(pt, &sk);
		}
		pt->skill_refs =
		    xreallocarray(pt->skill_refs, pt->n_skill_refs + 1, sizeof(*pt->skill_refs));
		pt->skill_refs[pt->n_skill_refs++] =
		    (proto_skill_ref){xstrdup(sk.manifest.name), xstrdup(sk.digest)};
	}
	sandbox_skill_deinit(&sk);
	return rc;
}

int skill_prepare(task *t, char **msg)
{
	if (!skill_used(t))
		return 0;
	proto_task *pt = &t->t;
	skill_free(t); /* a second decision (after a fault) starts again */
	for (size_t i = 0; i < pt->n_skill_refs; i++) {
		free(pt->skill_refs[i].name);
		free(pt->skill_refs[i].digest);
	}
	for (size_t i = 0; i < pt->n_secret_names; i++)
		free(pt->secret_names[i]);
	pt->n_skill_refs = pt->n_secret_names = 0;
	t->sk = xzalloc(sizeof(*t->sk));
	secret_value *vals = NULL;
	size_t n_vals = 0;
	int rc = 0;
	if (pt->skill)
		rc = add_skill(t, pt->skill, true, &vals, &n_vals, msg);
	for (size_t i = 0; rc == 0 && i < pt->n_mount_skills; i++)
		rc = add_skill(t, pt->mount_skills[i], false, &vals, &n_vals, msg);
	if (rc == 0 && pt->n_skill_refs > 1)
		qsort(pt->skill_refs, pt->n_skill_refs, sizeof(*pt->skill_refs), cmp_ref);
	for (size_t i = 1; rc == 0 && i < pt->n_skill_refs; i++)
		if (!strcmp(pt->skill_refs[i - 1].name, pt->skill_refs[i].name)) {
			*msg = xasprintf("field \"mount_skills\" names skill %s twice (by name and "
			                 "by digest)",
			                 pt->skill_refs[i].name);
			rc = -1;
		}
	if (rc == 0 && t->sk->payload.bytes > SANDBOX_SKILLS_TREE_MAX) {
		*msg = xasprintf("the task's skills hold %llu bytes, over the %u bytes a sandbox's "
		                 "skills tree holds",
		                 (unsigned long long)t->sk->payload.bytes, SANDBOX_SKILLS_TREE_MAX);
		rc = -1;
	}
	for (size_t i = 0; rc == 0 && i < t->sk->payload.n_files; i++)
		if (t->sk->payload.files[i].len + SANDBOX_SKILL_PATH_MAX + 80 > FRAME_MAX) {
			*msg = xasprintf("skill file %s is too large to deliver to a sandbox",
			                 t->sk->payload.files[i].path);
			rc = -1;
		}
	if (rc == 0 && pt->n_secret_names > 1)
		qsort(pt->secret_names, pt->n_secret_names, sizeof(char *), cmp_str);
	if (rc == 0 && n_vals)
		t->sk->red = secrets_redactor_new(vals, n_vals);
	secrets_values_free(vals, n_vals);
	return rc;
}

/* The run's extra inputs, handed to the sandbox before sandbox_run(). */
void skill_attach(task *t, sandbox *sb)
{
	task_skills *s = t->sk;
	if (!s)
		return;
	s->payload.blobs = s->blobs;
	s->payload.n_blobs = s->n_blobs;
	s->payload.env = (const char *const *)s->env;
	sandbox_set_payload(sb, &s->payload);
}

/* ---- TS_BLOBS: the input blobs from Redis ---- */

static void blob_reply(rconn *rc, redisReply *r, void *arg)
{
	task *t = arg;
	task_ev ev = {.kind = TE_REPLY, .reply = r, .redis_error = "no reply"};
	task_step(t, &ev);
	task_drop(t);
}

/* Asks for the next blob, or returns false when every blob is there. */
static bool fetch_next(task *t)
{
	task_skills *s = t->sk;
	if (s->n_blobs == t->t.n_blobs)
		return false;
	_cleanup_free_ char *key = proto_blob_key(t->t.blobs[s->n_blobs]);
	char end[24];
	snprintf(end, sizeof(end), "%u", PROTO_BLOB_MAX); /* one byte more than a blob may have */
	rconn_cmd(t->h->rc, blob_reply, task_hold(t), "GETRANGE", key, "0", end, NULL);
	return true;
}

void skill_fetch_blobs(task *t)
{
	task_enter(t, TS_BLOBS);
	if (!fetch_next(t))
		task_blobs_done(t, NULL);
}

/* blobs_age: the blob id names an age file to the node; its plaintext (in memory only, wiped
 * with the task) is what the program reads under that id. Returns NULL, or why not. */
static char *open_blob(task *t, const char *id, const redisReply *r, uint8_t **data, size_t *len)
{
	if (!t->h->n_age_ids)
		return xasprintf(
		    "blob %s: field \"blobs_age\" asks for age files, and this node has "
		    "no age identity to open them",
		    id);
	_cleanup_err_ err *e = NULL;
	if (attest_age_decrypt(r->str, r->len, t->h->age_ids, t->h->n_age_ids, NULL, data, len,
	                       NULL, &e) < 0)
		return xasprintf("blob %s (blobs_age): %s", id, err_msg(e));
	if (!*len) { /* the blob type's convention: data is never NULL */
		free(*data);
		*data = xmemdup("", 1);
	}
	return NULL;
}

/* A blob's reply: the bytes, checked; the next blob, or the task goes on. */
void skill_on_blob(task *t, const task_ev *ev)
{
	task_skills *s = t->sk;
	redisReply *r = ev->reply;
	const char *id = t->t.blobs[s->n_blobs];
	if (!r || r->type != REDIS_REPLY_STRING) {
		task_blobs_pending(t); /* Redis is away: the entry stays pending (task.c) */
		return;
	}
	_cleanup_free_ char *why = NULL;
	_cleanup_err_ err *e = NULL;
	char empty[PROTO_BLOB_ID_LEN + 1];
	proto_blob_id_of("", 0, empty);
	if (r->len == 0 && strcmp(id, empty))
		why =
		    xasprintf("blob %s is not in Redis (aisp blob put it first; blobs expire)", id);
	else if (r->len > PROTO_BLOB_MAX)
		why = xasprintf("blob %s is over the cap of %u bytes", id, PROTO_BLOB_MAX);
	else if (s->blob_bytes + r->len > PROTO_BLOBS_TOTAL)
		why =
		    xasprintf("the task's blobs are over their cap of %u bytes in all (at blob %s)",
		              PROTO_BLOBS_TOTAL, id);
	else if (proto_blob_check(id, r->str, r->len, &e) < 0)
		why = xstrdup(err_msg(e));
	uint8_t *data = NULL;
	size_t len = 0;
	if (!why && t->t.blobs_age)
		why = open_blob(t, id, r, &data, &len);
	if (why) {
		task_blobs_done(t, why);
		return;
	}
	s->blobs = xreallocarray(s->blobs, s->n_blobs + 1, sizeof(*s->blobs));
	proto_blob *b = &s->blobs[s->n_blobs++];
	memcpy(b->id, id, PROTO_BLOB_ID_LEN + 1);
	b->data = data ? data : xmemdup(r->len ? r->str : "", r->len ? r->len : 1);
	b->len = data ? len : r->len;
	s->blob_bytes += r->len;
	if (!fetch_next(t))
		task_blobs_done(t, NULL);
}

/* ---- after the run ---- */

static void copy_output(proto_output *d, const proto_output *o)
{
	proto_output_init(d);
	d->status = o->status;
	d->exit_code = o->exit_code;
	d->signal = o->signal;
	buf_append(&d->out, o->out.data, o->out.len);
	buf_append(&d->err, o->err.data, o->err.len);
	d->stdout_truncated = o->stdout_truncated;
	d->stderr_truncated = o->stderr_truncated;
	d->files = xcalloc(o->n_files + 1, sizeof(*d->files));
	for (size_t i = 0; i < o->n_files; i++) {
		d->files[i].path = xstrdup(o->files[i].path);
		d->files[i].data = xmemdup(o->files[i].len ? o->files[i].data : (uint8_t *)"",
		                           o->files[i].len ? o->files[i].len : 1);
		d->files[i].len = o->files[i].len;
	}
	d->n_files = o->n_files;
	d->files_truncated = o->files_truncated;
	d->return_value = o->return_value ? xstrdup(o->return_value) : NULL;
	d->error = o->error ? xstrdup(o->error) : NULL;
	d->runtime_fields = true;
	d->out_blobs = xcalloc(o->n_out_blobs + 1, sizeof(*d->out_blobs));
	for (size_t i = 0; i < o->n_out_blobs; i++) {
		d->out_blobs[i] = o->out_blobs[i];
		d->out_blobs[i].data =
		    xmemdup(o->out_blobs[i].len ? o->out_blobs[i].data : (uint8_t *)"",
		            o->out_blobs[i].len ? o->out_blobs[i].len : 1);
	}
	d->n_out_blobs = o->n_out_blobs;
	d->out_blobs_truncated = o->out_blobs_truncated;
	d->logs_json = o->logs_json ? xstrdup(o->logs_json) : NULL;
	d->logs_truncated = o->logs_truncated;
}

/* Redacts a NUL-terminated string in place (*s replaced). */
static void redact_str(const secrets_redactor *r, char **s)
{
	if (!*s)
		return;
	char *n = secrets_redact_str(r, *s);
	free(*s);
	*s = n;
}

static void redact_bytes(const secrets_redactor *r, uint8_t **data, size_t *len)
{
	buf b = BUF_INIT;
	buf_append(&b, *data, *len);
	if (secrets_redact(r, &b, false)) {
		free(*data);
		*len = b.len;
		buf_append(&b, "", 1);
		*data = (uint8_t *)buf_steal(&b, NULL);
		return;
	}
	buf_deinit(&b);
}

/* Output files: contents redacted; a file whose path holds a secret is dropped (a path cannot
 * be masked without clashing with another), and files_truncated says so. */
static void redact_files(const secrets_redactor *r, proto_output *o)
{
	size_t k = 0;
	for (size_t i = 0; i < o->n_files; i++) {
		proto_file *f = &o->files[i];
		_cleanup_free_ char *p = secrets_redact_str(r, f->path);
		if (strcmp(p, f->path)) {
			free(f->path);
			free(f->data);
			o->files_truncated = true;
			continue;
		}
		redact_bytes(r, &f->data, &f->len);
		o->files[k++] = *f;
	}
	o->n_files = k;
}

static int cmp_blob(const void *a, const void *b)
{
	return strcmp(((const proto_blob *)a)->id, ((const proto_blob *)b)->id);
}

/* Output blobs that held a secret are named by the digest of what remains after redaction. */
static void redact_blobs(const secrets_redactor *r, proto_output *o)
{
	for (size_t i = 0; i < o->n_out_blobs; i++) {
		redact_bytes(r, &o->out_blobs[i].data, &o->out_blobs[i].len);
		proto_blob_id_of(o->out_blobs[i].data, o->out_blobs[i].len, o->out_blobs[i].id);
	}
	qsort(o->out_blobs, o->n_out_blobs, sizeof(*o->out_blobs), cmp_blob);
	size_t k = 0;
	for (size_t i = 0; i < o->n_out_blobs; i++) {
		if (k && !strcmp(o->out_blobs[k - 1].id, o->out_blobs[i].id)) {
			free(o->out_blobs[i].data);
			continue;
		}
		o->out_blobs[k++] = o->out_blobs[i];
	}
	o->n_out_blobs = k;
}

/* Every secret value out of o (stdout, stderr, error, return value, files, logs, blobs). A
 * return value or log that redaction left outside the protocol's bounds is dropped, and why
 * is said. */
static void redact(const secrets_redactor *r, proto_output *o)
{
	secrets_redact(r, &o->out, o->stdout_truncated);
	secrets_redact(r, &o->err, o->stderr_truncated);
	redact_str(r, &o->error);
	redact_str(r, &o->return_value);
	redact_str(r, &o->logs_json);
	redact_files(r, o);
	redact_blobs(r, o);
	_cleanup_err_ err *e = NULL;
	if (o->return_value &&
	    proto_return_check(o->return_value, strlen(o->return_value), &e) < 0) {
		free(o->return_value);
		o->return_value = NULL;
		free(o->error);
		o->error = xstrdup("the return value held a secret and was dropped");
		o->status = PROTO_STATUS_ERROR;
	}
	yajl_val v = NULL;
	if (o->logs_json && proto_json_parse(o->logs_json, strlen(o->logs_json), &v, NULL) < 0) {
		free(o->logs_json);
		o->logs_json = NULL;
		o->logs_truncated = true;
	}
	yajl_tree_free(v);
}

/* A sealed task's output blobs (reply_to): each one an age file to the buyer, named by the digest
 * of that ciphertext, so that Redis never holds their plaintext (the buyer reads them with
 * aisp blob get ID | age -d). One whose ciphertext would be over a blob's cap is left out, and
 * output_blobs_truncated says so. */
static void seal_blobs(const proto_sealed *sd, proto_output *o)
{
	attest_age_recipient r;
	_cleanup_err_ err *e = NULL;
	if (!o->n_out_blobs || attest_age_recipient_parse(&r, sd->reply_to, &e) < 0)
		return; /* reply_to was checked at admission */
	size_t k = 0;
	for (size_t i = 0; i < o->n_out_blobs; i++) {
		proto_blob *b = &o->out_blobs[i];
		uint8_t *c = NULL;
		size_t n = 0;
		int rc = attest_age_encrypt(b->data, b->len, &r, 1, false, &c, &n, NULL);
		OPENSSL_cleanse(b->data, b->len);
		free(b->data);
		if (rc < 0 || n > PROTO_BLOB_MAX) {
			free(c);
			o->out_blobs_truncated = true;
			continue;
		}
		b->data = c;
		b->len = n;
		proto_blob_id_of(c, n, b->id);
		o->out_blobs[k++] = *b;
	}
	o->n_out_blobs = k;
	qsort(o->out_blobs, o->n_out_blobs, sizeof(*o->out_blobs), cmp_blob);
}

const proto_output *skill_finish(task *t, const proto_output *out, const proto_usage *usage)
{
	if (!t->sk && !out->runtime_fields)
		return out;
	if (!t->sk)
		t->sk = xzalloc(sizeof(*t->sk));
	task_skills *s = t->sk;
	proto_output_deinit(&s->out); /* a retry's run replaces the last one's */
	s->stored = 0;
	copy_output(&s->out, out);
	if (usage)
		s->usage = *usage;
	if (s->red)
		redact(s->red, &s->out);
	if (t->parsed && t->t.sealed && t->t.sealed->reply_to)
		seal_blobs(t->t.sealed, &s->out);
	return &s->out;
}

/* ---- TS_STORE: the output blobs into Redis ---- */

static bool store_next(task *t)
{
	task_skills *s = t->sk;
	if (s->stored == s->out.n_out_blobs)
		return false;
	const proto_blob *b = &s->out.out_blobs[s->stored];
	_cleanup_free_ char *key = proto_blob_key(b->id);
	char ttl[24];
	snprintf(ttl, sizeof(ttl), "%d", PROTO_BLOB_TTL_S);
	const char *argv[] = {"SET", key, (const char *)b->data, "NX", "EX", ttl};
	size_t lens[] = {3, strlen(key), b->len, 2, 2, strlen(ttl)};
	rconn_cmdv(t->h->rc, blob_reply, task_hold(t), 0, 6, argv, lens);
	return true;
}

void skill_store_blobs(task *t)
{
	task_enter(t, TS_STORE);
	if (!store_next(t))
		task_stored(t, NULL);
}

/* SET NX: "OK" (stored) or nil (a blob of that id is there: the same bytes, as readers check
 * the digest). */
void skill_on_stored(task *t, const task_ev *ev)
{
	redisReply *r = ev->reply;
	if (!r || (r->type != REDIS_REPLY_STATUS && r->type != REDIS_REPLY_NIL)) {
		_cleanup_free_ char *why =
		    xasprintf("could not store output blob %s in Redis: %s",
		              t->sk->out.out_blobs[t->sk->stored].id,
		              r && r->type == REDIS_REPLY_ERROR ? r->str : "no reply");
		task_stored(t, why);
		return;
	}
	t->sk->stored++;
	if (!store_next(t))
		task_stored(t, NULL);
}

const proto_output *skill_output(const task *t, const proto_usage **usage)
{
	*usage = &t->sk->usage;
	return &t->sk->out;
}
