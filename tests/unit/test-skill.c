/* Unit tests for the skill store (sandbox/skill*.c): the TOML subset and the manifest (every
 * error with its line and key), the canonical digest (the same across creation order, times,
 * umask; the documented list format), the walk's refusals (links, special files, caps), the
 * archive reader's refusals, and add / ls / export / import / rm / verify round trips. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/cleanup.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "sandbox/sandbox.h"
#include "sandbox/skill-internal.h"

/* ---- helpers ---- */

static char *tmpdir(void)
{
	char *d = xstrdup("/tmp/test-skill.XXXXXX");
	assert_non_null(mkdtemp(d));
	return d;
}

static void rmtree(char *d)
{
	assert_int_equal(rm_rf_at(AT_FDCWD, d, NULL), 0);
	free(d);
}

static void put_file(const char *root, const char *rel, const char *text, mode_t mode)
{
	_cleanup_free_ char *p = xasprintf("%s/%s", root, rel);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, mode);
	assert_true(fd >= 0);
	assert_int_equal(write_all(fd, text, strlen(text)), 0);
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static void put_dir(const char *root, const char *rel)
{
	_cleanup_free_ char *p = xasprintf("%s/%s", root, rel);
	assert_int_equal(mkdir(p, 0755), 0);
}

static const char manifest_text[] = "name = \"demo\"\n"
                                    "version = \"0.1.0\"\n"
                                    "language = \"python\"\n"
                                    "entrypoint = \"code/pkg/run.py:main\"\n"
                                    "[permissions]\n"
                                    "secrets = [\"DEMO_TOKEN\"]\n";

/* A small valid skill below root/<sub>. */
static char *make_skill(const char *root, const char *sub, const char *manifest)
{
	char *dir = xasprintf("%s/%s", root, sub);
	assert_int_equal(mkdir(dir, 0755), 0);
	put_file(dir, "skill.toml", manifest ? manifest : manifest_text, 0644);
	put_file(dir, "SKILL.md", "# demo\n", 0644);
	put_dir(dir, "code");
	put_dir(dir, "code/pkg");
	put_file(dir, "code/pkg/run.py", "def main(args):\n    return args\n", 0644);
	put_dir(dir, "resources");
	put_file(dir, "resources/tool.sh", "#!/bin/sh\necho hi\n", 0755);
	return dir;
}

/* ---- the TOML subset ---- */

static void test_toml_accepts(void **state)
{
	static const char text[] = "# a comment\r\n"
	                           "title = 'lit\\eral' # trailing\n"
	                           "esc = \"a\\tb\\\"c\\u00e9\\U0001F600\"\n"
	                           "n = -9_223_372_036_854_775_808\n"
	                           "big = +42\n"
	                           "yes = true\n"
	                           "[t-1]\n"
	                           "list = [ # open\n"
	                           "  \"x\",\n"
	                           "  'y', # second\n"
	                           "]\n"
	                           "empty = []\n";
	skill_toml_doc d;
	err *e = NULL;
	assert_int_equal(skill_toml_parse("t.toml", text, strlen(text), &d, &e), 0);
	assert_int_equal(d.n_items, 7);
	assert_string_equal(skill_toml_find(&d, "", "title")->str, "lit\\eral");
	assert_string_equal(skill_toml_find(&d, "", "esc")->str, "a\tb\"c\xc3\xa9\xf0\x9f\x98\x80");
	assert_true(skill_toml_find(&d, "", "n")->integer == INT64_MIN);
	assert_int_equal(skill_toml_find(&d, "", "big")->integer, 42);
	assert_true(skill_toml_find(&d, "", "yes")->boolean);
	const skill_toml_item *l = skill_toml_find(&d, "t-1", "list");
	assert_int_equal(l->type, SKILL_TOML_STRINGS);
	assert_int_equal(l->n_strs, 2);
	assert_string_equal(l->strs[1], "y");
	assert_int_equal(l->line, 8);
	assert_int_equal(skill_toml_find(&d, "t-1", "empty")->n_strs, 0);
	assert_int_equal(d.n_tables, 1);
	assert_int_equal(d.tables[0].line, 7);
	skill_toml_deinit(&d);
}

/* A text and the exact message its parse must fail with. */
typedef struct error_case {
	const char *text, *msg;
} error_case;

/* Parses each case with parse (which returns 0 or -1 with *e, and leaves nothing on failure)
 * and checks the message. */
static void check_error_cases(const error_case *cases, size_t n,
                              int (*parse)(const char *text, err **e))
{
	for (size_t i = 0; i < n; i++) {
		err *e = NULL;
		int r = parse(cases[i].text, &e);
		if (r == 0 || strcmp(err_msg(e), cases[i].msg)) {
			fprintf(stderr, "case %zu: %s\n  got:  %s\n  want: %s\n", i, cases[i].text,
			        r == 0 ? "(accepted)" : err_msg(e), cases[i].msg);
			fail();
		}
		err_free(e);
	}
}

