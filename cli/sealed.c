/* Sealing and signing a task on the submitter's side (cli/sealed.h, proto/SEALED.md): its
 * parts encrypted to the node with age, reply_to, the trust level, the signer and its passport,
 * and the signed-task envelope; the same rules as the node's, since the document is parsed
 * again with the node's parser before it leaves. */
#include "cli/sealed.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/crypto.h>

#include "attest/attest.h"
#include "cli/redis.h"
#include "common/cleanup.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "proto/json.h"

const char cli_seal_usage[] =
    "  --seal-to R        seal parts of the task for a node: an age1... recipient, a\n"
    "                     file of them (the node's DIR/age.pub), or node:ID (the one\n"
    "                     node ID publishes in the registry, signed by the key the\n"
    "                     registry names: node:ID@sha256:KEYID pins that key, else\n"
    "                     compare the key id printed with the node's own); may be repeated\n"
    "  --seal-parts LIST  the parts to seal: code,stdin,args,files, or a chain's steps,input\n"
    "                     (default: each one the task has)\n"
    "  --reply-to R       the buyer's age1... recipient (or a file holding it): the result\n"
    "                     comes back sealed to it (needed with sealed parts)\n"
    "  --trust-level L    L0, L1 or L2: the passport the node must see (attest/TRUST.md)\n"
    "  --sign-key PEM     sign the task with this Ed25519 private key (its signer)\n"
    "  --passport FILE    present this passport, issued to the signing key\n";

DEFINE_CLEANUP_FUNC(attest_key *, attest_key_free)

int cli_public_key(const char *spec, uint8_t raw[ATTEST_RAW_KEY_LEN], char id[ATTEST_DIGEST_LEN],
                   err **e)
{
	struct stat st;
	_cleanup_(attest_key_freep) attest_key *k = NULL;
	if (stat(spec, &st) == 0) {
		_cleanup_free_ char *path =
		    S_ISDIR(st.st_mode) ? xasprintf("%s/public.pem", spec) : xstrdup(spec);
		if (attest_key_load_public(&k, path, e) < 0)
			return -1;
		attest_key_raw(k, raw);
		memcpy(id, attest_key_id(k), ATTEST_DIGEST_LEN);
		return 0;
	}
	_cleanup_free_ uint8_t *d = NULL;
	size_t n = 0;
	if (proto_b64_decode(spec, strlen(spec), &d, &n) < 0 || n != ATTEST_RAW_KEY_LEN)
		return err_set(e, 0,
		               "\"%s\" is neither a key file, a key directory nor the base64 of a "
		               "32-byte Ed25519 public key",
		               spec);
	memcpy(raw, d, ATTEST_RAW_KEY_LEN);
	attest_raw_key_id(raw, id);
	return 0;
}

int cli_key_id(const char *spec, char id[ATTEST_DIGEST_LEN], err **e)
{
	uint8_t raw[ATTEST_RAW_KEY_LEN];
	if (proto_blob_id_valid(spec)) {
		memcpy(id, spec, ATTEST_DIGEST_LEN);
		return 0;
	}
	return cli_public_key(spec, raw, id, e);
}

int cli_seal_opt(cli_seal_opts *o, int argc, char **argv, int *i, err **e)
{
	const char *a = argv[*i];
	const char **dst = !strcmp(a, "--reply-to")      ? &o->reply_to
	                   : !strcmp(a, "--seal-parts")  ? &o->parts
	                   : !strcmp(a, "--sign-key")    ? &o->sign_key
	                   : !strcmp(a, "--passport")    ? &o->passport
	                   : !strcmp(a, "--trust-level") ? &o->level
	                                                 : NULL;
	bool to = !strcmp(a, "--seal-to");
	if (!dst && !to)
		return 0;
	if (*i + 1 >= argc)
		return err_set(e, 0, "%s needs a value", a);
	const char *v = argv[++*i];
	o->any = true;
	if (dst) {
		*dst = v;
		return 1;
	}
	if (!strncmp(v, "node:", 5) && v[5]) {
		if (o->to_node)
			return err_set(e, 0, "--seal-to node:ID may be given once");
		o->to_node = v + 5;
		return 1;
	}
	int r = !strncmp(v, "age1", 4) ? cli_recipients_add(&o->to, v, e)
	                               : cli_recipients_add_file(&o->to, v, e);
	return r < 0 ? err_prefix(e, "--seal-to") : 1;
}

