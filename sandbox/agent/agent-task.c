/* The TASK payload inside the agent: parsing it (every byte is the host's, but checked as if it
 * were not), the program's environment, and the payload the interpreters' bootstraps read. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"
#include "sandbox/agent/agent.h"

extern char **environ;

bool agent_has_nul(const agent_bytes *b)
{
	return memchr(b->p, '\0', b->n) != NULL;
}

static void push(agent_bytes **arr, size_t *n, const uint8_t *p, size_t len)
{
	*arr = xreallocarray(*arr, *n + 1, sizeof(**arr));
	(*arr)[(*n)++] = (agent_bytes){p, len};
}

/* Where a u64 field (a cap or a limit) goes; NULL for any other tag. */
static uint64_t *u64_field(agent_task *t, uint8_t tag)
{
	switch (tag) {
	case FIELD_STDOUT_MAX:
		return &t->stdout_max;
	case FIELD_STDERR_MAX:
		return &t->stderr_max;
	case FIELD_FSIZE_MAX:
		return &t->fsize_max;
	case FIELD_NOFILE_MAX:
		return &t->nofile_max;
	case FIELD_OUT_FILES_MAX:
		return &t->out_files_max;
	case FIELD_OUT_BYTES_MAX:
		return &t->out_bytes_max;
	case FIELD_NPROC_MAX:
		return &t->nproc_max;
	case FIELD_STEP_OUTPUT_MAX:
		return &t->output_max;
	default:
		return NULL;
	}
}

/* Takes one field into t. Returns 0, or -1 with a message. */
static int take_field(agent_task *t, uint8_t tag, const uint8_t *p, size_t n, char *msg, size_t msz)
{
	uint64_t *v = u64_field(t, tag);
	if (v && n != 8)
		return snprintf(msg, msz, "malformed TASK: field %u is not a u64", tag), -1;
	if (v) {
		*v = sandbox_frame_get_u64(p, n);
		return 0;
	}
	switch (tag) {
	case FIELD_MODE:
		if (n != 1 || p[0] > 1)
			return snprintf(msg, msz, "malformed TASK: bad mode"), -1;
		t->mode = p[0];
		return 0;
	case FIELD_CODE:
		t->code = (agent_bytes){p, n};
		return 0;
	case FIELD_STDIN:
		t->stdin_data = (agent_bytes){p, n};
		return 0;
	case FIELD_ARG:
		push(&t->argv, &t->nargv, p, n);
		return 0;
	case FIELD_ARGS_JSON:
		t->args_json = (agent_bytes){p, n};
		return 0;
	case FIELD_ENV:
		push(&t->env, &t->nenv, p, n);
		return 0;
	case FIELD_FILE:
		push(&t->files, &t->nfiles, p, n);
		return 0;
	case FIELD_STEP_INPUT:
		t->input = (agent_bytes){p, n};
		return 0;
	case FIELD_STEP_LANG:
	case FIELD_STEP_NEXT_LANG:
		if (n != 1 || p[0] > 1)
			return snprintf(msg, msz, "malformed STEP: bad lang"), -1;
		*(tag == FIELD_STEP_LANG ? &t->step_lang : &t->next_lang) = p[0];
		t->has_next |= tag == FIELD_STEP_NEXT_LANG;
		return 0;
	default:
		return snprintf(msg, msz, "malformed TASK: unknown field %u", tag), -1;
	}
}

/* argv entries and environment variables become C strings: no NUL inside, NAME=VALUE. */
static int check_strings(const agent_task *t, char *msg, size_t msz)
{
	for (size_t i = 0; i < t->nargv; i++)
		if (agent_has_nul(&t->argv[i]))
			return snprintf(msg, msz, "argument %zu contains a NUL byte", i), -1;
	for (size_t i = 0; i < t->nenv; i++) {
		const uint8_t *eq = memchr(t->env[i].p, '=', t->env[i].n);
		if (!eq || eq == t->env[i].p || agent_has_nul(&t->env[i]))
			return snprintf(msg, msz, "environment entry %zu is not NAME=VALUE", i), -1;
	}
	return 0;
}

