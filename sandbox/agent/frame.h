/* The framed protocol between the host (sandbox/) and the in-sandbox agent, over the
 * container's stdin (host -> agent) and stdout (agent -> host).
 *
 * Frame: type (1 byte) | payload length (u32, big-endian) | payload. A payload above
 * FRAME_MAX is a protocol error: the reader stops and the sandbox is destroyed.
 * This header is shared by the agent (static, libc only) and the host; frame.c depends on
 * nothing but libc.
 *
 * Sequence:  agent -> READY (payload: agent version)        when the interpreter is warm
 *            host  -> TASK  (payload: fields, below)         exactly once
 *            agent -> (STDOUT | STDERR)*, FILE*, RETURN?, EXIT   EXIT is always last
 * A sandbox serves one task; after EXIT the host destroys it. The agent then idles until the
 * host hangs up (EOF on its stdin), so that the sandbox's wind-down starts when the host
 * destroys it, after the result is published, not while it is signed and published.
 *
 * A chain's script steps (proto/CHAINS.md) instead:
 *            agent -> READY
 *            host  -> STEP  (payload: fields)                once per script step
 *            agent -> STDOUT, STDERR, STEP_RESULT?, EXIT     then it waits for the next STEP
 * Each step runs in a fresh interpreter (the agent warms the next step's while the host runs
 * the chain's llm steps); the host destroys the sandbox after the chain's last step.
 * STEP_RESULT payload = the step's output as JSON text (a JSON string for a string output).
 *
 * TASK payload: a sequence of fields, each tag (1 byte) | length (u32 BE) | bytes.
 * RESULT frames: STDOUT/STDERR payload = the next chunk of that stream, as the program wrote it
 * (1..FRAME_CHUNK_MAX bytes), sent while the program runs: the chunks of a stream, in order,
 * are the stream up to its cap, and whatever the host received before a kill is what the
 * program printed until then (issue 12 item 2); a chunk is also what the host may publish as a
 * live output event (sandbox_output_fn). FILE payload = path, NUL, contents; RETURN payload =
 * JSON text; EXIT payload = see sandbox_frame_exit.
 *
 * The credential proxy (issue 21; daemon/proxy.h; proto/PROTOCOL.md, "The credential proxy"),
 * while a TASK runs:
 *            program -> agent (fd 5): PROXY_REQUEST     one call at a time
 *            agent   -> host:         PROXY_REQUEST     the same payload, checked for size
 *            host    -> agent:        PROXY_RESPONSE    exactly one per request
 *            agent   -> program (fd 6): PROXY_RESPONSE
 * The program's interpreter holds the write end of the request pipe as fd 5 and the read end
 * of the response pipe as fd 6 (runtime.py, runtime.js); the sandbox still has no network.
 * A request that is not one well-formed PROXY_REQUEST frame within PROXY_REQUEST_MAX ends
 * the channel (the program gets an error response, then EOF); the agent forwards a request
 * only when the previous one was answered, and the host answers a second one in flight as a
 * protocol error. PROXY_REQUEST payload: fields PX_METHOD, PX_URL, PX_SERVICE, PX_HEADER*,
 * PX_BODY; PROXY_RESPONSE payload: PX_STATUS, PX_HEADER*, PX_BODY, or PX_ERROR alone.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FRAME_HEADER 5
#define FRAME_MAX    (32u * 1024 * 1024)
/* The largest STDOUT or STDERR frame; a larger one is a protocol error. */
#define FRAME_CHUNK_MAX (64u * 1024)
#define AGENT_VERSION   "aisp-agent/1"

enum sandbox_frame_type {
	FRAME_READY = 'R',
	FRAME_TASK = 'T',
	FRAME_STDOUT = 'O',
	FRAME_STDERR = 'E',
	FRAME_FILE = 'F',
	FRAME_RETURN = 'V',
	FRAME_EXIT = 'X',
	FRAME_STEP = 'S',        /* host -> agent: one script step of a chain */
	FRAME_STEP_RESULT = 'P', /* agent -> host: the step's output */
	/* Skills and blobs (proto/PROTOCOL.md, "Skills"); the range 'b' 'g' 'i' 'k'. */
	FRAME_SKILL_FILE = 'k', /* host -> agent, before TASK: one entry of /skills */
	FRAME_BLOB_IN = 'i',    /* host -> agent, before TASK: one input blob */
	FRAME_OUT_BLOB = 'b',   /* agent -> host, before EXIT: one output blob's bytes */
	FRAME_LOGS = 'g',       /* agent -> host, before EXIT: the runtime log, and flags */
	/* ---- the credential proxy (issue 21): lower-case letters, kept in this block ---- */
	FRAME_PROXY_REQUEST = 'q',  /* program -> agent -> host: one proxy_fetch call */
	FRAME_PROXY_RESPONSE = 'a', /* host -> agent -> program: its answer */
};

