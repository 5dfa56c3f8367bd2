/* problem+json (RFC 9457) documents, HTTP reason phrases and ISO 8601 timestamps (core.h).
 * Every error the gateway answers, its own or evhttp's, is one of these documents. */
#include "gateway/core.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "proto/json.h"

#define PROBLEM_BASE "https://aisp.dev/problems/"

static const struct {
	int status;
	const char *reason;
} reasons[] = {
    {200, "OK"},
    {202, "Accepted"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {402, "Payment Required"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {408, "Request Timeout"},
    {411, "Length Required"},
    {413, "Content Too Large"},
    {415, "Unsupported Media Type"},
    {417, "Expectation Failed"},
    {422, "Unprocessable Content"},
    {429, "Too Many Requests"},
    {431, "Request Header Fields Too Large"},
    {501, "Not Implemented"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
};

const char *gw_status_reason(int status)
{
	for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
		if (reasons[i].status == status)
			return reasons[i].reason;
	return "Error";
}

void gw_problem_render(buf *out, int status, const char *slug, const char *detail,
                       const char *instance, const char *const *extra)
{
	_cleanup_json_gen_ proto_gen *g = proto_json_gen_new();
	char type[128];
	snprintf(type, sizeof(type), PROBLEM_BASE "%s", slug);
	proto_json_gen_open(g, true);
	proto_json_gen_kstr(g, "type", type);
	proto_json_gen_kstr(g, "title", gw_status_reason(status));
	proto_json_gen_kint(g, "status", status);
	proto_json_gen_str(g, "detail");
	proto_json_gen_text(g, detail, strlen(detail));
	if (instance) {
		proto_json_gen_str(g, "instance");
		proto_json_gen_text(g, instance, strlen(instance));
	}
	for (size_t i = 0; extra && extra[i] && extra[i + 1]; i += 2) {
		proto_json_gen_str(g, extra[i]);
		proto_json_gen_text(g, extra[i + 1], strlen(extra[i + 1]));
	}
	proto_json_gen_close(g, true);
	proto_json_gen_take_valid(g, out);
}

void gw_iso8601(int64_t ms, char out[32])
{
	time_t s = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&s, &tm);
	char base[24];
	strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out, 32, "%s.%03dZ", base, (int)(ms % 1000));
}
