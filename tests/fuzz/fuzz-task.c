/* libFuzzer target for the parsers of untrusted JSON in proto/: proto_task_parse (tasks come
 * from anyone who can XADD) and proto_result_parse (results are read by clients). The first
 * input byte picks the parser, the rest is the document. Whatever parses must serialise and
 * parse again to the same document (serialising is a fixed point), and failures must come with
 * a message and leave nothing allocated (run under ASan/LSan).
 *
 * Build and run (not registered in meson), from the source root:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -I. -I/usr/include/yajl \
 *         tests/fuzz/fuzz-task.c proto/json.c proto/proto.c proto/task.c proto/result.c \
 *         common/err.c common/xalloc.c common/buf.c -lyajl -lcrypto -o /tmp/fuzz-task
 *   mkdir -p /tmp/fuzz-task-corpus && /tmp/fuzz-task -max_total_time=30 /tmp/fuzz-task-corpus */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/err.h"
#include "proto/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_task(const char *p, size_t n)
{
	proto_task t, t2;
	proto_task_head head = {0};
	err *e = NULL;
	if (proto_task_parse(p, n, &t, &head, &e) < 0) {
		if (!e || !err_msg(e)[0])
			abort();
		if (head.id && !proto_id_valid(head.id))
			abort();
		if (head.reply_stream && !proto_reply_stream_valid(head.reply_stream))
			abort();
		proto_task_head_deinit(&head);
		err_free(e);
		return;
	}
	/* On success the head names the task's own id and reply stream. */
	if (e || !head.id || strcmp(head.id, t.id) != 0 ||
	    (head.reply_stream == NULL) != (t.reply_stream == NULL))
		abort();
	proto_task_head_deinit(&head);
	buf a = BUF_INIT, b = BUF_INIT;
	proto_task_to_json(&t, &a);
	if (proto_task_parse(buf_str(&a), a.len, &t2, NULL, &e) < 0)
		abort();
	proto_task_to_json(&t2, &b);
	if (a.len != b.len || memcmp(a.data, b.data, a.len) != 0)
		abort();
	if (t.stdin_len != t2.stdin_len || t.n_files != t2.n_files || t.n_env != t2.n_env ||
	    memcmp(&t.limits, &t2.limits, sizeof(t.limits)) != 0)
		abort();
	proto_task_deinit(&t);
	proto_task_deinit(&t2);
	buf_deinit(&a);
	buf_deinit(&b);
}

static void fuzz_result(const char *p, size_t n)
{
	proto_result r, r2;
	err *e = NULL;
	if (proto_result_parse(p, n, &r, &e) < 0) {
		if (!e || !err_msg(e)[0])
			abort();
		err_free(e);
		return;
	}
	buf a = BUF_INIT, b = BUF_INIT;
	proto_result_to_json(&r, &a);
	if (proto_result_parse(buf_str(&a), a.len, &r2, &e) < 0)
		abort();
	proto_result_to_json(&r2, &b);
	if (a.len != b.len || memcmp(a.data, b.data, a.len) != 0)
		abort();
	if (r.output.out.len != r2.output.out.len ||
	    (r.output.out.len && memcmp(r.output.out.data, r2.output.out.data, r.output.out.len)))
		abort();
	proto_result_deinit(&r);
	proto_result_deinit(&r2);
	buf_deinit(&a);
	buf_deinit(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const char *p = (const char *)data + 1;
	if (data[0] & 1)
		fuzz_result(p, size - 1);
	else
		fuzz_task(p, size - 1);
	return 0;
}
