/* Logging: one line per event, "level message key=value ...", to stderr. Under systemd
 * (JOURNAL_STREAM set) lines carry a <N> syslog priority prefix instead of a timestamp. */
#pragma once

#include "common/buf.h"

enum { LOG_LVL_DEBUG = 0, LOG_LVL_INFO, LOG_LVL_WARN, LOG_LVL_ERROR };

void log_set_level(int level);
int log_get_level(void);
/* Parses "debug", "info", "warn", "error"; returns -1 when unknown. */
int log_level_parse(const char *s);
void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_LVL_ERROR, __VA_ARGS__)

/* The longest value log_kv() copies, in bytes of the value; the rest becomes "...". */
#define LOG_VALUE_MAX 512

/* Appends " key=value" (logfmt) to b. The value stays bare when it is printable ASCII other
 * than space, '"', '\\' and '='; otherwise (also when empty) it is in double quotes, with '"'
 * and '\\' escaped by a backslash and '=' and every byte outside printable ASCII (newlines,
 * control bytes, UTF-8) as \xNN. So a field never spans lines or fakes another field, and
 * grep "key=value" finds the field (never text inside another value). Values over LOG_VALUE_MAX bytes are cut and end in "...".
 * A NULL value appends nothing. key is the caller's constant ([a-z_]+). */
void log_kv(buf *b, const char *key, const char *value);
