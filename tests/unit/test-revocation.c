/* Unit tests for daemon/revocation.c against a real redis-server (started here on a unix socket
 * of a temporary directory, stopped by its pid): the poller calls back exactly the watch whose
 * party was revoked, once, with the record's description; unwatched and never-revoked parties
 * stay quiet; a poller freed with a request in flight drops the reply; the admission check
 * reports what the store says, and an error (never "not revoked") when Redis is gone. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <event2/event.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "attest/attest.h"
#include "common/cleanup.h"
#include "common/log.h"
#include "common/spawn.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "daemon/redis.h"
#include "daemon/revocation.h"
#include "proto/proto.h"

/* Safety net only: a test that hangs fails here instead of blocking the suite. */
#define GIVE_UP_MS 20000

static char dir[] = "/tmp/aisp-revocation-XXXXXX";
static char sock[256], addr[300];
static pid_t redis_pid;

static int start_redis(void **state)
{
	assert_non_null(mkdtemp(dir));
	snprintf(sock, sizeof(sock), "%s/redis.sock", dir);
	snprintf(addr, sizeof(addr), "unix:%s", sock);
	_cleanup_free_ char *pidfile = xasprintf("%s/redis.pid", dir);
	const char *argv[] = {"redis-server", "--port",      "0",   "--unixsocket",
	                      sock,           "--save",      "",    "--appendonly",
	                      "no",           "--daemonize", "yes", "--pidfile",
	                      pidfile,        "--dir",       dir,   NULL};
	spawn_opts o = SPAWN_OPTS_INIT;
	o.argv = argv;
	o.timeout_ms = 10000;
	spawn_result r = {0};
	_cleanup_err_ err *e = NULL;
	if (spawn_run(&o, &r, &e) < 0 || r.status != 0)
		fail_msg("redis-server: %s %s", e ? err_msg(e) : "", r.errout ? r.errout : "");
	spawn_result_deinit(&r);
	/* It is ready when it answers PING. */
	for (int i = 0; i < 200; i++) {
		redisContext *c = redisConnectUnix(sock);
		bool up = false;
		if (c && !c->err) {
			redisReply *rep = redisCommand(c, "PING");
			up = rep && rep->type == REDIS_REPLY_STATUS;
			freeReplyObject(rep);
		}
		redisFree(c);
		if (up)
			break;
		usleep(20000);
	}
	buf b = BUF_INIT;
	assert_int_equal(read_file_at(AT_FDCWD, pidfile, 64, &b, NULL), 0);
	redis_pid = (pid_t)atoi(buf_str(&b));
	buf_deinit(&b);
	assert_true(redis_pid > 0);
	return 0;
}

static void stop_redis(void)
{
	if (redis_pid > 0) {
		kill(redis_pid, SIGTERM);
		for (int i = 0; i < 250 && kill(redis_pid, 0) == 0; i++)
			usleep(20000);
		redis_pid = 0;
	}
}

static int stop_all(void **state)
{
	stop_redis();
	_cleanup_err_ err *e = NULL;
	rm_rf_at(AT_FDCWD, dir, &e);
	return 0;
}

/* A synchronous client, as `aisp passport revoke` is. */
static void redis_do(const char *fmt, ...)
{
	redisContext *c = redisConnectUnix(sock);
	assert_true(c && !c->err);
	va_list ap;
	va_start(ap, fmt);
	redisReply *r = redisvCommand(c, fmt, ap);
	va_end(ap);
	assert_non_null(r);
	assert_int_not_equal(r->type, REDIS_REPLY_ERROR);
	freeReplyObject(r);
	redisFree(c);
}

static void revoke_field(const char *field, const char *reason)
{
	buf rec = BUF_INIT;
	proto_revocation_to_json(reason, 1700000000000LL, &rec);
	redis_do("HSET %s %s %b", PROTO_KEY_REVOKED, field, rec.data, rec.len);
	buf_deinit(&rec);
}

/* ---- a loop with a connection ---- */

typedef struct world {
	struct event_base *base;
	rconn *rc;
	revocation *rv;
	int calls;
	void *owner;
	char field[128], why[512];
	bool ready;
	/* the admission check */
	int checks;
	bool check_error;
	char check_why[ATTEST_PARTY__COUNT][512];
	char error[256];
} world;

