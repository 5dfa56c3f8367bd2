/* aisp-gateway, the HTTP gateway: reads its config, keys file and signing key, then serves the
 * HTTP API on one libevent loop as a producer and consumer of the Redis protocol until
 * SIGTERM/SIGINT. `aisp-gateway key add` adds an API key to a keys file. */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "gateway/gateway.h"

#define SHUTDOWN_FLUSH_MS 3000

static void usage(FILE *f)
{
	fprintf(f, "usage: aisp-gateway [--config PATH] [--check] [--print-schema] [--version]\n"
	           "       aisp-gateway key add --file KEYS_FILE --id ID [--set NAME=VALUE]...\n"
	           "  --config PATH   configuration file (default " GW_CONFIG_PATH_DEFAULT ")\n"
	           "  --check         check the configuration, keys file and signing key, exit\n"
	           "  --print-schema  print the SQL of the call log table and exit\n"
	           "  key add         create an API key, append its SHA-256 and policy (--set,\n"
	           "                  e.g. --set allow_languages=python) to KEYS_FILE, print the\n"
	           "                  key once on stdout\n");
}

/* ---- key add ---- */

/* The keys file with a new key's section appended, checked as a whole (a bad --set fails
 * here, before anything is written). Returns 0 with the key in *key, or -1 with *e. */
static int key_text(const char *file, int dfd, const char *base, const char *id,
                    const char *const *sets, buf *text, char **key, err **e)
{
	gw_keys keys = {0};
	if (read_file_at(dfd, base, 4 * 1024 * 1024, text, e) < 0) {
		if (!*e || (*e)->code != ENOENT)
			return -1;
		*e = err_free(*e);
	}
	if (gw_keys_load_string(&keys, file, buf_str(text), e) < 0)
		return -1;
	for (size_t i = 0; i < keys.n; i++)
		if (!strcmp(keys.keys[i].id, id)) {
			gw_keys_deinit(&keys);
			return err_set(e, 0, "%s: key %s already exists", file, id);
		}
	gw_keys_deinit(&keys);
	*key = gw_key_generate();
	_cleanup_free_ char *section = gw_key_section(id, *key, sets);
	buf_append_str(text, section);
	if (gw_keys_load_string(&keys, file, buf_str(text), e) < 0)
		return -1;
	gw_keys_deinit(&keys);
	return 0;
}

/* Appends a new key to file (created 0600 when missing), atomically. */
static int key_append(const char *file, const char *id, const char *const *sets)
{
	_cleanup_free_ char *dcopy = xstrdup(file), *bcopy = xstrdup(file);
	const char *dir = dirname(dcopy), *base = basename(bcopy);
	_cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	_cleanup_err_ err *e = NULL;
	_cleanup_free_ char *key = NULL;
	buf text = BUF_INIT;
	int rc = 1;
	if (dfd < 0)
		err_set(&e, errno, "%s", dir);
	else if (key_text(file, dfd, base, id, sets, &text, &key, &e) == 0 &&
	         write_file_at(dfd, base, text.data, text.len, 0600, &e) == 0)
		rc = 0;
	buf_deinit(&text);
	if (rc) {
		fprintf(stderr, "aisp-gateway: %s\n", err_msg(e));
		return 1;
	}
	printf("%s\n", key);
	fprintf(stderr,
	        "aisp-gateway: key %s added to %s (only its SHA-256 is stored; the key "
	        "above is shown once)\n",
	        id, file);
	return 0;
}

