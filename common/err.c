/* Error objects with context chains (see err.h). */
#include "common/err.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"

int err_set(err **e, int code, const char *fmt, ...)
{
	if (!e)
		return -1;
	va_list ap;
	va_start(ap, fmt);
	char *m = xvasprintf(fmt, ap);
	va_end(ap);
	if (code > 0) {
		char *full = xasprintf("%s: %s", m, strerror(code));
		free(m);
		m = full;
	}
	err_free(*e);
	*e = xzalloc(sizeof(**e));
	(*e)->code = code;
	(*e)->msg = m;
	return -1;
}

int err_prefix(err **e, const char *fmt, ...)
{
	if (!e || !*e)
		return -1;
	va_list ap;
	va_start(ap, fmt);
	char *p = xvasprintf(fmt, ap);
	va_end(ap);
	char *full = xasprintf("%s: %s", p, (*e)->msg);
	free(p);
	free((*e)->msg);
	(*e)->msg = full;
	return -1;
}

err *err_free(err *e)
{
	if (e) {
		free(e->msg);
		free(e);
	}
	return NULL;
}

const char *err_msg(const err *e)
{
	return e && e->msg ? e->msg : "unknown error";
}
