/* The runtime module's outputs as the host takes them from the agent's frames (frame.h):
 * OUT_BLOB (an output blob, named by the host's own digest of its bytes, within the caps) and
 * LOGS (the log file, one JSON object a line, within the caps). The agent, and the module
 * that wrote them, are trusted for nothing. Depends on proto/ only: tests/fuzz/fuzz-frame.c
 * compiles it in. */
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/xalloc.h"
#include "proto/json.h"
#include "sandbox/runtime-out.h"

/* LOGS: flags, then the runtime's log file, one JSON object a line (proto/PROTOCOL.md,
 * "Skills"). The module is the program's and trusted for nothing: a line that is not a JSON
 * object, and everything past PROTO_LOG_ENTRIES_MAX entries (and the one "log limit
 * reached" entry) or PROTO_LOG_MAX bytes, is dropped, and the result says so. */
void sandbox_take_logs(proto_output *o, const uint8_t *p, size_t n)
{
	o->runtime_fields = true;
	if (!n)
		return;
	o->logs_truncated |= (p[0] & LOGS_F_LOG_TRUNC) != 0;
	o->out_blobs_truncated |= (p[0] & LOGS_F_BLOBS_TRUNC) != 0;
	_cleanup_json_gen_ proto_gen *g = proto_json_gen_new();
	proto_json_gen_open(g, false);
	size_t entries = 0, off = 1, bytes = 0;
	while (off < n) {
		const uint8_t *nl = memchr(p + off, '\n', n - off);
		size_t len = nl ? (size_t)(nl - p - off) : n - off;
		yajl_val v = NULL;
		bool keep = nl && entries <= PROTO_LOG_ENTRIES_MAX &&
		            bytes + len <= PROTO_LOG_MAX &&
		            proto_json_parse((const char *)p + off, len, &v, NULL) == 0 &&
		            YAJL_IS_OBJECT(v);
		if (keep) {
			proto_json_gen_value(g, v);
			entries++;
			bytes += len + 1;
		} else if (len) {
			o->logs_truncated = true;
		}
		yajl_tree_free(v);
		off += len + 1;
	}
	proto_json_gen_close(g, false);
	buf b = BUF_INIT;
	proto_json_gen_take_valid(g, &b);
	free(o->logs_json);
	o->logs_json = buf_steal(&b, NULL);
}

static int cmp_blob(const void *a, const void *b)
{
	return strcmp(((const proto_blob *)a)->id, ((const proto_blob *)b)->id);
}

/* OUT_BLOB: named by the host's own digest of the bytes; within the caps, once each. */
void sandbox_take_out_blob(proto_output *o, const uint8_t *p, size_t n)
{
	char id[PROTO_BLOB_ID_LEN + 1];
	proto_blob_id_of(p, n, id);
	o->runtime_fields = true;
	uint64_t total = n;
	for (size_t i = 0; i < o->n_out_blobs; i++) {
		if (!strcmp(o->out_blobs[i].id, id))
			return;
		total += o->out_blobs[i].len;
	}
	if (n > PROTO_BLOB_MAX || o->n_out_blobs >= PROTO_OUT_BLOBS_MAX ||
	    total > PROTO_OUT_BLOBS_TOTAL) {
		o->out_blobs_truncated = true;
		return;
	}
	o->out_blobs = xreallocarray(o->out_blobs, o->n_out_blobs + 1, sizeof(*o->out_blobs));
	proto_blob *b = &o->out_blobs[o->n_out_blobs++];
	memcpy(b->id, id, sizeof(id));
	b->data = xmemdup(n ? p : (const uint8_t *)"", n ? n : 1);
	b->len = n;
	qsort(o->out_blobs, o->n_out_blobs, sizeof(*o->out_blobs), cmp_blob);
}