static int key_add(int argc, char **argv)
{
	const char *file = NULL, *id = NULL;
	char **sets = xcalloc((size_t)argc + 1, sizeof(*sets));
	size_t n = 0;
	static const struct option opts[] = {{"file", required_argument, NULL, 'f'},
	                                     {"id", required_argument, NULL, 'i'},
	                                     {"set", required_argument, NULL, 's'},
	                                     {NULL, 0, NULL, 0}};
	optind = 1;
	for (int o; (o = getopt_long(argc, argv, "f:i:s:", opts, NULL)) != -1;) {
		if (o == 'f')
			file = optarg;
		else if (o == 'i')
			id = optarg;
		else if (o == 's' && strchr(optarg, '='))
			sets[n++] = xasprintf("%.*s = %s", (int)(strchr(optarg, '=') - optarg),
			                      optarg, strchr(optarg, '=') + 1);
		else
			return usage(stderr), free(sets), 2;
	}
	int rc = 2;
	if (!file || !id || optind != argc) {
		usage(stderr);
	} else if (!gw_key_id_valid(id)) {
		fprintf(stderr, "aisp-gateway: key id \"%s\" must match [A-Za-z0-9._-]{1,64}\n",
		        id);
	} else {
		rc = key_append(file, id, (const char *const *)sets);
	}
	for (size_t i = 0; i < n; i++)
		free(sets[i]);
	free(sets);
	return rc;
}

/* ---- the daemon ---- */

/* The signing key; with create_key a missing key is made (but --check writes nothing: it only
 * says the key would be made). */
static int load_key(gw *g, bool check, err **e)
{
	const gw_config *c = g->cfg;
	bool missing = access(c->key_path, F_OK) < 0 && errno == ENOENT;
	if (missing && c->create_key && check) {
		printf("aisp-gateway: the signing key %s is missing and will be created at start\n",
		       c->key_path);
		return 0;
	}
	if (missing && c->create_key) {
		_cleanup_free_ char *copy = xstrdup(c->key_path);
		attest_key *k = NULL;
		if (strcmp(basename(copy), "private.pem"))
			return err_set(e, 0, "create_key: key must be DIR/private.pem, not %s",
			               c->key_path);
		free(copy);
		copy = xstrdup(c->key_path);
		const char *dir = dirname(copy);
		if (mkdir_p(dir, 0700, e) < 0 || attest_key_generate(&k, e) < 0 ||
		    attest_key_write_pair(k, dir, false, e) < 0) {
			attest_key_free(k);
			return err_prefix(e, "create_key %s", dir);
		}
		attest_key_free(k);
		log_info("created the gateway's signing key %s", c->key_path);
	}
	if (attest_key_load_private(&g->key, c->key_path, e) < 0)
		return err_prefix(e, "signing key (create it with `aisp keygen --out DIR` or set "
		                     "create_key = true)");
	g->pubkey_pem = attest_key_public_pem(g->key);
	return 0;
}

static int prepare(gw *g, bool check, err **e)
{
	if (gw_keys_load(&g->keys, g->cfg->keys_file, e) < 0)
		return err_prefix(e, "keys file");
	g->buckets = xcalloc(g->keys.n + 1, sizeof(*g->buckets));
	return load_key(g, check, e);
}

static void on_rc_ready(rconn *rc, void *arg)
{
	gw_calllog_redis_ready(((gw *)arg)->log);
}

static void on_rd_ready(rconn *rc, void *arg)
{
	gw *g = arg;
	g->reading = false;
	gw_replies_read(g);
	gw_waiters_poll_all(g); /* a result published while the reader was away */
}

static void on_flush_tick(evutil_socket_t fd, short what, void *arg)
{
	gw *g = arg;
	static int64_t until;
	if (!until)
		until = now_mono_ms() + SHUTDOWN_FLUSH_MS;
	if ((gw_calllog_backlog(g->log) == 0 && gw_calllog_idle(g->log)) || now_mono_ms() > until)
		event_base_loopexit(g->base, NULL);
}

