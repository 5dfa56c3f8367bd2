/* Runtime profiles (internal to sandbox/). */
#pragma once

#include "common/cleanup.h"
#include "sandbox/sandbox.h"

struct sandbox_runtime {
	char *name;
	char *bin;
	char *root;
	char *version;
	char *flags_text;
	sandbox_runtime_kind kind;
	char **global; /* global flags after --root */
	size_t n_global;
};

DEFINE_CLEANUP_FUNC(sandbox_runtime *, sandbox_runtime_free)

/* argv for `<bin> --root R <global flags> <cmd...>`; the strings are borrowed from rt and cmd,
 * the array is owned by the caller (free()). */
const char **sandbox_runtime_argv(const sandbox_runtime *rt, const char *const *cmd);
