/* Unit tests of aisp-gateway's pure parts (gateway/core.h): configuration, the keys file,
 * policy decisions, the token bucket, request translation, cost and problem+json. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/cleanup.h"
#include "common/xalloc.h"
#include "gateway/core.h"
#include "proto/json.h"

/* ---- configuration ---- */

static void test_config_defaults(void **state)
{
	gw_config c;
	gw_config_defaults(&c);
	assert_string_equal(c.listen, "127.0.0.1:8080"); /* loopback by default */
	assert_int_equal(c.max_headers_bytes, 16384);
	assert_true(strlen(c.id) <= GW_ID_MAX);
	gw_config_deinit(&c);
}

static void config_error(const char *text, const char *want)
{
	gw_config c;
	gw_config_defaults(&c);
	err *e = NULL;
	assert_int_equal(gw_config_load_string(&c, "gw.conf", text, &e), -1);
	if (!strstr(err_msg(e), want))
		fail_msg("got \"%s\", want \"%s\"", err_msg(e), want);
	err_free(e);
	gw_config_deinit(&c);
}

static void test_config_errors(void **state)
{
	config_error("[http]\nmax_connections = 12x\n",
	             "gw.conf:2: [http] max_connections = \"12x\": not an integer");
	config_error("[http]\n\nmax_connections = 0\n",
	             "gw.conf:3: [http] max_connections = \"0\": "
	             "out of range 1..1000000");
	config_error("[gateway]\nid = a/b\n", "gw.conf:2: [gateway] id = \"a/b\"");
	config_error("[gateway]\nid = abcdefghijklmnopqrstuvwxyz\n",
	             "expected [A-Za-z0-9._-]{1,24}");
	config_error("[gateway]\nlisten = nowhere\n", "expected an IP address and port");
	config_error("[gateway]\nlisten = localhost:8080\n", "expected an IP address and port");
	config_error("[redis]\naddress = nowhere\n", "expected host:port or unix:/path");
	config_error("[nope]\nx = 1\n", "gw.conf:2: unknown section [nope]");
	config_error("[redis]\ncolour = red\n", "[redis] unknown key \"colour\"");
	config_error("[gateway]\nwait_ms = 1000\npoll_ms = 2000\n",
	             "poll_ms 2000 is above wait_ms");
	config_error("[cost]\ncurrency = usd\n", "expected [A-Z0-9]{1,16}");
	config_error("[calllog]\noutbox_max = 10\n",
	             "gw.conf:2: [calllog] outbox_max = \"10\": out of range 1000..100000000");
}

static void test_config_values(void **state)
{
	gw_config c;
	gw_config_defaults(&c);
	err *e = NULL;
	assert_int_equal(gw_config_load_string(&c, "gw.conf",
	                                       "[gateway]\nid = gw-1\nlisten = [::1]:9000\n"
	                                       "[calllog]\npostgres = host=/tmp port=5\nbatch = 7\n"
	                                       "outbox_max = 5000\n",
	                                       &e),
	                 0);
	assert_string_equal(c.id, "gw-1");
	assert_string_equal(c.listen, "[::1]:9000");
	assert_string_equal(c.postgres, "host=/tmp port=5");
	assert_int_equal(c.batch, 7);
	assert_int_equal(c.outbox_max, 5000);
	gw_config_deinit(&c);
	gw_config_defaults(&c);
	assert_int_equal(c.outbox_max, 100000); /* the outbox is bounded by default */
	assert_string_equal(c.postgres, "");    /* and, without PostgreSQL, not written */
	gw_config_deinit(&c);
}

