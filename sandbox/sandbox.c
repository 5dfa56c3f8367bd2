/* The sandbox lifecycle on the event loop: bundle -> `runtime run --detach` -> agent READY ->
 * one task over the framed pipe protocol -> output, status, host-side usage -> destroy in the
 * background. The host never opens a path inside the sandbox: everything the program produced
 * arrives as frame payloads from the agent, so nothing it planted (links, FIFOs, devices) can
 * be followed by host code. Usage and CPU priority go through the cgroup backend (cgroup.h). */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/spawn.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "sandbox/agent/frame.h"
#include "sandbox/bundle.h"
#include "sandbox/cgroup.h"
#include "sandbox/runtime.h"
#include "sandbox/sandbox.h"

#define CREATE_TIMEOUT_MS 60000
#define DELETE_TIMEOUT_MS 60000
#define AGENT_NAME        "aisp-agent"
/* Under runc, container ids 0..65535 map to host ids USERNS_BASE.. (the sandbox user 65534 is
 * host uid 165534, which owns nothing on the host). */
#define USERNS_BASE 100000
/* How often memory.current is sampled while a task runs, when the hierarchy keeps no peak. */
#define SAMPLE_MS 50

struct sandbox_ctx {
	struct event_base *base;
	char *state_dir;
	char *bundles_dir;
	int bundles_fd;
	char *agent_dir;
	sandbox_cgroup *cg;
	char *id_prefix;
	uint64_t seq;
	size_t live;
	bool userns; /* the kernel allows user namespaces: runc sandboxes get one */
};

struct sandbox {
	sandbox_ctx *ctx;
	char id[96];
	sandbox_spec spec; /* strings owned (copies) */
	sandbox_state state;
	int in_fd, out_fd; /* host -> agent, agent -> host */
	struct event *rd_ev, *wr_ev, *timer, *sample_ev;
	sandbox_frame_reader fr;
	sandbox_frame_buf wbuf;
	size_t woff;
	pid_t init_pid;
	bool spawning;  /* `run --detach` not finished yet */
	bool got_ready; /* READY frame seen */
	bool destroying;
	int64_t ready_at;
	sandbox_ready_fn ready_cb;
	sandbox_died_fn died_cb;
	sandbox_done_fn done_cb;
	sandbox_gone_fn gone_cb;
	void *ready_arg, *died_arg, *done_arg, *gone_arg;
	/* the run */
	proto_output out;
	proto_usage usage;
	int64_t run_start_us;
	uint64_t cpu_start_ns;
	uint64_t memory_sampled; /* highest memory.current seen (cgroup v2 without memory.peak) */
	bool got_exit;
};

/* ---- context ---- */

