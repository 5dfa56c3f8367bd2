/* The image store, read side: resolves an image name or manifest digest to its unpacked,
 * read-only rootfs. The store is written only by the scripts in images/ (build, import); the
 * layout is in sandbox/image.h. Nothing here follows a symlink below the store directory. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/buf.h"
#include "common/cleanup.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "proto/proto.h"
#include "sandbox/image.h"

#define DIGEST_PREFIX "sha256:"
#define NAME_MAX_LEN  64

static bool is_lower_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

bool sandbox_image_name_valid(const char *name)
{
	if (!name || !is_lower_alnum(name[0]))
		return false;
	size_t n = 1;
	for (; name[n]; n++) {
		char c = name[n];
		if (n >= NAME_MAX_LEN || !(is_lower_alnum(c) || c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

bool sandbox_image_digest_valid(const char *digest)
{
	return proto_blob_id_valid(digest); /* the same form: "sha256:" and 64 lower-case hex */
}

/* Reads names/<name> into a validated digest (owned). */
static int read_name(int storefd, const char *store, const char *name, char **digest, err **e)
{
	_cleanup_close_ int namesfd =
	    openat(storefd, "names", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (namesfd < 0 && errno == ENOENT)
		return err_set(e, 0, "image %s is not in the store at %s", name, store);
	if (namesfd < 0)
		return err_set(e, errno, "image store %s: open names", store);
	buf b = BUF_INIT;
	err *ie = NULL;
	if (read_file_at(namesfd, name, 256, &b, &ie) < 0) {
		int code = ie->code;
		buf_deinit(&b);
		if (code == ENOENT) {
			err_free(ie);
			return err_set(e, 0, "image %s is not in the store at %s", name, store);
		}
		if (!e) {
			err_free(ie);
			return -1;
		}
		*e = ie;
		return err_prefix(e, "image store %s: names", store);
	}
	_cleanup_free_ char *text = buf_steal(&b, NULL);
	text[strcspn(text, "\n")] = '\0';
	if (!sandbox_image_digest_valid(text))
		return err_set(e, 0, "image store %s: names/%s does not hold a sha256 digest",
		               store, name);
	*digest = steal_pointer(&text);
	return 0;
}

/* Fails unless rootfs/<hex>/rootfs is a directory, every component opened with O_NOFOLLOW. */
static int check_rootfs(int storefd, const char *store, const char *what, const char *hex, err **e)
{
	const char *parts[] = {"rootfs", hex, "rootfs"};
	_cleanup_close_ int fd = -1;
	int at = storefd;
	for (size_t i = 0; i < ARRAY_SIZE(parts); i++) {
		int next = openat(at, parts[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (next < 0 && (errno == ENOENT || errno == ENOTDIR || errno == ELOOP))
			return err_set(e, 0, "image %s is not in the store at %s", what, store);
		if (next < 0)
			return err_set(e, errno, "image store %s: open rootfs/%s", store, hex);
		if (fd >= 0)
			close(fd);
		fd = at = next;
	}
	return 0;
}

int sandbox_image_resolve(const char *store, const char *name_or_digest, sandbox_image *out,
                          err **e)
{
	*out = (sandbox_image)SANDBOX_IMAGE_INIT;
	if (!store || !*store)
		store = SANDBOX_IMAGE_STORE_DEFAULT;
	bool by_digest = name_or_digest && !strncmp(name_or_digest, DIGEST_PREFIX, 7);
	if (by_digest ? !sandbox_image_digest_valid(name_or_digest)
	              : !sandbox_image_name_valid(name_or_digest))
		return err_set(e, 0, "invalid image %s \"%.80s\"", by_digest ? "digest" : "name",
		               name_or_digest ? name_or_digest : "");

	char abs[PATH_MAX];
	if (!realpath(store, abs))
		return err_set(e, errno, "image store %s", store);
	_cleanup_close_ int storefd = open(abs, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (storefd < 0)
		return err_set(e, errno, "image store %s: open", store);

	_cleanup_free_ char *digest = NULL;
	if (by_digest)
		digest = xstrdup(name_or_digest);
	else if (read_name(storefd, store, name_or_digest, &digest, e) < 0)
		return -1;
	const char *hex = digest + strlen(DIGEST_PREFIX);
	if (check_rootfs(storefd, store, name_or_digest, hex, e) < 0)
		return -1;

	out->name = by_digest ? NULL : xstrdup(name_or_digest);
	out->rootfs = xasprintf("%s/rootfs/%s/rootfs", strcmp(abs, "/") ? abs : "", hex);
	out->digest = steal_pointer(&digest);
	return 0;
}

void sandbox_image_deinit(sandbox_image *img)
{
	if (!img)
		return;
	free(img->name);
	free(img->digest);
	free(img->rootfs);
	*img = (sandbox_image)SANDBOX_IMAGE_INIT;
}
