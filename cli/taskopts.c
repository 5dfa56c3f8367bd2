/* Task options -> task JSON (see taskopts.h). */
#include "cli/taskopts.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "proto/json.h"
#include "proto/proto.h"

const char cli_task_usage[] =
    "task options:\n"
    "  --lang python|javascript|shell   (default: from FILE's .py/.js/.sh, else python)\n"
    "  -c CODE | FILE                   the program text, or a file holding it\n"
    "  --id ID                          task id [A-Za-z0-9._-]{1,64} (default: random)\n"
    "  --image NAME|sha256:DIGEST       (default: the node's default image)\n"
    "  --runtime NAME                   runsc, runc or another configured runtime\n"
    "  --stdin FILE|-                   the program's standard input (- : this one's)\n"
    "  --file PATH=LOCALFILE            an input file placed at /workspace/PATH (repeatable)\n"
    "  --env NAME=VALUE                 an environment variable (repeatable)\n"
    "  --args JSON                      script: array of argv strings; function: main(args)\n"
    "  --function                       call main(args) and return its JSON value\n"
    "  --reply-stream aisp:reply:NAME   a reply stream of your own for the result\n"
    "  --services NAME[,NAME...]        credential-proxy services proxy_fetch may call\n"
    "  limits (up to the node's maximum): --cpus N  --memory MB  --timeout S  --pids N\n"
    "    --nofile N  --fsize MB  --workspace MB  --stdout-bytes N  --stderr-bytes N\n"
    "  Local files (-c FILE, --stdin, --file) are yours: they may be symbolic links.\n";

/* The flag of a limit: its wire name without the unit suffix, '_' as '-' ("memory_mb" ->
 * "--memory", "stdout_bytes" -> "--stdout-bytes"). */
static void limit_flag(const proto_limit_field *f, char *out, size_t n)
{
	size_t w = strlen(f->wire);
	if (w > 3 && (!strcmp(f->wire + w - 3, "_mb") || !strcmp(f->wire + w - 2, "_s")))
		w -= f->wire[w - 2] == '_' ? 2 : 3;
	snprintf(out, n, "--%.*s", (int)w, f->wire);
	for (char *c = out + 2; *c; c++)
		if (*c == '_')
			*c = '-';
}

/* The index of the limit whose flag is a, or -1. */
static int limit_of(const char *a)
{
	for (size_t i = 0; i < PROTO_LIMIT_COUNT; i++) {
		char flag[48];
		limit_flag(&proto_limit_fields[i], flag, sizeof(flag));
		if (!strcmp(a, flag))
			return (int)i;
	}
	return -1;
}

int cli_exit_status(int status, int exit_code, int signal)
{
	switch (status) {
	case PROTO_STATUS_OK:
		/* exit_code -1: no process of its own (a chain, whose exit_code is null): 0 */
		return signal ? 128 + signal : exit_code < 0 ? 0 : exit_code;
	case PROTO_STATUS_TIMEOUT:
		return 124;
	case PROTO_STATUS_OUTPUT_LIMIT:
		return 125;
	case PROTO_STATUS_OOM:
		return 137;
	case PROTO_STATUS_ERROR:
		return 1;
	case PROTO_STATUS_REJECTED:
		return 2;
	case PROTO_STATUS_CANCELLED:
		return 130;
	default:
		return 126;
	}
}

/* Opens (creating) the directories of path below dirfd one component at a time, never
 * following a link; returns the fd of the last directory and sets *base to the file name. */
