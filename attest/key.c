/* Ed25519 node keys: generation, PEM files (private keys refused when group/other can read
 * them), the key id, signing and verification, all through OpenSSL 3's EVP interface. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "attest/attest.h"
#include "attest/internal.h"
#include "common/cleanup.h"
#include "common/util.h"
#include "common/xalloc.h"

struct attest_key {
	EVP_PKEY *pkey;
	bool private_key;
	char id[ATTEST_DIGEST_LEN];
};

DEFINE_CLEANUP_FUNC(BIO *, BIO_free)
DEFINE_CLEANUP_FUNC(EVP_PKEY *, EVP_PKEY_free)
DEFINE_CLEANUP_FUNC(EVP_PKEY_CTX *, EVP_PKEY_CTX_free)
DEFINE_CLEANUP_FUNC(EVP_MD_CTX *, EVP_MD_CTX_free)
DEFINE_CLEANUP_FUNC(attest_key *, attest_key_free)

const char *attest_ossl_reason(void)
{
	unsigned long code = ERR_get_error();
	ERR_clear_error();
	const char *r = code ? ERR_reason_error_string(code) : NULL;
	return r ? r : "unknown OpenSSL error";
}

static int key_wrap(attest_key **out, EVP_PKEY **pkey, bool priv, err **e)
{
	if (EVP_PKEY_get_id(*pkey) != EVP_PKEY_ED25519)
		return err_set(e, 0, "not an Ed25519 key");
	unsigned char *der = NULL;
	int n = i2d_PUBKEY(*pkey, &der);
	if (n <= 0)
		return err_set(e, 0, "encode public key: %s", attest_ossl_reason());
	attest_key *k = xzalloc(sizeof(*k));
	attest_sha256_str(der, (size_t)n, k->id);
	OPENSSL_free(der);
	k->pkey = steal_pointer(pkey);
	k->private_key = priv;
	*out = k;
	return 0;
}

int attest_key_generate(attest_key **out, err **e)
{
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	if (!pkey)
		return err_set(e, 0, "generate Ed25519 key: %s", attest_ossl_reason());
	return key_wrap(out, &pkey, true, e);
}

static int key_from_pem(attest_key **out, const char *pem, size_t len, bool priv, err **e)
{
	if (len > ATTEST_PEM_MAX)
		return err_set(e, 0, "key PEM larger than %u bytes", ATTEST_PEM_MAX);
	_cleanup_(BIO_freep) BIO *bio = BIO_new_mem_buf(pem, (int)len);
	if (!bio)
		return err_set(e, ENOMEM, "BIO_new_mem_buf");
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *pkey =
	    priv ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL)
	         : PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
	if (!pkey)
		return err_set(e, 0, "no %s key in PEM: %s", priv ? "private" : "public",
		               attest_ossl_reason());
	return key_wrap(out, &pkey, priv, e);
}

int attest_key_from_private_pem(attest_key **out, const char *pem, size_t len, err **e)
{
	return key_from_pem(out, pem, len, true, e);
}

int attest_key_from_public_pem(attest_key **out, const char *pem, size_t len, err **e)
{
	return key_from_pem(out, pem, len, false, e);
}

int attest_read_secret_file(const char *path, bool secret, size_t max, buf *out, err **e)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return err_set(e, errno, "open %s", path);
	struct stat st;
	if (fstat(fd, &st) < 0)
		return err_set(e, errno, "stat %s", path);
	if (!S_ISREG(st.st_mode))
		return err_set(e, 0, "%s: not a regular file", path);
	if (secret && (st.st_mode & 077))
		return err_set(e, 0,
		               "private key %s has mode %04o: it must not be accessible by group "
		               "or others (chmod 600 %s)",
		               path, (unsigned)(st.st_mode & 07777), path);
	if ((size_t)st.st_size > max)
		return err_set(e, 0, "%s: larger than %zu bytes", path, max);
	if (read_all(fd, out, max) < 0)
		return err_set(e, errno, "read %s", path);
	return 0;
}

static int key_load(attest_key **out, const char *path, bool priv, err **e)
{
	buf b = BUF_INIT;
	int r = attest_read_secret_file(path, priv, ATTEST_PEM_MAX, &b, e);
	if (r == 0 && key_from_pem(out, buf_str(&b), b.len, priv, e) < 0)
		r = err_prefix(e, "%s", path);
	if (b.data)
		OPENSSL_cleanse(b.data, b.len);
	buf_deinit(&b);
	return r;
}

int attest_key_load_private(attest_key **out, const char *path, err **e)
{
	return key_load(out, path, true, e);
}

int attest_key_load_public(attest_key **out, const char *path, err **e)
{
	return key_load(out, path, false, e);
}

/* PEM text of the private (priv) or public key into b. */
static int key_pem(const attest_key *k, bool priv, buf *b, err **e)
{
	_cleanup_(BIO_freep) BIO *bio = BIO_new(BIO_s_mem());
	if (!bio)
		return err_set(e, ENOMEM, "BIO_new");
	int ok = priv ? PEM_write_bio_PrivateKey(bio, k->pkey, NULL, NULL, 0, NULL, NULL)
	              : PEM_write_bio_PUBKEY(bio, k->pkey);
	if (!ok)
		return err_set(e, 0, "write PEM: %s", attest_ossl_reason());
	char *p = NULL;
	long n = BIO_get_mem_data(bio, &p);
	buf_append(b, p, (size_t)n);
	if (priv)
		OPENSSL_cleanse(p, (size_t)n);
	return 0;
}

