/* The agent frame protocol (frame.h): an incremental reader, writers and the TASK field and
 * EXIT payload parsers. libc only: this file is linked into the static agent and the host. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sandbox/agent/frame.h"

static uint32_t get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static void put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static bool type_known(uint8_t t)
{
	switch (t) {
	case FRAME_READY:
	case FRAME_TASK:
	case FRAME_STDOUT:
	case FRAME_STDERR:
	case FRAME_FILE:
	case FRAME_RETURN:
	case FRAME_EXIT:
	case FRAME_STEP:
	case FRAME_STEP_RESULT:
	case FRAME_SKILL_FILE:
	case FRAME_BLOB_IN:
	case FRAME_OUT_BLOB:
	case FRAME_LOGS:
	case FRAME_PROXY_REQUEST:
	case FRAME_PROXY_RESPONSE:
		return true;
	default:
		return false;
	}
}

/* Grows *data to hold need bytes; allocation failure aborts (this file has no xmalloc). */
static void grow(uint8_t **data, size_t *cap, size_t need)
{
	if (need <= *cap)
		return;
	size_t c = *cap ? *cap : 256;
	while (c < need)
		c = c > SIZE_MAX / 2 ? need : c * 2;
	uint8_t *p = realloc(*data, c);
	if (!p)
		abort();
	*data = p;
	*cap = c;
}

void sandbox_frame_reader_init(sandbox_frame_reader *r)
{
	memset(r, 0, sizeof(*r));
}

void sandbox_frame_reader_deinit(sandbox_frame_reader *r)
{
	free(r->buf);
	memset(r, 0, sizeof(*r));
}

/* Checks the header of the next frame, if complete: -1 and error when it is bad. */
static int reader_check(sandbox_frame_reader *r)
{
	if (r->len - r->off < FRAME_HEADER)
		return 0;
	const uint8_t *h = r->buf + r->off;
	if (!type_known(h[0]) || get_u32(h + 1) > FRAME_MAX) {
		r->error = true;
		return -1;
	}
	return 0;
}

int sandbox_frame_reader_feed(sandbox_frame_reader *r, const void *p, size_t n)
{
	if (r->error)
		return -1;
	/* Frames handed out are no longer borrowed: move the unread bytes to the front. */
	if (r->off) {
		memmove(r->buf, r->buf + r->off, r->len - r->off);
		r->len -= r->off;
		r->off = 0;
	}
	if (n) {
		grow(&r->buf, &r->cap, r->len + n);
		memcpy(r->buf + r->len, p, n);
		r->len += n;
	}
	return reader_check(r);
}

int sandbox_frame_reader_next(sandbox_frame_reader *r, uint8_t *type, const uint8_t **payload,
                              size_t *len)
{
	if (r->error || reader_check(r) < 0)
		return -1;
	size_t avail = r->len - r->off;
	if (avail < FRAME_HEADER)
		return 0;
	const uint8_t *h = r->buf + r->off;
	size_t n = get_u32(h + 1);
	if (avail - FRAME_HEADER < n)
		return 0;
	*type = h[0];
	*payload = h + FRAME_HEADER;
	*len = n;
	r->off += FRAME_HEADER + n;
	return 1;
}

