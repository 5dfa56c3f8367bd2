/* aisp skill: the node's skill store (sandbox/sandbox.h, "skills"; proto/SKILLS.md): add a
 * skill directory, list, show, verify, export and import bundles between nodes, remove.
 *
 * Store: --store DIR, else $AISP_SKILL_STORE, else /var/lib/aisp/skills. Exit status: 0 done,
 * 1 refused or failed (the message says why), 2 usage. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/skill.h"
#include "common/cleanup.h"
#include "common/err.h"
#include "common/xalloc.h"
#include "sandbox/sandbox.h"

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: aisp skill add DIR [--replace] [-i IDENTITY]\n"
	    "                                           validate DIR/skill.toml, store the skill\n"
	    "                                           (a sealed one is opened with -i and "
	    "checked)\n"
	    "       aisp skill seal DIR --to RECIPIENT [--to ...] [-R FILE] -o OUT\n"
	    "                                           seal DIR (mode = \"sealed\") to a node: "
	    "OUT\n"
	    "                                           gets skill.toml and skill.age\n"
	    "       aisp skill ls                       list the stored skills\n"
	    "       aisp skill show NAME|DIGEST         a skill's manifest and tree\n"
	    "       aisp skill verify NAME|DIGEST [-i IDENTITY]\n"
	    "                                           recompute a stored skill's digest (and "
	    "open\n"
	    "                                           a sealed one with -i)\n"
	    "       aisp skill digest DIR               the digest DIR would be stored under\n"
	    "       aisp skill export NAME|DIGEST FILE|- [--dir]\n"
	    "                                           write its bundle (a tar, or a directory)\n"
	    "       aisp skill import FILE|DIR|- [--digest sha256:...] [--replace] [-i IDENTITY]\n"
	    "                                           store a bundle, checking its digest (a\n"
	    "                                           sealed one is opened with -i and checked)\n"
	    "       aisp skill rm NAME|DIGEST           remove a skill\n"
	    "options: --store DIR (else $AISP_SKILL_STORE, else %s)\n",
	    SANDBOX_SKILL_STORE_DEFAULT);
}

typedef struct opts {
	const char *store;
	const char *digest;
	const char *out;
	bool replace, dir;
	cli_recipients rs;
	attest_age_identity **ids;
	size_t n_ids;
} opts;

static int fail(const err *e)
{
	fprintf(stderr, "aisp skill: %s\n", err_msg(e));
	return 1;
}

static void print_list(const char *label, char *const *v, size_t n)
{
	printf("%-12s", label);
	for (size_t i = 0; i < n; i++)
		printf("%s%s", i ? ", " : "", v[i]);
	printf("%s\n", n ? "" : "(none)");
}

static void print_skill(const sandbox_skill *s)
{
	const sandbox_skill_manifest *m = &s->manifest;
	printf("name        %s\nversion     %s\ndigest      %s\n", m->name, m->version, s->digest);
	printf("language    %s\nentrypoint  %s:%s\n", proto_lang_name(m->lang), m->entry_path,
	       m->entry_func);
	printf("mode        %s\n", m->mode == SANDBOX_SKILL_SEALED ? "sealed" : "source");
	print_list("secrets", m->secrets, m->n_secrets);
	print_list("services", m->services, m->n_services);
	if (m->description)
		printf("description %s\n", m->description);
	if (m->mode == SANDBOX_SKILL_SEALED)
		printf("code        sealed: only in " SANDBOX_SKILL_SEALED_FILE
		       ", encrypted to the node; never shown or exported in the clear\n");
	printf("tree        %s (%llu entries, %llu bytes)\n", s->dir, (unsigned long long)s->files,
	       (unsigned long long)s->bytes);
}

static int skill_add(const opts *o, const char *dir)
{
	_cleanup_err_ err *e = NULL;
	sandbox_skill s;
	bool added = false;
	if (cli_skill_check_sealed_dir(dir, o->ids, o->n_ids, &e) < 0 ||
	    sandbox_skill_add(o->store, dir, o->replace, &s, &added, &e) < 0)
		return fail(e);
	printf("%s %s %s %s (%llu entries, %llu bytes)\n", added ? "added" : "unchanged",
	       s.manifest.name, s.manifest.version, s.digest, (unsigned long long)s.files,
	       (unsigned long long)s.bytes);
	sandbox_skill_deinit(&s);
	return 0;
}

static int skill_ls(const opts *o)
{
	_cleanup_err_ err *e = NULL;
	sandbox_skill *v;
	size_t n;
	if (sandbox_skill_list(o->store, true, &v, &n, &e) < 0)
		return fail(e);
	printf("%-24s %-12s %-10s %-71s %s\n", "NAME", "VERSION", "LANGUAGE", "DIGEST", "BYTES");
	for (size_t i = 0; i < n; i++)
		printf("%-24s %-12s %-10s %-71s %llu\n", v[i].manifest.name, v[i].manifest.version,
		       proto_lang_name(v[i].manifest.lang), v[i].digest,
		       (unsigned long long)v[i].bytes);
	sandbox_skill_list_free(v, n);
	return 0;
}

/* show and verify both recompute the digest: what they print is what is stored. */
static int skill_show(const opts *o, const char *ref, bool full)
{
	_cleanup_err_ err *e = NULL;
	sandbox_skill s;
	if (sandbox_skill_verify(o->store, ref, &s, &e) < 0)
		return fail(e);
	bool open_sealed = !full && o->n_ids && s.manifest.mode == SANDBOX_SKILL_SEALED;
	if (open_sealed && cli_skill_check_sealed_dir(s.dir, o->ids, o->n_ids, &e) < 0) {
		sandbox_skill_deinit(&s);
		return fail(e);
	}
	if (full)
		print_skill(&s);
	else
		printf("ok %s %s%s\n", s.manifest.name, s.digest,
		       open_sealed ? " (sealed: opened and checked)" : "");
	sandbox_skill_deinit(&s);
	return 0;
}