char *attest_key_public_pem(const attest_key *k)
{
	buf b = BUF_INIT;
	if (key_pem(k, false, &b, NULL) < 0)
		abort(); /* an in-memory Ed25519 public key always encodes */
	return buf_steal(&b, NULL);
}

static int write_new(int dfd, const char *name, const buf *b, mode_t mode, bool force, err **e)
{
	if (force)
		return write_file_at(dfd, name, b->data, b->len, mode, e);
	_cleanup_close_ int fd =
	    openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0)
		return err_set(e, errno, "create %s%s", name,
		               errno == EEXIST ? " (use --force to replace it)" : "");
	if (fchmod(fd, mode) < 0 || write_all(fd, b->data, b->len) < 0 || fsync(fd) < 0)
		return err_set(e, errno, "write %s", name);
	return 0;
}

int attest_key_write_pair(const attest_key *k, const char *dir, bool force, err **e)
{
	if (!k->private_key)
		return err_set(e, 0, "write key pair: not a private key");
	_cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return err_set(e, errno, "open directory %s", dir);
	buf priv = BUF_INIT, pub = BUF_INIT;
	int r = key_pem(k, true, &priv, e);
	if (r == 0)
		r = key_pem(k, false, &pub, e);
	if (r == 0)
		r = write_new(dfd, "private.pem", &priv, 0600, force, e);
	if (r == 0)
		r = write_new(dfd, "public.pem", &pub, 0644, force, e);
	if (priv.data)
		OPENSSL_cleanse(priv.data, priv.len);
	buf_deinit(&priv);
	buf_deinit(&pub);
	return r < 0 ? err_prefix(e, "%s", dir) : 0;
}

const char *attest_key_id(const attest_key *k)
{
	return k->id;
}

bool attest_key_is_private(const attest_key *k)
{
	return k->private_key;
}

int attest_key_sign(const attest_key *k, const void *data, size_t len, uint8_t sig[ATTEST_SIG_LEN],
                    err **e)
{
	if (!k->private_key)
		return err_set(e, 0, "sign: not a private key");
	_cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	size_t sig_len = ATTEST_SIG_LEN;
	if (!ctx || EVP_DigestSignInit(ctx, NULL, NULL, NULL, k->pkey) != 1 ||
	    EVP_DigestSign(ctx, sig, &sig_len, data, len) != 1 || sig_len != ATTEST_SIG_LEN)
		return err_set(e, 0, "Ed25519 sign: %s", attest_ossl_reason());
	return 0;
}

bool attest_key_verify(const attest_key *k, const void *data, size_t len, const uint8_t *sig,
                       size_t sig_len)
{
	_cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (!ctx || EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, k->pkey) != 1)
		return false;
	bool ok = EVP_DigestVerify(ctx, sig, sig_len, data, len) == 1;
	ERR_clear_error();
	return ok;
}

attest_key *attest_key_free(attest_key *k)
{
	if (k) {
		EVP_PKEY_free(k->pkey);
		free(k);
	}
	return NULL;
}