/* SKILL_FILE payload: kind (1 byte: 'd' directory, 'f' file, 'x' executable file, 's' the
 * root directory of a sealed skill: the agent also creates /.aisp/skills/.sealed, and the
 * bootstraps then print tracebacks without source lines) | path below /skills
 * ("salesforce/code/leads/sync.py"; a skill name first) | NUL | contents (none for a
 * directory). Parents come before their entries. BLOB_IN payload: the blob's 64 hex
 * digits | its bytes (the host checked them against the digest). OUT_BLOB payload: the bytes
 * of a file /workspace/.aisp/blobs/<64 hex> (the host names it by its own digest). LOGS
 * payload: flags (1 byte, LOGS_F_*) | the first bytes of /workspace/.aisp/log.jsonl. The agent
 * writes /skills and /blobs as root: the program reads them and cannot write them. */
#define LOGS_F_LOG_TRUNC   0x01 /* the log file was longer than AGENT_LOG_MAX */
#define LOGS_F_BLOBS_TRUNC 0x02 /* an output blob was left out (caps, not a regular file) */

/* ---- the credential proxy's fields and caps (issue 21), kept in this block ---- */
enum sandbox_proxy_field {
	PX_METHOD = 96,  /* request: "GET", "POST"... */
	PX_URL = 97,     /* request: absolute https URL */
	PX_SERVICE = 98, /* request: the service's name in the node config */
	PX_HEADER = 99,  /* request and response: "Name: value", repeated */
	PX_BODY = 100,   /* request and response: bytes */
	PX_STATUS = 101, /* response: u64 BE, the HTTP status */
	PX_ERROR = 102,  /* response: why the call was refused or failed (UTF-8); alone */
};
#define PROXY_FD_REQUEST        5              /* the program's end of the request pipe */
#define PROXY_FD_RESPONSE       6              /* the program's end of the response pipe */
#define PROXY_URL_MAX           8192u          /* bytes of a URL */
#define PROXY_HEADERS_MAX       64u            /* request headers of one call */
#define PROXY_HEADER_MAX        8192u          /* bytes of one "Name: value" */
#define PROXY_BODY_MAX          (1024u * 1024) /* bytes of a request body */
#define PROXY_REQUEST_MAX       (PROXY_BODY_MAX + 128u * 1024) /* a whole PROXY_REQUEST payload */
#define PROXY_RESPONSE_BODY_MAX (8u * 1024 * 1024) /* the highest response cap a service may set */
#define PROXY_RESPONSE_MAX      (PROXY_RESPONSE_BODY_MAX + 128u * 1024) /* a PROXY_RESPONSE payload */

enum sandbox_frame_field {
	FIELD_MODE = 1,           /* 1 byte: 0 script, 1 function */
	FIELD_CODE = 2,           /* program text */
	FIELD_STDIN = 3,          /* bytes */
	FIELD_ARG = 4,            /* one argv entry (script mode), repeated, in order */
	FIELD_ARGS_JSON = 5,      /* function mode: JSON text of args */
	FIELD_ENV = 6,            /* "NAME=VALUE", repeated */
	FIELD_FILE = 7,           /* path NUL contents, repeated */
	FIELD_STDOUT_MAX = 8,     /* u64 BE */
	FIELD_STDERR_MAX = 9,     /* u64 BE */
	FIELD_FSIZE_MAX = 10,     /* u64 BE, RLIMIT_FSIZE for the program */
	FIELD_NOFILE_MAX = 11,    /* u64 BE, RLIMIT_NOFILE for the program */
	FIELD_OUT_FILES_MAX = 12, /* u64 BE, max number of output files */
	FIELD_OUT_BYTES_MAX = 13, /* u64 BE, max total bytes of output files */
	FIELD_NPROC_MAX = 14,     /* u64 BE, RLIMIT_NPROC for the program (0: none) */
	/* STEP frames: CODE, the caps and limits above, and */
	FIELD_STEP_LANG = 15,       /* 1 byte: 0 python, 1 javascript */
	FIELD_STEP_INPUT = 16,      /* the step's input variable (UTF-8 text) */
	FIELD_STEP_OUTPUT_MAX = 17, /* u64 BE, max bytes of the output's JSON text */
	FIELD_STEP_NEXT_LANG = 18,  /* 1 byte: the next script step's lang; absent: none */
};

/* EXIT flags */
#define EXIT_F_SIGNALED       0x01 /* killed by a signal; code holds the signal number */
#define EXIT_F_STDOUT_TRUNC   0x02
#define EXIT_F_STDERR_TRUNC   0x04
#define EXIT_F_FILES_TRUNC    0x08
#define EXIT_F_OUTPUT_LIMIT   0x10 /* the program was killed for exceeding an output cap */
#define EXIT_F_FUNCTION_ERROR 0x20 /* function mode: main raised, or bad return value */
#define EXIT_F_SETUP_ERROR    0x40 /* the agent could not run the program (input files...) */

