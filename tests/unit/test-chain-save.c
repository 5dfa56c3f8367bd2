/* The chain state saved on a thread of its own (daemon/chain-save.c): a real loop, a real
 * state file in a temporary directory, and fdatasync() defined here, in the executable, so
 * that it is the one the saver's thread calls: it counts the flushes, can hold one until the
 * test lets it go (to ask for states while a save runs) and can fail with EIO (what a disk
 * that lost a write reports). The flush itself is the real system call. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "daemon/chain-save.h"

/* ---- the flush the saver's thread calls ---- */

static pthread_mutex_t fmu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t fcv = PTHREAD_COND_INITIALIZER;
static int flushes;  /* fdatasync() calls */
static int flushed;  /* ... that returned */
static bool hold;    /* the next flush waits while set */
static bool holding; /* a flush is waiting */
static bool failing; /* flushes fail with EIO */

int fdatasync(int fd)
{
	pthread_mutex_lock(&fmu);
	flushes++;
	holding = hold;
	pthread_cond_broadcast(&fcv);
	while (hold)
		pthread_cond_wait(&fcv, &fmu);
	holding = false;
	bool fail = failing;
	pthread_mutex_unlock(&fmu);
	int r = fail ? -1 : (int)syscall(SYS_fdatasync, fd);
	int saved_errno = fail ? EIO : errno;
	pthread_mutex_lock(&fmu);
	flushed++;
	pthread_mutex_unlock(&fmu);
	errno = saved_errno;
	return r;
}

static void set_flag(bool *flag, bool on)
{
	pthread_mutex_lock(&fmu);
	*flag = on;
	pthread_cond_broadcast(&fcv);
	pthread_mutex_unlock(&fmu);
}

static void wait_holding(void)
{
	pthread_mutex_lock(&fmu);
	while (!holding)
		pthread_cond_wait(&fcv, &fmu);
	pthread_mutex_unlock(&fmu);
}

static int count_of(const int *n)
{
	pthread_mutex_lock(&fmu);
	int v = *n;
	pthread_mutex_unlock(&fmu);
	return v;
}

static int flush_count(void)
{
	return count_of(&flushes);
}

/* ---- a saver on a loop ---- */

typedef struct fixture {
	char *dir;
	int dfd;
	struct event_base *base;
	chain_saver *s;
	uint64_t reported[64]; /* the sequences saved, as reported */
	size_t n_reported;
	char *failure;  /* the last failure reported */
	char order[64]; /* 'S' a save, 'F' a failure, as reported */
	size_t n_order;
	char digest[ATTEST_DIGEST_LEN];
} fixture;

static void on_saved(void *arg, const attest_chain *saved, const err *e)
{
	fixture *fx = arg;
	assert_true(fx->n_order < sizeof(fx->order) - 1);
	fx->order[fx->n_order++] = e ? 'F' : 'S';
	if (e) {
		assert_null(saved);
		free(fx->failure);
		fx->failure = xstrdup(err_msg(e));
		return;
	}
	assert_true(fx->n_reported < 64);
	fx->reported[fx->n_reported++] = saved->sequence;
}

