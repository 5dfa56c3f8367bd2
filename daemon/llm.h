/* The LLM client of aispd: OpenAI-compatible chat completions (OpenRouter by default), on the
 * loop through http-client.h. Design notes and the error catalogue: daemon/LLM.md.
 *
 * One llm per node configuration; each step is an llm_call that ends in exactly one call of
 * its llm_done_fn, from the loop, unless cancelled. A call is one POST
 * <base_url>/chat/completions, non-streaming, retried on 429, 502 and 503 (Retry-After honoured,
 * in seconds or as an HTTP date) within a budget of attempts and of total waiting time, on
 * loop timers (never sleeping). An {"error": ...} body is an error whatever the status, a body
 * that is not JSON is an error, the body is capped.
 *
 * The API key lives only in this object's memory and in the Authorization header libcurl sends.
 * It never appears in a message, a result or anything else returned: every provider text that
 * is passed on (error messages, the answer, the raw bodies) has each occurrence of the key
 * replaced by "[REDACTED]".
 *
 * Cost is exact integer micro-USD (1 USD = 1 000 000): the provider's usage.cost when present
 * (OpenRouter reports it in credits, 1 credit = 1 USD), converted from its decimal text with
 * no floating point, else the node's price table. Both round half up to the micro-USD, once
 * per call (see llm_cost_from_decimal(), llm_cost_from_prices()). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "daemon/http-client.h"

typedef struct llm llm;
typedef struct llm_call llm_call;

#define LLM_DEFAULT_BASE_URL           "https://openrouter.ai/api/v1"
#define LLM_DEFAULT_MAX_TOKENS         4096
#define LLM_DEFAULT_CONNECT_TIMEOUT_MS 10000
#define LLM_DEFAULT_TIMEOUT_MS         120000
#define LLM_DEFAULT_MAX_ATTEMPTS       4
#define LLM_DEFAULT_RETRY_BUDGET_MS    60000
#define LLM_DEFAULT_RETRY_BASE_MS      1000
#define LLM_DEFAULT_MAX_RESPONSE_BYTES (4 * 1024 * 1024)
#define LLM_MAX_API_KEY_BYTES          1024
#define LLM_MAX_MODEL_BYTES            256
#define LLM_TEMPERATURE_MAX_MILLI      2000
#define LLM_TEMPERATURE_UNSET          (-1)
#define LLM_MAX_PRICE_PER_MTOK         1000000000000LL /* micro-USD: 1 000 000 USD per Mtok */
#define LLM_MAX_COST_MICRO_USD         1000000000000LL /* 1 000 000 USD for one call */
#define LLM_MAX_TOKENS_REPORTED        1000000000LL    /* a provider's token count above: bad */

/* A price in the node's table: micro-USD per million tokens. */
typedef struct llm_price {
	const char *model; /* exact model name, or "*" for every model without an entry */
	int64_t prompt_per_mtok;
	int64_t completion_per_mtok;
} llm_price;

typedef struct llm_options {
	const char *base_url;      /* NULL: LLM_DEFAULT_BASE_URL; "/chat/completions" is added */
	const char *api_key;       /* required; read from api_key_file by the caller; copied */
	const char *const *models; /* the allowed models, NULL-terminated, at least one */
	const llm_price *prices;   /* copied; may be empty when the provider reports cost */
	size_t n_prices;
	int64_t max_tokens;         /* the node's cap; 0: LLM_DEFAULT_MAX_TOKENS */
	int64_t connect_timeout_ms; /* per attempt; 0: LLM_DEFAULT_CONNECT_TIMEOUT_MS */
	int64_t timeout_ms;         /* per attempt; 0: LLM_DEFAULT_TIMEOUT_MS */
	int max_attempts;           /* including the first; 0: LLM_DEFAULT_MAX_ATTEMPTS */
	int64_t retry_budget_ms;    /* total waiting between attempts; 0: the default */
	int64_t retry_base_ms;      /* backoff without Retry-After; 0: the default */
	size_t max_response_bytes;  /* 0: LLM_DEFAULT_MAX_RESPONSE_BYTES */
	const char *ca_file;        /* NULL: the system store */
	bool allow_http;            /* TESTS ONLY (see http-client.h) */
	bool allow_private;         /* TESTS ONLY (see http-client.h) */
} llm_options;

/* A step. Everything is borrowed for the duration of llm_call_start() only (it is copied). */
typedef struct llm_request {
	const char *model;         /* must be in the allowed list */
	const char *system_prompt; /* NULL or "": no system message */
	const char *input;         /* the user message: valid UTF-8, input_len bytes */
	size_t input_len;
	int temperature_milli; /* 0..LLM_TEMPERATURE_MAX_MILLI, or LLM_TEMPERATURE_UNSET */
	int64_t max_tokens;    /* 1..the node's cap, or 0: the node's cap */
} llm_request;

