/* The fields of sealed and signed tasks (proto/PROTOCOL.md, "Sealed and signed tasks"): the age ciphertext parts, reply_to
 * and exec_mode, the signer and its passport, trust requirements, the signed-task envelope, and
 * the revocation records. Only syntax and bounds live here; every cryptographic check is in
 * attest/ (attest/SEALED.md, attest/TRUST.md). */
#include "proto/proto.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "common/cleanup.h"
#include "common/xalloc.h"
#include "proto/internal.h"
#include "proto/json.h"

static const char *const part_names[PROTO_SEALED__COUNT] = {"code_age",  "stdin_age", "args_age",
                                                            "files_age", "steps_age", "input_age"};
/* The clear fields each sealed part stands for (mutually exclusive with it). */
static const char *const part_clear[PROTO_SEALED__COUNT][2] = {
    {"code", NULL},  {"stdin", "stdin_b64"}, {"args", NULL},
    {"files", NULL}, {"steps", NULL},        {"input", NULL}};
static const size_t part_plain_max[PROTO_SEALED__COUNT] = {
    PROTO_CODE_MAX,         PROTO_STDIN_MAX,        PROTO_ARGS_MAX,
    PROTO_SEALED_FILES_MAX, PROTO_SEALED_STEPS_MAX, PROTO_CHAIN_INPUT_MAX};
static const char *const level_names[PROTO_TRUST__COUNT] = {"none", "L0", "L1", "L2"};
static const char *const assurance_names[PROTO_ASSURANCE__COUNT] = {"none", "low", "substantial",
                                                                    "high"};
static const char *const req_fields[] = {"min_assurance", "accepted_providers", "required_claims"};
static const char *const ext_fields[] = {
    "exec_mode", "reply_to",  "code_age", "stdin_age", "args_age",    "files_age",
    "steps_age", "input_age", "signer",   "passport",  "trust_level", "trust_requirements"};
static const char *const envelope_fields[] = {"payloadType", "payload", "signatures"};
static const char *const sig_fields[] = {"keyid", "sig"};

const char *proto_sealed_part_name(proto_sealed_part p)
{
	return (unsigned)p < PROTO_SEALED__COUNT ? part_names[p] : NULL;
}

const char *proto_trust_level_name(proto_trust_level l)
{
	return (unsigned)l < PROTO_TRUST__COUNT ? level_names[l] : NULL;
}

const char *proto_assurance_name(proto_assurance a)
{
	return (unsigned)a < PROTO_ASSURANCE__COUNT ? assurance_names[a] : NULL;
}

/* Index of s in names[1..n) (entry 0, "none", is never accepted), or -1. */
static int name_index(const char *const *names, size_t n, const char *s)
{
	for (size_t i = 1; s && i < n; i++)
		if (!strcmp(s, names[i]))
			return (int)i;
	return -1;
}

int proto_trust_level_parse(const char *s, proto_trust_level *out)
{
	int i = name_index(level_names, PROTO_TRUST__COUNT, s);
	if (i < 0)
		return -1;
	*out = (proto_trust_level)i;
	return 0;
}

int proto_assurance_parse(const char *s, proto_assurance *out)
{
	int i = name_index(assurance_names, PROTO_ASSURANCE__COUNT, s);
	if (i < 0)
		return -1;
	*out = (proto_assurance)i;
	return 0;
}

bool proto_trust_name_valid(const char *s)
{
	size_t n = s ? strlen(s) : 0;
	if (n < 1 || n > PROTO_TRUST_NAME_MAX ||
	    !strchr("abcdefghijklmnopqrstuvwxyz0123456789", s[0]))
		return false;
	return strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_.-") == n;
}

bool proto_task_part_sealed(const proto_task *t, proto_sealed_part p)
{
	return t->sealed && (unsigned)p < PROTO_SEALED__COUNT && t->sealed->age[p];
}

