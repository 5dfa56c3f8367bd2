/* Tests of the agent's files (agent-fs.c, issue 14 items 3, 6, 7, issue 15 item 9, issue 16
 * item 6): input files in, output files out of /workspace/out (first by path, never through a
 * link, every file left out flagged), the program's own file. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/cleanup.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "sandbox/agent/frame.h"
#include "tests/unit/agent-harness.h"

static void test_files(void **state)
{
	_cleanup_free_ char *secret = xasprintf("%s/secret", tmp_root);
	_cleanup_close_ int sfd = open(secret, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	assert_true(sfd >= 0);
	assert_int_equal(write_all(sfd, "SECRET", 6), 0);

	sandbox_frame_buf b = {0};
	put_mode(&b, 0);
	_cleanup_free_ char *code =
	    xasprintf("import os\n"
	              "print(open('in/deep/er/data.txt').read())\n"
	              "open('out/b.txt', 'w').write('bee')\n"
	              "os.makedirs('out/sub')\n"
	              "open('out/sub/a.bin', 'wb').write(bytes(range(256)))\n"
	              "open('out/empty', 'w').close()\n"
	              "os.symlink('%s', 'out/link')\n"
	              "os.symlink('..', 'out/up')\n"
	              "os.symlink('%s', 'out/hostdir')\n"
	              "os.mkfifo('out/fifo')\n",
	              secret, tmp_root);
	put_str(&b, FIELD_CODE, code);
	sandbox_frame_put_field(&b, FIELD_FILE, "in/deep/er/data.txt\0input!", 26);
	result r;
	run("python", &b, &r);
	assert_string_equal(buf_str(&r.err), "");
	assert_string_equal(out_str(&r), "input!\n");
	assert_int_equal(r.flags, 0);
	assert_int_equal(r.nfiles, 3);
	assert_string_equal(r.files[0].path, "b.txt");
	assert_int_equal(r.files[0].len, 3);
	assert_memory_equal(r.files[0].data, "bee", 3);
	assert_string_equal(r.files[1].path, "empty");
	assert_int_equal(r.files[1].len, 0);
	assert_string_equal(r.files[2].path, "sub/a.bin");
	assert_int_equal(r.files[2].len, 256);
	assert_int_equal(r.files[2].data[255], 255);
	for (size_t i = 0; i < r.nfiles; i++)
		assert_null(memmem(r.files[i].data, r.files[i].len, "SECRET", 6));
	sandbox_frame_buf_free(&b);
	result_free(&r);
}

static void test_files_limits(void **state)
{
	sandbox_frame_buf b = {0};
	put_mode(&b, 0);
	put_str(&b, FIELD_CODE, "for i in range(5): open('out/f%d' % i, 'w').write('x' * 10)\n");
	sandbox_frame_put_field_u64(&b, FIELD_OUT_FILES_MAX, 3);
	result r;
	run("python", &b, &r);
	assert_int_equal(r.nfiles, 3);
	assert_string_equal(r.files[2].path, "f2");
	assert_int_equal(r.flags, EXIT_F_FILES_TRUNC);
	result_free(&r);

	sandbox_frame_buf_free(&b);
	put_mode(&b, 0);
	put_str(&b, FIELD_CODE, "for i in range(5): open('out/f%d' % i, 'w').write('x' * 10)\n");
	sandbox_frame_put_field_u64(&b, FIELD_OUT_BYTES_MAX, 25);
	run("python", &b, &r);
	assert_int_equal(r.nfiles, 2);
	assert_int_equal(r.flags, EXIT_F_FILES_TRUNC);
	result_free(&r);
	sandbox_frame_buf_free(&b);
}

/* Runs python code that makes out/ and returns the files' paths, joined by ','. */
static char *out_paths(const char *code, uint64_t max_files, result *r)
{
	assert_int_equal(rm_rf_at(AT_FDCWD, ws, NULL), 0); /* a fresh workspace for each run */
	assert_int_equal(mkdir(ws, 0755), 0);
	sandbox_frame_buf b = {0};
	put_mode(&b, 0);
	put_str(&b, FIELD_CODE, code);
	if (max_files)
		sandbox_frame_put_field_u64(&b, FIELD_OUT_FILES_MAX, max_files);
	run("python", &b, r);
	sandbox_frame_buf_free(&b);
	buf paths = BUF_INIT;
	for (size_t i = 0; i < r->nfiles; i++)
		buf_appendf(&paths, "%s%s", i ? "," : "", r->files[i].path);
	return buf_steal(&paths, NULL);
}