/* The shipped examples are valid files. */
static void test_examples_parse(void **state)
{
	const char *src = getenv("AISP_SOURCE_ROOT");
	if (!src)
		skip();
	_cleanup_free_ char *conf = xasprintf("%s/deploy/aisp-gateway.conf.example", src);
	_cleanup_free_ char *keys = xasprintf("%s/deploy/aisp-gateway-keys.conf.example", src);
	gw_config c;
	gw_config_defaults(&c);
	err *e = NULL;
	if (gw_config_load(&c, conf, &e) < 0)
		fail_msg("%s", err_msg(e));
	assert_string_equal(c.listen, "127.0.0.1:8080");
	gw_config_deinit(&c);
	gw_keys k = {0};
	if (gw_keys_load(&k, keys, &e) < 0)
		fail_msg("%s", err_msg(e));
	assert_int_equal(k.n, 1);
	assert_non_null(gw_keys_find(&k, "aisk_example-never-use-this-key", 31));
	gw_keys_deinit(&k);
}

/* ---- keys ---- */

static const char keys_text[] = "[key.alice]\n"
                                "hash = %s\n"
                                "allow_languages = python, shell\n"
                                "block_runtimes = runsc\n"
                                "max_memory_mb = 256\n"
                                "max_cpus = 1.5\n"
                                "rate_per_s = 0.5\n"
                                "burst = 2\n"
                                "trust_level = L1\n"
                                "[key.bob]\n"
                                "hash = %s\n"
                                "block_tools = run_code\n"
                                "requires_payment = true\n";

static void load_keys(gw_keys *k, char **ka, char **kb)
{
	*ka = gw_key_generate();
	*kb = gw_key_generate();
	char ha[72], hb[72];
	gw_key_hash_text(*ka, ha);
	gw_key_hash_text(*kb, hb);
	_cleanup_free_ char *text = xasprintf(keys_text, ha, hb);
	err *e = NULL;
	if (gw_keys_load_string(k, "keys.conf", text, &e) < 0)
		fail_msg("%s", err_msg(e));
}

static void test_keys_parse_and_find(void **state)
{
	gw_keys k = {0};
	char *ka, *kb;
	load_keys(&k, &ka, &kb);
	assert_int_equal(k.n, 2);
	assert_true(strncmp(ka, GW_API_KEY_PREFIX, 5) == 0);
	assert_int_equal(strlen(ka), 5 + 43);
	const gw_key *a = gw_keys_find(&k, ka, strlen(ka));
	assert_non_null(a);
	assert_string_equal(a->id, "alice");
	assert_int_equal(a->max.memory_bytes, 256LL * 1024 * 1024);
	assert_int_equal(a->max.cpus_milli, 1500);
	assert_int_equal(a->rate_milli, 500);
	assert_string_equal(a->trust_level, "L1");
	const gw_key *b = gw_keys_find(&k, kb, strlen(kb));
	assert_non_null(b);
	assert_true(b->requires_payment);
	assert_null(gw_keys_find(&k, "aisk_wrong", 10));
	assert_null(gw_keys_find(&k, ka, strlen(ka) - 1)); /* a prefix is not the key */
	free(ka);
	free(kb);
	gw_keys_deinit(&k);
}

static void keys_error(const char *text, const char *want)
{
	gw_keys k = {0};
	err *e = NULL;
	assert_int_equal(gw_keys_load_string(&k, "keys.conf", text, &e), -1);
	if (!strstr(err_msg(e), want))
		fail_msg("got \"%s\", want \"%s\"", err_msg(e), want);
	err_free(e);
	assert_int_equal(k.n, 0);
}