static int skill_digest(const char *dir)
{
	_cleanup_err_ err *e = NULL;
	char d[SANDBOX_SKILL_DIGEST_LEN + 1];
	if (sandbox_skill_digest_dir(dir, d, &e) < 0)
		return fail(e);
	printf("%s\n", d);
	return 0;
}

/* Writes the archive to FILE through a temporary beside it, renamed when complete. */
static int export_file(const opts *o, const char *ref, const char *file, err **e)
{
	if (!strcmp(file, "-"))
		return sandbox_skill_export(o->store, ref, STDOUT_FILENO, e);
	_cleanup_free_ char *tmp = xasprintf("%s.tmp.%d", file, (int)getpid());
	_cleanup_close_ int fd =
	    open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0)
		return err_set(e, errno, "create %s", tmp);
	int r = sandbox_skill_export(o->store, ref, fd, e);
	if (r == 0 && fsync(fd) < 0)
		r = err_set(e, errno, "write %s", tmp);
	if (r == 0 && rename(tmp, file) < 0)
		r = err_set(e, errno, "rename %s to %s", tmp, file);
	if (r < 0)
		unlink(tmp);
	return r;
}

static int skill_export(const opts *o, const char *ref, const char *dest)
{
	_cleanup_err_ err *e = NULL;
	int r = o->dir ? sandbox_skill_export_dir(o->store, ref, dest, &e)
	               : export_file(o, ref, dest, &e);
	if (r < 0)
		return fail(e);
	if (strcmp(dest, "-") != 0)
		fprintf(stderr, "exported %s to %s\n", ref, dest);
	return 0;
}

static int check_import(int dirfd, const char *label, void *arg, err **e)
{
	const opts *o = arg;
	return cli_skill_check_sealed_at(dirfd, label, o->ids, o->n_ids, e);
}

static int skill_import(const opts *o, const char *src)
{
	_cleanup_err_ err *e = NULL;
	struct stat st;
	bool is_dir = strcmp(src, "-") != 0 && stat(src, &st) == 0 && S_ISDIR(st.st_mode);
	_cleanup_close_ int fd = -1;
	if (!is_dir && strcmp(src, "-") != 0 && (fd = open(src, O_RDONLY | O_CLOEXEC)) < 0) {
		err_set(&e, errno, "%s", src);
		return fail(e);
	}
	sandbox_skill s;
	bool added = false;
	int in = fd >= 0 ? fd : STDIN_FILENO;
	sandbox_skill_import_check check = {check_import, (void *)o};
	if (sandbox_skill_import(o->store, in, is_dir ? src : NULL, o->digest, o->replace, &check,
	                         &s, &added, &e) < 0)
		return fail(e);
	printf("%s %s %s %s\n", added ? "imported" : "unchanged", s.manifest.name,
	       s.manifest.version, s.digest);
	sandbox_skill_deinit(&s);
	return 0;
}

