/* Unit tests for chains in proto/ (proto/chain.c, proto/chain-result.c): a message for every
 * bad step (table-driven), chain tasks and their values, the round trip of a chain task and of
 * a chain result with its cost, and the bounds a result parser puts on untrusted documents. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/cleanup.h"
#include "common/err.h"
#include "common/xalloc.h"
#include "proto/proto.h"

#define ID     "\"id\":\"c1\""
#define LLM    "{\"type\":\"llm\",\"model\":\"openai/gpt-4o\"}"
#define SCRIPT "{\"type\":\"script\",\"code\":\"return input\"}"

typedef struct bad_case {
	const char *json;
	const char *msg; /* the whole message */
} bad_case;

static const bad_case bad_cases[] = {
    {"{" ID ",\"steps\":{}}", "field \"steps\" must be an array of steps"},
    {"{" ID ",\"steps\":[]}", "field \"steps\" must have at least one step"},
    {"{" ID ",\"steps\":[" LLM "," LLM "," LLM "," LLM "," LLM "," LLM "," LLM "," LLM "," LLM
     "," LLM "," LLM "," LLM "," LLM "," LLM "," LLM "," LLM "," LLM "]}",
     "field \"steps\" has 17 steps, above the limit of 16"},
    {"{" ID ",\"steps\":[" LLM ",7]}", "steps[1] must be an object"},
    {"{" ID ",\"steps\":[{}]}", "steps[0]: missing field \"type\" (\"llm\" or \"script\")"},
    {"{" ID ",\"steps\":[{\"type\":\"wasm\"}]}",
     "steps[0].type must be \"llm\" or \"script\" (got \"wasm\")"},
    {"{" ID ",\"steps\":[{\"type\":3}]}", "steps[0].type must be a string"},
    {"{" ID ",\"steps\":[{\"type\":\"llm\"}]}", "steps[0]: an llm step needs \"model\""},
    {"{" ID ",\"steps\":[{\"type\":\"llm\",\"model\":\"a b\"}]}",
     "steps[0].model must be 1..256 printable ASCII characters without spaces, quotes or "
     "backslashes"},
    {"{" ID ",\"steps\":[{\"type\":\"llm\",\"model\":\"m\",\"temperature\":2.5}]}",
     "steps[0].temperature must be a number in [0, 2] with at most 3 decimals (got 2.5)"},
    {"{" ID ",\"steps\":[{\"type\":\"llm\",\"model\":\"m\",\"temperature\":-0.1}]}",
     "steps[0].temperature must be a number in [0, 2] with at most 3 decimals (got -0.1)"},
    {"{" ID ",\"steps\":[{\"type\":\"llm\",\"model\":\"m\",\"temperature\":0.1234}]}",
     "steps[0].temperature must be a number in [0, 2] with at most 3 decimals (got 0.1234)"},
    {"{" ID ",\"steps\":[{\"type\":\"llm\",\"model\":\"m\",\"temperature\":\"hot\"}]}",
     "steps[0].temperature must be a number in [0, 2] with at most 3 decimals (got not a "
     "number)"},
    {"{" ID ",\"steps\":[{\"type\":\"llm\",\"model\":\"m\",\"max_tokens\":0}]}",
     "steps[0].max_tokens must be an integer in [1, 1000000]"},
    {"{" ID ",\"steps\":[{\"type\":\"llm\",\"model\":\"m\",\"system_prompt\":1}]}",
     "steps[0].system_prompt must be a string"},
    {"{" ID ",\"steps\":[{\"type\":\"llm\",\"model\":\"m\",\"code\":\"x\"}]}",
     "steps[0]: unknown field \"code\" (an llm step takes type, model, system_prompt, "
     "temperature, max_tokens)"},
    {"{" ID ",\"steps\":[{\"type\":\"script\"}]}", "steps[0]: a script step needs \"code\""},
    {"{" ID ",\"steps\":[{\"type\":\"script\",\"code\":\"\"}]}", "steps[0].code is empty"},
    {"{" ID ",\"steps\":[{\"type\":\"script\",\"code\":\"x\",\"lang\":\"shell\"}]}",
     "steps[0].lang must be \"python\" or \"javascript\" (got \"shell\")"},
    {"{" ID ",\"steps\":[{\"type\":\"script\",\"code\":\"x\",\"timeout_ms\":60001}]}",
     "steps[0].timeout_ms must be an integer in [1, 60000] (milliseconds)"},
    {"{" ID ",\"steps\":[{\"type\":\"script\",\"code\":\"x\",\"timeout_ms\":1.5}]}",
     "steps[0].timeout_ms must be an integer in [1, 60000] (milliseconds)"},
    {"{" ID ",\"steps\":[{\"type\":\"script\",\"code\":\"x\",\"model\":\"m\"}]}",
     "steps[0]: unknown field \"model\" (a script step takes type, lang, code, timeout_ms)"},
    {"{" ID ",\"steps\":[" LLM "],\"code\":\"x\"}",
     "field \"code\" is not allowed in a chain task (with \"steps\"): each script step carries "
     "its own code"},
    {"{" ID ",\"steps\":[" LLM "],\"lang\":\"python\"}",
     "field \"lang\" is not allowed in a chain task (with \"steps\"): each script step names "
     "its own lang"},
    {"{" ID ",\"steps\":[" LLM "],\"stdin\":\"x\"}",
     "field \"stdin\" is not allowed in a chain task (with \"steps\"): the chain's input is "
     "\"input\""},
    {"{" ID ",\"lang\":\"python\",\"code\":\"\",\"input\":\"x\"}",
     "field \"input\" belongs to a chain task (with \"steps\"); a plain task reads \"stdin\""},
};

