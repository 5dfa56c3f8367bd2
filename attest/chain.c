/* The node's hash chain state: the digest and sequence number of its last attestation, saved
 * before a signed result leaves the node (ATTESTATION.md, "The chain state"; the daemon saves
 * on a thread of its own, one save for the signatures made while the last one ran:
 * daemon/chain-save.h).
 *
 * The file has two slots of ATTEST_CHAIN_SLOT bytes, each one JSON line
 * {"previous":"sha256:...","sequence":N,"check":"<16 hex>"} padded with spaces; check is the
 * first 8 bytes of SHA-256("aisp-chain-v1" NUL previous NUL N) in hex. A save writes the slot
 * that does not hold the newest state in place and fdatasyncs the file: one flush of one
 * block, no rename and no metadata (the file's size never changes), which is what keeps it off
 * the task's path (issue 17: 1 ms of every task's latency before, 0.1 ms after). A save torn
 * by a crash leaves a slot whose check fails or that does not parse; the other slot still
 * holds the state before it, whose number is the last one published. Each slot is its own
 * 4 KiB block so that a torn write of one cannot touch the other.
 *
 * The older form, a single {"previous":...,"sequence":N} object replaced by rename, is read and
 * rewritten in the slotted form when the file is opened. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "attest/attest.h"
#include "attest/internal.h"
#include "common/cleanup.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "proto/json.h"

#define CHAIN_FILE_SIZE (2 * ATTEST_CHAIN_SLOT)
#define CHAIN_CHECK_HEX 16

struct attest_chain_file {
	int fd;
	int newest;    /* the slot holding the newest state */
	char *name;    /* for messages */
	char *skipped; /* why the other slot held no valid state at open, or NULL */
};

/* The state's check: the first CHAIN_CHECK_HEX hex digits of its SHA-256. */
static void chain_check(const attest_chain *c, char out[CHAIN_CHECK_HEX + 1])
{
	char text[sizeof("aisp-chain-v1") + ATTEST_DIGEST_LEN + 24], d[ATTEST_DIGEST_LEN];
	int n = snprintf(text, sizeof(text), "aisp-chain-v1%c%s%c%" PRIu64, 0, c->previous, 0,
	                 c->sequence);
	attest_sha256_str(text, (size_t)n, d);
	memcpy(out, d + 7, CHAIN_CHECK_HEX);
	out[CHAIN_CHECK_HEX] = '\0';
}

/* Parses one state object; want_check: the slotted form (its check must match). Returns 0, or
 * -1 with *e. */
static int parse_state(const char *text, size_t len, bool want_check, attest_chain *c, err **e)
{
	_cleanup_yajl_val_ yajl_val v = NULL;
	proto_json_parse(text, len, &v, NULL);
	const char *prev_path[] = {"previous", NULL}, *seq_path[] = {"sequence", NULL},
	           *check_path[] = {"check", NULL};
	yajl_val prev = v ? yajl_tree_get(v, prev_path, yajl_t_string) : NULL;
	yajl_val seq = v ? yajl_tree_get(v, seq_path, yajl_t_number) : NULL;
	yajl_val check = v ? yajl_tree_get(v, check_path, yajl_t_string) : NULL;
	if (!prev || !YAJL_IS_INTEGER(seq) || YAJL_GET_INTEGER(seq) < 0 || (want_check && !check))
		return err_set(e, 0, "malformed (expected {\"previous\":..., \"sequence\":N%s})",
		               want_check ? ", \"check\":..." : "");
	const char *p = YAJL_GET_STRING(prev);
	if (!p || (*p && !attest_digest_valid(p)) || (!*p) != (YAJL_GET_INTEGER(seq) == 0))
		return err_set(e, 0, "invalid previous digest \"%.80s\"", p ? p : "");
	snprintf(c->previous, sizeof(c->previous), "%s", p);
	c->sequence = (uint64_t)YAJL_GET_INTEGER(seq);
	if (!want_check)
		return 0;
	char want[CHAIN_CHECK_HEX + 1];
	chain_check(c, want);
	const char *got = YAJL_GET_STRING(check);
	if (!got || strcmp(got, want))
		return err_set(e, 0, "check %.20s is not %s (a torn write)", got ? got : "", want);
	return 0;
}

