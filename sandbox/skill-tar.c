/* The skill bundle's archive format: the ustar subset a skill needs (proto/SKILLS.md, "Export
 * and import"). The writer is reproducible (sorted members, zero times, owners and names); the
 * reader takes what the writer and GNU tar write for regular files and directories, checks
 * every header's checksum and field syntax, and refuses links, devices, fifos, long-name and
 * pax extensions by name. It only parses: what becomes a file is the caller's decision. */
#include <stdio.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/xalloc.h"
#include "sandbox/sandbox.h"
#include "sandbox/skill-internal.h"

#define BLOCK 512

enum {
	H_NAME = 0,
	H_MODE = 100,
	H_UID = 108,
	H_GID = 116,
	H_SIZE = 124,
	H_MTIME = 136,
	H_CHKSUM = 148,
	H_TYPE = 156,
	H_MAGIC = 257,
	H_VERSION = 263,
	H_PREFIX = 345,
};

static void octal(uint8_t *field, size_t width, uint64_t v)
{
	char tmp[24];
	snprintf(tmp, sizeof(tmp), "%0*llo", (int)width - 1, (unsigned long long)v);
	memcpy(field, tmp, width - 1);
	field[width - 1] = '\0';
}

static unsigned checksum(const uint8_t *h)
{
	unsigned sum = 0;
	for (size_t i = 0; i < BLOCK; i++)
		sum += (i >= H_CHKSUM && i < H_CHKSUM + 8) ? ' ' : h[i];
	return sum;
}

/* Splits path into the ustar prefix and name fields: name <= 100, prefix <= 155. */
static int split_path(const char *path, size_t *prefix_len, err **e)
{
	size_t n = strlen(path);
	*prefix_len = 0;
	if (n <= 100)
		return 0;
	const char *slash = strrchr(path, '/');
	if (!slash || n - (size_t)(slash - path) - 1 > 100 || (size_t)(slash - path) > 155)
		return err_set(e, 0, "archive: %s: too long for a ustar header", path);
	*prefix_len = (size_t)(slash - path);
	return 0;
}

int skill_tar_add(buf *out, const char *path, bool dir, bool exec, const uint8_t *data, size_t len,
                  err **e)
{
	size_t plen;
	if (split_path(path, &plen, e) < 0)
		return -1;
	uint8_t h[BLOCK] = {0};
	const char *name = plen ? path + plen + 1 : path;
	memcpy(h + H_NAME, name, strlen(name));
	memcpy(h + H_PREFIX, path, plen);
	octal(h + H_MODE, 8, dir || exec ? 0755 : 0644);
	octal(h + H_UID, 8, 0);
	octal(h + H_GID, 8, 0);
	octal(h + H_SIZE, 12, dir ? 0 : len);
	octal(h + H_MTIME, 12, 0);
	h[H_TYPE] = dir ? '5' : '0';
	memcpy(h + H_MAGIC, "ustar", 6);
	memcpy(h + H_VERSION, "00", 2);
	char ck[8];
	snprintf(ck, sizeof(ck), "%06o", checksum(h));
	memcpy(h + H_CHKSUM, ck, 7);
	h[H_CHKSUM + 7] = ' ';
	buf_append(out, h, BLOCK);
	if (!dir && len) {
		buf_append(out, data, len);
		static const uint8_t zeros[BLOCK];
		if (len % BLOCK)
			buf_append(out, zeros, BLOCK - len % BLOCK);
	}
	return 0;
}

void skill_tar_finish(buf *out)
{
	static const uint8_t zeros[2 * BLOCK];
	buf_append(out, zeros, sizeof(zeros));
}