/* ---- sealing ---- */

/* A chain's parts are its steps and its input; a plain task's the other four. */
static bool chain_part(proto_sealed_part p)
{
	return p == PROTO_SEALED_STEPS || p == PROTO_SEALED_INPUT;
}

/* Appends an owned plaintext (NULL: none) to out, wiping and freeing it; true when there was. */
static bool take_plain(buf *out, char *text, size_t n)
{
	if (!text)
		return false;
	buf_append(out, text, n);
	OPENSSL_cleanse(text, n);
	free(text);
	return true;
}

/* The plaintext of part p of t into out; false when t has none (nothing to seal). */
static bool part_plaintext(const proto_task *t, proto_sealed_part p, buf *out)
{
	if (chain_part(p) != proto_task_is_chain(t))
		return false;
	size_t n = 0;
	char *text = NULL; /* set before take_plain reads n: argument order is unspecified */
	switch (p) {
	case PROTO_SEALED_CODE:
		buf_append(out, t->code ? t->code : "", t->code_len);
		return true;
	case PROTO_SEALED_STDIN:
		buf_append(out, t->stdin_data, t->stdin_len);
		return t->stdin_len > 0;
	case PROTO_SEALED_ARGS:
		buf_append_str(out, t->args_json ? t->args_json : "");
		return t->args_json != NULL;
	case PROTO_SEALED_STEPS:
		text = proto_chain_steps_json(t, &n);
		return take_plain(out, text, n);
	case PROTO_SEALED_INPUT:
		if (t->input && (t->input->json || t->input->len))
			text = proto_value_json(t->input, &n);
		return take_plain(out, text, n);
	default:
		break;
	}
	if (!t->n_files)
		return false;
	proto_task_files_json(t, out);
	return true;
}

