/* An LD_PRELOAD fault injector for tests/faults/test-faults.sh: while the file named by
 * AISP_FAULT_FDATASYNC exists, fdatasync() fails with EIO (what a disk that lost a write
 * reports) without flushing; otherwise it is the real one. The node's chain state is saved
 * with one pwrite and one fdatasync into room allocated when the file was made, so a full
 * disk no longer makes it fail: this is how the suite makes the save fail for real. */
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

int fdatasync(int fd)
{
	static int (*real)(int);
	const char *flag = getenv("AISP_FAULT_FDATASYNC");
	if (flag && access(flag, F_OK) == 0) {
		errno = EIO;
		return -1;
	}
	if (!real)
		*(void **)&real = dlsym(RTLD_NEXT, "fdatasync");
	return real ? real(fd) : (errno = ENOSYS, -1);
}
