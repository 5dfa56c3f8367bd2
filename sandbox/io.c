/* Frame I/O with the agent over the container's stdio pipes (sandbox/agent/frame.h): the
 * TASK frame out, every frame in as an event for the state machine, and the decoding of what
 * the program produced. The host never opens a path inside the sandbox: everything the program
 * produced arrives as frame payloads, so nothing it planted (links, FIFOs, devices) can be
 * followed by host code. */
#include <errno.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "sandbox/lifecycle.h"

/* A PROXY_REQUEST from the agent: to the owner's proxy callback, or answered at once when the
 * run has none. False when the agent may not send it now (not running, one already in flight,
 * a request the agent should have refused): a protocol error. */
static bool proxy_request(sandbox *sb, const uint8_t *p, size_t n)
{
	sandbox_proxy_request rq;
	char msg[256];
	if (sb->state != SANDBOX_RUNNING || sb->proxy_pending ||
	    sandbox_proxy_request_parse(p, n, &rq, msg, sizeof(msg)) < 0)
		return false;
	sb->proxy_pending = true;
	if (!sb->proxy_cb || sb->step_mode) {
		sandbox_proxy_reply_error(sb, sb->step_mode
		                                  ? "proxy_fetch is not available in a chain's step"
		                                  : "proxy_fetch: this task names no services (set "
		                                    "the task's \"services\")");
		return true;
	}
	sb->proxy_cb(sb, &rq, sb->proxy_arg);
	return true;
}

void sandbox_on_proxy(sandbox *sb, sandbox_proxy_fn cb, void *arg)
{
	sb->proxy_cb = cb;
	sb->proxy_arg = arg;
}

void sandbox_proxy_reply(sandbox *sb, const void *payload, size_t n)
{
	if (!sb->proxy_pending || sb->state != SANDBOX_RUNNING)
		return;
	sb->proxy_pending = false;
	sandbox_io_send(sb, FRAME_PROXY_RESPONSE, payload, n);
}

void sandbox_proxy_reply_error(sandbox *sb, const char *msg)
{
	sandbox_frame_buf f = {0};
	sandbox_frame_put_field(&f, PX_ERROR, msg, strlen(msg));
	sandbox_proxy_reply(sb, f.data, f.len);
	sandbox_frame_buf_free(&f);
}

/* Hands each whole frame to the state machine; false when sb may be gone. */
static bool dispatch_frames(sandbox *sb)
{
	uint8_t type;
	const uint8_t *p;
	size_t len;
	int r;
	while ((r = sandbox_frame_reader_next(&sb->fr, &type, &p, &len)) > 0) {
		sandbox_event ev = {.frame = type, .p = p, .n = len};
		switch (type) {
		case FRAME_READY:
			ev.type = SANDBOX_EV_READY_FRAME;
			break;
		case FRAME_STDOUT:
		case FRAME_STDERR:
			/* chunks are bounded; a bigger one is not the agent's to send */
			ev.type =
			    len <= FRAME_CHUNK_MAX ? SANDBOX_EV_OUTPUT_FRAME : SANDBOX_EV_BAD_FRAME;
			break;
		case FRAME_FILE:
		case FRAME_RETURN:
		case FRAME_STEP_RESULT:
		case FRAME_OUT_BLOB:
		case FRAME_LOGS:
			ev.type = SANDBOX_EV_RESULT_FRAME;
			break;
		case FRAME_EXIT:
			ev.type = SANDBOX_EV_EXIT_FRAME;
			break;
		case FRAME_PROXY_REQUEST:
			if (proxy_request(sb, p, len))
				continue;
			ev.type = SANDBOX_EV_BAD_FRAME;
			break;
		default: /* known to the codec, but not the agent's to send (TASK) */
			ev.type = SANDBOX_EV_BAD_FRAME;
		}
		if (!sandbox_step(sb, &ev))
			return false;
	}
	if (r < 0 || sb->fr.error)
		return sandbox_step_type(sb, SANDBOX_EV_BAD_FRAME);
	return true;
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
			/* frames read before the end still count (an EXIT just before exiting) */
			if (dispatch_frames(sb))
				sandbox_step_type(sb, SANDBOX_EV_AGENT_EOF);
			return;
		}
		if (sandbox_frame_reader_feed(&sb->fr, chunk, (size_t)n) < 0)
			break;
		if ((size_t)n < sizeof(chunk))
			break;
	}
	dispatch_frames(sb);
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
			sandbox_step(sb, &(sandbox_event){.type = SANDBOX_EV_AGENT_EOF,
			                                  .why = "the sandbox's agent is gone"});
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

