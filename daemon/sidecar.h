/* [redis] tls_sidecar = yes (deploy/REDIS.md, "TLS to Redis"): hiredis 0.14 cannot speak TLS,
 * so the node reaches a TLS Redis through a stunnel client on its own host (the sidecar,
 * deploy/stunnel-aisp-redis.conf, deploy/aisp-redis-tls.service), which verifies Redis's
 * certificate and presents the node's client certificate. These checks make sure the node
 * really talks to Redis through it. */
#pragma once

#include <stdbool.h>

#include "common/err.h"
#include "daemon/config.h"

/* Without tls_sidecar: 0. Otherwise, always: every address the node connects to (address,
 * or the sentinels and the local side of every address_map pair) is a loopback host:port
 * (plain text never leaves the host). With live (aispd --check), for each of them: it is
 * served by a stunnel process; that process's configuration has a client service for it that
 * verifies the server's certificate; a TLS handshake with that service's CA, certificate and
 * key succeeds against the server it connects to, and the server accepts the certificate
 * (a direct OpenSSL probe, so that a wrong CA or client certificate is named); AUTH and PING
 * through the tunnel answer. Returns 0, or -1 with a message for the operator in *e. Blocks
 * (up to [redis] timeout_ms per step): call it before the loop runs. */
int sidecar_check(const config *c, bool live, err **e);