/* Output files are the first by path, in the byte order of the whole path ('-' < '/'), also
 * when the directory holds far more entries than are returned, and when the entries that sort
 * first are directories with nothing in them (issue 14 item 7). */
static void test_files_order(void **state)
{
	result r;
	_cleanup_free_ char *p1 =
	    out_paths("import os\n"
	              "for d in ('a', 'a/b', 'b'): os.makedirs('out/' + d, exist_ok=True)\n"
	              "for f in ('a-c', 'a/b/z', 'a/a', 'b/x', 'a.d', 'c'):\n"
	              "    open('out/' + f, 'w').write(f)\n",
	              0, &r);
	assert_string_equal(p1, "a-c,a.d,a/a,a/b/z,b/x,c");
	assert_int_equal(r.flags, 0);
	result_free(&r);

	/* 5000 entries, created in an order unrelated to their names; 3 asked for */
	_cleanup_free_ char *p2 =
	    out_paths("import os\n"
	              "for i in range(5000):\n"
	              "    open('out/f%05d' % ((i * 7919) % 5000), 'w').close()\n",
	              3, &r);
	assert_string_equal(p2, "f00000,f00001,f00002");
	assert_int_equal(r.flags, EXIT_F_FILES_TRUNC);
	result_free(&r);

	/* 300 empty directories sort first: the walk reads on past them */
	_cleanup_free_ char *p3 = out_paths("import os\n"
	                                    "for i in range(300): os.makedirs('out/a%03d' % i)\n"
	                                    "for i in range(5): open('out/b%d' % i, 'w').close()\n",
	                                    3, &r);
	assert_string_equal(p3, "b0,b1,b2");
	assert_int_equal(r.flags, EXIT_F_FILES_TRUNC);
	result_free(&r);

	/* exactly the count: nothing left out */
	_cleanup_free_ char *p4 = out_paths("import os\nos.makedirs('out/e/f')\nfor i in range(3): "
	                                    "open('out/x%d' % i, 'w').close()\n",
	                                    3, &r);
	assert_string_equal(p4, "x0,x1,x2");
	assert_int_equal(r.flags, 0);
	result_free(&r);
}

/* A file that cannot be returned says so: a newline in its name, a path over 255 bytes, a
 * directory too deep for any path (issue 15 item 9, issue 14 item 6). */
static void test_files_refused(void **state)
{
	static const char *const cases[] = {
	    "open('out/new\\nline', 'w').close()\n",
	    "os.makedirs('out/' + 'x' * 200)\nopen('out/' + 'x' * 200 + '/' + 'y' * 60, "
	    "'w').close()\n",
	    "import os\nd = 'out/' + 'd' * 200 + '/' + 'e' * 54\nos.makedirs(d)\n"
	    "open(d + '/f', 'w').close()\n",
	    "open(b'out/bad\\xff', 'w').close()\n",
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		result r;
		_cleanup_free_ char *code =
		    xasprintf("import os\n%sopen('out/ok', 'w').close()\n", cases[i]);
		_cleanup_free_ char *p = out_paths(code, 0, &r);
		if (strcmp(p, "ok"))
			fail_msg("case %zu: files \"%s\", stderr %s", i, p, buf_str(&r.err));
		if (r.flags != EXIT_F_FILES_TRUNC)
			fail_msg("case %zu: flags %#x", i, r.flags);
		result_free(&r);
	}
	/* an empty directory too deep for a path is not a file left out */
	result r;
	_cleanup_free_ char *p = out_paths("import os\nos.makedirs('out/' + 'd' * 200 + '/' + 'e' "
	                                   "* 54)\nopen('out/ok', 'w').close()\n",
	                                   0, &r);
	assert_string_equal(p, "ok");
	assert_int_equal(r.flags, 0);
	result_free(&r);
}

/* out/ replaced by a link to a directory: nothing is read through it (gVisor follows such a
 * link when O_DIRECTORY is combined with O_NOFOLLOW; the agent never asks for both). */
