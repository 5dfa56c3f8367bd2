/* The harness of the agent's tests (test-agent.c, test-agent-files.c): the real aisp-agent
 * binary runs on the host (no container) with pipes for its stdin and stdout and a temporary
 * directory standing in for /workspace; the tests speak the frame protocol to it exactly as the
 * host does. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/buf.h"
#include "sandbox/agent/frame.h"

#define MAX_FILES 16

typedef struct out_file {
	char *path;
	uint8_t *data;
	size_t len;
} out_file;

typedef struct result {
	buf out, err;
	char *ret; /* NUL-terminated; NULL without a RETURN frame */
	out_file files[MAX_FILES];
	size_t nfiles;
	bool got_exit;
	uint8_t flags;
	int32_t code;
	char *msg;       /* NUL-terminated */
	int64_t task_us; /* from writing TASK to reading EXIT */
	int nframes_after_exit;
} result;

extern char *tmp_root; /* holds ws/ and a secret file outside it */
extern char *ws;
extern const char *agent_user; /* --user for the next agents, or NULL */

void result_free(result *r);
/* The agent binary of this build. */
const char *agent_path(void);
/* cmocka setup / teardown: a fresh workspace for each test. */
int setup_ws(void **state);
int teardown_ws(void **state);
/* Starts an agent for lang in the workspace; *to and *from are its stdin and stdout. */
pid_t start_agent(const char *lang, int *to, int *from);
/* start_agent(), then its READY frame read with r (initialised here; deinit it). */
pid_t start_ready(const char *lang, int *to, int *from, sandbox_frame_reader *r);
/* Reads one frame (blocking); returns 1, or 0 at EOF. The payload is owned by the caller. */
int read_frame(int fd, sandbox_frame_reader *r, uint8_t *type, uint8_t **payload, size_t *len);
/* Starts an agent, waits for READY, sends the raw frame bytes, collects every frame. */
void run_raw(const char *lang, const sandbox_frame_buf *task, result *res);
/* A task under construction: the fields; wrapped in a TASK frame by run(). */
void run(const char *lang, const sandbox_frame_buf *fields, result *res);
void put_str(sandbox_frame_buf *b, uint8_t tag, const char *s);
void put_mode(sandbox_frame_buf *b, uint8_t mode);
/* Runs code with no stdin, args or env in the given mode. */
void run_code(const char *lang, uint8_t mode, const char *code, result *res);
const char *out_str(result *r);
