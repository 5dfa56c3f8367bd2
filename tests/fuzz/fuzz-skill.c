/* libFuzzer target for the skill store's parsers of untrusted bytes (sandbox/skill-*.c, compiled
 * into this executable so that libFuzzer sees their coverage): the first input byte picks one.
 *   0: skill.toml (the TOML subset and the manifest). Whatever parses must name a valid skill
 *      with a valid entrypoint; a failure must carry a "FILE:" message.
 *   1: a bundle archive (skill_tar_parse). Every member handed over must have a path without
 *      "./" or a trailing "/", and data inside the input.
 *   2: a secret and an output (daemon/secrets-redact.c): after redaction the secret must not
 *      occur in the output. Bytes 1-2 are the secret's length.
 *   3: the plaintext of a sealed skill (sandbox_skill_sealed_unpack): whatever is accepted is
 *      the root as 's', then entries below "demo/" whose directories came before them, and a
 *      refusal leaves the payload empty. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/err.h"
#include "daemon/secrets.h"
#include "sandbox/sandbox.h"
#include "sandbox/skill-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_manifest(const uint8_t *p, size_t n)
{
	sandbox_skill_manifest m;
	err *e = NULL;
	if (sandbox_skill_manifest_parse("f.toml", (const char *)p, n, &m, &e) < 0) {
		if (!e || strncmp(err_msg(e), "f.toml:", 7) != 0)
			abort();
		if (m.name)
			abort(); /* nothing left behind */
		err_free(e);
		return;
	}
	if (!sandbox_skill_name_valid(m.name) || !m.version || !m.entry_path || !m.entry_func ||
	    strncmp(m.entry_path, "code/", 5) != 0 || !skill_path_valid(m.entry_path))
		abort();
	char *mod = sandbox_skill_entry_module(&m);
	if (strncmp(mod, "skills", 6) != 0)
		abort();
	free(mod);
	sandbox_skill_manifest_deinit(&m);
}

typedef struct span {
	const uint8_t *p;
	size_t n;
} span;

static int on_member(const char *path, bool dir, bool exec, const uint8_t *d, size_t len, void *arg,
                     err **e)
{
	const span *in = arg;
	size_t pl = strlen(path);
	if (!pl || !strncmp(path, "./", 2) || path[pl - 1] == '/' || (dir && len))
		abort();
	if (len && (d < in->p || d + len > in->p + in->n))
		abort();
	return 0;
}

static void fuzz_archive(const uint8_t *p, size_t n)
{
	span in = {p, n};
	err *e = NULL;
	if (skill_tar_parse(p, n, on_member, &in, &e) < 0) {
		if (!e || strncmp(err_msg(e), "archive: ", 9) != 0)
			abort();
		err_free(e);
	}
}

static void fuzz_redact(const uint8_t *p, size_t n)
{
	if (n < 2)
		return;
	size_t k = ((size_t)p[0] << 8 | p[1]) % 64 + SECRETS_VALUE_MIN;
	if (n - 2 < k)
		return;
	secret_value v = {(char *)"S", (uint8_t *)(p + 2), k};
	secrets_redactor *r = secrets_redactor_new(&v, 1);
	buf b = BUF_INIT;
	buf_append(&b, p + 2 + k, n - 2 - k);
	secrets_redact(r, &b, (p[0] & 0x80) != 0);
	if (b.len >= k && memmem(b.data, b.len, p + 2, k))
		abort();
	buf_deinit(&b);
	secrets_redactor_free(r);
}

#define SEALED_TOML                                                                                \
	"name = \"demo\"\nversion = \"1.0.0\"\nlanguage = \"python\"\nentrypoint = "               \
	"\"code/run.py:main\"\nmode = \"sealed\"\n"

static void fuzz_sealed(const uint8_t *p, size_t n)
{
	sandbox_skill_manifest m;
	err *e = NULL;
	if (sandbox_skill_manifest_parse("t", SEALED_TOML, strlen(SEALED_TOML), &m, &e) < 0)
		abort();
	sandbox_payload pl = {0};
	if (sandbox_skill_sealed_unpack(p, n, SEALED_TOML, strlen(SEALED_TOML), &m, &pl, &e) < 0) {
		if (!e || strncmp(err_msg(e), "sealed skill demo: ", 19) != 0 || pl.n_files)
			abort();
		err_free(e);
	} else {
		if (pl.n_files < 3 || pl.files[0].kind != 's' || strcmp(pl.files[0].path, "demo"))
			abort();
		for (size_t i = 1; i < pl.n_files; i++)
			if (strncmp(pl.files[i].path, "demo/", 5) ||
			    !skill_path_valid(pl.files[i].path + 5))
				abort();
	}
	sandbox_payload_deinit(&pl);
	sandbox_skill_manifest_deinit(&m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	switch (data[0] % 4) {
	case 0:
		fuzz_manifest(data + 1, size - 1);
		break;
	case 1:
		fuzz_archive(data + 1, size - 1);
		break;
	case 2:
		fuzz_redact(data + 1, size - 1);
		break;
	default:
		fuzz_sealed(data + 1, size - 1);
	}
	return 0;
}
