/* aispd, the node daemon: reads its config, runs the startup checks, then serves tasks from
 * Redis on one libevent loop until SIGTERM/SIGINT (drain, release, exit 0). `aispd --check`
 * runs every check (a sandbox per runtime included), reports every problem, and exits. */
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
#include "daemon/sidecar.h"

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: aispd [--config PATH] [--check] [--version]\n"
	        "  --config PATH  configuration file (default " CONFIG_PATH_DEFAULT ")\n"
	        "  --check        run every startup check, create and destroy a sandbox per\n"
	        "                 runtime, report every problem, exit 0 when none is an error\n");
}

static void on_stop_signal(evutil_socket_t sig, short what, void *arg)
{
	log_info("%s received", sig == SIGTERM ? "SIGTERM" : "SIGINT");
	consumer_drain(arg);
}

static void on_hup(evutil_socket_t sig, short what, void *arg)
{
	log_warn("SIGHUP: reload not supported; restart aispd to apply a new configuration");
}

/* Serves until the drain is over (SIGTERM/SIGINT, or another process has the node id).
 * Returns the exit status. */
static int serve(node *n)
{
	struct event_base *base = n->base;
	const config *c = n->cfg;
	struct event *sigs[] = {
	    evsignal_new(base, SIGTERM, on_stop_signal, n),
	    evsignal_new(base, SIGINT, on_stop_signal, n),
	    evsignal_new(base, SIGHUP, on_hup, n),
	};
	for (size_t i = 0; i < ARRAY_SIZE(sigs); i++)
		event_add(sigs[i], NULL);
	log_info("aispd %s node %s: %lld slots, runtimes %s, images %s, redis %s, http %s",
	         AISP_VERSION, c->node_id, (long long)c->slots, n->runtimes_csv, n->images_csv,
	         c->redis_sentinels ? "through Sentinel" : c->redis_address,
	         c->http_listen[0] ? c->http_listen : "off");
	consumer_start(n);
	event_base_dispatch(base);
	for (size_t i = 0; i < ARRAY_SIZE(sigs); i++)
		event_free(sigs[i]);
	log_info("aispd stopped");
	return n->exit_code;
}

/* Returns -1 to go on, or the exit status (--help, --version, a usage error). */
static int parse_args(int argc, char **argv, const char **path, bool *check_only)
{
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
			*path = optarg;
			break;
		case 'k':
			*check_only = true;
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
	return -1;
}

/* The process-wide settings every run needs, before the loop exists. */
static void setup_process(const config *cfg)
{
	log_set_level(cfg->log_level);
	srandom((unsigned)(now_mono_us() ^ getpid()));
	signal(SIGPIPE, SIG_IGN);
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
		log_warn("PR_SET_CHILD_SUBREAPER failed: orphaned runtime processes will not be "
		         "reaped by aispd");
}

/* --check: every check, then one line that sums them up. Returns the exit status. */
static int check(const config *cfg, struct event_base *base, int config_errors)
{
	checks k = {.cfg = cfg, .errors = config_errors};
	if (config_errors)
		log_warn("the checks below use the built-in default of every key with an error");
	node_check(cfg, base, &k);
	_cleanup_err_ err *se = NULL;
	if (sidecar_check(cfg, true, &se) < 0) /* [redis] tls_sidecar: the tunnel, live */
		checks_error(&k, "redis", "tls_sidecar", "%s", err_msg(se));
	if (k.errors)
		printf("aispd --check: %d error%s, %d warning%s\n", k.errors,
		       k.errors == 1 ? "" : "s", k.warnings, k.warnings == 1 ? "" : "s");
	else
		printf("aispd --check: all startup checks passed (%d warning%s)\n", k.warnings,
		       k.warnings == 1 ? "" : "s");
	return k.errors ? 1 : 0;
}

/* Builds the node on a loop and serves (or only checks). Returns the exit status. */
static int run(const config *cfg, bool check_only, int config_errors)
{
	_cleanup_err_ err *e = NULL;
	struct event_base *base = event_base_new();
	if (!base || spawn_loop_init(base, &e) < 0) {
		log_error("event loop: %s", e ? err_msg(e) : "event_base_new failed");
		return 1;
	}
	node *n = NULL;
	int rc = 0;
	if (check_only) {
		rc = check(cfg, base, config_errors);
	} else if (sidecar_check(cfg, false, &e) < 0 || node_new(&n, cfg, base, &e) < 0) {
		log_error("not starting: %s", err_msg(e));
		rc = 1;
	} else {
		rc = serve(n);
	}
	node_free(n);
	spawn_loop_deinit();
	event_base_free(base);
	return rc;
}

int main(int argc, char **argv)
{
	const char *path = NULL;
	bool check_only = false;
	int rc = parse_args(argc, argv, &path, &check_only);
	if (rc >= 0)
		return rc;
	_cleanup_err_ err *e = NULL;
	config cfg;
	config_defaults(&cfg);
	if (config_load(&cfg, path ? path : CONFIG_PATH_DEFAULT, &e) < 0) {
		/* every problem of the file, one line each; --check goes on to the other checks
		 * (a file that cannot be read has nothing to go on with) */
		for (size_t i = 0; i < cfg.n_errors; i++)
			log_error("config: %s", cfg.errors[i]);
		if (!cfg.n_errors)
			log_error("config: %s", err_msg(e));
		if (!check_only || !cfg.n_errors) {
			if (check_only)
				printf("aispd --check: 1 error, 0 warnings\n");
			config_deinit(&cfg);
			return 1;
		}
	}
	setup_process(&cfg);
	rc = run(&cfg, check_only, (int)cfg.n_errors);
	config_deinit(&cfg);
	return rc;
}
