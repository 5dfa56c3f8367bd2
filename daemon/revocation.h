/* Revocation on the node (attest/TRUST.md, "Revocation"): the parties of a task (its signer,
 * its passport, the passport's issuer; a skill's publisher) are looked up in the revocation
 * store (PROTO_KEY_REVOKED, one hash) at admission, and, while the task runs, polled on the
 * loop with one HMGET for every watched task at least once a second. A revoked party's task
 * is called back once; the caller stops its sandbox and publishes a signed `revoked` result.
 *
 * A failed poll (Redis unreachable) revokes nothing: the task cannot publish either, and the
 * next poll asks again. The admission check reports a failure, so that the task is retried,
 * never admitted unchecked. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "attest/attest.h"
#include "daemon/redis.h"

struct event_base;

typedef struct revocation revocation;

/* owner's party field was revoked: why is attest_revocation_describe()'s text (borrowed for
 * the call). The watch is removed before the call; cb may watch or unwatch anything. */
typedef void (*revocation_fn)(void *arg, void *owner, const char *field, const char *why);

/* A poller sending one HMGET every interval_ms (attest_trust_config.revocation_poll_ms) on rc
 * while something is watched. rc is borrowed and must outlive it. */
revocation *revocation_new(struct event_base *base, rconn *rc, int64_t interval_ms,
                           revocation_fn cb, void *arg);
/* Frees the poller; replies still in flight are dropped. NULL is fine. Returns NULL. */
revocation *revocation_free(revocation *r);
/* Watches fields[0..n) (copied; "passport:<id>" / "key:<key id>") for owner, replacing a watch
 * it had. n == 0 is an unwatch. */
void revocation_watch(revocation *r, void *owner, char *const *fields, size_t n);
void revocation_unwatch(revocation *r, void *owner);
/* Polls now, besides every interval (e.g. right after a task was admitted). */
void revocation_poll(revocation *r);
/* How many owners are watched, and how many polls were answered (for /metrics and tests). */
size_t revocation_watching(const revocation *r);
uint64_t revocation_polls(const revocation *r);

/* The admission check: one HMGET of a's parties (attest_task_auth_fields) on r's connection.
 * cb runs exactly once, from the loop (also when a has no parties), with what the store said
 * (rev, borrowed: hand it to attest_trust_decide), or with error set and rev NULL when Redis
 * did not answer. It may outlive r: then it is called with the error "shutting down". */
typedef void (*revocation_check_fn)(void *arg, const attest_revocations *rev, const char *error);
void revocation_check(revocation *r, const attest_task_auth *a, revocation_check_fn cb, void *arg);
