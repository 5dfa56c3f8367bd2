/* aisp keygen: creates a node's Ed25519 signing key pair (private.pem 0600, public.pem 0644)
 * and its age encryption identity (age.key 0600, age.pub 0644: attest/AGE.md) in a directory,
 * and prints the key id and the age recipient. --age-only adds the age identity to a key
 * directory made before there was one. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "attest/attest.h"
#include "cli/cli.h"
#include "common/cleanup.h"
#include "common/util.h"

static void keygen_usage(FILE *f)
{
	fprintf(f, "usage: aisp keygen --out DIR [--force] [--age-only]\n"
	           "  creates DIR/private.pem (mode 0600) and DIR/public.pem, the node's Ed25519\n"
	           "  signing pair, and DIR/age.key (mode 0600) and DIR/age.pub, its age identity\n"
	           "  and recipient (age1...); DIR is created (mode 0700) when missing. --force\n"
	           "  replaces existing files; --age-only writes only the age identity.\n");
}

/* Without --force, any existing file is an error before anything is written. */
static int check_free(const char *dir, bool age_only, err **e)
{
	static const char *const names[] = {ATTEST_AGE_KEY_FILE, ATTEST_AGE_PUB_FILE, "private.pem",
	                                    "public.pem"};
	_cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return err_set(e, errno, "open directory %s", dir);
	for (size_t i = 0; i < (age_only ? 2u : ARRAY_SIZE(names)); i++) {
		struct stat st;
		if (fstatat(dfd, names[i], &st, AT_SYMLINK_NOFOLLOW) == 0)
			return err_set(e, EEXIST, "%s: create %s (use --force to replace it)", dir,
			               names[i]);
	}
	return 0;
}

static int keygen_write(const char *dir, bool force, bool age_only, err **e)
{
	attest_key *k = NULL;
	attest_age_identity *id = NULL;
	int r = mkdir_p(dir, 0700, e);
	if (r == 0 && !force)
		r = check_free(dir, age_only, e);
	if (r == 0 && !age_only)
		r = attest_key_generate(&k, e);
	if (r == 0)
		r = attest_age_identity_generate(&id, e);
	if (r == 0 && !age_only)
		r = attest_key_write_pair(k, dir, force, e);
	if (r == 0)
		r = attest_age_identity_write_pair(id, dir, force, e);
	if (r == 0 && k)
		printf("key id %s\nprivate key %s/private.pem\npublic key %s/public.pem\n",
		       attest_key_id(k), dir, dir);
	if (r == 0) {
		attest_age_recipient rc;
		char text[ATTEST_AGE_RECIPIENT_LEN + 1];
		attest_age_identity_recipient(id, &rc);
		attest_age_recipient_format(&rc, text);
		printf("age recipient %s\nage identity %s/%s\nage recipient file %s/%s\n", text,
		       dir, ATTEST_AGE_KEY_FILE, dir, ATTEST_AGE_PUB_FILE);
	}
	attest_key_free(k);
	attest_age_identity_free(id);
	return r;
}

int cmd_keygen(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"out", required_argument, NULL, 'o'},
	    {"force", no_argument, NULL, 'f'},
	    {"age-only", no_argument, NULL, 'A'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *dir = NULL;
	bool force = false, age_only = false;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "o:fh", opts, NULL)) != -1) {
		switch (c) {
		case 'o':
			dir = optarg;
			break;
		case 'f':
			force = true;
			break;
		case 'A':
			age_only = true;
			break;
		case 'h':
			keygen_usage(stdout);
			return 0;
		default:
			keygen_usage(stderr);
			return 2;
		}
	}
	if (!dir || optind != argc) {
		keygen_usage(stderr);
		return 2;
	}
	_cleanup_err_ err *e = NULL;
	if (keygen_write(dir, force, age_only, &e) < 0) {
		fprintf(stderr, "aisp keygen: %s\n", err_msg(e));
		return 1;
	}
	return 0;
}
