/* Cost arithmetic for LLM steps (llm.h): exact integer micro-USD, no floating point.
 *
 * A provider's cost is a JSON number of USD ("0.000123", "1.5e-05"); its text is read as a
 * decimal significand and a power of ten and shifted to micro-USD digit by digit, so
 * 0.1 + 0.2 style binary errors cannot occur. Rounding is half up at the micro-USD: the first
 * digit below the micro-USD decides (>= 5 rounds up), whatever follows it. The price table
 * path sums both parts in micro-USD times tokens and rounds once. */
#include "daemon/llm.h"

#include <stdio.h>
#include <string.h>

#define COST_TEXT_MAX 64

typedef struct decimal {
	char digits[COST_TEXT_MAX + 1]; /* significant digits, no leading zeros */
	int n;
	long exp10; /* value = digits * 10^exp10 */
} decimal;

static const char *scan_digits(const char *p, decimal *d, bool frac)
{
	for (; *p >= '0' && *p <= '9'; p++) {
		if (d->n || *p != '0')
			d->digits[d->n++] = *p;
		if (frac)
			d->exp10--;
	}
	return p;
}

/* The JSON number grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? ("-" refused by
 * the caller). Returns 0 or -1. */
static int parse_decimal(const char *s, decimal *d)
{
	const char *p = s;
	memset(d, 0, sizeof(*d));
	if (*p == '0' && p[1] >= '0' && p[1] <= '9')
		return -1;
	const char *q = scan_digits(p, d, false);
	if (q == p)
		return -1;
	if (*q == '.') {
		p = q + 1;
		q = scan_digits(p, d, true);
		if (q == p)
			return -1;
	}
	if (*q == 'e' || *q == 'E') {
		q++;
		int sign = *q == '-' ? -1 : 1;
		if (*q == '-' || *q == '+')
			q++;
		if (*q < '0' || *q > '9')
			return -1;
		long x = 0;
		for (; *q >= '0' && *q <= '9'; q++)
			if (x < 100000)
				x = x * 10 +
				    (*q - '0'); /* beyond, the result is 0 or too large anyway */
		d->exp10 += sign * x;
	}
	return *q ? -1 : 0;
}

/* d * 10^6, rounded half up, or -1 when above max. */
static int decimal_to_micro(const decimal *d, int64_t max, int64_t *out)
{
	long shift = d->exp10 + 6;
	long keep = d->n + shift; /* digits left of the micro-USD point */
	if (!d->n || keep < 0) {
		*out = 0;
		return 0;
	}
	if (keep > 18)
		return -1;
	int64_t v = 0;
	for (long i = 0; i < keep; i++)
		v = v * 10 + (i < d->n ? d->digits[i] - '0' : 0);
	if (keep < d->n && d->digits[keep] >= '5')
		v++;
	if (v > max)
		return -1;
	*out = v;
	return 0;
}

int llm_cost_from_decimal(const char *text, int64_t *micro_usd, err **e)
{
	if (!text || !*text)
		return err_set(e, 0, "cost is empty");
	if (strlen(text) > COST_TEXT_MAX)
		return err_set(e, 0, "cost \"%.20s...\" is longer than %d characters", text,
		               COST_TEXT_MAX);
	if (text[0] == '-')
		return err_set(e, 0, "cost %s is negative", text);
	decimal d;
	if (parse_decimal(text, &d) < 0)
		return err_set(e, 0, "cost \"%s\" is not a decimal number", text);
	if (decimal_to_micro(&d, LLM_MAX_COST_MICRO_USD, micro_usd) < 0)
		return err_set(e, 0, "cost %s USD is above the limit of %lld micro-USD", text,
		               LLM_MAX_COST_MICRO_USD);
	return 0;
}

int llm_cost_from_prices(const llm_price *p, int64_t prompt_tokens, int64_t completion_tokens,
                         int64_t *micro_usd, err **e)
{
	if (prompt_tokens < 0 || completion_tokens < 0 || p->prompt_per_mtok < 0 ||
	    p->completion_per_mtok < 0)
		return err_set(e, 0, "cost: negative token count or price");
	int64_t a, b, s;
	/* An overflow of int64 is far above LLM_MAX_COST_MICRO_USD * 1e6, so it is "too large". */
	if (__builtin_mul_overflow(prompt_tokens, p->prompt_per_mtok, &a) ||
	    __builtin_mul_overflow(completion_tokens, p->completion_per_mtok, &b) ||
	    __builtin_add_overflow(a, b, &s) || __builtin_add_overflow(s, 500000, &s) ||
	    s / 1000000 > LLM_MAX_COST_MICRO_USD)
		return err_set(e, 0,
		               "cost of %lld prompt + %lld completion tokens is above the "
		               "limit of %lld micro-USD",
		               (long long)prompt_tokens, (long long)completion_tokens,
		               LLM_MAX_COST_MICRO_USD);
	*micro_usd = s / 1000000;
	return 0;
}
