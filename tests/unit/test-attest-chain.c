/* Unit tests for attested chains (attest/steps.c, attest/verify-steps.c; attest/CHAINS.md):
 * the golden vectors of the seed's three-step chain (value, input, output and execution
 * digests, which attest/CHAINS.md recomputes independently), sign-then-verify of a chain
 * result with its cost, and each tamper case failing the check that names the step. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attest/attest.h"
#include "common/buf.h"
#include "common/cleanup.h"
#include "common/err.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "proto/proto.h"

/* The seed's chain: llm -> script -> llm (attest/CHAINS.md, "Vectors"). */
static const char chain_task[] =
    "{\"id\":\"seed-chain\",\"input\":{\"items\":[{\"price\":10},{\"price\":20.5}]},"
    "\"steps\":[{\"type\":\"llm\",\"model\":\"anthropic/claude-sonnet-4\",\"system_prompt\":"
    "\"[[mock echo]]\",\"temperature\":0},{\"type\":\"script\",\"code\":\"const d = "
    "JSON.parse(input);\\nreturn {total: d.items.reduce((s, i) => s + i.price, 0)};\","
    "\"timeout_ms\":10000},{\"type\":\"llm\",\"model\":\"openai/gpt-4o-mini\","
    "\"temperature\":0.7}]}";

static const proto_env env[] = {
    {(char *)"runtime.name", (char *)"runc"},
    {(char *)"agent.version", (char *)"aisp-agent/1"},
};

#define GOLDEN_VALUE_STRING                                                                        \
	"sha256:598ec625ae868c307a0fcdeb13c5a8dab2351f74ecc8848f4697f1d6127e6e83"
#define GOLDEN_VALUE_JSON "sha256:f126fd09df8a14e7799aee6ac112029d3caf1aad385cf6b5cb10300e0cff3466"
#define GOLDEN_INPUT      "sha256:2c9ad5d46af9911e40400eaa6ae4a5159ae047d6a1568d42790493ae8a9abce5"
#define GOLDEN_OUTPUT     "sha256:748a63cad3ecb65f68fb9c04b85f49f379029227ac78b23f0755bf46fbe3c97f"
#define GOLDEN_EXECUTION  "sha256:ee49519ba780dc8f6a38b1d363683031b03e25b559a85b597dcb4d3e20beb2eb"

static void set_value(proto_value *v, const char *json)
{
	assert_int_equal(proto_value_from_json(json, strlen(json), v, NULL), 0);
}

/* What the node would record for the chain: fixed numbers, fixed digests. */
static void chain_result(proto_result *r)
{
	proto_result_init(r);
	r->id = xstrdup("seed-chain");
	r->node_id = xstrdup("node-1");
	r->runtime = xstrdup("runc");
	r->image_digest =
	    xstrdup("sha256:"
	            "08434a9ad45673f2c0c1224f3bd8df0ce3bf9227fd4b14feefd1be310016e1cb");
	proto_chain_run *c = r->output.chain = proto_chain_run_new();
	proto_step_run *s = proto_chain_run_add(c, PROTO_STEP_LLM);
	set_value(&s->output, "\"{\\\"items\\\":[{\\\"price\\\":10},{\\\"price\\\":20.5}]}\"");
	s->model = xstrdup("anthropic/claude-sonnet-4");
	s->request_digest =
	    xstrdup("sha256:"
	            "1111111111111111111111111111111111111111111111111111111111111111");
	s->response_digest =
	    xstrdup("sha256:"
	            "2222222222222222222222222222222222222222222222222222222222222222");
	s->usage_reported = true;
	s->prompt_tokens = 15;
	s->completion_tokens = 12;
	s->attempts = 1;
	s = proto_chain_run_add(c, PROTO_STEP_SCRIPT);
	s->lang = PROTO_LANG_JAVASCRIPT;
	s->exit_code = 0;
	set_value(&s->output, "{\"total\":30.5}");
	s->usage = (proto_usage){.wall_ms = 31, .cpu_ms = 20, .memory_peak_bytes = 40 << 20};
	s = proto_chain_run_add(c, PROTO_STEP_LLM);
	set_value(&s->output, "\"[openai/gpt-4o-mini]  | {\\\"total\\\":30.5}\"");
	s->model = xstrdup("openai/gpt-4o-mini");
	s->request_digest =
	    xstrdup("sha256:"
	            "3333333333333333333333333333333333333333333333333333333333333333");
	s->response_digest =
	    xstrdup("sha256:"
	            "4444444444444444444444444444444444444444444444444444444444444444");
	s->usage_reported = true;
	s->prompt_tokens = 5;
	s->completion_tokens = 10;
	s->attempts = 2;
	r->output.status = PROTO_STATUS_OK;
	proto_cost *k = r->cost = proto_cost_new();
	proto_cost_item *it = proto_cost_add(k, PROTO_COST_LLM);
	*it = (proto_cost_item){.step = 0,
	                        .kind = PROTO_COST_LLM,
	                        .source = PROTO_COST_SRC_PROVIDER,
	                        .model = xstrdup("anthropic/claude-sonnet-4"),
	                        .prompt_tokens = 15,
	                        .completion_tokens = 12,
	                        .cost = 39};
	it = proto_cost_add(k, PROTO_COST_SCRIPT);
	*it = (proto_cost_item){.step = 1,
	                        .kind = PROTO_COST_SCRIPT,
	                        .source = PROTO_COST_SRC_USAGE,
	                        .execution_ms = 31,
	                        .cpu_ms = 20,
	                        .memory_peak_bytes = 40 << 20,
	                        .cost = 1};
	it = proto_cost_add(k, PROTO_COST_LLM);
	*it = (proto_cost_item){.step = 2,
	                        .kind = PROTO_COST_LLM,
	                        .source = PROTO_COST_SRC_PROVIDER,
	                        .model = xstrdup("openai/gpt-4o-mini"),
	                        .prompt_tokens = 5,
	                        .completion_tokens = 10,
	                        .cost = 25};
	k->total = 65;
}

