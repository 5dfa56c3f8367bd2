/* The node's secret store (proto/SKILLS.md, "Secrets"): root-only files on the host, looked up
 * for the secrets a skill declares, and the redaction of their values from everything that
 * leaves the node. Secrets never enter an image, Redis, a log line or an attestation (which
 * carries names and keyed digests: attest_secret_digest()).
 *
 * Layout (the directory is [secrets] dir, default /etc/aisp/secrets):
 *   <dir>/                       0700, owned by the daemon's user (root)
 *   <dir>/skills/<skill>/<NAME>  a secret for one skill                       dirs 0700
 *   <dir>/node/<NAME>            a node-wide secret, for the skills granted it  files 0600/0400
 * A file holds the value; one trailing "\n" (or "\r\n") is not part of it. Anything else (a
 * link, another owner, group or other bits, a NUL in the value, a value shorter than
 * SECRETS_VALUE_MIN) is refused with a message naming the file. Files are read at every lookup,
 * so a rotated secret is used from the next task on.
 *
 * Config ([secrets] in aispd.conf; the daemon's config parser passes each key here):
 *   dir = /etc/aisp/secrets
 *   grant.NAME = skill, skill...   which skills may receive the node-wide secret NAME. A skill
 *                                  names the secrets it declares itself, so a declaration alone
 *                                  never unlocks a node-wide secret.
 *   run_code_skills = skill, ...   run_code tasks mounting these skills receive those skills'
 *                                  declared secrets; default none ("run_code gets none unless
 *                                  the operator allows it").
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"

#define SECRETS_DIR_DEFAULT "/etc/aisp/secrets"
#define SECRETS_VALUE_MIN   8    /* bytes: shorter values cannot be redacted without noise */
#define SECRETS_VALUE_MAX   8192 /* bytes of one value */
#define SECRETS_GRANTS_MAX  256

/* ---- configuration ---- */

typedef struct secrets_grant {
	char *name;    /* the node-wide secret */
	char **skills; /* NULL-terminated */
	size_t n_skills;
} secrets_grant;

typedef struct secrets_config {
	char *dir;
	secrets_grant *grants;
	size_t n_grants;
	char **run_code_skills; /* NULL-terminated */
	size_t n_run_code_skills;
} secrets_config;

/* The defaults: dir = SECRETS_DIR_DEFAULT, no grants, no run_code_skills. */
void secrets_config_defaults(secrets_config *c);
void secrets_config_deinit(secrets_config *c);
/* Sets one key of [secrets] (dir, grant.NAME, run_code_skills; lists split on commas and
 * spaces). Returns 0, or -1 with a message naming the key but not the file and line, which
 * the caller prefixes: "grant.X: \"Bad\" is not a skill name". */
int secrets_config_set(secrets_config *c, const char *key, const char *value, err **e);
/* True when run_code tasks that mount skill may receive its declared secrets. */
bool secrets_run_code_allowed(const secrets_config *c, const char *skill);

/* ---- lookup ---- */

typedef struct secret_value {
	char *name;     /* owned */
	uint8_t *value; /* owned, NUL-terminated, wiped by secrets_values_free() */
	size_t len;
} secret_value;

typedef struct secrets secrets;

/* Opens the store of c (borrowed; outlives the store). Fails unless dir is a directory, not a
 * link, owned by the daemon's effective uid, mode 0700. */
int secrets_open(secrets **out, const secrets_config *c, err **e);
secrets *secrets_free(secrets *s);
/* The values of the n secrets skill declares, in that order: <dir>/skills/<skill>/NAME, else
 * <dir>/node/NAME when grant.NAME lists skill. A missing one fails with "skill S declares the
 * secret N, which this node does not hold"; a file that breaks the rules fails naming it.
 * Returns 0 with *out (free with secrets_values_free) or -1 with *e. */
int secrets_lookup(const secrets *s, const char *skill, char *const *names, size_t n,
                   secret_value **out, err **e);
/* The node-wide secret <dir>/node/NAME, for the node's own use (the credential proxy's
 * [proxy.SERVICE] secret: the operator's config grants it, no skill receives it). Returns 0
 * with *out (one value: secrets_values_free(*out, 1)) or -1 with *e. */
int secrets_lookup_node(const secrets *s, const char *name, secret_value **out, err **e);
/* Wipes and frees n values. */
void secrets_values_free(secret_value *v, size_t n);

/* ---- redaction ----
 * Replaces every occurrence of a secret's value in output with "***", and of the encodings a
 * program most often prints a secret in by accident: its JSON string escapes (as Python and
 * JavaScript write them), lower- and upper-case hex, standard and URL-safe base64 of the value
 * alone and at each of the three alignments inside a longer base64 text. It cannot catch any
 * other transformation (reversed, split, interleaved, XORed, compressed, encrypted, other
 * encodings), a part of a value, or what a program shows through sizes, timing or exit codes:
 * redaction is a seatbelt against accidental prints; the boundary is that only the skill that
 * declares a secret receives it (proto/SKILLS.md, "What redaction can and cannot catch"). */

typedef struct secrets_redactor secrets_redactor;

/* Precomputes the patterns of n values (copied; the values may be freed after). */
secrets_redactor *secrets_redactor_new(const secret_value *v, size_t n);
/* Wipes and frees the patterns. Returns NULL. */
secrets_redactor *secrets_redactor_free(secrets_redactor *r);
/* Redacts b in place; overlapping and adjacent matches become one "***". When truncated (b
 * was cut at a cap), a tail of b that is the start of a pattern is redacted too, so a value
 * cut in half does not leak its first half. Returns the number of "***" written. */
size_t secrets_redact(const secrets_redactor *r, buf *b, bool truncated);
/* The same for a NUL-terminated string: a new string (caller frees). */
char *secrets_redact_str(const secrets_redactor *r, const char *s);
