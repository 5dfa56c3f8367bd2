/* The aisp command line: one function per command, each `int cmd_x(int argc, char **argv)`
 * with argv[0] the command name; returns the process exit status. */
#pragma once

#include "attest/attest.h"
#include "common/err.h"

int cmd_image(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_keygen(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_submit(int argc, char **argv);
int cmd_wait(int argc, char **argv);
int cmd_result(int argc, char **argv);
int cmd_nodes(int argc, char **argv);
int cmd_cancel(int argc, char **argv);
int cmd_seal(int argc, char **argv);
int cmd_unseal(int argc, char **argv);
int cmd_skill(int argc, char **argv);
int cmd_blob(int argc, char **argv);

/* aisp task (seal, sign, check), aisp passport, and aisp unseal --verify / aisp verify --sealed
 * (issue 20: cmd-task.c, cmd-passport.c, sealed-verify.c). */
int cmd_task(int argc, char **argv);
int cmd_passport(int argc, char **argv);
int cli_sealed_verify(const char *cmd, int argc, char **argv);

/* age recipients from the command line (cmd-seal.c). */
typedef struct cli_recipients {
	attest_age_recipient r[ATTEST_AGE_STANZA_MAX];
	size_t n;
} cli_recipients;
/* Adds one "age1..." recipient. Returns 0, or -1 with *e. */
int cli_recipients_add(cli_recipients *rs, const char *text, err **e);
/* Adds every recipient of a file (one per line; empty lines and '#' comments ignored; a node's
 * DIR/age.pub). Returns 0, or -1 with *e naming the file and line. */
int cli_recipients_add_file(cli_recipients *rs, const char *path, err **e);