static const error_case toml_errors[] = {
    {"a = 1\na = 2\n", "t.toml:2: a defined twice (first at line 1)"},
    {"[t]\nb = 1\nb = 2", "t.toml:3: [t] b defined twice (first at line 2)"},
    {"[t]\n[t]\n", "t.toml:2: table [t] defined twice (first at line 1)"},
    {"x = 1\n[x]\n", "t.toml:2: table [x] clashes with the key x at line 1"},
    {"a.b = 1", "t.toml:1: dotted keys are not supported"},
    {"\"a\" = 1", "t.toml:1: quoted keys are not supported"},
    {"[[x]]", "t.toml:1: arrays of tables ([[...]]) are not supported"},
    {"[a.b]", "t.toml:1: dotted table names are not supported"},
    {"[]", "t.toml:1: expected a table name"},
    {"[a", "t.toml:1: expected ] after the table name"},
    {"[t] x", "t.toml:1: unexpected text after the table header"},
    {"= 1", "t.toml:1: expected a key name"},
    {"\n\na", "t.toml:3: expected = after the key a"},
    {"a =", "t.toml:1: a: expected a value after ="},
    {"a = x", "t.toml:1: a: expected a value (a string, an integer, true, false or an array of "
              "strings)"},
    {"a = 1 b", "t.toml:1: unexpected text after the value"},
    {"a = \"\"\"x\"\"\"", "t.toml:1: a: multi-line strings are not supported"},
    {"a = '''x'''", "t.toml:1: a: multi-line strings are not supported"},
    {"a = 1.5", "t.toml:1: a: floats, dates and times are not supported"},
    {"a = 1e3", "t.toml:1: a: floats, dates and times are not supported"},
    {"a = 1979-05-27", "t.toml:1: a: floats, dates and times are not supported"},
    {"a = 07:32:00", "t.toml:1: a: floats, dates and times are not supported"},
    {"a = inf", "t.toml:1: a: floats are not supported"},
    {"a = -nan", "t.toml:1: a: floats are not supported"},
    {"a = 0x10", "t.toml:1: a: hexadecimal, octal and binary integers are not supported"},
    {"a = 01", "t.toml:1: a: invalid integer"},
    {"a = 1__0", "t.toml:1: a: invalid integer"},
    {"a = 9223372036854775808", "t.toml:1: a: invalid integer"},
    {"a = {x = 1}", "t.toml:1: a: inline tables are not supported"},
    {"a = [1, 2]", "t.toml:1: a: arrays may hold only strings"},
    {"a = [[\"x\"]]", "t.toml:1: a: arrays may hold only strings"},
    {"a = [\"x\" \"y\"]", "t.toml:1: a: expected , or ] in an array"},
    {"a = [\n\"x\",\n", "t.toml:1: a: unterminated array"},
    {"a = \"x", "t.toml:1: a: unterminated string"},
    {"a = \"x\ny\"", "t.toml:1: a: unterminated string"},
    {"a = \"\\q\"", "t.toml:1: a: invalid escape \\q in a string"},
    {"a = \"\\u00\"", "t.toml:1: a: \\u needs 4 hex digits"},
    {"a = \"\\u0000\"", "t.toml:1: a: \\u0000 is not allowed"},
    {"a = \"\\uD800\"", "t.toml:1: a: \\uD800 is not a Unicode scalar value"},
    {"a = \"\\U00110000\"", "t.toml:1: a: \\U00110000 is not a Unicode scalar value"},
    {"\xef\xbb\xbf"
     "a = 1",
     "t.toml:1: a byte order mark is not allowed"},
    {"a = 1\nb = \"\xff\"", "t.toml:2: invalid UTF-8"},
    {"a = \"\xc0\xaf\"", "t.toml:1: invalid UTF-8"},
    {"a = 1\r", "t.toml:1: control character 0x0d"},
    {"\n\na = \"\x01\"", "t.toml:3: control character 0x01"},
    {"# \x7f", "t.toml:1: control character 0x7f"},
};

static int parse_toml(const char *text, err **e)
{
	skill_toml_doc d;
	int r = skill_toml_parse("t.toml", text, strlen(text), &d, e);
	assert_null(r == 0 ? NULL : d.items);
	if (r == 0)
		skill_toml_deinit(&d);
	return r;
}

static void test_toml_errors(void **state)
{
	check_error_cases(toml_errors, ARRAY_SIZE(toml_errors), parse_toml);
}

/* Caps: keys, tables, array elements; NUL inside the text. */
static void test_toml_caps(void **state)
{
	buf b = BUF_INIT;
	for (int i = 0; i < 257; i++)
		buf_appendf(&b, "k%d = 1\n", i);
	skill_toml_doc d;
	err *e = NULL;
	assert_int_equal(skill_toml_parse("t", (char *)b.data, b.len, &d, &e), -1);
	assert_string_equal(err_msg(e), "t:257: more than 256 keys");
	buf_reset(&b);
	buf_append_str(&b, "a = [");
	for (int i = 0; i < 257; i++)
		buf_append_str(&b, "'x',");
	buf_append_str(&b, "]");
	assert_int_equal(skill_toml_parse("t", (char *)b.data, b.len, &d, &e), -1);
	assert_string_equal(err_msg(e), "t:1: a: more than 256 elements in an array");
	assert_int_equal(skill_toml_parse("t", "a = \"x\0y\"", 9, &d, &e), -1);
	assert_string_equal(err_msg(e), "t:1: control character 0x00");
	err_free(e);
	buf_deinit(&b);
}

/* ---- the manifest ---- */

static void test_manifest_example(void **state)
{
	_cleanup_free_ char *path =
	    xasprintf("%s/tests/data/skills/salesforce/skill.toml", getenv("AISP_SOURCE_ROOT"));
	buf b = BUF_INIT;
	err *e = NULL;
	assert_int_equal(read_file_at(AT_FDCWD, path, 1 << 16, &b, &e), 0);
	sandbox_skill_manifest m;
	assert_int_equal(sandbox_skill_manifest_parse("skill.toml", (char *)b.data, b.len, &m, &e),
	                 0);
	assert_string_equal(m.name, "salesforce");
	assert_string_equal(m.version, "1.0.0");
	assert_int_equal(m.lang, PROTO_LANG_PYTHON);
	assert_string_equal(m.entry_path, "code/leads/sync.py");
	assert_string_equal(m.entry_func, "main");
	assert_int_equal(m.mode, SANDBOX_SKILL_SOURCE);
	assert_int_equal(m.n_secrets, 2);
	assert_string_equal(m.secrets[0], "SALESFORCE_API_KEY");
	assert_string_equal(m.secrets[1], "SALESFORCE_ORG_ID");
	assert_int_equal(m.n_services, 1);
	assert_string_equal(m.services[0], "salesforce");
	_cleanup_free_ char *mod = sandbox_skill_entry_module(&m);
	assert_string_equal(mod, "skills.salesforce.leads.sync");
	sandbox_skill_manifest_deinit(&m);
	buf_deinit(&b);

	static const char js[] = "name = \"js_demo\"\nversion = \"2.0.0-rc.1+build.5\"\n"
	                         "language = \"javascript\"\nentrypoint = \"code/lib/run.js\"\n"
	                         "mode = \"sealed\"\n";
	assert_int_equal(sandbox_skill_manifest_parse("s", js, strlen(js), &m, &e), 0);
	assert_string_equal(m.entry_func, "main"); /* the default */
	assert_int_equal(m.mode, SANDBOX_SKILL_SEALED);
	assert_int_equal(m.n_secrets, 0);
	_cleanup_free_ char *jsmod = sandbox_skill_entry_module(&m);
	assert_string_equal(jsmod, "skills/js_demo/lib/run.js");
	sandbox_skill_manifest_deinit(&m);
}

#define BASE  "name = \"demo\"\nversion = \"1.0.0\"\nlanguage = \"python\"\n"
#define ENTRY "entrypoint = \"code/run.py:main\"\n"