void sandbox_io_start(sandbox *sb, int in_fd, int out_fd)
{
	sb->in_fd = in_fd;
	sb->out_fd = out_fd;
	fd_set_nonblock(sb->in_fd, true);
	fd_set_nonblock(sb->out_fd, true);
	sb->rd_ev = event_new(sb->ctx->base, sb->out_fd, EV_READ | EV_PERSIST, on_readable, sb);
	sb->wr_ev = event_new(sb->ctx->base, sb->in_fd, EV_WRITE, on_writable, sb);
	event_add(sb->rd_ev, NULL);
}

void sandbox_io_pause(sandbox *sb)
{
	if (sb->rd_ev)
		event_del(sb->rd_ev);
	if (sb->wr_ev)
		event_del(sb->wr_ev);
}

void sandbox_io_close(sandbox *sb)
{
	if (sb->rd_ev)
		event_free(sb->rd_ev);
	if (sb->wr_ev)
		event_free(sb->wr_ev);
	sb->rd_ev = sb->wr_ev = NULL;
	if (sb->in_fd >= 0)
		close(sb->in_fd);
	if (sb->out_fd >= 0)
		close(sb->out_fd);
	sb->in_fd = sb->out_fd = -1;
}

/* The fields the agent's TASK parser takes (sandbox/agent/frame.h). */
static void put_task(sandbox_frame_buf *f, const proto_task *t, const proto_limits *l,
                     const char *const *extra_env)
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
	for (size_t i = 0; extra_env && extra_env[i]; i++)
		sandbox_frame_put_field(&body, FIELD_ENV, extra_env[i], strlen(extra_env[i]));
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

/* The task's skill files and input blobs, before the TASK (frame.h). */
static void put_payload(sandbox_frame_buf *f, const sandbox_payload *p)
{
	for (size_t i = 0; p && i < p->n_files; i++) {
		const sandbox_skill_file *sf = &p->files[i];
		size_t pl = strlen(sf->path);
		sandbox_frame_put_header(f, FRAME_SKILL_FILE, (uint32_t)(1 + pl + 1 + sf->len));
		sandbox_frame_put_bytes(f, &sf->kind, 1);
		sandbox_frame_put_bytes(f, sf->path, pl + 1);
		sandbox_frame_put_bytes(f, sf->data, sf->len);
	}
	for (size_t i = 0; p && i < p->n_blobs; i++) {
		const proto_blob *b = &p->blobs[i];
		sandbox_frame_put_header(f, FRAME_BLOB_IN, (uint32_t)(64 + b->len));
		sandbox_frame_put_bytes(f, b->id + 7, 64);
		sandbox_frame_put_bytes(f, b->data, b->len);
	}
}

void sandbox_io_send_task(sandbox *sb, const proto_task *t, const proto_limits *l)
{
	put_payload(&sb->wbuf, sb->payload);
	put_task(&sb->wbuf, t, l, sb->payload ? sb->payload->env : NULL);
	sb->payload = NULL;
	flush_writes(sb);
}

void sandbox_io_send(sandbox *sb, uint8_t type, const void *p, size_t n)
{
	sandbox_frame_put(&sb->wbuf, type, p, n);
	flush_writes(sb);
}

/* FILE: "path NUL contents"; a file past the count is left out, and the result says so */
static void add_file(proto_output *o, const uint8_t *p, size_t n)
{
	const uint8_t *nul = memchr(p, 0, n);
	if (!nul || o->n_files >= PROTO_OUT_FILES_MAX) {
		o->files_truncated = true;
		return;
	}
	o->files = xreallocarray(o->files, o->n_files + 1, sizeof(*o->files));
	proto_file *f = &o->files[o->n_files++];
	f->path = xstrdup((const char *)p);
	f->len = n - (size_t)(nul + 1 - p);
	f->data = xmemdup(nul + 1, f->len);
}

/* RETURN: kept only when a result can carry it exactly (proto_return_check); otherwise the
 * reason is kept, and the run's status becomes error. */
