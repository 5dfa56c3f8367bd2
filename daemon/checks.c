/* The startup checks: what must hold before aispd serves, each failing with a message that
 * tells the operator what to do and names file:line where the config sets the value. Every
 * check runs and reports on its own (checks_error logs at once and counts): a start reports
 * every problem and refuses; `aispd --check` (node_check) reports the same and goes further:
 * it creates, starts, uses and destroys one sandbox per enabled runtime (the only way to know
 * that runsc and runc work on this host), binds the HTTP address, and warns when Redis is
 * unreachable, refuses the AUTH, or another aispd holds the node id. */
#include "daemon/node.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/spawn.h"
#include "common/util.h"
#include "common/xalloc.h"

/* ---- the report ---- */

static void report(checks *k, int level, const char *section, const char *key, const char *fmt,
                   va_list ap) __attribute__((format(printf, 5, 0)));
static void report(checks *k, int level, const char *section, const char *key, const char *fmt,
                   va_list ap)
{
	_cleanup_free_ char *m = xvasprintf(fmt, ap);
	_cleanup_free_ char *loc = section ? config_loc(k->cfg, section, key) : NULL;
	if (level == LOG_LVL_ERROR)
		k->errors++;
	else if (level == LOG_LVL_WARN)
		k->warnings++;
	log_msg(level, "%s%s%s", loc ? loc : "", loc ? ": " : "", m);
}

void checks_error(checks *k, const char *section, const char *key, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	report(k, LOG_LVL_ERROR, section, key, fmt, ap);
	va_end(ap);
}

void checks_warn(checks *k, const char *section, const char *key, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	report(k, LOG_LVL_WARN, section, key, fmt, ap);
	va_end(ap);
}

void checks_ok(checks *k, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	report(k, LOG_LVL_INFO, NULL, NULL, fmt, ap);
	va_end(ap);
}

/* ---- the host ---- */

static int check_dir(const char *what, const char *path, mode_t mode, int *dirfd_out, err **e)
{
	if (mkdir_p(path, mode, e) < 0)
		return err_prefix(e, "%s %s is not usable", what, path);
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return err_set(e, errno, "%s %s: open", what, path);
	_cleanup_free_ char *probe = xasprintf(".probe.%d", (int)getpid());
	if (write_file_at(fd, probe, "x", 1, 0600, e) < 0) {
		close(fd);
		return err_prefix(e, "%s %s is not writable", what, path);
	}
	unlinkat(fd, probe, 0);
	if (dirfd_out)
		*dirfd_out = fd;
	else
		close(fd);
	return 0;
}

static int check_cgroup(err **e)
{
	const char *base = access("/sys/fs/cgroup/cgroup.controllers", F_OK) == 0
	                       ? "/sys/fs/cgroup"
	                       : "/sys/fs/cgroup/memory";
	_cleanup_free_ char *probe = xasprintf("%s/aisp-probe-%d", base, (int)getpid());
	if (mkdir(probe, 0755) < 0 && errno != EEXIST)
		return err_set(e, errno,
		               "cgroup not usable: mkdir %s (aispd must run as root with a "
		               "writable cgroup hierarchy)",
		               probe);
	if (rmdir(probe) < 0)
		return err_set(e, errno, "cgroup not usable: rmdir %s", probe);
	return 0;
}

void checks_host(checks *k, int *state_dirfd)
{
	const config *c = k->cfg;
	_cleanup_err_ err *e = NULL;
	if (check_dir("state dir", c->state_dir, 0700, state_dirfd, &e) < 0)
		checks_error(k, "node", "state_dir", "%s", err_msg(e));
	if (check_dir("run dir", c->run_dir, 0711, NULL, &e) < 0)
		checks_error(k, "node", "run_dir", "%s", err_msg(e));
	if (check_cgroup(&e) < 0)
		checks_error(k, NULL, NULL, "%s", err_msg(e));
	if (access(c->agent_path, X_OK) < 0)
		checks_error(k, "node", "agent", "agent %s is missing ([node] agent): %s",
		             c->agent_path, strerror(errno));
}

int checks_key(checks *k)
{
	const config *c = k->cfg;
	if (access(c->key_path, F_OK) == 0)
		return 0;
	_cleanup_free_ char *copy = xstrdup(c->key_path);
	const char *dir = dirname(copy);
	if (!c->create_key) {
		checks_error(
		    k, "node", "key",
		    "no node key at %s: run `aisp keygen --out %s` or set create_key = true",
		    c->key_path, dir);
		return -1;
	}
	_cleanup_free_ char *base = xstrdup(c->key_path);
	if (strcmp(basename(base), "private.pem")) {
		checks_error(k, "node", "key", "create_key: key must be DIR/private.pem, not %s",
		             c->key_path);
		return -1;
	}
	_cleanup_err_ err *e = NULL;
	attest_key *key = NULL;
	if (mkdir_p(dir, 0700, &e) < 0 || attest_key_generate(&key, &e) < 0 ||
	    attest_key_write_pair(key, dir, false, &e) < 0) {
		checks_error(k, "node", "key", "create_key %s: %s", dir, err_msg(e));
		attest_key_free(key);
		return -1;
	}
	log_info("created a node key in %s (key_id %s)", dir, attest_key_id(key));
	attest_key_free(key);
	return 0;
}

