/* Redaction of secret values (secrets.h, "redaction"): each value and the encodings a program
 * most often prints it in by accident become patterns; every match in an output (overlapping
 * and adjacent ones merged) becomes "***". The buffers that held secrets are wiped. */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "common/util.h"
#include "common/xalloc.h"
#include "daemon/secrets.h"
#include "proto/proto.h"

#define MASK "***"

struct secrets_redactor {
	buf *pats;
	size_t n;
	bool star; /* a pattern holds '*': a mask next to text could spell it again */
};

typedef struct span {
	size_t a, b;
} span;

static void add_pat(secrets_redactor *r, const void *p, size_t n)
{
	for (size_t i = 0; i < r->n; i++)
		if (r->pats[i].len == n && !memcmp(r->pats[i].data, p, n))
			return;
	r->pats = xreallocarray(r->pats, r->n + 1, sizeof(*r->pats));
	r->star |= memchr(p, '*', n) != NULL;
	r->pats[r->n] = (buf)BUF_INIT;
	buf_append(&r->pats[r->n++], p, n);
}

static void put_u16(buf *out, unsigned v)
{
	buf_appendf(out, "\\u%04x", v);
}

/* v as the body of a JSON string: Python's json.dumps (ascii: non-ASCII as \uXXXX, surrogate
 * pairs above U+FFFF) or JavaScript's JSON.stringify (UTF-8 kept). */
static void json_escape(const uint8_t *v, size_t n, bool ascii, buf *out)
{
	static const char from[] = "\"\\\b\f\n\r\t", to[] = "\"\\bfnrt";
	for (size_t i = 0; i < n;) {
		const char *at = v[i] ? memchr(from, v[i], sizeof(from) - 1) : NULL;
		size_t seq = v[i] >= 0x80 ? proto_utf8_seq(v + i, n - i) : 1;
		if (at) {
			buf_appendf(out, "\\%c", to[at - from]);
		} else if (v[i] < 0x20) {
			put_u16(out, v[i]);
		} else if (v[i] < 0x80 || !ascii || seq == 0) {
			buf_append(out, v + i, seq ? seq : 1);
		} else {
			uint32_t cp = seq == 2 ? v[i] & 0x1f : seq == 3 ? v[i] & 0x0f : v[i] & 0x07;
			for (size_t k = 1; k < seq; k++)
				cp = cp << 6 | (v[i + k] & 0x3f);
			if (cp >= 0x10000) {
				put_u16(out, 0xd800 + ((cp - 0x10000) >> 10));
				put_u16(out, 0xdc00 + ((cp - 0x10000) & 0x3ff));
			} else {
				put_u16(out, cp);
			}
		}
		i += seq ? seq : 1;
	}
}

static void add_b64(secrets_redactor *r, const char *s, size_t n)
{
	add_pat(r, s, n);
	char *url = xstrndup(s, n);
	size_t m = 0;
	for (size_t i = 0; i < n; i++)
		if (url[i] != '=')
			url[m++] = url[i] == '+' ? '-' : url[i] == '/' ? '_' : url[i];
	add_pat(r, url, m);
	OPENSSL_cleanse(url, n);
	free(url);
}

/* Base64 of v alone (padded), and the characters of v's base64 that do not depend on what
 * surrounds it when it starts k = 0, 1, 2 bytes into a 3-byte group of a longer text. */
static void add_base64(secrets_redactor *r, const uint8_t *v, size_t n)
{
	char *full = proto_b64_encode(v, n);
	add_b64(r, full, strlen(full));
	OPENSSL_cleanse(full, strlen(full));
	free(full);
	uint8_t *tmp = xzalloc(n + 2);
	for (size_t k = 0; k < 3; k++) {
		memcpy(tmp + k, v, n);
		char *enc = proto_b64_encode(tmp, k + n);
		size_t start = (8 * k + 5) / 6, end = 8 * (k + n) / 6;
		add_b64(r, enc + start, end - start);
		OPENSSL_cleanse(enc, strlen(enc));
		free(enc);
	}
	OPENSSL_cleanse(tmp, n + 2);
	free(tmp);
}