static int open_parent(int dirfd, const char *path, const char **base, err **e)
{
	int fd = dup(dirfd);
	_cleanup_free_ char *copy = xstrdup(path);
	char *p = copy, *slash;
	while (fd >= 0 && (slash = strchr(p, '/'))) {
		*slash = '\0';
		if (mkdirat(fd, p, 0755) < 0 && errno != EEXIST)
			err_set(e, errno, "mkdir %s", p);
		int next = openat(fd, p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (next < 0 && !(e && *e))
			err_set(e, errno, "%s is not a directory of ours (a link?)", p);
		close(fd);
		fd = next;
		p = slash + 1;
	}
	*base = path + (p - copy);
	return fd;
}

int cli_save_outputs(const proto_output *o, const char *dir, err **e)
{
	if (mkdir_p(dir, 0755, e) < 0)
		return -1;
	_cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return err_set(e, errno, "open %s", dir);
	for (size_t i = 0; i < o->n_files; i++) {
		const proto_file *f = &o->files[i];
		const char *base;
		if (proto_path_valid(f->path, e) < 0)
			return err_prefix(e, "output file \"%s\" not saved", f->path);
		_cleanup_close_ int pfd = open_parent(dfd, f->path, &base, e);
		if (pfd < 0 || write_file_at(pfd, base, f->data, f->len, 0644, e) < 0)
			return err_prefix(e, "%s/%s", dir, f->path);
	}
	return 0;
}

/* A chain: each step's status on stderr, its output on stdout. */
static void print_chain(const proto_chain_run *c)
{
	for (size_t i = 0; i < c->n_steps; i++)
		fprintf(stderr, "aisp: step %zu (%s): %s\n", i,
		        proto_step_type_name(c->steps[i].type),
		        proto_status_name(c->steps[i].status));
	const proto_value *v = proto_chain_run_output(c);
	if (v)
		printf("%s\n", v->text);
}

int cli_print_output(const proto_output *o, const char *out_dir)
{
	_cleanup_err_ err *e = NULL;
	bool not_saved = o->n_files && out_dir && cli_save_outputs(o, out_dir, &e) < 0;
	if (not_saved)
		fprintf(stderr, "aisp: %s\n", err_msg(e));
	else if (o->n_files && out_dir)
		fprintf(stderr, "aisp: %zu output file%s saved in %s\n", o->n_files,
		        o->n_files == 1 ? "" : "s", out_dir);
	else if (o->n_files)
		fprintf(stderr,
		        "aisp: %zu output file%s returned, not saved (--out DIR saves them; "
		        "--json shows them)\n",
		        o->n_files, o->n_files == 1 ? "" : "s");
	fwrite(buf_str(&o->out), 1, o->out.len, stdout);
	fwrite(buf_str(&o->err), 1, o->err.len, stderr);
	if (o->return_value)
		printf("%s\n", o->return_value);
	if (o->chain)
		print_chain(o->chain);
	if (o->status != PROTO_STATUS_OK)
		fprintf(stderr, "aisp: %s%s%s\n", proto_status_name(o->status),
		        o->error ? ": " : "", o->error ? o->error : "");
	fflush(stdout);
	int status = cli_exit_status(o->status, o->exit_code, o->signal);
	return not_saved && status == 0 ? CLI_EXIT_NOT_SAVED : status;
}

int cli_task_opt(cli_task_opts *o, int argc, char **argv, int *i, err **e)
{
	const char *a = argv[*i];
	struct {
		const char *flag;
		const char **dst;
	} single[] = {{"--id", &o->id},
	              {"--lang", &o->lang},
	              {"--image", &o->image},
	              {"--runtime", &o->runtime},
	              {"-c", &o->code},
	              {"--stdin", &o->stdin_file},
	              {"--args", &o->args_json},
	              {"--reply-stream", &o->reply_stream},
	              {"--services", &o->services}};
	if (!strcmp(a, "--function")) {
		o->function = true;
		return 1;
	}
	bool is_file = !strcmp(a, "--file"), is_env = !strcmp(a, "--env");
	const char **dst = NULL;
	for (size_t k = 0; k < ARRAY_SIZE(single); k++)
		if (!strcmp(a, single[k].flag))
			dst = single[k].dst;
	int lim = limit_of(a);
	if (lim >= 0)
		dst = &o->limits[lim];
	if (!dst && !is_file && !is_env)
		return 0;
	if (*i + 1 >= argc)
		return err_set(e, 0, "%s needs a value", a);
	const char *v = argv[++*i];
	if (dst) {
		*dst = v;
	} else if (is_file) {
		if (o->n_files == CLI_TASK_FILES_MAX)
			return err_set(e, 0, "too many --file options");
		o->files[o->n_files++] = v;
	} else {
		if (o->n_env == CLI_TASK_FILES_MAX)
			return err_set(e, 0, "too many --env options");
		o->env[o->n_env++] = v;
	}
	return 1;
}

static void gen_b64(proto_gen *g, const uint8_t *p, size_t n)
{
	_cleanup_free_ char *out = proto_b64_encode(p, n);
	proto_json_gen_str(g, out);
}

/* The user's own files: links are followed (the no-follow rule is for paths a sandbox wrote);
 * "-" is this process's standard input. */
static int read_path(const char *path, size_t max, buf *out, err **e)
{
	int fd = strcmp(path, "-") ? open(path, O_RDONLY | O_CLOEXEC) : dup(STDIN_FILENO);
	if (fd < 0)
		return err_set(e, errno, "open %s", path);
	ssize_t n = read_all(fd, out, max + 1);
	int saved = errno;
	close(fd);
	if (n < 0)
		return err_set(e, saved, "read %s", path);
	if ((size_t)n > max)
		return err_set(e, 0, "%s is larger than %zu bytes", path, max);
	return 0;
}

/* --lang, else from the program file's name, else python. */
static const char *task_lang(const cli_task_opts *o)
{
	if (o->lang)
		return o->lang;
	const char *dot = o->code_file ? strrchr(o->code_file, '.') : NULL;
	if (dot && !strcmp(dot, ".js"))
		return "javascript";
	if (dot && !strcmp(dot, ".sh"))
		return "shell";
	return "python";
}

static int gen_limits(proto_gen *g, const cli_task_opts *o, err **e)
{
	bool any = false;
	for (size_t i = 0; i < PROTO_LIMIT_COUNT; i++)
		any |= o->limits[i] != NULL;
	if (!any)
		return 0;
	proto_json_gen_str(g, "limits");
	proto_json_gen_open(g, true);
	for (size_t i = 0; i < PROTO_LIMIT_COUNT; i++) {
		const proto_limit_field *f = &proto_limit_fields[i];
		int64_t v;
		if (!o->limits[i])
			continue;
		if (proto_limit_parse(f, o->limits[i], &v, e) < 0) {
			char flag[48];
			limit_flag(f, flag, sizeof(flag));
			return err_prefix(e, "%s %s", flag, o->limits[i]);
		}
		proto_json_gen_str(g, f->wire);
		proto_json_gen_number(g, o->limits[i]);
	}
	proto_json_gen_close(g, true);
	return 0;
}

static int gen_files(proto_gen *g, const cli_task_opts *o, err **e)
{
	if (!o->n_files)
		return 0;
	proto_json_gen_str(g, "files");
	proto_json_gen_open(g, false);
	for (int k = 0; k < o->n_files; k++) {
		const char *eq = strchr(o->files[k], '=');
		if (!eq || eq == o->files[k])
			return err_set(e, 0, "--file %s: expected PATH=LOCALFILE", o->files[k]);
		buf data = BUF_INIT;
		if (read_path(eq + 1, PROTO_FILES_TOTAL_MAX, &data, e) < 0)
			return err_prefix(e, "--file %s", o->files[k]);
		proto_json_gen_open(g, true);
		proto_json_gen_str(g, "path");
		proto_json_gen_strn(g, o->files[k], (size_t)(eq - o->files[k]));
		proto_json_gen_str(g, "content_b64");
		gen_b64(g, data.data, data.len);
		proto_json_gen_close(g, true);
		buf_deinit(&data);
	}
	proto_json_gen_close(g, false);
	return 0;
}

static int gen_env(proto_gen *g, const cli_task_opts *o, err **e)
{
	if (!o->n_env)
		return 0;
	proto_json_gen_str(g, "env");
	proto_json_gen_open(g, true);
	for (int k = 0; k < o->n_env; k++) {
		const char *eq = strchr(o->env[k], '=');
		if (!eq || eq == o->env[k])
			return err_set(e, 0, "--env %s: expected NAME=VALUE", o->env[k]);
		proto_json_gen_strn(g, o->env[k], (size_t)(eq - o->env[k]));
		proto_json_gen_str(g, eq + 1);
	}
	proto_json_gen_close(g, true);
	return 0;
}

/* --services a,b: the task's "services" (the node validates the names). */
static void gen_services(proto_gen *g, const cli_task_opts *o)
{
	if (!o->services)
		return;
	proto_json_gen_str(g, "services");
	proto_json_gen_open(g, false);
	_cleanup_free_ char *copy = xstrdup(o->services);
	char *save = NULL;
	for (char *t = strtok_r(copy, ", ", &save); t; t = strtok_r(NULL, ", ", &save))
		proto_json_gen_str(g, t);
	proto_json_gen_close(g, false);
}

/* "code": the -c text, or the FILE's, which must be UTF-8. */
static int gen_code(proto_gen *g, const cli_task_opts *o, err **e)
{
	proto_json_gen_str(g, "code");
	if (o->code) {
		proto_json_gen_str(g, o->code);
	} else {
		buf code = BUF_INIT;
		if (read_path(o->code_file, PROTO_CODE_MAX, &code, e) < 0)
			return -1;
		bool text = proto_utf8_valid(code.data, code.len);
		if (text)
			proto_json_gen_strn(g, (const char *)code.data, code.len);
		buf_deinit(&code);
		if (!text)
			return err_set(e, 0, "%s: not UTF-8 text (a task's code is UTF-8)",
			               o->code_file);
	}
	return 0;
}

static int gen_body(proto_gen *g, const cli_task_opts *o, err **e)
{
	if (!o->code && !o->code_file)
		return err_set(e, 0, "no program: give -c CODE or a FILE");
	char idbuf[40];
	if (!o->id) {
		uint8_t rnd[12];
		int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
		if (fd < 0 || read(fd, rnd, sizeof(rnd)) != (ssize_t)sizeof(rnd))
			return err_set(e, errno, "read /dev/urandom");
		close(fd);
		memcpy(idbuf, "t-", 2);
		hex_encode(rnd, sizeof(rnd), idbuf + 2);
	}
	proto_json_gen_str(g, "id");
	proto_json_gen_str(g, o->id ? o->id : idbuf);
	proto_json_gen_str(g, "lang");
	proto_json_gen_str(g, task_lang(o));
	if (o->function) {
		proto_json_gen_str(g, "mode");
		proto_json_gen_str(g, "function");
	}
	if (gen_code(g, o, e) < 0)
		return -1;
	if (o->stdin_file) {
		buf in = BUF_INIT;
		if (read_path(o->stdin_file, PROTO_STDIN_MAX, &in, e) < 0)
			return err_prefix(e, "--stdin");
		proto_json_gen_str(g, "stdin_b64");
		gen_b64(g, in.data, in.len);
		buf_deinit(&in);
	}
	if (o->args_json) {
		_cleanup_yajl_val_ yajl_val v = NULL;
		if (proto_json_parse(o->args_json, strlen(o->args_json), &v, e) < 0)
			return err_prefix(e, "--args is not valid JSON");
		proto_json_gen_str(g, "args");
		proto_json_gen_value(g, v);
	}
	const struct {
		const char *k, *v;
	} strs[] = {
	    {"image", o->image}, {"runtime", o->runtime}, {"reply_stream", o->reply_stream}};
	for (size_t k = 0; k < ARRAY_SIZE(strs); k++)
		if (strs[k].v) {
			proto_json_gen_str(g, strs[k].k);
			proto_json_gen_str(g, strs[k].v);
		}
	if (gen_env(g, o, e) < 0 || gen_files(g, o, e) < 0 || gen_limits(g, o, e) < 0)
		return -1;
	gen_services(g, o);
	return 0;
}

int cli_task_json(const cli_task_opts *o, buf *out, err **e)
{
	_cleanup_json_gen_ proto_gen *g = proto_json_gen_new();
	proto_json_gen_open(g, true);
	if (gen_body(g, o, e) < 0)
		return -1;
	proto_json_gen_close(g, true);
	if (proto_json_gen_take(g, out, e) < 0)
		return err_prefix(e,
		                  "the task (an --env or --file name or value that is not UTF-8?)");
	return 0;
}
