/* The chain state saved on a thread of its own (chain-save.h). The thread and the loop share
 * what is under mu; the thread wakes the loop with a byte on a pipe, the loop wakes the thread
 * with cv. Requests are numbered: the thread's outcomes come back in that order, and an
 * outcome the loop has already answered for (a save it gave up on) is dropped. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "daemon/chain-save.h"

struct chain_saver {
	attest_chain_file *f; /* the thread's, or chain_saver_store_now()'s while busy */
	chain_saved_fn cb;
	void *arg;
	int64_t timeout_ms;
	struct event *ev; /* wake[0] readable */
	struct event *deadline;
	int wake[2];
	pthread_t th;
	bool started;

	/* the loop's alone */
	uint64_t n_asked;     /* requests made */
	uint64_t answered;    /* the last request answered (an outcome, or given up on) */
	uint64_t given_up_to; /* outcomes of requests up to this one are dropped */

	pthread_mutex_t mu;
	pthread_cond_t cv;
	/* under mu */
	attest_chain want; /* the newest state asked for, when asking */
	uint64_t want_no;
	bool asking;
	bool stopped; /* a save failed or was given up on: nothing is written until a resume */
	bool quit;
	bool busy;          /* a save runs (the thread's, or chain_saver_store_now()'s) */
	attest_chain saved; /* the newest state written, not yet reported (saved_no 0: none) */
	uint64_t saved_no;
	err *failed; /* why a save failed, not yet reported */
	uint64_t failed_no;
};

/* One request: the newest state asked for, written; the outcome left for the loop. */
static void save_one(chain_saver *s)
{
	attest_chain c = s->want;
	uint64_t no = s->want_no;
	s->asking = false;
	s->busy = true;
	pthread_mutex_unlock(&s->mu);
	err *e = NULL;
	int r = attest_chain_store(s->f, &c, &e);
	pthread_mutex_lock(&s->mu);
	s->busy = false;
	if (r == 0) {
		s->saved = c;
		s->saved_no = no;
	} else {
		err_free(s->failed);
		s->failed = steal_pointer(&e);
		s->failed_no = no;
		s->stopped = true;
		s->asking = false; /* what was asked meanwhile builds on the failed state */
	}
	pthread_cond_broadcast(&s->cv); /* chain_saver_free may wait for the end of a save */
	/* a full pipe already holds a wake-up: the loop reads all there is under mu */
	ssize_t w = write(s->wake[1], "s", 1);
	(void)w;
}

static void *saver_main(void *arg)
{
	chain_saver *s = arg;
	pthread_mutex_lock(&s->mu);
	for (;;) {
		while (!s->quit && (!s->asking || s->stopped))
			pthread_cond_wait(&s->cv, &s->mu);
		if (s->quit)
			break;
		save_one(s);
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

/* A deadline while a request is unanswered: from the first one, then from each answer. */
static void arm_deadline(chain_saver *s)
{
	if (s->n_asked <= s->answered) {
		evtimer_del(s->deadline);
		return;
	}
	struct timeval tv = {s->timeout_ms / 1000, (s->timeout_ms % 1000) * 1000};
	evtimer_add(s->deadline, &tv);
}

static void report(chain_saver *s, uint64_t no, const attest_chain *saved, const err *failed)
{
	if (no <= s->given_up_to)
		return; /* the loop has answered for it already */
	if (no > s->answered)
		s->answered = no;
	s->cb(s->arg, saved, failed);
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
	chain_saver *s = arg;
	char junk[64];
	while (read(fd, junk, sizeof(junk)) > 0)
		;
	pthread_mutex_lock(&s->mu);
	attest_chain saved = s->saved;
	uint64_t saved_no = s->saved_no, failed_no = s->failed_no;
	_cleanup_err_ err *failed = s->failed;
	s->saved_no = s->failed_no = 0;
	s->failed = NULL;
	pthread_mutex_unlock(&s->mu);
	/* in the order they happened: a failure, then the resumed save, or the other way */
	if (failed && failed_no < saved_no)
		report(s, failed_no, NULL, failed);
	if (saved_no)
		report(s, saved_no, &saved, NULL);
	if (failed && failed_no > saved_no)
		report(s, failed_no, NULL, failed);
	arm_deadline(s);
}

/* A save that does not end (a disk that hangs) fails the requests it holds up: the node gives
 * their tasks back and says it is unhealthy rather than holding them, its leases renewed, for
 * as long as the disk hangs. The save's own outcome, whenever it comes, is dropped. */
static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	chain_saver *s = arg;
	pthread_mutex_lock(&s->mu);
	s->stopped = true;
	s->asking = false;
	pthread_mutex_unlock(&s->mu);
	s->given_up_to = s->answered = s->n_asked;
	err *e = NULL;
	err_set(&e, 0, "chain state: a save has not finished in %lld ms (the disk does not answer)",
	        (long long)s->timeout_ms);
	s->cb(s->arg, NULL, e);
	err_free(e);
}

static int start_thread(chain_saver *s, err **e)
{
	/* the thread takes no signal: the loop's handlers stay the loop's */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int r = pthread_create(&s->th, NULL, saver_main, s);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r != 0)
		return err_set(e, r, "chain state: start the saving thread");
	return 0;
}

