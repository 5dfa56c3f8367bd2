/* aisp seal / aisp unseal: encryption to age recipients and decryption with age identities, in
 * the age format (attest/AGE.md), interchangeable with the stock `age` command both ways. The
 * whole input is read into memory (bounded); unseal writes nothing unless every byte of the
 * file authenticated. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "attest/attest.h"
#include "cli/cli.h"
#include "common/cleanup.h"
#include "common/util.h"
#include "common/xalloc.h"

#define RECIPIENTS_FILE_MAX (1u * 1024 * 1024)

static void seal_usage(FILE *f)
{
	fprintf(f,
	        "usage: aisp seal -r RECIPIENT [-r ...] [-R FILE] [-a] [-o OUT] [FILE|-]\n"
	        "  encrypts FILE (default: standard input) in the age format to every age1...\n"
	        "  RECIPIENT and every recipient in -R FILE (one per line; empty lines and '#'\n"
	        "  comments ignored; e.g. a node's DIR/age.pub). -a writes ASCII armor. OUT is\n"
	        "  written atomically (mode 0644); binary output is not written to a terminal.\n"
	        "  At most %d recipients and %u bytes of input.\n",
	        ATTEST_AGE_STANZA_MAX, ATTEST_AGE_INPUT_MAX);
}

static void unseal_usage(FILE *f)
{
	fprintf(f, "usage: aisp unseal -i IDENTITY [-i ...] [-o OUT] [FILE|-]\n"
	           "  decrypts an age file (binary or ASCII-armored; default: standard input)\n"
	           "  with the identities in each IDENTITY file (age-keygen's format, mode 0600,\n"
	           "  e.g. a node's DIR/age.key). Nothing is written unless the whole file\n"
	           "  authenticates; OUT is written atomically with mode 0600.\n");
}

/* Reads path ("-" or NULL: standard input) up to max bytes. */
static int read_input(const char *path, size_t max, buf *b, err **e)
{
	bool std = !path || !strcmp(path, "-");
	_cleanup_close_ int fd = std ? -1 : open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (!std && fd < 0)
		return err_set(e, errno, "open %s", path);
	if (read_all(std ? STDIN_FILENO : fd, b, max + 1) < 0)
		return err_set(e, errno, "read %s", std ? "standard input" : path);
	if (b->len > max)
		return err_set(e, 0, "%s: larger than %zu bytes", std ? "standard input" : path,
		               max);
	return 0;
}

/* Writes data to path atomically (write_file_at beside it), or to standard output. */
static int write_output(const char *path, const void *data, size_t len, mode_t mode, err **e)
{
	if (!path || !strcmp(path, "-"))
		return write_all(STDOUT_FILENO, data, len) < 0
		           ? err_set(e, errno, "write standard output")
		           : 0;
	return write_file_path(path, data, len, mode, e);
}

struct recipients {
	attest_age_recipient r[ATTEST_AGE_STANZA_MAX];
	size_t n;
};

static int add_recipient(struct recipients *rs, const char *text, err **e)
{
	if (rs->n == ATTEST_AGE_STANZA_MAX)
		return err_set(e, 0, "more than %d recipients", ATTEST_AGE_STANZA_MAX);
	if (attest_age_recipient_parse(&rs->r[rs->n], text, e) < 0)
		return -1;
	rs->n++;
	return 0;
}

static int add_recipients_file(struct recipients *rs, const char *path, err **e)
{
	buf b = BUF_INIT;
	int r = read_input(path, RECIPIENTS_FILE_MAX, &b, e);
	char *save = NULL, *s = (char *)buf_str(&b);
	size_t line = 0;
	for (char *l = s; r == 0 && l && *l; l = save) {
		char *lf = strchr(l, '\n');
		save = lf ? lf + 1 : NULL;
		if (lf)
			*lf = '\0';
		line++;
		size_t len = strlen(l);
		if (len && l[len - 1] == '\r')
			l[len - 1] = '\0';
		if (*l && *l != '#' && add_recipient(rs, l, e) < 0)
			r = err_prefix(e, "%s:%zu", path, line);
	}
	buf_deinit(&b);
	return r;
}