static const error_case manifest_errors[] = {
    {"version = \"1.0.0\"\nlanguage = \"python\"\n" ENTRY,
     "skill.toml: name: missing (a manifest sets name, version, language and entrypoint)"},
    {BASE, "skill.toml: entrypoint: missing (a manifest sets name, version, language and "
           "entrypoint)"},
    {"name = 1\n", "skill.toml:1: name: must be a string"},
    {"name = \"Sales\"\n", "skill.toml:1: name: \"Sales\" is not a skill name "
                           "([a-z][a-z0-9_]{0,63}, not a Python keyword)"},
    {"name = \"class\"\n", "skill.toml:1: name: \"class\" is not a skill name "
                           "([a-z][a-z0-9_]{0,63}, not a Python keyword)"},
    {"name = \"a-b\"\n", "skill.toml:1: name: \"a-b\" is not a skill name "
                         "([a-z][a-z0-9_]{0,63}, not a Python keyword)"},
    {"name = \"x\"\nversion = \"1.0\"\n", "skill.toml:2: version: \"1.0\" is not a semantic "
                                          "version (MAJOR.MINOR.PATCH, e.g. \"1.2.0\")"},
    {"version = \"01.0.0\"\n", "skill.toml:1: version: \"01.0.0\" is not a semantic version "
                               "(MAJOR.MINOR.PATCH, e.g. \"1.2.0\")"},
    /* found by fuzzing: read past the end of "2.8888888885" */
    {"version = \"2.8888888885\"\n", "skill.toml:1: version: \"2.8888888885\" is not a semantic "
                                     "version (MAJOR.MINOR.PATCH, e.g. \"1.2.0\")"},
    {"version = \"1.2.3.4\"\n", "skill.toml:1: version: \"1.2.3.4\" is not a semantic version "
                                "(MAJOR.MINOR.PATCH, e.g. \"1.2.0\")"},
    {"version = \"1.0.0-01\"\n", "skill.toml:1: version: \"1.0.0-01\" is not a semantic version "
                                 "(MAJOR.MINOR.PATCH, e.g. \"1.2.0\")"},
    {"language = \"ruby\"\n", "skill.toml:1: language: must be \"python\" or \"javascript\", "
                              "not \"ruby\""},
    {"mode = \"open\"\n", "skill.toml:1: mode: must be \"source\" or \"sealed\", not \"open\""},
    {BASE "entrypoint = \"leads/sync.py:main\"\n",
     "skill.toml:4: entrypoint: expected \"code/PATH.py:FUNCTION\" (a file below code/)"},
    {BASE "entrypoint = \"code/sync.js:main\"\n",
     "skill.toml:4: entrypoint: expected \"code/PATH.py:FUNCTION\" (a file below code/)"},
    {BASE "entrypoint = \"code/.py\"\n",
     "skill.toml:4: entrypoint: expected \"code/PATH.py:FUNCTION\" (a file below code/)"},
    {BASE "entrypoint = \"code/../x.py\"\n",
     "skill.toml:4: entrypoint: expected \"code/PATH.py:FUNCTION\" (a file below code/)"},
    {BASE "entrypoint = \"code/my-leads/sync.py\"\n",
     "skill.toml:4: entrypoint: \"my-leads\" is not a Python identifier, so the module cannot "
     "be imported"},
    {BASE "entrypoint = \"code/run.py:1main\"\n",
     "skill.toml:4: entrypoint: \"1main\" is not a function name ([A-Za-z_][A-Za-z0-9_]*)"},
    {"foo = 1\n", "skill.toml:1: foo: unknown key"},
    {"[permissions]\nenv = []\n", "skill.toml:2: permissions.env: unknown key"},
    {"\n[limits]\n", "skill.toml:2: unknown table [limits] (a manifest has [permissions])"},
    {"[permissions]\nsecrets = \"X\"\n", "skill.toml:2: permissions.secrets: must be an array "
                                         "of strings"},
    {"[permissions]\nsecrets = [\"OK\", \"PATH\"]\n",
     "skill.toml:2: permissions.secrets: \"PATH\" is not an environment variable name the node "
     "lets a skill receive ([A-Za-z_][A-Za-z0-9_]*, not PATH, HOME, AISP_*, LD_* ...)"},
    {"[permissions]\nsecrets = [\"AISP_KEY\"]\n",
     "skill.toml:2: permissions.secrets: \"AISP_KEY\" is not an environment variable name the "
     "node lets a skill receive ([A-Za-z_][A-Za-z0-9_]*, not PATH, HOME, AISP_*, LD_* ...)"},
    {"[permissions]\nsecrets = [\"api-key\"]\n",
     "skill.toml:2: permissions.secrets: \"api-key\" is not an environment variable name the "
     "node lets a skill receive ([A-Za-z_][A-Za-z0-9_]*, not PATH, HOME, AISP_*, LD_* ...)"},
    {"[permissions]\nsecrets = [\"A\", \"B\", \"A\"]\n",
     "skill.toml:2: permissions.secrets: \"A\" is listed twice"},
    {"[permissions]\nservices = [\"Sales Force\"]\n",
     "skill.toml:2: permissions.services: \"Sales Force\" is not a service name "
     "([a-z0-9][a-z0-9_.-]{0,63})"},
    {"[permissions]\nsecrets = [\n'A1','A2','A3','A4','A5','A6','A7','A8','A9','A10','A11',"
     "'A12','A13','A14','A15','A16','A17','A18','A19','A20','A21','A22','A23','A24','A25',"
     "'A26','A27','A28','A29','A30','A31','A32','A33']\n",
     "skill.toml:2: permissions.secrets: 33 entries, over the cap of 32"},
    {"name = \"x\"\nname = \"y\"\n", "skill.toml:2: name defined twice (first at line 1)"},
};

static int parse_manifest(const char *text, err **e)
{
	sandbox_skill_manifest m;
	int r = sandbox_skill_manifest_parse("skill.toml", text, strlen(text), &m, e);
	assert_null(r == 0 ? NULL : m.name);
	if (r == 0)
		sandbox_skill_manifest_deinit(&m);
	return r;
}

static void test_manifest_errors(void **state)
{
	check_error_cases(manifest_errors, ARRAY_SIZE(manifest_errors), parse_manifest);
	buf d = BUF_INIT;
	buf_append_str(&d, BASE ENTRY "description = \"");
	for (int i = 0; i < SANDBOX_SKILL_DESC_MAX + 1; i++)
		buf_append_str(&d, "x");
	buf_append_str(&d, "\"\n");
	sandbox_skill_manifest dm;
	err *de = NULL;
	assert_int_equal(
	    sandbox_skill_manifest_parse("skill.toml", (char *)d.data, d.len, &dm, &de), -1);
	assert_string_equal(err_msg(de),
	                    "skill.toml:5: description: 1025 bytes, over the cap of 1024");
	err_free(de);
	buf_deinit(&d);
	char *big = xmalloc(SANDBOX_SKILL_MANIFEST_MAX + 2);
	memset(big, '#', SANDBOX_SKILL_MANIFEST_MAX + 1);
	sandbox_skill_manifest m;
	err *e = NULL;
	assert_int_equal(
	    sandbox_skill_manifest_parse("skill.toml", big, SANDBOX_SKILL_MANIFEST_MAX + 1, &m, &e),
	    -1);
	assert_string_equal(err_msg(e), "skill.toml: 65537 bytes, over the cap of 65536");
	err_free(e);
	free(big);
}

/* ---- trees and digests ---- */

typedef struct spec_entry {
	const char *path, *text; /* text NULL: a directory */
	bool exec;
} spec_entry;

