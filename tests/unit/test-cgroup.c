/* Unit tests for the cgroup backends (sandbox/cgroup.h): v1 and v2 against fixture trees laid
 * out like the kernel's (tests/unit/fixtures/cgroup-v*), copied to a temporary root for each
 * test; detection against the host's own mounts; and the v2 backend against this host's live
 * cgroup2 mount where there is one (on a hybrid host: /sys/fs/cgroup/unified, which has no
 * controllers, so only cpu.stat, creation and removal are live). The v1 backend is exercised
 * live by the sandbox and pool integration suites. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "sandbox/cgroup.h"

#define ID      "aisp-t-1-0001"
#define ID_OLD  "aisp-t-1-0002" /* v2: no memory.peak; v1: no oom_kill line */
#define ID_NONE "aisp-t-1-0003" /* not in the fixture */

static char root[64];

/* Copies the directory tree src (fds) into dst, files and directories only. */
static void copy_tree(int src, int dst)
{
	DIR *d = fdopendir(dup(src));
	assert_non_null(d);
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		int s = openat(src, de->d_name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		assert_true(s >= 0);
		struct stat st;
		assert_int_equal(fstat(s, &st), 0);
		if (S_ISDIR(st.st_mode)) {
			assert_int_equal(mkdirat(dst, de->d_name, 0755), 0);
			int t = openat(dst, de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			assert_true(t >= 0);
			copy_tree(s, t);
			close(t);
		} else {
			buf b = BUF_INIT;
			assert_true(read_all(s, &b, 1 << 20) >= 0);
			assert_int_equal(write_file_at(dst, de->d_name, b.data, b.len, 0644, NULL),
			                 0);
			buf_deinit(&b);
		}
		close(s);
	}
	closedir(d);
}

/* A fresh copy of fixtures/<name> at root. */
static void fixture(const char *name)
{
	snprintf(root, sizeof(root), "/tmp/aisp-cgroup-XXXXXX");
	assert_non_null(mkdtemp(root));
	char *src = xasprintf("%s/tests/unit/fixtures/%s", getenv("AISP_SOURCE_ROOT"), name);
	int s = open(src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int d = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(s >= 0 && d >= 0);
	copy_tree(s, d);
	close(s);
	close(d);
	free(src);
}

static int teardown(void **state)
{
	if (root[0])
		rm_rf_at(AT_FDCWD, root, NULL);
	root[0] = 0;
	return 0;
}

/* The contents of root/rel, trailing newline dropped; owned. */
static char *slurp(const char *rel)
{
	char *p = xasprintf("%s/%s", root, rel);
	buf b = BUF_INIT;
	assert_int_equal(read_file_at(AT_FDCWD, p, 4096, &b, NULL), 0);
	free(p);
	char *s = buf_steal(&b, NULL);
	s[strcspn(s, "\n")] = 0;
	return s;
}

/* Replaces root/rel's contents, as the kernel changes a counter. */
static void put(const char *rel, const char *text)
{
	char *p = xasprintf("%s/%s", root, rel);
	int fd = open(p, O_WRONLY | O_TRUNC | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(write_all(fd, text, strlen(text)), 0);
	close(fd);
	free(p);
}

static bool exists(const char *rel)
{
	char *p = xasprintf("%s/%s", root, rel);
	bool r = access(p, F_OK) == 0;
	free(p);
	return r;
}

static sandbox_cgroup *backend(sandbox_cgroup_version v)
{
	sandbox_cgroup *cg = NULL;
	err *e = NULL;
	sandbox_cgroup_opts o = {.root = root, .version = v};
	assert_int_equal(sandbox_cgroup_new(&cg, &o, &e), 0);
	assert_int_equal(sandbox_cgroup_get_version(cg), v);
	return cg;
}

static void assert_slurp(const char *rel, const char *want)
{
	char *got = slurp(rel);
	assert_string_equal(got, want);
	free(got);
}

/* ID's priority file holds what each priority writes. */
static void check_prio(sandbox_cgroup *cg, const char *file, const char *running,
                       const char *warming)
{
	sandbox_cgroup_set_prio(cg, ID, SANDBOX_CGROUP_RUNNING);
	assert_slurp(file, running);
	sandbox_cgroup_set_prio(cg, ID, SANDBOX_CGROUP_WARMING);
	assert_slurp(file, warming);
}

/* config.json's cgroup fields for ID: the path, cpu.shares (both hierarchies: runtimes that
 * ignore "unified" convert shares to a weight, 16 -> 1) and the exact v2 weight. */
static void check_config(sandbox_cgroup *cg, int64_t weight_warming, int64_t weight_running)
{
	sandbox_cgroup_config c;
	sandbox_cgroup_config_for(cg, ID, SANDBOX_CGROUP_WARMING, &c);
	assert_string_equal(c.path, "/aisp/" ID);
	assert_int_equal(c.cpu_shares, 16);
	assert_int_equal(c.cpu_weight, weight_warming);
	sandbox_cgroup_config_deinit(&c);
	sandbox_cgroup_config_for(cg, ID, SANDBOX_CGROUP_RUNNING, &c);
	assert_int_equal(c.cpu_shares, 1024);
	assert_int_equal(c.cpu_weight, weight_running);
	sandbox_cgroup_config_deinit(&c);
}

/* What the backend reads for id, given the peak sampled so far. */
static void expect_usage(sandbox_cgroup *cg, const char *id, uint64_t sampled, uint64_t cpu_ns,
                         uint64_t peak, uint64_t oom_kills, uint64_t pids_max_hits)
{
	sandbox_cgroup_usage u;
	sandbox_cgroup_read(cg, id, sampled, &u);
	assert_int_equal(u.cpu_ns, cpu_ns);
	assert_int_equal(sandbox_cgroup_cpu_ns(cg, id), cpu_ns); /* the run's one-file read */
	assert_int_equal(u.memory_peak_bytes, peak);
	assert_int_equal(u.oom_kills, oom_kills);
	assert_int_equal(u.pids_max_hits, pids_max_hits);
}

/* ---- the flat-keyed parser ---- */

static void test_keyed(void **state)
{
	const char *oom = "oom_kill_disable 0\nunder_oom 1\noom_kill 3\n";
	assert_int_equal(sandbox_cgroup_keyed(oom, "oom_kill"), 3);
	assert_int_equal(sandbox_cgroup_keyed(oom, "under_oom"), 1);
	assert_int_equal(sandbox_cgroup_keyed("oom_kill_disable 9\n", "oom_kill"), 0);
	assert_int_equal(sandbox_cgroup_keyed("oom_group_kill 7\noom_kill 2", "oom_kill"), 2);
	assert_int_equal(sandbox_cgroup_keyed("max 5", "max"), 5);
	assert_int_equal(sandbox_cgroup_keyed("max.imposed 4\nmax 1\n", "max"), 1);
	assert_int_equal(sandbox_cgroup_keyed("", "max"), 0);
	assert_int_equal(sandbox_cgroup_keyed("user_usec 1\nusage_usec 42\n", "usage_usec"), 42);
}

/* ---- detection ---- */

static void test_detect(void **state)
{
	fixture("cgroup-v2");
	/* a directory laid out like v2 is still not a cgroup2 file system */
	assert_int_equal(sandbox_cgroup_detect(root), SANDBOX_CGROUP_V1);
	sandbox_cgroup *cg = NULL;
	err *e = NULL;
	sandbox_cgroup_opts o = {.root = root};
	assert_int_equal(sandbox_cgroup_new(&cg, &o, &e), 0);
	assert_string_equal(sandbox_cgroup_name(cg), "v1");
	sandbox_cgroup_free(cg);
	/* every cgroup2 mount of this host, by the mount table: detected as v2 */
	FILE *m = fopen("/proc/self/mounts", "r");
	assert_non_null(m);
	char dev[256], dir[256], type[64];
	int seen = 0;
	while (fscanf(m, "%255s %255s %63s %*[^\n]", dev, dir, type) == 3) {
		if (!strcmp(type, "cgroup2") && ++seen)
			assert_int_equal(sandbox_cgroup_detect(dir), SANDBOX_CGROUP_V2);
		else if (!strcmp(type, "tmpfs") && !strcmp(dir, "/sys/fs/cgroup"))
			assert_int_equal(sandbox_cgroup_detect(dir), SANDBOX_CGROUP_V1);
	}
	fclose(m);
	print_message("# %d cgroup2 mount(s) on this host\n", seen);
}

static void test_parent(void **state)
{
	const char *bad[] = {"aisp", "/", "/a//b", "/a/", "/a/../b", "/..", "/./a", "/a\nb", NULL};
	for (const char **p = bad; *p; p++) {
		sandbox_cgroup *cg = NULL;
		err *e = NULL;
		sandbox_cgroup_opts o = {.root = "/nonexistent", .parent = *p};
		assert_int_equal(sandbox_cgroup_new(&cg, &o, &e), -1);
		assert_non_null(strstr(err_msg(e), "cgroup parent"));
		err_free(e);
	}
	sandbox_cgroup *cg = NULL;
	sandbox_cgroup_opts o = {
	    .root = "/nonexistent", .parent = "/aisp/node-1", .version = SANDBOX_CGROUP_V2};
	assert_int_equal(sandbox_cgroup_new(&cg, &o, NULL), 0);
	sandbox_cgroup_config c;
	sandbox_cgroup_config_for(cg, ID, SANDBOX_CGROUP_WARMING, &c);
	assert_string_equal(c.path, "/aisp/node-1/" ID);
	sandbox_cgroup_config_deinit(&c);
	sandbox_cgroup_free(cg);
}

/* ---- v1 ---- */

static void test_v1(void **state)
{
	fixture("cgroup-v1");
	sandbox_cgroup *cg = backend(SANDBOX_CGROUP_V1);
	/* the plumbing cgroup: in the cpu hierarchy */
	assert_true(exists("cpu/aisp-plumbing"));
	char *procs = xasprintf("%s/cpu/aisp-plumbing/cgroup.procs", root);
	assert_string_equal(sandbox_cgroup_plumbing_procs(cg), procs);
	free(procs);
	expect_usage(cg, ID, 0, 1234567890, 73400320, 2, 5);
	/* memory.max_usage_in_bytes keeps the peak: nothing to sample */
	uint64_t peak = 0;
	assert_false(sandbox_cgroup_sample(cg, ID, &peak));
	assert_int_equal(peak, 0);
	check_prio(cg, "cpu/aisp/" ID "/cpu.shares", "1024", "16");
	sandbox_cgroup_free(cg);
}

static void test_v1_old_and_missing(void **state)
{
	fixture("cgroup-v1");
	sandbox_cgroup *cg = backend(SANDBOX_CGROUP_V1);
	/* memory.oom_control before 4.13 has no oom_kill; the other controllers have nothing */
	expect_usage(cg, ID_OLD, 0, 0, 1048576, 0, 0);
	expect_usage(cg, ID_NONE, 0, 0, 0, 0, 0);
	sandbox_cgroup_free(cg);
}

static void test_v1_config_remove(void **state)
{
	fixture("cgroup-v1");
	sandbox_cgroup *cg = backend(SANDBOX_CGROUP_V1);
	check_config(cg, 0, 0); /* runc refuses linux.resources.unified on v1 */
	/* what the runtime left: one (empty, as cgroupfs shows them to rmdir) dir per controller */
	const char *ctrls[] = {"memory", "cpu", "pids", "freezer", "systemd", NULL};
	for (const char **k = ctrls; *k; k++) {
		char *d = xasprintf("%s/%s/aisp/%s", root, *k, ID_NONE);
		assert_int_equal(mkdir_p(d, 0755, NULL), 0);
		free(d);
	}
	sandbox_cgroup_remove(cg, ID_NONE);
	for (const char **k = ctrls; *k; k++) {
		char *d = xasprintf("%s/aisp/%s", *k, ID_NONE);
		assert_false(exists(d));
		free(d);
	}
	sandbox_cgroup_free(cg);
}

/* ---- v2 ---- */

static void test_v2(void **state)
{
	fixture("cgroup-v2");
	sandbox_cgroup *cg = backend(SANDBOX_CGROUP_V2);
	/* the plumbing cgroup below the root, whose subtree_control gained cpu */
	assert_true(exists("aisp-plumbing"));
	assert_slurp("cgroup.subtree_control", "+cpu");
	char *procs = xasprintf("%s/aisp-plumbing/cgroup.procs", root);
	assert_string_equal(sandbox_cgroup_plumbing_procs(cg), procs);
	free(procs);
	/* memory.peak exists: nothing to sample */
	uint64_t peak = 0;
	assert_false(sandbox_cgroup_sample(cg, ID, &peak));
	expect_usage(cg, ID, peak, 1234567000ULL, 73400320, 1, 3);
	check_prio(cg, "aisp/" ID "/cpu.weight", "100", "1");
	sandbox_cgroup_free(cg);
}

static void test_v2_cpu_enabled(void **state)
{
	fixture("cgroup-v2");
	put("cgroup.subtree_control", "cpuset cpu io memory pids\n");
	sandbox_cgroup *cg = backend(SANDBOX_CGROUP_V2);
	assert_slurp("cgroup.subtree_control", "cpuset cpu io memory pids");
	sandbox_cgroup_free(cg);
}

/* Linux < 5.19: the peak is the highest memory.current sampled, or read at the end. */
static void test_v2_sampled_peak(void **state)
{
	fixture("cgroup-v2");
	sandbox_cgroup *cg = backend(SANDBOX_CGROUP_V2);
	uint64_t peak = 0;
	assert_true(sandbox_cgroup_sample(cg, ID_OLD, &peak));
	assert_int_equal(peak, 31457280);
	put("aisp/" ID_OLD "/memory.current", "41943040\n");
	assert_true(sandbox_cgroup_sample(cg, ID_OLD, &peak));
	assert_int_equal(peak, 41943040);
	put("aisp/" ID_OLD "/memory.current", "20971520\n");
	assert_true(sandbox_cgroup_sample(cg, ID_OLD, &peak));
	assert_int_equal(peak, 41943040);
	expect_usage(cg, ID_OLD, peak, 2500000, 41943040, 0, 0);
	put("aisp/" ID_OLD "/memory.current", "52428800\n"); /* higher at the end than sampled */
	expect_usage(cg, ID_OLD, peak, 2500000, 52428800, 0, 0);
	sandbox_cgroup_free(cg);
}

static void test_v2_config_remove(void **state)
{
	fixture("cgroup-v2");
	sandbox_cgroup *cg = backend(SANDBOX_CGROUP_V2);
	check_config(cg, 1, 100);
	char *d = xasprintf("%s/aisp/%s", root, ID_NONE);
	assert_int_equal(mkdir(d, 0755), 0);
	free(d);
	sandbox_cgroup_remove(cg, ID_NONE);
	assert_false(exists("aisp/" ID_NONE));
	/* reading a cgroup that is gone gives zeros (and does not decide memory.peak) */
	expect_usage(cg, ID_NONE, 7, 0, 7, 0, 0);
	uint64_t peak = 0;
	assert_false(sandbox_cgroup_sample(cg, ID, &peak)); /* ID has memory.peak */
	sandbox_cgroup_free(cg);
}

/* ---- v2, live ---- */

/* This host's first cgroup2 mount point, or NULL; owned. */
static char *cgroup2_mount(void)
{
	FILE *m = fopen("/proc/self/mounts", "r");
	char dev[256], dir[256], type[64];
	char *found = NULL;
	while (m && !found && fscanf(m, "%255s %255s %63s %*[^\n]", dev, dir, type) == 3)
		if (!strcmp(type, "cgroup2"))
			found = xstrdup(dir);
	if (m)
		fclose(m);
	return found;
}

/* A child joins dir and burns CPU; returns the CPU time it reports, in ns. */
static uint64_t burn_in(const char *dir)
{
	char *procs = xasprintf("%s/cgroup.procs", dir);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (sandbox_cgroup_write(procs, "0") < 0)
			_exit(2);
		volatile uint64_t x = 0;
		while (clock() < CLOCKS_PER_SEC / 5)
			x++;
		_exit(0);
	}
	free(procs);
	int st;
	struct rusage ru;
	assert_int_equal(wait4(pid, &st, 0, &ru), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	return ((uint64_t)ru.ru_utime.tv_sec + (uint64_t)ru.ru_stime.tv_sec) * 1000000000ULL +
	       ((uint64_t)ru.ru_utime.tv_usec + (uint64_t)ru.ru_stime.tv_usec) * 1000ULL;
}

static void test_v2_live(void **state)
{
	char *mnt = cgroup2_mount();
	if (!mnt) {
		print_message("# no cgroup2 mount on this host\n");
		skip();
	}
	char *parent = xasprintf("/aisp-unit-%d", (int)getpid());
	char *pdir = xasprintf("%s%s", mnt, parent);
	char *dir = xasprintf("%s/%s", pdir, ID);
	if (mkdir(pdir, 0755) < 0) {
		print_message("# cannot create a cgroup in %s: %s\n", mnt, strerror(errno));
		free(mnt), free(parent), free(pdir), free(dir);
		skip();
	}
	char *plumbing = xasprintf("%s/aisp-plumbing", mnt);
	bool had_plumbing = access(plumbing, F_OK) == 0;
	assert_int_equal(sandbox_cgroup_detect(mnt), SANDBOX_CGROUP_V2);
	sandbox_cgroup *cg = NULL;
	sandbox_cgroup_opts o = {.root = mnt, .parent = parent};
	assert_int_equal(sandbox_cgroup_new(&cg, &o, NULL), 0);
	assert_string_equal(sandbox_cgroup_name(cg), "v2");
	assert_int_equal(mkdir(dir, 0755), 0); /* what the runtime does */
	uint64_t burnt = burn_in(dir);
	sandbox_cgroup_usage u;
	sandbox_cgroup_read(cg, ID, 0, &u);
	print_message("# %s: cpu.stat usage %llu ns, the child's rusage %llu ns\n", dir,
	              (unsigned long long)u.cpu_ns, (unsigned long long)burnt);
	assert_true(u.cpu_ns > 0);
	assert_true(u.cpu_ns >= burnt / 2);
	sandbox_cgroup_remove(cg, ID);
	assert_int_equal(access(dir, F_OK), -1);
	sandbox_cgroup_free(cg);
	rmdir(pdir);
	if (!had_plumbing)
		rmdir(plumbing);
	free(mnt), free(parent), free(pdir), free(dir), free(plumbing);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_keyed),
	    cmocka_unit_test_teardown(test_detect, teardown),
	    cmocka_unit_test(test_parent),
	    cmocka_unit_test_teardown(test_v1, teardown),
	    cmocka_unit_test_teardown(test_v1_old_and_missing, teardown),
	    cmocka_unit_test_teardown(test_v1_config_remove, teardown),
	    cmocka_unit_test_teardown(test_v2, teardown),
	    cmocka_unit_test_teardown(test_v2_cpu_enabled, teardown),
	    cmocka_unit_test_teardown(test_v2_sampled_peak, teardown),
	    cmocka_unit_test_teardown(test_v2_config_remove, teardown),
	    cmocka_unit_test(test_v2_live),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
