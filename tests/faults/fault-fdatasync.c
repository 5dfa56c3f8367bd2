/* An LD_PRELOAD fault injector for the suites that make the node's chain state fail to save
 * (tests/faults/test-faults.sh, tests/integration/test-attest-chain.sh; tests/lib/node.sh's
 * node_start_faulty): while the file named by AISP_FAULT_FDATASYNC exists, fdatasync() fails
 * with EIO (what a disk that lost a write reports) without flushing; otherwise it is the real
 * one. The chain state is saved with one pwrite and one fdatasync into room made when the node
 * started, so a full disk no longer makes it fail: this is how a test makes it fail for real.
 * The injector takes itself out of the environment at load, so that the runtimes and whatever
 * else the node starts run without it. */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static char flag[4096];

__attribute__((constructor)) static void fault_init(void)
{
	const char *f = getenv("AISP_FAULT_FDATASYNC");
	if (f)
		snprintf(flag, sizeof(flag), "%s", f);
	unsetenv("AISP_FAULT_FDATASYNC");
	unsetenv("LD_PRELOAD");
}

int fdatasync(int fd)
{
	static int (*real)(int);
	if (flag[0] && access(flag, F_OK) == 0) {
		errno = EIO;
		return -1;
	}
	if (!real)
		*(void **)&real = dlsym(RTLD_NEXT, "fdatasync");
	return real ? real(fd) : (errno = ENOSYS, -1);
}