static void test_keys_errors(void **state)
{
	const char *h =
	    "hash = sha256:0000000000000000000000000000000000000000000000000000000000000001\n";
	keys_error("[key.a]\nhash = md5:00\n", "keys.conf:2: [key.a] hash: expected sha256:");
	keys_error("[key.a]\nallow_tools = x\n", "keys.conf: [key.a] has no hash");
	keys_error("[users]\nx = 1\n", "unknown section [users]");
	keys_error("[key.a b]\nx = 1\n", "key id must match");
	_cleanup_free_ char *t1 = xasprintf("[key.a]\n%smax_memory_mb = lots\n", h);
	keys_error(t1,
	           "keys.conf:3: [key.a] max_memory_mb = \"lots\": expected a positive integer");
	_cleanup_free_ char *t2 = xasprintf("[key.a]\n%smax_timeout_s = 0.0005\n", h);
	keys_error(t2, "expected a positive number with at most 3 decimals");
	_cleanup_free_ char *t3 = xasprintf("[key.a]\n%s[key.b]\n%s", h, h);
	keys_error(t3, "[key.b] has the same hash as [key.a]");
	_cleanup_free_ char *t4 = xasprintf("[key.a]\n%srate_per_s = 1\n", h);
	keys_error(t4, "rate_per_s needs burst");
	_cleanup_free_ char *t5 = xasprintf("[key.a]\n%strust_level = L9\n", h);
	keys_error(t5, "expected L0, L1 or L2");
	_cleanup_free_ char *t6 = xasprintf("[key.a]\n%smax_colour = 1\n", h);
	keys_error(t6, "[key.a] unknown key \"max_colour\"");
}

static void test_key_section(void **state)
{
	const char *const pol[] = {"allow_languages = python", NULL};
	_cleanup_free_ char *s = gw_key_section("new", "aisk_secret", pol);
	char h[72];
	gw_key_hash_text("aisk_secret", h);
	assert_non_null(strstr(s, "[key.new]\n"));
	assert_non_null(strstr(s, h));
	assert_null(strstr(s, "aisk_secret")); /* never the key itself */
	assert_non_null(strstr(s, "allow_languages = python\n"));
}

/* ---- policy ---- */

static void parse_task(const char *json, proto_task *t)
{
	proto_task_init(t);
	err *e = NULL;
	if (proto_task_parse(json, strlen(json), t, NULL, &e) < 0)
		fail_msg("%s", err_msg(e));
}

static void expect(const gw_key *k, const char *tool, const char *skill, const char *task,
                   gw_verdict v, const char *detail)
{
	proto_task t;
	gw_decision d = {0};
	if (task)
		parse_task(task, &t);
	gw_policy_check(k, tool, skill, task ? &t : NULL, NULL, &d);
	if (d.verdict != v)
		fail_msg("verdict %s (%s), want %s", gw_verdict_name(d.verdict),
		         d.detail ? d.detail : "", gw_verdict_name(v));
	if (detail && (!d.detail || !strstr(d.detail, detail)))
		fail_msg("detail \"%s\", want \"%s\"", d.detail ? d.detail : "", detail);
	gw_decision_deinit(&d);
	if (task)
		proto_task_deinit(&t);
}

