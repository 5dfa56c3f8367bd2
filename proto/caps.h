/* The protocol's caps on results (PROTOCOL.md, "Limits"): one table, read by the code that
 * produces a result (sandbox/ and its agent, through proto_output_fit() and
 * proto_return_check()) and by the code that parses one (proto_result_parse(), hence `aisp
 * wait`, `aisp verify`, `aisp submit --wait`), so that every result a node publishes parses and
 * verifies with the project's own tools. Plain macros and nothing else: the in-sandbox agent
 * (static, libc only) includes this header too. */
#pragma once

/* Any JSON document proto_json_parse() accepts: a task entry, a result. */
#define PROTO_DOC_MAX_BYTES (16u * 1024 * 1024)
/* JSON nesting, counted from the document itself (an object at the top is depth 1). */
#define PROTO_JSON_MAX_DEPTH 32

/* A function's return value, as compact JSON text, and its nesting: it sits one level inside
 * the result document, so it may nest one level less than a document. */
#define PROTO_RETURN_MAX       4096
#define PROTO_RETURN_DEPTH_MAX (PROTO_JSON_MAX_DEPTH - 1)

/* A file path (input and output files), in bytes. */
#define PROTO_FILE_PATH_MAX 255
/* Output files in a result, and their contents summed. */
#define PROTO_OUT_FILES_MAX   100
#define PROTO_OUT_FILES_TOTAL (8u * 1024 * 1024)

/* What stdout, stderr and the output files may take in a result document, as JSON text (text
 * escaped, or base64). The rest of a result stays under PROTO_DOC_MAX_BYTES -
 * PROTO_RESULT_OUTPUT_MAX = 3 MiB: its largest parts are the attestation envelope, whose
 * payload holds the task's environment (64 variables of at most 4096 bytes, escaped at most
 * 6-fold, then base64: < 2.1 MiB) and a subject per output file (< 64 KiB), the error text and
 * the return value (4 KiB each, escaped, also signed: < 100 KiB). So 1 MiB of control bytes on
 * both streams (6 MiB each, escaped) still fits, beside some of the files. */
#define PROTO_RESULT_OUTPUT_MAX (13u * 1024 * 1024)
