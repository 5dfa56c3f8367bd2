/* The chain state saved off the loop (ATTESTATION.md, "The chain state"; issue 17).
 *
 * Every signed result waits for the node's chain state to be on disk before it leaves the
 * node. The save is a write and an fdatasync (attest_chain_store): 0.1 ms on a busy disk, near
 * 1 ms on an idle virtual one, and the loop used to wait for it, once per task, with every
 * other task's frames and replies queued behind it. Here one thread of its own does the saves:
 * the loop asks for a state and goes on; the thread writes the newest state asked for; the
 * loop hears (an event on a pipe) which sequence is on disk, or that a save failed.
 *
 * A caller with nothing else to do meanwhile can still save at once on its own thread
 * (chain_saver_store_now), sparing itself the two wake-ups of the handoff; such a save has no
 * deadline (a disk that hangs holds the caller) and a failure of it stops nothing.
 *
 * Saves coalesce: the states asked for while one save runs go to disk as one save of the
 * newest of them, which also covers every number before it (a chain state names the last
 * attestation only). So at concurrency n the node makes fewer flushes than it signs.
 *
 * A failed save on the thread stops the saver: nothing asked for afterwards is written until
 * chain_saver_resume(), so that no state past the failed one can reach the disk while the
 * node takes back the signatures it discarded. The file is touched by the thread, or by
 * chain_saver_store_now() while the thread has nothing to do, never by both at once. */
#pragma once

#include <event2/event.h>
#include <stdint.h>

#include "attest/attest.h"
#include "common/err.h"

typedef struct chain_saver chain_saver;

/* On the loop: saved is the state now on disk (e NULL), or a save failed (saved NULL, e says
 * why; the saver is stopped). Outcomes come in the order the saves happened.
 *
 * A save that has not ended timeout_ms after it was asked for (a disk that hangs) is reported
 * as failed then; its own outcome, whenever it comes, is dropped. */
typedef void (*chain_saved_fn)(void *arg, const attest_chain *saved, const err *e);

/* Takes f (closed by chain_saver_free). Returns 0 with *out, or -1 with *e (the caller keeps
 * f). */
int chain_saver_new(chain_saver **out, struct event_base *base, attest_chain_file *f,
                    int64_t timeout_ms, chain_saved_fn cb, void *arg, err **e);
/* Asks for c to be saved. Ignored while the saver is stopped by a failure. */
void chain_saver_save(chain_saver *s, const attest_chain *c);
/* Saves c on the calling thread, now, when the saver has nothing asked for, nothing to
 * report and is not stopped: for a caller with nothing else to do meanwhile, which spares it
 * the two wake-ups of a handoff (0.1 ms idle, tens of ms on a loaded host). Returns 0 (saved),
 * -1 with *e (not saved; the saver is not stopped by it), or 1 (busy: ask instead). */
int chain_saver_store_now(chain_saver *s, const attest_chain *c, err **e);
/* After a failure: saves c (the state the node goes on from) and takes requests again. */
void chain_saver_resume(chain_saver *s, const attest_chain *c);
/* Waits for a save under way (a request not yet started is dropped: its results were never
 * published), ends the thread, closes the file. A save that does not end within timeout_ms is
 * left to itself: the thread keeps what it uses to the process's end. NULL is a no-op;
 * returns NULL. */
chain_saver *chain_saver_free(chain_saver *s);
