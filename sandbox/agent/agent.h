/* Internals of the in-sandbox agent (aisp-agent), shared between its source files. Not used by
 * the host: the host speaks to the agent only through frame.h. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sandbox/agent/frame.h"

/* Bytes borrowed from the TASK payload. */
typedef struct agent_bytes {
	const uint8_t *p;
	size_t n;
} agent_bytes;

/* A parsed TASK. Every pointer is borrowed from the TASK frame's payload. */
typedef struct agent_task {
	uint8_t mode; /* 0 script, 1 function */
	agent_bytes code;
	agent_bytes stdin_data;
	agent_bytes args_json;           /* p NULL when absent */
	agent_bytes *argv, *env, *files; /* owned arrays */
	size_t nargv, nenv, nfiles;
	uint64_t stdout_max, stderr_max, fsize_max, nofile_max, nproc_max;
	uint64_t out_files_max, out_bytes_max;
} agent_task;

/* Defaults when the TASK leaves a cap out. */
#define AGENT_STREAM_MAX_DEFAULT    (1u * 1024 * 1024)
#define AGENT_OUT_FILES_MAX_DEFAULT 100u
#define AGENT_OUT_BYTES_MAX_DEFAULT (8u * 1024 * 1024)
#define AGENT_RETURN_MAX            4096u
#define AGENT_PATH_MAX              4095u

/* Parses a TASK payload into *t (borrowing from payload). Returns 0, or -1 with a message. */
int agent_task_parse(agent_task *t, const uint8_t *payload, size_t len, char *msg, size_t msz);
void agent_task_deinit(agent_task *t);

/* True when p[0..n) is a relative path of non-empty components other than "." and "..", no
 * NUL or control bytes, valid UTF-8, at most AGENT_PATH_MAX bytes. */
bool agent_path_valid(const char *p, size_t n);

/* Writes the task's input files below the directory wsfd, never following links. Returns 0,
 * or -1 with a message. */
int agent_write_inputs(int wsfd, const agent_task *t, char *msg, size_t msz);

/* Appends FILE frames for the regular files below wsfd/out (sorted by path, at most max_files
 * files and max_bytes bytes of contents) to b; sets *trunc when some were left out. */
void agent_collect_outputs(int wsfd, uint64_t max_files, uint64_t max_bytes, sandbox_frame_buf *b,
                           bool *trunc);

/* The interpreters' bootstrap programs (agent-boot.c). */
extern const char agent_boot_python[];
extern const char agent_boot_node[];