static const spec_entry spec[] = {
    {"code", NULL, false},       {"code/a.py", "print(1)\n", false},
    {"code/b", NULL, false},     {"code/b/c.sh", "#!/bin/sh\n", true},
    {"empty", NULL, false},      {"skill.toml", "x", false},
    {"code/b/d.txt", "", false},
};

/* Creates spec below root in the order given by idx, with umask mask, owner uid and file
 * times t (0: now). Files are created with open(0666 or 0777) so the umask applies. */
static void build_spec(const char *root, const size_t *idx, mode_t mask, uid_t uid, time_t t)
{
	mode_t old = umask(mask);
	/* In idx order, each entry as soon as its directory exists (so until all are made). */
	for (size_t made = 0; made < ARRAY_SIZE(spec);)
		for (size_t k = 0; k < ARRAY_SIZE(spec); k++) {
			const spec_entry *s = &spec[idx[k]];
			_cleanup_free_ char *p = xasprintf("%s/%s", root, s->path);
			struct stat st;
			if (lstat(p, &st) == 0)
				continue;
			int fd = -1;
			if (!s->text && mkdir(p, 0777) == 0)
				made++;
			else if (s->text && (fd = open(p, O_WRONLY | O_CREAT | O_EXCL,
			                               s->exec ? 0777 : 0666)) >= 0) {
				assert_int_equal(write_all(fd, s->text, strlen(s->text)), 0);
				close(fd);
				made++;
			}
		}
	umask(old);
	for (size_t k = 0; k < ARRAY_SIZE(spec); k++) {
		_cleanup_free_ char *p = xasprintf("%s/%s", root, spec[k].path);
		struct timespec ts[2] = {{t + (time_t)k * 977, 0}, {t + (time_t)k * 13, 0}};
		if (t)
			assert_int_equal(utimensat(AT_FDCWD, p, ts, AT_SYMLINK_NOFOLLOW), 0);
		assert_int_equal(lchown(p, uid, uid), 0);
	}
}

static char *spec_digest(const size_t *idx, mode_t mask, uid_t uid, time_t t)
{
	char *root = tmpdir();
	build_spec(root, idx, mask, uid, t);
	char d[SANDBOX_SKILL_DIGEST_LEN + 1];
	err *e = NULL;
	assert_int_equal(sandbox_skill_digest_dir(root, d, &e), 0);
	rmtree(root);
	return xstrdup(d);
}

static void test_digest_reproducible(void **state)
{
	static const size_t fwd[] = {0, 1, 2, 3, 4, 5, 6}, rev[] = {6, 5, 4, 3, 2, 1, 0},
	                    mix[] = {3, 0, 6, 2, 5, 1, 4};
	_cleanup_free_ char *a = spec_digest(fwd, 022, 0, 0);
	_cleanup_free_ char *b = spec_digest(rev, 077, 1234, 1000000000);
	_cleanup_free_ char *c = spec_digest(mix, 002, 65534, 1700000000);
	assert_string_equal(a, b);
	assert_string_equal(a, c);

	/* The documented list (proto/SKILLS.md, "Digest"), built here by hand. */
	buf want = BUF_INIT;
	char h[PROTO_BLOB_ID_LEN + 1];
	buf_append_str(&want, "aisp-skill-v1\nd 755 code\n");
	proto_blob_id_of("print(1)\n", 9, h);
	buf_appendf(&want, "f 644 %s 9 code/a.py\nd 755 code/b\n", h + 7);
	proto_blob_id_of("#!/bin/sh\n", 10, h);
	buf_appendf(&want, "f 755 %s 10 code/b/c.sh\n", h + 7);
	proto_blob_id_of("", 0, h);
	buf_appendf(&want, "f 644 %s 0 code/b/d.txt\nd 755 empty\n", h + 7);
	proto_blob_id_of("x", 1, h);
	buf_appendf(&want, "f 644 %s 1 skill.toml\n", h + 7);
	proto_blob_id_of(want.data, want.len, h);
	assert_string_equal(a, h);
	buf_deinit(&want);
}

/* What the digest does see: contents, the execute bit, names, empty directories. */
static void test_digest_sensitive(void **state)
{
	char *root = tmpdir();
	static const size_t fwd[] = {0, 1, 2, 3, 4, 5, 6};
	build_spec(root, fwd, 022, 0, 0);
	char base[80], d[80];
	err *e = NULL;
	assert_int_equal(sandbox_skill_digest_dir(root, base, &e), 0);
	put_file(root, "code/a.py", "print(2)\n", 0644);
	assert_int_equal(sandbox_skill_digest_dir(root, d, &e), 0);
	assert_string_not_equal(d, base);
	put_file(root, "code/a.py", "print(1)\n", 0744);
	assert_int_equal(sandbox_skill_digest_dir(root, d, &e), 0);
	assert_string_not_equal(d, base);
	put_file(root, "code/a.py", "print(1)\n", 0644);
	assert_int_equal(sandbox_skill_digest_dir(root, d, &e), 0);
	assert_string_equal(d, base);
	put_dir(root, "empty/more");
	assert_int_equal(sandbox_skill_digest_dir(root, d, &e), 0);
	assert_string_not_equal(d, base);
	rmtree(root);
}

static void expect_walk_error(const char *root, const char *want)
{
	char d[80];
	err *e = NULL;
	assert_int_equal(sandbox_skill_digest_dir(root, d, &e), -1);
	_cleanup_free_ char *full = xasprintf("%s: %s", root, want);
	if (strcmp(err_msg(e), full) && strcmp(err_msg(e), want)) {
		fprintf(stderr, "got:  %s\nwant: %s\n", err_msg(e), full);
		fail();
	}
	err_free(e);
}

static void test_walk_refusals(void **state)
{
	char *root = tmpdir();
	put_dir(root, "code");
	_cleanup_free_ char *l = xasprintf("%s/code/link", root);
	assert_int_equal(symlink("/etc/passwd", l), 0);
	expect_walk_error(root, "code/link: a symbolic link (a skill holds only regular files and "
	                        "directories)");
	assert_int_equal(unlink(l), 0);
	assert_int_equal(symlink("/etc", l), 0);
	expect_walk_error(root, "code/link: a symbolic link (a skill holds only regular files and "
	                        "directories)");
	assert_int_equal(unlink(l), 0);
	assert_int_equal(mkfifo(l, 0644), 0);
	expect_walk_error(root, "code/link: a device, fifo or socket (a skill holds only regular "
	                        "files and directories)");
	assert_int_equal(unlink(l), 0);
	put_file(root, "code/a b", "", 0644);
	expect_walk_error(root, "code/a\\x20b: not a valid skill path (at most 150 bytes; "
	                        "components of at most 100 bytes of [A-Za-z0-9._@+=,~-])");
	_cleanup_free_ char *ab = xasprintf("%s/code/a b", root);
	assert_int_equal(unlink(ab), 0);
	char name[102];
	memset(name, 'n', 101);
	name[101] = '\0';
	put_file(root, name, "", 0644);
	_cleanup_free_ char *msg = xasprintf("%s: not a valid skill path (at most 150 bytes; "
	                                     "components of at most 100 bytes of "
	                                     "[A-Za-z0-9._@+=,~-])",
	                                     name);
	expect_walk_error(root, msg);
	rmtree(root);
}

