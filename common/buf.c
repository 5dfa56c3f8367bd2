/* Growable byte buffer (see buf.h). */
#include "common/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"

void buf_init(buf *b)
{
	*b = (buf)BUF_INIT;
}

void buf_deinit(buf *b)
{
	free(b->data);
	*b = (buf)BUF_INIT;
}

void buf_reset(buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = 0;
}

void buf_reserve(buf *b, size_t extra)
{
	if (b->len + extra + 1 <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 64;
	while (cap < b->len + extra + 1)
		cap *= 2;
	b->data = xrealloc(b->data, cap);
	b->cap = cap;
	b->data[b->len] = 0; /* always a C string, also when nothing was appended yet */
}

void buf_append(buf *b, const void *p, size_t n)
{
	buf_reserve(b, n);
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = 0;
}

void buf_append_str(buf *b, const char *s)
{
	buf_append(b, s, strlen(s));
}

void buf_appendf(buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *s = xvasprintf(fmt, ap);
	va_end(ap);
	buf_append_str(b, s);
	free(s);
}

void buf_append_u32be(buf *b, uint32_t v)
{
	uint8_t x[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
	buf_append(b, x, 4);
}

void buf_append_u64be(buf *b, uint64_t v)
{
	buf_append_u32be(b, (uint32_t)(v >> 32));
	buf_append_u32be(b, (uint32_t)v);
}

char *buf_steal(buf *b, size_t *len)
{
	buf_reserve(b, 0);
	char *p = (char *)b->data;
	if (len)
		*len = b->len;
	*b = (buf)BUF_INIT;
	return p;
}

const char *buf_str(const buf *b)
{
	return b->data ? (const char *)b->data : "";
}