static void test_policy(void **state)
{
	gw_keys k = {0};
	char *ka, *kb;
	load_keys(&k, &ka, &kb);
	const gw_key *a = &k.keys[0], *b = &k.keys[1];
	const char *ok = "{\"id\":\"t\",\"lang\":\"python\",\"code\":\"1\",\"runtime\":\"runc\"}";
	expect(a, "run_code", NULL, ok, GW_ALLOW, NULL);
	expect(a, "run_code", NULL, "{\"id\":\"t\",\"lang\":\"javascript\",\"code\":\"1\"}",
	       GW_DENY_LANGUAGE,
	       "language \"javascript\" is not allowed for key alice (allowed: python, shell)");
	expect(a, "run_code", NULL,
	       "{\"id\":\"t\",\"lang\":\"python\",\"code\":\"1\",\"runtime\":"
	       "\"runsc\"}",
	       GW_DENY_RUNTIME, "runtime \"runsc\" is blocked for key alice");
	expect(a, "run_code", NULL,
	       "{\"id\":\"t\",\"lang\":\"python\",\"code\":\"1\",\"limits\":{\"memory_mb\":512}}",
	       GW_DENY_LIMIT, "limits.memory_mb 512 is above the maximum 256 of key alice");
	expect(a, "run_code", NULL,
	       "{\"id\":\"t\",\"lang\":\"python\",\"code\":\"1\",\"limits\":{\"cpus\":2}}",
	       GW_DENY_LIMIT, "limits.cpus 2 is above the maximum 1.5 of key alice");
	/* a chain: every script step's language, and sealed steps cannot be checked */
	expect(a, "run_code", NULL,
	       "{\"id\":\"t\",\"runtime\":\"runc\",\"steps\":[{\"type\":\"script\",\"lang\":"
	       "\"python\",\"code\":\"1\"},{\"type\":\"script\",\"code\":\"1\"}]}",
	       GW_DENY_LANGUAGE, "language \"javascript\" is not allowed for key alice");
	expect(a, "run_code", NULL,
	       "{\"id\":\"t\",\"runtime\":\"runc\",\"steps\":[{\"type\":\"script\",\"lang\":"
	       "\"python\",\"code\":\"1\"}]}",
	       GW_ALLOW, NULL);
	expect(a, "run_code", NULL,
	       "{\"id\":\"t\",\"runtime\":\"runc\",\"steps_age\":\"YWdl\",\"reply_to\":"
	       "\"age1vad2rcdkxhkn3pdegps6nswx978va55fdzxh4e2cme29vw7wtpzqhsd3yz\"}",
	       GW_DENY_LANGUAGE, "the chain's steps are sealed (steps_age), so their languages");
	expect(b, "run_code", NULL,
	       "{\"id\":\"t\",\"steps_age\":\"YWdl\",\"reply_to\":"
	       "\"age1vad2rcdkxhkn3pdegps6nswx978va55fdzxh4e2cme29vw7wtpzqhsd3yz\"}",
	       GW_DENY_TOOL, "tool \"run_code\" is blocked for key bob");
	expect(b, "run_code", NULL, ok, GW_DENY_TOOL, "tool \"run_code\" is blocked for key bob");
	expect(b, "http_get", "http_get", NULL, GW_ALLOW, NULL);
	assert_int_equal(gw_verdict_status(GW_DENY_BAD_KEY), 401);
	assert_int_equal(gw_verdict_status(GW_DENY_RATE), 429);
	assert_int_equal(gw_verdict_status(GW_DENY_PAYMENT), 402);
	assert_int_equal(gw_verdict_status(GW_DENY_IMAGE), 403);
	free(ka);
	free(kb);
	gw_keys_deinit(&k);
}

static void test_policy_defaults_and_lists(void **state)
{
	const char *h =
	    "hash = sha256:0000000000000000000000000000000000000000000000000000000000000001\n";
	_cleanup_free_ char *text = xasprintf(
	    "[key.r]\n%sallow_runtimes = runc\nallow_images = default\nmax_memory_mb = 64\n"
	    "block_skills = shell_exec\n",
	    h);
	gw_keys k = {0};
	err *e = NULL;
	assert_int_equal(gw_keys_load_string(&k, "k", text, &e), 0);
	const gw_key *r = &k.keys[0];
	expect(r, "run_code", NULL, "{\"id\":\"t\",\"lang\":\"python\",\"code\":\"1\"}",
	       GW_DENY_RUNTIME, "key r may use the runtimes runc only: name one in \"runtime\"");
	expect(r, "run_code", NULL,
	       "{\"id\":\"t\",\"lang\":\"python\",\"code\":\"1\",\"runtime\":\"runc\"}",
	       GW_DENY_IMAGE, "may use the images default only");
	expect(r, "shell_exec", "shell_exec", NULL, GW_DENY_SKILL,
	       "skill \"shell_exec\" is blocked for key r");
	/* the key's maximum becomes the task's limit when the task sets none */
	proto_task t;
	parse_task(
	    "{\"id\":\"t\",\"lang\":\"python\",\"code\":\"1\",\"runtime\":\"runc\",\"image\":"
	    "\"default\"}",
	    &t);
	gw_decision d = {0};
	gw_policy_check(r, "run_code", NULL, &t, NULL, &d);
	assert_int_equal(d.verdict, GW_ALLOW);
	assert_int_equal(t.limits.memory_bytes, 64LL * 1024 * 1024);
	assert_int_equal(t.limits.cpus_milli, 0);
	proto_task_deinit(&t);
	assert_true(gw_policy_allows(r, GW_KIND_LANGUAGE, "shell"));
	assert_false(gw_policy_allows(r, GW_KIND_RUNTIME, "runsc"));
	assert_false(gw_policy_allows(r, GW_KIND_SKILL, "shell_exec"));
	gw_keys_deinit(&k);
}

