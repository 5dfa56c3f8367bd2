/* The IAM gate's pure parts (core.h): the API keys file (one [key.<id>] section per key, the
 * key stored only as its SHA-256), constant-time lookup, per-key policies and the token
 * bucket. The format is documented in deploy/aisp-gateway-keys.conf.example. */
#include "gateway/core.h"

#include <errno.h>
#include <ini.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/util.h"
#include "common/xalloc.h"

#define NAME_CHARS "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-"

static void list_free(gw_list *l)
{
	for (size_t i = 0; l->v && l->v[i]; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->any = false;
}

/* "a, b c" -> {a, b, c}; "*" alone means any. */
static void list_set(gw_list *l, const char *s)
{
	list_free(l);
	size_t n = 0;
	l->v = xcalloc(1, sizeof(*l->v));
	_cleanup_free_ char *copy = xstrdup(s);
	char *save = NULL;
	for (char *t = strtok_r(copy, ", \t", &save); t; t = strtok_r(NULL, ", \t", &save)) {
		if (!strcmp(t, "*")) {
			l->any = true;
			continue;
		}
		l->v = xreallocarray(l->v, n + 2, sizeof(*l->v));
		l->v[n++] = xstrdup(t);
		l->v[n] = NULL;
	}
}

static bool list_has(const gw_list *l, const char *name)
{
	if (l->any)
		return true;
	for (size_t i = 0; l->v && l->v[i]; i++)
		if (!strcmp(l->v[i], name))
			return true;
	return false;
}

static char *list_text(const gw_list *l)
{
	buf b = BUF_INIT;
	for (size_t i = 0; l->v && l->v[i]; i++)
		buf_appendf(&b, "%s%s", i ? ", " : "", l->v[i]);
	if (!b.len)
		buf_append_str(&b, "none");
	char *s = xstrdup(buf_str(&b));
	buf_deinit(&b);
	return s;
}

#define KEY_LISTS(k)                                                                               \
	gw_list *lists[] = {&(k)->allow_tools,     &(k)->block_tools,    &(k)->allow_languages,    \
	                    &(k)->block_languages, &(k)->allow_runtimes, &(k)->block_runtimes,     \
	                    &(k)->allow_images,    &(k)->block_images,   &(k)->allow_skills,       \
	                    &(k)->block_skills}
static const char *const list_names[] = {
    "allow_tools",    "block_tools",  "allow_languages", "block_languages", "allow_runtimes",
    "block_runtimes", "allow_images", "block_images",    "allow_skills",    "block_skills"};

static void key_deinit(gw_key *k)
{
	KEY_LISTS(k);
	for (size_t i = 0; i < ARRAY_SIZE(lists); i++)
		list_free(lists[i]);
	free(k->id);
	free(k->trust_level);
}

void gw_keys_deinit(gw_keys *k)
{
	for (size_t i = 0; i < k->n; i++)
		key_deinit(&k->keys[i]);
	free(k->keys);
	k->keys = NULL;
	k->n = 0;
}

bool gw_key_id_valid(const char *id)
{
	size_t n = strlen(id);
	return n > 0 && n <= 64 && strspn(id, NAME_CHARS) == n;
}

struct keys_ctx {
	gw_keys *k;
	char *error;
};

#define kfail(p, ...) gw_ini_fail(&(p)->error, __VA_ARGS__)

static gw_key *key_get(gw_keys *k, const char *id)
{
	for (size_t i = 0; i < k->n; i++)
		if (!strcmp(k->keys[i].id, id))
			return &k->keys[i];
	k->keys = xreallocarray(k->keys, k->n + 1, sizeof(*k->keys));
	gw_key *n = &k->keys[k->n++];
	memset(n, 0, sizeof(*n));
	n->id = xstrdup(id);
	KEY_LISTS(n);
	for (size_t i = 0; i < ARRAY_SIZE(lists); i++)
		list_set(lists[i], i % 2 == 0 ? "*" : "");
	return n;
}

static int parse_hash(const char *v, uint8_t out[32])
{
	if (strncmp(v, "sha256:", 7) || strlen(v) != 7 + 64)
		return -1;
	for (size_t i = 0; i < 32; i++) {
		char h[3] = {v[7 + 2 * i], v[8 + 2 * i], 0};
		if (!strchr("0123456789abcdef", h[0]) || !strchr("0123456789abcdef", h[1]))
			return -1;
		out[i] = (uint8_t)strtoul(h, NULL, 16);
	}
	return 0;
}

/* A decimal with up to three places ("2.5") into thousandths; 0 allowed when zero_ok. */
static int parse_milli(const char *v, bool zero_ok, int64_t max_whole, int64_t *out)
{
	const char *dot = strchr(v, '.');
	_cleanup_free_ char *w = xstrndup(v, dot ? (size_t)(dot - v) : strlen(v));
	int64_t whole, frac = 0;
	if (!w[0] || strspn(w, "0123456789") != strlen(w) || parse_i64(w, 0, max_whole, &whole) < 0)
		return -1;
	if (dot) {
		size_t fl = strlen(dot + 1);
		if (fl == 0 || fl > 3 || strspn(dot + 1, "0123456789") != fl)
			return -1;
		char f[4] = "000";
		memcpy(f, dot + 1, fl);
		frac = strtoll(f, NULL, 10);
	}
	*out = whole * 1000 + frac;
	return *out > 0 || zero_ok ? 0 : -1;
}

/* max_<limit> = N in the wire unit of the task's "limits" (proto_limit_fields). */
static int key_limit(struct keys_ctx *p, gw_key *k, const char *key, const char *v)
{
	for (size_t i = 0; i < PROTO_LIMIT_COUNT; i++) {
		const proto_limit_field *f = &proto_limit_fields[i];
		if (strcmp(key + 4, f->wire))
			continue;
		int64_t n;
		if (f->unit == 0) {
			if (parse_milli(v, false, 1000000000, &n) < 0)
				return kfail(
				    p,
				    "[key.%s] %s = \"%s\": expected a positive number with "
				    "at most 3 decimals",
				    k->id, key, v);
		} else if (strspn(v, "0123456789") != strlen(v) ||
		           parse_i64(v, 1, INT64_MAX / f->unit, &n) < 0) {
			return kfail(p, "[key.%s] %s = \"%s\": expected a positive integer", k->id,
			             key, v);
		} else {
			n *= f->unit;
		}
		*proto_limit_at(&k->max, f) = n;
		return 1;
	}
	return kfail(p, "[key.%s] unknown key \"%s\"", k->id, key);
}

static int key_field(struct keys_ctx *p, gw_key *k, const char *key, const char *v)
{
	KEY_LISTS(k);
	for (size_t i = 0; i < ARRAY_SIZE(lists); i++)
		if (!strcmp(key, list_names[i]))
			return list_set(lists[i], v), 1;
	if (!strcmp(key, "hash")) {
		if (parse_hash(v, k->hash) < 0)
			return kfail(p, "[key.%s] hash: expected sha256:<64 lower-case hex>",
			             k->id);
	} else if (!strcmp(key, "rate_per_s")) {
		if (parse_milli(v, true, 1000000, &k->rate_milli) < 0)
			return kfail(p,
			             "[key.%s] rate_per_s = \"%s\": expected a number >= 0 with "
			             "at most 3 decimals",
			             k->id, v);
	} else if (!strcmp(key, "burst")) {
		if (strspn(v, "0123456789") != strlen(v) || parse_i64(v, 1, 1000000, &k->burst) < 0)
			return kfail(p, "[key.%s] burst = \"%s\": expected an integer 1..1000000",
			             k->id, v);
	} else if (!strcmp(key, "trust_level")) {
		if (strcmp(v, "L0") && strcmp(v, "L1") && strcmp(v, "L2"))
			return kfail(p, "[key.%s] trust_level = \"%s\": expected L0, L1 or L2",
			             k->id, v);
		free(k->trust_level);
		k->trust_level = xstrdup(v);
	} else if (!strcmp(key, "requires_payment")) {
		if (strcmp(v, "true") && strcmp(v, "false"))
			return kfail(p,
			             "[key.%s] requires_payment = \"%s\": expected true or false",
			             k->id, v);
		k->requires_payment = !strcmp(v, "true");
	} else if (!strncmp(key, "max_", 4)) {
		return key_limit(p, k, key, v);
	} else {
		return kfail(p, "[key.%s] unknown key \"%s\"", k->id, key);
	}
	return 1;
}

static int keys_handler(void *user, const char *section, const char *key, const char *v)
{
	struct keys_ctx *p = user;
	if (p->error)
		return 0;
	if (strncmp(section, "key.", 4))
		return kfail(p, "unknown section [%s] (expected [key.<id>])", section);
	if (!gw_key_id_valid(section + 4))
		return kfail(p, "[%s]: key id must match [A-Za-z0-9._-]{1,64}", section);
	return key_field(p, key_get(p->k, section + 4), key, v);
}

/* Whole-file checks: every key has a hash, no two keys share one. */
static int keys_validate(const gw_keys *k, const char *name, err **e)
{
	static const uint8_t zero[32];
	for (size_t i = 0; i < k->n; i++) {
		if (!memcmp(k->keys[i].hash, zero, 32))
			return err_set(e, 0, "%s: [key.%s] has no hash", name, k->keys[i].id);
		if (k->keys[i].rate_milli && !k->keys[i].burst)
			return err_set(e, 0, "%s: [key.%s] rate_per_s needs burst", name,
			               k->keys[i].id);
		for (size_t j = 0; j < i; j++)
			if (!memcmp(k->keys[i].hash, k->keys[j].hash, 32))
				return err_set(e, 0, "%s: [key.%s] has the same hash as [key.%s]",
				               name, k->keys[i].id, k->keys[j].id);
	}
	return 0;
}

static int keys_finish(gw_keys *k, struct keys_ctx *p, int rc, const char *name, err **e)
{
	if (rc == -1)
		return err_set(e, errno, "%s: cannot open", name);
	if (rc > 0 || p->error || rc == -2) {
		int r = err_set(e, 0, "%s:%d: %s", name, rc,
		                p->error ? p->error
		                         : "syntax error (expected [key.<id>] or key = value)");
		free(p->error);
		gw_keys_deinit(k);
		return r;
	}
	if (keys_validate(k, name, e) < 0) {
		gw_keys_deinit(k);
		return -1;
	}
	return 0;
}

int gw_keys_load(gw_keys *k, const char *path, err **e)
{
	struct keys_ctx p = {.k = k};
	return keys_finish(k, &p, ini_parse(path, keys_handler, &p), path, e);
}

int gw_keys_load_string(gw_keys *k, const char *name, const char *text, err **e)
{
	struct keys_ctx p = {.k = k};
	return keys_finish(k, &p, ini_parse_string(text, keys_handler, &p), name, e);
}

const gw_key *gw_keys_find(const gw_keys *k, const char *presented, size_t len)
{
	uint8_t h[32];
	unsigned int hl = 0;
	EVP_Digest(presented, len, h, &hl, EVP_sha256(), NULL);
	const gw_key *found = NULL;
	for (size_t i = 0; i < k->n; i++) {
		/* no early exit: the time does not depend on which key (if any) matched */
		bool eq = CRYPTO_memcmp(h, k->keys[i].hash, 32) == 0;
		if (eq && !found)
			found = &k->keys[i];
	}
	return found;
}

char *gw_key_generate(void)
{
	uint8_t r[32];
	if (RAND_bytes(r, sizeof(r)) != 1)
		abort();
	char b64[64];
	EVP_EncodeBlock((unsigned char *)b64, r, sizeof(r));
	for (char *p = b64; *p; p++)
		*p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
	char *eq = strchr(b64, '=');
	if (eq)
		*eq = '\0';
	return xasprintf(GW_API_KEY_PREFIX "%s", b64);
}

void gw_key_hash_text(const char *key, char out[72])
{
	uint8_t h[32];
	unsigned int hl = 0;
	EVP_Digest(key, strlen(key), h, &hl, EVP_sha256(), NULL);
	memcpy(out, "sha256:", 7);
	hex_encode(h, 32, out + 7);
}

char *gw_key_section(const char *id, const char *key, const char *const *policy_lines)
{
	char hash[72];
	gw_key_hash_text(key, hash);
	buf b = BUF_INIT;
	buf_appendf(&b, "\n[key.%s]\nhash = %s\n", id, hash);
	for (size_t i = 0; policy_lines && policy_lines[i]; i++)
		buf_appendf(&b, "%s\n", policy_lines[i]);
	return buf_steal(&b, NULL);
}

/* ---- decisions ---- */

static const char *const verdict_names[GW_VERDICT__COUNT] = {
    "allow",         "no_key",           "bad_key",         "rate_limited",
    "tool_blocked",  "language_blocked", "runtime_blocked", "image_blocked",
    "skill_blocked", "limit_exceeded",   "payment_required"};

const char *gw_verdict_name(gw_verdict v)
{
	return v < GW_VERDICT__COUNT ? verdict_names[v] : "unknown";
}

int gw_verdict_status(gw_verdict v)
{
	switch (v) {
	case GW_ALLOW:
		return 200;
	case GW_DENY_NO_KEY:
	case GW_DENY_BAD_KEY:
		return 401;
	case GW_DENY_RATE:
		return 429;
	case GW_DENY_PAYMENT:
		return 402;
	default:
		return 403;
	}
}

void gw_decision_deinit(gw_decision *d)
{
	free(d->detail);
	d->detail = NULL;
}

static void deny(gw_decision *d, gw_verdict v, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void deny(gw_decision *d, gw_verdict v, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	free(d->detail);
	d->detail = xvasprintf(fmt, ap);
	d->verdict = v;
	va_end(ap);
}

/* One kind of name (what = "tool", "language", ...) against an allow and a block list.
 * Returns true when allowed; otherwise d says why. */
static bool name_allowed(const gw_key *k, const char *what, const char *name, const gw_list *allow,
                         const gw_list *block, gw_verdict v, gw_decision *d)
{
	if (list_has(block, name)) {
		deny(d, v, "%s \"%s\" is blocked for key %s", what, name, k->id);
		return false;
	}
	if (!list_has(allow, name)) {
		_cleanup_free_ char *l = list_text(allow);
		deny(d, v, "%s \"%s\" is not allowed for key %s (allowed: %s)", what, name, k->id,
		     l);
		return false;
	}
	return true;
}

/* A runtime or image the task leaves to the node's default is allowed only when the key
 * allows any: the gateway cannot know which one a node would pick. */
static bool default_allowed(const gw_key *k, const char *what, const gw_list *allow, gw_verdict v,
                            gw_decision *d)
{
	if (allow->any)
		return true;
	_cleanup_free_ char *l = list_text(allow);
	deny(d, v, "key %s may use the %ss %s only: name one in \"%s\"", k->id, what, l, what);
	return false;
}

/* ---- images, by name and by digest ---- */

static bool is_digest(const char *s)
{
	return !strncmp(s, "sha256:", 7);
}

static void images_push(gw_images *im, const char *name, size_t nl, const char *digest, size_t dl)
{
	for (size_t i = 0; i < im->n; i++)
		if (strlen(im->v[i].name) == nl && !strncmp(im->v[i].name, name, nl) &&
		    strlen(im->v[i].digest) == dl && !strncmp(im->v[i].digest, digest, dl))
			return;
	im->v = xreallocarray(im->v, im->n + 1, sizeof(*im->v));
	im->v[im->n].name = xstrndup(name, nl);
	im->v[im->n++].digest = xstrndup(digest, dl);
}

static size_t csv_count(const char *csv)
{
	size_t n = csv && *csv ? 1 : 0;
	for (const char *p = csv; p && *p; p++)
		n += *p == ',';
	return n;
}

void gw_images_add_node(gw_images *im, const char *image, const char *names_csv,
                        const char *digests_csv)
{
	if (!image || csv_count(names_csv) != csv_count(digests_csv))
		return;
	const char *n = names_csv, *d = digests_csv;
	for (size_t i = csv_count(names_csv); i > 0; i--) {
		size_t nl = strcspn(n, ","), dl = strcspn(d, ",");
		if ((nl == strlen(image) && !strncmp(n, image, nl)) ||
		    (dl == strlen(image) && !strncmp(d, image, dl)))
			images_push(im, n, nl, d, dl);
		n += nl + (n[nl] == ',');
		d += dl + (d[dl] == ',');
	}
}

void gw_images_deinit(gw_images *im)
{
	for (size_t i = 0; i < im->n; i++) {
		free(im->v[i].name);
		free(im->v[i].digest);
	}
	free(im->v);
	im->v = NULL;
	im->n = 0;
}

static bool images_restricted(const gw_key *k)
{
	return !k->allow_images.any || (k->block_images.v && k->block_images.v[0]);
}

bool gw_policy_needs_images(const gw_key *k, const proto_task *t)
{
	return t && t->image && images_restricted(k);
}

/* The other form of image in pair p ("default" for its digest, the digest for "default"). */
static const char *other_form(const gw_image_pair *p, const char *image)
{
	return strcmp(p->name, image) ? p->name : p->digest;
}

/* The image of a task under the key's image lists, by every form it has (core.h). */
static bool image_allowed(const gw_key *k, const char *image, const gw_images *im, gw_decision *d)
{
	const gw_list *allow = &k->allow_images, *block = &k->block_images;
	size_t n = im ? im->n : 0;
	if (!images_restricted(k))
		return true;
	if (list_has(block, image)) {
		deny(d, GW_DENY_IMAGE, "image \"%s\" is blocked for key %s", image, k->id);
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		const char *other = other_form(&im->v[i], image);
		if (list_has(block, other)) {
			deny(d, GW_DENY_IMAGE,
			     "image \"%s\" is image \"%s\" on a live node (registry images / "
			     "image_digests), which is blocked for key %s",
			     image, other, k->id);
			return false;
		}
	}
	if (is_digest(image) && n == 0) {
		deny(d, GW_DENY_IMAGE,
		     "image \"%s\" is a digest no live node advertises (registry image_digests%s): "
		     "key %s's image lists cannot be checked against it; name the image, or the "
		     "digest of one a node has",
		     image, im ? "" : ", which could not be read", k->id);
		return false;
	}
	if (list_has(allow, image))
		return true;
	for (size_t i = 0; i < n; i++)
		if (!list_has(allow, other_form(&im->v[i], image))) {
			_cleanup_free_ char *l = list_text(allow);
			deny(d, GW_DENY_IMAGE,
			     "image \"%s\" is image \"%s\" on a live node, which is not allowed "
			     "for key %s (allowed: %s)",
			     image, other_form(&im->v[i], image), k->id, l);
			return false;
		}
	if (n == 0)
		return name_allowed(k, "image", image, allow, block, GW_DENY_IMAGE, d);
	return true;
}

static bool limits_allowed(const gw_key *k, proto_limits *l, gw_decision *d)
{
	for (size_t i = 0; i < PROTO_LIMIT_COUNT; i++) {
		const proto_limit_field *f = &proto_limit_fields[i];
		int64_t max = proto_limit_get(&k->max, f);
		int64_t *v = proto_limit_at(l, f);
		if (!max)
			continue;
		if (!*v) {
			*v = max; /* the key's maximum is also its default */
			continue;
		}
		if (*v > max) {
			int64_t unit = f->unit ? f->unit : 1;
			_cleanup_free_ char *vs = f->unit
			                              ? xasprintf("%lld", (long long)(*v / unit))
			                              : proto_milli_str(*v);
			_cleanup_free_ char *ms = f->unit
			                              ? xasprintf("%lld", (long long)(max / unit))
			                              : proto_milli_str(max);
			deny(d, GW_DENY_LIMIT, "limits.%s %s is above the maximum %s of key %s",
			     f->wire, vs, ms, k->id);
			return false;
		}
	}
	return true;
}

/* The languages a task runs: a plain task's lang, each script step of a chain (an llm-only
 * chain runs none). Sealed steps hide theirs, so a key that restricts languages refuses them. */
static bool languages_allowed(const gw_key *k, const proto_task *t, gw_decision *d)
{
	const gw_list *allow = &k->allow_languages, *block = &k->block_languages;
	if (!proto_task_is_chain(t))
		return name_allowed(k, "language", proto_lang_name(t->lang), allow, block,
		                    GW_DENY_LANGUAGE, d);
	if (proto_task_part_sealed(t, PROTO_SEALED_STEPS)) {
		if (allow->any && !(block->v && block->v[0]))
			return true;
		deny(d, GW_DENY_LANGUAGE,
		     "the chain's steps are sealed (steps_age), so their languages cannot be "
		     "checked "
		     "against the language policy of key %s",
		     k->id);
		return false;
	}
	for (size_t i = 0; i < t->n_steps; i++)
		if (t->steps[i].type == PROTO_STEP_SCRIPT &&
		    !name_allowed(k, "language", proto_lang_name(t->steps[i].lang), allow, block,
		                  GW_DENY_LANGUAGE, d))
			return false;
	return true;
}

void gw_policy_check(const gw_key *k, const char *tool, const char *skill, proto_task *t,
                     const gw_images *im, gw_decision *d)
{
	d->verdict = GW_ALLOW;
	if (!name_allowed(k, "tool", tool, &k->allow_tools, &k->block_tools, GW_DENY_TOOL, d))
		return;
	if (skill &&
	    !name_allowed(k, "skill", skill, &k->allow_skills, &k->block_skills, GW_DENY_SKILL, d))
		return;
	if (!t)
		return;
	if (!languages_allowed(k, t, d))
		return;
	if (t->runtime ? !name_allowed(k, "runtime", t->runtime, &k->allow_runtimes,
	                               &k->block_runtimes, GW_DENY_RUNTIME, d)
	               : !default_allowed(k, "runtime", &k->allow_runtimes, GW_DENY_RUNTIME, d))
		return;
	if (t->image ? !image_allowed(k, t->image, im, d)
	             : !default_allowed(k, "image", &k->allow_images, GW_DENY_IMAGE, d))
		return;
	limits_allowed(k, &t->limits, d);
}

const gw_list *gw_policy_list(const gw_key *k, gw_kind kind, bool blocked)
{
	const gw_list *l[][2] = {{&k->allow_tools, &k->block_tools},
	                         {&k->allow_languages, &k->block_languages},
	                         {&k->allow_runtimes, &k->block_runtimes},
	                         {&k->allow_images, &k->block_images},
	                         {&k->allow_skills, &k->block_skills}};
	return l[kind][blocked];
}

bool gw_policy_allows(const gw_key *k, gw_kind kind, const char *name)
{
	return list_has(gw_policy_list(k, kind, false), name) &&
	       !list_has(gw_policy_list(k, kind, true), name);
}

bool gw_bucket_take(gw_bucket *b, int64_t rate_milli, int64_t burst, int64_t now_ms,
                    int64_t *retry_after_s)
{
	if (rate_milli <= 0)
		return true;
	/* Micro-tokens: rate_milli thousandths of a token per second is exactly rate_milli
	 * micro-tokens per millisecond, so refilling loses nothing to rounding. */
	const int64_t one = 1000000, cap = burst * one;
	if (!b->primed) {
		b->tokens_micro = cap;
		b->last_ms = now_ms;
		b->primed = true;
	}
	if (now_ms > b->last_ms) {
		int64_t dt = now_ms - b->last_ms;
		bool full = dt > (cap - b->tokens_micro) / rate_milli;
		b->tokens_micro = full ? cap : b->tokens_micro + dt * rate_milli;
		b->last_ms = now_ms;
	}
	if (b->tokens_micro >= one) {
		b->tokens_micro -= one;
		return true;
	}
	if (retry_after_s) {
		int64_t ms = (one - b->tokens_micro + rate_milli - 1) / rate_milli;
		*retry_after_s = (ms + 999) / 1000;
	}
	return false;
}
