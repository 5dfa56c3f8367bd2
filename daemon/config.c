/* aispd's configuration (config.h): defaults in one function, an inih handler that parses
 * every number strictly, then a validation pass over the whole file.
 *
 * Every problem is reported, not only the first, each with its file:line: inih reads the text
 * through our own line reader, which counts lines (the handler learns its line from it; Debian's
 * inih is built without INI_HANDLER_LINENO), strips leading blanks (so an indented line is an
 * ordinary line and never an inih continuation line, which would silently append to the
 * previous value), refuses lines longer than inih's buffer (which would split them into two
 * lines), and notices the lines inih skipped as syntax errors (it never calls the handler for
 * them and reports only the first). A key set twice is an error naming both lines. */
#include "daemon/config.h"
#include "sandbox/sandbox.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/cleanup.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xalloc.h"

static void set_str(char **dst, const char *v)
{
	free(*dst);
	*dst = xstrdup(v);
}

static void free_strv(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

/* Splits on commas and/or spaces; empty items dropped. Returns a NULL-terminated array. */
static char **split_list(const char *s, const char *seps, size_t *n_out)
{
	size_t n = 0;
	char **v = xcalloc(1, sizeof(*v));
	_cleanup_free_ char *copy = xstrdup(s);
	char *save = NULL;
	for (char *tok = strtok_r(copy, seps, &save); tok; tok = strtok_r(NULL, seps, &save)) {
		v = xreallocarray(v, n + 2, sizeof(*v));
		v[n++] = xstrdup(tok);
		v[n] = NULL;
	}
	if (n_out)
		*n_out = n;
	return v;
}

void config_defaults(config *c)
{
	memset(c, 0, sizeof(*c));
	secrets_config_defaults(&c->secrets);
	proxy_config_defaults(&c->proxy);
	char host[256] = "node";
	if (gethostname(host, sizeof(host) - 1) < 0 || !host[0])
		strcpy(host, "node");
	host[sizeof(host) - 1] = '\0';
	c->node_id = xstrdup(host);
	c->slots = 4;
	c->state_dir = xstrdup("/var/lib/aisp/state");
	c->run_dir = xstrdup("/run/aisp");
	c->key_path = xstrdup("/etc/aisp/node-key/private.pem");
	c->create_key = false;
	c->log_level = LOG_LVL_INFO;
	c->agent_path = xstrdup("/usr/libexec/aisp/aisp-agent");
	c->heartbeat_ms = 2000;
	c->drain_s = 30;

	c->redis_address = xstrdup("127.0.0.1:6379");
	c->redis_timeout_ms = 2000;
	c->redis_wait_timeout_ms = 1000;
	c->result_ttl_s = 86400;
	c->reclaim_ms = 30000;
	c->max_deliveries = 3;
	c->block_ms = 1000;

	c->image_store = xstrdup("/var/lib/aisp/images");
	c->image_default = xstrdup("default");
	c->skill_store = xstrdup(SANDBOX_SKILL_STORE_DEFAULT);

	c->runtime_default = xstrdup("runsc");
	c->enabled = split_list("runsc,runc", ", ", &c->n_enabled);

	proto_limits_default(&c->limits_default);
	proto_limits_default(&c->limits_max);

	c->pool_max_live = 32;
	c->pool_max_creating = 2;
	c->pool_max_age_s = 600;
	c->pool_max_used = 16;

	c->http_listen = xstrdup("127.0.0.1:9464");
	attest_trust_config_init(&c->trust);
}

static void runtime_deinit(config_runtime *r)
{
	free(r->name);
	free(r->path);
	free(r->kind);
	free(r->platform);
	free_strv(r->flags);
}

void config_deinit(config *c)
{
	secrets_config_deinit(&c->secrets);
	proxy_config_deinit(&c->proxy);
	free(c->path);
	for (size_t i = 0; i < c->n_lines; i++) {
		free(c->lines[i].section);
		free(c->lines[i].key);
	}
	free(c->lines);
	free_strv(c->errors);
	free(c->node_id);
	free(c->state_dir);
	free(c->run_dir);
	free(c->key_path);
	free(c->agent_path);
	free(c->redis_address);
	addr_list_free(c->redis_sentinels);
	free(c->redis_master_name);
	free(c->redis_sentinel_user);
	free(c->redis_sentinel_password);
	addr_list_free(c->redis_address_map);
	free(c->redis_password);
	free(c->redis_user);
	free(c->image_store);
	free(c->image_default);
	free(c->skill_store);
	for (size_t i = 0; i < c->n_runtimes; i++)
		runtime_deinit(&c->runtimes[i]);
	free(c->runtimes);
	free(c->runtime_default);
	free_strv(c->enabled);
	for (size_t i = 0; i < c->n_targets; i++) {
		free(c->targets[i].runtime);
		free(c->targets[i].image);
		free(c->targets[i].lang);
	}
	free(c->targets);
	free(c->http_listen);
	free(c->age_key_path);
	attest_trust_config_deinit(&c->trust);
	free(c->llm_base_url);
	free(c->llm_api_key_file);
	free_strv(c->llm_models);
	free(c->llm_ca_file);
	for (size_t i = 0; i < c->n_llm_prices; i++)
		free(c->llm_prices[i].model);
	free(c->llm_prices);
	memset(c, 0, sizeof(*c));
}

/* ---- problems and lines ---- */

static void add_error(config *c, char *owned)
{
	c->errors = xreallocarray(c->errors, c->n_errors + 2, sizeof(*c->errors));
	c->errors[c->n_errors++] = owned;
	c->errors[c->n_errors] = NULL;
}

static void add_line(config *c, const char *section, const char *key, int line)
{
	c->lines = xreallocarray(c->lines, c->n_lines + 1, sizeof(*c->lines));
	c->lines[c->n_lines++] = (config_line){
	    .section = xstrdup(section), .key = key ? xstrdup(key) : NULL, .line = line};
}

int config_line_of(const config *c, const char *section, const char *key)
{
	for (size_t i = 0; i < c->n_lines; i++) {
		const config_line *l = &c->lines[i];
		if (!strcmp(l->section, section) &&
		    (key ? l->key && !strcmp(l->key, key) : !l->key))
			return l->line;
	}
	return 0;
}

char *config_loc(const config *c, const char *section, const char *key)
{
	int line = key ? config_line_of(c, section, key) : 0;
	if (!line)
		line = config_line_of(c, section, NULL);
	return line && c->path ? xasprintf("%s:%d", c->path, line) : NULL;
}

/* The parse state. The reader hands inih one line at a time and counts them. */
enum line_kind { LINE_BLANK, LINE_SECTION, LINE_KEY };
struct parse_ctx {
	config *c;
	const char *name;
	const char *cur, *end; /* the text not read yet */
	int line;              /* the line inih is parsing */
	enum line_kind kind;
	bool handled;           /* the handler was called for this LINE_KEY line */
	bool failed;            /* a problem was reported on this line */
	bool redis_address_set; /* [redis] address was given (sentinels are the alternative) */
};

static int fail(struct parse_ctx *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct parse_ctx *p, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	_cleanup_free_ char *m = xvasprintf(fmt, ap);
	va_end(ap);
	add_error(p->c, xasprintf("%s:%d: %s", p->name, p->line, m));
	p->failed = true;
	return 0;
}

/* A line that was neither blank, a comment, a section nor handed to the handler: inih found no
 * "=" or ":" in it. */
static void finish_line(struct parse_ctx *p)
{
	if (p->kind == LINE_KEY && !p->handled && !p->failed)
		fail(p, "syntax error (expected [section] or key = value)");
	p->kind = LINE_BLANK;
}

/* "[name]" (inih keeps at most 49 bytes of a section name). */
static void read_section(struct parse_ctx *p, const char *s, size_t len)
{
	const char *close = memchr(s, ']', len);
	if (!close)
		return; /* inih reports it: a LINE_KEY line it does not hand over */
	size_t n = (size_t)(close - s - 1);
	if (n > 49) {
		fail(p, "section name longer than 49 bytes");
		return;
	}
	p->kind = LINE_SECTION;
	_cleanup_free_ char *name = xstrndup(s + 1, n);
	add_line(p->c, name, NULL, p->line);
}

/* inih's ini_reader: the next line into str (num bytes), without its leading blanks. */
static char *reader(char *str, int num, void *stream)
{
	struct parse_ctx *p = stream;
	finish_line(p);
	if (p->cur >= p->end)
		return NULL;
	const char *s = p->cur, *nl = memchr(s, '\n', (size_t)(p->end - s));
	size_t len = nl ? (size_t)(nl - s) : (size_t)(p->end - s);
	p->cur = nl ? nl + 1 : p->end;
	p->line++;
	p->handled = p->failed = false;
	if (p->line == 1 && len >= 3 && !memcmp(s, "\xEF\xBB\xBF", 3)) { /* a UTF-8 BOM */
		s += 3;
		len -= 3;
	}
	while (len && isspace((unsigned char)*s)) {
		s++;
		len--;
	}
	if (memchr(s, '\0', len)) {
		fail(p, "NUL byte in the line");
		len = 0;
	} else if (len + 2 > (size_t)num) {
		fail(p, "line longer than %d bytes", num - 2);
		len = 0;
	}
	memcpy(str, s, len);
	memcpy(str + len, "\n", 2);
	if (len && *s == '[')
		read_section(p, s, len);
	else if (len && *s != ';' && *s != '#')
		p->kind = LINE_KEY;
	return str;
}

static int num(struct parse_ctx *p, const char *sec, const char *key, const char *v, int64_t min,
               int64_t max, int64_t *out)
{
	size_t len = strlen(v), sign = v[0] == '-';
	if (len <= sign || strspn(v + sign, "0123456789") != len - sign)
		return fail(p, "[%s] %s = \"%s\": not an integer", sec, key, v), -1;
	if (parse_i64(v, min, max, out) < 0) {
		if (errno == ERANGE)
			fail(p, "[%s] %s = \"%s\": out of range %lld..%lld", sec, key, v,
			     (long long)min, (long long)max);
		else
			fail(p, "[%s] %s = \"%s\": not an integer", sec, key, v);
		return -1;
	}
	return 0;
}

static int boolean(struct parse_ctx *p, const char *sec, const char *key, const char *v, bool *out)
{
	if (!strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "1") || !strcmp(v, "on"))
		*out = true;
	else if (!strcmp(v, "false") || !strcmp(v, "no") || !strcmp(v, "0") || !strcmp(v, "off"))
		*out = false;
	else
		return fail(p, "[%s] %s = \"%s\": expected true or false", sec, key, v), -1;
	return 0;
}