/* ---- images by name and by digest ---- */

#define DA "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define DB "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define DZ "sha256:dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd"

/* The image check of key k on image, with the registry of two nodes (NULL: not read). */
static void expect_image(const gw_key *k, const char *image, bool registry, gw_verdict v,
                         const char *detail)
{
	_cleanup_free_ char *json =
	    xasprintf("{\"id\":\"t\",\"lang\":\"python\",\"code\":\"1\",\"runtime\":\"runc\","
	              "\"image\":\"%s\"}",
	              image);
	proto_task t;
	parse_task(json, &t);
	gw_images im = GW_IMAGES_INIT;
	gw_images_add_node(&im, t.image, "default,other", DA "," DB);
	gw_images_add_node(&im, t.image, "default", DZ);       /* another build of default */
	gw_images_add_node(&im, t.image, "default,other", DA); /* lists differ: skipped */
	gw_decision d = {0};
	gw_policy_check(k, "run_code", NULL, &t, registry ? &im : NULL, &d);
	if (d.verdict != v)
		fail_msg("%s: verdict %s (%s), want %s", image, gw_verdict_name(d.verdict),
		         d.detail ? d.detail : "", gw_verdict_name(v));
	if (detail && (!d.detail || !strstr(d.detail, detail)))
		fail_msg("%s: detail \"%s\", want \"%s\"", image, d.detail ? d.detail : "", detail);
	gw_decision_deinit(&d);
	gw_images_deinit(&im);
	proto_task_deinit(&t);
}

static void test_policy_images(void **state)
{
	const char *h1 =
	    "hash = sha256:0000000000000000000000000000000000000000000000000000000000000001\n";
	const char *h2 =
	    "hash = sha256:0000000000000000000000000000000000000000000000000000000000000002\n";
	const char *h3 =
	    "hash = sha256:0000000000000000000000000000000000000000000000000000000000000003\n";
	_cleanup_free_ char *text =
	    xasprintf("[key.b]\n%sblock_images = default\n[key.a]\n%sallow_images = other, " DZ
	              "\n[key.any]\n%s",
	              h1, h2, h3);
	gw_keys k = {0};
	err *e = NULL;
	assert_int_equal(gw_keys_load_string(&k, "k", text, &e), 0);
	const gw_key *b = &k.keys[0], *a = &k.keys[1], *any = &k.keys[2];

	gw_images im = GW_IMAGES_INIT; /* the pairs: those that match, each once */
	gw_images_add_node(&im, "default", "default,other", DA "," DB);
	gw_images_add_node(&im, "default", "other,default", DB "," DA);
	gw_images_add_node(&im, DB, "default,other", DA "," DB);
	assert_int_equal(im.n, 2);
	assert_string_equal(im.v[0].name, "default");
	assert_string_equal(im.v[0].digest, DA);
	assert_string_equal(im.v[1].name, "other");
	gw_images_deinit(&im);

	/* a block list holds against the digest, and against the name for a blocked digest */
	expect_image(b, "default", true, GW_DENY_IMAGE, "image \"default\" is blocked for key b");
	expect_image(b, DA, true, GW_DENY_IMAGE,
	             "image \"" DA "\" is image \"default\" on a live node");
	expect_image(b, DZ, true, GW_DENY_IMAGE, "is image \"default\"");
	expect_image(b, DB, true, GW_ALLOW, NULL);
	expect_image(b, "other", true, GW_ALLOW, NULL);
	/* an unknown digest cannot be judged; nor any digest without the registry */
	expect_image(b, "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc",
	             true, GW_DENY_IMAGE, "is a digest no live node advertises");
	expect_image(b, DB, false, GW_DENY_IMAGE, "which could not be read");
	expect_image(b, "other", false, GW_ALLOW, NULL); /* a name: as written */
	/* an allow list by name admits its digest; by digest, its name only when every build
	 * of that name is allowed (default is DA on one node and DZ on another) */
	expect_image(a, DB, true, GW_ALLOW, NULL);
	expect_image(a, DZ, true, GW_ALLOW, NULL);
	expect_image(a, DA, true, GW_DENY_IMAGE,
	             "is image \"default\" on a live node, which is not allowed for key a");
	expect_image(a, "default", true, GW_DENY_IMAGE, "is not allowed for key a");
	expect_image(a, "third", true, GW_DENY_IMAGE,
	             "image \"third\" is not allowed for key a (allowed: other, " DZ ")");
	/* a key that restricts nothing needs no registry */
	expect_image(any, "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc",
	             false, GW_ALLOW, NULL);
	proto_task t;
	parse_task("{\"id\":\"t\",\"lang\":\"python\",\"code\":\"1\",\"image\":\"x\"}", &t);
	assert_false(gw_policy_needs_images(any, &t));
	assert_true(gw_policy_needs_images(b, &t));
	assert_true(gw_policy_needs_images(a, &t));
	proto_task_deinit(&t);
	gw_keys_deinit(&k);
}

