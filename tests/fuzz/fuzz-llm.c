/* libFuzzer target for what the LLM client reads from a provider (daemon/llm.h): the first
 * input byte picks the parser, the rest is the input.
 *   0: llm_cost_from_decimal() on the text. Differential check against yajl's number grammar:
 *      accepted text must be a JSON number, and a non-negative JSON number of at most 64
 *      bytes must be accepted or refused only as above the limit; an accepted value is within
 *      [0, LLM_MAX_COST_MICRO_USD].
 *   1: llm_parse_response() on the body. Success means content and model are set and the cost
 *      source matches the usage; failure comes with a message; in no case does the API key
 *      appear in anything returned (redaction), and nothing leaks (ASan/LSan).
 * Registered in tests/fuzz/meson.build (build with CC=clang -Dfuzz=true). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/xalloc.h"
#include "daemon/llm.h"
#include "proto/json.h"

#define KEY "sk-fuzz-0123456789abcdef"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static llm *the_llm(void)
{
	static llm *l;
	static const char *const models[] = {"m", NULL};
	static const llm_price prices[] = {{"m", 3000000, 5000000}};
	if (!l) {
		llm_options o = {.api_key = KEY, .models = models, .prices = prices, .n_prices = 1};
		if (llm_new(&l, NULL, &o, NULL) < 0)
			abort();
	}
	return l;
}

static void fuzz_cost(const char *text)
{
	int64_t v = -1;
	err *e = NULL;
	int r = llm_cost_from_decimal(text, &v, &e);
	yajl_val j = NULL;
	bool number = proto_json_parse(text, strlen(text), &j, NULL) == 0 && YAJL_IS_NUMBER(j);
	yajl_tree_free(j);
	if (r == 0 && (!number || v < 0 || v > LLM_MAX_COST_MICRO_USD || e))
		abort();
	if (r < 0 && (!e || !err_msg(e)[0]))
		abort();
	bool plain = text[strspn(text, "0123456789.eE+-")] == 0; /* yajl skips white space */
	if (r < 0 && number && plain && text[0] != '-' && strlen(text) <= 64 &&
	    !strstr(err_msg(e), "above the limit"))
		abort();
	err_free(e);
}

static void no_key(const char *s)
{
	if (s && strstr(s, KEY))
		abort();
}

static void fuzz_response(const char *body, size_t n)
{
	llm_result r = {0};
	err *e = NULL;
	int rc = llm_parse_response(the_llm(), "m", body, n, 200, &r, &e);
	if (rc < 0 && (!e || !err_msg(e)[0]))
		abort();
	if (rc == 0 && (e || !r.content || !r.model || strlen(r.content) != r.content_len))
		abort();
	if (rc == 0 && r.cost_source == LLM_COST_PRICE_TABLE && !r.usage_reported)
		abort();
	no_key(e ? err_msg(e) : NULL);
	no_key(r.content);
	no_key(r.model);
	no_key(r.id);
	no_key(r.finish_reason);
	if (r.response_json && memmem(r.response_json, r.response_len, KEY, strlen(KEY)))
		abort();
	llm_result_deinit(&r);
	err_free(e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	char *p = xmalloc(size); /* the input after the selector, NUL-terminated */
	memcpy(p, data + 1, size - 1);
	p[size - 1] = 0;
	if (data[0] % 2 == 0)
		fuzz_cost(p);
	else
		fuzz_response(p, size - 1);
	free(p);
	return 0;
}