static void test_bad_steps(void **state)
{
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		const bad_case *c = &bad_cases[i];
		proto_task t;
		proto_task_head h;
		_cleanup_err_ err *e = NULL;
		int rc = proto_task_parse(c->json, strlen(c->json), &t, &h, &e);
		if (rc == 0 || strcmp(err_msg(e), c->msg))
			fail_msg("case %zu: got \"%s\", want \"%s\"", i, rc ? err_msg(e) : "(ok)",
			         c->msg);
		assert_string_equal(h.id, "c1"); /* the rejection reaches the client */
		proto_task_head_deinit(&h);
	}
}

static void parse_ok(const char *json, proto_task *t)
{
	_cleanup_err_ err *e = NULL;
	if (proto_task_parse(json, strlen(json), t, NULL, &e) < 0)
		fail_msg("%s", err_msg(e));
}

/* The seed's chain: llm -> script -> llm, with a JSON input. */
static const char seed_chain[] =
    "{\"id\":\"seed\",\"input\":{\"items\":[{\"price\":1.5},{\"price\":2}],\"currency\":\"EUR\"},"
    "\"steps\":[{\"type\":\"llm\",\"model\":\"anthropic/claude-sonnet-4\",\"system_prompt\":"
    "\"Extract\",\"temperature\":0},{\"type\":\"script\",\"code\":\"return input\","
    "\"timeout_ms\":10000},{\"type\":\"llm\",\"model\":\"openai/gpt-4o-mini\",\"temperature\":"
    "0.7,\"max_tokens\":200},{\"type\":\"script\",\"lang\":\"python\",\"code\":\"output = "
    "input\"}]}";