/* --seal-parts into want[]. */
static int parse_parts(const char *list, bool want[PROTO_SEALED__COUNT], err **e)
{
	_cleanup_free_ char *s = xstrdup(list);
	for (char *save = NULL, *tok = strtok_r(s, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		_cleanup_free_ char *name = xasprintf("%s_age", tok);
		int p = 0;
		while (p < PROTO_SEALED__COUNT && strcmp(name, proto_sealed_part_name(p)))
			p++;
		if (p == PROTO_SEALED__COUNT)
			return err_set(e, 0,
			               "--seal-parts: \"%s\" is not one of code, stdin, args, "
			               "files (a plain task), steps, input (a chain)",
			               tok);
		want[p] = true;
	}
	return 0;
}

static proto_sealed *sealed_of(proto_task *t)
{
	if (!t->sealed)
		t->sealed = xzalloc(sizeof(*t->sealed));
	return t->sealed;
}

static int seal_part(proto_task *t, proto_sealed_part p, const cli_recipients *to, bool explicit,
                     err **e)
{
	const char *name = proto_sealed_part_name(p);
	if (proto_task_part_sealed(t, p))
		return explicit ? err_set(e, 0, "--seal-parts: %s is sealed already", name) : 0;
	buf plain = BUF_INIT;
	bool has = part_plaintext(t, p, &plain);
	int r = 0;
	if (!has && explicit)
		r = err_set(e, 0, "--seal-parts: the task has no %.*s", (int)(strlen(name) - 4),
		            name);
	proto_sealed *sl = has ? sealed_of(t) : NULL;
	if (has && attest_age_encrypt(plain.data, plain.len, to->r, to->n, false, &sl->age[p],
	                              &sl->age_len[p], e) < 0)
		r = err_prefix(e, "seal %s", name);
	if (plain.data)
		OPENSSL_cleanse(plain.data, plain.len);
	buf_deinit(&plain);
	return r;
}

/* The age recipient node id publishes (its registry field age_recipient), checked with the
 * public key it publishes beside it. The key id goes to stderr: a buyer who knows the node's
 * key compares it (whoever can write the registry could replace both). */
static int node_recipient(const char *addr, const char *spec, cli_recipients *rs, err **e)
{
	/* node:ID@sha256:KEYID: the key that must have signed the recipient */
	_cleanup_free_ char *id = xstrdup(spec);
	char *pin = strchr(id, '@');
	if (pin)
		*pin++ = '\0';
	if (rs->n == ATTEST_AGE_STANZA_MAX)
		return err_set(e, 0, "more than %d recipients", ATTEST_AGE_STANZA_MAX);
	redisContext *c = cli_redis_connect(addr, 5000, e);
	if (!c)
		return -1;
	redisReply *r =
	    redisCommand(c, "HMGET %s%s age_recipient pubkey", PROTO_KEY_NODE_PREFIX, id);
	int rc = -1;
	_cleanup_(attest_key_freep) attest_key *k = NULL;
	if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2)
		err_set(e, 0, "HMGET %s%s: %s", PROTO_KEY_NODE_PREFIX, id,
		        r && r->type == REDIS_REPLY_ERROR ? r->str : c->errstr);
	else if (r->element[0]->type != REDIS_REPLY_STRING ||
	         r->element[1]->type != REDIS_REPLY_STRING)
		err_set(
		    e, 0,
		    "node %s publishes no age recipient (not live in this Redis, or it holds no "
		    "age identity)",
		    id);
	else if (attest_key_from_public_pem(&k, r->element[1]->str, r->element[1]->len, e) < 0)
		;
	else if (pin && strcmp(pin, attest_key_id(k)))
		err_set(e, 0,
		        "the registry's key for node %s is %s, not the pinned %s: not sealing (the "
		        "registry entry may have been replaced)",
		        id, attest_key_id(k), pin);
	else if (attest_recipient_verify(r->element[0]->str, r->element[0]->len, k, id,
	                                 &rs->r[rs->n], e) == 0) {
		char text[ATTEST_AGE_RECIPIENT_LEN + 1];
		attest_age_recipient_format(&rs->r[rs->n++], text);
		fprintf(stderr, "aisp: sealing for node %s: %s, signed by %s key %s%s\n", id, text,
		        pin ? "the pinned" : "the registry's", attest_key_id(k),
		        pin ? ""
		            : " (whoever can write the registry can replace both: pin the "
		              "node's key with node:ID@KEYID)");
		rc = 0;
	}
	if (r)
		freeReplyObject(r);
	redisFree(c);
	return rc < 0 ? err_prefix(e, "--seal-to node:%s", id) : 0;
}

static int seal_parts(proto_task *t, const cli_seal_opts *o, err **e)
{
	bool want[PROTO_SEALED__COUNT] = {false};
	bool explicit = o->parts != NULL;
	cli_recipients to = o->to;
	if (o->to_node && node_recipient(o->redis, o->to_node, &to, e) < 0)
		return -1;
	if (explicit && !to.n)
		return err_set(e, 0, "--seal-parts needs --seal-to");
	if (!to.n)
		return 0;
	if (explicit && parse_parts(o->parts, want, e) < 0)
		return -1;
	for (int p = 0; p < PROTO_SEALED__COUNT; p++)
		if ((!explicit || want[p]) &&
		    seal_part(t, (proto_sealed_part)p, &to, explicit, e) < 0)
			return -1;
	if (t->sealed && (proto_task_part_sealed(t, PROTO_SEALED_CODE) ||
	                  proto_task_part_sealed(t, PROTO_SEALED_STEPS)))
		t->sealed->exec_mode = PROTO_EXEC_SEALED;
	return 0;
}

/* An age1... recipient, or the first one of a file. */
static int set_reply_to(proto_task *t, const char *arg, err **e)
{
	cli_recipients rs = {.n = 0};
	int r = !strncmp(arg, "age1", 4) ? cli_recipients_add(&rs, arg, e)
	                                 : cli_recipients_add_file(&rs, arg, e);
	if (r < 0)
		return err_prefix(e, "--reply-to");
	if (!rs.n)
		return err_set(e, 0, "--reply-to %s: no recipient in the file", arg);
	char text[ATTEST_AGE_RECIPIENT_LEN + 1];
	attest_age_recipient_format(&rs.r[0], text);
	proto_sealed *sl = sealed_of(t);
	free(sl->reply_to);
	sl->reply_to = xstrdup(text);
	return 0;
}

/* ---- signing ---- */

