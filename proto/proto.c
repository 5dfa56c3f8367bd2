/* The proto module's small pieces: wire names of enums, init/deinit of the types, id, path
 * and environment name checks, base64 and UTF-8 helpers, and resolving limits against the
 * node's defaults and maxima. */
#include "proto/proto.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "common/cleanup.h"
#include "common/xalloc.h"
#include "proto/internal.h"

static const char *const lang_names[PROTO_LANG__COUNT] = {"python", "javascript", "shell"};
static const char *const mode_names[] = {"script", "function"};
static const char *const status_names[PROTO_STATUS__COUNT] = {
    "ok",       "timeout",  "oom",       "output_limit", "error", "sandbox_error",
    "rejected", "internal", "cancelled", "revoked",
};

const char *proto_lang_name(proto_lang l)
{
	return (unsigned)l < PROTO_LANG__COUNT ? lang_names[l] : NULL;
}

const char *proto_mode_name(proto_mode m)
{
	return (unsigned)m < ARRAY_SIZE(mode_names) ? mode_names[m] : NULL;
}

const char *proto_status_name(proto_status s)
{
	return (unsigned)s < PROTO_STATUS__COUNT ? status_names[s] : NULL;
}

int proto_lang_parse(const char *s, proto_lang *out)
{
	for (int i = 0; i < PROTO_LANG__COUNT; i++) {
		if (s && strcmp(s, lang_names[i]) == 0) {
			*out = (proto_lang)i;
			return 0;
		}
	}
	return -1;
}

int proto_status_parse(const char *s, proto_status *out)
{
	for (int i = 0; i < PROTO_STATUS__COUNT; i++) {
		if (s && strcmp(s, status_names[i]) == 0) {
			*out = (proto_status)i;
			return 0;
		}
	}
	return -1;
}

/* ---- lifecycle ---- */

void proto_task_init(proto_task *t)
{
	memset(t, 0, sizeof(*t));
}

static void files_free(proto_file *f, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(f[i].path);
		free(f[i].data);
	}
	free(f);
}

void proto_env_list_free(proto_env *l, size_t n)
{
	for (size_t i = 0; l && i < n; i++) {
		free(l[i].name);
		free(l[i].value);
	}
	free(l);
}

void proto_task_deinit(proto_task *t)
{
	proto_task_ext_deinit(t); /* first: it wipes the plaintext of sealed parts */
	free(t->id);
	free(t->code);
	free(t->stdin_data);
	free(t->args_json);
	for (size_t i = 0; i < t->argc; i++)
		free(t->argv[i]);
	free(t->argv);
	proto_env_list_free(t->env, t->n_env);
	files_free(t->files, t->n_files);
	free(t->image);
	free(t->runtime);
	free(t->reply_stream);
	proto_steps_free(t->steps, t->n_steps);
	for (size_t i = 0; i < t->n_services; i++)
		free(t->services[i]);
	free(t->services);
	if (t->input)
		proto_value_deinit(t->input);
	free(t->input);
	proto_task_skill_deinit(t);
	proto_task_init(t);
}

void proto_output_init(proto_output *o)
{
	memset(o, 0, sizeof(*o));
	o->exit_code = -1;
	buf_init(&o->out);
	buf_init(&o->err);
}

void proto_output_deinit(proto_output *o)
{
	buf_deinit(&o->out);
	buf_deinit(&o->err);
	files_free(o->files, o->n_files);
	free(o->return_value);
	free(o->error);
	proto_chain_run_free(o->chain);
	proto_blobs_free(o->out_blobs, o->n_out_blobs);
	free(o->logs_json);
	proto_output_init(o);
}

void proto_result_init(proto_result *r)
{
	memset(r, 0, sizeof(*r));
	proto_output_init(&r->output);
}

void proto_result_deinit(proto_result *r)
{
	free(r->id);
	proto_output_deinit(&r->output);
	free(r->node_id);
	free(r->runtime);
	free(r->image_digest);
	free(r->execution_digest);
	free(r->attestation);
	free(r->sealed);
	proto_cost_free(r->cost);
	proto_proxy_audit_free(r->proxy);
	proto_result_init(r);
}

/* ---- names and paths ---- */

