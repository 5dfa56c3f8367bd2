/* Unit tests of aispd's configuration (daemon/config.c) and metrics rendering
 * (daemon/metrics.c). The Redis side is covered by tests/integration/test-daemon.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/log.h"
#include "common/xalloc.h"
#include "daemon/config.h"
#include "daemon/cost.h"
#include "daemon/metrics.h"

#define MB (1024LL * 1024)

/* Loads text over the defaults; returns the error message (caller frees) or NULL. */
static char *load(config *c, const char *text)
{
	err *e = NULL;
	config_defaults(c);
	if (config_load_string(c, "t.conf", text, &e) == 0)
		return NULL;
	char *m = xstrdup(err_msg(e));
	err_free(e);
	return m;
}

static void expect_error(const char *text, const char *want)
{
	config c;
	char *m = load(&c, text);
	if (!m || strcmp(m, want) != 0)
		fail_msg("config:\n%s\ngot:  %s\nwant: %s", text, m ? m : "(no error)", want);
	free(m);
	config_deinit(&c);
}

/* Loads text and expects exactly these problems (NULL-terminated), in order. */
static void expect_errors(const char *text, const char *const *want)
{
	config c;
	free(load(&c, text));
	size_t n = 0;
	while (want[n])
		n++;
	for (size_t i = 0; i < n || i < c.n_errors; i++) {
		const char *g = i < c.n_errors ? c.errors[i] : "(none)";
		const char *w = i < n ? want[i] : "(none)";
		if (strcmp(g, w))
			fail_msg("config:\n%s\nproblem %zu\ngot:  %s\nwant: %s", text, i, g, w);
	}
	config_deinit(&c);
}

static void test_defaults(void **state)
{
	config c;
	config_defaults(&c);
	assert_non_null(c.node_id);
	assert_true(strlen(c.node_id) > 0);
	assert_int_equal(c.slots, 4);
	assert_string_equal(c.state_dir, "/var/lib/aisp/state");
	assert_string_equal(c.run_dir, "/run/aisp");
	assert_string_equal(c.key_path, "/etc/aisp/node-key/private.pem");
	assert_false(c.create_key);
	assert_string_equal(c.redis_address, "127.0.0.1:6379");
	assert_null(c.redis_password);
	assert_int_equal(c.redis_timeout_ms, 2000);
	assert_int_equal(c.result_ttl_s, 86400);
	assert_int_equal(c.reclaim_ms, 30000);
	assert_int_equal(c.max_deliveries, 3);
	assert_int_equal(c.block_ms, 1000);
	assert_string_equal(c.image_store, "/var/lib/aisp/images");
	assert_string_equal(c.image_default, "default");
	assert_string_equal(c.runtime_default, "runsc");
	assert_int_equal(c.n_enabled, 2);
	assert_string_equal(c.enabled[0], "runsc");
	assert_string_equal(c.enabled[1], "runc");
	assert_null(c.enabled[2]);
	assert_int_equal(c.limits_default.cpus_milli, 4000);
	assert_int_equal(c.limits_default.memory_bytes, 4096 * MB);
	assert_int_equal(c.limits_default.timeout_ms, 600000);
	assert_int_equal(c.limits_default.stdout_bytes, 1 * MB);
	assert_memory_equal(&c.limits_default, &c.limits_max, sizeof(proto_limits));
	assert_int_equal(c.pool_max_live, 32);
	assert_int_equal(c.pool_max_creating, 2);
	assert_int_equal(c.pool_max_used, 16);
	assert_int_equal(c.n_targets, 0);
	assert_string_equal(c.http_listen, "127.0.0.1:9464");
	char *l = config_enabled_list(&c, ", ");
	assert_string_equal(l, "runsc, runc");
	free(l);
	config_deinit(&c);
}

