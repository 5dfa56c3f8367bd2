/* aisp image: build, list, export and import sandbox images. The store is changed only by the
 * scripts in images/ (build-image.sh, export-image.sh, import-image.sh), run through the spawn
 * helper; this file finds them, picks the store, and reads the store to list it.
 *
 * Store: --store DIR, else $AISP_IMAGE_STORE, else /var/lib/aisp/images.
 * Scripts: $AISP_IMAGES_DIR, else <datadir>/aisp/images (AISP_DATADIR, installed), else
 * <source>/images (AISP_SOURCE_DIR, running from a build tree). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/cleanup.h"
#include "common/err.h"
#include "common/spawn.h"
#include "common/xalloc.h"
#include "sandbox/image.h"

#define BUILD_TIMEOUT_MS (60LL * 60 * 1000)
#define OTHER_TIMEOUT_MS (20LL * 60 * 1000)

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: aisp image build NAME [--force] [--store DIR]\n"
	        "       aisp image ls [--store DIR]\n"
	        "       aisp image export NAME FILE [--store DIR]\n"
	        "       aisp image import FILE [--store DIR]\n"
	        "\n"
	        "The store is --store DIR, else $AISP_IMAGE_STORE, else %s.\n"
	        "build skips an image the store already has unless --force; its recipe is\n"
	        "images/NAME.recipe.\n",
	        SANDBOX_IMAGE_STORE_DEFAULT);
}

static bool has_script(const char *dir)
{
	_cleanup_free_ char *p = xasprintf("%s/build-image.sh", dir);
	return access(p, R_OK) == 0;
}

/* The folder holding the image scripts (owned), or NULL with *e. */
static char *images_dir(err **e)
{
	const char *env = getenv("AISP_IMAGES_DIR");
	if (env && *env) {
		if (!has_script(env))
			return err_set(e, 0, "AISP_IMAGES_DIR=%s has no build-image.sh", env), NULL;
		return xstrdup(env);
	}
	const char *candidates[] = {
#ifdef AISP_DATADIR
	    AISP_DATADIR "/aisp/images",
#endif
#ifdef AISP_SOURCE_DIR
	    AISP_SOURCE_DIR "/images",
#endif
	    "/usr/local/share/aisp/images",
	    "/usr/share/aisp/images",
	};
	for (size_t i = 0; i < ARRAY_SIZE(candidates); i++)
		if (has_script(candidates[i]))
			return xstrdup(candidates[i]);
	err_set(e, 0, "cannot find the image scripts (build-image.sh); set AISP_IMAGES_DIR");
	return NULL;
}

/* Runs images/<script> with args; passes its stdout through. Returns the exit status for
 * the command (0, or 1 with the script's stderr printed). */
static int run_script(const char *script, const char *const *args, size_t nargs, int64_t timeout)
{
	_cleanup_err_ err *e = NULL;
	_cleanup_free_ char *dir = images_dir(&e);
	if (!dir) {
		fprintf(stderr, "aisp image: %s\n", err_msg(e));
		return 1;
	}
	_cleanup_free_ char *path = xasprintf("%s/%s", dir, script);
	_cleanup_free_ const char **argv = xcalloc(nargs + 3, sizeof(*argv));
	argv[0] = "bash";
	argv[1] = path;
	for (size_t i = 0; i < nargs; i++)
		argv[i + 2] = args[i];

	spawn_opts o = SPAWN_OPTS_INIT;
	o.argv = argv;
	o.timeout_ms = timeout;
	o.capture_max = 1 << 20;
	spawn_result r = {0};
	if (spawn_run(&o, &r, &e) < 0) {
		fprintf(stderr, "aisp image: %s: %s\n", script, err_msg(e));
		return 1;
	}
	fwrite(r.out, 1, r.out_len, stdout);
	int rc = 0;
	if (r.status != 0) {
		if (r.timed_out || !r.err_len) {
			_cleanup_free_ char *what = spawn_describe(&r);
			fprintf(stderr, "aisp image: %s %s\n", script, what);
		} else {
			fprintf(stderr, "aisp image: %s\n", r.errout);
		}
		rc = 1;
	}
	spawn_result_deinit(&r);
	return rc;
}