bool proto_id_valid(const char *id)
{
	size_t n = id ? strlen(id) : 0;
	if (n < 1 || n > PROTO_ID_MAX)
		return false;
	return strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

bool proto_reply_stream_valid(const char *name)
{
	size_t pl = strlen(PROTO_KEY_REPLY_PREFIX), n = name ? strlen(name) : 0;
	if (n <= pl || n > PROTO_NAME_MAX || strncmp(name, PROTO_KEY_REPLY_PREFIX, pl))
		return false;
	return strspn(name + pl,
	              "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789:._-") ==
	       n - pl;
}

int proto_path_valid(const char *path, err **e)
{
	size_t n = strlen(path);
	if (n == 0)
		return err_set(e, 0, "empty path");
	if (n > PROTO_FILE_PATH_MAX)
		return err_set(e, 0, "%zu bytes, above the %d-byte limit", n, PROTO_FILE_PATH_MAX);
	if (path[0] == '/')
		return err_set(e, 0, "absolute path");
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)path[i];
		if (c < 0x20 || c == 0x7f)
			return err_set(e, 0, "control character 0x%02x", c);
	}
	if (!proto_utf8_valid((const uint8_t *)path, n))
		return err_set(e, 0, "not valid UTF-8");
	const char *p = path;
	for (;;) {
		size_t len = strcspn(p, "/");
		if (len == 0)
			return err_set(e, 0, "empty component");
		if ((len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.'))
			return err_set(e, 0, "component \"%.*s\"", (int)len, p);
		if (!p[len])
			return 0;
		p += len + 1;
	}
}

bool proto_env_reserved(const char *name)
{
	static const char *const reserved[] = {
	    "PATH",
	    "HOME",
	    "LANG",
	    "LC_ALL",
	    "TZ",
	    "PYTHONHASHSEED",
	    "PYTHONDONTWRITEBYTECODE",
	    "PYTHONUNBUFFERED",
	    "NODE_OPTIONS",
	    "USER",
	    "LOGNAME",
	    "SHELL",
	    "PWD",
	    "HOSTNAME",
	    "TMPDIR",
	};
	if (strncmp(name, "AISP_", 5) == 0 || strncmp(name, "LD_", 3) == 0)
		return true;
	for (size_t i = 0; i < ARRAY_SIZE(reserved); i++)
		if (strcmp(name, reserved[i]) == 0)
			return true;
	return false;
}

/* ---- text helpers ---- */

size_t proto_utf8_seq(const uint8_t *p, size_t n)
{
	uint8_t c = p[0];
	if (c < 0x80)
		return 1;
	size_t len;
	uint32_t cp;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

bool proto_utf8_valid(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n;) {
		size_t l = proto_utf8_seq(p + i, n - i);
		if (!l)
			return false;
		i += l;
	}
	return true;
}

char *proto_quote(const char *s, size_t n)
{
	const uint8_t *p = (const uint8_t *)s;
	buf b = BUF_INIT;
	buf_append_str(&b, "\"");
	for (size_t i = 0; i < n;) {
		if (b.len >= 80) {
			buf_append_str(&b, "...");
			break;
		}
		size_t l = proto_utf8_seq(p + i, n - i);
		if (p[i] == '"' || p[i] == '\\')
			buf_appendf(&b, "\\%c", p[i]);
		else if (l == 1 && p[i] >= 0x20 && p[i] != 0x7f)
			buf_append(&b, p + i, 1);
		else if (l > 1)
			buf_append(&b, p + i, l);
		else
			buf_appendf(&b, "\\x%02x", p[i]);
		i += l ? l : 1;
	}
	buf_append_str(&b, "\"");
	return buf_steal(&b, NULL);
}

char *proto_b64_encode(const uint8_t *p, size_t n)
{
	char *out = xmalloc(4 * ((n + 2) / 3) + 1);
	/* EVP_EncodeBlock takes an int length: go in chunks of 3 * 2^20 bytes. */
	size_t o = 0;
	for (size_t i = 0; i < n;) {
		size_t chunk = n - i < 3u << 20 ? n - i : 3u << 20;
		o += (size_t)EVP_EncodeBlock((unsigned char *)out + o, p + i, (int)chunk);
		i += chunk;
	}
	out[o] = 0;
	return out;
}

size_t proto_b64_decoded_max(size_t n)
{
	return n / 4 * 3 + 3;
}

static bool b64_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '+' || c == '/';
}