static void test_seed_chain(void **state)
{
	proto_task t;
	parse_ok(seed_chain, &t);
	assert_int_equal(t.n_steps, 4);
	assert_int_equal(t.lang, PROTO_LANG_JAVASCRIPT); /* the first script step's */
	assert_true(t.input->json);
	assert_string_equal(t.input->text,
	                    "{\"items\":[{\"price\":1.5},{\"price\":2}],\"currency\":\"EUR\"}");
	assert_int_equal(t.steps[0].temperature_milli, 0);
	assert_int_equal(t.steps[2].temperature_milli, 700);
	assert_int_equal(t.steps[2].max_tokens, 200);
	assert_int_equal(t.steps[0].max_tokens, 0);
	assert_int_equal(t.steps[1].timeout_ms, 10000);
	assert_int_equal(t.steps[3].timeout_ms, PROTO_STEP_TIMEOUT_MS_DEFAULT);
	assert_int_equal(t.steps[3].lang, PROTO_LANG_PYTHON);
	assert_true(proto_task_has_step(&t, PROTO_STEP_LLM));
	assert_true(proto_task_has_step(&t, PROTO_STEP_SCRIPT));
	/* to JSON and back: the same task */
	buf b = BUF_INIT;
	proto_task_to_json(&t, &b);
	proto_task u;
	parse_ok(buf_str(&b), &u);
	buf c = BUF_INIT;
	proto_task_to_json(&u, &c);
	assert_string_equal(buf_str(&b), buf_str(&c));
	assert_non_null(strstr(buf_str(&b), "\"temperature\":0.7"));
	buf_deinit(&b);
	buf_deinit(&c);
	proto_task_deinit(&u);
	proto_task_deinit(&t);
}

static void test_values(void **state)
{
	proto_task t;
	parse_ok("{\"id\":\"x\",\"steps\":[" LLM "]}", &t);
	assert_false(t.input->json); /* no input: the empty string */
	assert_int_equal(t.input->len, 0);
	assert_false(proto_task_has_step(&t, PROTO_STEP_SCRIPT));
	proto_task_deinit(&t);
	parse_ok("{\"id\":\"x\",\"steps\":[" SCRIPT "],\"input\":\"a\\nb\"}", &t);
	size_t n;
	assert_string_equal(proto_value_input_text(t.input, &n), "a\nb");
	_cleanup_free_ char *j = proto_value_json(t.input, &n);
	assert_string_equal(j, "\"a\\nb\"");
	proto_task_deinit(&t);
	/* a JSON string is a string value; anything else is JSON, compacted */
	proto_value v = {0};
	assert_int_equal(proto_value_from_json("\"q\"", 3, &v, NULL), 0);
	assert_false(v.json);
	assert_string_equal(v.text, "q");
	proto_value_deinit(&v);
	assert_int_equal(proto_value_from_json("[1, 2.50 ,{\"a\" : null}]", 23, &v, NULL), 0);
	assert_true(v.json);
	assert_string_equal(v.text, "[1,2.50,{\"a\":null}]");
	proto_value_deinit(&v);
	_cleanup_err_ err *e = NULL;
	assert_int_equal(proto_value_from_json("{", 1, &v, &e), -1);
	assert_non_null(strstr(err_msg(e), "not JSON"));
	assert_int_equal(proto_value_from_string("a\0b", 3, &v, NULL), -1);
	assert_int_equal(proto_value_from_string("\xff", 1, &v, NULL), -1);
}

static void test_input_cap(void **state)
{
	size_t n = PROTO_CHAIN_INPUT_MAX + 1;
	char *json = xmalloc(n + 100);
	int k = snprintf(json, 100, "{\"id\":\"x\",\"steps\":[" LLM "],\"input\":\"");
	memset(json + k, 'a', n - 2);
	strcpy(json + k + n - 2, "\"}");
	proto_task t;
	_cleanup_err_ err *e = NULL;
	assert_int_equal(proto_task_parse(json, strlen(json), &t, NULL, &e), -1);
	assert_string_equal(err_msg(e), "field \"input\" is 1048577 bytes as JSON, above the "
	                                "1048576-byte limit");
	free(json);
}