/* ---- runtimes ---- */

/* runsc's platforms are what `runsc help platforms` lists, one a line (Debian's 2022 build:
 * kvm and ptrace; systrap came later). A platform it lacks makes every sandbox fail at start,
 * so it is an error now. kvm also needs /dev/kvm. */
int checks_platform(checks *k, const char *name, const char *bin, const char *platform)
{
	_cleanup_free_ char *sec = xasprintf("runtime.%s", name);
	const char *argv[] = {bin, "help", "platforms", NULL};
	spawn_opts so = SPAWN_OPTS_INIT;
	so.argv = argv;
	so.timeout_ms = 10000;
	spawn_result r;
	_cleanup_err_ err *e = NULL;
	if (spawn_run(&so, &r, &e) < 0) {
		checks_error(k, sec, "path", "runtime %s: %s", name, err_msg(e));
		return -1;
	}
	bool found = false;
	int rc = 0;
	buf list = BUF_INIT;
	char *save = NULL;
	for (char *l = strtok_r(r.out, "\n", &save); r.status == 0 && l;
	     l = strtok_r(NULL, "\n", &save)) {
		found |= !strcmp(l, platform);
		buf_appendf(&list, "%s%s", list.len ? ", " : "", l);
	}
	if (r.status != 0 || !list.len)
		checks_warn(k, sec, "platform",
		            "runtime %s: `%s help platforms` lists no platform; platform %s is not "
		            "checked",
		            name, bin, platform);
	else if (!found)
		rc = -1;
	if (rc < 0)
		checks_error(k, sec, "platform",
		             "runtime %s: platform %s is not supported by %s (it has: %s)", name,
		             platform, bin, buf_str(&list));
	buf_deinit(&list);
	spawn_result_deinit(&r);
	_cleanup_close_ int fd = -1;
	if (found && !strcmp(platform, "kvm") && (fd = open("/dev/kvm", O_RDWR | O_CLOEXEC)) < 0) {
		checks_error(k, sec, "platform", "runtime %s: platform kvm needs /dev/kvm: %s",
		             name, strerror(errno));
		rc = -1;
	}
	return rc;
}

/* ---- one sandbox per runtime (--check) ---- */

#define SMOKE_WORD "aisp-check"

typedef struct smoke {
	struct event_base *base;
	proto_task task;
	proto_limits limits;
	err *e;
	proto_status status;
	char *out;
	bool finished;
} smoke;

static void smoke_gone(void *arg)
{
	smoke *s = arg;
	s->finished = true;
	event_base_loopbreak(s->base);
}

static void smoke_done(sandbox *sb, const proto_output *o, const proto_usage *u, void *arg)
{
	smoke *s = arg;
	s->status = o->status;
	s->out = xstrdup(o->status == PROTO_STATUS_SANDBOX_ERROR && o->error ? o->error
	                                                                     : buf_str(&o->out));
	sandbox_destroy(sb, smoke_gone, s);
}

static void smoke_ready(sandbox *sb, const err *e, void *arg)
{
	smoke *s = arg;
	if (e)
		err_set(&s->e, 0, "%s", err_msg(e));
	else if (sandbox_run(sb, &s->task, &s->limits, smoke_done, s, &s->e) == 0)
		return;
	sandbox_destroy(sb, smoke_gone, s);
}

/* Creates, starts and warms a sandbox of rt with the default image, runs a shell task in it
 * and destroys it. Returns 0, or -1 with what went wrong in *e. */
static int smoke_run(sandbox_ctx *ctx, const sandbox_runtime *rt, const sandbox_image *img, err **e)
{
	smoke s = {.base = sandbox_ctx_base(ctx)};
	proto_task_init(&s.task);
	s.task.id = xstrdup("aispd-check");
	s.task.lang = PROTO_LANG_SHELL;
	s.task.code = xstrdup("echo " SMOKE_WORD);
	s.task.code_len = strlen(s.task.code);
	proto_limits_default(&s.limits);
	s.limits.timeout_ms = 60000;
	sandbox_spec spec = {
	    .rt = rt, .rootfs = img->rootfs, .image_digest = img->digest, .lang = s.task.lang};
	sandbox_spec_set_limits(&spec, &s.limits);
	sandbox *sb;
	int rc = sandbox_create(ctx, &spec, smoke_ready, &s, &sb, e);
	while (rc == 0 && !s.finished)
		event_base_dispatch(s.base);
	if (rc == 0 && s.e)
		rc = err_set(e, 0, "%s", err_msg(s.e));
	else if (rc == 0 && (s.status != PROTO_STATUS_OK || strcmp(s.out, SMOKE_WORD "\n")))
		rc = err_set(e, 0, "`echo " SMOKE_WORD "` ended %s: %.300s",
		             proto_status_name(s.status), s.out);
	err_free(s.e);
	free(s.out);
	proto_task_deinit(&s.task);
	return rc;
}