static int b64_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	return c == '+' ? 62 : 63;
}

int proto_b64_decode(const char *s, size_t n, uint8_t **out, size_t *out_len)
{
	if (n % 4)
		return -1;
	size_t pad = 0;
	if (n >= 4 && s[n - 1] == '=')
		pad = s[n - 2] == '=' ? 2 : 1;
	for (size_t i = 0; i < n - pad; i++)
		if (!b64_char(s[i]))
			return -1;
	/* The bits the padding leaves unused must be zero: one encoding per byte string. */
	if (pad == 1 && (b64_value(s[n - 2]) & 0x03))
		return -1;
	if (pad == 2 && (b64_value(s[n - 3]) & 0x0f))
		return -1;
	uint8_t *d = xmalloc(n / 4 * 3 + 1);
	size_t o = 0;
	for (size_t i = 0; i < n;) {
		size_t chunk = n - i < 4u << 20 ? n - i : 4u << 20;
		int r = EVP_DecodeBlock(d + o, (const unsigned char *)s + i, (int)chunk);
		if (r < 0) {
			free(d);
			return -1;
		}
		o += (size_t)r;
		i += chunk;
	}
	/* EVP_DecodeBlock counts padding as zero bytes. */
	o -= pad;
	d[o] = 0;
	*out = d;
	*out_len = o;
	return 0;
}

char *proto_milli_str(int64_t milli)
{
	char *s = xasprintf("%" PRId64 ".%03" PRId64, milli / 1000, milli % 1000);
	size_t n = strlen(s);
	while (s[n - 1] == '0')
		s[--n] = 0;
	if (s[n - 1] == '.')
		s[--n] = 0;
	return s;
}

/* ---- limits ---- */

#define PROTO_LIMIT_ROW_(f, w, u, d, mn, m, c)                                                     \
	{.field = #f,                                                                              \
	 .wire = w,                                                                                \
	 .offset = offsetof(proto_limits, f),                                                      \
	 .unit = u,                                                                                \
	 .dflt = d,                                                                                \
	 .min = mn,                                                                                \
	 .cfg_max = m,                                                                             \
	 .container = c},
const proto_limit_field proto_limit_fields[PROTO_LIMIT_COUNT] = {PROTO_LIMITS(PROTO_LIMIT_ROW_)};
#undef PROTO_LIMIT_ROW_

/* The table and the count agree (a row added without the count fails to compile). */
#define PROTO_LIMIT_ONE_(f, w, u, d, mn, m, c) +1
_Static_assert(0 PROTO_LIMITS(PROTO_LIMIT_ONE_) == PROTO_LIMIT_COUNT, "PROTO_LIMIT_COUNT");
#undef PROTO_LIMIT_ONE_

void proto_limits_default(proto_limits *l)
{
	for (size_t i = 0; i < PROTO_LIMIT_COUNT; i++)
		*proto_limit_at(l, &proto_limit_fields[i]) = proto_limit_fields[i].dflt;
}

/* The significant digits of a number's mantissa into d (leading zeros and zeros ending the
 * fraction dropped), and the power of ten they are to be multiplied by, added to *exp10.
 * Returns the index after the mantissa, or -1 when there is none, -2 when it has more than 64
 * significant digits. */
typedef struct mantissa {
	char d[64];
	size_t n;
} mantissa;

static long read_mantissa(const char *s, mantissa *m, int64_t *exp10)
{
	size_t i = 0, zeros = 0;
	bool any = false, dot = false;
	for (;; i++) {
		if (s[i] == '.' && !dot) {
			dot = true;
			continue;
		}
		if (s[i] < '0' || s[i] > '9')
			break;
		any = true;
		if (s[i] == '0' && (m->n == 0 || dot)) {
			if (m->n == 0)
				*exp10 -= dot; /* a leading zero: 0.05 is 5e-2 */
			else
				zeros++; /* kept back: zeros ending a fraction change nothing */
			continue;
		}
		for (; zeros; zeros--, (*exp10)--) {
			if (m->n == sizeof(m->d))
				return -2;
			m->d[m->n++] = '0';
		}
		if (m->n == sizeof(m->d))
			return -2;
		m->d[m->n++] = s[i];
		*exp10 -= dot;
	}
	return any ? (long)i : -1;
}