static void add_return(sandbox *sb, const uint8_t *p, size_t n)
{
	proto_output *o = &sb->out;
	free(o->return_value);
	o->return_value = NULL;
	free(sb->return_error);
	sb->return_error = NULL;
	err *e = NULL;
	if (proto_return_check((const char *)p, n, &e) < 0) {
		sb->return_error = xstrdup(err_msg(e));
		err_free(e);
		return;
	}
	o->return_value = xstrndup((const char *)p, n);
}

void sandbox_io_add_output(sandbox *sb, uint8_t type, const uint8_t *p, size_t n)
{
	bool is_out = type == FRAME_STDOUT;
	buf *b = is_out ? &sb->out.out : &sb->out.err;
	uint64_t max = is_out ? sb->stdout_max : sb->stderr_max;
	size_t room = b->len < max ? (size_t)(max - b->len) : 0;
	if (n > room) { /* the agent keeps to the cap; past it, the host does */
		n = room;
		*(is_out ? &sb->out.stdout_truncated : &sb->out.stderr_truncated) = true;
	}
	if (!n)
		return;
	buf_append(b, p, n);
	if (sb->output_cb)
		sb->output_cb(sb, is_out ? SANDBOX_STDOUT : SANDBOX_STDERR, p, n, sb->output_arg);
}

/* Takes the output chunks already in the pipe from the agent (non-blocking): what was printed
 * before a kill the host decided on, e.g. the wall time. */
void sandbox_io_drain_output(sandbox *sb)
{
	uint8_t chunk[65536];
	ssize_t n;
	while (sb->out_fd >= 0 && (n = read(sb->out_fd, chunk, sizeof(chunk))) > 0)
		if (sandbox_frame_reader_feed(&sb->fr, chunk, (size_t)n) < 0)
			break;
	uint8_t type;
	const uint8_t *p;
	size_t len;
	while (sandbox_frame_reader_next(&sb->fr, &type, &p, &len) > 0)
		if ((type == FRAME_STDOUT || type == FRAME_STDERR) && len <= FRAME_CHUNK_MAX)
			sandbox_io_add_output(sb, type, p, len);
}

void sandbox_io_add_result(sandbox *sb, uint8_t type, const uint8_t *p, size_t n)
{
	proto_output *o = &sb->out;
	switch (type) {
	case FRAME_OUT_BLOB:
		sandbox_take_out_blob(o, p, n);
		break;
	case FRAME_LOGS:
		sandbox_take_logs(o, p, n);
		break;
	case FRAME_FILE:
		add_file(o, p, n);
		break;
	case FRAME_RETURN:
		add_return(sb, p, n);
		break;
	}
}

int sandbox_io_take_exit(proto_output *o, const uint8_t *p, size_t n, uint8_t *flags)
{
	sandbox_frame_exit x;
	if (sandbox_frame_parse_exit(p, n, &x) < 0)
		return -1;
	o->stdout_truncated |= (x.flags & EXIT_F_STDOUT_TRUNC) != 0;
	o->stderr_truncated |= (x.flags & EXIT_F_STDERR_TRUNC) != 0;
	o->files_truncated |= (x.flags & EXIT_F_FILES_TRUNC) != 0;
	if (x.flags & EXIT_F_SIGNALED) {
		o->signal = x.code;
		o->exit_code = -1;
	} else {
		o->exit_code = x.code;
	}
	if (x.msg_len)
		o->error = xstrndup(x.msg, x.msg_len);
	*flags = x.flags;
	return 0;
}

char *sandbox_io_quote_stream(const sandbox *sb)
{
	const sandbox_frame_reader *r = &sb->fr;
	size_t n = r->len - r->off;
	buf q = BUF_INIT;
	buf_append_str(&q, "\"");
	for (size_t i = 0; i < n && i < 80; i++) {
		uint8_t c = r->buf[r->off + i];
		if (c == '"' || c == '\\')
			buf_appendf(&q, "\\%c", c);
		else if (c >= 0x20 && c < 0x7f)
			buf_append(&q, &c, 1);
		else
			buf_appendf(&q, "\\x%02x", c);
	}
	buf_append_str(&q, n > 80 ? "\"..." : "\"");
	return buf_steal(&q, NULL);
}