bool proto_task_sealed_pending(const proto_task *t)
{
	if (!t->sealed || t->sealed->opened)
		return false;
	for (int p = 0; p < PROTO_SEALED__COUNT; p++)
		if (t->sealed->age[p])
			return true;
	return false;
}

static bool key_id_valid(const char *s)
{
	return s && strlen(s) == PROTO_KEY_ID_LEN && !strncmp(s, "sha256:", 7) &&
	       strspn(s + 7, "0123456789abcdef") == 64;
}

/* ---- trust requirements ---- */

void proto_trust_req_deinit(proto_trust_req *r)
{
	for (size_t i = 0; i < r->n_providers; i++)
		free(r->providers[i]);
	for (size_t i = 0; i < r->n_claims; i++)
		free(r->claims[i]);
	free(r->providers);
	free(r->claims);
	memset(r, 0, sizeof(*r));
}

static bool field_known(const char *k, const char *const *allowed, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(k, allowed[i]))
			return true;
	return false;
}

/* The first key of obj not in allowed, quoted with prefix, as an error. */
static int unknown_key(yajl_val obj, const char *const *allowed, size_t n, const char *prefix,
                       err **e)
{
	for (size_t i = 0; i < obj->u.object.len; i++) {
		const char *k = obj->u.object.keys[i];
		if (field_known(k, allowed, n))
			continue;
		_cleanup_free_ char *full = xasprintf("%s%s", prefix, k);
		_cleanup_free_ char *q = proto_quote(full, strlen(full));
		return err_set(e, 0, "unknown field %s", q);
	}
	return 0;
}

/* A list of distinct names: "trust_requirements.<key>". */
static int name_list(yajl_val obj, const char *key, char ***out, size_t *n, err **e)
{
	yajl_val v = proto_json_get(obj, key);
	if (!v)
		return 0;
	if (!YAJL_IS_ARRAY(v))
		return err_set(e, 0, "field \"trust_requirements.%s\" must be an array of names",
		               key);
	if (v->u.array.len > PROTO_TRUST_LIST_MAX)
		return err_set(e, 0,
		               "field \"trust_requirements.%s\" has %zu entries, above the %d "
		               "limit",
		               key, v->u.array.len, PROTO_TRUST_LIST_MAX);
	*out = xcalloc(v->u.array.len + 1, sizeof(char *));
	for (size_t i = 0; i < v->u.array.len; i++) {
		yajl_val s = v->u.array.values[i];
		if (!YAJL_IS_STRING(s) || !proto_trust_name_valid(s->u.string))
			return err_set(e, 0,
			               "trust_requirements.%s[%zu] must match "
			               "[a-z0-9][a-z0-9_.-]{0,63}",
			               key, i);
		for (size_t j = 0; j < *n; j++)
			if (!strcmp((*out)[j], s->u.string))
				return err_set(e, 0, "trust_requirements.%s lists \"%s\" twice",
				               key, s->u.string);
		(*out)[(*n)++] = xstrdup(s->u.string);
	}
	return 0;
}

static int req_parse(const char *level, yajl_val req, proto_trust_req *r, err **e)
{
	if (!level)
		return req ? err_set(e, 0, "field \"trust_requirements\" needs \"trust_level\"")
		           : 0;
	if (proto_trust_level_parse(level, &r->level) < 0)
		return err_set(e, 0, "field \"trust_level\" must be one of L0, L1, L2");
	if (!req)
		return 0;
	if (!YAJL_IS_OBJECT(req))
		return err_set(e, 0, "field \"trust_requirements\" must be an object");
	if (unknown_key(req, req_fields, ARRAY_SIZE(req_fields), "trust_requirements.", e) < 0)
		return -1;
	yajl_val a = proto_json_get(req, "min_assurance");
	if (a && (!YAJL_IS_STRING(a) || proto_assurance_parse(a->u.string, &r->min_assurance) < 0))
		return err_set(e, 0,
		               "field \"trust_requirements.min_assurance\" must be one of low, "
		               "substantial, high");
	if (name_list(req, "accepted_providers", &r->providers, &r->n_providers, e) < 0 ||
	    name_list(req, "required_claims", &r->claims, &r->n_claims, e) < 0)
		return -1;
	return 0;
}