typedef enum llm_cost_source {
	LLM_COST_NONE = 0,    /* neither a provider cost nor a price: cost_micro_usd is 0 */
	LLM_COST_PROVIDER,    /* usage.cost */
	LLM_COST_PRICE_TABLE, /* the node's prices and the reported token counts */
} llm_cost_source;

/* What a call produced. On success every field is set (id and finish_reason when the provider
 * sent them). On failure content, model, id, finish_reason, usage and cost are empty; attempts
 * and status say how far it got, request_json is what was sent, and response_json is the body
 * when a 2xx response was read. Strings are NUL-terminated and owned by the call until fn
 * returns; fn may take them with steal_pointer(). */
typedef struct llm_result {
	char *content; /* choices[0].message.content: the step output (redacted) */
	size_t content_len;
	char *model;         /* the model the provider reports (may name the routed variant) */
	char *id;            /* the provider's response id, or NULL */
	char *finish_reason; /* or NULL */
	bool usage_reported; /* the response had usage.prompt_tokens and completion_tokens */
	int64_t prompt_tokens, completion_tokens;
	int64_t cost_micro_usd;
	llm_cost_source cost_source;
	char *request_json; /* the exact body sent (no key in it), for the request digest */
	size_t request_len;
	char *response_json; /* the final response body as received (redacted) */
	size_t response_len;
	int attempts; /* requests sent */
	long status;  /* HTTP status of the last response, 0 if none */
} llm_result;

/* e is NULL on success; else the precise reason ("llm: ..."). r and e are borrowed for the
 * call; the llm_call is freed right after fn returns (cancelling it from fn is a no-op). fn may
 * start or cancel other calls, but must not free the llm. */
typedef void (*llm_done_fn)(llm_result *r, const err *e, void *arg);

/* Checks and copies the options. Returns 0 or -1 with *e ("llm: base_url ...", "llm: no
 * models allowed", ...). The client hc is borrowed and must outlive the llm (it may be NULL
 * for an llm used only by llm_parse_response()). */
int llm_new(llm **out, http_client *hc, const llm_options *o, err **e);
/* Cancels every call in flight (no callbacks) and wipes the key. NULL is fine. */
llm *llm_free(llm *l);

/* Checks the request against the node's rules (model allowed, max_tokens within the cap,
 * temperature, UTF-8) without sending anything. Returns 0 or -1 with *e. */
int llm_check_request(const llm *l, const llm_request *rq, err **e);
/* Checks the request, then starts it. Returns the call (valid until fn returns or
 * llm_call_cancel()), or NULL with *e, and then fn is never called. */
llm_call *llm_call_start(llm *l, const llm_request *rq, llm_done_fn fn, void *arg, err **e);
/* Stops the call wherever it is (request in flight, waiting to retry) and frees it; fn is not
 * called. NULL is fine. */
void llm_call_cancel(llm_call *c);

typedef enum llm_call_state {
	LLM_CALL_SENDING, /* a request is in flight */
	LLM_CALL_WAITING, /* waiting to retry */
} llm_call_state;
llm_call_state llm_call_get_state(const llm_call *c);
/* Requests sent so far. */
int llm_call_attempts(const llm_call *c);

/* Parses a chat-completions response body (what a successful call does with a 2xx body):
 * fills r's content, model (default: model, the one requested), id, finish_reason, usage and
 * cost, and response_json (the body, redacted). status is the HTTP status it came with (for
 * messages). Returns 0, or -1 with *e and r partly filled; release r with llm_result_deinit().
 * Exposed for the fuzz target; the body is untrusted. */
int llm_parse_response(const llm *l, const char *model, const char *body, size_t len, long status,
                       llm_result *r, err **e);
/* Frees the strings of r (not r). */
void llm_result_deinit(llm_result *r);

/* Converts a non-negative decimal amount of USD given as JSON number text ("0.00123",
 * "1.5e-05", "12") into micro-USD, exactly, rounding half up at the micro-USD (0.0000005 ->
 * 1, 0.00000049 -> 0). Returns 0, or -1 with *e when the text is not a JSON number, is
 * negative, or is above LLM_MAX_COST_MICRO_USD. */
int llm_cost_from_decimal(const char *text, int64_t *micro_usd, err **e);
/* (prompt_tokens * prompt_per_mtok + completion_tokens * completion_per_mtok) / 1e6,
 * rounded half up once (not per part). Returns 0, or -1 with *e on a negative input or a
 * result above LLM_MAX_COST_MICRO_USD. */
int llm_cost_from_prices(const llm_price *p, int64_t prompt_tokens, int64_t completion_tokens,
                         int64_t *micro_usd, err **e);
/* The price entry for model (exact name first, then "*"), or NULL. Borrowed. */
const llm_price *llm_price_for(const llm *l, const char *model);