static int install_agent(sandbox_ctx *ctx, const char *agent_path, err **e)
{
	buf bin = BUF_INIT;
	if (read_file_at(AT_FDCWD, agent_path, 64u << 20, &bin, e) < 0)
		return err_prefix(e, "agent");
	if (mkdir_p(ctx->agent_dir, 0755, e) < 0)
		return -1;
	_cleanup_close_ int dfd = open(ctx->agent_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int r = dfd < 0 ? err_set(e, errno, "open %s", ctx->agent_dir)
	                : write_file_at(dfd, AGENT_NAME, bin.data, bin.len, 0555, e);
	buf_deinit(&bin);
	return r;
}

int sandbox_ctx_new(sandbox_ctx **out, struct event_base *base, const sandbox_ctx_opts *o, err **e)
{
	sandbox_ctx *ctx = xzalloc(sizeof(*ctx));
	ctx->base = base;
	ctx->bundles_fd = -1;
	ctx->state_dir = xstrdup(o->state_dir ? o->state_dir : "/run/aisp");
	ctx->bundles_dir = xasprintf("%s/bundles", ctx->state_dir);
	ctx->agent_dir = xasprintf("%s/agent", ctx->state_dir);
	ctx->id_prefix = xstrdup(o->id_prefix ? o->id_prefix : "aisp-");
	if (!o->agent_path) {
		err_set(e, 0, "no agent binary configured");
		goto fail;
	}
	if (mkdir_p(ctx->bundles_dir, 0711, e) < 0 || install_agent(ctx, o->agent_path, e) < 0)
		goto fail;
	sandbox_cgroup_opts co = {.root = o->cgroup_root, .parent = o->cgroup_parent};
	if (sandbox_cgroup_new(&ctx->cg, &co, e) < 0)
		goto fail;
	/* Traversable, not listable: a user-namespaced runtime reaches the agent through it. */
	chmod(ctx->state_dir, 0711);
	buf uns = BUF_INIT;
	int64_t max_uns = 0;
	if (read_file_at(AT_FDCWD, "/proc/sys/user/max_user_namespaces", 32, &uns, NULL) == 0) {
		uns.data[strcspn((char *)uns.data, "\n")] = 0;
		parse_i64(buf_str(&uns), 0, INT64_MAX, &max_uns);
	}
	buf_deinit(&uns);
	ctx->userns = max_uns > 0 && !getenv("AISP_NO_USERNS");
	ctx->bundles_fd = open(ctx->bundles_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (ctx->bundles_fd < 0) {
		err_set(e, errno, "open %s", ctx->bundles_dir);
		goto fail;
	}
	*out = ctx;
	return 0;
fail:
	err_prefix(e, "sandbox state dir %s", ctx->state_dir);
	sandbox_ctx_free(ctx);
	return -1;
}

sandbox_ctx *sandbox_ctx_free(sandbox_ctx *ctx)
{
	if (!ctx)
		return NULL;
	if (ctx->bundles_fd >= 0)
		close(ctx->bundles_fd);
	free(ctx->state_dir);
	free(ctx->bundles_dir);
	free(ctx->agent_dir);
	sandbox_cgroup_free(ctx->cg);
	free(ctx->id_prefix);
	free(ctx);
	return NULL;
}

struct event_base *sandbox_ctx_base(const sandbox_ctx *ctx)
{
	return ctx->base;
}

size_t sandbox_ctx_live(const sandbox_ctx *ctx)
{
	return ctx->live;
}

const char *sandbox_ctx_cgroup(const sandbox_ctx *ctx)
{
	return sandbox_cgroup_name(ctx->cg);
}

/* ---- specs ---- */

void sandbox_spec_set_limits(sandbox_spec *s, const proto_limits *l)
{
	s->cpus_milli = l->cpus_milli;
	s->memory_bytes = l->memory_bytes;
	s->pids = l->pids;
	s->workspace_bytes = l->workspace_bytes;
}

bool sandbox_spec_fits(const sandbox_spec *s, const proto_limits *l)
{
	return s->cpus_milli == l->cpus_milli && s->memory_bytes == l->memory_bytes &&
	       s->pids == l->pids && s->workspace_bytes == l->workspace_bytes;
}

const char *sandbox_id(const sandbox *sb)
{
	return sb->id;
}

sandbox_state sandbox_get_state(const sandbox *sb)
{
	return sb->state;
}

const sandbox_spec *sandbox_get_spec(const sandbox *sb)
{
	return &sb->spec;
}

int64_t sandbox_ready_at(const sandbox *sb)
{
	return sb->ready_at;
}

int sandbox_pid(const sandbox *sb)
{
	return sb->init_pid;
}

/* ---- events ---- */

static void stop_io(sandbox *sb)
{
	if (sb->rd_ev)
		event_del(sb->rd_ev);
	if (sb->wr_ev)
		event_del(sb->wr_ev);
	if (sb->timer)
		event_del(sb->timer);
	if (sb->sample_ev)
		event_del(sb->sample_ev);
}

static void set_timer_of(struct event *ev, int64_t ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	evtimer_add(ev, &tv);
}

static void set_timer(sandbox *sb, int64_t ms)
{
	set_timer_of(sb->timer, ms);
}

static void creation_failed(sandbox *sb, err *e)
{
	stop_io(sb);
	sb->state = SANDBOX_DEAD;
	err_prefix(&e, "sandbox %s (%s)", sb->id, sandbox_runtime_name(sb->spec.rt));
	sb->ready_cb(sb, e, sb->ready_arg);
	err_free(e);
}

static void become_ready(sandbox *sb)
{
	event_del(sb->timer);
	sandbox_cgroup_set_prio(sb->ctx->cg, sb->id, SANDBOX_CGROUP_RUNNING);
	sb->state = SANDBOX_READY;
	sb->ready_at = now_mono_ms();
	sb->ready_cb(sb, NULL, sb->ready_arg);
}

static void read_usage(sandbox *sb, sandbox_cgroup_usage *u)
{
	sb->usage.wall_ms = (now_mono_us() - sb->run_start_us + 500) / 1000;
	sandbox_cgroup_read(sb->ctx->cg, sb->id, sb->memory_sampled, u);
	sb->usage.cpu_ms =
	    u->cpu_ns > sb->cpu_start_ns ? (int64_t)((u->cpu_ns - sb->cpu_start_ns) / 1000000) : 0;
	sb->usage.memory_peak_bytes = (int64_t)u->memory_peak_bytes;
}

/* Ends the run with a status decided on the host (timeout, sandbox death, bad frames). */
static void run_finish(sandbox *sb, proto_status status, const char *why)
{
	stop_io(sb);
	sandbox_cgroup_usage u;
	read_usage(sb, &u);
	if (status == PROTO_STATUS_SANDBOX_ERROR && u.oom_kills > 0) {
		status = PROTO_STATUS_OOM;
	} else if (status == PROTO_STATUS_SANDBOX_ERROR && u.pids_max_hits > 0) {
		/* gVisor's ptrace platform spends host processes per task thread: a program that
		 * exhausts its pids limit takes the sandbox down with it. That is the program's
		 * doing, not the node's: killed, like a process killed by SIGKILL. */
		status = PROTO_STATUS_OK;
		sb->out.exit_code = -1;
		sb->out.signal = SIGKILL;
		why = "the sandbox was killed: the program reached its process limit";
	}
	sb->out.status = status;
	if (why && !sb->out.error)
		sb->out.error = xstrdup(why);
	sb->state = SANDBOX_DONE;
	sb->done_cb(sb, &sb->out, &sb->usage, sb->done_arg);
}

static void on_exit_frame(sandbox *sb, const uint8_t *p, size_t n)
{
	sandbox_frame_exit x;
	if (sandbox_frame_parse_exit(p, n, &x) < 0) {
		run_finish(sb, PROTO_STATUS_SANDBOX_ERROR, "agent sent a malformed EXIT frame");
		return;
	}
	proto_output *o = &sb->out;
	o->stdout_truncated = x.flags & EXIT_F_STDOUT_TRUNC;
	o->stderr_truncated = x.flags & EXIT_F_STDERR_TRUNC;
	o->files_truncated = x.flags & EXIT_F_FILES_TRUNC;
	if (x.flags & EXIT_F_SIGNALED) {
		o->signal = x.code;
		o->exit_code = -1;
	} else {
		o->exit_code = x.code;
	}
	if (x.msg_len)
		o->error = xstrndup(x.msg, x.msg_len);
	sandbox_cgroup_usage u;
	sandbox_cgroup_read(sb->ctx->cg, sb->id, sb->memory_sampled, &u);
	proto_status st = PROTO_STATUS_OK;
	if (x.flags & EXIT_F_SETUP_ERROR)
		st = PROTO_STATUS_SANDBOX_ERROR;
	else if (x.flags & EXIT_F_OUTPUT_LIMIT)
		st = PROTO_STATUS_OUTPUT_LIMIT;
	else if (u.oom_kills > 0 && (x.flags & EXIT_F_SIGNALED))
		st = PROTO_STATUS_OOM;
	else if (x.flags & EXIT_F_FUNCTION_ERROR)
		st = PROTO_STATUS_ERROR;
	sb->got_exit = true;
	run_finish(sb, st, NULL);
}

static void add_file(proto_output *o, const uint8_t *p, size_t n)
{
	const uint8_t *nul = memchr(p, 0, n);
	if (!nul)
		return;
	o->files = xreallocarray(o->files, o->n_files + 1, sizeof(*o->files));
	proto_file *f = &o->files[o->n_files++];
	f->path = xstrdup((const char *)p);
	f->len = n - (size_t)(nul + 1 - p);
	f->data = xmemdup(nul + 1, f->len);
}

/* Returns false when the sandbox's callbacks may have destroyed it: stop touching it. */
static bool handle_frame(sandbox *sb, uint8_t type, const uint8_t *p, size_t n)
{
	if (sb->state == SANDBOX_CREATING) {
		if (type != FRAME_READY) {
			err *e = NULL;
			sandbox_frame_exit x;
			if (type == FRAME_EXIT && sandbox_frame_parse_exit(p, n, &x) == 0)
				err_set(&e, 0, "agent failed before READY: %.*s", (int)x.msg_len,
				        x.msg);
			else
				err_set(&e, 0, "agent sent frame '%c' before READY", type);
			creation_failed(sb, e);
			return false;
		}
		sb->got_ready = true;
		if (!sb->spawning) {
			become_ready(sb);
			return false;
		}
		return true;
	}
	if (sb->state != SANDBOX_RUNNING)
		return true; /* after the result, nothing more is read */
	switch (type) {
	case FRAME_STDOUT:
		buf_append(&sb->out.out, p, n);
		return true;
	case FRAME_STDERR:
		buf_append(&sb->out.err, p, n);
		return true;
	case FRAME_FILE:
		if (sb->out.n_files < PROTO_OUT_FILES_MAX)
			add_file(&sb->out, p, n);
		return true;
	case FRAME_RETURN:
		free(sb->out.return_value);
		sb->out.return_value = n <= PROTO_RETURN_MAX ? xstrndup((const char *)p, n) : NULL;
		return true;
	case FRAME_EXIT:
		on_exit_frame(sb, p, n);
		return false;
	default:
		run_finish(sb, PROTO_STATUS_SANDBOX_ERROR, "agent sent an unknown frame");
		return false;
	}
}

static void on_agent_gone(sandbox *sb)
{
	switch (sb->state) {
	case SANDBOX_CREATING: {
		err *e = NULL;
		err_set(&e, 0, "agent exited before it was ready");
		creation_failed(sb, e);
		break;
	}
	case SANDBOX_READY:
		stop_io(sb);
		sb->state = SANDBOX_DEAD;
		if (sb->died_cb)
			sb->died_cb(sb, sb->died_arg);
		break;
	case SANDBOX_RUNNING:
		run_finish(sb, PROTO_STATUS_SANDBOX_ERROR, "the sandbox died during the task");
		break;
	default:
		stop_io(sb);
	}
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
	sandbox *sb = arg;
	uint8_t chunk[65536];
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0) {
			on_agent_gone(sb);
			return;
		}
		if (sandbox_frame_reader_feed(&sb->fr, chunk, (size_t)n) < 0)
			break;
		if ((size_t)n < sizeof(chunk))
			break;
	}
	uint8_t type;
	const uint8_t *p;
	size_t len;
	int r;
	while ((r = sandbox_frame_reader_next(&sb->fr, &type, &p, &len)) > 0)
		if (!handle_frame(sb, type, p, len))
			return;
	if (r < 0 || sb->fr.error) {
		if (sb->state == SANDBOX_RUNNING)
			run_finish(sb, PROTO_STATUS_SANDBOX_ERROR, "agent protocol error");
		else
			on_agent_gone(sb);
	}
}