static void test_full(void **state)
{
	config c;
	char *m = load(&c, "[node]\n"
	                   "id = node-7\n"
	                   "slots = 8\n"
	                   "state_dir = /srv/state\n"
	                   "create_key = yes\n"
	                   "log_level = debug\n"
	                   "drain_s = 5\n"
	                   "[redis]\n"
	                   "address = unix:/run/redis.sock\n"
	                   "password = s3cret\n"
	                   "user = aisp-node\n"
	                   "reclaim_ms = 3000\n"
	                   "max_deliveries = 5\n"
	                   "[images]\n"
	                   "store = /srv/images\n"
	                   "default = py\n"
	                   "[runtime.crun]\n"
	                   "path = /usr/bin/crun\n"
	                   "kind = oci\n"
	                   "flags = --debug  --systemd-cgroup\n"
	                   "[runtimes]\n"
	                   "default = runc\n"
	                   "enabled = runc,crun\n"
	                   "[limits]\n"
	                   "cpus = 0.5\n"
	                   "memory_mb = 512\n"
	                   "max_memory_mb = 8192\n"
	                   "timeout_s = 30\n"
	                   "[pool]\n"
	                   "max_live = 10\n"
	                   "max_used = 0\n"
	                   "runc/default/python = 2\n"
	                   "crun/py/shell = 0\n"
	                   "[http]\n"
	                   "listen =\n");
	if (m)
		fail_msg("%s", m);
	assert_string_equal(c.node_id, "node-7");
	assert_int_equal(c.slots, 8);
	assert_string_equal(c.state_dir, "/srv/state");
	assert_true(c.create_key);
	assert_int_equal(c.log_level, LOG_LVL_DEBUG);
	assert_int_equal(c.drain_s, 5);
	assert_string_equal(c.redis_address, "unix:/run/redis.sock");
	assert_string_equal(c.redis_password, "s3cret");
	assert_string_equal(c.redis_user, "aisp-node");
	assert_int_equal(c.reclaim_ms, 3000);
	assert_int_equal(c.max_deliveries, 5);
	assert_string_equal(c.image_store, "/srv/images");
	assert_string_equal(c.image_default, "py");
	const config_runtime *r = config_find_runtime(&c, "crun");
	assert_non_null(r);
	assert_string_equal(r->path, "/usr/bin/crun");
	assert_string_equal(r->kind, "oci");
	assert_string_equal(r->flags[0], "--debug");
	assert_string_equal(r->flags[1], "--systemd-cgroup");
	assert_null(r->flags[2]);
	assert_null(config_find_runtime(&c, "runsc"));
	assert_true(config_runtime_enabled(&c, "crun"));
	assert_false(config_runtime_enabled(&c, "runsc"));
	assert_int_equal(c.limits_default.cpus_milli, 500);
	assert_int_equal(c.limits_default.memory_bytes, 512 * MB);
	assert_int_equal(c.limits_max.memory_bytes, 8192 * MB);
	assert_int_equal(c.limits_default.timeout_ms, 30000);
	assert_int_equal(c.limits_max.timeout_ms, 600000);
	assert_int_equal(c.pool_max_live, 10);
	assert_int_equal(c.pool_max_used, 0); /* 0: each used sandbox goes right after its task */
	assert_int_equal(c.n_targets, 2);
	assert_string_equal(c.targets[0].runtime, "runc");
	assert_string_equal(c.targets[0].image, "default");
	assert_string_equal(c.targets[0].lang, "python");
	assert_int_equal(c.targets[0].warm, 2);
	assert_string_equal(c.targets[1].runtime, "crun");
	assert_int_equal(c.targets[1].warm, 0);
	assert_string_equal(c.http_listen, "");
	config_deinit(&c);
}

