/* Sealed skills on the command line (cli/skill-sealed.c; proto/SKILLS.md, "Sealed skills"). */
#pragma once

#include <stddef.h>

#include "attest/attest.h"
#include "cli/cli.h"
#include "common/err.h"
#include "sandbox/sandbox.h"

/* aisp skill seal: the skill directory dir (mode = "sealed") sealed to the recipients rs as the
 * directory out (created): skill.toml and skill.age. */
int cli_skill_seal(const char *dir, const cli_recipients *rs, const char *out, err **e);
/* The sealed skill in the directory dir (skill.toml and skill.age), opened with ids and checked
 * as the node checks it for a task. Returns 1 when dir holds a sealed skill (checked), 0 when
 * its skill.toml does not say sealed (or is missing: adding it says why), -1 with *e (also a
 * sealed skill and no identity). */
int cli_skill_check_sealed_dir(const char *dir, attest_age_identity *const *ids, size_t n_ids,
                               err **e);
/* The same for the directory open at fd (dir names it in messages). */
int cli_skill_check_sealed_at(int fd, const char *dir, attest_age_identity *const *ids,
                              size_t n_ids, err **e);
/* Opens dirfd's skill.age with ids and checks its plaintext against the manifest m (its text
 * toml[0..toml_len)). label names the directory in messages. */
int cli_skill_check_sealed(const char *label, const sandbox_skill_manifest *m, const void *toml,
                           size_t toml_len, int dirfd, attest_age_identity *const *ids,
                           size_t n_ids, err **e);