static void parse_task(proto_task *t)
{
	_cleanup_err_ err *e = NULL;
	if (proto_task_parse(chain_task, strlen(chain_task), t, NULL, &e) < 0)
		fail_msg("%s", err_msg(e));
}

static void test_golden(void **state)
{
	proto_task t;
	parse_task(&t);
	proto_result r;
	chain_result(&r);
	char d[ATTEST_DIGEST_LEN];
	attest_value_digest(&r.output.chain->steps[0].output, d);
	printf("# value (string): %s\n", d);
	assert_string_equal(d, GOLDEN_VALUE_STRING);
	attest_value_digest(&r.output.chain->steps[1].output, d);
	printf("# value (json):   %s\n", d);
	assert_string_equal(d, GOLDEN_VALUE_JSON);
	attest_digests g;
	assert_int_equal(attest_compute_digests(r.image_digest, &t, &r.output, env, 2, &g, NULL),
	                 0);
	printf("# input:     %s\n# output:    %s\n# execution: %s\n", g.input, g.output,
	       g.execution);
	assert_string_equal(g.input, GOLDEN_INPUT);
	assert_string_equal(g.output, GOLDEN_OUTPUT);
	assert_string_equal(g.execution, GOLDEN_EXECUTION);
	proto_result_deinit(&r);
	proto_task_deinit(&t);
}

/* ---- sign, serialise, parse, verify ---- */

typedef struct checks {
	buf failed; /* "name: detail; " per failed check */
	bool saw_steps, saw_cost;
} checks;

static void record(void *ud, const char *name, attest_verdict v, const char *detail)
{
	bool ok = v == ATTEST_PASS || v == ATTEST_SKIP;
	checks *c = ud;
	c->saw_steps |= !strcmp(name, "steps");
	c->saw_cost |= !strcmp(name, "cost");
	if (!ok)
		buf_appendf(&c->failed, "%s: %s; ", name, detail);
}

static attest_key *test_key(void)
{
	const char *root = getenv("AISP_SOURCE_ROOT");
	_cleanup_free_ char *p = xasprintf("%s/attest/testdata/test-key.pem", root ? root : ".");
	attest_key *k = NULL;
	_cleanup_err_ err *e = NULL;
	buf pem = BUF_INIT;
	if (read_file_at(AT_FDCWD, p, 65536, &pem, &e) < 0 ||
	    attest_key_from_private_pem(&k, buf_str(&pem), pem.len, &e) < 0)
		fail_msg("%s", err_msg(e));
	buf_deinit(&pem);
	return k;
}

/* Signs the chain result and returns its document, parsed back into *out. */
static void signed_result(attest_key *k, const proto_task *t, proto_result *out)
{
	proto_result r;
	chain_result(&r);
	attest_claim c = {.task = t, .result = &r, .env = env, .n_env = 2, .sequence = 1};
	_cleanup_err_ err *e = NULL;
	if (attest_sign(k, &c, &r.attestation, &r.execution_digest, NULL, &e) < 0)
		fail_msg("%s", err_msg(e));
	buf doc = BUF_INIT;
	proto_result_to_json(&r, &doc);
	if (proto_result_parse(buf_str(&doc), doc.len, out, &e) < 0)
		fail_msg("%s", err_msg(e));
	buf_deinit(&doc);
	proto_result_deinit(&r);
}

static char *verify(attest_key *k, const proto_task *t, const proto_result *r, checks *c)
{
	memset(c, 0, sizeof(*c));
	attest_verifier *v = attest_verifier_new();
	attest_verifier_check(v, r, k, t, record, c);
	attest_verifier_free(v);
	return buf_steal(&c->failed, NULL);
}