static void test_errors(void **state)
{
	expect_error("[node]\nslots = 4x\n", "t.conf:2: [node] slots = \"4x\": not an integer");
	expect_error("[node]\nslots = 0\n", "t.conf:2: [node] slots = \"0\": out of range 1..1024");
	expect_error("[pool]\nmax_used = 4097\n",
	             "t.conf:2: [pool] max_used = \"4097\": out of range 0..4096");
	expect_error("[node]\nslots = \n", "t.conf:2: [node] slots = \"\": not an integer");
	expect_error("\n\n[redis]\nreclaim_ms = 99999999999999999999\n",
	             "t.conf:4: [redis] reclaim_ms = \"99999999999999999999\": out of range "
	             "300..86400000");
	expect_error("[node]\nid = has space\n",
	             "t.conf:2: [node] id = \"has space\": expected [A-Za-z0-9._-]{1,64}");
	expect_error("[node]\nstate_dir = relative\n",
	             "t.conf:2: [node] state_dir = \"relative\": must be an absolute path");
	expect_error("[node]\ncreate_key = maybe\n",
	             "t.conf:2: [node] create_key = \"maybe\": expected true or false");
	expect_error("[node]\nlog_level = loud\n",
	             "t.conf:2: [node] log_level = \"loud\": expected debug, info, warn or error");
	expect_error("[node]\nslot = 4\n", "t.conf:2: [node] unknown key \"slot\"");
	expect_error("[nodes]\nslots = 4\n", "t.conf:2: unknown section [nodes]");
	expect_error("[redis]\naddress = localhost\n",
	             "t.conf:2: [redis] address: \"localhost\": expected host:port or unix:/path");
	expect_error("[redis]\naddress = h:70000\n",
	             "t.conf:2: [redis] address: \"h:70000\": bad port");
	expect_error("[limits]\ncpus = 1.2345\n",
	             "t.conf:2: [limits] cpus = \"1.2345\": expected a number from 0.01 to 1024 "
	             "with at most 3 decimals (like 2 or 0.5)");
	expect_error("[limits]\ncpus = 0\n",
	             "t.conf:2: [limits] cpus = \"0\": expected a number from 0.01 to 1024 with "
	             "at most 3 decimals (like 2 or 0.5)");
	/* below the kernel's smallest CFS quota: a sandbox with it could never start */
	expect_error("[limits]\nmax_cpus = 0.005\n",
	             "t.conf:2: [limits] max_cpus = \"0.005\": expected a number from 0.01 to "
	             "1024 with at most 3 decimals (like 2 or 0.5)");
	expect_error("[limits]\ncpus = 2000\n",
	             "t.conf:2: [limits] cpus = \"2000\": expected a number from 0.01 to 1024 "
	             "with at most 3 decimals (like 2 or 0.5)");
	expect_error("[limits]\ntimeout_s = 1.5\nmax_timeout_s = 1.25\n",
	             "t.conf:3: [limits] max_timeout_s = 1.25 is below timeout_s = 1.5 (line 2)");
	expect_error("[limits]\nmemory = 5\n", "t.conf:2: [limits] unknown key \"memory\"");
	expect_error("[limits]\nmemory_mb = -1\n",
	             "t.conf:2: [limits] memory_mb = \"-1\": out of range 1..1048576");
	expect_error(
	    "[pool]\nrunc/python = 2\n",
	    "t.conf:2: [pool] unknown key \"runc/python\" (targets are runtime/image/lang = N)");
	expect_error("[runtime.crun]\nkind = docker\n",
	             "t.conf:2: [runtime.crun] kind = \"docker\": expected runsc, runc or oci");
	expect_error("[http]\nlisten = nowhere\n",
	             "t.conf:2: [http] listen = \"nowhere\": expected host:port");
	expect_error("[node]\nthis is not ini\n",
	             "t.conf:2: syntax error (expected [section] or key = value)");
	expect_error("[runtime.runsc]\nplatform = systrop\n",
	             "t.conf:2: [runtime.runsc] platform = \"systrop\": expected ptrace, systrap "
	             "or kvm");
	expect_error("slots = 4\n", "t.conf:1: \"slots\" is outside any [section]");
	/* err is the first problem */
	expect_error("[node]\nslots = x\nslots = y\n",
	             "t.conf:2: [node] slots = \"x\": not an integer");
}

