/* The command line's Redis connection (redis.h), with a blocking Sentinel client (aispd's is
 * daemon/redis.c, on the event loop; both follow deploy/REDIS.md). */
#include "cli/redis.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/buf.h"
#include "common/cleanup.h"
#include "common/util.h"
#include "common/xalloc.h"

#define SENTINEL_PREFIX     "sentinel://"
#define SENTINEL_TIMEOUT_MS 1000
#define MAX_SENTINELS       16

DEFINE_CLEANUP_FUNC(redisReply *, freeReplyObject)
#define _cleanup_reply_ _cleanup_(freeReplyObjectp)

static const char *env(const char *name)
{
	const char *v = getenv(name);
	return v && *v ? v : NULL;
}

/* The error of a command that got no reply; a connection closed at once gets a hint. */
static int no_reply(redisContext *c, const char *cmd, err **e)
{
	if (c->err == REDIS_ERR_EOF || (c->err == REDIS_ERR_IO && errno == ECONNRESET))
		return err_set(e, 0,
		               "%s: the connection was closed at once (a TLS sidecar whose TLS "
		               "session to Redis failed: see its log; or a TLS-only Redis reached "
		               "without TLS)",
		               cmd);
	return err_set(e, 0, "%s: %s", cmd, c->errstr[0] ? c->errstr : "no reply");
}

/* AUTH with the user and password in these environment variables, when the password is set. */
static int authenticate(redisContext *c, const char *user_var, const char *pw_var, err **e)
{
	const char *pw = env(pw_var);
	if (!pw)
		return 0;
	const char *user = env(user_var);
	_cleanup_reply_ redisReply *r =
	    user ? redisCommand(c, "AUTH %s %s", user, pw) : redisCommand(c, "AUTH %s", pw);
	if (!r)
		return no_reply(c, "AUTH", e);
	if (r->type == REDIS_REPLY_ERROR)
		return err_set(e, 0, "AUTH: %s", r->str);
	return 0;
}

/* A first command, so that a server that is not there after all is found at connect. */
static int ping(redisContext *c, err **e)
{
	_cleanup_reply_ redisReply *r = redisCommand(c, "PING");
	if (!r)
		return no_reply(c, "PING", e);
	if (r->type == REDIS_REPLY_ERROR)
		return err_set(e, 0, "PING: %s", r->str);
	return 0;
}

