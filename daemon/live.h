/* Live output (proto/PROTOCOL.md, "Live output", issue 16 item 4): while a task runs, its
 * reply stream gets a `started` event, then its stdout and stderr as `output` events, so that
 * a client (aisp submit --follow, the gateway's NDJSON stream) shows them as they come. The
 * events are a preview: the signed result is the truth, and carries the whole output.
 *
 * Bounded: chunks are coalesced and sent LIVE_FLUSH_MS after the first one pending (one XADD
 * per stream then), or as soon as LIVE_EVENT_MAX bytes of a stream are pending; a task's events
 * carry at most LIVE_TOTAL_MAX bytes of data and LIVE_EVENTS_MAX events in all (per run: a task
 * that runs again, after a retry or a takeover, starts over with a new started event); past that nothing more is sent, and the result fills in the rest.
 * Each output event says where its data starts in its stream (offset), so a client can tell
 * a gap from a repeat. The XADDs go on the node's command connection, before the publish of
 * the result, so a reply stream has a task's events before its result. */
#pragma once

#include <event2/event.h>
#include <stddef.h>
#include <stdint.h>

#include "daemon/redis.h"

#define LIVE_FLUSH_MS   100
#define LIVE_EVENT_MAX  (16u * 1024)
#define LIVE_TOTAL_MAX  (1024u * 1024)
#define LIVE_EVENTS_MAX 1024 /* output events of one run, whatever their size */

typedef struct live live;

/* For task id's reply stream (the caller validated its name); ttl_ms: the stream's TTL, set
 * with the first event. The strings are copied. */
live *live_new(struct event_base *base, rconn *rc, const char *stream, const char *id,
               int64_t ttl_ms);
/* The started event: the node, runtime and sandbox the task runs in. */
void live_started(live *l, const char *node, const char *runtime, const char *sandbox);
/* A chunk of stdout (stream 0) or stderr (1), as the sandbox read it: kept for the next
 * flush, within the bounds. */
void live_output(live *l, int stream, const uint8_t *p, size_t n);
/* Sends what is pending, then frees. NULL is ignored. */
void live_end(live *l);
