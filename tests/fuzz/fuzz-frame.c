/* libFuzzer target for the agent frame codec (sandbox/agent/frame.c): the host parses frames
 * from an untrusted agent and the agent parses the TASK payload. The input is fed to a
 * sandbox_frame_reader in pieces whose sizes come from the input itself; every frame taken is then
 * walked as TASK fields and parsed as an EXIT payload and as a credential proxy's PROXY_REQUEST
 * (every field it takes must lie inside the payload, within its cap), and a frame re-encoded
 * with the writers must read back identically.
 *
 * Build and run (not registered in meson):
 * The skills frames (SKILL_FILE, BLOB_IN: the agent's parsers; OUT_BLOB, LOGS: the host's,
 * sandbox/runtime-out.c) are parsed too, every frame as each of them, with their bounds
 * checked. Built by tests/fuzz/meson.build (suite "fuzz"). */
#include <stdlib.h>
#include <string.h>

#include "proto/json.h"
#include "sandbox/agent/frame.h"
#include "sandbox/runtime-out.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Every payload as each of the skills frames: results within the payload and the caps. */
static void check_skills(const uint8_t *p, size_t n)
{
	sandbox_frame_skill_file f;
	if (sandbox_frame_parse_skill_file(p, n, &f) == 0 &&
	    ((const uint8_t *)f.path != p + 1 || f.path_len + f.len + 2 != n ||
	     memchr(f.path, 0, f.path_len) || f.data != p + f.path_len + 2))
		abort();
	const uint8_t *d;
	size_t dn;
	if (sandbox_frame_parse_blob_in(p, n, &d, &dn) == 0 && (d != p + 64 || dn != n - 64))
		abort();
	proto_output o;
	proto_output_init(&o);
	sandbox_take_out_blob(&o, p, n);
	sandbox_take_out_blob(&o, p, n / 2);
	sandbox_take_logs(&o, p, n);
	if (o.n_out_blobs > PROTO_OUT_BLOBS_MAX || (!o.logs_json && n))
		abort();
	for (size_t i = 1; i < o.n_out_blobs; i++)
		if (strcmp(o.out_blobs[i - 1].id, o.out_blobs[i].id) >= 0)
			abort();
	yajl_val v = NULL;
	if (o.logs_json && (proto_json_parse(o.logs_json, strlen(o.logs_json), &v, NULL) < 0 ||
	                    !YAJL_IS_ARRAY(v) || v->u.array.len > PROTO_LOG_ENTRIES_MAX + 1))
		abort();
	yajl_tree_free(v);
	proto_output_deinit(&o);
}

static void check_frame(uint8_t type, const uint8_t *p, size_t n)
{
	check_skills(p, n);
	size_t off = 0, vn, total = 0;
	uint8_t tag;
	const uint8_t *v;
	int r;
	while ((r = sandbox_frame_next_field(p, n, &off, &tag, &v, &vn)) == 1) {
		if (v < p || v + vn > p + n || off > n)
			abort();
		total += 5 + vn;
		(void)sandbox_frame_get_u64(v, vn);
	}
	if (r == 0 && total != n)
		abort();
	sandbox_proxy_request rq;
	char msg[256];
	if (sandbox_proxy_request_parse(p, n, &rq, msg, sizeof(msg)) == 0) {
		const sandbox_frame_bytes *one[] = {&rq.method, &rq.url, &rq.service, &rq.body};
		for (size_t i = 0; i < 4; i++)
			if (one[i]->n && (one[i]->p < p || one[i]->p + one[i]->n > p + n))
				abort();
		if (!rq.method.n || rq.method.n > 16 || !rq.url.n || rq.url.n > PROXY_URL_MAX ||
		    rq.body.n > PROXY_BODY_MAX || rq.n_headers > PROXY_HEADERS_MAX)
			abort();
		for (size_t i = 0; i < rq.n_headers; i++)
			if (rq.headers[i].p < p || rq.headers[i].p + rq.headers[i].n > p + n ||
			    rq.headers[i].n > PROXY_HEADER_MAX)
				abort();
	} else if (!memchr(msg, '\0', sizeof(msg))) {
		abort(); /* the refusal's message is a string */
	}
	sandbox_frame_exit ex;
	if (sandbox_frame_parse_exit(p, n, &ex) == 0 &&
	    (ex.msg_len != n - 5 || ex.msg != (const char *)p + 5))
		abort();

	/* Round trip through the writers. */
	sandbox_frame_buf b = {0};
	sandbox_frame_put(&b, type, p, n);
	sandbox_frame_reader rr;
	sandbox_frame_reader_init(&rr);
	uint8_t t2;
	const uint8_t *p2;
	size_t n2;
	if (sandbox_frame_reader_feed(&rr, b.data, b.len) < 0 ||
	    sandbox_frame_reader_next(&rr, &t2, &p2, &n2) != 1 || t2 != type || n2 != n ||
	    (n && memcmp(p2, p, n)) || sandbox_frame_reader_next(&rr, &t2, &p2, &n2) != 0)
		abort();
	sandbox_frame_reader_deinit(&rr);
	sandbox_frame_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	/* The first byte picks the piece size, so frames get split at every possible place. */
	size_t piece = (size_t)data[0] + 1;
	data++, size--;
	sandbox_frame_reader r;
	sandbox_frame_reader_init(&r);
	size_t pos = 0;
	bool done = false;
	while (!done) {
		uint8_t type;
		const uint8_t *p;
		size_t n;
		int k;
		while ((k = sandbox_frame_reader_next(&r, &type, &p, &n)) == 1) {
			if (n > FRAME_MAX)
				abort();
			check_frame(type, p, n);
		}
		if (k < 0 || pos == size)
			break;
		size_t take = size - pos < piece ? size - pos : piece;
		if (sandbox_frame_reader_feed(&r, data + pos, take) < 0)
			done = true;
		pos += take;
	}
	sandbox_frame_reader_deinit(&r);
	return 0;
}
