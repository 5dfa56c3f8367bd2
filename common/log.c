/* Line-oriented logging to stderr, journald-friendly (see log.h). */
#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "common/buf.h"

static int log_level = LOG_LVL_INFO;
static const char *const names[] = {"debug", "info", "warn", "error"};
static const int prio[] = {7, 6, 4, 3};

void log_set_level(int level)
{
	log_level = level;
}

int log_get_level(void)
{
	return log_level;
}

int log_level_parse(const char *s)
{
	for (int i = 0; i < 4; i++)
		if (strcmp(s, names[i]) == 0)
			return i;
	return -1;
}

void log_msg(int level, const char *fmt, ...)
{
	if (level < log_level)
		return;
	char line[4096];
	size_t n = 0;
	if (getenv("JOURNAL_STREAM")) {
		n = (size_t)snprintf(line, sizeof(line), "<%d>%s ", prio[level], names[level]);
	} else {
		struct timeval tv;
		struct tm tm;
		gettimeofday(&tv, NULL);
		gmtime_r(&tv.tv_sec, &tm);
		n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
		n += (size_t)snprintf(line + n, sizeof(line) - n, ".%03ldZ %s ",
		                      (long)tv.tv_usec / 1000, names[level]);
	}
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
	va_end(ap);
	if (m < 0)
		m = 0;
	n += (size_t)m;
	if (n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	fwrite(line, 1, n, stderr);
	fflush(stderr);
}

static bool log_bare(unsigned char c)
{
	return c > ' ' && c < 0x7f && c != '"' && c != '\\' && c != '=';
}

void log_kv(buf *b, const char *key, const char *value)
{
	if (!value)
		return;
	size_t n = strlen(value), cut = n > LOG_VALUE_MAX ? LOG_VALUE_MAX : n;
	bool bare = n > 0 && n == cut;
	for (size_t i = 0; bare && i < n; i++)
		bare = log_bare((unsigned char)value[i]);
	buf_appendf(b, " %s=", key);
	if (bare) {
		buf_append(b, value, n);
		return;
	}
	buf_append_str(b, "\"");
	for (size_t i = 0; i < cut; i++) {
		unsigned char c = (unsigned char)value[i];
		if (c == '"' || c == '\\')
			buf_appendf(b, "\\%c", c);
		else if (c < ' ' || c >= 0x7f || c == '=')
			/* '=' too: so that "key=" inside a value never matches grep 'key=...' */
			buf_appendf(b, "\\x%02x", c);
		else
			buf_append(b, &c, 1);
	}
	buf_append_str(b, cut < n ? "...\"" : "\"");
}