int proto_trust_req_parse(const char *level, yajl_val req, proto_trust_req *r, err **e)
{
	memset(r, 0, sizeof(*r));
	if (req_parse(level, req, r, e) < 0) {
		proto_trust_req_deinit(r);
		return -1;
	}
	return 0;
}

/* ---- parsing the task's fields ---- */

static proto_sealed *sealed_of(proto_task *t)
{
	if (!t->sealed)
		t->sealed = xzalloc(sizeof(*t->sealed));
	return t->sealed;
}

static proto_auth *auth_of(proto_task *t)
{
	if (!t->auth)
		t->auth = xzalloc(sizeof(*t->auth));
	return t->auth;
}

/* A string field or NULL; -1 when it is there but not a string. */
static int str_field(yajl_val root, const char *key, const char **out, err **e)
{
	yajl_val v = proto_json_get(root, key);
	*out = NULL;
	if (v && !YAJL_IS_STRING(v))
		return err_set(e, 0, "field \"%s\" must be a string", key);
	*out = v ? v->u.string : NULL;
	return 0;
}

/* Base64 of at most max bytes (and at least min) into *out. */
static int b64_field(const char *key, const char *s, size_t min, size_t max, uint8_t **out,
                     size_t *n, err **e)
{
	size_t len = strlen(s);
	if (len / 4 * 3 > max + 2) /* the fewest bytes len characters decode to, minus padding */
		return err_set(e, 0, "field \"%s\" decodes to more than the %zu-byte limit", key,
		               max);
	if (proto_b64_decode(s, len, out, n) < 0)
		return err_set(e, 0, "field \"%s\" is not valid base64", key);
	if (*n < min || *n > max)
		return err_set(e, 0, "field \"%s\" decodes to %zu bytes; %s", key, *n,
		               min == max ? "expected exactly that many" : "out of bounds");
	return 0;
}

static int parse_part(yajl_val root, proto_task *t, proto_sealed_part p, err **e)
{
	const char *s;
	if (str_field(root, part_names[p], &s, e) < 0)
		return -1;
	if (!s)
		return 0;
	for (int i = 0; i < 2 && part_clear[p][i]; i++)
		if (proto_json_get(root, part_clear[p][i]))
			return err_set(e, 0, "fields \"%s\" and \"%s\" are mutually exclusive",
			               part_clear[p][i], part_names[p]);
	proto_sealed *sl = sealed_of(t);
	size_t max = PROTO_SEALED_PART_MAX(part_plain_max[p]);
	if (b64_field(part_names[p], s, 0, max, &sl->age[p], &sl->age_len[p], e) < 0)
		return -1;
	if (sl->age_len[p] == 0)
		return err_set(e, 0, "field \"%s\" is empty: an age file is never empty",
		               part_names[p]);
	return 0;
}

/* "age1" and 58 characters of the bech32 alphabet; the checksum is attest's to check. */
static bool recipient_syntax(const char *s)
{
	return strlen(s) == 62 && !strncmp(s, "age1", 4) &&
	       strspn(s + 4, "qpzry9x8gf2tvdw0s3jn54khce6mua7l") == 58;
}

