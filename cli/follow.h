/* aisp submit --follow: the live events a node adds to the task's reply stream while the task
 * runs (proto/PROTOCOL.md, "Live output"), printed as they arrive, and the final result printed
 * without what was already shown. The events are a preview; the signed result is the truth. */
#pragma once

#include <hiredis/hiredis.h>
#include <stdint.h>

#include "common/buf.h"
#include "proto/proto.h"

typedef struct cli_follow {
	buf shown[2]; /* stdout, stderr bytes printed so far, in order */
	bool gap[2];  /* an event was missing (its offset past what was shown) */
	bool started; /* the started event was printed */
} cli_follow;

void cli_follow_init(cli_follow *f);
void cli_follow_deinit(cli_follow *f);
/* One reply-stream entry of the followed task that carries an "event" field (fields: the
 * entry's field/value array). Prints `started` on stderr and `output` data on stdout or
 * stderr as it comes; ignores other events and anything malformed. */
void cli_follow_event(cli_follow *f, const redisReply *fields);
/* Before the result is printed: removes from o's stdout and stderr what was already shown
 * (when it is exactly their beginning); when the live output was not (a gap, or bytes that
 * differ), says so on stderr and leaves o whole, so that the result's own output is printed. */
void cli_follow_finish(cli_follow *f, proto_output *o);