static proto_auth *auth_of(proto_task *t)
{
	if (!t->auth)
		t->auth = xzalloc(sizeof(*t->auth));
	return t->auth;
}

/* The passport file, compact, after checking that it is issued to the signing key. */
static int set_passport(proto_auth *a, const char *path, const attest_key *k, err **e)
{
	buf b = BUF_INIT;
	attest_passport p;
	_cleanup_yajl_val_ yajl_val v = NULL;
	int r = read_file_at(AT_FDCWD, path, PROTO_PASSPORT_MAX * 2, &b, e);
	if (r == 0 && (r = proto_json_parse((const char *)b.data, b.len, &v, e)) == 0) {
		_cleanup_json_gen_ proto_gen *g = proto_json_gen_new();
		proto_json_gen_value(g, v);
		buf_reset(&b);
		r = proto_json_gen_take(g, &b, e);
		if (r == 0)
			r = attest_passport_parse((const char *)b.data, b.len, &p, e);
	}
	if (r == 0 && strcmp(p.subject_id, attest_key_id(k)))
		r = err_set(e, 0, "it is issued to %s, not to the signing key %s", p.subject_id,
		            attest_key_id(k));
	if (r == 0)
		attest_passport_deinit(&p);
	if (r == 0)
		a->passport = buf_steal(&b, NULL);
	buf_deinit(&b);
	return r < 0 ? err_prefix(e, "--passport %s", path) : 0;
}

static int set_trust(proto_task *t, const cli_seal_opts *o, attest_key **k, err **e)
{
	if (o->level) {
		proto_auth *a = auth_of(t);
		if (proto_trust_level_parse(o->level, &a->req.level) < 0)
			return err_set(e, 0, "--trust-level: \"%s\" is not one of L0, L1, L2",
			               o->level);
	}
	if (o->passport && !o->sign_key)
		return err_set(e, 0,
		               "--passport needs --sign-key: a passport is presented by the "
		               "task's signer");
	if (!o->sign_key)
		return 0;
	if (attest_key_load_private(k, o->sign_key, e) < 0)
		return err_prefix(e, "--sign-key");
	proto_auth *a = auth_of(t);
	attest_key_raw(*k, a->signer);
	a->has_signer = true;
	free(a->passport);
	a->passport = NULL;
	return o->passport ? set_passport(a, o->passport, *k, e) : 0;
}

int cli_read_task(const char *path, proto_task *t, err **e)
{
	buf b = BUF_INIT;
	proto_task_init(t);
	int r = read_file_at(AT_FDCWD, path, PROTO_TASK_MAX_BYTES, &b, e);
	if (r == 0 && proto_task_parse_entry(buf_str(&b), b.len, t, NULL, e) < 0)
		r = err_prefix(e, "%s: not a task", path);
	buf_deinit(&b);
	return r;
}

int cli_seal_finish(proto_task *t, const cli_seal_opts *o, buf *out, err **e)
{
	_cleanup_(attest_key_freep) attest_key *k = NULL;
	if (t->auth && t->auth->sig)
		return err_set(e, 0,
		               "the task is signed already: seal and set its fields before "
		               "signing");
	if (seal_parts(t, o, e) < 0 || (o->reply_to && set_reply_to(t, o->reply_to, e) < 0) ||
	    set_trust(t, o, &k, e) < 0)
		return -1;
	buf doc = BUF_INIT;
	proto_task_to_json(t, &doc);
	_cleanup_free_ char *env = NULL;
	int r = k ? attest_task_sign(k, buf_str(&doc), doc.len, &env, e) : 0;
	if (r == 0)
		buf_append(out, env ? env : buf_str(&doc), env ? strlen(env) : doc.len);
	buf_deinit(&doc);
	if (r < 0)
		return -1;
	/* The node's parser, and the signature check, on exactly what leaves. */
	proto_task check;
	if (proto_task_parse_entry(buf_str(out), out->len, &check, NULL, e) < 0)
		return err_prefix(e, "the task");
	attest_task_auth a;
	attest_task_auth_init(&a, &check);
	if (a.signature_error)
		r = err_set(e, 0, "%s", a.signature_error);
	attest_task_auth_deinit(&a);
	proto_task_deinit(&check);
	return r;
}
