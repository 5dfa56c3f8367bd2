/* aisp keygen: creates a node's Ed25519 signing key pair (private.pem 0600, public.pem 0644)
 * in a directory, and prints its key id. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "attest/attest.h"
#include "cli/cli.h"
#include "common/cleanup.h"
#include "common/util.h"

static void keygen_usage(FILE *f)
{
	fprintf(f, "usage: aisp keygen --out DIR [--force]\n"
	           "  creates DIR/private.pem (mode 0600) and DIR/public.pem; DIR is created\n"
	           "  (mode 0700) when missing. --force replaces an existing pair.\n");
}

int cmd_keygen(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"out", required_argument, NULL, 'o'},
	    {"force", no_argument, NULL, 'f'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *dir = NULL;
	bool force = false;
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
	attest_key *k = NULL;
	if (mkdir_p(dir, 0700, &e) < 0 || attest_key_generate(&k, &e) < 0 ||
	    attest_key_write_pair(k, dir, force, &e) < 0) {
		fprintf(stderr, "aisp keygen: %s\n", err_msg(e));
		attest_key_free(k);
		return 1;
	}
	printf("key id %s\nprivate key %s/private.pem\npublic key %s/public.pem\n",
	       attest_key_id(k), dir, dir);
	attest_key_free(k);
	return 0;
}
