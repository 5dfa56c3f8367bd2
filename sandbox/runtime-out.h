/* The host's side of the OUT_BLOB and LOGS frames (runtime-out.c; sandbox/agent/frame.h). */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "proto/proto.h"
#include "sandbox/agent/frame.h"

/* LOGS payload (flags, then the log file's first bytes) into o->logs_json (a JSON array of the
 * entries that are JSON objects, at most PROTO_LOG_ENTRIES_MAX + 1 and PROTO_LOG_MAX bytes;
 * the rest dropped with logs_truncated). Sets runtime_fields. */
void sandbox_take_logs(proto_output *o, const uint8_t *p, size_t n);
/* OUT_BLOB payload into o->out_blobs (sorted by id, once each; past the caps dropped with
 * out_blobs_truncated). Sets runtime_fields. */
void sandbox_take_out_blob(proto_output *o, const uint8_t *p, size_t n);