int chain_saver_new(chain_saver **out, struct event_base *base, attest_chain_file *f,
                    int64_t timeout_ms, chain_saved_fn cb, void *arg, err **e)
{
	*out = NULL;
	chain_saver *s = xzalloc(sizeof(*s));
	s->f = f;
	s->cb = cb;
	s->arg = arg;
	s->timeout_ms = timeout_ms;
	if (pipe2(s->wake, O_CLOEXEC | O_NONBLOCK) < 0) {
		err_set(e, errno, "chain state: pipe");
		free(s);
		return -1;
	}
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	s->ev = event_new(base, s->wake[0], EV_READ | EV_PERSIST, on_wake, s);
	s->deadline = evtimer_new(base, on_deadline, s);
	if (!s->ev || !s->deadline || event_add(s->ev, NULL) < 0)
		err_set(e, 0, "chain state: cannot watch the saving thread");
	else if (start_thread(s, e) == 0)
		s->started = true;
	if (!s->started) {
		s->f = NULL; /* the caller keeps f */
		chain_saver_free(s);
		return -1;
	}
	*out = s;
	return 0;
}

static void ask(chain_saver *s, const attest_chain *c, bool resume)
{
	pthread_mutex_lock(&s->mu);
	if (resume)
		s->stopped = false;
	bool asked = !s->stopped;
	if (asked) {
		s->want = *c;
		s->want_no = ++s->n_asked;
		s->asking = true;
		pthread_cond_broadcast(&s->cv);
	}
	pthread_mutex_unlock(&s->mu);
	if (asked && !evtimer_pending(s->deadline, NULL))
		arm_deadline(s);
}

void chain_saver_save(chain_saver *s, const attest_chain *c)
{
	ask(s, c, false);
}

void chain_saver_resume(chain_saver *s, const attest_chain *c)
{
	ask(s, c, true);
}

int chain_saver_store_now(chain_saver *s, const attest_chain *c, err **e)
{
	pthread_mutex_lock(&s->mu);
	/* nothing asked for, nothing unreported: the thread is not near the file */
	bool idle = !s->busy && !s->asking && !s->stopped && s->n_asked == s->answered;
	if (idle)
		s->busy = true;
	pthread_mutex_unlock(&s->mu);
	if (!idle)
		return 1;
	int r = attest_chain_store(s->f, c, e);
	pthread_mutex_lock(&s->mu);
	s->busy = false;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	return r;
}

/* Waits (at most the saver's timeout) for the save under way; false when it does not end. */
static bool wait_idle(chain_saver *s)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += s->timeout_ms / 1000;
	until.tv_nsec += (s->timeout_ms % 1000) * 1000000;
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&s->mu);
	s->quit = true;
	pthread_cond_broadcast(&s->cv);
	int r = 0;
	while (s->busy && r == 0)
		r = pthread_cond_timedwait(&s->cv, &s->mu, &until);
	bool idle = !s->busy;
	pthread_mutex_unlock(&s->mu);
	return idle;
}

chain_saver *chain_saver_free(chain_saver *s)
{
	if (!s)
		return NULL;
	if (s->ev)
		event_free(s->ev);
	if (s->deadline)
		event_free(s->deadline);
	if (s->started && !wait_idle(s)) {
		/* a save that hangs: the thread keeps the rest (the file too) to the process's end */
		pthread_detach(s->th);
		return NULL;
	}
	if (s->started)
		pthread_join(s->th, NULL);
	close(s->wake[0]);
	close(s->wake[1]);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
	err_free(s->failed);
	attest_chain_close(s->f);
	free(s);
	return NULL;
}