static int parse_sealing(yajl_val root, proto_task *t, err **e)
{
	for (int p = 0; p < PROTO_SEALED__COUNT; p++)
		if (parse_part(root, t, (proto_sealed_part)p, e) < 0)
			return -1;
	const char *mode, *reply;
	if (str_field(root, "exec_mode", &mode, e) < 0 ||
	    str_field(root, "reply_to", &reply, e) < 0)
		return -1;
	if (mode && strcmp(mode, "sealed") && strcmp(mode, "source"))
		return err_set(e, 0, "field \"exec_mode\" must be one of sealed, source");
	if (reply && !recipient_syntax(reply))
		return err_set(e, 0,
		               "field \"reply_to\" must be an age X25519 recipient (\"age1\" "
		               "and 58 lower-case bech32 characters)");
	/* A chain's code is its steps. */
	bool code_sealed = proto_task_part_sealed(t, PROTO_SEALED_CODE) ||
	                   proto_task_part_sealed(t, PROTO_SEALED_STEPS);
	if (mode && !strcmp(mode, "sealed") && !code_sealed)
		return err_set(e, 0,
		               "exec_mode sealed needs the code as \"code_age\" (a chain's steps "
		               "as \"steps_age\")");
	if (mode && !strcmp(mode, "source") && code_sealed)
		return err_set(e, 0,
		               "exec_mode source needs the code in the clear (\"code\", a chain's "
		               "\"steps\"), not \"code_age\" or \"steps_age\"");
	if (t->sealed && !reply) {
		for (int p = 0; p < PROTO_SEALED__COUNT; p++)
			if (t->sealed->age[p])
				return err_set(e, 0,
				               "field \"%s\" needs \"reply_to\": the result of a "
				               "sealed task is encrypted to its buyer",
				               part_names[p]);
	}
	if (!t->sealed && !reply && !mode)
		return 0;
	proto_sealed *sl = sealed_of(t);
	sl->exec_mode = code_sealed ? PROTO_EXEC_SEALED : PROTO_EXEC_SOURCE;
	sl->reply_to = reply ? xstrdup(reply) : NULL;
	return 0;
}

static int parse_passport(yajl_val root, proto_auth *a, err **e)
{
	yajl_val v = proto_json_get(root, "passport");
	if (!v)
		return 0;
	if (!YAJL_IS_OBJECT(v))
		return err_set(e, 0, "field \"passport\" must be an object (a passport envelope)");
	if (!a->has_signer)
		return err_set(e, 0,
		               "field \"passport\" needs \"signer\": a passport is presented "
		               "by the task's signer");
	_cleanup_json_gen_ proto_gen *g = proto_json_gen_new();
	proto_json_gen_value(g, v);
	buf b = BUF_INIT;
	proto_json_gen_take_valid(g, &b);
	if (b.len > PROTO_PASSPORT_MAX) {
		size_t n = b.len;
		buf_deinit(&b);
		return err_set(e, 0,
		               "field \"passport\" is %zu bytes as JSON, above the %u-byte "
		               "limit",
		               n, PROTO_PASSPORT_MAX);
	}
	a->passport = buf_steal(&b, NULL);
	return 0;
}

static int parse_auth(yajl_val root, proto_task *t, err **e)
{
	const char *signer, *level;
	if (str_field(root, "signer", &signer, e) < 0 ||
	    str_field(root, "trust_level", &level, e) < 0)
		return -1;
	yajl_val req = proto_json_get(root, "trust_requirements");
	if (!signer && !level && !req && !proto_json_get(root, "passport"))
		return 0;
	proto_auth *a = auth_of(t);
	if (signer) {
		_cleanup_free_ uint8_t *k = NULL;
		size_t n = 0;
		if (b64_field("signer", signer, PROTO_ED25519_KEY_LEN, PROTO_ED25519_KEY_LEN, &k,
		              &n, e) < 0)
			return err_set(e, 0,
			               "field \"signer\" must be the base64 of a %d-byte "
			               "Ed25519 public key",
			               PROTO_ED25519_KEY_LEN);
		memcpy(a->signer, k, n);
		a->has_signer = true;
	}
	if (parse_passport(root, a, e) < 0)
		return -1;
	return proto_trust_req_parse(level, req, &a->req, e);
}