/* [limits] <wire> = V sets the default, max_<wire> = V the maximum (proto/proto.h's table). */
static int handle_limits(struct parse_ctx *p, const char *key, const char *v)
{
	proto_limits *l = &p->c->limits_default;
	const char *k = key;
	if (!strncmp(key, "max_", 4)) {
		l = &p->c->limits_max;
		k = key + 4;
	}
	for (size_t i = 0; i < PROTO_LIMIT_COUNT; i++) {
		const proto_limit_field *f = &proto_limit_fields[i];
		if (strcmp(k, f->wire))
			continue;
		if (f->unit > 0) {
			int64_t n;
			if (num(p, "limits", key, v, 1, f->cfg_max, &n) < 0)
				return 0;
			*proto_limit_at(l, f) = n * f->unit;
			return 1;
		}
		int64_t milli;
		if (proto_limit_parse(f, v, &milli, NULL) < 0 || milli > f->cfg_max * 1000) {
			_cleanup_free_ char *lo = proto_milli_str(f->min);
			return fail(p,
			            "[limits] %s = \"%s\": expected a number from %s to %lld with "
			            "at most 3 decimals (like 2 or 0.5)",
			            key, v, lo, (long long)f->cfg_max);
		}
		*proto_limit_at(l, f) = milli;
		return 1;
	}
	return fail(p, "[limits] unknown key \"%s\"", key);
}