static void flush_writes(sandbox *sb)
{
	while (sb->woff < sb->wbuf.len) {
		ssize_t n = write(sb->in_fd, sb->wbuf.data + sb->woff, sb->wbuf.len - sb->woff);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			event_add(sb->wr_ev, NULL);
			return;
		}
		if (n < 0) {
			run_finish(sb, PROTO_STATUS_SANDBOX_ERROR, "the sandbox's agent is gone");
			return;
		}
		sb->woff += (size_t)n;
	}
	sandbox_frame_buf_free(&sb->wbuf);
	sb->woff = 0;
}

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
	flush_writes(arg);
}

static void on_sample(evutil_socket_t fd, short what, void *arg)
{
	sandbox *sb = arg;
	if (sb->state != SANDBOX_RUNNING ||
	    !sandbox_cgroup_sample(sb->ctx->cg, sb->id, &sb->memory_sampled))
		event_del(sb->sample_ev);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	sandbox *sb = arg;
	if (sb->state == SANDBOX_CREATING) {
		err *e = NULL;
		err_set(&e, 0, "not ready after %d ms", CREATE_TIMEOUT_MS);
		creation_failed(sb, e);
		return;
	}
	if (sb->state == SANDBOX_RUNNING) {
		/* The wall limit is the host's: kill the whole container now, no grace. */
		if (sb->init_pid > 0)
			kill(sb->init_pid, SIGKILL);
		run_finish(sb, PROTO_STATUS_TIMEOUT, NULL);
	}
}

