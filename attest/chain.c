/* The node's hash chain state: the digest and sequence number of its last attestation, kept
 * in a small JSON file that is replaced atomically after every signed result. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "attest/attest.h"
#include "attest/internal.h"
#include "common/cleanup.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "proto/json.h"

#define CHAIN_FILE_MAX 4096

int attest_chain_load(int dirfd, const char *name, attest_chain *c, err **e)
{
	*c = (attest_chain)ATTEST_CHAIN_INIT;
	buf b = BUF_INIT;
	_cleanup_err_ err *re = NULL;
	if (read_file_at(dirfd, name, CHAIN_FILE_MAX, &b, &re) < 0) {
		buf_deinit(&b);
		if (re->code == ENOENT)
			return 0;
		*e = steal_pointer(&re);
		return err_prefix(e, "chain state");
	}
	_cleanup_yajl_val_ yajl_val v = NULL;
	proto_json_parse(buf_str(&b), b.len, &v, NULL);
	buf_deinit(&b);
	const char *prev_path[] = {"previous", NULL}, *seq_path[] = {"sequence", NULL};
	yajl_val prev = v ? yajl_tree_get(v, prev_path, yajl_t_string) : NULL;
	yajl_val seq = v ? yajl_tree_get(v, seq_path, yajl_t_number) : NULL;
	if (!prev || !YAJL_IS_INTEGER(seq) || YAJL_GET_INTEGER(seq) < 0)
		return err_set(e, 0,
		               "chain state %s: malformed (expected {\"previous\":..., "
		               "\"sequence\":N})",
		               name);
	const char *p = YAJL_GET_STRING(prev);
	if (!p || (*p && !attest_digest_valid(p)) || (!*p) != (YAJL_GET_INTEGER(seq) == 0))
		return err_set(e, 0, "chain state %s: invalid previous digest \"%s\"", name, p);
	snprintf(c->previous, sizeof(c->previous), "%s", p);
	c->sequence = (uint64_t)YAJL_GET_INTEGER(seq);
	return 0;
}

int attest_chain_save(int dirfd, const char *name, const attest_chain *c, err **e)
{
	_cleanup_json_gen_ proto_gen *j = proto_json_gen_new();
	proto_json_gen_open(j, true);
	proto_json_gen_kstr(j, "previous", c->previous);
	proto_json_gen_kint(j, "sequence", (long long)c->sequence);
	proto_json_gen_close(j, true);
	_cleanup_free_ char *text = NULL;
	size_t len = 0;
	if (!(text = proto_json_gen_steal(j, &len, e)))
		return err_prefix(e, "chain state");
	if (write_file_at(dirfd, name, text, len, 0600, e) < 0)
		return err_prefix(e, "chain state");
	return 0;
}

void attest_chain_advance(attest_chain *c, const char *attestation_digest, uint64_t sequence)
{
	snprintf(c->previous, sizeof(c->previous), "%s", attestation_digest);
	c->sequence = sequence;
}
