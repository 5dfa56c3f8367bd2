/* The chain state saved on a thread of its own (chain-save.h). The thread and the loop share
 * what is under mu; the thread wakes the loop with a byte on a pipe, the loop wakes the thread
 * with cv. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/util.h"
#include "common/xalloc.h"
#include "daemon/chain-save.h"

struct chain_saver {
	attest_chain_file *f; /* the thread's alone while it runs */
	chain_saved_fn cb;
	void *arg;
	struct event *ev; /* wake[0] readable */
	int wake[2];
	pthread_t th;
	bool started;

	pthread_mutex_t mu;
	pthread_cond_t cv;
	/* under mu */
	attest_chain want; /* the newest state asked for, when asking */
	bool asking;
	bool stopped; /* a save failed: nothing is written until a resume */
	bool quit;
	attest_chain saved; /* the newest state on disk, when saved_new */
	bool saved_new;
	char *failed; /* why a save failed, not yet reported */
};

/* One request: the newest state asked for, written; the outcome left for the loop. */
static void save_one(chain_saver *s)
{
	attest_chain c = s->want;
	s->asking = false;
	pthread_mutex_unlock(&s->mu);
	err *e = NULL;
	int r = attest_chain_store(s->f, &c, &e);
	pthread_mutex_lock(&s->mu);
	if (r == 0) {
		s->saved = c;
		s->saved_new = true;
	} else {
		free(s->failed);
		s->failed = xstrdup(err_msg(e));
		s->stopped = true;
		s->asking = false; /* what was asked meanwhile builds on the failed state */
		err_free(e);
	}
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

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
	chain_saver *s = arg;
	char junk[64];
	while (read(fd, junk, sizeof(junk)) > 0)
		;
	pthread_mutex_lock(&s->mu);
	bool saved_new = s->saved_new;
	attest_chain saved = s->saved;
	char *failed = s->failed;
	s->saved_new = false;
	s->failed = NULL;
	pthread_mutex_unlock(&s->mu);
	if (saved_new)
		s->cb(s->arg, &saved, NULL);
	if (failed) {
		err *e = NULL;
		err_set(&e, 0, "%s", failed);
		s->cb(s->arg, NULL, e);
		err_free(e);
		free(failed);
	}
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
                    chain_saved_fn cb, void *arg, err **e)
{
	*out = NULL;
	chain_saver *s = xzalloc(sizeof(*s));
	s->f = f;
	s->cb = cb;
	s->arg = arg;
	if (pipe2(s->wake, O_CLOEXEC | O_NONBLOCK) < 0) {
		err_set(e, errno, "chain state: pipe");
		free(s);
		return -1;
	}
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	s->ev = event_new(base, s->wake[0], EV_READ | EV_PERSIST, on_wake, s);
	if (!s->ev || event_add(s->ev, NULL) < 0)
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
	if (!s->stopped) {
		s->want = *c;
		s->asking = true;
		pthread_cond_signal(&s->cv);
	}
	pthread_mutex_unlock(&s->mu);
}

void chain_saver_save(chain_saver *s, const attest_chain *c)
{
	ask(s, c, false);
}

void chain_saver_resume(chain_saver *s, const attest_chain *c)
{
	ask(s, c, true);
}

chain_saver *chain_saver_free(chain_saver *s)
{
	if (!s)
		return NULL;
	if (s->started) {
		pthread_mutex_lock(&s->mu);
		s->quit = true;
		pthread_cond_signal(&s->cv);
		pthread_mutex_unlock(&s->mu);
		pthread_join(s->th, NULL);
	}
	if (s->ev)
		event_free(s->ev);
	close(s->wake[0]);
	close(s->wake[1]);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
	free(s->failed);
	attest_chain_close(s->f);
	free(s);
	return NULL;
}