/* Every problem in one pass, each at its line. */
static void test_all_errors(void **state)
{
	static const char *const many[] = {
	    "t.conf:2: [node] slots = \"x\": not an integer",
	    "t.conf:3: [node] slots: set twice (first on line 2)",
	    "t.conf:5: syntax error (expected [section] or key = value)",
	    "t.conf:6: [redis] unknown key \"adress\"",
	    "t.conf:8: syntax error (expected [section] or key = value)",
	    /* "[http" is no section header: still in [redis] */
	    "t.conf:9: [redis] unknown key \"listen\"",
	    NULL,
	};
	expect_errors("[node]\nslots = x\nslots = 3\n[redis]\nnot a line\nadress = x:1\n"
	              "[http\nmore garbage\nlisten = nowhere\n",
	              many);
	/* a key set twice is one problem even when both values are fine */
	static const char *const twice[] = {
	    "t.conf:5: [pool] runc/default/python: set twice (first on line 2)", NULL};
	expect_errors("[pool]\nrunc/default/python = 1\n[node]\n[pool]\nrunc/default/python = 2\n"
	              "[pool]\n",
	              twice);
	/* an indented line is an ordinary line (never an inih continuation of the last value) */
	config c;
	char *m = load(&c, "[node]\nid = n1\n    slots = 7\n\tdrain_s = 3\n");
	assert_null(m);
	assert_string_equal(c.node_id, "n1");
	assert_int_equal(c.slots, 7);
	assert_int_equal(c.drain_s, 3);
	config_deinit(&c);
	/* a line longer than inih's buffer is refused, not split in two */
	char *text = xasprintf("[node]\nid = %0250d\nslots = 3\n", 7);
	static const char *const lng[] = {"t.conf:2: line longer than 198 bytes", NULL};
	expect_errors(text, lng);
	free(text);
	/* CRLF line ends and a UTF-8 BOM are fine */
	m = load(&c, "\xEF\xBB\xBF[node]\r\nslots = 5\r\n\r\n; c\r\n");
	assert_null(m);
	assert_int_equal(c.slots, 5);
	assert_int_equal(config_line_of(&c, "node", "slots"), 2);
	assert_int_equal(config_line_of(&c, "node", NULL), 1);
	char *loc = config_loc(&c, "node", "slots");
	assert_string_equal(loc, "t.conf:2");
	free(loc);
	loc = config_loc(&c, "node", "drain_s"); /* not set: the section's line */
	assert_string_equal(loc, "t.conf:1");
	free(loc);
	assert_null(config_loc(&c, "redis", "address"));
	config_deinit(&c);
}

static void test_validation(void **state)
{
	expect_error("[runtimes]\ndefault = crun\n",
	             "t.conf:2: [runtimes] default \"crun\" is not enabled (enabled: runsc, runc)");
	expect_error("[runtimes]\nenabled = ,\n", "t.conf:2: [runtimes] enabled is empty");
	expect_error("[runtimes]\ndefault = crun\nenabled = crun\n",
	             "t.conf:3: [runtime.crun] needs kind = runsc, runc or oci");
	expect_error("[runtime.crun]\npath = /usr/bin/crun\n[runtimes]\nenabled = crun, runc\n"
	             "default = runc\n",
	             "t.conf:1: [runtime.crun] needs kind = runsc, runc or oci");
	expect_error("[runtime.runc]\nplatform = kvm\n",
	             "t.conf:2: [runtime.runc] platform: only runsc has platforms (this runtime's "
	             "kind is guessed from its name: oci)");
	/* max_* below the default: both values, both lines, or which one is built in */
	expect_error("[limits]\nmemory_mb = 8192\n",
	             "t.conf:2: [limits] memory_mb = 8192 is above max_memory_mb = 4096 (the "
	             "built-in maximum: set max_memory_mb too)");
	expect_error("[limits]\nmax_pids = 100\n",
	             "t.conf:2: [limits] max_pids = 100 is below pids = 256 (the built-in "
	             "default: set pids too)");
	expect_error("[limits]\nmemory_mb = 512\n\nmax_memory_mb = 256\n",
	             "t.conf:4: [limits] max_memory_mb = 256 is below memory_mb = 512 (line 2)");
	expect_error("[pool]\nkata/default/python = 1\n",
	             "t.conf:2: [pool] kata/default/python: runtime \"kata\" is not enabled "
	             "(enabled: runsc, runc)");
	expect_error("[pool]\nrunc/default/cobol = 1\n",
	             "t.conf:2: [pool] runc/default/cobol: unknown language \"cobol\" (valid: "
	             "python, javascript, shell)");
	static const char *const all[] = {
	    "t.conf:2: [runtimes] default \"crun\" is not enabled (enabled: runsc, runc)",
	    "t.conf:4: [limits] max_cpus = 2 is below cpus = 3 (line 5)",
	    "t.conf:7: [pool] runc/default/cobol: unknown language \"cobol\" (valid: python, "
	    "javascript, shell)",
	    NULL,
	};
	expect_errors("[runtimes]\ndefault = crun\n[limits]\nmax_cpus = 2\ncpus = 3\n[pool]\n"
	              "runc/default/cobol = 1\n",
	              all);
}

