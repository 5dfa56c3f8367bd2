/* The credential proxy's audit trail (ATTESTATION.md, "Proxy calls"): each entry's digest is
 * the SHA-256 of its canonical JSON (proto_proxy_call_json: sorted keys, no white space), and
 * each entry's prev is the digest of the one before ("" for the first), so the trail's head,
 * the digest of its last entry, commits to every entry and their order. The node signs the
 * head in predicate.metadata.proxy; a verifier recomputes the chain from the entries the
 * result carries. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "attest/internal.h"
#include "common/cleanup.h"
#include "common/xalloc.h"
#include "proto/json.h"

void attest_proxy_entry_digest(const proto_proxy_call *c, char out[ATTEST_DIGEST_LEN])
{
	buf b = BUF_INIT;
	proto_proxy_call_json(c, &b);
	attest_sha256_str(b.data, b.len, out);
	buf_deinit(&b);
}

char *attest_proxy_chain_why(const proto_proxy_audit *a)
{
	char d[ATTEST_DIGEST_LEN] = "";
	for (size_t i = 0; i < a->n_calls; i++) {
		const proto_proxy_call *c = &a->calls[i];
		if (c->seq != (int64_t)i + 1)
			return xasprintf("calls[%zu] has seq %" PRId64 ", not %zu", i, c->seq,
			                 i + 1);
		if (strcmp(c->prev, d))
			return xasprintf("calls[%zu].prev is not the digest of the entry before it "
			                 "(an entry was edited, removed or reordered)",
			                 i);
		attest_proxy_entry_digest(c, d);
	}
	if (a->n_calls ? !a->head || strcmp(a->head, d) : a->head != NULL)
		return xstrdup("the head is not the digest of the last entry");
	return NULL;
}

/* The signed summary: {"calls", "head", "refused", "services"} (sorted keys). */
static void gen_summary(proto_gen *g, const proto_proxy_audit *a)
{
	proto_json_gen_open(g, true);
	proto_json_gen_kint(g, "calls", (int64_t)a->n_calls);
	proto_json_gen_kstr_or_null(g, "head", a->head);
	proto_json_gen_kint(g, "refused", a->refused);
	proto_json_gen_kstrs(g, "services", (const char *const *)a->services);
	proto_json_gen_close(g, true);
}

void attest_gen_proxy(proto_gen *j, const proto_proxy_audit *a)
{
	if (!a)
		return;
	proto_json_gen_str(j, "proxy");
	gen_summary(j, a);
}

/* What the result carries against what was signed: NULL when they agree. */
static char *proxy_diff(yajl_val sig, const proto_proxy_audit *a)
{
	if (!a || !sig)
		return xstrdup(a ? "the statement signs no proxy calls"
		                 : "the statement signs proxy calls the result does not carry");
	char *why = attest_proxy_chain_why(a);
	if (why)
		return why;
	_cleanup_json_gen_ proto_gen *g1 = proto_json_gen_new();
	_cleanup_json_gen_ proto_gen *g2 = proto_json_gen_new();
	gen_summary(g1, a);
	proto_json_gen_value(g2, sig);
	buf mine = BUF_INIT, theirs = BUF_INIT;
	proto_json_gen_take_valid(g1, &mine);
	proto_json_gen_take_valid(g2, &theirs);
	if (strcmp(buf_str(&mine), buf_str(&theirs)))
		why = xasprintf("the result's proxy summary %s is not the signed %s",
		                buf_str(&mine), buf_str(&theirs));
	buf_deinit(&mine);
	buf_deinit(&theirs);
	return why;
}

bool attest_proxy_check(yajl_val pred, const proto_result *r, attest_check_fn cb, void *ud)
{
	yajl_val sig = proto_json_get(proto_json_get(pred, "metadata"), "proxy");
	if (!r->proxy && !sig)
		return true;
	_cleanup_free_ char *why = proxy_diff(sig, r->proxy);
	cb(ud, "proxy", why ? ATTEST_FAIL : ATTEST_PASS, why);
	return !why;
}
