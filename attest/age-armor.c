/* The age ASCII armor: strict PEM (RFC 7468, section 3) with the label "AGE ENCRYPTED FILE",
 * 64-column lines of canonical padded base64, no headers, no empty lines, a short line only
 * last. Tolerated, as the reference reader does (filippo.io/age armor): LF or CRLF line ends,
 * up to 1024 bytes of whitespace before the BEGIN line and after the END line, and no LF after
 * the END line. Anything else is an armor failure. */
#include <string.h>

#include "attest/age-internal.h"

static bool is_space(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static bool all_space(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!is_space(p[i]))
			return false;
	return true;
}

bool age_armor_detect(const uint8_t *p, size_t n)
{
	size_t i = 0, begin = strlen(AGE_ARMOR_BEGIN);
	while (i < n && i < AGE_ARMOR_SPACE && is_space(p[i]))
		i++;
	return n - i >= begin && memcmp(p + i, AGE_ARMOR_BEGIN, begin) == 0;
}

struct lines {
	const uint8_t *p;
	size_t n, off, line;
};

/* The next line without its LF and one CR before it; the last line may lack the LF. */
static bool get_line(struct lines *l, const char **s, size_t *len)
{
	if (l->off == l->n)
		return false;
	const uint8_t *start = l->p + l->off, *lf = memchr(start, '\n', l->n - l->off);
	size_t raw = lf ? (size_t)(lf - start) : l->n - l->off;
	l->off += raw + (lf ? 1 : 0);
	l->line++;
	*s = (const char *)start;
	*len = raw && start[raw - 1] == '\r' ? raw - 1 : raw;
	return true;
}

static bool is_line(const char *s, size_t len, const char *want)
{
	return len == strlen(want) && memcmp(s, want, len) == 0;
}

static int armor_begin(struct lines *l, err **e)
{
	const char *s;
	size_t len, skipped = 0;
	for (;;) {
		if (!get_line(l, &s, &len))
			return err_set(e, 0, "no \"%s\" line", AGE_ARMOR_BEGIN);
		if (!all_space((const uint8_t *)s, len))
			break;
		skipped += len + 1;
		if (skipped > AGE_ARMOR_SPACE)
			return err_set(e, 0,
			               "more than %d bytes of whitespace before the BEGIN line",
			               AGE_ARMOR_SPACE);
	}
	if (!is_line(s, len, AGE_ARMOR_BEGIN))
		return err_set(e, 0, "line %zu: expected \"%s\"", l->line, AGE_ARMOR_BEGIN);
	return 0;
}

/* After the END line: only whitespace, and less than 1024 bytes of it. */
static int armor_trailer(struct lines *l, err **e)
{
	size_t rest = l->n - l->off, look = rest < AGE_ARMOR_SPACE ? rest : AGE_ARMOR_SPACE;
	if (!all_space(l->p + l->off, look))
		return err_set(e, 0, "data after the END line");
	if (rest >= AGE_ARMOR_SPACE)
		return err_set(e, 0, "%d bytes or more of whitespace after the END line",
		               AGE_ARMOR_SPACE);
	return 0;
}

static int armor_body(struct lines *l, buf *out, err **e)
{
	const char *s;
	size_t len;
	for (;;) {
		if (!get_line(l, &s, &len))
			return err_set(e, 0, "no \"%s\" line", AGE_ARMOR_END);
		if (is_line(s, len, AGE_ARMOR_END))
			return 0;
		if (len == 0)
			return err_set(e, 0, "line %zu: empty line", l->line);
		if (len > AGE_COLUMNS)
			return err_set(e, 0, "line %zu: longer than %d columns", l->line,
			               AGE_COLUMNS);
		uint8_t bytes[AGE_LINE_BYTES];
		ssize_t got = age_b64_decode(s, len, true, bytes, sizeof(bytes));
		if (got < 0)
			return err_set(e, 0, "line %zu: not canonical padded base64", l->line);
		buf_append(out, bytes, (size_t)got);
		if (got == AGE_LINE_BYTES)
			continue;
		if (!get_line(l, &s, &len))
			return err_set(e, 0, "no \"%s\" line", AGE_ARMOR_END);
		if (!is_line(s, len, AGE_ARMOR_END))
			return err_set(e, 0, "line %zu: expected \"%s\" after the short line %zu",
			               l->line, AGE_ARMOR_END, l->line - 1);
		return 0;
	}
}

int age_armor_decode(const uint8_t *p, size_t n, buf *out, err **e)
{
	struct lines l = {p, n, 0, 0};
	if (armor_begin(&l, e) < 0 || armor_body(&l, out, e) < 0 || armor_trailer(&l, e) < 0)
		return err_prefix(e, "armor");
	return 0;
}

void age_armor_encode(const uint8_t *p, size_t n, buf *out)
{
	buf_reserve(out, strlen(AGE_ARMOR_BEGIN) + strlen(AGE_ARMOR_END) + 3 + (n + 2) / 3 * 4 +
	                     n / AGE_LINE_BYTES + 1);
	buf_append_str(out, AGE_ARMOR_BEGIN "\n");
	if (!age_b64_wrap(out, p, n, true))
		buf_append_str(out, "\n");
	buf_append_str(out, AGE_ARMOR_END "\n");
}