/* ---- token bucket ---- */

static void test_bucket(void **state)
{
	gw_bucket b = {0};
	int64_t ra = 0;
	/* 0.5 per second, burst 2: two at once, then one every 2 s */
	assert_true(gw_bucket_take(&b, 500, 2, 1000, &ra));
	assert_true(gw_bucket_take(&b, 500, 2, 1000, &ra));
	assert_false(gw_bucket_take(&b, 500, 2, 1000, &ra));
	assert_int_equal(ra, 2);
	assert_false(gw_bucket_take(&b, 500, 2, 2999, &ra));
	assert_int_equal(ra, 1);
	assert_true(gw_bucket_take(&b, 500, 2, 3000, &ra));
	/* refills in 1 ms steps lose nothing to rounding */
	gw_bucket c = {0};
	assert_true(gw_bucket_take(&c, 500, 1, 0, NULL));
	int taken = 0;
	for (int64_t t = 1; t <= 2000; t++)
		taken += gw_bucket_take(&c, 500, 1, t, NULL);
	assert_int_equal(taken, 1);
	/* never above the burst after a long idle time, and rate 0 is unlimited */
	assert_true(gw_bucket_take(&c, 500, 1, 1000000000, NULL));
	assert_false(gw_bucket_take(&c, 500, 1, 1000000000, NULL));
	for (int i = 0; i < 1000; i++)
		assert_true(gw_bucket_take(&c, 0, 0, 0, NULL));
}

/* ---- translation ---- */