/* Caps: defaults when absent; never more than a frame can carry. */
static void default_caps(agent_task *t)
{
	if (!t->stdout_max || t->stdout_max > FRAME_MAX)
		t->stdout_max = t->stdout_max ? FRAME_MAX : AGENT_STREAM_MAX_DEFAULT;
	if (!t->stderr_max || t->stderr_max > FRAME_MAX)
		t->stderr_max = t->stderr_max ? FRAME_MAX : AGENT_STREAM_MAX_DEFAULT;
	if (!t->out_files_max || t->out_files_max > AGENT_OUT_FILES_MAX_DEFAULT)
		t->out_files_max = AGENT_OUT_FILES_MAX_DEFAULT;
	if (!t->out_bytes_max || t->out_bytes_max > AGENT_OUT_BYTES_MAX_DEFAULT)
		t->out_bytes_max = AGENT_OUT_BYTES_MAX_DEFAULT;
}

int agent_task_parse(agent_task *t, const uint8_t *payload, size_t len, char *msg, size_t msz)
{
	memset(t, 0, sizeof(*t));
	size_t off = 0, n;
	uint8_t tag;
	const uint8_t *p;
	int r;
	while ((r = sandbox_frame_next_field(payload, len, &off, &tag, &p, &n)) == 1)
		if (take_field(t, tag, p, n, msg, msz) < 0)
			return -1;
	if (r < 0)
		return snprintf(msg, msz, "malformed TASK: a field runs past the end"), -1;
	if (check_strings(t, msg, msz) < 0)
		return -1;
	default_caps(t);
	return 0;
}

void agent_task_deinit(agent_task *t)
{
	free(t->argv);
	free(t->env);
	free(t->files);
	memset(t, 0, sizeof(*t));
}

static size_t name_len(const char *e, size_t n)
{
	const char *eq = memchr(e, '=', n);
	return eq ? (size_t)(eq - e) : n;
}

/* True when entry e (NAME=...) is set again by a task entry from index from on. */
static bool overridden(const char *e, size_t n, const agent_task *t, size_t from)
{
	size_t nl = name_len(e, n);
	for (size_t j = from; j < t->nenv; j++) {
		const char *o = (const char *)t->env[j].p;
		if (name_len(o, t->env[j].n) == nl && !memcmp(o, e, nl))
			return true;
	}
	return false;
}

char **agent_task_env(const agent_task *t)
{
	size_t nbase = 0, k = 0;
	while (environ[nbase])
		nbase++;
	char **env = xcalloc(nbase + t->nenv + 1, sizeof(char *));
	for (size_t i = 0; i < nbase; i++)
		if (!overridden(environ[i], strlen(environ[i]), t, 0))
			env[k++] = xstrdup(environ[i]);
	for (size_t i = 0; i < t->nenv; i++)
		if (!overridden((const char *)t->env[i].p, t->env[i].n, t, i + 1))
			env[k++] = xstrndup((const char *)t->env[i].p, t->env[i].n);
	return env;
}

void agent_strv_free(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

void agent_boot_payload(sandbox_frame_buf *b, const agent_task *t, char *const *env)
{
	sandbox_frame_put_field(b, FIELD_MODE, &t->mode, 1);
	sandbox_frame_put_field(b, FIELD_CODE, t->code.p, t->code.n);
	for (size_t i = 0; i < t->nargv; i++)
		sandbox_frame_put_field(b, FIELD_ARG, t->argv[i].p, t->argv[i].n);
	if (t->args_json.p)
		sandbox_frame_put_field(b, FIELD_ARGS_JSON, t->args_json.p, t->args_json.n);
	if (t->mode == 2) {
		sandbox_frame_put_field(b, FIELD_STEP_INPUT, t->input.p, t->input.n);
		sandbox_frame_put_field_u64(b, FIELD_STEP_OUTPUT_MAX, t->output_max);
	}
	for (size_t i = 0; env[i]; i++)
		sandbox_frame_put_field(b, FIELD_ENV, env[i], strlen(env[i]));
	if (agent_is_pid1() && agent_prog_uid != (uid_t)-1)
		sandbox_frame_put_field(b, BOOT_FIELD_SANDBOXED, "", 0);
}
