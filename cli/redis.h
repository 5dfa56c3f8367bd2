/* The command line's Redis connection (blocking hiredis, for submit, wait, result, nodes and
 * verify): one place that reads the address (--redis or $AISP_REDIS, default 127.0.0.1:6379),
 * finds the master through Sentinel when asked to, authenticates and sets the timeouts.
 *
 * Addresses: host:port, [v6]:port, unix:/path, or sentinel://host:port,host:port/MASTER (the
 * sentinels are asked in turn, each within 1 s, for MASTER; ROLE confirms it). Environment:
 * $AISP_REDIS_USER and $AISP_REDIS_PASSWORD authenticate to Redis, $AISP_SENTINEL_USER and
 * $AISP_SENTINEL_PASSWORD to the sentinels, and $AISP_REDIS_ADDRESS_MAP
 * ("announced->local, ...", like aispd's [redis] address_map) names the local tunnel (TLS
 * sidecar) for each master Sentinel may name: a master without one is refused. */
#pragma once

#include <hiredis/hiredis.h>
#include <stdint.h>

#include "common/err.h"

#define CLI_REDIS_DEFAULT "127.0.0.1:6379"

/* The --redis paragraph of every command's usage. */
#define CLI_REDIS_USAGE                                                                            \
	"  --redis ADDR       host:port, unix:/path or sentinel://host:port,.../MASTER\n"          \
	"                     (default $AISP_REDIS or 127.0.0.1:6379); $AISP_REDIS_USER and\n"     \
	"                     $AISP_REDIS_PASSWORD authenticate ($AISP_SENTINEL_USER and\n"        \
	"                     $AISP_SENTINEL_PASSWORD to the sentinels); "                         \
	"$AISP_REDIS_ADDRESS_MAP\n"                                                                \
	"                     maps the masters Sentinel names to local TLS tunnels\n"

/* Connects within 5 s and authenticates; commands time out after timeout_ms (blocking reads
 * need their BLOCK time plus a margin). addr NULL or "": $AISP_REDIS, then the default.
 * Returns the context, or NULL with *e naming the address. */
redisContext *cli_redis_connect(const char *addr, int64_t timeout_ms, err **e);