static void test_translate_seed(void **state)
{
	const char *body =
	    "{\"agentId\":\"ag\",\"tool\":{\"name\":\"run_code\",\"args\":{\"language\":"
	    "\"python\",\"code\":\"print(1)\",\"limits\":{\"memory_mb\":64}},"
	    "\"timeout_s\":2.5},\"dryRun\":false,\"context\":{\"x\":1}}";
	gw_exec_req r;
	err *e = NULL;
	assert_int_equal(gw_exec_req_parse(body, strlen(body), "gw1", true, &r, &e), 0);
	assert_int_equal(r.form, GW_FORM_SEED);
	assert_false(r.dry_run);
	assert_string_equal(r.agent_id, "ag");
	assert_string_equal(r.tool, "run_code");
	assert_null(r.skill);
	assert_int_equal(strlen(r.task_id), strlen("gw-gw1-") + 32);
	proto_task t;
	parse_task(r.task_json, &t);
	assert_string_equal(t.id, r.task_id);
	assert_int_equal(t.lang, PROTO_LANG_PYTHON);
	assert_int_equal(t.limits.timeout_ms, 2500);
	assert_int_equal(t.limits.memory_bytes, 64LL * 1024 * 1024);
	assert_string_equal(t.reply_stream, GW_REPLY_PREFIX "gw1");
	proto_task_deinit(&t);
	gw_exec_req_deinit(&r);
	/* dryRun defaults as asked; a skill is named, not translated */
	const char *skill = "{\"tool\":{\"name\":\"http_get\",\"args\":{\"url\":\"x\"}}}";
	assert_int_equal(gw_exec_req_parse(skill, strlen(skill), "gw1", true, &r, &e), 0);
	assert_true(r.dry_run);
	assert_string_equal(r.skill, "http_get");
	assert_null(r.task_json);
	gw_exec_req_deinit(&r);
}

static void test_translate_task(void **state)
{
	const char *own = "{\"id\":\"mine\",\"lang\":\"shell\",\"code\":\"echo\"}";
	gw_exec_req r;
	err *e = NULL;
	assert_int_equal(gw_exec_req_parse(own, strlen(own), "g", false, &r, &e), 0);
	assert_int_equal(r.form, GW_FORM_TASK);
	assert_string_equal(r.task_id, "mine");
	assert_string_equal(r.task_json, "{\"id\":\"mine\",\"lang\":\"shell\",\"code\":\"echo\","
	                                 "\"reply_stream\":\"aisp:reply:gw:g\"}");
	gw_exec_req_deinit(&r);
	const char *anon = "{\"lang\":\"shell\",\"code\":\"echo\"}";
	assert_int_equal(gw_exec_req_parse(anon, strlen(anon), "g", false, &r, &e), 0);
	assert_true(strncmp(r.task_json, "{\"id\":\"gw-g-", 12) == 0);
	gw_exec_req_deinit(&r);
	_cleanup_free_ char *a = gw_task_id_new("g"), *b = gw_task_id_new("g");
	assert_string_not_equal(a, b);
}

static void translate_error(const char *body, const char *want)
{
	gw_exec_req r;
	err *e = NULL;
	assert_int_equal(gw_exec_req_parse(body, strlen(body), "g", false, &r, &e), -1);
	if (!strstr(err_msg(e), want))
		fail_msg("got \"%s\", want \"%s\"", err_msg(e), want);
	err_free(e);
}

static void test_translate_errors(void **state)
{
	translate_error("{\"tool\":", "body is not valid JSON: parse error");
	translate_error("[1]", "body must be a JSON object");
	translate_error("{\"a\":1,\"a\":2}", "body: duplicate key \"a\"");
	translate_error("{\"tool\":{}}", "missing field \"tool.name\"");
	translate_error("{\"tool\":{\"name\":3}}", "field \"tool.name\" must be a string");
	translate_error("{\"tool\":{\"name\":\"Bad Name\"}}",
	                "is neither run_code nor a skill name");
	translate_error("{\"tool\":{\"name\":\"run_code\"}}", "needs \"tool.args\"");
	translate_error("{\"tool\":{\"name\":\"run_code\",\"args\":{\"code\":\"1\"}}}",
	                "missing field \"tool.args.language\"");
	translate_error("{\"tool\":{\"name\":\"run_code\",\"args\":{\"language\":\"python\","
	                "\"code\":\"1\",\"shell\":1}}}",
	                "unknown field \"tool.args.shell\"");
	translate_error("{\"tool\":{\"name\":\"run_code\",\"args\":{\"language\":\"python\","
	                "\"code\":\"1\",\"limits\":{\"timeout_s\":1}},\"timeout_s\":2}}",
	                "are both set");
	translate_error("{\"tool\":{\"name\":\"run_code\",\"args\":{}},\"dryRun\":\"yes\"}",
	                "field \"dryRun\" must be true or false");
	translate_error("{\"tool\":{\"name\":\"x\"},\"extra\":1}", "unknown field \"extra\"");
	translate_error("{\"lang\":\"python\",\"code\":\"1\",\"reply_stream\":\"aisp:tasks\"}",
	                "field \"reply_stream\" is set by the gateway");
	assert_true(gw_skill_name_valid("http_get"));
	assert_false(gw_skill_name_valid("-x"));
	assert_false(gw_skill_name_valid(""));
}

