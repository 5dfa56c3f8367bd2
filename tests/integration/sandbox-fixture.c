/* The sandbox-level integration tests' shared set-up (sandbox-fixture.h). */
#include "tests/integration/sandbox-fixture.h"

#include <event2/event.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/spawn.h"
#include "common/util.h"

int sandbox_fixture_setup(sandbox_fixture *f, const char *name, const char *prefix)
{
	memset(f, 0, sizeof(*f));
	err *e = NULL;
	f->base = event_base_new();
	snprintf(f->state_dir, sizeof(f->state_dir), "/run/aisp/test-%s-%d", name, (int)getpid());
	sandbox_runtime_opts a = {.name = "runc", .kind = SANDBOX_RT_RUNC};
	sandbox_runtime_opts b = {.name = "runsc", .kind = SANDBOX_RT_RUNSC};
	char *agent = sandbox_agent_default_path();
	sandbox_ctx_opts co = {.state_dir = f->state_dir, .agent_path = agent, .id_prefix = prefix};
	int r = spawn_loop_init(f->base, &e) < 0 ||
	                sandbox_runtime_new(&f->runc, &a, f->state_dir, &e) < 0 ||
	                sandbox_runtime_new(&f->runsc, &b, f->state_dir, &e) < 0 ||
	                sandbox_image_resolve(SANDBOX_IMAGE_STORE_DEFAULT, "default", &f->img, &e) <
	                    0 ||
	                sandbox_ctx_new(&f->ctx, f->base, &co, &e) < 0
	            ? -1
	            : 0;
	free(agent);
	if (r < 0)
		fprintf(stderr, "setup: %s\n", err_msg(e));
	err_free(e);
	return r;
}

void sandbox_fixture_teardown(sandbox_fixture *f)
{
	sandbox_ctx_free(f->ctx);
	sandbox_runtime_free(f->runc);
	sandbox_runtime_free(f->runsc);
	sandbox_image_deinit(&f->img);
	spawn_loop_deinit();
	event_base_free(f->base);
	rm_rf_at(AT_FDCWD, f->state_dir, NULL);
}