static fixture *fixture_new(int64_t timeout_ms)
{
	fixture *fx = xzalloc(sizeof(*fx));
	fx->dir = xstrdup("/tmp/test-chain-save-XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	fx->dfd = open(fx->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(fx->dfd >= 0);
	fx->base = event_base_new();
	attest_chain c;
	attest_chain_file *f = NULL;
	_cleanup_err_ err *e = NULL;
	assert_int_equal(attest_chain_open(fx->dfd, "chain.json", &f, &c, &e), 0);
	assert_int_equal(chain_saver_new(&fx->s, fx->base, f, timeout_ms, on_saved, fx, &e), 0);
	attest_sha256_str("x", 1, fx->digest);
	flushes = flushed = 0;
	return fx;
}

static int setup(void **state)
{
	*state = fixture_new(10000);
	return 0;
}

/* A saver that gives up on a save after 200 ms. */
static int setup_short(void **state)
{
	*state = fixture_new(200);
	return 0;
}

static int teardown(void **state)
{
	fixture *fx = *state;
	set_flag(&hold, false);
	set_flag(&failing, false);
	chain_saver_free(fx->s);
	event_base_free(fx->base);
	unlinkat(fx->dfd, "chain.json", 0);
	close(fx->dfd);
	rmdir(fx->dir);
	free(fx->dir);
	free(fx->failure);
	free(fx);
	return 0;
}

static attest_chain state_of(const fixture *fx, uint64_t seq)
{
	attest_chain c = ATTEST_CHAIN_INIT;
	attest_chain_advance(&c, fx->digest, seq);
	return c;
}

static void ask(fixture *fx, uint64_t seq)
{
	attest_chain c = state_of(fx, seq);
	chain_saver_save(fx->s, &c);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	fail_msg("the saver did not answer within 10 s");
}

/* Runs the loop until the saver reports seq saved (or, with want_failure, a failure), in a
 * report that comes after this call. */
static void run_until(fixture *fx, uint64_t seq, bool want_failure)
{
	struct event *deadline = evtimer_new(fx->base, on_deadline, fx);
	struct timeval tv = {10, 0};
	evtimer_add(deadline, &tv);
	size_t seen = fx->n_reported;
	free(fx->failure);
	fx->failure = NULL;
	while (want_failure ? !fx->failure
	                    : !(fx->n_reported > seen && fx->reported[fx->n_reported - 1] == seq))
		event_base_loop(fx->base, EVLOOP_ONCE);
	event_free(deadline);
}

static void on_enough(evutil_socket_t fd, short what, void *arg)
{
	event_base_loopbreak(arg);
}

/* Runs the loop for ms: what the saver reports meanwhile is recorded. */
static void run_for(fixture *fx, int ms)
{
	struct event *t = evtimer_new(fx->base, on_enough, fx->base);
	struct timeval tv = {0, ms * 1000};
	evtimer_add(t, &tv);
	event_base_dispatch(fx->base);
	event_free(t);
}

/* Waits (the loop not running) until n flushes have returned. */
static void wait_flushed(int n)
{
	for (int i = 0; i < 10000 && count_of(&flushed) < n; i++)
		usleep(1000);
	assert_int_equal(count_of(&flushed), n);
}

static uint64_t on_disk(const fixture *fx)
{
	attest_chain c;
	_cleanup_err_ err *e = NULL;
	assert_int_equal(attest_chain_load(fx->dfd, "chain.json", &c, &e), 0);
	return c.sequence;
}

/* ---- the tests ---- */

/* A state asked for is saved and reported; the file holds it. */
static void test_saves(void **state)
{
	fixture *fx = *state;
	ask(fx, 1);
	run_until(fx, 1, false);
	assert_int_equal(fx->n_reported, 1);
	assert_int_equal(on_disk(fx), 1);
	attest_chain c;
	_cleanup_err_ err *e = NULL;
	assert_int_equal(attest_chain_load(fx->dfd, "chain.json", &c, &e), 0);
	assert_string_equal(c.previous, fx->digest);
	assert_int_equal(flush_count(), 1);
}

/* The states asked for while a save runs go to disk as one save of the newest: 1 is held in
 * its flush while 2, 3 and 4 are asked for; then two flushes in all, and 4 on disk. */
static void test_coalesces(void **state)
{
	fixture *fx = *state;
	set_flag(&hold, true);
	ask(fx, 1);
	wait_holding();
	for (uint64_t s = 2; s <= 4; s++)
		ask(fx, s);
	set_flag(&hold, false);
	run_until(fx, 4, false);
	assert_int_equal(flush_count(), 2);
	assert_int_equal(on_disk(fx), 4);
	for (size_t i = 1; i < fx->n_reported; i++) /* in order of sequence */
		assert_true(fx->reported[i] > fx->reported[i - 1]);
}

/* A failed save is reported, and stops the saver: what is asked for afterwards is never
 * written; a resume saves the state it names, not the one asked for while stopped. */
static void test_failure_stops_until_resume(void **state)
{
	fixture *fx = *state;
	ask(fx, 1);
	run_until(fx, 1, false);
	set_flag(&failing, true);
	ask(fx, 2);
	run_until(fx, 0, true);
	assert_non_null(strstr(fx->failure, "fdatasync: Input/output error"));
	int after_failure = flush_count();
	set_flag(&failing, false);
	ask(fx, 3); /* built on the failed 2: must not reach the disk */
	run_for(fx, 100);
	assert_int_equal(flush_count(), after_failure);
	attest_chain resumed = state_of(fx, 1);
	chain_saver_resume(fx->s, &resumed);
	size_t before = fx->n_reported;
	run_until(fx, 1, false);
	assert_int_equal(fx->n_reported, before + 1);
	assert_int_equal(flush_count(), after_failure + 1);
	assert_int_equal(on_disk(fx), 1);
	/* and it takes requests again */
	ask(fx, 2);
	run_until(fx, 2, false);
	assert_int_equal(on_disk(fx), 2);
}

static void *release_later(void *arg)
{
	usleep(100 * 1000);
	set_flag(&hold, false);
	return NULL;
}

/* Freed while a save runs: it returns only once that save's flush has returned (held here for
 * 100 ms), and the file holds its state. */
static void test_free_waits_for_the_save(void **state)
{
	fixture *fx = *state;
	set_flag(&hold, true);
	ask(fx, 5);
	wait_holding();
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, release_later, NULL), 0);
	fx->s = chain_saver_free(fx->s);
	assert_int_equal(count_of(&flushed), 1);
	pthread_join(th, NULL);
	assert_int_equal(on_disk(fx), 5);
}