static void test_sign_verify(void **state)
{
	attest_key *k = test_key();
	proto_task t;
	parse_task(&t);
	proto_result r;
	signed_result(k, &t, &r);
	checks c;
	_cleanup_free_ char *f = verify(k, &t, &r, &c);
	assert_string_equal(f, "");
	assert_true(c.saw_steps && c.saw_cost);
	/* the statement lists every step and signs the cost */
	attest_chain_claims cl;
	assert_int_equal(attest_chain_claims_read(r.attestation, &cl, NULL), 0);
	assert_int_equal(cl.n_steps, 3);
	assert_string_equal(cl.steps[0].type, "llm");
	assert_string_equal(cl.steps[0].request_digest, r.output.chain->steps[0].request_digest);
	assert_int_equal(cl.steps[2].completion_tokens, 10);
	assert_string_equal(cl.steps[1].input_digest, cl.steps[0].output_digest);
	assert_int_equal(cl.failed_step, -1);
	proto_result_deinit(&r);
	proto_task_deinit(&t);
	attest_key_free(k);
}

/* Replaces a step's recorded output. */
static void tamper(proto_result *r, size_t step, const char *json)
{
	proto_value *v = &r->output.chain->steps[step].output;
	proto_value_deinit(v);
	set_value(v, json);
}

static void expect_failure(attest_key *k, const proto_task *t, proto_result *r, const char *want)
{
	checks c;
	_cleanup_free_ char *f = verify(k, t, r, &c);
	if (!strstr(f, want))
		fail_msg("failed checks \"%s\" lack \"%s\"", f, want);
}

static void test_tampered(void **state)
{
	attest_key *k = test_key();
	proto_task t;
	parse_task(&t);
	proto_result r;
	signed_result(k, &t, &r);
	tamper(&r, 0, "\"{\\\"items\\\":[{\\\"price\\\":1000}]}\"");
	expect_failure(k, &t, &r, "steps: step 0 (llm): the recorded answer differs (recorded ");
	expect_failure(k, &t, &r, "output_digest: output digest differs");
	proto_result_deinit(&r);

	signed_result(k, &t, &r);
	tamper(&r, 1, "{\"total\":31}");
	expect_failure(k, &t, &r, "steps: step 1 (script): the output differs (recorded ");
	proto_result_deinit(&r);

	signed_result(k, &t, &r);
	buf_append_str(&r.output.chain->steps[1].out, "x");
	expect_failure(k, &t, &r, "steps: step 1 (script): stdout differs");
	proto_result_deinit(&r);

	signed_result(k, &t, &r);
	r.output.chain->steps[2].completion_tokens = 1;
	expect_failure(k, &t, &r,
	               "steps: step 2 (llm): usage differs (recorded 5+1 tokens, "
	               "attested 5+10)");
	proto_result_deinit(&r);

	signed_result(k, &t, &r);
	r.cost->items[1].cost = 0;
	r.cost->total = 64;
	expect_failure(k, &t, &r, "cost: the result's cost {\"unit\":\"micro_usd\",\"total\":64,");
	proto_result_deinit(&r);
	proto_task_deinit(&t);
	attest_key_free(k);
}

/* A node that signs a total other than the sum of its breakdown is caught too. */
static void test_inconsistent_cost(void **state)
{
	attest_key *k = test_key();
	proto_task t;
	parse_task(&t);
	proto_result r, p;
	chain_result(&r);
	r.cost->total = 66;
	attest_claim c = {.task = &t, .result = &r, .env = env, .n_env = 2, .sequence = 1};
	assert_int_equal(attest_sign(k, &c, &r.attestation, &r.execution_digest, NULL, NULL), 0);
	buf doc = BUF_INIT;
	proto_result_to_json(&r, &doc);
	assert_int_equal(proto_result_parse(buf_str(&doc), doc.len, &p, NULL), 0);
	expect_failure(k, &t, &p, "cost: the total 66 is not the sum of the breakdown (65)");
	buf_deinit(&doc);
	proto_result_deinit(&p);
	/* ... and one that hides the breakdown of a result that is not sealed */
	r.cost->total = 65;
	r.cost->breakdown_sealed = true;
	free(r.attestation);
	free(r.execution_digest);
	assert_int_equal(attest_sign(k, &c, &r.attestation, &r.execution_digest, NULL, NULL), 0);
	proto_result_to_json(&r, &doc);
	assert_int_equal(proto_result_parse(buf_str(&doc), doc.len, &p, NULL), 0);
	expect_failure(k, &t, &p, "cost: the cost's breakdown is sealed, but the result is not");
	buf_deinit(&doc);
	proto_result_deinit(&r);
	proto_result_deinit(&p);
	proto_task_deinit(&t);
	attest_key_free(k);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_golden),
	    cmocka_unit_test(test_sign_verify),
	    cmocka_unit_test(test_tampered),
	    cmocka_unit_test(test_inconsistent_cost),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