bool proto_task_ext_field(const char *key)
{
	return field_known(key, ext_fields, ARRAY_SIZE(ext_fields));
}

int proto_task_ext_parse(yajl_val root, proto_task *t, err **e)
{
	return parse_sealing(root, t, e) < 0 || parse_auth(root, t, e) < 0 ? -1 : 0;
}

/* ---- the signed-task envelope ---- */

static int parse_sig(yajl_val sigs, proto_task_sig *s, err **e)
{
	if (!YAJL_IS_ARRAY(sigs) || sigs->u.array.len != 1 ||
	    !YAJL_IS_OBJECT(sigs->u.array.values[0]))
		return err_set(e, 0,
		               "signed task: \"signatures\" must hold exactly one signature "
		               "object");
	yajl_val o = sigs->u.array.values[0];
	if (unknown_key(o, sig_fields, ARRAY_SIZE(sig_fields), "signatures[0].", e) < 0)
		return err_prefix(e, "signed task");
	const char *kid = proto_json_get_str(o, "keyid"), *sig = proto_json_get_str(o, "sig");
	if (!key_id_valid(kid))
		return err_set(e, 0,
		               "signed task: signatures[0].keyid must be the signer's key id "
		               "(sha256: and 64 lower-case hex digits)");
	_cleanup_free_ uint8_t *raw = NULL;
	size_t n = 0;
	if (!sig ||
	    b64_field("signatures[0].sig", sig, PROTO_SIG_LEN, PROTO_SIG_LEN, &raw, &n, e) < 0)
		return err_set(e, 0,
		               "signed task: signatures[0].sig must be the base64 of a "
		               "%d-byte Ed25519 signature",
		               PROTO_SIG_LEN);
	memcpy(s->sig, raw, PROTO_SIG_LEN);
	memcpy(s->keyid, kid, PROTO_KEY_ID_LEN + 1);
	return 0;
}

/* The envelope's signature and payload into *sig (payload decoded). */
static int parse_envelope(yajl_val root, proto_task_sig *sig, err **e)
{
	if (unknown_key(root, envelope_fields, ARRAY_SIZE(envelope_fields), "", e) < 0)
		return err_prefix(e, "signed task");
	const char *type = proto_json_get_str(root, "payloadType");
	const char *payload = proto_json_get_str(root, "payload");
	if (!type || strcmp(type, PROTO_TASK_PAYLOAD_TYPE))
		return err_set(e, 0, "signed task: \"payloadType\" must be \"%s\"",
		               PROTO_TASK_PAYLOAD_TYPE);
	if (!payload ||
	    proto_b64_decode(payload, strlen(payload), &sig->payload, &sig->payload_len) < 0)
		return err_set(e, 0,
		               "signed task: \"payload\" must be the base64 of the task "
		               "document");
	return parse_sig(proto_json_get(root, "signatures"), sig, e);
}

static int parse_signed(yajl_val root, proto_task *t, proto_task_head *head, err **e)
{
	proto_task_sig *sig = xzalloc(sizeof(*sig));
	if (parse_envelope(root, sig, e) < 0) {
		free(sig->payload);
		free(sig);
		return -1;
	}
	int rc = proto_task_parse((const char *)sig->payload, sig->payload_len, t, head, e);
	if (rc == 0 && !(t->auth && t->auth->has_signer)) {
		proto_task_deinit(t);
		rc = err_set(e, 0,
		             "signed task: the task must name its signer (field \"signer\": "
		             "the base64 of its Ed25519 public key)");
	}
	if (rc < 0) {
		free(sig->payload);
		free(sig);
		return err_prefix(e, "signed task");
	}
	t->auth->sig = sig;
	return 0;
}