int proto_number_scaled(const char *s, int frac, int64_t *out)
{
	int r = proto_decimal_parse(s, frac, out);
	return r == 0 && *out == 0 ? -1 : r;
}

int proto_decimal_parse(const char *s, int frac, int64_t *out)
{
	mantissa m = {.n = 0};
	int64_t exp10 = frac;
	long r = read_mantissa(s, &m, &exp10);
	if (r < 0)
		return (int)r;
	size_t i = (size_t)r;
	if (s[i] == 'e' || s[i] == 'E') {
		bool neg = s[++i] == '-';
		if (s[i] == '+' || s[i] == '-')
			i++;
		int64_t e = 0;
		if (s[i] < '0' || s[i] > '9')
			return -1;
		for (; s[i] >= '0' && s[i] <= '9'; i++)
			if (e < 100000)
				e = e * 10 + (s[i] - '0');
		exp10 += neg ? -e : e;
	}
	if (s[i] != 0)
		return -1;
	if (m.n == 0) { /* a zero, whatever its exponent */
		*out = 0;
		return 0;
	}
	for (; exp10 < 0; exp10++) /* only zeros may be dropped */
		if (m.d[--m.n] != '0')
			return -1;
	int64_t v = 0;
	for (size_t k = 0; k < m.n; k++) {
		if (v > (INT64_MAX - 9) / 10)
			return -2;
		v = v * 10 + (m.d[k] - '0');
	}
	for (; exp10 > 0; exp10--) {
		if (v > INT64_MAX / 10)
			return -2;
		v *= 10;
	}
	*out = v;
	return 0;
}

int proto_limit_parse(const proto_limit_field *f, const char *text, int64_t *out, err **e)
{
	int64_t v = 0;
	int r = proto_number_scaled(text, f->unit == 0 ? 3 : 0, &v);
	if (r == 0 && f->unit > 1 && v > INT64_MAX / f->unit)
		r = -2;
	if (r == 0 && f->unit > 1)
		v *= f->unit;
	if (r == -2)
		return err_set(e, 0, "field \"limits.%s\" is too large", f->wire);
	if (r < 0 && f->unit == 0)
		return err_set(e, 0,
		               "field \"limits.%s\" must be a positive number with at most 3 "
		               "decimals",
		               f->wire);
	if (r < 0)
		return err_set(e, 0, "field \"limits.%s\" must be a positive integer", f->wire);
	if (v < f->min) {
		_cleanup_free_ char *ms = proto_limit_str(f, f->min);
		return err_set(e, 0, "field \"limits.%s\" must be at least %s", f->wire, ms);
	}
	*out = v;
	return 0;
}

char *proto_limit_str(const proto_limit_field *f, int64_t v)
{
	if (f->unit == 0)
		return proto_milli_str(v);
	if (v % f->unit)
		return xasprintf("%" PRId64 " bytes", v);
	return xasprintf("%" PRId64, v / f->unit);
}

int proto_limits_resolve(proto_limits *l, const proto_limits *defaults, const proto_limits *maxima,
                         err **e)
{
	for (size_t i = 0; i < PROTO_LIMIT_COUNT; i++) {
		const proto_limit_field *f = &proto_limit_fields[i];
		int64_t *v = proto_limit_at(l, f);
		int64_t def = proto_limit_get(defaults, f);
		int64_t max = proto_limit_get(maxima, f);
		if (*v == 0) {
			*v = def;
			continue;
		}
		if (*v < 0) {
			_cleanup_free_ char *vs = proto_limit_str(f, *v);
			return err_set(e, 0, "limits.%s %s must be positive", f->wire, vs);
		}
		if (max > 0 && *v > max) {
			_cleanup_free_ char *vs = proto_limit_str(f, *v);
			_cleanup_free_ char *ms = proto_limit_str(f, max);
			return err_set(e, 0, "limits.%s %s is above the node maximum %s", f->wire,
			               vs, ms);
		}
	}
	return 0;
}