/* ---- create ---- */

static void finish_destroy(sandbox *sb);

static void on_spawned(const spawn_result *r, void *arg)
{
	sandbox *sb = arg;
	sb->spawning = false;
	if (sb->destroying) {
		finish_destroy(sb);
		return;
	}
	if (r->status != 0) {
		err *e = NULL;
		_cleanup_free_ char *d = spawn_describe(r);
		err_set(&e, 0, "%s run: %s", sandbox_runtime_name(sb->spec.rt), d);
		creation_failed(sb, e);
		return;
	}
	char pidfile[160];
	snprintf(pidfile, sizeof(pidfile), "%s/pid", sb->id);
	buf b = BUF_INIT;
	if (read_file_at(sb->ctx->bundles_fd, pidfile, 64, &b, NULL) == 0)
		sb->init_pid = (pid_t)strtol(buf_str(&b), NULL, 10);
	buf_deinit(&b);
	if (sb->got_ready && sb->state == SANDBOX_CREATING)
		become_ready(sb);
}

static void spec_copy(sandbox_spec *dst, const sandbox_spec *src)
{
	*dst = *src;
	dst->rootfs = xstrdup(src->rootfs);
	dst->image_digest = src->image_digest ? xstrdup(src->image_digest) : NULL;
}

static void spec_free(sandbox_spec *s)
{
	free((char *)s->rootfs);
	free((char *)s->image_digest);
}