static void add_value(secrets_redactor *r, const uint8_t *v, size_t n)
{
	add_pat(r, v, n);
	for (int ascii = 0; ascii < 2; ascii++) {
		buf j = BUF_INIT;
		json_escape(v, n, ascii, &j);
		add_pat(r, j.data, j.len);
		OPENSSL_cleanse(j.data, j.cap);
		buf_deinit(&j);
	}
	char *hex = xmalloc(2 * n + 1);
	hex_encode(v, n, hex);
	add_pat(r, hex, 2 * n);
	for (size_t i = 0; i < 2 * n; i++)
		hex[i] = (char)(hex[i] >= 'a' ? hex[i] - 32 : hex[i]);
	add_pat(r, hex, 2 * n);
	OPENSSL_cleanse(hex, 2 * n);
	free(hex);
	add_base64(r, v, n);
}

secrets_redactor *secrets_redactor_new(const secret_value *v, size_t n)
{
	secrets_redactor *r = xzalloc(sizeof(*r));
	for (size_t i = 0; i < n; i++) /* shorter values never come from secrets_lookup() */
		if (v[i].len >= SECRETS_VALUE_MIN)
			add_value(r, v[i].value, v[i].len);
	return r;
}

secrets_redactor *secrets_redactor_free(secrets_redactor *r)
{
	if (!r)
		return NULL;
	for (size_t i = 0; i < r->n; i++) {
		OPENSSL_cleanse(r->pats[i].data, r->pats[i].cap);
		buf_deinit(&r->pats[i]);
	}
	free(r->pats);
	free(r);
	return NULL;
}

static void push(span **v, size_t *n, size_t *cap, size_t a, size_t b)
{
	if (*n == *cap) {
		*cap = *cap ? 2 * *cap : 16;
		*v = xreallocarray(*v, *cap, sizeof(**v));
	}
	(*v)[(*n)++] = (span){a, b};
}

static int span_cmp(const void *x, const void *y)
{
	const span *a = x, *b = y;
	return a->a < b->a ? -1 : a->a > b->a;
}

/* Every match of every pattern, and with truncated the longest tail that starts a pattern. */
static size_t find_spans(const secrets_redactor *r, const buf *b, bool truncated, span **out)
{
	size_t n = 0, cap = 0;
	*out = NULL;
	for (size_t i = 0; i < r->n; i++) {
		const buf *p = &r->pats[i];
		for (size_t off = 0; off < b->len;) {
			const uint8_t *hit = memmem(b->data + off, b->len - off, p->data, p->len);
			if (!hit)
				break;
			size_t at = (size_t)(hit - b->data);
			push(out, &n, &cap, at, at + p->len);
			off = at + 1;
		}
		size_t l = p->len - 1 < b->len ? p->len - 1 : b->len;
		for (; truncated && l > 0; l--)
			if (!memcmp(b->data + b->len - l, p->data, l)) {
				push(out, &n, &cap, b->len - l, b->len);
				break;
			}
	}
	return n;
}

/* One pass: every span found becomes a mask. Returns the masks written. */
static size_t redact_pass(const secrets_redactor *r, buf *b, bool truncated)
{
	span *s;
	size_t n = b->len ? find_spans(r, b, truncated, &s) : 0;
	if (n == 0)
		return 0;
	qsort(s, n, sizeof(*s), span_cmp);
	buf out = BUF_INIT;
	size_t done = 0, masks = 0;
	for (size_t i = 0; i < n;) {
		size_t a = s[i].a, end = s[i].b;
		for (i++; i < n && s[i].a <= end; i++)
			end = s[i].b > end ? s[i].b : end;
		buf_append(&out, b->data + done, a - done);
		buf_append_str(&out, MASK);
		masks++;
		done = end;
	}
	buf_append(&out, b->data + done, b->len - done);
	free(s);
	OPENSSL_cleanse(b->data, b->cap);
	buf_deinit(b);
	*b = out;
	return masks;
}

size_t secrets_redact(const secrets_redactor *r, buf *b, bool truncated)
{
	if (!r)
		return 0;
	size_t masks = redact_pass(r, b, truncated);
	/* Each pass shortens b (a match is >= 8 bytes, its mask 3), so this ends. */
	for (size_t more = masks; r->star && more;)
		masks += more = redact_pass(r, b, false);
	return masks;
}

char *secrets_redact_str(const secrets_redactor *r, const char *s)
{
	buf b = BUF_INIT;
	buf_append_str(&b, s);
	secrets_redact(r, &b, false);
	return buf_steal(&b, NULL);
}