/* A save that does not end is given up on after the saver's timeout (200 ms here): reported as
 * a failure, the saver stopped; the hung save's own outcome, when it comes, is dropped; a
 * resume saves again. */
static void test_gives_up_on_a_hung_save(void **state)
{
	fixture *fx = *state;
	set_flag(&hold, true);
	ask(fx, 1);
	wait_holding();
	run_until(fx, 0, true);
	assert_non_null(strstr(fx->failure, "has not finished in 200 ms"));
	ask(fx, 2); /* stopped: never written */
	set_flag(&hold, false);
	wait_flushed(1);
	run_for(fx, 100);
	assert_int_equal(fx->n_reported, 0); /* the late success of 1 is not reported */
	assert_int_equal(flush_count(), 1);
	attest_chain resumed = state_of(fx, 1);
	chain_saver_resume(fx->s, &resumed);
	run_until(fx, 1, false);
	assert_int_equal(flush_count(), 2);
	assert_int_equal(on_disk(fx), 1);
}

/* Outcomes come in the order they happened: a retry that fails, then one that succeeds, both
 * before the loop hears of either, are reported failure first. */
static void test_outcomes_in_order(void **state)
{
	fixture *fx = *state;
	set_flag(&failing, true);
	ask(fx, 1);
	run_until(fx, 0, true);
	attest_chain c = state_of(fx, 0);
	chain_saver_resume(fx->s, &c); /* fails too */
	wait_flushed(2);
	set_flag(&failing, false);
	chain_saver_resume(fx->s, &c);
	wait_flushed(3);
	run_until(fx, 0, false);
	assert_int_equal(fx->n_order, 3);
	assert_memory_equal(fx->order, "FFS", 3);
}

/* A save made at once on the caller's thread when the saver is idle, reporting nothing;
 * refused (1) while a save runs, while an outcome is unreported and while the saver is
 * stopped; a failure of its own reports and stops nothing. */
static void test_store_now(void **state)
{
	fixture *fx = *state;
	_cleanup_err_ err *e = NULL;
	attest_chain c = state_of(fx, 1);
	assert_int_equal(chain_saver_store_now(fx->s, &c, &e), 0);
	assert_int_equal(flush_count(), 1);
	assert_int_equal(on_disk(fx), 1);
	run_for(fx, 50);
	assert_int_equal(fx->n_order, 0); /* the caller knows: nothing is reported */
	set_flag(&hold, true);
	ask(fx, 2);
	wait_holding();
	c = state_of(fx, 3);
	assert_int_equal(chain_saver_store_now(fx->s, &c, &e), 1); /* a save runs */
	set_flag(&hold, false);
	wait_flushed(2);
	assert_int_equal(chain_saver_store_now(fx->s, &c, &e), 1); /* its outcome is unreported */
	run_until(fx, 2, false);
	/* its own failure */
	set_flag(&failing, true);
	c = state_of(fx, 9);
	assert_int_equal(chain_saver_store_now(fx->s, &c, &e), -1);
	assert_non_null(strstr(err_msg(e), "fdatasync: Input/output error"));
	err_free(steal_pointer(&e));
	size_t reports = fx->n_order;
	run_for(fx, 50);
	assert_int_equal(fx->n_order, reports);
	set_flag(&failing, false);
	ask(fx, 3); /* not stopped by it */
	run_until(fx, 3, false);
	assert_int_equal(on_disk(fx), 3);
	/* a saver stopped by a failure on the thread refuses until it is resumed */
	set_flag(&failing, true);
	ask(fx, 4);
	run_until(fx, 0, true);
	set_flag(&failing, false);
	c = state_of(fx, 4);
	assert_int_equal(chain_saver_store_now(fx->s, &c, &e), 1);
	chain_saver_resume(fx->s, &c);
	run_until(fx, 4, false);
	assert_int_equal(chain_saver_store_now(fx->s, &c, &e), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_saves, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_coalesces, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_failure_stops_until_resume, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_free_waits_for_the_save, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_gives_up_on_a_hung_save, setup_short, teardown),
	    cmocka_unit_test_setup_teardown(test_outcomes_in_order, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_store_now, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