static int write_bundle(sandbox *sb, err **e)
{
	sandbox_ctx *ctx = sb->ctx;
	if (mkdirat(ctx->bundles_fd, sb->id, 0700) < 0)
		return err_set(e, errno, "mkdir bundle %s", sb->id);
	_cleanup_close_ int dfd =
	    openat(ctx->bundles_fd, sb->id, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0)
		return err_set(e, errno, "open bundle %s", sb->id);
	_cleanup_free_ char *agent = xasprintf("/.aisp/%s", AGENT_NAME);
	sandbox_cgroup_config cg;
	sandbox_cgroup_config_for(ctx->cg, sb->id,
	                          sb->spec.urgent ? SANDBOX_CGROUP_RUNNING : SANDBOX_CGROUP_WARMING,
	                          &cg);
	const char *args[] = {agent,    "--lang", proto_lang_name(sb->spec.lang),
	                      "--user", "65534",  NULL};
	sandbox_bundle_spec b = {
	    .kind = sandbox_runtime_get_kind(sb->spec.rt),
	    .rootfs = sb->spec.rootfs,
	    .agent_dir = ctx->agent_dir,
	    .args = args,
	    .env = sandbox_base_env,
	    .cgroups_path = cg.path,
	    .cpus_milli = sb->spec.cpus_milli,
	    .memory_bytes = sb->spec.memory_bytes,
	    .pids = sb->spec.pids,
	    .nofile = 4096,
	    .cpu_shares = cg.cpu_shares,
	    .cpu_weight = cg.cpu_weight,
	    .workspace_bytes = sb->spec.workspace_bytes,
	    .userns = sb->ctx->userns && sandbox_runtime_get_kind(sb->spec.rt) == SANDBOX_RT_RUNC,
	    .userns_base = USERNS_BASE,
	};
	int r = sandbox_bundle_write(dfd, &b, e);
	sandbox_cgroup_config_deinit(&cg);
	return r;
}

static int start_container(sandbox *sb, err **e)
{
	int in[2] = {-1, -1}, out[2] = {-1, -1};
	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0) {
		int saved = errno;
		if (in[0] >= 0) {
			close(in[0]);
			close(in[1]);
		}
		return err_set(e, saved, "pipe");
	}
	_cleanup_free_ char *bdir = xasprintf("%s/%s", sb->ctx->bundles_dir, sb->id);
	_cleanup_free_ char *pidf = xasprintf("%s/pid", bdir);
	const char *cmd[] = {"run", "--detach", "--bundle", bdir, "--pid-file", pidf, sb->id, NULL};
	_cleanup_free_ const char **argv = sandbox_runtime_argv(sb->spec.rt, cmd);
	spawn_opts o = SPAWN_OPTS_INIT;
	o.argv = argv;
	o.stdin_fd = in[0];
	o.stdout_fd = out[1];
	o.stderr_fd = SPAWN_CAPTURE; /* also the container's fd 2: the agent closes it at once */
	o.timeout_ms = CREATE_TIMEOUT_MS;
	o.cgroup_procs = sb->spec.urgent ? NULL : sandbox_cgroup_plumbing_procs(sb->ctx->cg);
	int r = spawn_start(&o, on_spawned, sb, NULL, e);
	close(in[0]);
	close(out[1]);
	if (r < 0) {
		close(in[1]);
		close(out[0]);
		return -1;
	}
	sb->spawning = true;
	sb->in_fd = in[1];
	sb->out_fd = out[0];
	fd_set_nonblock(sb->in_fd, true);
	fd_set_nonblock(sb->out_fd, true);
	sb->rd_ev = event_new(sb->ctx->base, sb->out_fd, EV_READ | EV_PERSIST, on_readable, sb);
	sb->wr_ev = event_new(sb->ctx->base, sb->in_fd, EV_WRITE, on_writable, sb);
	event_add(sb->rd_ev, NULL);
	return 0;
}