/* The slot's line: what precedes its first newline (the slot's end without one). */
static int parse_slot(const char *slot, attest_chain *c, err **e)
{
	const char *nl = memchr(slot, '\n', ATTEST_CHAIN_SLOT);
	return parse_state(slot, nl ? (size_t)(nl - slot) : ATTEST_CHAIN_SLOT, true, c, e);
}

/* The newest valid slot of a slotted file's contents (*newest: its index); *skipped (when not
 * NULL) says why the other slot was passed over, or stays NULL when both were valid. */
static int parse_slots(const char *text, attest_chain *c, int *newest, char **skipped, err **e)
{
	attest_chain s[2];
	_cleanup_err_ err *e0 = NULL, *e1 = NULL;
	bool ok0 = parse_slot(text, &s[0], &e0) == 0;
	bool ok1 = parse_slot(text + ATTEST_CHAIN_SLOT, &s[1], &e1) == 0;
	if (!ok0 && !ok1)
		return err_set(e, 0, "neither slot holds a state (slot 0: %s; slot 1: %s)",
		               err_msg(e0), err_msg(e1));
	*newest = !ok0 || (ok1 && s[1].sequence > s[0].sequence);
	*c = s[*newest];
	if (skipped && ok0 != ok1)
		*skipped = xasprintf("slot %d passed over (%s); slot %d holds sequence %" PRIu64,
		                     ok0, err_msg(ok0 ? e1 : e0), *newest, c->sequence);
	return 0;
}

int attest_chain_parse(const char *text, size_t len, attest_chain *c, int *newest, err **e)
{
	*c = (attest_chain)ATTEST_CHAIN_INIT;
	int slot = 0;
	int r = len == CHAIN_FILE_SIZE ? parse_slots(text, c, &slot, NULL, e)
	                               : parse_state(text, len, false, c, e);
	if (newest)
		*newest = r == 0 && len == CHAIN_FILE_SIZE ? slot : -1;
	return r;
}

int attest_chain_load(int dirfd, const char *name, attest_chain *c, err **e)
{
	*c = (attest_chain)ATTEST_CHAIN_INIT;
	buf b = BUF_INIT;
	_cleanup_err_ err *re = NULL;
	if (read_file_at(dirfd, name, CHAIN_FILE_SIZE, &b, &re) < 0) {
		buf_deinit(&b);
		if (re->code == ENOENT)
			return 0;
		*e = steal_pointer(&re);
		return err_prefix(e, "chain state");
	}
	int r = attest_chain_parse(buf_str(&b), b.len, c, NULL, e);
	buf_deinit(&b);
	return r < 0 ? err_prefix(e, "chain state %s", name) : 0;
}

/* One slot's bytes for c: the JSON line, spaces, a newline as the slot's last byte. */
static void format_slot(const attest_chain *c, char slot[ATTEST_CHAIN_SLOT])
{
	char check[CHAIN_CHECK_HEX + 1], line[ATTEST_CHAIN_SLOT];
	chain_check(c, check);
	int n = snprintf(line, sizeof(line),
	                 "{\"previous\":\"%s\",\"sequence\":%" PRIu64 ",\"check\":\"%s\"}",
	                 c->previous, c->sequence, check);
	memset(slot, ' ', ATTEST_CHAIN_SLOT);
	memcpy(slot, line, (size_t)n);
	slot[ATTEST_CHAIN_SLOT - 1] = '\n';
}