static void test_walk_caps(void **state)
{
	char *root = tmpdir();
	for (int i = 0; i < SANDBOX_SKILL_FILES_MAX + 1; i++) {
		_cleanup_free_ char *n = xasprintf("f%d", i);
		put_file(root, n, "", 0644);
	}
	expect_walk_error(root, "more than 1000 files and directories (the cap of a skill)");
	rmtree(root);

	root = tmpdir();
	_cleanup_free_ char *big = xasprintf("%s/big", root);
	int fd = open(big, O_WRONLY | O_CREAT, 0644);
	assert_int_equal(ftruncate(fd, (off_t)SANDBOX_SKILL_BYTES_MAX + 1), 0);
	close(fd);
	expect_walk_error(root, "more than 33554432 bytes of files (the cap of a skill)");
	assert_int_equal(truncate(big, SANDBOX_SKILL_BYTES_MAX), 0);
	char d[80];
	err *e = NULL;
	assert_int_equal(sandbox_skill_digest_dir(root, d, &e), 0); /* exactly the cap is fine */
	rmtree(root);

	root = tmpdir();
	buf p = BUF_INIT;
	for (int i = 0; i < SANDBOX_SKILL_DEPTH_MAX + 1; i++) {
		buf_append_str(&p, i ? "/d" : "d");
		put_dir(root, buf_str(&p));
	}
	_cleanup_free_ char *deep =
	    xasprintf("%s: nested more than 16 directories deep (the cap of "
	              "a skill)",
	              buf_str(&p));
	expect_walk_error(root, deep);
	buf_deinit(&p);
	rmtree(root);
}

/* ---- the store ---- */

static size_t count_entries(const char *store, const char *sub)
{
	_cleanup_free_ char *p = xasprintf("%s/%s", store, sub);
	int fd = open(p, O_RDONLY | O_DIRECTORY);
	if (fd < 0)
		return 0;
	skill_tree t;
	/* a walk of a store directory: skills/ holds trees, names/ and tmp/ plain entries */
	size_t n = 0;
	err *e = NULL;
	if (skill_tree_walk(fd, -1, p, &t, &e) == 0) {
		for (size_t i = 0; i < t.n; i++)
			n += strchr(t.v[i].path, '/') == NULL;
		skill_tree_deinit(&t);
	}
	err_free(e);
	close(fd);
	return n;
}

static void export_to(const char *store, const char *ref, buf *out)
{
	char path[] = "/tmp/test-skill-tar.XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	err *e = NULL;
	if (sandbox_skill_export(store, ref, fd, &e) < 0) {
		fprintf(stderr, "export: %s\n", err_msg(e));
		fail();
	}
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	assert_true(read_all(fd, out, 64 << 20) > 0);
	close(fd);
	unlink(path);
}

static int import_bytes(const char *store, const buf *tar, const char *expect, sandbox_skill *out,
                        err **e)
{
	char path[] = "/tmp/test-skill-tar.XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write_all(fd, tar->data, tar->len), 0);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	bool added;
	int r = sandbox_skill_import(store, fd, NULL, expect, false, NULL, out, &added, e);
	close(fd);
	unlink(path);
	return r;
}