int sandbox_create(sandbox_ctx *ctx, const sandbox_spec *spec, sandbox_ready_fn cb, void *arg,
                   sandbox **out, err **e)
{
	sandbox *sb = xzalloc(sizeof(*sb));
	sb->ctx = ctx;
	sb->in_fd = sb->out_fd = -1;
	spec_copy(&sb->spec, spec);
	sb->ready_cb = cb;
	sb->ready_arg = arg;
	sandbox_frame_reader_init(&sb->fr);
	proto_output_init(&sb->out);
	snprintf(sb->id, sizeof(sb->id), "%s%d-%" PRIu64 "-%04x", ctx->id_prefix, (int)getpid(),
	         ++ctx->seq, (unsigned)(now_mono_us() & 0xffff));
	sb->timer = evtimer_new(ctx->base, on_timer, sb);
	sb->sample_ev = event_new(ctx->base, -1, EV_PERSIST, on_sample, sb);
	if (write_bundle(sb, e) < 0 || start_container(sb, e) < 0) {
		err_prefix(e, "sandbox %s (%s)", sb->id, sandbox_runtime_name(spec->rt));
		rm_rf_at(ctx->bundles_fd, sb->id, NULL);
		event_free(sb->timer);
		sandbox_frame_reader_deinit(&sb->fr);
		proto_output_deinit(&sb->out);
		spec_free(&sb->spec);
		free(sb);
		return -1;
	}
	ctx->live++;
	set_timer(sb, CREATE_TIMEOUT_MS);
	*out = sb;
	return 0;
}

void sandbox_watch(sandbox *sb, sandbox_died_fn cb, void *arg)
{
	sb->died_cb = cb;
	sb->died_arg = arg;
}

/* ---- run ---- */

static void put_task(sandbox_frame_buf *f, const proto_task *t, const proto_limits *l)
{
	sandbox_frame_buf body = {0};
	uint8_t mode = t->mode == PROTO_MODE_FUNCTION ? 1 : 0;
	sandbox_frame_put_field(&body, FIELD_MODE, &mode, 1);
	sandbox_frame_put_field(&body, FIELD_CODE, t->code, t->code_len);
	sandbox_frame_put_field(&body, FIELD_STDIN, t->stdin_data, t->stdin_len);
	for (size_t i = 0; i < t->argc; i++)
		sandbox_frame_put_field(&body, FIELD_ARG, t->argv[i], strlen(t->argv[i]));
	if (t->args_json)
		sandbox_frame_put_field(&body, FIELD_ARGS_JSON, t->args_json, strlen(t->args_json));
	for (size_t i = 0; i < t->n_env; i++) {
		_cleanup_free_ char *kv = xasprintf("%s=%s", t->env[i].name, t->env[i].value);
		sandbox_frame_put_field(&body, FIELD_ENV, kv, strlen(kv));
	}
	for (size_t i = 0; i < t->n_files; i++) {
		size_t pl = strlen(t->files[i].path);
		_cleanup_free_ uint8_t *v = xmalloc(pl + 1 + t->files[i].len);
		memcpy(v, t->files[i].path, pl + 1);
		memcpy(v + pl + 1, t->files[i].data, t->files[i].len);
		sandbox_frame_put_field(&body, FIELD_FILE, v, pl + 1 + t->files[i].len);
	}
	sandbox_frame_put_field_u64(&body, FIELD_STDOUT_MAX, (uint64_t)l->stdout_bytes);
	sandbox_frame_put_field_u64(&body, FIELD_STDERR_MAX, (uint64_t)l->stderr_bytes);
	sandbox_frame_put_field_u64(&body, FIELD_FSIZE_MAX, (uint64_t)l->fsize_bytes);
	sandbox_frame_put_field_u64(&body, FIELD_NOFILE_MAX, (uint64_t)l->nofile);
	sandbox_frame_put_field_u64(&body, FIELD_OUT_FILES_MAX, PROTO_OUT_FILES_MAX);
	sandbox_frame_put_field_u64(&body, FIELD_OUT_BYTES_MAX, PROTO_OUT_FILES_TOTAL);
	sandbox_frame_put(f, FRAME_TASK, body.data, body.len);
	sandbox_frame_buf_free(&body);
}