/* [redis] Sentinel, WAIT and the TLS sidecar (issue 23). */
static void test_redis_sentinel(void **state)
{
	config c;
	char *m = load(&c, "[redis]\n"
	                   "sentinels = 10.0.0.1:26379, [::1]:26380 10.0.0.3:26379\n"
	                   "master_name = aisp\n"
	                   "sentinel_password = sp\n"
	                   "address_map = 10.0.0.5:6379->127.0.0.1:16379, "
	                   "10.0.0.6:6379->unix:/run/aisp/redis-b.sock\n"
	                   "wait_replicas = 1\n"
	                   "wait_timeout_ms = 250\n"
	                   "tls_sidecar = yes\n");
	if (m)
		fail_msg("%s", m);
	assert_string_equal(c.redis_sentinels[0], "10.0.0.1:26379");
	assert_string_equal(c.redis_sentinels[1], "[::1]:26380");
	assert_string_equal(c.redis_sentinels[2], "10.0.0.3:26379");
	assert_null(c.redis_sentinels[3]);
	assert_string_equal(c.redis_master_name, "aisp");
	assert_string_equal(c.redis_sentinel_password, "sp");
	assert_null(c.redis_sentinel_user);
	assert_string_equal(c.redis_address_map[0], "10.0.0.5:6379");
	assert_string_equal(c.redis_address_map[1], "127.0.0.1:16379");
	assert_string_equal(c.redis_address_map[2], "10.0.0.6:6379");
	assert_string_equal(c.redis_address_map[3], "unix:/run/aisp/redis-b.sock");
	assert_null(c.redis_address_map[4]);
	assert_int_equal(c.redis_wait_replicas, 1);
	assert_int_equal(c.redis_wait_timeout_ms, 250);
	assert_true(c.redis_tls_sidecar);
	config_deinit(&c);

	config_defaults(&c);
	assert_null(c.redis_sentinels);
	assert_int_equal(c.redis_wait_replicas, 0);
	assert_int_equal(c.redis_wait_timeout_ms, 1000);
	assert_false(c.redis_tls_sidecar);
	config_deinit(&c);

	expect_error("[redis]\naddress = 127.0.0.1:6379\nsentinels = 127.0.0.1:26379\n",
	             "t.conf:3: [redis] sentinels: address is set; they are alternatives");
	expect_error("[redis]\nsentinels = 127.0.0.1:26379\naddress = 127.0.0.1:6379\n",
	             "t.conf:3: [redis] address: sentinels are set; they are alternatives");
	expect_error("[redis]\nsentinels = 127.0.0.1:26379\n",
	             "t.conf: [redis] sentinels need master_name");
	expect_error("[redis]\nmaster_name = aisp\n",
	             "t.conf: [redis] master_name needs sentinels");
	expect_error("[redis]\nsentinels = unix:/x\n",
	             "t.conf:2: [redis] sentinels: \"unix:/x\": expected host:port");
	expect_error("[redis]\nsentinels = , ,\n",
	             "t.conf:2: [redis] sentinels: \", ,\": no address");
	expect_error("[redis]\nsentinels = h:1 h:2 h:3 h:4 h:5 h:6 h:7 h:8 h:9 h:10 h:11 h:12 h:13 "
	             "h:14 h:15 h:16 h:17\n",
	             "t.conf:2: [redis] sentinels: more than 16 addresses");
	expect_error("[redis]\nmaster_name = a b\n",
	             "t.conf:2: [redis] master_name = \"a b\": expected [A-Za-z0-9._-]{1,64}");
	expect_error("[redis]\naddress_map = 10.0.0.5:6379\n",
	             "t.conf:2: [redis] address_map: \"10.0.0.5:6379\": expected announced->local "
	             "(like 10.0.0.5:6379->127.0.0.1:16379)");
	expect_error(
	    "[redis]\naddress_map = 10.0.0.5:6379->nowhere\n",
	    "t.conf:2: [redis] address_map: \"nowhere\": expected host:port or unix:/path");
	expect_error("[redis]\naddress_map = a:1->b:2\n",
	             "t.conf: [redis] address_map needs sentinels");
	expect_error("[redis]\nsentinels = a:1\nmaster_name = m\ntls_sidecar = yes\n",
	             "t.conf: [redis] tls_sidecar with sentinels needs address_map (the sidecar's "
	             "tunnel to every Redis server Sentinel may name)");
	expect_error("[redis]\nwait_replicas = -1\n",
	             "t.conf:2: [redis] wait_replicas = \"-1\": out of range 0..64");
	expect_error("[redis]\nwait_timeout_ms = 0\n",
	             "t.conf:2: [redis] wait_timeout_ms = \"0\": out of range 1..60000");
	expect_error("[redis]\nwait_replicas = 1\nwait_timeout_ms = 1500\n",
	             "t.conf: [redis] wait_timeout_ms (1500) must be at most half of timeout_ms "
	             "(2000): commands queued behind a WAIT would time out");
	expect_error("[redis]\ntls_sidecar = maybe\n",
	             "t.conf:2: [redis] tls_sidecar = \"maybe\": expected true or false");
}

