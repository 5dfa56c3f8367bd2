/* The pool's operations on real sandboxes (pool_ops over sandbox/): a thin adapter, so that the
 * pool's logic can also run on fakes in tests/unit/test-pool.c. ctx is a sandbox_ctx. */
#include "pool/pool.h"

static int op_create(void *ctx, const sandbox_spec *spec, sandbox_ready_fn ready, void *arg,
                     sandbox **out, err **e)
{
	return sandbox_create(ctx, spec, ready, arg, out, e);
}

static void op_destroy(void *ctx, sandbox *sb, sandbox_gone_fn gone, void *arg)
{
	sandbox_destroy(sb, gone, arg);
}

static void op_watch(void *ctx, sandbox *sb, sandbox_died_fn died, void *arg)
{
	sandbox_watch(sb, died, arg);
}

static int64_t op_ready_at(void *ctx, const sandbox *sb)
{
	return sandbox_ready_at(sb);
}

static const sandbox_spec *op_spec_of(void *ctx, const sandbox *sb)
{
	return sandbox_get_spec(sb);
}

static void op_retire(void *ctx, sandbox *sb)
{
	sandbox_retire(sb);
}

const pool_ops pool_sandbox_ops = {
    .create = op_create,
    .destroy = op_destroy,
    .watch = op_watch,
    .ready_at = op_ready_at,
    .spec_of = op_spec_of,
    .retire = op_retire,
};