/* EXIT payload: flags (1 byte) | code (i32 BE) | message (rest, UTF-8, may be empty). */
typedef struct sandbox_frame_exit {
	uint8_t flags;
	int32_t code;    /* exit code, or the signal number when EXIT_F_SIGNALED */
	const char *msg; /* borrowed from the payload; not NUL-terminated */
	size_t msg_len;
} sandbox_frame_exit;

/* Incremental frame reader: feed bytes, take complete frames. */
typedef struct sandbox_frame_reader {
	uint8_t *buf; /* owned */
	size_t len, cap;
	bool error; /* a frame over FRAME_MAX (or an unknown type) was seen: stop */
	size_t off; /* start of the bytes not yet taken by sandbox_frame_reader_next() */
} sandbox_frame_reader;

void sandbox_frame_reader_init(sandbox_frame_reader *r);
void sandbox_frame_reader_deinit(sandbox_frame_reader *r);
/* Appends bytes; returns -1 (and sets error) on a bad header. */
int sandbox_frame_reader_feed(sandbox_frame_reader *r, const void *p, size_t n);
/* Takes the next whole frame: returns 1 and sets *type, *payload (borrowed until the next
 * sandbox_frame_reader_feed() or sandbox_frame_reader_deinit()), *len; 0 when more bytes are
 * needed; -1 on a protocol error. */
int sandbox_frame_reader_next(sandbox_frame_reader *r, uint8_t *type, const uint8_t **payload,
                              size_t *len);

/* Writers append to a caller-owned growing byte array (data/len/cap as in sandbox_frame_reader). */
typedef struct sandbox_frame_buf {
	uint8_t *data;
	size_t len, cap;
} sandbox_frame_buf;

void sandbox_frame_buf_free(sandbox_frame_buf *b);
void sandbox_frame_put_header(sandbox_frame_buf *b, uint8_t type, uint32_t len);
void sandbox_frame_put(sandbox_frame_buf *b, uint8_t type, const void *payload, size_t len);
/* Appends bytes (the rest of a frame whose header sandbox_frame_put_header() wrote). */
void sandbox_frame_put_bytes(sandbox_frame_buf *b, const void *p, size_t n);
void sandbox_frame_put_field(sandbox_frame_buf *b, uint8_t tag, const void *p, size_t n);
void sandbox_frame_put_field_u64(sandbox_frame_buf *b, uint8_t tag, uint64_t v);
void sandbox_frame_put_exit(sandbox_frame_buf *b, uint8_t flags, int32_t code, const char *msg);

/* Field iterator over a TASK payload: returns 1 with *tag, *p, *n; 0 at the end; -1 when the
 * payload is malformed (a field running past the end). */
int sandbox_frame_next_field(const uint8_t *payload, size_t len, size_t *off, uint8_t *tag,
                             const uint8_t **p, size_t *n);
uint64_t sandbox_frame_get_u64(const uint8_t *p, size_t n); /* 0 when n != 8 */
int sandbox_frame_parse_exit(const uint8_t *payload, size_t len, sandbox_frame_exit *out);

/* A SKILL_FILE payload: kind, path (1..n bytes, no NUL; its validity is the agent's to check),
 * contents (none for a directory). Pointers borrowed from the payload. */
typedef struct sandbox_frame_skill_file {
	uint8_t kind; /* 'd', 'f' or 'x' */
	const char *path;
	size_t path_len;
	const uint8_t *data;
	size_t len;
} sandbox_frame_skill_file;
/* Returns 0, or -1 when the payload is not of that form. */
int sandbox_frame_parse_skill_file(const uint8_t *p, size_t n, sandbox_frame_skill_file *out);
/* A BLOB_IN payload: 64 lower-case hex digits, then the bytes. Returns 0 (data, len set) or
 * -1. */
int sandbox_frame_parse_blob_in(const uint8_t *p, size_t n, const uint8_t **data, size_t *len);
/* ---- the credential proxy's request (issue 21) ---- */

typedef struct sandbox_frame_bytes {
	const uint8_t *p; /* borrowed from the payload; not NUL-terminated */
	size_t n;
} sandbox_frame_bytes;

/* A PROXY_REQUEST payload, parsed: every field borrowed from it. */
typedef struct sandbox_proxy_request {
	sandbox_frame_bytes method, url, service, body;
	sandbox_frame_bytes headers[PROXY_HEADERS_MAX];
	size_t n_headers;
	bool has_body;
} sandbox_proxy_request;

/* Parses a PROXY_REQUEST payload: exactly one PX_METHOD (1..16 upper-case letters), PX_URL
 * (1..PROXY_URL_MAX bytes) and PX_SERVICE (1..64 bytes), at most PROXY_HEADERS_MAX PX_HEADER
 * of at most PROXY_HEADER_MAX bytes, at most one PX_BODY of at most PROXY_BODY_MAX bytes, no
 * other field. Only the framing and sizes: the host judges the contents (daemon/proxy.c).
 * Returns 0, or -1 with a message for the program in msg. */
int sandbox_proxy_request_parse(const uint8_t *payload, size_t len, sandbox_proxy_request *out,
                                char *msg, size_t msz);