static int seal_run(const struct recipients *rs, bool armor, const char *in, const char *out,
                    err **e)
{
	if (rs->n == 0)
		return err_set(e, 0, "no recipients (-r age1... or -R FILE)");
	if (!armor && (!out || !strcmp(out, "-")) && isatty(STDOUT_FILENO))
		return err_set(e, 0,
		               "refusing to write binary ciphertext to a terminal (use -a or "
		               "-o)");
	buf plain = BUF_INIT;
	uint8_t *c = NULL;
	size_t len = 0;
	int r = read_input(in, ATTEST_AGE_INPUT_MAX, &plain, e);
	if (r == 0)
		r = attest_age_encrypt(plain.data, plain.len, rs->r, rs->n, armor, &c, &len, e);
	if (plain.data)
		OPENSSL_cleanse(plain.data, plain.len);
	buf_deinit(&plain);
	if (r == 0)
		r = write_output(out, c, len, 0644, e);
	free(c);
	return r;
}

int cmd_seal(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"recipient", required_argument, NULL, 'r'},
	    {"recipients-file", required_argument, NULL, 'R'},
	    {"armor", no_argument, NULL, 'a'},
	    {"output", required_argument, NULL, 'o'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	_cleanup_free_ struct recipients *rs = xzalloc(sizeof(*rs));
	_cleanup_err_ err *e = NULL;
	const char *out = NULL;
	bool armor = false;
	int c, bad = 0;
	optind = 1;
	while (!bad && (c = getopt_long(argc, argv, "r:R:ao:h", opts, NULL)) != -1) {
		switch (c) {
		case 'r':
			bad = add_recipient(rs, optarg, &e) < 0;
			break;
		case 'R':
			bad = add_recipients_file(rs, optarg, &e) < 0;
			break;
		case 'a':
			armor = true;
			break;
		case 'o':
			out = optarg;
			break;
		case 'h':
			seal_usage(stdout);
			return 0;
		default:
			seal_usage(stderr);
			return 2;
		}
	}
	if (!bad && optind + 1 < argc) {
		seal_usage(stderr);
		return 2;
	}
	if (bad || seal_run(rs, armor, optind < argc ? argv[optind] : NULL, out, &e) < 0) {
		fprintf(stderr, "aisp seal: %s\n", err_msg(e));
		return 1;
	}
	return 0;
}

static int unseal_run(attest_age_identity **ids, size_t n, const char *in, const char *out, err **e)
{
	if (n == 0)
		return err_set(e, 0, "no identities (-i FILE)");
	buf c = BUF_INIT;
	uint8_t *p = NULL;
	size_t len = 0;
	attest_age_decrypt_opts o = {.max_size = ATTEST_AGE_INPUT_MAX};
	int r = read_input(in, ATTEST_AGE_INPUT_MAX, &c, e);
	if (r == 0)
		r = attest_age_decrypt(c.data, c.len, ids, n, &o, &p, &len, NULL, e);
	buf_deinit(&c);
	if (r == 0)
		r = write_output(out, p, len, 0600, e);
	if (p)
		OPENSSL_cleanse(p, len);
	free(p);
	return r;
}

int cmd_unseal(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"identity", required_argument, NULL, 'i'},
	    {"output", required_argument, NULL, 'o'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	_cleanup_err_ err *e = NULL;
	attest_age_identity **ids = NULL;
	size_t n = 0;
	const char *out = NULL;
	int c, rc = -1;
	optind = 1;
	while ((c = getopt_long(argc, argv, "i:o:h", opts, NULL)) != -1) {
		attest_age_identity **more = NULL;
		size_t n_more = 0;
		if (c == 'i' && attest_age_identities_load(optarg, &more, &n_more, &e) < 0)
			goto done;
		if (c == 'i') {
			ids = xreallocarray(ids, n + n_more, sizeof(*ids));
			memcpy(ids + n, more, n_more * sizeof(*ids));
			n += n_more;
			free(more);
		} else if (c == 'o') {
			out = optarg;
		} else {
			unseal_usage(c == 'h' ? stdout : stderr);
			rc = c == 'h' ? 0 : 2;
			goto done;
		}
	}
	if (optind + 1 < argc) {
		unseal_usage(stderr);
		rc = 2;
		goto done;
	}
	rc = unseal_run(ids, n, optind < argc ? argv[optind] : NULL, out, &e);
done:
	if (rc < 0)
		fprintf(stderr, "aisp unseal: %s\n", err_msg(e));
	attest_age_identities_free(ids, n);
	return rc < 0 ? 1 : rc;
}