static void test_files_out_link(void **state)
{
	_cleanup_free_ char *secret = xasprintf("%s/secret", tmp_root);
	assert_int_equal(mkdir(secret, 0755), 0);
	_cleanup_free_ char *f = xasprintf("%s/key.pem", secret);
	FILE *fp = fopen(f, "w");
	fputs("SECRET", fp);
	fclose(fp);
	_cleanup_free_ char *code =
	    xasprintf("import os\nos.rmdir('out')\nos.symlink('%s', 'out')\nos.makedirs('d')\n"
	              "os.symlink('%s', 'd/x')\n",
	              secret, secret);
	result r;
	_cleanup_free_ char *p = out_paths(code, 0, &r);
	assert_string_equal(p, "");
	assert_int_equal(r.flags, 0);
	result_free(&r);
}

/* The program is a real file (issue 16 item 6): /workspace/main.py, main.js, main.sh, so
 * tracebacks show its lines and __file__, __filename and $0 name it; out/ is there before it
 * starts; an input file of the same name is the task's and stays. */
static void test_program_file(void **state)
{
	result r;
	const char *py = "import os\nassert os.path.isdir('out') and os.listdir('out') == []\n"
	                 "print(os.path.basename(__file__), open(__file__).read().count('\\n'))\n"
	                 "raise ValueError('boom')\n";
	run_code("python", 0, py, &r);
	assert_string_equal(out_str(&r), "main.py 4\n");
	assert_int_equal(r.code, 1);
	assert_non_null(strstr(buf_str(&r.err), "main.py\", line 4, in <module>\n"
	                                        "    raise ValueError('boom')\n"));
	result_free(&r);

	const char *js =
	    "const fs = require('fs'), path = require('path');\n"
	    "console.log(path.basename(__filename), fs.readFileSync(__filename, 'utf8')"
	    ".length, fs.statSync('out').isDirectory());\n";
	run_code("javascript", 0, js, &r);
	_cleanup_free_ char *want = xasprintf("main.js %zu true\n", strlen(js));
	assert_string_equal(out_str(&r), want);
	result_free(&r);

	sandbox_frame_buf b = {0};
	put_mode(&b, 0);
	put_str(&b, FIELD_CODE, "echo \"$0 $# $1\"; wc -l < \"$0\"; test -d out && echo out\n");
	put_str(&b, FIELD_ARG, "a1");
	run("shell", &b, &r);
	assert_string_equal(out_str(&r), "main.sh 1 a1\n1\nout\n");
	result_free(&r);
	sandbox_frame_buf_free(&b);

	assert_int_equal(rm_rf_at(AT_FDCWD, ws, NULL), 0); /* a fresh workspace, as a sandbox's */
	assert_int_equal(mkdir(ws, 0755), 0);
	put_mode(&b, 0);
	put_str(&b, FIELD_CODE, "print(open('main.py').read())");
	sandbox_frame_put_field(&b, FIELD_FILE, "main.py\0INPUT", 13);
	run("python", &b, &r);
	assert_string_equal(out_str(&r), "INPUT\n");
	result_free(&r);
	sandbox_frame_buf_free(&b);
}

static void test_input_path_rejected(void **state)
{
	static const char *const bad[] = {"../escape", "/abs", "a//b", "a/./b", "a/", ""};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		sandbox_frame_buf b = {0};
		put_mode(&b, 0);
		put_str(&b, FIELD_CODE, "print('ran')");
		size_t n = strlen(bad[i]);
		uint8_t f[64];
		memcpy(f, bad[i], n);
		memcpy(f + n, "\0x", 2);
		sandbox_frame_put_field(&b, FIELD_FILE, f, n + 2);
		result r;
		run("shell", &b, &r);
		assert_int_equal(r.flags, EXIT_F_SETUP_ERROR);
		assert_string_equal(out_str(&r), "");
		result_free(&r);
		sandbox_frame_buf_free(&b);
	}
	_cleanup_free_ char *escaped = xasprintf("%s/escape", tmp_root);
	assert_int_equal(access(escaped, F_OK), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_files, setup_ws, teardown_ws),
	    cmocka_unit_test_setup_teardown(test_files_limits, setup_ws, teardown_ws),
	    cmocka_unit_test_setup_teardown(test_files_order, setup_ws, teardown_ws),
	    cmocka_unit_test_setup_teardown(test_files_refused, setup_ws, teardown_ws),
	    cmocka_unit_test_setup_teardown(test_files_out_link, setup_ws, teardown_ws),
	    cmocka_unit_test_setup_teardown(test_input_path_rejected, setup_ws, teardown_ws),
	    cmocka_unit_test_setup_teardown(test_program_file, setup_ws, teardown_ws),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