static struct timeval ms_tv(int64_t ms)
{
	return (struct timeval){(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
}

/* A connection to addr (host:port or unix:/path), connected within connect_ms, commands
 * timing out after timeout_ms. NULL with *e. */
static redisContext *open_addr(const char *addr, int64_t connect_ms, int64_t timeout_ms, err **e)
{
	_cleanup_free_ char *host = NULL, *path = NULL;
	int port = 0;
	if (addr_split(addr, &host, &port, &path, e) < 0)
		return NULL;
	struct timeval tv = ms_tv(connect_ms);
	redisContext *c =
	    path ? redisConnectUnixWithTimeout(path, tv) : redisConnectWithTimeout(host, port, tv);
	if (!c || c->err) {
		err_set(e, 0, "%s", c ? c->errstr : "out of memory");
		if (c)
			redisFree(c);
		return NULL;
	}
	if (redisSetTimeout(c, ms_tv(timeout_ms)) != REDIS_OK) {
		err_set(e, 0, "cannot set a timeout");
		redisFree(c);
		return NULL;
	}
	return c;
}

/* The local address for a master Sentinel named (announced host:port), or NULL with *e. */
static char *map_master(const char *announced, err **e)
{
	const char *m = env("AISP_REDIS_ADDRESS_MAP");
	if (!m)
		return xstrdup(announced);
	char **pairs = addr_list_parse(m, true, 64, e);
	if (!pairs)
		return err_prefix(e, "$AISP_REDIS_ADDRESS_MAP"), NULL;
	char *local = NULL;
	for (size_t i = 0; pairs[i]; i += 2)
		if (!strcasecmp(pairs[i], announced))
			local = xstrdup(pairs[i + 1]);
	addr_list_free(pairs);
	if (!local)
		err_set(
		    e, 0,
		    "Sentinel names the master %s, which has no tunnel in $AISP_REDIS_ADDRESS_MAP "
		    "(not connecting around it)",
		    announced);
	return local;
}

/* Asks one sentinel for the master's announced host:port. NULL with *e. */
static char *ask_sentinel(const char *sentinel, const char *name, err **e)
{
	redisContext *c = open_addr(sentinel, SENTINEL_TIMEOUT_MS, SENTINEL_TIMEOUT_MS, e);
	if (!c)
		return NULL;
	char *addr = NULL;
	if (authenticate(c, "AISP_SENTINEL_USER", "AISP_SENTINEL_PASSWORD", e) == 0) {
		_cleanup_reply_ redisReply *r =
		    redisCommand(c, "SENTINEL get-master-addr-by-name %s", name);
		if (!r)
			err_set(e, 0, "%s", c->errstr);
		else if (r->type == REDIS_REPLY_ERROR)
			err_set(e, 0, "%s", r->str);
		else if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
		         r->element[0]->type == REDIS_REPLY_STRING &&
		         r->element[1]->type == REDIS_REPLY_STRING)
			addr = strchr(r->element[0]->str, ':')
			           ? xasprintf("[%s]:%s", r->element[0]->str, r->element[1]->str)
			           : xasprintf("%s:%s", r->element[0]->str, r->element[1]->str);
		else
			err_set(e, 0, "does not know the master \"%s\"", name);
	}
	redisFree(c);
	return addr;
}

/* sentinel://h:p,h:p/NAME: the master's local address from the first sentinel that names it.
 * NULL with *e listing what each sentinel said. */
static char *resolve(const char *url, err **e)
{
	const char *list = url + strlen(SENTINEL_PREFIX);
	const char *slash = strrchr(list, '/');
	if (!slash || !slash[1])
		return err_set(e, 0, "%s: expected sentinel://host:port,.../MASTER", url), NULL;
	_cleanup_free_ char *hosts = xstrndup(list, (size_t)(slash - list));
	const char *name = slash + 1;
	char **sentinels = addr_list_parse(hosts, false, MAX_SENTINELS, e);
	if (!sentinels)
		return err_prefix(e, "%s", url), NULL;
	buf why = BUF_INIT;
	char *addr = NULL;
	for (size_t i = 0; sentinels[i] && !addr; i++) {
		_cleanup_err_ err *se = NULL;
		addr = ask_sentinel(sentinels[i], name, &se);
		if (!addr)
			buf_appendf(&why, "%ssentinel %s: %s", why.len ? "; " : "", sentinels[i],
			            err_msg(se));
	}
	addr_list_free(sentinels);
	char *local = NULL;
	if (addr)
		local = map_master(addr, e);
	else
		err_set(e, 0, "no sentinel named the master \"%s\" (%s)", name, buf_str(&why));
	free(addr);
	buf_deinit(&why);
	return local;
}

/* With Sentinel: the server must say it is the master (a failover may be under way). */
static int check_master(redisContext *c, err **e)
{
	_cleanup_reply_ redisReply *r = redisCommand(c, "ROLE");
	if (!r)
		return no_reply(c, "ROLE", e);
	const char *role = r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
	                           r->element[0]->type == REDIS_REPLY_STRING
	                       ? r->element[0]->str
	                       : NULL;
	if (role && !strcmp(role, "master"))
		return 0;
	return err_set(e, 0,
	               "not the master Sentinel named (ROLE: %s); a failover may be under way, "
	               "try again",
	               role                           ? role
	               : r->type == REDIS_REPLY_ERROR ? r->str
	                                              : "unexpected reply");
}

redisContext *cli_redis_connect(const char *addr, int64_t timeout_ms, err **e)
{
	if (!addr || !*addr)
		addr = env("AISP_REDIS");
	if (!addr)
		addr = CLI_REDIS_DEFAULT;
	bool sentinel = !strncmp(addr, SENTINEL_PREFIX, strlen(SENTINEL_PREFIX));
	_cleanup_free_ char *master = sentinel ? resolve(addr, e) : xstrdup(addr);
	if (!master)
		return NULL;
	redisContext *c = open_addr(master, 5000, timeout_ms, e);
	if (c && (authenticate(c, "AISP_REDIS_USER", "AISP_REDIS_PASSWORD", e) < 0 ||
	          (sentinel ? check_master(c, e) : ping(c, e)) < 0)) {
		redisFree(c);
		c = NULL;
	}
	if (!c && sentinel && strcmp(master, addr))
		err_prefix(e, "redis %s (master of %s)", master, addr);
	else if (!c)
		err_prefix(e, "redis %s", addr);
	return c;
}
