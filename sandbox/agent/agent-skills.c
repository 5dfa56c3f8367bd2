/* Skills and blobs inside the sandbox (proto/PROTOCOL.md, "Skills"): the SKILL_FILE and BLOB_IN
 * frames the host sends before the TASK are written, as root, into the sandbox's two tmpfs
 * trees (/.aisp/skills, /.aisp/blobs: directories 0755, files 0644/0755/0444), which the
 * program (another user, no capability) can read and not write; after the run the runtime
 * module's output blobs and log are read from /workspace/.aisp as the program's user (what it
 * could read) and sent as OUT_BLOB and LOGS frames. Every path is walked with openat and
 * O_NOFOLLOW; nothing the program made is followed. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "sandbox/agent/agent.h"

static int skills_fd = -1, blobs_fd = -1;
static uint64_t skill_entries, skill_bytes, blob_count, blob_bytes;

static int open_tree(int *fd, const char *path, char *msg, size_t msz)
{
	if (*fd < 0)
		*fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (*fd < 0)
		return snprintf(msg, msz, "%s: %s", path, strerror(errno)), -1;
	return 0;
}

static bool skill_name_ok(const uint8_t *p, size_t n)
{
	if (n < 1 || n > 64 || p[0] < 'a' || p[0] > 'z')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= '0' && p[i] <= '9') || p[i] == '_'))
			return false;
	return true;
}

/* Creates one entry: a directory (its parent exists), or a file written whole. */
static int make_entry(uint8_t kind, const char *path, size_t plen, const uint8_t *data, size_t n,
                      char *msg, size_t msz)
{
	const char *slash = memrchr(path, '/', plen);
	size_t dlen = slash ? (size_t)(slash - path) : 0;
	_cleanup_free_ char *name =
	    xstrndup(slash ? slash + 1 : path, plen - (slash ? dlen + 1 : 0));
	_cleanup_close_ int dfd = agent_open_dir_below(skills_fd, path, dlen, false);
	if (dfd < 0)
		return snprintf(msg, msz, "skill file %.*s: its directory: %s", (int)plen, path,
		                strerror(errno)),
		       -1;
	if (kind == 'd' || kind == 's') {
		if (n || (mkdirat(dfd, name, 0755) < 0 && errno != EEXIST))
			return snprintf(msg, msz, "skill directory %.*s: %s", (int)plen, path,
			                n ? "has contents" : strerror(errno)),
			       -1;
		if (kind == 's') {
			int mark = openat(skills_fd, AGENT_SKILLS_SEALED_MARK,
			                  O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0444);
			if (mark < 0)
				return snprintf(msg, msz, "skills tree: %s: %s",
				                AGENT_SKILLS_SEALED_MARK, strerror(errno)),
				       -1;
			close(mark);
		}
		return 0;
	}
	mode_t mode = kind == 'x' ? 0755 : 0644;
	_cleanup_close_ int fd =
	    openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0 || write_all(fd, data, n) < 0 || fchmod(fd, mode) < 0)
		return snprintf(msg, msz, "skill file %.*s: %s", (int)plen, path, strerror(errno)),
		       -1;
	return 0;
}

int agent_put_skill_file(const uint8_t *p, size_t n, char *msg, size_t msz)
{
	if (open_tree(&skills_fd, AGENT_SKILLS_DIR, msg, msz) < 0)
		return -1;
	sandbox_frame_skill_file f;
	if (sandbox_frame_parse_skill_file(p, n, &f) < 0)
		return snprintf(msg, msz, "malformed SKILL_FILE frame"), -1;
	const char *slash = memchr(f.path, '/', f.path_len);
	size_t name_len = slash ? (size_t)(slash - f.path) : f.path_len;
	if (!agent_path_valid(f.path, f.path_len) ||
	    !skill_name_ok((const uint8_t *)f.path, name_len) ||
	    (!slash && f.kind != 'd' && f.kind != 's') || (slash && f.kind == 's'))
		return snprintf(msg, msz, "SKILL_FILE: not a path of a skill"), -1;
	skill_entries++;
	skill_bytes += f.len;
	if (skill_entries > AGENT_SKILL_ENTRIES_MAX || skill_bytes > AGENT_SKILL_BYTES_MAX)
		return snprintf(msg, msz, "SKILL_FILE: over the caps of the skills tree"), -1;
	return make_entry(f.kind, f.path, f.path_len, f.data, f.len, msg, msz);
}