static int skill_seal(const opts *o, const char *dir)
{
	_cleanup_err_ err *e = NULL;
	if (cli_skill_seal(dir, &o->rs, o->out, &e) < 0)
		return fail(e);
	char d[SANDBOX_SKILL_DIGEST_LEN + 1];
	if (sandbox_skill_digest_dir(o->out, d, &e) < 0)
		return fail(e);
	printf("sealed %s to %zu recipient%s: %s (digest %s)\n", dir, o->rs.n,
	       o->rs.n == 1 ? "" : "s", o->out, d);
	return 0;
}

static int skill_rm(const opts *o, const char *ref)
{
	_cleanup_err_ err *e = NULL;
	_cleanup_free_ char *digest = NULL;
	if (sandbox_skill_remove(o->store, ref, &digest, &e) < 0)
		return fail(e);
	printf("removed %s %s\n", ref, digest);
	return 0;
}

enum { OPT_TO = 256 };

/* The keys and the output: -i IDENTITY (add, verify), --to RECIPIENT and -R FILE (seal), -o
 * OUT (seal). Returns 0 when c was one of them, 1 when not; a bad one exits with status 1. */
static int option_key(opts *o, int c)
{
	_cleanup_err_ err *e = NULL;
	attest_age_identity **more = NULL;
	size_t n_more = 0;
	int r = 0;
	if (c == 'i' && (r = attest_age_identities_load(optarg, &more, &n_more, &e)) == 0) {
		o->ids = xreallocarray(o->ids, o->n_ids + n_more, sizeof(*o->ids));
		memcpy(o->ids + o->n_ids, more, n_more * sizeof(*more));
		o->n_ids += n_more;
		free(more);
	} else if (c == OPT_TO) {
		r = cli_recipients_add(&o->rs, optarg, &e);
	} else if (c == 'R') {
		r = cli_recipients_add_file(&o->rs, optarg, &e);
	} else if (c == 'o') {
		o->out = optarg;
	} else if (c != 'i') {
		return 1;
	}
	if (r < 0)
		exit(fail(e));
	return 0;
}

static int parse_opts(int argc, char **argv, opts *o)
{
	static const struct option lopts[] = {
	    {"store", required_argument, NULL, 's'},
	    {"digest", required_argument, NULL, 'd'},
	    {"replace", no_argument, NULL, 'r'},
	    {"dir", no_argument, NULL, 'D'},
	    {"identity", required_argument, NULL, 'i'},
	    {"to", required_argument, NULL, OPT_TO},
	    {"recipients-file", required_argument, NULL, 'R'},
	    {"output", required_argument, NULL, 'o'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	*o = (opts){.store = getenv("AISP_SKILL_STORE")};
	int c;
	optind = 0;
	while ((c = getopt_long(argc, argv, "s:d:rDhi:R:o:", lopts, NULL)) != -1) {
		if (option_key(o, c) == 0)
			continue;
		switch (c) {
		case 's':
			o->store = optarg;
			break;
		case 'd':
			o->digest = optarg;
			break;
		case 'r':
			o->replace = true;
			break;
		case 'D':
			o->dir = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	return -1;
}

static int dispatch(const opts *o, int argc, char **argv);

int cmd_skill(int argc, char **argv)
{
	opts o;
	int rc = parse_opts(argc, argv, &o);
	if (rc < 0)
		rc = dispatch(&o, argc, argv);
	attest_age_identities_free(o.ids, o.n_ids);
	return rc;
}

static int dispatch(const opts *o, int argc, char **argv)
{
	const char *sub = optind < argc ? argv[optind] : "";
	char **pos = argv + optind + 1;
	int npos = argc - optind - 1;
	if (!strcmp(sub, "add") && npos == 1)
		return skill_add(o, pos[0]);
	if (!strcmp(sub, "seal") && npos == 1)
		return skill_seal(o, pos[0]);
	if ((!strcmp(sub, "ls") || !strcmp(sub, "list")) && npos == 0)
		return skill_ls(o);
	if (!strcmp(sub, "show") && npos == 1)
		return skill_show(o, pos[0], true);
	if (!strcmp(sub, "verify") && npos == 1)
		return skill_show(o, pos[0], false);
	if (!strcmp(sub, "digest") && npos == 1)
		return skill_digest(pos[0]);
	if (!strcmp(sub, "export") && npos == 2)
		return skill_export(o, pos[0], pos[1]);
	if (!strcmp(sub, "import") && npos == 1)
		return skill_import(o, pos[0]);
	if ((!strcmp(sub, "rm") || !strcmp(sub, "remove")) && npos == 1)
		return skill_rm(o, pos[0]);
	usage(stderr);
	return 2;
}
