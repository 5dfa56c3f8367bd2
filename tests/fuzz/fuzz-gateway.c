/* libFuzzer target for aisp-gateway's parsers of untrusted bytes (gateway/core.h): request
 * bodies (gw_exec_req_parse, then proto_task_parse of the task it makes, as the gateway does),
 * API keys files and the config. The first input byte picks the parser. A body that
 * translates must give a task JSON that proto_json_parse accepts, with the gateway's reply
 * stream; failures must come with a message; nothing may leak (ASan/LSan). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"
#include "gateway/core.h"
#include "proto/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_body(const char *p, size_t n)
{
	gw_exec_req r;
	err *e = NULL;
	if (gw_exec_req_parse(p, n, "fz", n % 2, &r, &e) < 0) {
		if (!e || !err_msg(e)[0])
			abort();
		err_free(e);
		return;
	}
	if (!r.tool || !r.task_id || (!r.task_json && !r.skill))
		abort();
	if (r.task_json) {
		yajl_val v = NULL;
		if (proto_json_parse(r.task_json, strlen(r.task_json), &v, NULL) == -1)
			abort(); /* the gateway generated it: it is JSON (bounds may still refuse it) */
		const char *rs = v ? proto_json_get_str(v, "reply_stream") : NULL;
		if (v && (!rs || strcmp(rs, GW_REPLY_PREFIX "fz")))
			abort();
		yajl_tree_free(v);
		proto_task t;
		proto_task_init(&t);
		if (proto_task_parse(r.task_json, strlen(r.task_json), &t, NULL, &e) < 0)
			err_free(e);
		proto_task_deinit(&t);
	}
	gw_exec_req_deinit(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	char *text = xstrndup((const char *)data + 1, size - 1); /* ini parsers read C strings */
	err *e = NULL;
	switch (data[0] % 3) {
	case 0:
		fuzz_body((const char *)data + 1, size - 1);
		break;
	case 1: {
		gw_keys k = {0};
		if (gw_keys_load_string(&k, "fuzz", text, &e) < 0)
			err_free(e);
		else
			gw_keys_find(&k, text, strlen(text));
		gw_keys_deinit(&k);
		break;
	}
	default: {
		gw_config c;
		gw_config_defaults(&c);
		if (gw_config_load_string(&c, "fuzz", text, &e) < 0)
			err_free(e);
		gw_config_deinit(&c);
		break;
	}
	}
	free(text);
	return 0;
}
