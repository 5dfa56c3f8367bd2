/* aisp skill seal, and the check of a sealed skill with the node's age identity (proto/SKILLS.md,
 * "Sealed skills"). A seller seals a skill directory to a node's recipient; the node's operator
 * adds the sealed directory (skill.toml + skill.age) with -i IDENTITY, which opens skill.age in
 * memory and checks it as the node will before anything is stored. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "attest/attest.h"
#include "cli/cli.h"
#include "cli/skill.h"
#include "common/cleanup.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "sandbox/sandbox.h"

int cli_skill_seal(const char *dir, const cli_recipients *rs, const char *out, err **e)
{
	if (!rs->n)
		return err_set(e, 0, "no recipients (-r age1... of the node, or -R FILE)");
	if (!out)
		return err_set(e, 0,
		               "no output directory (-o DIR: it gets skill.toml and "
		               "skill.age)");
	buf manifest = BUF_INIT, tar = BUF_INIT;
	uint8_t *c = NULL;
	size_t n = 0;
	int r = sandbox_skill_seal_archive(dir, &manifest, &tar, e);
	if (r == 0)
		r = attest_age_encrypt(tar.data, tar.len, rs->r, rs->n, false, &c, &n, e);
	if (r == 0)
		r = sandbox_skill_sealed_write(out, manifest.data, manifest.len, c, n, e);
	if (tar.data)
		OPENSSL_cleanse(tar.data, tar.len);
	buf_deinit(&tar);
	buf_deinit(&manifest);
	free(c);
	return r;
}

int cli_skill_check_sealed_dir(const char *dir, attest_age_identity *const *ids, size_t n_ids,
                               err **e)
{
	_cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return err_set(e, errno, "skill directory %s", dir);
	return cli_skill_check_sealed_at(fd, dir, ids, n_ids, e);
}

int cli_skill_check_sealed_at(int fd, const char *dir, attest_age_identity *const *ids,
                              size_t n_ids, err **e)
{
	buf toml = BUF_INIT;
	sandbox_skill_manifest m = {0};
	_cleanup_free_ char *label = xasprintf("%s/skill.toml", dir);
	int r = read_file_at(fd, "skill.toml", SANDBOX_SKILL_MANIFEST_MAX, &toml, NULL) < 0
	            ? 0 /* sandbox_skill_add says what is wrong with it */
	            : sandbox_skill_manifest_parse(label, (const char *)toml.data, toml.len, &m, e);
	bool sealed = r == 0 && toml.len && m.mode == SANDBOX_SKILL_SEALED;
	if (sealed && !n_ids)
		r = err_set(e, 0,
		            "skill %s is sealed: give the node's age identity (-i DIR/age.key) so "
		            "that its code is checked before it is stored",
		            m.name);
	else if (sealed)
		r = cli_skill_check_sealed(dir, &m, toml.data, toml.len, fd, ids, n_ids, e);
	buf_deinit(&toml);
	sandbox_skill_manifest_deinit(&m);
	return r < 0 ? -1 : sealed;
}

int cli_skill_check_sealed(const char *label, const sandbox_skill_manifest *m, const void *toml,
                           size_t toml_len, int dirfd, attest_age_identity *const *ids,
                           size_t n_ids, err **e)
{
	buf age = BUF_INIT;
	uint8_t *plain = NULL;
	size_t n = 0;
	int r = read_file_at(dirfd, SANDBOX_SKILL_SEALED_FILE, SANDBOX_SKILL_BYTES_MAX, &age, e);
	if (r < 0)
		r = err_prefix(e, "%s", label);
	else if (attest_age_decrypt(age.data, age.len, ids, n_ids, NULL, &plain, &n, NULL, e) < 0)
		r = err_prefix(e, "sealed skill %s: %s", m->name, SANDBOX_SKILL_SEALED_FILE);
	else
		r = sandbox_skill_sealed_unpack(plain, n, toml, toml_len, m, NULL, e);
	if (plain)
		OPENSSL_cleanse(plain, n);
	free(plain);
	buf_deinit(&age);
	return r;
}
