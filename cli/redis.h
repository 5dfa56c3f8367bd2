/* The command line's Redis connection (blocking hiredis, for submit, wait, result, nodes and
 * verify): one place that reads the address (host:port, [v6]:port, unix:/path; --redis or
 * $AISP_REDIS, default 127.0.0.1:6379), authenticates ($AISP_REDIS_USER, $AISP_REDIS_PASSWORD)
 * and sets the timeouts. */
#pragma once

#include <hiredis/hiredis.h>
#include <stdint.h>

#include "common/err.h"

#define CLI_REDIS_DEFAULT "127.0.0.1:6379"

/* Connects within 5 s and authenticates; commands time out after timeout_ms (blocking reads
 * need their BLOCK time plus a margin). addr NULL or "": $AISP_REDIS, then the default.
 * Returns the context, or NULL with *e naming the address. */
redisContext *cli_redis_connect(const char *addr, int64_t timeout_ms, err **e);
