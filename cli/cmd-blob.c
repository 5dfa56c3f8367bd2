/* aisp blob: put a file into the network's blob space and get it back (proto/SKILLS.md,
 * "Blobs"). A blob is named by the SHA-256 of its bytes and stored at aisp:blob:<id> with
 * SET NX and a TTL; every read is bounded (GETRANGE 0 <cap>) and checked against the id, so
 * whoever else can write the key, a reader never takes other bytes for the blob.
 *
 * Exit status: 0 done; 1 refused or failed (missing, over the cap, wrong bytes, Redis);
 * 2 usage or an id that is not a blob id. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <hiredis/hiredis.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/redis.h"
#include "common/buf.h"
#include "common/cleanup.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "proto/proto.h"

#define BLOB_TIMEOUT_MS 30000

DEFINE_CLEANUP_FUNC(redisContext *, redisFree)
DEFINE_CLEANUP_FUNC(redisReply *, freeReplyObject)

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: aisp blob put FILE|- [--ttl SECONDS]   store a blob; prints its id\n"
	        "       aisp blob get ID [-o FILE]             fetch a blob, checking its digest\n"
	        "options: --redis ADDR (else $AISP_REDIS, else %s)\n"
	        "A blob is at most %u bytes; put sets a TTL of --ttl seconds (default %d, at most "
	        "%d) and extends the TTL of a blob already stored.\n",
	        CLI_REDIS_DEFAULT, PROTO_BLOB_MAX, PROTO_BLOB_TTL_S, PROTO_BLOB_TTL_MAX_S);
}

static int fail(const char *what, const err *e)
{
	fprintf(stderr, "aisp blob: %s%s%s\n", what ? what : "", what ? ": " : "", err_msg(e));
	return 1;
}

/* Reads FILE (or stdin for "-"), at most the cap. */
static int read_input(const char *path, buf *out, err **e)
{
	_cleanup_close_ int fd = strcmp(path, "-") ? open(path, O_RDONLY | O_CLOEXEC) : -1;
	if (fd < 0 && strcmp(path, "-"))
		return err_set(e, errno, "%s", path);
	int in = fd >= 0 ? fd : STDIN_FILENO;
	struct stat st;
	if (fstat(in, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size > PROTO_BLOB_MAX)
		return err_set(e, 0, "%s: %lld bytes, over the blob cap of %u", path,
		               (long long)st.st_size, PROTO_BLOB_MAX);
	ssize_t n = read_all(in, out, (size_t)PROTO_BLOB_MAX + 1);
	if (n < 0)
		return err_set(e, errno, "read %s", path);
	if ((size_t)n > PROTO_BLOB_MAX)
		return err_set(e, 0, "%s: over the blob cap of %u bytes", path, PROTO_BLOB_MAX);
	return 0;
}

static int reply_error(redisContext *c, redisReply *r, const char *cmd, err **e)
{
	if (!r)
		return err_set(e, 0, "%s: %s", cmd, c->errstr);
	if (r->type == REDIS_REPLY_ERROR)
		return err_set(e, 0, "%s: %s", cmd, r->str);
	return 0;
}

/* The blob's bytes, read with a bounded GETRANGE. Returns 1 when present, 0 when missing. */
static int fetch(redisContext *c, const char *key, buf *out, err **e)
{
	_cleanup_(freeReplyObjectp) redisReply *r =
	    redisCommand(c, "GETRANGE %s 0 %u", key, PROTO_BLOB_MAX);
	if (reply_error(c, r, "GETRANGE", e) < 0)
		return -1;
	if (r->type != REDIS_REPLY_STRING)
		return err_set(e, 0, "GETRANGE: unexpected reply type %d", r->type);
	buf_append(out, r->str, r->len);
	if (r->len > 0)
		return 1;
	/* GETRANGE of a missing key is "" too: only EXISTS tells the empty blob apart. */
	_cleanup_(freeReplyObjectp) redisReply *x = redisCommand(c, "EXISTS %s", key);
	if (reply_error(c, x, "EXISTS", e) < 0)
		return -1;
	return x->type == REDIS_REPLY_INTEGER && x->integer == 1;
}

/* SET NX; when the key exists, its TTL is extended (EXPIRE GT), and bytes that are not the
 * blob (a key written by someone else) are replaced. */
static int store(redisContext *c, const char *id, const buf *data, long long ttl, err **e)
{
	_cleanup_free_ char *key = proto_blob_key(id);
	_cleanup_(freeReplyObjectp) redisReply *r =
	    redisCommand(c, "SET %s %b NX EX %lld", key, data->data ? (const char *)data->data : "",
	                 data->len, ttl);
	if (reply_error(c, r, "SET", e) < 0)
		return -1;
	if (r->type == REDIS_REPLY_STATUS)
		return 0;
	buf have = BUF_INIT;
	int found = fetch(c, key, &have, e);
	bool same = found == 1 && proto_blob_check(id, have.data, have.len, NULL) == 0;
	buf_deinit(&have);
	if (found < 0)
		return -1;
	if (same) {
		_cleanup_(freeReplyObjectp) redisReply *x =
		    redisCommand(c, "EXPIRE %s %lld GT", key, ttl);
		return reply_error(c, x, "EXPIRE", e);
	}
	fprintf(stderr, "aisp blob: %s held other bytes; replacing them\n", key);
	_cleanup_(freeReplyObjectp) redisReply *u =
	    redisCommand(c, "SET %s %b EX %lld", key, data->data ? (const char *)data->data : "",
	                 data->len, ttl);
	return reply_error(c, u, "SET", e);
}

static int blob_put(const char *addr, const char *path, long long ttl)
{
	_cleanup_err_ err *e = NULL;
	buf data = BUF_INIT;
	if (read_input(path, &data, &e) < 0) {
		buf_deinit(&data);
		return fail(NULL, e);
	}
	char id[PROTO_BLOB_ID_LEN + 1];
	proto_blob_id_of(data.data, data.len, id);
	_cleanup_(redisFreep) redisContext *c = cli_redis_connect(addr, BLOB_TIMEOUT_MS, &e);
	int rc = !c || store(c, id, &data, ttl, &e) < 0 ? fail(NULL, e) : 0;
	buf_deinit(&data);
	if (rc == 0)
		printf("%s\n", id);
	return rc;
}

/* Writes data to FILE through a temporary beside it, renamed when complete. */
static int write_output(const char *file, const buf *data, err **e)
{
	if (!strcmp(file, "-"))
		return write_all(STDOUT_FILENO, data->data, data->len) < 0
		           ? err_set(e, errno, "write stdout")
		           : 0;
	_cleanup_free_ char *copy = xstrdup(file), *copy2 = xstrdup(file);
	const char *dir = dirname(copy), *base = basename(copy2);
	_cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return err_set(e, errno, "%s", dir);
	return write_file_at(dfd, base, data->data, data->len, 0644, e);
}

static int blob_get(const char *addr, const char *id, const char *out)
{
	_cleanup_err_ err *e = NULL;
	if (!proto_blob_id_valid(id)) {
		proto_blob_check(id, NULL, 0, &e);
		fail(NULL, e);
		return 2;
	}
	_cleanup_(redisFreep) redisContext *c = cli_redis_connect(addr, BLOB_TIMEOUT_MS, &e);
	if (!c)
		return fail(NULL, e);
	_cleanup_free_ char *key = proto_blob_key(id);
	buf data = BUF_INIT;
	int found = fetch(c, key, &data, &e);
	int rc = 0;
	if (found == 0)
		err_set(&e, 0, "blob %s is not in Redis (never put, or its TTL ran out)", id);
	if (found <= 0 || proto_blob_check(id, data.data, data.len, &e) < 0 ||
	    write_output(out, &data, &e) < 0)
		rc = fail(NULL, e);
	buf_deinit(&data);
	return rc;
}

int cmd_blob(int argc, char **argv)
{
	static const struct option lopts[] = {
	    {"redis", required_argument, NULL, 'r'},
	    {"ttl", required_argument, NULL, 't'},
	    {"output", required_argument, NULL, 'o'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *addr = NULL, *out = "-";
	int64_t ttl = PROTO_BLOB_TTL_S;
	int c;
	optind = 0;
	while ((c = getopt_long(argc, argv, "r:t:o:h", lopts, NULL)) != -1) {
		if (c == 'r') {
			addr = optarg;
		} else if (c == 'o') {
			out = optarg;
		} else if (c == 't') {
			if (parse_i64(optarg, 1, PROTO_BLOB_TTL_MAX_S, &ttl) < 0) {
				fprintf(stderr, "aisp blob: --ttl: expected 1..%d seconds\n",
				        PROTO_BLOB_TTL_MAX_S);
				return 2;
			}
		} else {
			usage(c == 'h' ? stdout : stderr);
			return c == 'h' ? 0 : 2;
		}
	}
	const char *sub = optind < argc ? argv[optind] : "";
	if (!strcmp(sub, "put") && argc - optind == 2)
		return blob_put(addr, argv[optind + 1], (long long)ttl);
	if (!strcmp(sub, "get") && argc - optind == 2)
		return blob_get(addr, argv[optind + 1], out);
	usage(stderr);
	return 2;
}
