/* The command line's Redis connection (redis.h). */
#include "cli/redis.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/util.h"

static int authenticate(redisContext *c, err **e)
{
	const char *pw = getenv("AISP_REDIS_PASSWORD");
	if (!pw || !*pw)
		return 0;
	const char *user = getenv("AISP_REDIS_USER");
	redisReply *r = user && *user ? redisCommand(c, "AUTH %s %s", user, pw)
	                              : redisCommand(c, "AUTH %s", pw);
	bool ok = r && r->type != REDIS_REPLY_ERROR;
	if (!ok)
		err_set(e, 0, "AUTH: %s", r ? r->str : c->errstr);
	if (r)
		freeReplyObject(r);
	return ok ? 0 : -1;
}

redisContext *cli_redis_connect(const char *addr, int64_t timeout_ms, err **e)
{
	if (!addr || !*addr)
		addr = getenv("AISP_REDIS");
	if (!addr || !*addr)
		addr = CLI_REDIS_DEFAULT;
	_cleanup_free_ char *host = NULL, *path = NULL;
	int port = 0;
	if (addr_split(addr, &host, &port, &path, e) < 0) {
		err_prefix(e, "redis address");
		return NULL;
	}
	struct timeval tv = {5, 0};
	redisContext *c =
	    path ? redisConnectUnixWithTimeout(path, tv) : redisConnectWithTimeout(host, port, tv);
	if (!c || c->err) {
		err_set(e, 0, "redis %s: %s", addr, c ? c->errstr : "out of memory");
		if (c)
			redisFree(c);
		return NULL;
	}
	tv.tv_sec = (time_t)(timeout_ms / 1000);
	tv.tv_usec = (suseconds_t)(timeout_ms % 1000) * 1000;
	if (redisSetTimeout(c, tv) != REDIS_OK || authenticate(c, e) < 0) {
		if (!e || !*e)
			err_set(e, 0, "cannot set a timeout");
		err_prefix(e, "redis %s", addr);
		redisFree(c);
		return NULL;
	}
	return c;
}