int proto_task_parse_entry(const char *json, size_t len, proto_task *t, proto_task_head *head,
                           err **e)
{
	proto_task_head none = {0};
	head = head ? head : &none;
	proto_task_init(t);
	*head = (proto_task_head){0};
	if (len > PROTO_TASK_MAX_BYTES)
		return err_set(e, 0, "task is %zu bytes, above the %u-byte limit", len,
		               PROTO_TASK_MAX_BYTES);
	_cleanup_yajl_val_ yajl_val root = NULL;
	int rc = proto_json_parse_ex(json, len, &root, true, e);
	if (rc == 0 && proto_json_get(root, "payloadType")) {
		rc = parse_signed(root, t, head, e);
		proto_task_head_deinit(&none);
		return rc;
	}
	rc = proto_task_parse_tree(root, rc, t, head, e);
	if (rc == 0 && t->auth && t->auth->has_signer) {
		proto_task_deinit(t);
		rc = err_set(e, 0,
		             "field \"signer\" needs a signed task: send the task as the "
		             "payload of a DSSE envelope (payloadType \"%s\")",
		             PROTO_TASK_PAYLOAD_TYPE);
	}
	proto_task_head_deinit(&none);
	return rc;
}

/* ---- serialisation ---- */

static void gen_b64(proto_gen *g, const char *key, const uint8_t *p, size_t n)
{
	_cleanup_free_ char *s = proto_b64_encode(p, n);
	proto_json_gen_kstr(g, key, s);
}

static void gen_req(proto_gen *g, const proto_trust_req *r)
{
	if (r->level == PROTO_TRUST_NONE)
		return;
	proto_json_gen_kstr(g, "trust_level", proto_trust_level_name(r->level));
	if (!r->min_assurance && !r->n_providers && !r->n_claims)
		return;
	proto_json_gen_str(g, "trust_requirements");
	proto_json_gen_open(g, true);
	if (r->min_assurance)
		proto_json_gen_kstr(g, "min_assurance", proto_assurance_name(r->min_assurance));
	if (r->n_providers)
		proto_json_gen_kstrs(g, "accepted_providers", (const char *const *)r->providers);
	if (r->n_claims)
		proto_json_gen_kstrs(g, "required_claims", (const char *const *)r->claims);
	proto_json_gen_close(g, true);
}

void proto_task_ext_gen(proto_gen *g, const proto_task *t)
{
	const proto_sealed *sl = t->sealed;
	if (sl) {
		proto_json_gen_kstr(g, "exec_mode",
		                    sl->exec_mode == PROTO_EXEC_SEALED ? "sealed" : "source");
		if (sl->reply_to)
			proto_json_gen_kstr(g, "reply_to", sl->reply_to);
		for (int p = 0; p < PROTO_SEALED__COUNT; p++)
			if (sl->age[p])
				gen_b64(g, part_names[p], sl->age[p], sl->age_len[p]);
	}
	const proto_auth *a = t->auth;
	if (!a)
		return;
	if (a->has_signer)
		gen_b64(g, "signer", a->signer, PROTO_ED25519_KEY_LEN);
	if (a->passport) {
		proto_json_gen_str(g, "passport");
		if (proto_json_gen_json(g, a->passport, strlen(a->passport), NULL) < 0)
			proto_json_gen_null(g);
	}
	gen_req(g, &a->req);
}

/* ---- lifetime ---- */

static void wipe_free(void *p, size_t n)
{
	if (p)
		OPENSSL_cleanse(p, n);
	free(p);
}