static void test_missing_file(void **state)
{
	config c;
	err *e = NULL;
	config_defaults(&c);
	assert_int_equal(config_load(&c, "/nonexistent/aispd.conf", &e), -1);
	assert_string_equal(err_msg(e),
	                    "/nonexistent/aispd.conf: cannot open: No such file or directory");
	err_free(e);
	config_deinit(&c);
}

/* deploy/aispd.conf.example documents every default: loading it changes nothing. */
static void test_example_is_defaults(void **state)
{
	const char *root = getenv("AISP_SOURCE_ROOT");
	if (!root)
		skip();
	char *path = xasprintf("%s/deploy/aispd.conf.example", root);
	config d, c;
	err *e = NULL;
	config_defaults(&d);
	config_defaults(&c);
	if (config_load(&c, path, &e) < 0)
		fail_msg("%s", err_msg(e));
	assert_string_equal(c.node_id, d.node_id);
	assert_int_equal(c.slots, d.slots);
	assert_string_equal(c.state_dir, d.state_dir);
	assert_string_equal(c.run_dir, d.run_dir);
	assert_string_equal(c.key_path, d.key_path);
	assert_string_equal(c.agent_path, d.agent_path);
	assert_int_equal(c.create_key, d.create_key);
	assert_int_equal(c.log_level, d.log_level);
	assert_int_equal(c.heartbeat_ms, d.heartbeat_ms);
	assert_int_equal(c.drain_s, d.drain_s);
	assert_string_equal(c.redis_address, d.redis_address);
	assert_null(c.redis_sentinels);
	assert_int_equal(c.redis_wait_replicas, d.redis_wait_replicas);
	assert_int_equal(c.redis_wait_timeout_ms, d.redis_wait_timeout_ms);
	assert_int_equal(c.redis_tls_sidecar, d.redis_tls_sidecar);
	assert_int_equal(c.redis_timeout_ms, d.redis_timeout_ms);
	assert_int_equal(c.result_ttl_s, d.result_ttl_s);
	assert_int_equal(c.reclaim_ms, d.reclaim_ms);
	assert_int_equal(c.max_deliveries, d.max_deliveries);
	assert_int_equal(c.block_ms, d.block_ms);
	assert_string_equal(c.image_store, d.image_store);
	assert_string_equal(c.image_default, d.image_default);
	assert_string_equal(c.runtime_default, d.runtime_default);
	assert_int_equal(c.n_enabled, d.n_enabled);
	assert_memory_equal(&c.limits_default, &d.limits_default, sizeof(proto_limits));
	assert_memory_equal(&c.limits_max, &d.limits_max, sizeof(proto_limits));
	assert_int_equal(c.pool_max_live, d.pool_max_live);
	assert_int_equal(c.pool_max_creating, d.pool_max_creating);
	assert_int_equal(c.pool_max_age_s, d.pool_max_age_s);
	assert_int_equal(c.pool_max_used, d.pool_max_used);
	assert_int_equal(c.n_targets, 0);
	assert_int_equal(c.n_runtimes, 0);
	assert_string_equal(c.http_listen, d.http_listen);
	assert_null(c.age_key_path);
	assert_int_equal(c.trust.n_issuers, 0);
	assert_int_equal(c.trust.min_level, d.trust.min_level);
	assert_int_equal(c.trust.clock_skew_s, d.trust.clock_skew_s);
	assert_int_equal(c.trust.revocation_poll_ms, d.trust.revocation_poll_ms);
	assert_false(c.llm_enabled); /* [llm] is shown commented out */
	assert_int_equal(c.cost_cpu_second_nusd, d.cost_cpu_second_nusd);
	config_deinit(&c);
	config_deinit(&d);
	free(path);
}