static void on_ready(rconn *rc, void *arg)
{
	world *w = arg;
	w->ready = true;
	event_base_loopbreak(w->base);
}

static void on_revoked(void *arg, void *owner, const char *field, const char *why)
{
	world *w = arg;
	w->calls++;
	w->owner = owner;
	snprintf(w->field, sizeof(w->field), "%s", field);
	snprintf(w->why, sizeof(w->why), "%s", why);
	event_base_loopbreak(w->base);
}

static void on_give_up(evutil_socket_t fd, short what, void *arg)
{
	world *w = arg;
	fail_msg("gave up waiting (calls %d, checks %d, polls %llu)", w->calls, w->checks,
	         (unsigned long long)(w->rv ? revocation_polls(w->rv) : 0));
}

/* Runs the loop until something breaks it (or the safety net fires). */
static void run(world *w)
{
	struct event *ev = evtimer_new(w->base, on_give_up, w);
	struct timeval tv = {GIVE_UP_MS / 1000, 0};
	evtimer_add(ev, &tv);
	event_base_dispatch(w->base);
	event_free(ev);
}

static void world_init(world *w)
{
	memset(w, 0, sizeof(*w));
	log_set_level(LOG_LVL_ERROR);
	w->base = event_base_new();
	rconn_opts o = {
	    .name = "test", .address = addr, .timeout_ms = 2000, .on_ready = on_ready, .arg = w};
	w->rc = rconn_new(w->base, &o);
	run(w);
	assert_true(w->ready);
	w->rv = revocation_new(w->base, w->rc, 50, on_revoked, w);
}

static void world_deinit(world *w)
{
	revocation_free(w->rv);
	rconn_free(w->rc);
	event_base_free(w->base);
}

static void on_polls(evutil_socket_t fd, short what, void *arg)
{
	world *w = arg;
	if (revocation_polls(w->rv) >= 3)
		event_base_loopbreak(w->base);
}

/* Runs until at least three more polls were answered. */
static void run_polls(world *w)
{
	uint64_t start = revocation_polls(w->rv);
	struct event *ev = event_new(w->base, -1, EV_PERSIST, on_polls, w);
	struct timeval tv = {0, 10000};
	evtimer_add(ev, &tv);
	while (revocation_polls(w->rv) < start + 3 && w->calls == 0)
		run(w);
	event_free(ev);
}

/* ---- the poller ---- */

static int owner_a, owner_b, owner_c;

static void test_watch(void **state)
{
	redis_do("DEL %s", PROTO_KEY_REVOKED);
	world w;
	world_init(&w);
	char *fa[] = {(char *)"key:sha256:aaaa", (char *)"passport:pp_a"};
	char *fb[] = {(char *)"passport:pp_b"};
	char *fc[] = {(char *)"passport:pp_c"};
	revocation_watch(w.rv, &owner_a, fa, 2);
	revocation_watch(w.rv, &owner_b, fb, 1);
	revocation_watch(w.rv, &owner_c, fc, 1);
	assert_int_equal(revocation_watching(w.rv), 3);
	/* Nothing is revoked: polls come back and nobody is called. */
	run_polls(&w);
	assert_int_equal(w.calls, 0);
	assert_true(revocation_polls(w.rv) >= 3);
	/* A party of a is revoked: a is called back once, with the record. */
	revoke_field("passport:pp_a", "lost device");
	run(&w);
	assert_int_equal(w.calls, 1);
	assert_ptr_equal(w.owner, &owner_a);
	assert_string_equal(w.field, "passport:pp_a");
	assert_string_equal(
	    w.why, "passport pp_a is revoked (since 2023-11-14T22:13:20Z: \"lost device\")");
	assert_int_equal(revocation_watching(w.rv), 2);
	/* Once only: later polls of the same record do not call again. */
	w.calls = 0;
	run_polls(&w);
	assert_int_equal(w.calls, 0);
	/* An unwatched owner is not called; a watched one still is. */
	revocation_unwatch(w.rv, &owner_b);
	revoke_field("passport:pp_b", "b");
	run_polls(&w);
	assert_int_equal(w.calls, 0);
	revoke_field("passport:pp_c", "c");
	run(&w);
	assert_int_equal(w.calls, 1);
	assert_ptr_equal(w.owner, &owner_c);
	assert_int_equal(revocation_watching(w.rv), 0);
	/* A record that is not a record revokes all the same (fail closed). */
	w.calls = 0;
	char *fk[] = {(char *)"key:sha256:kkkk"};
	revocation_watch(w.rv, &owner_a, fk, 1);
	redis_do("HSET %s %s %s", PROTO_KEY_REVOKED, "key:sha256:kkkk", "garbage");
	run(&w);
	assert_int_equal(w.calls, 1);
	assert_non_null(strstr(w.why, "key sha256:kkkk is revoked (its record in aisp:revoked is "
	                              "unreadable"));
	world_deinit(&w);
}

