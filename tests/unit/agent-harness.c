/* The harness of the agent's tests (agent-harness.h). */
#include "tests/unit/agent-harness.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/cleanup.h"
#include "common/util.h"
#include "common/xalloc.h"

char *tmp_root;
char *ws;
const char *agent_user;

void result_free(result *r)
{
	buf_deinit(&r->out);
	buf_deinit(&r->err);
	free(r->ret);
	free(r->msg);
	for (size_t i = 0; i < r->nfiles; i++) {
		free(r->files[i].path);
		free(r->files[i].data);
	}
	memset(r, 0, sizeof(*r));
}

const char *agent_path(void)
{
	static char path[4096];
	const char *root = getenv("AISP_BUILD_ROOT");
	snprintf(path, sizeof(path), "%s/sandbox/agent/aisp-agent", root ? root : ".");
	return path;
}

/* Fresh workspace for every test. */
int setup_ws(void **state)
{
	char tmpl[] = "/tmp/aisp-agent-test-XXXXXX";
	assert_non_null(mkdtemp(tmpl));
	tmp_root = xstrdup(tmpl);
	ws = xasprintf("%s/ws", tmp_root);
	assert_int_equal(mkdir(ws, 0755), 0);
	return 0;
}

int teardown_ws(void **state)
{
	agent_user = NULL;
	_cleanup_err_ err *e = NULL;
	assert_int_equal(rm_rf_at(AT_FDCWD, tmp_root, &e), 0);
	free(ws);
	free(tmp_root);
	return 0;
}

pid_t start_agent(const char *lang, int *to, int *from)
{
	int in[2], out[2];
	assert_int_equal(pipe2(in, O_CLOEXEC), 0);
	assert_int_equal(pipe2(out, O_CLOEXEC), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		const char *argv[] = {agent_path(),  "--lang", lang,
		                      "--workspace", ws,       agent_user ? "--user" : NULL,
		                      agent_user,    NULL};
		const char *envp[] = {"PATH=/usr/bin:/bin", "LANG=C.UTF-8", "BASE_VAR=base",
		                      "PYTHONHASHSEED=0", NULL};
		execve(argv[0], (char *const *)argv, (char *const *)envp);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	*to = in[1];
	*from = out[0];
	return pid;
}

/* Reads one frame (blocking); returns 1, or 0 at EOF. The payload is owned by the caller. */
int read_frame(int fd, sandbox_frame_reader *r, uint8_t *type, uint8_t **payload, size_t *len)
{
	for (;;) {
		const uint8_t *p;
		int k = sandbox_frame_reader_next(r, type, &p, len);
		assert_true(k >= 0);
		if (k == 1) {
			*payload = xmemdup(p, *len ? *len : 1);
			return 1;
		}
		uint8_t chunk[65536];
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		assert_true(n >= 0);
		if (n == 0)
			return 0;
		assert_int_equal(sandbox_frame_reader_feed(r, chunk, (size_t)n), 0);
	}
}

/* Starts an agent, waits for READY, sends the raw frame bytes, collects every frame. */
pid_t start_ready(const char *lang, int *to, int *from, sandbox_frame_reader *r)
{
	pid_t pid = start_agent(lang, to, from);
	sandbox_frame_reader_init(r);
	uint8_t type;
	uint8_t *p;
	size_t n;
	assert_int_equal(read_frame(*from, r, &type, &p, &n), 1);
	assert_int_equal(type, FRAME_READY);
	assert_int_equal(n, strlen(AGENT_VERSION));
	assert_memory_equal(p, AGENT_VERSION, n);
	free(p);
	return pid;
}

void run_raw(const char *lang, const sandbox_frame_buf *task, result *res)
{
	memset(res, 0, sizeof(*res));
	int to, from;
	sandbox_frame_reader r;
	pid_t pid = start_ready(lang, &to, &from, &r);
	uint8_t type;
	uint8_t *p;
	size_t n;
	int64_t t0 = now_mono_us();
	assert_int_equal(write_all(to, task->data, task->len), 0);
	close(to);
	while (read_frame(from, &r, &type, &p, &n) == 1) {
		if (res->got_exit) {
			res->nframes_after_exit++;
		} else if (type == FRAME_STDOUT) {
			buf_append(&res->out, p, n);
		} else if (type == FRAME_STDERR) {
			buf_append(&res->err, p, n);
		} else if (type == FRAME_RETURN) {
			res->ret = xstrndup((char *)p, n);
		} else if (type == FRAME_FILE) {
			assert_true(res->nfiles < MAX_FILES);
			size_t plen = strnlen((char *)p, n);
			assert_true(plen < n);
			out_file *f = &res->files[res->nfiles++];
			f->path = xstrdup((char *)p);
			f->len = n - plen - 1;
			f->data = xmemdup(p + plen + 1, f->len); /* an empty file: a 1-byte block */
		} else if (type == FRAME_EXIT) {
			res->task_us = now_mono_us() - t0;
			sandbox_frame_exit ex;
			assert_int_equal(sandbox_frame_parse_exit(p, n, &ex), 0);
			res->got_exit = true;
			res->flags = ex.flags;
			res->code = ex.code;
			res->msg = xstrndup(ex.msg, ex.msg_len);
		} else {
			fail_msg("unexpected frame type %c", type);
		}
		free(p);
	}
	close(from);
	sandbox_frame_reader_deinit(&r);
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_true(res->got_exit);
	assert_int_equal(res->nframes_after_exit, 0);
}

/* A task under construction: the fields; wrapped in a TASK frame by run(). */
void run(const char *lang, const sandbox_frame_buf *fields, result *res)
{
	sandbox_frame_buf f = {0};
	sandbox_frame_put(&f, FRAME_TASK, fields->data, fields->len);
	run_raw(lang, &f, res);
	sandbox_frame_buf_free(&f);
}

void put_str(sandbox_frame_buf *b, uint8_t tag, const char *s)
{
	sandbox_frame_put_field(b, tag, s, strlen(s));
}

void put_mode(sandbox_frame_buf *b, uint8_t mode)
{
	sandbox_frame_put_field(b, FIELD_MODE, &mode, 1);
}

/* Runs code with no stdin, args or env in the given mode. */
void run_code(const char *lang, uint8_t mode, const char *code, result *res)
{
	sandbox_frame_buf b = {0};
	put_mode(&b, mode);
	put_str(&b, FIELD_CODE, code);
	run(lang, &b, res);
	sandbox_frame_buf_free(&b);
}

const char *out_str(result *r)
{
	return buf_str(&r->out);
}
