/* The task options shared by `aisp run` and `aisp submit`: flags -> a task JSON document, so
 * a local run and a submitted task go through the same parser and validation (proto/). */
#pragma once

#include <stdbool.h>

#include "common/buf.h"
#include "common/err.h"
#include "proto/proto.h"

#define CLI_TASK_FILES_MAX 64
/* The program succeeded but --out could not save its output files. */
#define CLI_EXIT_NOT_SAVED 5

typedef struct cli_task_opts {
	const char *id, *lang, *image, *runtime, *code, *code_file, *stdin_file, *args_json;
	const char *reply_stream;
	const char *services; /* "a,b": the credential proxy's services (issue 21) */
	const char *limits[PROTO_LIMIT_COUNT]; /* by proto_limit_fields index, wire-unit text */
	const char *files[CLI_TASK_FILES_MAX]; /* "PATH=LOCALFILE" */
	const char *env[CLI_TASK_FILES_MAX];   /* "NAME=VALUE" */
	int n_files, n_env;
	bool function;
} cli_task_opts;

/* Consumes the task option at argv[*i] (advancing *i past its value). Returns 1 when it was
 * one, 0 when argv[*i] is not a task option, -1 with *e on a missing value. */
int cli_task_opt(cli_task_opts *o, int argc, char **argv, int *i, err **e);
/* Builds the task JSON (reading the named files). Returns 0 or -1 with *e. */
int cli_task_json(const cli_task_opts *o, buf *out, err **e);
/* The usage text of the task options. */
extern const char cli_task_usage[];
/* Prints a program's output as the program would have (stdout, stderr, the return value, and
 * the status when it is not ok), saves the output files below out_dir (NULL: says on stderr
 * how many were returned and not saved), and returns the exit status documented in
 * `aisp --help`. */
int cli_print_output(const proto_output *o, const char *out_dir);
/* Writes the output files below dir (created), each atomically and never through a link; a
 * path with ".." (or otherwise not a valid relative path) is refused. Returns 0 or -1 with *e. */
int cli_save_outputs(const proto_output *o, const char *dir, err **e);
/* Maps a result to the process exit status documented in `aisp --help` (an ok chain: 0). */
int cli_exit_status(int status, int exit_code, int signal);