void checks_sandboxes(checks *k, node *n, const sandbox_image *img)
{
	const config *c = k->cfg;
	_cleanup_free_ char *prefix = xasprintf("aisp-%s-check-", c->node_id);
	sandbox_ctx_opts so = {
	    .state_dir = c->run_dir, .agent_path = c->agent_path, .id_prefix = prefix};
	_cleanup_err_ err *e = NULL;
	if (sandbox_ctx_new(&n->sbx, n->base, &so, &e) < 0) {
		checks_error(k, "node", "run_dir", "%s", err_msg(e));
		return;
	}
	for (size_t i = 0; i < n->n_rts; i++) {
		const char *name = sandbox_runtime_name(n->rts[i]);
		int64_t t0 = now_mono_ms();
		if (smoke_run(n->sbx, n->rts[i], img, &e) < 0) {
			_cleanup_free_ char *sec = xasprintf("runtime.%s", name);
			bool own = config_find_runtime(c, name) != NULL;
			checks_error(k, own ? sec : "runtimes", own ? NULL : "enabled",
			             "runtime %s: a sandbox with image %s does not work: %s", name,
			             img->name ? img->name : img->digest, err_msg(e));
		} else {
			checks_ok(k,
			          "runtime %s: a sandbox was created, ran a task and was destroyed "
			          "(%lld ms, cgroup %s)",
			          name, (long long)(now_mono_ms() - t0),
			          sandbox_ctx_cgroup(n->sbx));
		}
	}
}

/* ---- HTTP and Redis (--check) ---- */

void checks_http(checks *k, node *n)
{
	_cleanup_err_ err *e = NULL;
	if (http_start(n, &e) < 0)
		checks_error(k, "http", "listen", "%s", err_msg(e));
	http_stop(n);
}

static redisContext *redis_connect(const config *c, err **e)
{
	_cleanup_free_ char *host = NULL, *path = NULL;
	int port = 0;
	if (addr_split(c->redis_address, &host, &port, &path, e) < 0)
		return NULL;
	struct timeval tv = {c->redis_timeout_ms / 1000, (c->redis_timeout_ms % 1000) * 1000};
	redisContext *rc =
	    path ? redisConnectUnixWithTimeout(path, tv) : redisConnectWithTimeout(host, port, tv);
	if (!rc || rc->err) {
		err_set(e, 0, "%s", rc ? rc->errstr : "out of memory");
		redisFree(rc);
		return NULL;
	}
	redisSetTimeout(rc, tv);
	return rc;
}

/* One command; returns its reply (caller frees) or NULL with *e. */
static redisReply *redis_ask(redisContext *rc, err **e, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	redisReply *r = redisvCommand(rc, fmt, ap);
	va_end(ap);
	if (!r)
		err_set(e, 0, "%s", rc->errstr[0] ? rc->errstr : "no reply");
	else if (r->type == REDIS_REPLY_ERROR) {
		err_set(e, 0, "%s", r->str);
		freeReplyObject(r);
		r = NULL;
	}
	return r;
}

/* Redis is waited for at start, never required: every finding here is a warning. The check
 * connects once, blocking (nothing else runs in --check), with the node's timeout. */
void checks_redis(checks *k)
{
	const config *c = k->cfg;
	_cleanup_err_ err *e = NULL;
	redisContext *rc = redis_connect(c, &e);
	if (!rc) {
		checks_warn(k, "redis", "address",
		            "redis %s is unreachable (%s): aispd will start and retry with backoff",
		            c->redis_address, err_msg(e));
		return;
	}
	redisReply *r = NULL;
	if (c->redis_password &&
	    !(r = c->redis_user ? redis_ask(rc, &e, "AUTH %s %s", c->redis_user, c->redis_password)
	                        : redis_ask(rc, &e, "AUTH %s", c->redis_password))) {
		checks_warn(k, "redis", "password", "redis %s: AUTH%s%s failed (%s)",
		            c->redis_address, c->redis_user ? " as " : "",
		            c->redis_user ? c->redis_user : "", err_msg(e));
		goto out;
	}
	freeReplyObject(r);
	if (!(r = redis_ask(rc, &e, "PING"))) {
		checks_warn(k, "redis", "password", "redis %s: PING failed (%s)%s",
		            c->redis_address, err_msg(e),
		            strstr(err_msg(e), "NOAUTH") ? ": set [redis] password (and user)"
		                                         : "");
		goto out;
	}
	freeReplyObject(r);
	if ((r = redis_ask(rc, &e, "GET %s%s", PROTO_KEY_LOCK_PREFIX, c->node_id)) &&
	    r->type == REDIS_REPLY_STRING)
		checks_warn(k, "node", "id",
		            "node id %s is in use: %s%s is held by %s; a start waits until it "
		            "expires and refuses to run while its holder is alive",
		            c->node_id, PROTO_KEY_LOCK_PREFIX, c->node_id, r->str);
	else
		checks_ok(k, "redis %s: reachable%s, node id %s free", c->redis_address,
		          c->redis_password ? ", AUTH accepted" : "", c->node_id);
out:
	freeReplyObject(r);
	redisFree(rc);
}
