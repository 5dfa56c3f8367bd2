/* A growable byte buffer, always NUL-terminated so text can be used in place. */
#pragma once

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct buf {
	uint8_t *data; /* owned; NULL while empty and never grown */
	size_t len;
	size_t cap;
} buf;

#define BUF_INIT                                                                                   \
	{                                                                                          \
		NULL, 0, 0                                                                         \
	}

void buf_init(buf *b);
void buf_deinit(buf *b);
void buf_reset(buf *b);
void buf_reserve(buf *b, size_t extra);
void buf_append(buf *b, const void *p, size_t n);
void buf_append_str(buf *b, const char *s);
void buf_appendf(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_append_u32be(buf *b, uint32_t v);
void buf_append_u64be(buf *b, uint64_t v);
/* Returns the contents (never NULL, NUL-terminated) and leaves b empty; caller frees. */
char *buf_steal(buf *b, size_t *len);
/* The contents as a C string (never NULL). Borrowed. */
const char *buf_str(const buf *b);