int agent_put_blob(const uint8_t *p, size_t n, char *msg, size_t msz)
{
	if (open_tree(&blobs_fd, AGENT_BLOBS_DIR, msg, msz) < 0)
		return -1;
	const uint8_t *data;
	size_t len;
	if (sandbox_frame_parse_blob_in(p, n, &data, &len) < 0)
		return snprintf(msg, msz, "malformed BLOB_IN frame"), -1;
	blob_count++;
	blob_bytes += len;
	if (blob_count > AGENT_BLOBS_MAX || blob_bytes > AGENT_BLOBS_TOTAL || len > AGENT_BLOB_MAX)
		return snprintf(msg, msz, "BLOB_IN: over the caps of input blobs"), -1;
	char name[65];
	memcpy(name, p, 64);
	name[64] = '\0';
	_cleanup_close_ int fd =
	    openat(blobs_fd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0444);
	if (fd < 0 || write_all(fd, data, len) < 0 || fchmod(fd, 0444) < 0)
		return snprintf(msg, msz, "input blob %s: %s", name, strerror(errno)), -1;
	return 0;
}

/* ---- after the run, as the program's user ---- */

/* Reads a regular file below dfd (no link followed) of at most max bytes into b; a longer one
 * gives its first max bytes and *over. Returns 0 or -1 (not there, not a regular file). */
static int read_regular(int dfd, const char *name, uint64_t max, buf *b, bool *over)
{
	_cleanup_close_ int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		return -1;
	*over = (uint64_t)st.st_size > max;
	uint8_t chunk[65536];
	size_t got = 0;
	while (got < max) {
		size_t want = max - got < sizeof(chunk) ? (size_t)(max - got) : sizeof(chunk);
		ssize_t k = read(fd, chunk, want);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		buf_append(b, chunk, (size_t)k);
		got += (size_t)k;
	}
	return 0;
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names of .aisp/blobs that are blob names, sorted; *n of them. */
static char **blob_names(int dfd, size_t *n)
{
	char **v = NULL;
	*n = 0;
	int dup = fcntl(dfd, F_DUPFD_CLOEXEC, 0);
	DIR *d = dup < 0 ? NULL : fdopendir(dup);
	if (!d) {
		if (dup >= 0)
			close(dup);
		return NULL;
	}
	for (struct dirent *de; (de = readdir(d)) && *n <= AGENT_OUT_BLOBS_MAX;)
		if (strlen(de->d_name) == 64 && strspn(de->d_name, "0123456789abcdef") == 64) {
			v = xreallocarray(v, *n + 1, sizeof(char *));
			v[(*n)++] = xstrdup(de->d_name);
		}
	closedir(d);
	if (*n)
		qsort(v, *n, sizeof(char *), cmp_name);
	return v;
}

static void send_blobs(int dfd, sandbox_frame_buf *b, uint8_t *flags)
{
	size_t n;
	char **names = blob_names(dfd, &n);
	uint64_t total = 0;
	for (size_t i = 0; i < n; i++) {
		buf data = BUF_INIT;
		bool over = false;
		if (i >= AGENT_OUT_BLOBS_MAX ||
		    read_regular(dfd, names[i], AGENT_BLOB_MAX, &data, &over) < 0 || over ||
		    total + data.len > AGENT_OUT_BLOBS_TOTAL) {
			*flags |= LOGS_F_BLOBS_TRUNC;
		} else {
			total += data.len;
			sandbox_frame_put(b, FRAME_OUT_BLOB, data.data, data.len);
		}
		buf_deinit(&data);
		free(names[i]);
	}
	free(names);
}

static int collect_runtime(void *arg)
{
	struct {
		int wsfd;
		sandbox_frame_buf *b;
	} *a = arg;
	_cleanup_close_ int dfd =
	    openat(a->wsfd, ".aisp", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0)
		return 0; /* the run used no runtime output */
	uint8_t flags = 0;
	_cleanup_close_ int bfd =
	    openat(dfd, "blobs", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (bfd >= 0)
		send_blobs(bfd, a->b, &flags);
	buf log = BUF_INIT;
	bool over = false;
	buf_append(&log, "", 1); /* the flags byte */
	if (read_regular(dfd, "log.jsonl", AGENT_LOG_MAX, &log, &over) == 0 && over)
		flags |= LOGS_F_LOG_TRUNC;
	log.data[0] = flags;
	sandbox_frame_put(a->b, FRAME_LOGS, log.data, log.len);
	buf_deinit(&log);
	return 0;
}

void agent_collect_runtime(int wsfd, sandbox_frame_buf *b)
{
	struct {
		int wsfd;
		sandbox_frame_buf *b;
	} a = {wsfd, b};
	char unused[128];
	agent_as_program(false, collect_runtime, &a, unused, sizeof(unused));
}