/* Freed with a poll in flight: the reply is dropped, nothing is called, nothing leaks (the
 * sanitizer build checks the use after free that this would be otherwise). */
static void test_free_in_flight(void **state)
{
	world w;
	world_init(&w);
	revoke_field("passport:pp_f", "f");
	char *ff[] = {(char *)"passport:pp_f"};
	revocation_watch(w.rv, &owner_a, ff, 1);
	revocation_poll(w.rv);
	w.rv = revocation_free(w.rv);
	struct timeval tv = {0, 200000};
	event_base_loopexit(w.base, &tv);
	event_base_dispatch(w.base);
	assert_int_equal(w.calls, 0);
	world_deinit(&w);
}

/* ---- the admission check ---- */

static void on_check(void *arg, const attest_revocations *rev, const char *error)
{
	world *w = arg;
	w->checks++;
	w->check_error = error != NULL;
	snprintf(w->error, sizeof(w->error), "%s", error ? error : "");
	for (int i = 0; rev && i < ATTEST_PARTY__COUNT; i++)
		snprintf(w->check_why[i], sizeof(w->check_why[i]), "%s",
		         rev->why[i] ? rev->why[i] : "");
	event_base_loopbreak(w->base);
}

static void fake_auth(attest_task_auth *a, const char *signer, const char *issuer, const char *pp)
{
	memset(a, 0, sizeof(*a));
	snprintf(a->signer_id, sizeof(a->signer_id), "%s", signer);
	if (pp) {
		a->has_passport = true;
		snprintf(a->passport.issuer, sizeof(a->passport.issuer), "%s", issuer);
		snprintf(a->passport.id, sizeof(a->passport.id), "%s", pp);
	}
}

static void test_check(void **state)
{
	redis_do("DEL %s", PROTO_KEY_REVOKED);
	world w;
	world_init(&w);
	attest_task_auth a;
	fake_auth(&a, "sha256:signer", "sha256:issuer", "pp_1");
	revocation_check(w.rv, &a, on_check, &w);
	run(&w);
	assert_int_equal(w.checks, 1);
	assert_false(w.check_error);
	for (int i = 0; i < ATTEST_PARTY__COUNT; i++)
		assert_string_equal(w.check_why[i], "");
	revoke_field("key:sha256:issuer", "compromised");
	revocation_check(w.rv, &a, on_check, &w);
	run(&w);
	assert_int_equal(w.checks, 2);
	assert_string_equal(w.check_why[ATTEST_PARTY_ISSUER],
	                    "key sha256:issuer is revoked (since 2023-11-14T22:13:20Z: "
	                    "\"compromised\")");
	assert_string_equal(w.check_why[ATTEST_PARTY_SIGNER], "");
	/* A task without parties is answered from the loop too. */
	attest_task_auth none;
	memset(&none, 0, sizeof(none));
	revocation_check(w.rv, &none, on_check, &w);
	assert_int_equal(w.checks, 2);
	run(&w);
	assert_int_equal(w.checks, 3);
	assert_false(w.check_error);
	/* Redis gone: an error, never "not revoked". */
	stop_redis();
	revocation_check(w.rv, &a, on_check, &w);
	run(&w);
	assert_int_equal(w.checks, 4);
	assert_true(w.check_error);
	assert_non_null(strstr(w.error, "cannot read aisp:revoked"));
	world_deinit(&w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_watch),
	    cmocka_unit_test(test_free_in_flight),
	    cmocka_unit_test(test_check),
	};
	signal(SIGPIPE, SIG_IGN); /* as aispd does: a lost connection is an error, not a signal */
	return cmocka_run_group_tests(tests, start_redis, stop_all);
}
