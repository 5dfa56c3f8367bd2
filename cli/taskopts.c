/* Task options -> task JSON (see taskopts.h). */
#include "cli/taskopts.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "common/cleanup.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "proto/json.h"
#include "proto/proto.h"

const char cli_task_usage[] =
    "task options:\n"
    "  --lang python|javascript|shell   (default python)\n"
    "  -c CODE | FILE                   the program text, or a file holding it\n"
    "  --id ID                          task id [A-Za-z0-9._-]{1,64} (default: random)\n"
    "  --image NAME|sha256:DIGEST       (default: the node's default image)\n"
    "  --runtime NAME                   runsc, runc or another configured runtime\n"
    "  --stdin FILE                     the program's standard input\n"
    "  --file PATH=LOCALFILE            an input file placed at /workspace/PATH (repeatable)\n"
    "  --env NAME=VALUE                 an environment variable (repeatable)\n"
    "  --args JSON                      script: array of argv strings; function: main(args)\n"
    "  --function                       call main(args) and return its JSON value\n"
    "  --timeout S  --memory MB  --cpus N   lower the limits for this task\n";

int cli_exit_status(int status, int exit_code, int signal)
{
	switch (status) {
	case PROTO_STATUS_OK:
		return signal ? 128 + signal : exit_code;
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

int cli_print_output(const proto_output *o)
{
	fwrite(buf_str(&o->out), 1, o->out.len, stdout);
	fwrite(buf_str(&o->err), 1, o->err.len, stderr);
	if (o->return_value)
		printf("%s\n", o->return_value);
	if (o->status != PROTO_STATUS_OK)
		fprintf(stderr, "aisp: %s%s%s\n", proto_status_name(o->status),
		        o->error ? ": " : "", o->error ? o->error : "");
	fflush(stdout);
	return cli_exit_status(o->status, o->exit_code, o->signal);
}

int cli_task_opt(cli_task_opts *o, int argc, char **argv, int *i, err **e)
{
	const char *a = argv[*i];
	struct {
		const char *flag;
		const char **dst;
	} single[] = {{"--id", &o->id},          {"--lang", &o->lang},
	              {"--image", &o->image},    {"--runtime", &o->runtime},
	              {"-c", &o->code},          {"--stdin", &o->stdin_file},
	              {"--args", &o->args_json}, {"--timeout", &o->timeout},
	              {"--memory", &o->memory},  {"--cpus", &o->cpus}};
	if (!strcmp(a, "--function")) {
		o->function = true;
		return 1;
	}
	bool is_file = !strcmp(a, "--file"), is_env = !strcmp(a, "--env");
	const char **dst = NULL;
	for (size_t k = 0; k < ARRAY_SIZE(single); k++)
		if (!strcmp(a, single[k].flag))
			dst = single[k].dst;
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

#define gs proto_json_gen_str

static void gen_b64(yajl_gen g, const uint8_t *p, size_t n)
{
	_cleanup_free_ char *out = proto_b64_encode(p, n);
	proto_json_gen_str(g, out);
}

static int read_path(const char *path, size_t max, buf *out, err **e)
{
	return read_file_at(AT_FDCWD, path, max, out, e);
}

static int gen_number_field(yajl_gen g, const char *key, const char *v, err **e)
{
	char *end;
	strtod(v, &end);
	if (!*v || *end)
		return err_set(e, 0, "--%s: \"%s\" is not a number", key, v);
	gs(g, key);
	yajl_gen_number(g, v, strlen(v));
	return 0;
}

static int gen_limits(yajl_gen g, const cli_task_opts *o, err **e)
{
	if (!o->timeout && !o->memory && !o->cpus)
		return 0;
	gs(g, "limits");
	yajl_gen_map_open(g);
	if (o->timeout && gen_number_field(g, "timeout_s", o->timeout, e) < 0)
		return -1;
	if (o->memory && gen_number_field(g, "memory_mb", o->memory, e) < 0)
		return -1;
	if (o->cpus && gen_number_field(g, "cpus", o->cpus, e) < 0)
		return -1;
	yajl_gen_map_close(g);
	return 0;
}

static int gen_files(yajl_gen g, const cli_task_opts *o, err **e)
{
	if (!o->n_files)
		return 0;
	gs(g, "files");
	yajl_gen_array_open(g);
	for (int k = 0; k < o->n_files; k++) {
		const char *eq = strchr(o->files[k], '=');
		if (!eq || eq == o->files[k])
			return err_set(e, 0, "--file %s: expected PATH=LOCALFILE", o->files[k]);
		buf data = BUF_INIT;
		if (read_path(eq + 1, PROTO_FILES_TOTAL_MAX, &data, e) < 0)
			return err_prefix(e, "--file %s", o->files[k]);
		yajl_gen_map_open(g);
		gs(g, "path");
		yajl_gen_string(g, (const unsigned char *)o->files[k], (size_t)(eq - o->files[k]));
		gs(g, "content_b64");
		gen_b64(g, data.data, data.len);
		yajl_gen_map_close(g);
		buf_deinit(&data);
	}
	yajl_gen_array_close(g);
	return 0;
}

static int gen_env(yajl_gen g, const cli_task_opts *o, err **e)
{
	if (!o->n_env)
		return 0;
	gs(g, "env");
	yajl_gen_map_open(g);
	for (int k = 0; k < o->n_env; k++) {
		const char *eq = strchr(o->env[k], '=');
		if (!eq || eq == o->env[k])
			return err_set(e, 0, "--env %s: expected NAME=VALUE", o->env[k]);
		yajl_gen_string(g, (const unsigned char *)o->env[k], (size_t)(eq - o->env[k]));
		gs(g, eq + 1);
	}
	yajl_gen_map_close(g);
	return 0;
}

static int gen_body(yajl_gen g, const cli_task_opts *o, err **e)
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
	gs(g, "id");
	gs(g, o->id ? o->id : idbuf);
	gs(g, "lang");
	gs(g, o->lang ? o->lang : "python");
	if (o->function) {
		gs(g, "mode");
		gs(g, "function");
	}
	gs(g, "code");
	if (o->code) {
		gs(g, o->code);
	} else {
		buf code = BUF_INIT;
		if (read_path(o->code_file, PROTO_CODE_MAX, &code, e) < 0)
			return -1;
		yajl_gen_string(g, code.data, code.len);
		buf_deinit(&code);
	}
	if (o->stdin_file) {
		buf in = BUF_INIT;
		if (read_path(o->stdin_file, PROTO_STDIN_MAX, &in, e) < 0)
			return err_prefix(e, "--stdin");
		gs(g, "stdin_b64");
		gen_b64(g, in.data, in.len);
		buf_deinit(&in);
	}
	if (o->args_json) {
		char msg[256];
		yajl_val v = yajl_tree_parse(o->args_json, msg, sizeof(msg));
		if (!v)
			return err_set(e, 0, "--args is not valid JSON: %s", msg);
		gs(g, "args");
		proto_json_gen_value(g, v);
		yajl_tree_free(v);
	}
	const struct {
		const char *k, *v;
	} strs[] = {{"image", o->image}, {"runtime", o->runtime}};
	for (size_t k = 0; k < ARRAY_SIZE(strs); k++)
		if (strs[k].v) {
			gs(g, strs[k].k);
			gs(g, strs[k].v);
		}
	if (gen_env(g, o, e) < 0 || gen_files(g, o, e) < 0 || gen_limits(g, o, e) < 0)
		return -1;
	return 0;
}

int cli_task_json(const cli_task_opts *o, buf *out, err **e)
{
	yajl_gen g = yajl_gen_alloc(NULL);
	yajl_gen_map_open(g);
	int r = gen_body(g, o, e);
	yajl_gen_map_close(g);
	if (r == 0) {
		const unsigned char *p;
		size_t n;
		yajl_gen_get_buf(g, &p, &n);
		buf_append(out, p, n);
	}
	yajl_gen_free(g);
	return r;
}