/* A sealed task's plaintext is wiped before proto_task_deinit() frees it. */
static void wipe_plaintext(proto_task *t)
{
	const proto_sealed *sl = t->sealed;
	if (sl->age[PROTO_SEALED_CODE] && t->code)
		OPENSSL_cleanse(t->code, t->code_len);
	if (sl->age[PROTO_SEALED_STDIN] && t->stdin_data)
		OPENSSL_cleanse(t->stdin_data, t->stdin_len);
	if (sl->age[PROTO_SEALED_ARGS]) {
		if (t->args_json)
			OPENSSL_cleanse(t->args_json, strlen(t->args_json));
		for (size_t i = 0; i < t->argc; i++)
			OPENSSL_cleanse(t->argv[i], strlen(t->argv[i]));
	}
	for (size_t i = 0; sl->age[PROTO_SEALED_FILES] && i < t->n_files; i++) {
		if (t->files[i].path) /* NULL in a file that failed to parse */
			OPENSSL_cleanse(t->files[i].path, strlen(t->files[i].path));
		if (t->files[i].data)
			OPENSSL_cleanse(t->files[i].data, t->files[i].len);
	}
	for (size_t i = 0; sl->age[PROTO_SEALED_STEPS] && i < t->n_steps; i++) {
		const proto_step *st = &t->steps[i];
		const char *s[] = {st->model, st->system_prompt, st->code};
		for (size_t k = 0; k < ARRAY_SIZE(s); k++)
			if (s[k])
				OPENSSL_cleanse((void *)s[k], strlen(s[k]));
	}
	if (sl->age[PROTO_SEALED_INPUT] && t->input && t->input->text)
		OPENSSL_cleanse(t->input->text, t->input->len);
}

void proto_task_ext_deinit(proto_task *t)
{
	if (t->sealed) {
		wipe_plaintext(t);
		for (int p = 0; p < PROTO_SEALED__COUNT; p++)
			free(t->sealed->age[p]);
		free(t->sealed->reply_to);
		if (t->sealed->private_error)
			wipe_free(t->sealed->private_error, strlen(t->sealed->private_error));
		free(t->sealed);
		t->sealed = NULL;
	}
	if (t->auth) {
		free(t->auth->passport);
		proto_trust_req_deinit(&t->auth->req);
		if (t->auth->sig)
			wipe_free(t->auth->sig->payload, t->auth->sig->payload_len);
		free(t->auth->sig);
		free(t->auth);
		t->auth = NULL;
	}
}

/* ---- revocation records ---- */

void proto_revocation_to_json(const char *reason, int64_t revoked_at_ms, buf *out)
{
	_cleanup_json_gen_ proto_gen *g = proto_json_gen_new();
	proto_json_gen_open(g, true);
	proto_json_gen_str(g, "reason");
	proto_json_gen_text(g, reason ? reason : "", reason ? strlen(reason) : 0);
	proto_json_gen_kint(g, "revoked_at_ms", revoked_at_ms);
	proto_json_gen_close(g, true);
	proto_json_gen_take_valid(g, out);
}

int proto_revocation_parse(const char *json, size_t len, char **reason, int64_t *revoked_at_ms,
                           err **e)
{
	static const char *const fields[] = {"reason", "revoked_at_ms"};
	_cleanup_yajl_val_ yajl_val root = NULL;
	if (proto_json_parse(json, len, &root, e) < 0)
		return err_prefix(e, "revocation record");
	if (!YAJL_IS_OBJECT(root))
		return err_set(e, 0, "revocation record: not a JSON object");
	if (unknown_key(root, fields, ARRAY_SIZE(fields), "", e) < 0)
		return err_prefix(e, "revocation record");
	const char *r = proto_json_get_str(root, "reason");
	int64_t at = 0;
	if (!r || strlen(r) > PROTO_REVOCATION_REASON_MAX)
		return err_set(e, 0,
		               "revocation record: \"reason\" must be a string of at most %d "
		               "bytes",
		               PROTO_REVOCATION_REASON_MAX);
	if (proto_json_get_int(root, "revoked_at_ms", &at) < 0 || at < 0)
		return err_set(e, 0,
		               "revocation record: \"revoked_at_ms\" must be a non-negative "
		               "integer");
	*reason = xstrdup(r);
	*revoked_at_ms = at;
	return 0;
}

char *proto_revocation_field(bool key, const char *id)
{
	return xasprintf("%s%s", key ? PROTO_REVOKED_KEY : PROTO_REVOKED_PASSPORT, id);
}