/* The cost of a run, exactly: 0.000024 USD per CPU-second, 0.0000025 USD per GiB-second. */
static void test_cost(void **state)
{
	proto_usage u = {.wall_ms = 1000, .cpu_ms = 1000, .memory_peak_bytes = 1LL << 30};
	assert_int_equal(cost_usage_micro_usd(&u, 24000, 2500), 27); /* 24 + 2.5, half up */
	u = (proto_usage){.wall_ms = 145, .cpu_ms = 145, .memory_peak_bytes = 40LL << 20};
	/* 145 * 24000 * 2^30 + 40 MiB * 145 * 2500, over 2^30 * 10^6: 3.494... */
	assert_int_equal(cost_usage_micro_usd(&u, 24000, 2500), 3);
	u.cpu_ms = 20; /* 0.48 + 0.014: 0.494 rounds down */
	assert_int_equal(cost_usage_micro_usd(&u, 24000, 2500), 0);
	u.cpu_ms = 21; /* 0.504 + 0.014: rounds up */
	assert_int_equal(cost_usage_micro_usd(&u, 24000, 2500), 1);
	assert_int_equal(cost_usage_micro_usd(&u, 0, 0), 0);
	u = (proto_usage){
	    .wall_ms = INT64_MAX, .cpu_ms = INT64_MAX, .memory_peak_bytes = INT64_MAX};
	assert_int_equal(cost_usage_micro_usd(&u, 1000000000000LL, 1000000000000LL), INT64_MAX);
	u = (proto_usage){.wall_ms = -5, .cpu_ms = -5, .memory_peak_bytes = 1};
	assert_int_equal(cost_usage_micro_usd(&u, 24000, 2500), 0);
}

/* [llm] and [cost] (chains): every key, exact prices, and every bad value's message. */
static void test_llm(void **state)
{
	config c;
	char *m = load(&c, "[llm]\nbase_url = https://openrouter.ai/api/v1\n"
	                   "api_key_file = /etc/aisp/llm.key\nmodels = a/b, c/d:free\n"
	                   "max_tokens = 2048\ntimeout_ms = 5000\nmax_attempts = 3\n"
	                   "retry_base_ms = 10\nprices = a/b:0.15:0.6, c/d:free:0:0, *:1.5e0:2\n"
	                   "[cost]\ncpu_second_usd = 0.000024\ngib_second_usd = 0.0000025\n");
	if (m)
		fail_msg("%s", m);
	assert_true(c.llm_enabled);
	assert_int_equal(c.n_llm_models, 2);
	assert_string_equal(c.llm_models[1], "c/d:free");
	assert_int_equal(c.llm_max_tokens, 2048);
	assert_int_equal(c.llm_max_attempts, 3);
	assert_int_equal(c.n_llm_prices, 3);
	assert_string_equal(c.llm_prices[0].model, "a/b");
	assert_int_equal(c.llm_prices[0].prompt_per_mtok, 150000);
	assert_int_equal(c.llm_prices[0].completion_per_mtok, 600000);
	assert_string_equal(c.llm_prices[1].model, "c/d:free");
	assert_int_equal(c.llm_prices[2].prompt_per_mtok, 1500000);
	assert_int_equal(c.cost_cpu_second_nusd, 24000);
	assert_int_equal(c.cost_gib_second_nusd, 2500);
	config_deinit(&c);
	expect_error("[llm]\nmodels = m\n", "t.conf: [llm] needs api_key_file");
	expect_error("[llm]\napi_key_file = /k\n",
	             "t.conf: [llm] needs models (the models steps may ask for)");
	expect_error("[llm]\napi_key_file = k\n",
	             "t.conf:2: [llm] api_key_file = \"k\": must be an absolute path");
	expect_error("[llm]\napi_key_file = /k\nmodels = m\nbase_url = http://127.0.0.1:1/v1\n",
	             "t.conf: [llm] base_url is http://: it needs allow_insecure_http = true, "
	             "which is for tests only");
	expect_error("[llm]\nmax_tokens = 0\n",
	             "t.conf:2: [llm] max_tokens = \"0\": out of range 1..1000000");
	expect_error("[llm]\nprices = m:0.1\n",
	             "t.conf:2: [llm] prices: \"m:0.1\": expected model:prompt_usd:completion_usd "
	             "per million tokens");
	expect_error("[llm]\nprices = m:0.1:-1\n",
	             "t.conf:2: [llm] prices = \"-1\": expected a price in USD, at most 6 decimals "
	             "(like 0.15)");
	expect_error("[llm]\nprice = m:1:1\n", "t.conf:2: [llm] unknown key \"price\"");
	expect_error("[cost]\ncpu_second_usd = 0.0000000001\n",
	             "t.conf:2: [cost] cpu_second_usd = \"0.0000000001\": expected a price in USD, "
	             "at most 9 decimals (like 0.15)");
	expect_error("[cost]\ncpu = 1\n", "t.conf:2: [cost] unknown key \"cpu\"");
}