static void test_store_round_trip(void **state)
{
	char *root = tmpdir();
	_cleanup_free_ char *src = make_skill(root, "src", NULL);
	_cleanup_free_ char *store = xasprintf("%s/store", root);
	sandbox_skill s;
	bool added;
	err *e = NULL;
	assert_int_equal(sandbox_skill_add(store, src, false, &s, &added, &e), 0);
	assert_true(added);
	assert_int_equal(s.files, 7);
	char d[80];
	assert_int_equal(sandbox_skill_digest_dir(src, d, &e), 0);
	assert_string_equal(s.digest, d);
	_cleanup_free_ char *digest = xstrdup(s.digest);
	sandbox_skill_deinit(&s);
	assert_int_equal(sandbox_skill_add(store, src, false, NULL, &added, &e), 0);
	assert_false(added);

	assert_int_equal(sandbox_skill_resolve(store, digest, &s, &e), 0);
	assert_string_equal(s.manifest.name, "demo");
	struct stat st;
	_cleanup_free_ char *tool = xasprintf("%s/resources/tool.sh", s.dir);
	assert_int_equal(stat(tool, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0755);
	assert_int_equal(stat(s.dir, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0755);
	sandbox_skill_deinit(&s);

	buf tar = BUF_INIT, again = BUF_INIT;
	export_to(store, "demo", &tar);
	export_to(store, digest, &again);
	assert_int_equal(tar.len, again.len);
	assert_memory_equal(tar.data, again.data, tar.len);
	_cleanup_free_ char *gone = NULL;
	assert_int_equal(sandbox_skill_remove(store, "demo", &gone, &e), 0);
	assert_string_equal(gone, digest);
	assert_int_equal(sandbox_skill_resolve(store, "demo", &s, &e), -1);
	_cleanup_free_ char *nf = xasprintf("skill demo is not in the store at %s", store);
	assert_string_equal(err_msg(e), nf);
	assert_int_equal(count_entries(store, "skills"), 0);

	assert_int_equal(import_bytes(store, &tar, digest, &s, &e), 0);
	assert_string_equal(s.digest, digest);
	sandbox_skill_deinit(&s);
	assert_int_equal(sandbox_skill_verify(store, "demo", NULL, &e), 0);
	_cleanup_free_ char *bundle = xasprintf("%s/bundle", root);
	assert_int_equal(sandbox_skill_export_dir(store, "demo", bundle, &e), 0);
	assert_int_equal(sandbox_skill_remove(store, digest, NULL, &e), 0);
	assert_int_equal(sandbox_skill_import(store, -1, bundle, NULL, false, NULL, &s, &added, &e),
	                 0);
	assert_true(added);
	assert_string_equal(s.digest, digest);
	sandbox_skill_deinit(&s);
	buf_deinit(&tar);
	buf_deinit(&again);
	err_free(e);
	rmtree(root);
}

/* The caller's check (aisp skill import's "does the sealed skill open here") sees the
 * unpacked tree; when it refuses, nothing is stored and the store's tmp/ is left empty. */
static int refuse_import(int dirfd, const char *label, void *arg, err **e)
{
	*(bool *)arg = faccessat(dirfd, "skill.toml", F_OK, 0) == 0;
	return err_set(e, 0, "%s: refused by the check", label);
}

static void test_import_check_refuses(void **state)
{
	char *root = tmpdir();
	_cleanup_free_ char *src = make_skill(root, "src", NULL);
	_cleanup_free_ char *store = xasprintf("%s/store", root);
	_cleanup_free_ char *other = xasprintf("%s/other", root);
	_cleanup_free_ char *bundle = xasprintf("%s/bundle", root);
	err *e = NULL;
	assert_int_equal(sandbox_skill_add(other, src, false, NULL, NULL, &e), 0);
	assert_int_equal(sandbox_skill_export_dir(other, "demo", bundle, &e), 0);
	bool saw_tree = false, added = true;
	sandbox_skill_import_check check = {refuse_import, &saw_tree};
	sandbox_skill s = {0};
	assert_int_equal(
	    sandbox_skill_import(store, -1, bundle, NULL, false, &check, &s, &added, &e), -1);
	assert_true(saw_tree);
	_cleanup_free_ char *want = xasprintf("bundle %s: refused by the check", bundle);
	assert_string_equal(err_msg(e), want);
	assert_int_equal(count_entries(store, "skills"), 0);
	assert_int_equal(count_entries(store, "tmp"), 0);
	assert_int_equal(sandbox_skill_resolve(store, "demo", &s, &e), -1);
	err_free(e);
	rmtree(root);
}

/* Two stores fed the same skill made differently export byte-identical bundles. */
static void test_export_reproducible(void **state)
{
	char *root = tmpdir();
	_cleanup_free_ char *a = make_skill(root, "a", NULL);
	_cleanup_free_ char *b = xasprintf("%s/b", root);
	assert_int_equal(mkdir(b, 0700), 0);
	put_dir(b, "resources");
	put_file(b, "resources/tool.sh", "#!/bin/sh\necho hi\n", 0700);
	put_dir(b, "code");
	put_dir(b, "code/pkg");
	put_file(b, "code/pkg/run.py", "def main(args):\n    return args\n", 0600);
	put_file(b, "SKILL.md", "# demo\n", 0600);
	put_file(b, "skill.toml", manifest_text, 0400);
	_cleanup_free_ char *sa = xasprintf("%s/sa", root), *sb = xasprintf("%s/sb", root);
	err *e = NULL;
	assert_int_equal(sandbox_skill_add(sa, a, false, NULL, NULL, &e), 0);
	assert_int_equal(sandbox_skill_add(sb, b, false, NULL, NULL, &e), 0);
	buf ta = BUF_INIT, tb = BUF_INIT;
	export_to(sa, "demo", &ta);
	export_to(sb, "demo", &tb);
	assert_int_equal(ta.len, tb.len);
	assert_memory_equal(ta.data, tb.data, ta.len);
	buf_deinit(&ta);
	buf_deinit(&tb);
	rmtree(root);
}

static void expect_add_error(const char *store, const char *src, const char *want)
{
	err *e = NULL;
	assert_int_equal(sandbox_skill_add(store, src, false, NULL, NULL, &e), -1);
	if (!strstr(err_msg(e), want)) {
		fprintf(stderr, "got:  %s\nwant: ...%s...\n", err_msg(e), want);
		fail();
	}
	err_free(e);
	assert_int_equal(count_entries(store, "skills"), 0);
	assert_int_equal(count_entries(store, "names"), 0);
	assert_int_equal(count_entries(store, "tmp"), 0);
}

static void test_add_refusals(void **state)
{
	char *root = tmpdir();
	_cleanup_free_ char *store = xasprintf("%s/store", root);
	_cleanup_free_ char *bad = make_skill(root, "bad",
	                                      BASE ENTRY "[permissions]\n"
	                                                 "secrets = ['HOME']\n");
	_cleanup_free_ char *want =
	    xasprintf("%s/skill.toml:6: permissions.secrets: \"HOME\" is not", bad);
	expect_add_error(store, bad, want);
	_cleanup_free_ char *noentry = make_skill(root, "noentry", BASE ENTRY);
	expect_add_error(store, noentry,
	                 "skill.toml: entrypoint: code/run.py is not a file of the "
	                 "skill");
	_cleanup_free_ char *sealed =
	    make_skill(root, "sealed", BASE "entrypoint = 'code/pkg/run.py'\nmode = 'sealed'\n");
	expect_add_error(store, sealed,
	                 "a sealed skill holds only skill.toml and skill.age (its code, encrypted "
	                 "to the node");
	_cleanup_free_ char *link = make_skill(root, "link", NULL);
	_cleanup_free_ char *lp = xasprintf("%s/code/pkg/secret", link);
	assert_int_equal(symlink("/etc/shadow", lp), 0);
	expect_add_error(store, link, "code/pkg/secret: a symbolic link");
	_cleanup_free_ char *nomanifest = make_skill(root, "nomanifest", NULL);
	_cleanup_free_ char *mp = xasprintf("%s/skill.toml", nomanifest);
	assert_int_equal(unlink(mp), 0);
	expect_add_error(store, nomanifest,
	                 "skill.toml: missing (every skill has one at its root)");
	rmtree(root);
}

static void test_name_collision(void **state)
{
	char *root = tmpdir();
	_cleanup_free_ char *store = xasprintf("%s/store", root);
	_cleanup_free_ char *v1 = make_skill(root, "v1", NULL);
	_cleanup_free_ char *v2 = make_skill(root, "v2", NULL);
	put_file(v2, "SKILL.md", "# demo, second version\n", 0644);
	sandbox_skill s1, s2;
	err *e = NULL;
	assert_int_equal(sandbox_skill_add(store, v1, false, &s1, NULL, &e), 0);
	assert_int_equal(sandbox_skill_add(store, v2, false, NULL, NULL, &e), -1);
	_cleanup_free_ char *want =
	    xasprintf("skill demo is already in the store as %s; remove it "
	              "first (aisp skill rm demo) or replace it (--replace)",
	              s1.digest);
	assert_string_equal(err_msg(e), want);
	assert_int_equal(count_entries(store, "skills"), 1);
	assert_int_equal(count_entries(store, "tmp"), 0);
	assert_int_equal(sandbox_skill_add(store, v2, true, &s2, NULL, &e), 0);
	assert_string_not_equal(s1.digest, s2.digest);
	assert_int_equal(count_entries(store, "skills"), 1); /* the replaced tree is gone */
	sandbox_skill r;
	assert_int_equal(sandbox_skill_resolve(store, "demo", &r, &e), 0);
	assert_string_equal(r.digest, s2.digest);
	sandbox_skill_deinit(&r);
	assert_int_equal(sandbox_skill_resolve(store, s1.digest, &r, &e), -1);
	sandbox_skill_deinit(&s1);
	sandbox_skill_deinit(&s2);
	err_free(e);
	rmtree(root);
}

/* ---- bundles that must be refused ---- */

static void expect_import_error(const char *store, const buf *tar, const char *expect,
                                const char *want)
{
	sandbox_skill s;
	err *e = NULL;
	assert_int_equal(import_bytes(store, tar, expect, &s, &e), -1);
	if (!strstr(err_msg(e), want)) {
		fprintf(stderr, "got:  %s\nwant: ...%s...\n", err_msg(e), want);
		fail();
	}
	err_free(e);
	assert_int_equal(count_entries(store, "skills"), 0);
	assert_int_equal(count_entries(store, "names"), 0);
	assert_int_equal(count_entries(store, "tmp"), 0);
}

/* An archive of the given members, built with the writer (to craft bad bundles). */
static void craft(buf *out, const char *digest, const char *const *paths, const char *const *texts,
                  size_t n)
{
	buf_reset(out);
	err *e = NULL;
	if (digest)
		assert_int_equal(skill_tar_add(out, "digest", false, false, (const uint8_t *)digest,
		                               strlen(digest), &e),
		                 0);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(skill_tar_add(out, paths[i], !texts[i], false,
		                               (const uint8_t *)texts[i],
		                               texts[i] ? strlen(texts[i]) : 0, &e),
		                 0);
	skill_tar_finish(out);
}

/* The header of member k (0-based, each member here is one header + at most one block). */
static uint8_t *header_at(buf *tar, size_t off)
{
	return tar->data + off;
}

static void fix_checksum(uint8_t *h)
{
	unsigned sum = 0;
	memset(h + 148, ' ', 8);
	for (size_t i = 0; i < 512; i++)
		sum += h[i];
	char ck[8];
	snprintf(ck, sizeof(ck), "%06o", sum);
	memcpy(h + 148, ck, 7);
}

static void test_import_refusals(void **state)
{
	char *root = tmpdir();
	_cleanup_free_ char *src = make_skill(root, "src", NULL);
	_cleanup_free_ char *sa = xasprintf("%s/a", root), *sb = xasprintf("%s/b", root);
	sandbox_skill s;
	err *e = NULL;
	assert_int_equal(sandbox_skill_add(sa, src, false, &s, NULL, &e), 0);
	buf tar = BUF_INIT, bad = BUF_INIT;
	export_to(sa, "demo", &tar);

	buf_append(&bad, tar.data, tar.len);
	uint8_t *hit = memmem(bad.data, bad.len, "return args", 11);
	hit[0] = 'R'; /* a file's contents changed in transit */
	_cleanup_free_ char *hashes = xasprintf("archive: the files hash to");
	expect_import_error(sb, &bad, NULL, hashes);
	_cleanup_free_ char *other = xasprintf("sha256:%064d", 0);
	expect_import_error(sb, &tar, other, "the bundle is skill");
	expect_import_error(sb, &tar, "sha256:XYZ", "invalid skill digest");
	buf_reset(&bad);
	buf_append(&bad, tar.data, tar.len - 1024 - 512); /* cut inside the last member */
	expect_import_error(sb, &bad, NULL, "archive: ");
	buf_reset(&bad);
	buf_append(&bad, tar.data, tar.len);
	bad.data[0] ^= 1; /* the first header's name: its checksum no longer matches */
	expect_import_error(sb, &bad, NULL, "archive: member 1: bad header checksum");

	const char *p1[] = {"skill", "skill/../etc"}, *t1[] = {NULL, "x"};
	craft(&bad, s.digest, p1, t1, 2);
	expect_import_error(sb, &bad, NULL, "archive: skill/../etc: not a valid skill path");
	const char *p2[] = {"skill", "other"}, *t2[] = {NULL, "x"};
	craft(&bad, s.digest, p2, t2, 2);
	expect_import_error(sb, &bad, NULL,
	                    "archive: unexpected member other (a bundle holds "
	                    "digest and skill/)");
	const char *p3[] = {"skill", "skill/a/b"}, *t3[] = {NULL, "x"};
	craft(&bad, s.digest, p3, t3, 2);
	expect_import_error(sb, &bad, NULL,
	                    "archive: skill/a/b: its directory is not in the "
	                    "archive before it");
	const char *p4[] = {"skill", "skill/a", "skill/a"}, *t4[] = {NULL, "x", "y"};
	craft(&bad, s.digest, p4, t4, 3);
	expect_import_error(sb, &bad, NULL, "archive: skill/a: listed twice");
	const char *p5[] = {"skill"}, *t5[] = {NULL};
	craft(&bad, NULL, p5, t5, 1);
	expect_import_error(sb, &bad, NULL, "archive: not a skill bundle (no digest member)");
	craft(&bad, "sha256:abc\n", p5, t5, 1);
	expect_import_error(sb, &bad, NULL, "archive: digest: expected sha256: and 64 lower-case");

	const char *p6[] = {"skill", "skill/x"}, *t6[] = {NULL, ""};
	craft(&bad, s.digest, p6, t6, 2);
	uint8_t *h = header_at(&bad, 1024 + 512); /* after digest (header + data), skill/ */
	h[156] = '2';                             /* a symbolic link */
	memcpy(h + 157, "/etc/shadow", 11);
	fix_checksum(h);
	expect_import_error(sb, &bad, NULL, "archive: member 3 (skill/x): a symbolic link");
	h[156] = '1';
	fix_checksum(h);
	expect_import_error(sb, &bad, NULL, "archive: member 3 (skill/x): a hard link");
	h[156] = 'x';
	fix_checksum(h);
	expect_import_error(sb, &bad, NULL, "a pax extended header");
	h[156] = '3';
	fix_checksum(h);
	expect_import_error(sb, &bad, NULL, "a device");
	buf_deinit(&tar);
	buf_deinit(&bad);
	sandbox_skill_deinit(&s);
	rmtree(root);
}

/* A stored tree changed behind the store's back fails verify and export; a tree others can
 * write is not used. */
static void test_store_tampering(void **state)
{
	char *root = tmpdir();
	_cleanup_free_ char *src = make_skill(root, "src", NULL);
	_cleanup_free_ char *store = xasprintf("%s/store", root);
	sandbox_skill s;
	err *e = NULL;
	assert_int_equal(sandbox_skill_add(store, src, false, &s, NULL, &e), 0);
	put_file(s.dir, "code/pkg/run.py", "import os\n", 0644);
	assert_int_equal(sandbox_skill_verify(store, "demo", NULL, &e), -1);
	assert_non_null(strstr(err_msg(e), "skill demo: the stored files hash to"));
	char path[] = "/tmp/test-skill-tar.XXXXXX";
	int fd = mkstemp(path);
	assert_int_equal(sandbox_skill_export(store, "demo", fd, &e), -1);
	assert_non_null(strstr(err_msg(e), "the stored files hash to"));
	close(fd);
	unlink(path);
	assert_int_equal(chmod(s.dir, 0775), 0);
	sandbox_skill r;
	assert_int_equal(sandbox_skill_resolve(store, "demo", &r, &e), -1);
	assert_non_null(strstr(err_msg(e), "is not owned by uid 0 or is writable by others"));
	assert_int_equal(sandbox_skill_resolve(store, "../demo", &r, &e), -1);
	assert_string_equal(err_msg(e), "invalid skill name \"../demo\"");
	sandbox_skill_deinit(&s);
	err_free(e);
	rmtree(root);
}

static void test_list(void **state)
{
	char *root = tmpdir();
	_cleanup_free_ char *store = xasprintf("%s/store", root);
	sandbox_skill *v;
	size_t n;
	err *e = NULL;
	assert_int_equal(sandbox_skill_list(store, true, &v, &n, &e), 0); /* no store: empty */
	assert_int_equal(n, 0);
	_cleanup_free_ char *a = make_skill(root, "a", NULL);
	_cleanup_free_ char *b =
	    make_skill(root, "b",
	               "name = \"alpha\"\nversion = \"3.1.4\"\nlanguage = \"python\"\n"
	               "entrypoint = \"code/pkg/run.py\"\n");
	assert_int_equal(sandbox_skill_add(store, a, false, NULL, NULL, &e), 0);
	assert_int_equal(sandbox_skill_add(store, b, false, NULL, NULL, &e), 0);
	assert_int_equal(sandbox_skill_list(store, true, &v, &n, &e), 0);
	assert_int_equal(n, 2);
	assert_string_equal(v[0].manifest.name, "alpha");
	assert_string_equal(v[1].manifest.name, "demo");
	assert_int_equal(v[1].files, 7);
	sandbox_skill_list_free(v, n);
	assert_int_equal(sandbox_skill_list(store, false, &v, &n, &e), 0); /* manifests only */
	assert_int_equal(n, 2);
	assert_string_equal(v[1].digest + 7, strrchr(v[1].dir, '/') + 1);
	assert_int_equal(v[1].files, 0);
	sandbox_skill_list_free(v, n);
	rmtree(root);
}

/* The plaintext of a sealed skill's skill.age: checked against the public manifest, unpacked
 * into SKILL_FILE entries with the root as 's'; every malformed archive refused by name and
 * leaving the payload as it was. */
#define SEALED_TOML BASE ENTRY "mode = \"sealed\"\n"

static void expect_unpack_error(const char *const *paths, const char *const *texts, size_t n,
                                const sandbox_skill_manifest *m, const char *want)
{
	buf tar = BUF_INIT;
	craft(&tar, NULL, paths, texts, n);
	sandbox_payload p = {0};
	err *e = NULL;
	assert_int_equal(sandbox_skill_sealed_unpack(tar.data, tar.len, SEALED_TOML,
	                                             strlen(SEALED_TOML), m, &p, &e),
	                 -1);
	if (!strstr(err_msg(e), want))
		fail_msg("got \"%s\", want \"%s\"", err_msg(e), want);
	assert_int_equal(p.n_files, 0);
	err_free(e);
	buf_deinit(&tar);
}

static void test_sealed_unpack(void **state)
{
	sandbox_skill_manifest m;
	err *e = NULL;
	assert_int_equal(
	    sandbox_skill_manifest_parse("t", SEALED_TOML, strlen(SEALED_TOML), &m, &e), 0);
	const char *paths[] = {"skill.toml", "code", "code/run.py"};
	const char *texts[] = {SEALED_TOML, NULL, "def main(a): return 1\n"};
	buf tar = BUF_INIT;
	craft(&tar, NULL, paths, texts, 3);
	sandbox_payload p = {0};
	assert_int_equal(sandbox_skill_sealed_unpack(tar.data, tar.len, SEALED_TOML,
	                                             strlen(SEALED_TOML), &m, &p, &e),
	                 0);
	assert_int_equal(p.n_files, 4);
	assert_int_equal(p.files[0].kind, 's');
	assert_string_equal(p.files[0].path, "demo");
	assert_string_equal(p.files[3].path, "demo/code/run.py");
	assert_int_equal(p.files[3].kind, 'f');
	assert_int_equal(p.bytes, strlen(SEALED_TOML) + strlen(texts[2]));
	sandbox_payload_deinit(&p);
	buf_deinit(&tar);

	const char *other = BASE ENTRY "mode = \"sealed\"\ndescription = \"x\"\n";
	const char *t1[] = {other, NULL, "x"};
	expect_unpack_error(paths, t1, 3, &m, "not the skill's public skill.toml");
	expect_unpack_error(paths, texts, 2, &m,
	                    "entrypoint: code/run.py is not a file of the sealed skill");
	const char *p2[] = {"code/run.py", "skill.toml"};
	const char *t2[] = {"x", SEALED_TOML};
	expect_unpack_error(p2, t2, 2, &m, "code/run.py: its directory is not in the archive");
	const char *p3[] = {"skill.toml", "code", "code", "code/run.py"};
	const char *t3[] = {SEALED_TOML, NULL, NULL, "x"};
	expect_unpack_error(p3, t3, 4, &m, "code: listed twice");
	const char *p4[] = {"skill.toml", "code", "code/run.py", "code/a b"};
	const char *t4[] = {SEALED_TOML, NULL, "x", "y"};
	expect_unpack_error(p4, t4, 4, &m, "code/a\\x20b: not a valid skill path");
	const char *p5[] = {"code"};
	const char *t5[] = {NULL};
	expect_unpack_error(p5, t5, 1, &m, "skill.toml: missing from the sealed archive");
	buf junk = BUF_INIT;
	buf_append(&junk, "not a tar at all", 16);
	sandbox_payload q = {0};
	assert_int_equal(sandbox_skill_sealed_unpack(junk.data, junk.len, SEALED_TOML,
	                                             strlen(SEALED_TOML), &m, &q, &e),
	                 -1);
	assert_non_null(strstr(err_msg(e), "sealed skill demo: archive:"));
	err_free(e);
	buf_deinit(&junk);
	sandbox_skill_manifest_deinit(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_toml_accepts),
	    cmocka_unit_test(test_toml_errors),
	    cmocka_unit_test(test_toml_caps),
	    cmocka_unit_test(test_manifest_example),
	    cmocka_unit_test(test_manifest_errors),
	    cmocka_unit_test(test_digest_reproducible),
	    cmocka_unit_test(test_digest_sensitive),
	    cmocka_unit_test(test_walk_refusals),
	    cmocka_unit_test(test_walk_caps),
	    cmocka_unit_test(test_store_round_trip),
	    cmocka_unit_test(test_import_check_refuses),
	    cmocka_unit_test(test_export_reproducible),
	    cmocka_unit_test(test_add_refusals),
	    cmocka_unit_test(test_name_collision),
	    cmocka_unit_test(test_import_refusals),
	    cmocka_unit_test(test_store_tampering),
	    cmocka_unit_test(test_list),
	    cmocka_unit_test(test_sealed_unpack),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