/* A chain result with every kind of step record and a cost, generated and parsed back. */
static void make_chain_result(proto_result *r)
{
	proto_result_init(r);
	r->id = xstrdup("seed");
	proto_chain_run *c = r->output.chain = proto_chain_run_new();
	proto_step_run *s = proto_chain_run_add(c, PROTO_STEP_LLM);
	proto_value_from_json("{\"items\":[1]}", 13, &s->output, NULL);
	s->model = xstrdup("openai/gpt-4o-2024");
	s->request_digest = xstrdup("sha256:aa");
	s->response_digest = xstrdup("sha256:bb");
	s->usage_reported = true;
	s->prompt_tokens = 12;
	s->completion_tokens = 3;
	s->attempts = 2;
	s = proto_chain_run_add(c, PROTO_STEP_SCRIPT);
	s->lang = PROTO_LANG_JAVASCRIPT;
	s->status = PROTO_STATUS_ERROR;
	s->error = xstrdup("TypeError: x");
	s->exit_code = 1;
	buf_append_str(&s->err, "\x01\xff bytes");
	s->usage = (proto_usage){.wall_ms = 5, .cpu_ms = 3, .memory_peak_bytes = 1 << 20};
	c->failed_step = 1;
	r->output.status = PROTO_STATUS_ERROR;
	proto_cost *k = r->cost = proto_cost_new();
	proto_cost_item *it = proto_cost_add(k, PROTO_COST_LLM);
	*it = (proto_cost_item){
	    0, PROTO_COST_LLM, PROTO_COST_SRC_PROVIDER, xstrdup("m"), 12, 3, 0, 0, 0, 18};
	it = proto_cost_add(k, PROTO_COST_SCRIPT);
	*it = (proto_cost_item){.step = 1,
	                        .kind = PROTO_COST_SCRIPT,
	                        .source = PROTO_COST_SRC_USAGE,
	                        .execution_ms = 5,
	                        .cpu_ms = 3,
	                        .cost = 1};
	k->total = 19;
}

static void test_result_round_trip(void **state)
{
	proto_result r, p;
	make_chain_result(&r);
	buf b = BUF_INIT;
	proto_result_to_json(&r, &b);
	_cleanup_err_ err *e = NULL;
	if (proto_result_parse(buf_str(&b), b.len, &p, &e) < 0)
		fail_msg("%s", err_msg(e));
	assert_non_null(strstr(buf_str(&b), ",\"steps\":[{\"step\":0")); /* no chain output */
	assert_null(strstr(buf_str(&b), "\"error\":\"TypeError: x\",\"output\""));
	assert_non_null(strstr(buf_str(&b), "\"failed_step\":1"));
	assert_non_null(strstr(buf_str(&b), "\"unit\":\"micro_usd\",\"total\":19"));
	proto_chain_run *c = p.output.chain;
	assert_non_null(c);
	assert_int_equal(c->n_steps, 2);
	assert_int_equal(c->failed_step, 1);
	assert_null(proto_chain_run_output(c)); /* it failed: no output */
	assert_string_equal(c->steps[0].output.text, "{\"items\":[1]}");
	assert_true(c->steps[0].output.json);
	assert_int_equal(c->steps[0].attempts, 2);
	assert_int_equal(c->steps[0].completion_tokens, 3);
	assert_string_equal(c->steps[0].response_digest, "sha256:bb");
	assert_int_equal(c->steps[1].err.len, 8);
	assert_memory_equal(c->steps[1].err.data, "\x01\xff bytes", 8);
	assert_string_equal(c->steps[1].error, "TypeError: x");
	assert_int_equal(p.cost->total, 19);
	assert_int_equal(p.cost->n_items, 2);
	assert_int_equal(p.cost->items[0].source, PROTO_COST_SRC_PROVIDER);
	assert_int_equal(p.cost->items[1].step, 1);
	buf q = BUF_INIT;
	proto_result_to_json(&p, &q);
	assert_string_equal(buf_str(&b), buf_str(&q)); /* parse(gen(x)) generates x again */
	buf_deinit(&b);
	buf_deinit(&q);
	proto_result_deinit(&r);
	proto_result_deinit(&p);
}

