/* aispd, the node daemon: reads its config, runs the startup checks, then serves tasks from
 * Redis on one libevent loop until SIGTERM/SIGINT (drain, release, exit 0). */
#include <event2/event.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/spawn.h"
#include "common/util.h"
#include "daemon/node.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: aispd [--config PATH] [--check] [--version]\n"
	           "  --config PATH  configuration file (default " CONFIG_PATH_DEFAULT ")\n"
	           "  --check        run the startup checks and exit (0 when all pass)\n");
}

static void on_stop_signal(evutil_socket_t sig, short what, void *arg)
{
	log_info("%s received", sig == SIGTERM ? "SIGTERM" : "SIGINT");
	node_drain(arg);
}

static void on_hup(evutil_socket_t sig, short what, void *arg)
{
	log_warn("SIGHUP: reload not supported; restart aispd to apply a new configuration");
}

static void free_event(struct event *ev)
{
	if (ev)
		event_free(ev);
}

static void on_pool_gone(void *arg)
{
	event_base_loopexit(arg, NULL);
}

/* Everything the node holds, once the loop has ended. A pool that was not shut down (a
 * startup failure after it began warming) is shut down here first. */
static void node_teardown(node *n)
{
	if (n->pool && !n->stopping) {
		pool_shutdown(n->pool, on_pool_gone, n->base);
		event_base_dispatch(n->base);
	}
	http_stop(n);
	n->rc = rconn_free(n->rc);
	n->rd = rconn_free(n->rd);
	struct event *evs[] = {n->ev_term,  n->ev_int,     n->ev_hup,  n->ev_heartbeat,
	                       n->ev_lease, n->ev_reclaim, n->ev_drain};
	for (size_t i = 0; i < ARRAY_SIZE(evs); i++)
		free_event(evs[i]);
	n->pool = pool_free(n->pool);
	n->sbx = sandbox_ctx_free(n->sbx);
	for (size_t i = 0; i < n->n_rts; i++)
		sandbox_runtime_free(n->rts[i]);
	free(n->rts);
	for (size_t i = 0; i < n->n_imgs; i++)
		sandbox_image_deinit(&n->imgs[i]);
	free(n->imgs);
	n->key = attest_key_free(n->key);
	free(n->pubkey_pem);
	free(n->runtimes_csv);
	free(n->images_csv);
	if (n->state_dirfd >= 0)
		close(n->state_dirfd);
}

/* Serves until the drain is over (SIGTERM/SIGINT). */
static void serve(node *n)
{
	struct event_base *base = n->base;
	const config *c = n->cfg;
	n->ev_term = evsignal_new(base, SIGTERM, on_stop_signal, n);
	n->ev_int = evsignal_new(base, SIGINT, on_stop_signal, n);
	n->ev_hup = evsignal_new(base, SIGHUP, on_hup, n);
	event_add(n->ev_term, NULL);
	event_add(n->ev_int, NULL);
	event_add(n->ev_hup, NULL);

	log_info("aispd %s node %s: %lld slots, runtimes %s, images %s, redis %s, http %s",
	         AISP_VERSION, c->node_id, (long long)c->slots, n->runtimes_csv, n->images_csv,
	         c->redis_address, c->http_listen[0] ? c->http_listen : "off");
	node_start(n);
	event_base_dispatch(base);

	log_info("aispd stopped");
}

int main(int argc, char **argv)
{
	const char *path = NULL;
	bool check_only = false;
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"check", no_argument, NULL, 'k'},
	    {"version", no_argument, NULL, 'V'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	for (int o; (o = getopt_long(argc, argv, "c:h", opts, NULL)) != -1;) {
		switch (o) {
		case 'c':
			path = optarg;
			break;
		case 'k':
			check_only = true;
			break;
		case 'V':
			printf("aispd %s\n", AISP_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}

	_cleanup_err_ err *e = NULL;
	config cfg;
	config_defaults(&cfg);
	if (config_load(&cfg, path ? path : CONFIG_PATH_DEFAULT, &e) < 0) {
		log_error("config: %s", err_msg(e));
		return 1;
	}
	log_set_level(cfg.log_level);
	srandom((unsigned)(now_mono_us() ^ getpid()));
	signal(SIGPIPE, SIG_IGN);
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
		log_warn("PR_SET_CHILD_SUBREAPER failed: orphaned runtime processes will not be "
		         "reaped by aispd");

	struct event_base *base = event_base_new();
	if (!base || spawn_loop_init(base, &e) < 0) {
		log_error("event loop: %s", e ? err_msg(e) : "event_base_new failed");
		return 1;
	}
	node n = {.cfg = &cfg, .base = base, .state_dirfd = -1, .started_ms = now_wall_ms()};
	int rc = 0;
	if (checks_run(&n, check_only, &e) < 0) {
		log_error("startup check failed: %s", err_msg(e));
		rc = 1;
	} else if (check_only) {
		printf("aispd: all startup checks passed\n");
	} else if (http_start(&n, &e) < 0) {
		log_error("%s", err_msg(e));
		rc = 1;
	} else {
		serve(&n);
	}
	node_teardown(&n);
	spawn_loop_deinit();
	event_base_free(base);
	config_deinit(&cfg);
	return rc;
}