static void on_stop(evutil_socket_t sig, short what, void *arg)
{
	gw *g = arg;
	if (g->stopping) {
		event_base_loopexit(g->base, NULL);
		return;
	}
	log_info("%s received: stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
	gw_waiters_free_all(g); /* each gets 503 (or an error event) */
	gw_http_close_listener(g);
	g->stopping = true;
	/* the replies drain and records already handed to Redis get their replies; then exit */
	struct event *ev = event_new(g->base, -1, EV_PERSIST, on_flush_tick, g);
	struct timeval tv = {0, 50000};
	event_add(ev, &tv);
	g->ev_flush = ev;
}

static void serve(gw *g)
{
	const gw_config *c = g->cfg;
	rconn_opts o = {.address = c->redis_address,
	                .user = c->redis_user,
	                .password = c->redis_password,
	                .timeout_ms = c->redis_timeout_ms,
	                .arg = g};
	o.name = "cmd";
	o.on_ready = on_rc_ready;
	g->rc = rconn_new(g->base, &o);
	o.name = "replies";
	o.on_ready = on_rd_ready;
	g->rd = rconn_new(g->base, &o);
	g->log = gw_calllog_new(g);
	g->ev_term = evsignal_new(g->base, SIGTERM, on_stop, g);
	g->ev_int = evsignal_new(g->base, SIGINT, on_stop, g);
	event_add(g->ev_term, NULL);
	event_add(g->ev_int, NULL);
	log_info("aisp-gateway %s id %s: http %s, redis %s, reply stream %s, %zu API keys, call "
	         "log %s",
	         AISP_VERSION, c->id, c->listen, c->redis_address, g->reply_stream, g->keys.n,
	         c->postgres[0] ? "outbox + postgres" : "outbox only");
	event_base_dispatch(g->base);
	log_info("aisp-gateway stopped");
}

static void teardown(gw *g)
{
	gw_waiters_free_all(g);
	gw_http_stop(g);
	g->stopping = true;
	g->rc = rconn_free(g->rc);
	g->rd = rconn_free(g->rd);
	g->log = gw_calllog_free(g->log);
	struct event *evs[] = {g->ev_term, g->ev_int, g->ev_flush};
	for (size_t i = 0; i < ARRAY_SIZE(evs); i++)
		if (evs[i])
			event_free(evs[i]);
	gw_keys_deinit(&g->keys);
	free(g->buckets);
	g->key = attest_key_free(g->key);
	free(g->pubkey_pem);
	free(g->reply_stream);
}

static int run(const char *path, bool check)
{
	_cleanup_err_ err *e = NULL;
	gw_config cfg;
	gw_config_defaults(&cfg);
	if (gw_config_load(&cfg, path, &e) < 0) {
		log_error("config: %s", err_msg(e));
		gw_config_deinit(&cfg);
		return 1;
	}
	log_set_level(cfg.log_level);
	gw g = {.cfg = &cfg};
	g.reply_stream = xasprintf(GW_REPLY_PREFIX "%s", cfg.id);
	int rc = 0;
	if (prepare(&g, check, &e) < 0) {
		log_error("%s", err_msg(e));
		rc = 1;
	} else if (check) {
		printf("aisp-gateway: configuration, keys file (%zu keys) and signing key %s are "
		       "valid\n",
		       g.keys.n, g.key ? attest_key_id(g.key) : "(to be created)");
	} else {
		g.base = event_base_new();
		if (gw_http_start(&g, &e) < 0) {
			log_error("%s", err_msg(e));
			rc = 1;
		} else {
			serve(&g);
		}
	}
	teardown(&g);
	if (g.base)
		event_base_free(g.base);
	gw_config_deinit(&cfg);
	return rc;
}

int main(int argc, char **argv)
{
	if (argc >= 3 && !strcmp(argv[1], "key") && !strcmp(argv[2], "add"))
		return key_add(argc - 2, argv + 2);
	const char *path = GW_CONFIG_PATH_DEFAULT;
	bool check = false;
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'}, {"check", no_argument, NULL, 'k'},
	    {"print-schema", no_argument, NULL, 'p'}, {"version", no_argument, NULL, 'V'},
	    {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0}};
	for (int o; (o = getopt_long(argc, argv, "c:h", opts, NULL)) != -1;) {
		switch (o) {
		case 'c':
			path = optarg;
			break;
		case 'k':
			check = true;
			break;
		case 'p':
			printf("%s\n", gw_calllog_schema());
			return 0;
		case 'V':
			printf("aisp-gateway %s\n", AISP_VERSION);
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
	signal(SIGPIPE, SIG_IGN);
	return run(path, check);
}