/* Creates (or converts) the file: both slots hold c, written and renamed atomically. */
static int create_file(int dirfd, const char *name, const attest_chain *c, err **e)
{
	_cleanup_free_ char *text = xmalloc(CHAIN_FILE_SIZE);
	format_slot(c, text);
	memcpy(text + ATTEST_CHAIN_SLOT, text, ATTEST_CHAIN_SLOT);
	return write_file_at(dirfd, name, text, CHAIN_FILE_SIZE, 0600, e);
}

int attest_chain_open(int dirfd, const char *name, attest_chain_file **out, attest_chain *c,
                      err **e)
{
	*out = NULL;
	if (attest_chain_load(dirfd, name, c, e) < 0)
		return -1;
	_cleanup_close_ int fd = openat(dirfd, name, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;
	if (fd < 0 && errno != ENOENT)
		return err_set(e, errno, "chain state %s: open", name);
	if (fd >= 0 && fstat(fd, &st) < 0)
		return err_set(e, errno, "chain state %s: stat", name);
	if (fd >= 0 && !S_ISREG(st.st_mode))
		return err_set(e, 0, "chain state %s: not a regular file", name);
	if (fd < 0 || st.st_size != CHAIN_FILE_SIZE) { /* new, or the older form */
		if (create_file(dirfd, name, c, e) < 0)
			return err_prefix(e, "chain state");
		if (fd >= 0)
			close(fd);
		fd = openat(dirfd, name, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			return err_set(e, errno, "chain state %s: open", name);
	}
	_cleanup_free_ char *text = xmalloc(CHAIN_FILE_SIZE + 1);
	ssize_t n = pread(fd, text, CHAIN_FILE_SIZE, 0);
	if (n != CHAIN_FILE_SIZE)
		return err_set(e, n < 0 ? errno : 0, "chain state %s: short read", name);
	text[n] = '\0';
	int newest;
	char *skipped = NULL;
	*c = (attest_chain)ATTEST_CHAIN_INIT;
	if (parse_slots(text, c, &newest, &skipped, e) < 0)
		return err_prefix(e, "chain state %s", name);
	attest_chain_file *f = xmalloc(sizeof(*f));
	*f = (attest_chain_file){steal_fd(&fd), newest, xstrdup(name), skipped};
	*out = f;
	return 0;
}

int attest_chain_store(attest_chain_file *f, const attest_chain *c, err **e)
{
	if (!f)
		return err_set(e, 0, "chain state: not open");
	char slot[ATTEST_CHAIN_SLOT];
	format_slot(c, slot);
	/* a file replaced or removed under the node (a restore, a second instance): saving into
	 * the old inode would look like success and be lost */
	struct stat st;
	if (fstat(f->fd, &st) < 0)
		return err_set(e, errno, "chain state %s: stat", f->name);
	if (st.st_nlink == 0)
		return err_set(
		    e, 0, "chain state %s: the file was removed or replaced while the node runs",
		    f->name);
	int target = !f->newest;
	ssize_t w = pwrite(f->fd, slot, sizeof(slot), (off_t)target * ATTEST_CHAIN_SLOT);
	if (w != (ssize_t)sizeof(slot))
		return err_set(e, w < 0 ? errno : ENOSPC, "chain state %s: write", f->name);
	if (fdatasync(f->fd) < 0)
		return err_set(e, errno, "chain state %s: fdatasync", f->name);
	f->newest = target;
	return 0;
}

attest_chain_file *attest_chain_close(attest_chain_file *f)
{
	if (f) {
		close(f->fd);
		free(f->name);
		free(f->skipped);
		free(f);
	}
	return NULL;
}

const char *attest_chain_skipped(const attest_chain_file *f)
{
	return f ? f->skipped : NULL;
}

void attest_chain_advance(attest_chain *c, const char *attestation_digest, uint64_t sequence)
{
	snprintf(c->previous, sizeof(c->previous), "%s", attestation_digest);
	c->sequence = sequence;
}