static void expect_result_error(const char *json, const char *msg)
{
	proto_result r;
	_cleanup_err_ err *e = NULL;
	if (proto_result_parse(json, strlen(json), &r, &e) == 0)
		fail_msg("accepted: %s", json);
	if (!strstr(err_msg(e), msg))
		fail_msg("got \"%s\", want \"%s\"", err_msg(e), msg);
}

static void test_result_bounds(void **state)
{
#define R "{\"id\":\"x\",\"status\":\"ok\","
	expect_result_error(R "\"steps\":{}}", "\"steps\" must be an array of at most 16 steps");
	expect_result_error(R "\"steps\":[{\"step\":1,\"type\":\"llm\",\"status\":\"ok\"}]}",
	                    "steps[0].step must be 0");
	expect_result_error(R "\"steps\":[{\"step\":0,\"type\":\"x\",\"status\":\"ok\"}]}",
	                    "steps[0].type must be");
	expect_result_error(R "\"steps\":[{\"step\":0,\"type\":\"script\",\"status\":\"ok\"}]}",
	                    "steps[0].lang is missing or unknown");
	expect_result_error(R "\"steps\":[{\"step\":0,\"type\":\"llm\",\"status\":\"ok\"}],"
	                      "\"failed_step\":1}",
	                    "failed_step must be an integer in [0, 0]");
	expect_result_error(R "\"output\":\"x\"}",
	                    "\"output\" and \"failed_step\" belong to a chain");
	expect_result_error(R "\"failed_step\":0}",
	                    "\"output\" and \"failed_step\" belong to a chain");
#define LLM_OK "{\"step\":0,\"type\":\"llm\",\"status\":\"ok\",\"output\":\"a\"}"
	expect_result_error(
	    R "\"steps\":[" LLM_OK "],\"output\":\"b\"}",
	    "\"output\" must be the last step's output (absent when a step failed)");
	expect_result_error(R "\"steps\":[" LLM_OK "]}",
	                    "\"output\" must be the last step's output");
	expect_result_error(
	    R "\"steps\":[" LLM_OK "],\"output\":\"a\",\"failed_step\":0}",
	    "\"failed_step\" must name the last step, the one that failed (steps[0] "
	    "is ok)");
	expect_result_error(
	    R "\"steps\":[{\"step\":0,\"type\":\"llm\",\"status\":\"error\"}]}",
	    "\"failed_step\" must name the last step, the one that failed (steps[0] "
	    "is error)");
#undef LLM_OK
	expect_result_error(R "\"cost\":{\"unit\":\"usd\",\"total\":1,\"breakdown\":[]}}",
	                    "\"cost\" must be {\"unit\": \"micro_usd\"");
	expect_result_error(R "\"cost\":{\"unit\":\"micro_usd\",\"total\":-1,\"breakdown\":[]}}",
	                    "cost.total must be an integer in [0, ");
	expect_result_error(R "\"cost\":{\"unit\":\"micro_usd\",\"total\":1,\"breakdown\":[{"
	                      "\"type\":\"gpu\",\"source\":\"usage\"}]}}",
	                    "breakdown[0] needs a known \"type\" and \"source\"");
	expect_result_error(R "\"cost\":{\"unit\":\"micro_usd\",\"total\":1,\"breakdown\":[],"
	                      "\"breakdown_sealed\":true}}",
	                    "or, sealed, {\"unit\", \"total\", \"breakdown_sealed\": true}");
	expect_result_error(R "\"cost\":{\"unit\":\"micro_usd\",\"total\":1,"
	                      "\"breakdown_sealed\":false}}",
	                    "\"cost\" must be");
#undef R
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_bad_steps),
	    cmocka_unit_test(test_seed_chain),
	    cmocka_unit_test(test_values),
	    cmocka_unit_test(test_input_cap),
	    cmocka_unit_test(test_result_round_trip),
	    cmocka_unit_test(test_result_bounds),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