static config_runtime *runtime_get(config *c, const char *name)
{
	for (size_t i = 0; i < c->n_runtimes; i++)
		if (!strcmp(c->runtimes[i].name, name))
			return &c->runtimes[i];
	c->runtimes = xreallocarray(c->runtimes, c->n_runtimes + 1, sizeof(*c->runtimes));
	config_runtime *r = &c->runtimes[c->n_runtimes++];
	memset(r, 0, sizeof(*r));
	r->name = xstrdup(name);
	return r;
}

static bool name_ok(const char *s)
{
	size_t n = strlen(s);
	return n > 0 && n <= 64 &&
	       strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

static int handle_runtime(struct parse_ctx *p, const char *name, const char *key, const char *v)
{
	if (!name_ok(name))
		return fail(p, "[runtime.%s]: invalid runtime name", name);
	config_runtime *r = runtime_get(p->c, name);
	if (!strcmp(key, "path")) {
		if (v[0] != '/')
			return fail(p, "[runtime.%s] path = \"%s\": must be absolute", name, v);
		set_str(&r->path, v);
	} else if (!strcmp(key, "kind")) {
		if (strcmp(v, "runsc") && strcmp(v, "runc") && strcmp(v, "oci"))
			return fail(p, "[runtime.%s] kind = \"%s\": expected runsc, runc or oci",
			            name, v);
		set_str(&r->kind, v);
	} else if (!strcmp(key, "platform")) {
		/* gVisor's platforms; which of them the installed runsc has is checked at start */
		if (strcmp(v, "ptrace") && strcmp(v, "systrap") && strcmp(v, "kvm"))
			return fail(
			    p, "[runtime.%s] platform = \"%s\": expected ptrace, systrap or kvm",
			    name, v);
		set_str(&r->platform, v);
	} else if (!strcmp(key, "flags")) {
		free_strv(r->flags);
		r->flags = split_list(v, " \t", NULL);
	} else {
		return fail(p, "[runtime.%s] unknown key \"%s\"", name, key);
	}
	return 1;
}

static int handle_pool(struct parse_ctx *p, const char *key, const char *v)
{
	config *c = p->c;
	if (!strcmp(key, "max_live"))
		return num(p, "pool", key, v, 1, 4096, &c->pool_max_live) == 0;
	if (!strcmp(key, "max_creating"))
		return num(p, "pool", key, v, 1, 256, &c->pool_max_creating) == 0;
	if (!strcmp(key, "max_age_s"))
		return num(p, "pool", key, v, 0, 86400 * 30, &c->pool_max_age_s) == 0;
	if (!strcmp(key, "max_used"))
		return num(p, "pool", key, v, 0, 4096, &c->pool_max_used) == 0;
	/* runtime/image/lang = N */
	_cleanup_free_ char *copy = xstrdup(key);
	char *s1 = strchr(copy, '/');
	char *s2 = s1 ? strchr(s1 + 1, '/') : NULL;
	if (!s1 || !s2 || strchr(s2 + 1, '/'))
		return fail(p, "[pool] unknown key \"%s\" (targets are runtime/image/lang = N)",
		            key);
	*s1 = *s2 = '\0';
	if (!name_ok(copy) || !name_ok(s1 + 1) || !name_ok(s2 + 1))
		return fail(p, "[pool] \"%s\": invalid runtime, image or language name", key);
	int64_t n;
	if (num(p, "pool", key, v, 0, 1024, &n) < 0)
		return 0;
	c->targets = xreallocarray(c->targets, c->n_targets + 1, sizeof(*c->targets));
	c->targets[c->n_targets++] = (config_pool_target){.runtime = xstrdup(copy),
	                                                  .image = xstrdup(s1 + 1),
	                                                  .lang = xstrdup(s2 + 1),
	                                                  .warm = n,
	                                                  .line = p->line};
	return 1;
}

static int handle_node(struct parse_ctx *p, const char *key, const char *v)
{
	config *c = p->c;
	if (!strcmp(key, "id")) {
		if (!name_ok(v))
			return fail(p, "[node] id = \"%s\": expected [A-Za-z0-9._-]{1,64}", v);
		set_str(&c->node_id, v);
	} else if (!strcmp(key, "slots")) {
		return num(p, "node", key, v, 1, 1024, &c->slots) == 0;
	} else if (!strcmp(key, "state_dir") || !strcmp(key, "run_dir") || !strcmp(key, "key") ||
	           !strcmp(key, "agent") || !strcmp(key, "age_key")) {
		if (v[0] != '/')
			return fail(p, "[node] %s = \"%s\": must be an absolute path", key, v);
		char **dst = !strcmp(key, "state_dir") ? &c->state_dir
		             : !strcmp(key, "run_dir") ? &c->run_dir
		             : !strcmp(key, "key")     ? &c->key_path
		             : !strcmp(key, "age_key") ? &c->age_key_path
		                                       : &c->agent_path;
		set_str(dst, v);
	} else if (!strcmp(key, "create_key")) {
		return boolean(p, "node", key, v, &c->create_key) == 0;
	} else if (!strcmp(key, "log_level")) {
		int l = log_level_parse(v);
		if (l < 0)
			return fail(
			    p, "[node] log_level = \"%s\": expected debug, info, warn or error", v);
		c->log_level = l;
	} else if (!strcmp(key, "heartbeat_ms")) {
		return num(p, "node", key, v, 100, 600000, &c->heartbeat_ms) == 0;
	} else if (!strcmp(key, "drain_s")) {
		return num(p, "node", key, v, 0, 86400, &c->drain_s) == 0;
	} else {
		return fail(p, "[node] unknown key \"%s\"", key);
	}
	return 1;
}

/* sentinels = host:port, ... and address_map = announced->local, ... */
static int redis_list(struct parse_ctx *p, const char *key, const char *v, bool pairs, char ***dst)
{
	err *e = NULL;
	char **list = addr_list_parse(v, pairs, pairs ? 64 : CONFIG_MAX_SENTINELS, &e);
	if (!list) {
		fail(p, "[redis] %s: %s", key, err_msg(e));
		err_free(e);
		return 0;
	}
	addr_list_free(*dst);
	*dst = list;
	return 1;
}

static int handle_redis(struct parse_ctx *p, const char *key, const char *v)
{
	config *c = p->c;
	if (!strcmp(key, "address")) {
		_cleanup_free_ char *h = NULL, *u = NULL;
		int port;
		err *e = NULL;
		if (c->redis_sentinels)
			return fail(p, "[redis] address: sentinels are set; they are alternatives");
		if (addr_split(v, &h, &port, &u, &e) < 0) {
			fail(p, "[redis] address: %s", err_msg(e));
			err_free(e);
			return 0;
		}
		set_str(&c->redis_address, v);
		p->redis_address_set = true;
	} else if (!strcmp(key, "sentinels")) {
		if (p->redis_address_set)
			return fail(p, "[redis] sentinels: address is set; they are alternatives");
		return redis_list(p, key, v, false, &c->redis_sentinels);
	} else if (!strcmp(key, "master_name")) {
		if (!name_ok(v))
			return fail(
			    p, "[redis] master_name = \"%s\": expected [A-Za-z0-9._-]{1,64}", v);
		set_str(&c->redis_master_name, v);
	} else if (!strcmp(key, "sentinel_user")) {
		set_str(&c->redis_sentinel_user, v);
	} else if (!strcmp(key, "sentinel_password")) {
		set_str(&c->redis_sentinel_password, v);
	} else if (!strcmp(key, "address_map")) {
		return redis_list(p, key, v, true, &c->redis_address_map);
	} else if (!strcmp(key, "password")) {
		set_str(&c->redis_password, v);
	} else if (!strcmp(key, "user")) {
		set_str(&c->redis_user, v);
	} else if (!strcmp(key, "timeout_ms")) {
		return num(p, "redis", key, v, 10, 600000, &c->redis_timeout_ms) == 0;
	} else if (!strcmp(key, "result_ttl_s")) {
		return num(p, "redis", key, v, 1, 365LL * 86400, &c->result_ttl_s) == 0;
	} else if (!strcmp(key, "reclaim_ms")) {
		return num(p, "redis", key, v, 300, 86400000, &c->reclaim_ms) == 0;
	} else if (!strcmp(key, "max_deliveries")) {
		return num(p, "redis", key, v, 1, 1000, &c->max_deliveries) == 0;
	} else if (!strcmp(key, "block_ms")) {
		return num(p, "redis", key, v, 10, 60000, &c->block_ms) == 0;
	} else if (!strcmp(key, "wait_replicas")) {
		return num(p, "redis", key, v, 0, 64, &c->redis_wait_replicas) == 0;
	} else if (!strcmp(key, "wait_timeout_ms")) {
		return num(p, "redis", key, v, 1, 60000, &c->redis_wait_timeout_ms) == 0;
	} else if (!strcmp(key, "tls_sidecar")) {
		return boolean(p, "redis", key, v, &c->redis_tls_sidecar) == 0;
	} else {
		return fail(p, "[redis] unknown key \"%s\"", key);
	}
	return 1;
}

/* The [redis] checks that need the whole section. Returns 0 or -1 with *e. */
static int validate_redis(const config *c, const char *name, err **e)
{
	if (c->redis_sentinels && !c->redis_master_name)
		return err_set(e, 0, "%s: [redis] sentinels need master_name", name);
	if (!c->redis_sentinels && c->redis_master_name)
		return err_set(e, 0, "%s: [redis] master_name needs sentinels", name);
	if (!c->redis_sentinels && c->redis_address_map)
		return err_set(e, 0, "%s: [redis] address_map needs sentinels", name);
	if (c->redis_wait_replicas > 0 && c->redis_wait_timeout_ms * 2 > c->redis_timeout_ms)
		return err_set(
		    e, 0,
		    "%s: [redis] wait_timeout_ms (%lld) must be at most half of timeout_ms "
		    "(%lld): commands queued behind a WAIT would time out",
		    name, (long long)c->redis_wait_timeout_ms, (long long)c->redis_timeout_ms);
	if (c->redis_tls_sidecar && c->redis_sentinels && !c->redis_address_map)
		return err_set(e, 0,
		               "%s: [redis] tls_sidecar with sentinels needs address_map (the "
		               "sidecar's tunnel to every Redis server Sentinel may name)",
		               name);
	return 0;
}

static int handle_http(struct parse_ctx *p, const char *key, const char *v)
{
	if (strcmp(key, "listen"))
		return fail(p, "[http] unknown key \"%s\"", key);
	if (v[0]) {
		_cleanup_free_ char *h = NULL, *u = NULL;
		int port;
		err *e = NULL;
		if (addr_split(v, &h, &port, &u, &e) < 0 || u) {
			fail(p, "[http] listen = \"%s\": expected host:port", v);
			err_free(e);
			return 0;
		}
	}
	set_str(&p->c->http_listen, v);
	return 1;
}

/* [trust] (attest/TRUST.md, "Configuration"). */
static int handle_trust(struct parse_ctx *p, const char *key, const char *v)
{
	err *e = NULL;
	if (attest_trust_config_set(&p->c->trust, key, v, &e) < 0) {
		fail(p, "[trust] %s", err_msg(e));
		err_free(e);
		return 0;
	}
	return 1;
}

/* ---- [llm] and [cost] (chains, proto/CHAINS.md) ---- */

/* USD as decimal text ("0.15") in units of 10^-frac USD, at most max; -1 after fail(). */
static int usd(struct parse_ctx *p, const char *sec, const char *key, const char *v, int frac,
               int64_t max, int64_t *out)
{
	if (proto_decimal_parse(v, frac, out) < 0 || *out > max)
		return fail(p,
		            "[%s] %s = \"%s\": expected a price in USD, at most %d decimals (like "
		            "0.15)",
		            sec, key, v, frac),
		       -1;
	return 0;
}

/* One "model:prompt_usd_per_mtok:completion_usd_per_mtok" (the model may hold ':'). */
static int price(struct parse_ctx *p, const char *item, config_price *out)
{
	_cleanup_free_ char *copy = xstrdup(item);
	char *c2 = strrchr(copy, ':');
	char *c1 = c2 && c2 != copy ? memrchr(copy, ':', (size_t)(c2 - copy)) : NULL;
	if (!c1 || c1 == copy)
		return fail(p,
		            "[llm] prices: \"%s\": expected model:prompt_usd:completion_usd per "
		            "million tokens",
		            item),
		       -1;
	*c1 = *c2 = '\0';
	if (usd(p, "llm", "prices", c1 + 1, 6, 1000000000000LL, &out->prompt_per_mtok) < 0 ||
	    usd(p, "llm", "prices", c2 + 1, 6, 1000000000000LL, &out->completion_per_mtok) < 0)
		return -1;
	out->model = xstrdup(copy);
	return 0;
}

static int handle_prices(struct parse_ctx *p, const char *v)
{
	config *c = p->c;
	size_t n = 0;
	char **items = split_list(v, ", ", &n);
	c->llm_prices = xcalloc(n + 1, sizeof(*c->llm_prices));
	int ok = 1;
	for (size_t i = 0; ok && i < n; i++)
		ok = price(p, items[i], &c->llm_prices[c->n_llm_prices]) == 0 &&
		     (c->n_llm_prices++, 1);
	free_strv(items);
	return ok;
}

static int handle_llm_path(struct parse_ctx *p, const char *key, const char *v, char **dst)
{
	if (v[0] != '/')
		return fail(p, "[llm] %s = \"%s\": must be an absolute path", key, v);
	set_str(dst, v);
	return 1;
}

static int handle_llm(struct parse_ctx *p, const char *key, const char *v)
{
	config *c = p->c;
	static const struct {
		const char *key;
		int64_t min, max;
		size_t off;
	} nums[] = {
	    {"max_tokens", 1, PROTO_MAX_TOKENS_MAX, offsetof(config, llm_max_tokens)},
	    {"connect_timeout_ms", 1, 600000, offsetof(config, llm_connect_timeout_ms)},
	    {"timeout_ms", 1, 3600000, offsetof(config, llm_timeout_ms)},
	    {"max_attempts", 1, 20, offsetof(config, llm_max_attempts)},
	    {"retry_budget_ms", 1, 3600000, offsetof(config, llm_retry_budget_ms)},
	    {"retry_base_ms", 1, 60000, offsetof(config, llm_retry_base_ms)},
	    {"max_response_bytes", 1024, 16 << 20, offsetof(config, llm_max_response_bytes)},
	};
	c->llm_enabled = true;
	for (size_t i = 0; i < ARRAY_SIZE(nums); i++)
		if (!strcmp(key, nums[i].key))
			return num(p, "llm", key, v, nums[i].min, nums[i].max,
			           (int64_t *)(void *)((char *)c + nums[i].off)) == 0;
	if (!strcmp(key, "base_url"))
		return set_str(&c->llm_base_url, v), 1;
	if (!strcmp(key, "api_key_file"))
		return handle_llm_path(p, key, v, &c->llm_api_key_file);
	if (!strcmp(key, "ca_file"))
		return handle_llm_path(p, key, v, &c->llm_ca_file);
	if (!strcmp(key, "models")) {
		free_strv(c->llm_models);
		c->llm_models = split_list(v, ", ", &c->n_llm_models);
		return 1;
	}
	if (!strcmp(key, "prices"))
		return handle_prices(p, v);
	if (!strcmp(key, "allow_insecure_http"))
		return boolean(p, "llm", key, v, &c->llm_allow_http) == 0;
	if (!strcmp(key, "allow_private_addresses"))
		return boolean(p, "llm", key, v, &c->llm_allow_private) == 0;
	return fail(p, "[llm] unknown key \"%s\"", key);
}

static int handle_chains(struct parse_ctx *p, const char *section, const char *key, const char *v)
{
	if (!strcmp(section, "llm"))
		return handle_llm(p, key, v);
	if (!strcmp(key, "cpu_second_usd"))
		return usd(p, "cost", key, v, 9, 1000000000000LL, &p->c->cost_cpu_second_nusd) == 0;
	if (!strcmp(key, "gib_second_usd"))
		return usd(p, "cost", key, v, 9, 1000000000000LL, &p->c->cost_gib_second_nusd) == 0;
	return fail(p, "[cost] unknown key \"%s\"", key);
}

/* [llm] as a whole: what it needs, and http only when the tests' key says so. */
static int validate_llm(const config *c, const char *name, err **e)
{
	if (!c->llm_enabled)
		return 0;
	if (!c->llm_api_key_file)
		return err_set(e, 0, "%s: [llm] needs api_key_file", name);
	if (!c->n_llm_models)
		return err_set(e, 0, "%s: [llm] needs models (the models steps may ask for)", name);
	if (c->llm_base_url && !strncmp(c->llm_base_url, "http://", 7) && !c->llm_allow_http)
		return err_set(
		    e, 0,
		    "%s: [llm] base_url is http://: it needs allow_insecure_http = true, "
		    "which is for tests only",
		    name);
	return 0;
}

/* [skills] store = DIR */
static int handle_skills(struct parse_ctx *p, const char *key, const char *v)
{
	config *c = p->c;
	if (strcmp(key, "store"))
		return fail(p, "[skills] unknown key \"%s\"", key);
	if (v[0] != '/')
		return fail(p, "[skills] store = \"%s\": must be absolute", v);
	set_str(&c->skill_store, v);
	return 1;
}

static int handle_services(struct parse_ctx *p, const char *section, const char *key,
                           const char *v);

static int handler(void *user, const char *section, const char *key, const char *v)
{
	struct parse_ctx *p = user;
	config *c = p->c;
	p->handled = true;
	int first = config_line_of(c, section, key);
	if (first)
		return fail(p, "[%s] %s: set twice (first on line %d)", section, key, first);
	add_line(c, section, key, p->line);
	if (!section[0])
		return fail(p, "\"%s\" is outside any [section]", key);
	if (!strcmp(section, "node"))
		return handle_node(p, key, v);
	if (!strcmp(section, "redis"))
		return handle_redis(p, key, v);
	if (!strcmp(section, "images")) {
		if (!strcmp(key, "store")) {
			if (v[0] != '/')
				return fail(p, "[images] store = \"%s\": must be absolute", v);
			set_str(&c->image_store, v);
		} else if (!strcmp(key, "default")) {
			set_str(&c->image_default, v);
		} else {
			return fail(p, "[images] unknown key \"%s\"", key);
		}
		return 1;
	}
	if (!strcmp(section, "skills"))
		return handle_skills(p, key, v);
	if (!strncmp(section, "runtime.", 8))
		return handle_runtime(p, section + 8, key, v);
	if (!strcmp(section, "runtimes")) {
		if (!strcmp(key, "default")) {
			set_str(&c->runtime_default, v);
		} else if (!strcmp(key, "enabled")) {
			free_strv(c->enabled);
			c->enabled = split_list(v, ", ", &c->n_enabled);
		} else {
			return fail(p, "[runtimes] unknown key \"%s\"", key);
		}
		return 1;
	}
	if (!strcmp(section, "limits"))
		return handle_limits(p, key, v);
	if (!strcmp(section, "trust"))
		return handle_trust(p, key, v);
	if (!strcmp(section, "llm") || !strcmp(section, "cost"))
		return handle_chains(p, section, key, v);
	if (!strcmp(section, "pool"))
		return handle_pool(p, key, v);
	if (!strcmp(section, "http"))
		return handle_http(p, key, v);
	return handle_services(p, section, key, v);
}

/* [secrets], [proxy] and [proxy.NAME]: their modules parse their keys. */
static int handle_services(struct parse_ctx *p, const char *section, const char *key, const char *v)
{
	_cleanup_err_ err *e = NULL;
	int rc;
	if (!strcmp(section, "secrets"))
		rc = secrets_config_set(&p->c->secrets, key, v, &e);
	else if (!strcmp(section, "proxy") || !strncmp(section, "proxy.", 6))
		rc = proxy_config_set(&p->c->proxy, section[5] ? section + 6 : NULL, key, v, &e);
	else
		return fail(p, "unknown section [%s]", section);
	return rc < 0 ? fail(p, "%s", err_msg(e)) : 1;
}

/* A problem of the whole file, at the line of [section] key when the file sets it. */
static void verr(config *c, const char *section, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void verr(config *c, const char *section, const char *key, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	_cleanup_free_ char *m = xvasprintf(fmt, ap);
	va_end(ap);
	_cleanup_free_ char *loc = config_loc(c, section, key);
	add_error(c, xasprintf("%s: %s", loc ? loc : c->path, m));
}

static void validate_runtimes(config *c)
{
	if (c->n_enabled == 0)
		verr(c, "runtimes", "enabled", "[runtimes] enabled is empty");
	else if (!config_runtime_enabled(c, c->runtime_default)) {
		_cleanup_free_ char *l = config_enabled_list(c, ", ");
		verr(c, "runtimes", "default",
		     "[runtimes] default \"%s\" is not enabled (enabled: %s)", c->runtime_default,
		     l);
	}
	for (size_t i = 0; i < c->n_enabled; i++) {
		const char *rt = c->enabled[i];
		const config_runtime *r = config_find_runtime(c, rt);
		if ((!r || !r->kind) && strcmp(rt, "runsc") && strcmp(rt, "runc")) {
			_cleanup_free_ char *sec = xasprintf("runtime.%s", rt);
			verr(c, r ? sec : "runtimes", r ? NULL : "enabled",
			     "[runtime.%s] needs kind = runsc, runc or oci", rt);
		}
	}
	for (size_t i = 0; i < c->n_runtimes; i++) {
		const config_runtime *r = &c->runtimes[i];
		const char *kind = r->kind ? r->kind : r->name;
		if (r->platform && strcmp(kind, "runsc")) {
			_cleanup_free_ char *sec = xasprintf("runtime.%s", r->name);
			verr(c, sec, "platform",
			     "[runtime.%s] platform: only runsc has platforms (this runtime's kind "
			     "is "
			     "%s)",
			     r->name, r->kind ? r->kind : "guessed from its name: oci");
		}
	}
}

/* A default above its maximum, with both values and the lines that set them. */
static void validate_limits(config *c)
{
	for (size_t i = 0; i < PROTO_LIMIT_COUNT; i++) {
		const proto_limit_field *f = &proto_limit_fields[i];
		int64_t dv = proto_limit_get(&c->limits_default, f);
		int64_t mv = proto_limit_get(&c->limits_max, f);
		if (dv <= mv)
			continue;
		_cleanup_free_ char *max_key = xasprintf("max_%s", f->wire);
		_cleanup_free_ char *ds = proto_limit_str(f, dv), *ms = proto_limit_str(f, mv);
		int dl = config_line_of(c, "limits", f->wire);
		if (!config_line_of(c, "limits", max_key))
			verr(c, "limits", f->wire,
			     "[limits] %s = %s is above %s = %s (the built-in maximum: set %s too)",
			     f->wire, ds, max_key, ms, max_key);
		else if (!dl)
			verr(c, "limits", max_key,
			     "[limits] %s = %s is below %s = %s (the built-in default: set %s too)",
			     max_key, ms, f->wire, ds, f->wire);
		else
			verr(c, "limits", max_key, "[limits] %s = %s is below %s = %s (line %d)",
			     max_key, ms, f->wire, ds, dl);
	}
}

static void validate_pool(config *c)
{
	for (size_t i = 0; i < c->n_targets; i++) {
		const config_pool_target *t = &c->targets[i];
		proto_lang lang;
		_cleanup_free_ char *key = xasprintf("%s/%s/%s", t->runtime, t->image, t->lang);
		if (!config_runtime_enabled(c, t->runtime)) {
			_cleanup_free_ char *l = config_enabled_list(c, ", ");
			verr(c, "pool", key,
			     "[pool] %s: runtime \"%s\" is not enabled (enabled: %s)", key,
			     t->runtime, l);
		}
		if (proto_lang_parse(t->lang, &lang) < 0) {
			buf valid = BUF_INIT;
			for (int l = 0; l < PROTO_LANG__COUNT; l++)
				buf_appendf(&valid, "%s%s", l ? ", " : "", proto_lang_name(l));
			verr(c, "pool", key, "[pool] %s: unknown language \"%s\" (valid: %s)", key,
			     t->lang, buf_str(&valid));
			buf_deinit(&valid);
		}
	}
}

static int parse_text(config *c, const char *name, const char *text, size_t len, err **e)
{
	struct parse_ctx p = {.c = c, .name = name, .cur = text, .end = text + len};
	int rc = ini_parse_stream(reader, &p, handler, &p);
	finish_line(&p);
	if (rc == -2)
		add_error(c, xasprintf("%s: out of memory", name));
	else if (rc > 0) {
		/* inih saw a problem at rc; name it unless it is named already */
		_cleanup_free_ char *at = xasprintf("%s:%d: ", name, rc);
		bool named = false;
		for (size_t i = 0; i < c->n_errors && !named; i++)
			named = !strncmp(c->errors[i], at, strlen(at));
		if (!named)
			add_error(
			    c, xasprintf("%ssyntax error (expected [section] or key = value)", at));
	}
	validate_runtimes(c);
	validate_limits(c);
	validate_pool(c);
	/* the [redis] and [llm] sections as a whole (their messages name the file) */
	_cleanup_err_ err *re = NULL, *le = NULL;
	if (validate_redis(c, name, &re) < 0)
		add_error(c, xstrdup(err_msg(re)));
	if (validate_llm(c, name, &le) < 0)
		add_error(c, xstrdup(err_msg(le)));
	_cleanup_err_ err *pe = NULL;
	if (proxy_config_validate(&c->proxy, &pe) < 0)
		add_error(c, xasprintf("%s: %s", name, err_msg(pe)));
	if (c->n_errors)
		return err_set(e, 0, "%s", c->errors[0]);
	return 0;
}

/* Configs are small: more than this is not a config. */
#define CONFIG_MAX_BYTES (1u << 20)

int config_load(config *c, const char *path, err **e)
{
	set_str(&c->path, path);
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return err_set(e, errno, "%s: cannot open", path);
	buf text = BUF_INIT;
	ssize_t n = read_all(fd, &text, CONFIG_MAX_BYTES + 1);
	int rc;
	if (n < 0)
		rc = err_set(e, errno, "%s: cannot read", path);
	else if (text.len > CONFIG_MAX_BYTES)
		rc = err_set(e, 0, "%s: larger than %u bytes", path, CONFIG_MAX_BYTES);
	else
		rc = parse_text(c, path, (const char *)text.data, text.len, e);
	buf_deinit(&text);
	return rc;
}

int config_load_string(config *c, const char *name, const char *text, err **e)
{
	set_str(&c->path, name);
	return parse_text(c, name, text, strlen(text), e);
}

const config_runtime *config_find_runtime(const config *c, const char *name)
{
	for (size_t i = 0; i < c->n_runtimes; i++)
		if (!strcmp(c->runtimes[i].name, name))
			return &c->runtimes[i];
	return NULL;
}

bool config_runtime_enabled(const config *c, const char *name)
{
	for (size_t i = 0; i < c->n_enabled; i++)
		if (!strcmp(c->enabled[i], name))
			return true;
	return false;
}

char *config_enabled_list(const config *c, const char *sep)
{
	buf b = BUF_INIT;
	for (size_t i = 0; i < c->n_enabled; i++) {
		if (i)
			buf_append_str(&b, sep);
		buf_append_str(&b, c->enabled[i]);
	}
	char *s = xstrdup(buf_str(&b)); /* buf_steal of an empty buf is not terminated */
	buf_deinit(&b);
	return s;
}