static void test_histogram(void **state)
{
	metrics_hist h = {0};
	metrics_hist_observe(&h, 0.0005); /* <= 0.001 */
	metrics_hist_observe(&h, 0.001);  /* <= 0.001 (bounds are inclusive) */
	metrics_hist_observe(&h, 0.3);    /* <= 0.5 */
	metrics_hist_observe(&h, 1000);   /* +Inf */
	buf b = BUF_INIT;
	metrics_hist_render(&h, "x_seconds", "help text", &b);
	const char *s = buf_str(&b);
	assert_non_null(strstr(s, "# TYPE x_seconds histogram\n"));
	assert_non_null(strstr(s, "x_seconds_bucket{le=\"0.001\"} 2\n"));
	assert_non_null(strstr(s, "x_seconds_bucket{le=\"0.25\"} 2\n"));
	assert_non_null(strstr(s, "x_seconds_bucket{le=\"0.5\"} 3\n"));
	assert_non_null(strstr(s, "x_seconds_bucket{le=\"120\"} 3\n"));
	assert_non_null(strstr(s, "x_seconds_bucket{le=\"+Inf\"} 4\n"));
	assert_non_null(strstr(s, "x_seconds_count 4\n"));
	assert_non_null(strstr(s, "x_seconds_sum 1000.301500\n"));
	buf_deinit(&b);
}

static void test_render(void **state)
{
	metrics m = {0};
	m.tasks[PROTO_STATUS_OK] = 7;
	m.tasks[PROTO_STATUS_REJECTED] = 2;
	m.duplicates = 1;
	m.queue_lag_s = 1.5;
	buf b = BUF_INIT;
	metrics_render(&m, &b);
	const char *s = buf_str(&b);
	assert_non_null(strstr(s, "aisp_tasks_total{status=\"ok\"} 7\n"));
	assert_non_null(strstr(s, "aisp_tasks_total{status=\"rejected\"} 2\n"));
	assert_non_null(strstr(s, "aisp_tasks_total{status=\"timeout\"} 0\n"));
	assert_non_null(strstr(s, "aisp_duplicates_total 1\n"));
	assert_non_null(strstr(s, "aisp_queue_lag_seconds 1.500\n"));
	assert_non_null(strstr(s, "aisp_acquire_seconds_count 0\n"));
	assert_non_null(strstr(s, "aisp_execute_seconds_bucket{le=\"+Inf\"} 0\n"));
	assert_non_null(strstr(s, "aisp_publish_seconds_sum 0.000000\n"));
	buf_deinit(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_defaults),     cmocka_unit_test(test_full),
	    cmocka_unit_test(test_errors),       cmocka_unit_test(test_all_errors),
	    cmocka_unit_test(test_validation),   cmocka_unit_test(test_redis_sentinel),
	    cmocka_unit_test(test_missing_file), cmocka_unit_test(test_example_is_defaults),
	    cmocka_unit_test(test_histogram),    cmocka_unit_test(test_render),
	    cmocka_unit_test(test_llm),          cmocka_unit_test(test_cost),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