int sandbox_run(sandbox *sb, const proto_task *t, const proto_limits *resolved, sandbox_done_fn cb,
                void *arg, err **e)
{
	if (sb->state != SANDBOX_READY)
		return err_set(e, 0, "sandbox %s is not ready", sb->id);
	sb->state = SANDBOX_RUNNING;
	sb->done_cb = cb;
	sb->done_arg = arg;
	sb->run_start_us = now_mono_us();
	sandbox_cgroup_usage u;
	sandbox_cgroup_read(sb->ctx->cg, sb->id, 0, &u);
	sb->cpu_start_ns = u.cpu_ns;
	if (sandbox_cgroup_sample(sb->ctx->cg, sb->id, &sb->memory_sampled))
		set_timer_of(sb->sample_ev, SAMPLE_MS);
	put_task(&sb->wbuf, t, resolved);
	set_timer(sb, resolved->timeout_ms > 0 ? resolved->timeout_ms : 600000);
	flush_writes(sb);
	return 0;
}

/* ---- destroy ---- */

static void on_deleted(const spawn_result *r, void *arg)
{
	sandbox *sb = arg;
	rm_rf_at(sb->ctx->bundles_fd, sb->id, NULL);
	sandbox_cgroup_remove(sb->ctx->cg, sb->id);
	sb->ctx->live--;
	sandbox_gone_fn cb = sb->gone_cb;
	void *cb_arg = sb->gone_arg;
	sandbox_frame_reader_deinit(&sb->fr);
	sandbox_frame_buf_free(&sb->wbuf);
	proto_output_deinit(&sb->out);
	spec_free(&sb->spec);
	free(sb);
	if (cb)
		cb(cb_arg);
}

static void finish_destroy(sandbox *sb)
{
	if (sb->init_pid > 0)
		kill(sb->init_pid, SIGKILL);
	const char *cmd[] = {"delete", "--force", sb->id, NULL};
	_cleanup_free_ const char **argv = sandbox_runtime_argv(sb->spec.rt, cmd);
	spawn_opts o = SPAWN_OPTS_INIT;
	o.argv = argv;
	o.stdout_fd = SPAWN_NULL;
	o.timeout_ms = DELETE_TIMEOUT_MS;
	o.cgroup_procs = sandbox_cgroup_plumbing_procs(sb->ctx->cg);
	if (spawn_start(&o, on_deleted, sb, NULL, NULL) < 0) {
		spawn_result none = {0};
		on_deleted(&none, sb);
	}
}

void sandbox_destroy(sandbox *sb, sandbox_gone_fn cb, void *arg)
{
	if (!sb || sb->destroying)
		return;
	sb->destroying = true;
	sb->state = SANDBOX_DESTROYING;
	sb->gone_cb = cb;
	sb->gone_arg = arg;
	stop_io(sb);
	if (sb->rd_ev)
		event_free(sb->rd_ev);
	if (sb->wr_ev)
		event_free(sb->wr_ev);
	if (sb->timer)
		event_free(sb->timer);
	if (sb->sample_ev)
		event_free(sb->sample_ev);
	sb->rd_ev = sb->wr_ev = sb->timer = sb->sample_ev = NULL;
	if (sb->in_fd >= 0)
		close(sb->in_fd);
	if (sb->out_fd >= 0)
		close(sb->out_fd);
	sb->in_fd = sb->out_fd = -1;
	if (!sb->spawning)
		finish_destroy(sb);
}
