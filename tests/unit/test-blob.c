/* Unit tests for proto's blob pieces (proto/blob.c): ids, keys, the content check. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "proto/proto.h"

#define EMPTY "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

static void test_blob_id(void **state)
{
	char id[PROTO_BLOB_ID_LEN + 1];
	proto_blob_id_of("", 0, id);
	assert_string_equal(id, EMPTY);
	assert_int_equal(strlen(id), PROTO_BLOB_ID_LEN);
	proto_blob_id_of("abc", 3, id);
	assert_string_equal(
	    id, "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	assert_true(proto_blob_id_valid(id));
	char *key = proto_blob_key(id);
	assert_string_equal(key,
	                    "aisp:blob:sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb"
	                    "410ff61f20015ad");
	free(key);
}

static void test_blob_id_invalid(void **state)
{
	static const char *const bad[] = {
	    NULL,
	    "",
	    "sha256:",
	    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
	    "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
	    "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85",
	    "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b8555",
	    "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85g",
	    "sha512:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
	    "SHA256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
	    " sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
	    "sha256:../../../../../../../../../../../../../../../../../../../../etc/x",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_false(proto_blob_id_valid(bad[i]));
	assert_true(proto_blob_id_valid(EMPTY));
}

static void test_blob_check(void **state)
{
	err *e = NULL;
	assert_int_equal(proto_blob_check(EMPTY, "", 0, &e), 0);
	assert_int_equal(proto_blob_check(EMPTY, "x", 1, &e), -1);
	assert_string_equal(err_msg(e),
	                    "blob " EMPTY ": the bytes do not match the digest (they "
	                    "hash to sha256:2d711642b726b04401627ca9fbac32f5c8530fb1903cc4"
	                    "db02258717921a4881)");
	assert_int_equal(proto_blob_check("sha256:x", "", 0, &e), -1);
	assert_string_equal(err_msg(e), "blob \"sha256:x\": not a blob id (expected sha256: and 64 "
	                                "lower-case hex digits)");
	assert_int_equal(proto_blob_check(EMPTY, "", PROTO_BLOB_MAX + 1, &e), -1);
	assert_string_equal(err_msg(e), "blob " EMPTY ": 8388609 bytes, over the cap of 8388608");
	err_free(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_blob_id),
	    cmocka_unit_test(test_blob_id_invalid),
	    cmocka_unit_test(test_blob_check),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
