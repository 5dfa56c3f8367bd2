/* The error object: a failing function returns a negative value and sets *e once; callers add
 * context with err_prefix() on the way up; only daemon/ and cli/ print it. */
#pragma once

#include <stdbool.h>

typedef struct err {
	int code; /* errno-style code, 0 when not from a system call */
	char *msg;
} err;

/* Sets *e (if e is not NULL) to a new error "fmt: strerror(code)" (the suffix only when code
 * > 0). An error already in *e is replaced. Always returns -1, so `return err_set(...)`. */
int err_set(err **e, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Prepends "context: " to the message of *e, when there is one. Returns -1. */
int err_prefix(err **e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Frees an error; NULL is fine. Returns NULL. */
err *err_free(err *e);

/* The message, or "unknown error" for NULL. Borrowed; valid until err_free(). */
const char *err_msg(const err *e);

static inline void err_freep(err **e)
{
	err_free(*e);
	*e = 0;
}
#define _cleanup_err_ __attribute__((cleanup(err_freep)))