/* ---- cost ---- */

static void test_cost(void **state)
{
	gw_config c;
	gw_config_defaults(&c);
	c.per_call_micros = 10000;
	c.per_cpu_second_micros = 1000;
	c.per_gib_second_micros = 500;
	proto_limits l = {
	    .cpus_milli = 2000, .memory_bytes = 512LL * 1024 * 1024, .timeout_ms = 10000};
	/* 10000 + 2 CPUs x 10 s x 1000 + 0.5 GiB x 10 s x 500 */
	assert_int_equal(gw_cost_max(&c, &l), 10000 + 20000 + 2500);
	/* 10000 + 1.5 CPU-s x 1000 + 0.5 GiB x 0.001 s x 500 = 11500.25, rounded up */
	assert_int_equal(gw_cost_actual(&c, &l, 1500, 1), 11501);
	gw_config_deinit(&c);
}

/* ---- problem+json ---- */

static void test_problem(void **state)
{
	buf b = BUF_INIT;
	const char *extra[] = {"decision", "rate_limited", NULL};
	gw_problem_render(&b, 429, "rate-limited", "slow \"down\"\x01", "/v1/exec", extra);
	yajl_val v = NULL;
	assert_int_equal(proto_json_parse(buf_str(&b), b.len, &v, NULL), 0);
	assert_string_equal(proto_json_get_str(v, "type"),
	                    "https://aisp.dev/problems/rate-limited");
	assert_string_equal(proto_json_get_str(v, "title"), "Too Many Requests");
	int64_t st = 0;
	assert_int_equal(proto_json_get_int(v, "status", &st), 0);
	assert_int_equal(st, 429);
	assert_string_equal(proto_json_get_str(v, "detail"), "slow \"down\"\x01");
	assert_string_equal(proto_json_get_str(v, "instance"), "/v1/exec");
	assert_string_equal(proto_json_get_str(v, "decision"), "rate_limited");
	yajl_tree_free(v);
	buf_deinit(&b);
	/* invalid UTF-8 in a detail still gives a valid document */
	gw_problem_render(&b, 400, "x", "bad \xff byte", NULL, NULL);
	assert_int_equal(proto_json_parse(buf_str(&b), b.len, &v, NULL), 0);
	assert_null(proto_json_get(v, "instance"));
	yajl_tree_free(v);
	buf_deinit(&b);
	assert_string_equal(gw_status_reason(431), "Request Header Fields Too Large");
	assert_string_equal(gw_status_reason(299), "Error");
	char ts[32];
	gw_iso8601(1700000000123, ts);
	assert_string_equal(ts, "2023-11-14T22:13:20.123Z");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_config_defaults),
	    cmocka_unit_test(test_config_errors),
	    cmocka_unit_test(test_config_values),
	    cmocka_unit_test(test_examples_parse),
	    cmocka_unit_test(test_keys_parse_and_find),
	    cmocka_unit_test(test_keys_errors),
	    cmocka_unit_test(test_key_section),
	    cmocka_unit_test(test_policy),
	    cmocka_unit_test(test_policy_defaults_and_lists),
	    cmocka_unit_test(test_policy_images),
	    cmocka_unit_test(test_bucket),
	    cmocka_unit_test(test_translate_seed),
	    cmocka_unit_test(test_translate_task),
	    cmocka_unit_test(test_translate_errors),
	    cmocka_unit_test(test_cost),
	    cmocka_unit_test(test_problem),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