void sandbox_frame_buf_free(sandbox_frame_buf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

static void buf_add(sandbox_frame_buf *b, const void *p, size_t n)
{
	if (!n)
		return;
	grow(&b->data, &b->cap, b->len + n);
	memcpy(b->data + b->len, p, n);
	b->len += n;
}

void sandbox_frame_put_header(sandbox_frame_buf *b, uint8_t type, uint32_t len)
{
	uint8_t h[FRAME_HEADER];
	h[0] = type;
	put_u32(h + 1, len);
	buf_add(b, h, sizeof(h));
}

void sandbox_frame_put_bytes(sandbox_frame_buf *b, const void *p, size_t n)
{
	buf_add(b, p, n);
}

void sandbox_frame_put(sandbox_frame_buf *b, uint8_t type, const void *payload, size_t len)
{
	sandbox_frame_put_header(b, type, (uint32_t)len);
	buf_add(b, payload, len);
}

void sandbox_frame_put_field(sandbox_frame_buf *b, uint8_t tag, const void *p, size_t n)
{
	/* Same layout as a frame header: tag | u32 BE length. */
	sandbox_frame_put_header(b, tag, (uint32_t)n);
	buf_add(b, p, n);
}

void sandbox_frame_put_field_u64(sandbox_frame_buf *b, uint8_t tag, uint64_t v)
{
	uint8_t p[8];
	put_u32(p, (uint32_t)(v >> 32));
	put_u32(p + 4, (uint32_t)v);
	sandbox_frame_put_field(b, tag, p, sizeof(p));
}

void sandbox_frame_put_exit(sandbox_frame_buf *b, uint8_t flags, int32_t code, const char *msg)
{
	size_t n = msg ? strlen(msg) : 0;
	uint8_t h[5];
	h[0] = flags;
	put_u32(h + 1, (uint32_t)code);
	sandbox_frame_put_header(b, FRAME_EXIT, (uint32_t)(sizeof(h) + n));
	buf_add(b, h, sizeof(h));
	buf_add(b, msg, n);
}

int sandbox_frame_next_field(const uint8_t *payload, size_t len, size_t *off, uint8_t *tag,
                             const uint8_t **p, size_t *n)
{
	if (*off == len)
		return 0;
	if (*off > len || len - *off < 5)
		return -1;
	size_t flen = get_u32(payload + *off + 1);
	if (len - *off - 5 < flen)
		return -1;
	*tag = payload[*off];
	*p = payload + *off + 5;
	*n = flen;
	*off += 5 + flen;
	return 1;
}

uint64_t sandbox_frame_get_u64(const uint8_t *p, size_t n)
{
	if (n != 8)
		return 0;
	return (uint64_t)get_u32(p) << 32 | get_u32(p + 4);
}

int sandbox_frame_parse_exit(const uint8_t *payload, size_t len, sandbox_frame_exit *out)
{
	if (len < 5)
		return -1;
	out->flags = payload[0];
	out->code = (int32_t)get_u32(payload + 1);
	out->msg = (const char *)payload + 5;
	out->msg_len = len - 5;
	return 0;
}

int sandbox_frame_parse_skill_file(const uint8_t *p, size_t n, sandbox_frame_skill_file *out)
{
	const uint8_t *nul = n > 1 ? memchr(p + 1, 0, n - 1) : NULL;
	if (!nul || nul == p + 1 || !memchr("dfxs", p[0], 4))
		return -1;
	out->kind = p[0];
	out->path = (const char *)p + 1;
	out->path_len = (size_t)(nul - p - 1);
	out->data = nul + 1;
	out->len = n - out->path_len - 2;
	return (p[0] == 'd' || p[0] == 's') && out->len ? -1 : 0;
}

int sandbox_frame_parse_blob_in(const uint8_t *p, size_t n, const uint8_t **data, size_t *len)
{
	if (n < 64)
		return -1;
	for (size_t i = 0; i < 64; i++)
		if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
			return -1;
	*data = p + 64;
	*len = n - 64;
	return 0;
}

/* One PROXY_REQUEST field into *out; -1 with msg when it breaks the grammar. */
static int proxy_field(sandbox_proxy_request *out, uint8_t tag, const uint8_t *p, size_t n,
                       char *msg, size_t msz)
{
	sandbox_frame_bytes *one = tag == PX_METHOD    ? &out->method
	                           : tag == PX_URL     ? &out->url
	                           : tag == PX_SERVICE ? &out->service
	                           : tag == PX_BODY    ? &out->body
	                                               : NULL;
	size_t max = tag == PX_METHOD    ? 16
	             : tag == PX_URL     ? PROXY_URL_MAX
	             : tag == PX_SERVICE ? 64
	             : tag == PX_BODY    ? PROXY_BODY_MAX
	                                 : PROXY_HEADER_MAX;
	if (tag == PX_HEADER) {
		if (out->n_headers == PROXY_HEADERS_MAX)
			return snprintf(msg, msz, "more than %u request headers",
			                PROXY_HEADERS_MAX),
			       -1;
		one = &out->headers[out->n_headers++];
	} else if (!one) {
		return snprintf(msg, msz, "unknown field %u in a proxy request", tag), -1;
	} else if (one->p || (tag == PX_BODY && out->has_body)) {
		return snprintf(msg, msz, "field %u twice in a proxy request", tag), -1;
	}
	if (n > max || (n == 0 && tag != PX_BODY))
		return snprintf(msg, msz, "field %u of a proxy request: %zu bytes (1..%zu allowed)",
		                tag, n, max),
		       -1;
	if (tag == PX_METHOD)
		for (size_t i = 0; i < n; i++)
			if (p[i] < 'A' || p[i] > 'Z')
				return snprintf(msg, msz, "the method is not upper-case letters"),
				       -1;
	out->has_body |= tag == PX_BODY;
	one->p = p ? p : (const uint8_t *)"";
	one->n = n;
	return 0;
}

int sandbox_proxy_request_parse(const uint8_t *payload, size_t len, sandbox_proxy_request *out,
                                char *msg, size_t msz)
{
	memset(out, 0, sizeof(*out));
	if (len > PROXY_REQUEST_MAX)
		return snprintf(msg, msz, "a proxy request of %zu bytes (at most %u)", len,
		                PROXY_REQUEST_MAX),
		       -1;
	size_t off = 0;
	uint8_t tag;
	const uint8_t *p;
	size_t n;
	int r;
	while ((r = sandbox_frame_next_field(payload, len, &off, &tag, &p, &n)) > 0)
		if (proxy_field(out, tag, p, n, msg, msz) < 0)
			return -1;
	if (r < 0)
		return snprintf(msg, msz, "a malformed proxy request (a field runs past its end)"),
		       -1;
	if (!out->method.p || !out->url.p || !out->service.p)
		return snprintf(msg, msz, "a proxy request needs a method, a URL and a service"),
		       -1;
	return 0;
}