/* Sum of the sizes of the regular files and symlinks below dirfd (never following links). */
static int tree_size(int dirfd, uint64_t *total)
{
	DIR *d = fdopendir(dirfd);
	if (!d) {
		close(dirfd);
		return -1;
	}
	int rc = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		struct stat st;
		if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			rc = -1;
			continue;
		}
		if (S_ISREG(st.st_mode) || S_ISLNK(st.st_mode)) {
			*total += (uint64_t)st.st_size;
		} else if (S_ISDIR(st.st_mode)) {
			int sub = openat(dirfd, de->d_name,
			                 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub < 0 || tree_size(sub, total) < 0)
				rc = -1;
		}
	}
	closedir(d);
	return rc;
}

static void human_size(uint64_t n, char *out, size_t len)
{
	const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	double v = (double)n;
	size_t u = 0;
	while (v >= 1024 && u + 1 < ARRAY_SIZE(units)) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(out, len, "%llu B", (unsigned long long)n);
	else
		snprintf(out, len, "%.1f %s", v, units[u]);
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int image_ls(const char *store)
{
	_cleanup_free_ char *names_path = xasprintf("%s/names", store);
	DIR *d = opendir(names_path);
	if (!d && errno != ENOENT) {
		fprintf(stderr, "aisp image: image store %s: %s\n", store, strerror(errno));
		return 1;
	}
	char **names = NULL;
	size_t n = 0;
	struct dirent *de;
	while (d && (de = readdir(d)))
		if (sandbox_image_name_valid(de->d_name)) {
			names = xreallocarray(names, n + 1, sizeof(*names));
			names[n++] = xstrdup(de->d_name);
		}
	if (d)
		closedir(d);
	if (n)
		qsort(names, n, sizeof(*names), name_cmp);

	int rc = 0;
	printf("%-24s %-71s %s\n", "NAME", "DIGEST", "SIZE");
	for (size_t i = 0; i < n; i++) {
		_cleanup_err_ err *e = NULL;
		sandbox_image img = SANDBOX_IMAGE_INIT;
		if (sandbox_image_resolve(store, names[i], &img, &e) < 0) {
			fprintf(stderr, "aisp image: %s\n", err_msg(e));
			rc = 1;
		} else {
			uint64_t total = 0;
			char size[32] = "?";
			int fd = open(img.rootfs, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			if (fd >= 0 && tree_size(fd, &total) == 0)
				human_size(total, size, sizeof(size));
			printf("%-24s %-71s %s\n", img.name, img.digest, size);
		}
		sandbox_image_deinit(&img);
		free(names[i]);
	}
	free(names);
	return rc;
}

static int image_build(const char *store, const char *name, bool force)
{
	if (!sandbox_image_name_valid(name)) {
		fprintf(stderr,
		        "aisp image: invalid image name \"%s\" (expected "
		        "[a-z0-9][a-z0-9._-]{0,63})\n",
		        name);
		return 2;
	}
	/* The script decides whether the store's copy is current (same recipe and scripts). */
	if (!force)
		setenv("AISP_IMAGE_CACHED_OK", "1", 1);
	const char *args[] = {name, store};
	return run_script("build-image.sh", args, ARRAY_SIZE(args), BUILD_TIMEOUT_MS);
}

int cmd_image(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"store", required_argument, NULL, 's'},
	    {"force", no_argument, NULL, 'f'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *store = getenv("AISP_IMAGE_STORE");
	bool force = false;
	int c;
	/* Options may come before or after the subcommand and its arguments (getopt permutes). */
	optind = 0;
	while ((c = getopt_long(argc, argv, "s:fh", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			store = optarg;
			break;
		case 'f':
			force = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!store || !*store)
		store = SANDBOX_IMAGE_STORE_DEFAULT;
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	const char *sub = argv[optind];
	char **pos = argv + optind + 1;
	int npos = argc - optind - 1;

	if (!strcmp(sub, "build") && npos == 1)
		return image_build(store, pos[0], force);
	if ((!strcmp(sub, "ls") || !strcmp(sub, "list")) && npos == 0)
		return image_ls(store);
	if (!strcmp(sub, "export") && npos == 2) {
		const char *args[] = {pos[0], pos[1], store};
		return run_script("export-image.sh", args, ARRAY_SIZE(args), OTHER_TIMEOUT_MS);
	}
	if (!strcmp(sub, "import") && npos == 1) {
		const char *args[] = {pos[0], store};
		return run_script("import-image.sh", args, ARRAY_SIZE(args), OTHER_TIMEOUT_MS);
	}
	usage(stderr);
	return 2;
}
