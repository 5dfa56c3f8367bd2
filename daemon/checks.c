/* Startup checks, each failing with a message that tells the operator what to do: the state and
 * run directories, cgroups, the agent, the node key. Redis is not checked here: it is waited
 * for. node_new() runs these before it creates anything. */
#include "daemon/node.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xalloc.h"

static int check_dir(const char *what, const char *path, mode_t mode, int *dirfd_out, err **e)
{
	if (mkdir_p(path, mode, e) < 0)
		return err_prefix(e, "%s %s is not usable", what, path);
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return err_set(e, errno, "%s %s: open", what, path);
	_cleanup_free_ char *probe = xasprintf(".probe.%d", (int)getpid());
	if (write_file_at(fd, probe, "x", 1, 0600, e) < 0) {
		close(fd);
		return err_prefix(e, "%s %s is not writable", what, path);
	}
	unlinkat(fd, probe, 0);
	if (dirfd_out)
		*dirfd_out = fd;
	else
		close(fd);
	return 0;
}

static int check_cgroup(err **e)
{
	const char *base = access("/sys/fs/cgroup/cgroup.controllers", F_OK) == 0
	                       ? "/sys/fs/cgroup"
	                       : "/sys/fs/cgroup/memory";
	_cleanup_free_ char *probe = xasprintf("%s/aisp-probe-%d", base, (int)getpid());
	if (mkdir(probe, 0755) < 0 && errno != EEXIST)
		return err_set(e, errno,
		               "cgroup not usable: mkdir %s (aispd must run as root with a "
		               "writable cgroup hierarchy)",
		               probe);
	if (rmdir(probe) < 0)
		return err_set(e, errno, "cgroup not usable: rmdir %s", probe);
	return 0;
}

int checks_host(const config *c, int *state_dirfd, err **e)
{
	if (check_dir("state dir", c->state_dir, 0700, state_dirfd, e) < 0)
		return -1;
	if (check_dir("run dir", c->run_dir, 0711, NULL, e) < 0)
		return -1;
	if (check_cgroup(e) < 0)
		return -1;
	if (access(c->agent_path, X_OK) < 0)
		return err_set(e, errno, "agent %s is missing ([node] agent)", c->agent_path);
	return 0;
}

int checks_key(const config *c, err **e)
{
	if (access(c->key_path, F_OK) == 0)
		return 0;
	_cleanup_free_ char *copy = xstrdup(c->key_path);
	const char *dir = dirname(copy);
	if (!c->create_key)
		return err_set(e, 0,
		               "no node key at %s: run `aisp keygen --out %s` or set "
		               "create_key = true",
		               c->key_path, dir);
	_cleanup_free_ char *base = xstrdup(c->key_path);
	if (strcmp(basename(base), "private.pem"))
		return err_set(e, 0, "create_key: key must be DIR/private.pem, not %s",
		               c->key_path);
	if (mkdir_p(dir, 0700, e) < 0)
		return err_prefix(e, "create_key");
	attest_key *k = NULL;
	if (attest_key_generate(&k, e) < 0 || attest_key_write_pair(k, dir, false, e) < 0) {
		attest_key_free(k);
		return err_prefix(e, "create_key %s", dir);
	}
	log_info("created a node key in %s (key_id %s)", dir, attest_key_id(k));
	attest_key_free(k);
	return 0;
}