/* An octal field: optional leading spaces, at least one digit, then NULs or spaces to the end. */
static int parse_octal(const uint8_t *f, size_t width, uint64_t *out)
{
	size_t i = 0;
	while (i < width && f[i] == ' ')
		i++;
	size_t start = i;
	uint64_t v = 0;
	for (; i < width && f[i] >= '0' && f[i] <= '7'; i++) {
		if (v >> 60)
			return -1;
		v = v << 3 | (uint64_t)(f[i] - '0');
	}
	if (i == start)
		return -1;
	for (; i < width; i++)
		if (f[i] != '\0' && f[i] != ' ')
			return -1;
	*out = v;
	return 0;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

static const char *type_problem(uint8_t t)
{
	switch (t) {
	case '1':
		return "a hard link";
	case '2':
		return "a symbolic link";
	case '3':
	case '4':
		return "a device";
	case '6':
		return "a fifo";
	case 'x':
	case 'g':
		return "a pax extended header (not supported: paths are at most 150 bytes)";
	case 'L':
	case 'K':
		return "a GNU long name (not supported: paths are at most 150 bytes)";
	default:
		return "of an unsupported type";
	}
}

/* The member's path from name and prefix, "./" and one trailing "/" removed. */
static char *member_path(const uint8_t *h, bool gnu)
{
	size_t nlen = strnlen((const char *)h + H_NAME, 100);
	size_t plen = gnu ? 0 : strnlen((const char *)h + H_PREFIX, 155);
	buf b = BUF_INIT;
	if (plen) {
		buf_append(&b, h + H_PREFIX, plen);
		buf_append_str(&b, "/");
	}
	buf_append(&b, h + H_NAME, nlen);
	const char *s = buf_str(&b);
	char *p = xstrdup(strncmp(s, "./", 2) ? s : s + 2);
	buf_deinit(&b);
	size_t n = strlen(p);
	if (n && p[n - 1] == '/')
		p[n - 1] = '\0';
	return p;
}

typedef struct member {
	char *path;
	bool dir, exec;
	uint64_t size;
} member;

/* Checks one header block (not all zeros) and reads what it says. */
static int parse_header(const uint8_t *h, size_t idx, member *m, err **e)
{
	uint64_t ck, mode;
	bool posix = !memcmp(h + H_MAGIC,
	                     "ustar\0"
	                     "00",
	                     8);
	bool gnu = !memcmp(h + H_MAGIC, "ustar  \0", 8);
	if (!posix && !gnu)
		return err_set(e, 0, "archive: member %zu: not a ustar header", idx);
	if (parse_octal(h + H_CHKSUM, 8, &ck) < 0 || ck != checksum(h))
		return err_set(e, 0, "archive: member %zu: bad header checksum", idx);
	if (parse_octal(h + H_MODE, 8, &mode) < 0)
		return err_set(e, 0, "archive: member %zu: bad mode field", idx);
	if (h[H_SIZE] & 0x80 || parse_octal(h + H_SIZE, 12, &m->size) < 0)
		return err_set(e, 0, "archive: member %zu: bad size field", idx);
	uint8_t t = h[H_TYPE];
	m->path = member_path(h, gnu);
	_cleanup_free_ char *shown = skill_shown_path(m->path);
	if (t != '0' && t != '\0' && t != '5')
		return err_set(e, 0, "archive: member %zu (%s): %s", idx, shown, type_problem(t));
	m->dir = t == '5';
	m->exec = mode & 0100;
	if (m->dir && m->size)
		return err_set(e, 0, "archive: member %zu (%s): a directory with contents", idx,
		               shown);
	return 0;
}

int skill_tar_parse(const uint8_t *p, size_t n, skill_tar_fn cb, void *arg, err **e)
{
	size_t off = 0;
	for (size_t idx = 1;; idx++) {
		if (n - off < BLOCK)
			return err_set(e, 0, "archive: truncated (no end-of-archive blocks)");
		if (all_zero(p + off, BLOCK)) {
			if (n - off < 2 * BLOCK || !all_zero(p + off, n - off))
				return err_set(e, 0,
				               "archive: the end-of-archive blocks are missing or "
				               "followed by data");
			return 0;
		}
		member m = {0};
		int r = parse_header(p + off, idx, &m, e);
		_cleanup_free_ char *path = m.path;
		if (r < 0)
			return -1;
		off += BLOCK;
		uint64_t padded = (m.size + BLOCK - 1) / BLOCK * BLOCK;
		if (padded > n - off)
			return err_set(e, 0, "archive: member %zu: truncated", idx);
		const uint8_t *data = p + off;
		off += (size_t)padded;
		if (!*path && m.dir)
			continue; /* "./", the archive's root */
		if (!*path)
			return err_set(e, 0, "archive: member %zu: a file without a name", idx);
		if (cb(path, m.dir, m.exec, data, (size_t)m.size, arg, e) < 0)
			return -1;
	}
}
