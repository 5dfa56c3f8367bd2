/* The TLS sidecar checks (sidecar.h).
 *
 * Why a sidecar: hiredis 0.14's async context reads and writes its socket itself, and 0.14 has
 * no hook for a TLS layer (that came with hiredis 1.0's redisContextFuncs). A TLS transport
 * under it would mean a socketpair and an in-process proxy on the loop, which is what stunnel
 * already is, outside the node's address space, packaged by Debian, and usable by aisp and the
 * gateway alike. So the node and the CLI connect to a local stunnel client; these checks prove
 * that the local port is that stunnel (not a plain Redis), that it verifies the server, and
 * that its credentials work (an OpenSSL probe with the same files names what fails).
 *
 * Finding the sidecar: the listening socket of the address is looked up in /proc/net/tcp{,6},
 * its owner through /proc/<pid>/fd, the configuration file from the owner's command line. */
#include "daemon/sidecar.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <ini.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/util.h"
#include "common/xalloc.h"

/* One address the node connects to. */
typedef struct endpoint {
	const char *addr;
	bool sentinel; /* AUTH with the sentinel credentials */
} endpoint;

/* ---- where the node connects ---- */

static bool loopback(const char *host)
{
	struct in_addr a4;
	struct in6_addr a6;
	if (!strcasecmp(host, "localhost"))
		return true;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	return inet_pton(AF_INET6, host, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
}

/* Every endpoint into *out (borrowed from c). Returns the count. */
static size_t endpoints(const config *c, endpoint *out, size_t max)
{
	size_t n = 0;
	if (!c->redis_sentinels) {
		out[n++] = (endpoint){c->redis_address, false};
		return n;
	}
	for (size_t i = 0; c->redis_sentinels[i] && n < max; i++)
		out[n++] = (endpoint){c->redis_sentinels[i], true};
	for (size_t i = 0; c->redis_address_map && c->redis_address_map[i] && n < max; i += 2)
		out[n++] = (endpoint){c->redis_address_map[i + 1], false};
	return n;
}

static int check_local(const endpoint *ep, err **e)
{
	_cleanup_free_ char *host = NULL, *path = NULL;
	int port;
	if (addr_split(ep->addr, &host, &port, &path, e) < 0)
		return -1;
	if (path)
		return err_set(e, 0,
		               "[redis] tls_sidecar = yes: %s is a unix socket; give the sidecar's "
		               "loopback host:port (its accept =)",
		               ep->addr);
	if (!loopback(host))
		return err_set(e, 0,
		               "[redis] tls_sidecar = yes, but %s is not on this host: the node "
		               "would speak plain text across the network; connect to the local "
		               "sidecar (deploy/REDIS.md)",
		               ep->addr);
	return 0;
}

/* ---- who listens there ---- */

/* /proc/net/tcp{,6} prints each 32-bit word of an address as the host-order value of the
 * network-order word: comparing words read the same way is right on any byte order. */
static bool proc_addr_matches(const char *hex, const char *host)
{
	size_t n = strlen(hex);
	uint32_t w[4] = {0};
	for (size_t i = 0; i < n / 8 && i < 4; i++) {
		char part[9];
		memcpy(part, hex + 8 * i, 8);
		part[8] = '\0';
		w[i] = (uint32_t)strtoul(part, NULL, 16);
	}
	bool any = !w[0] && !w[1] && !w[2] && !w[3];
	struct in_addr a4;
	struct in6_addr a6;
	if (!strcasecmp(host, "localhost"))
		host = n == 8 ? "127.0.0.1" : "::1";
	if (n == 8 && inet_pton(AF_INET, host, &a4) == 1)
		return any || w[0] == a4.s_addr;
	if (n == 32 && inet_pton(AF_INET6, host, &a6) == 1) {
		uint32_t v[4];
		memcpy(v, &a6, sizeof(v));
		return any || !memcmp(v, w, sizeof(v));
	}
	return false;
}

/* The inode of the socket listening on host:port, or 0. */
static unsigned long listening_inode(const char *host, int port)
{
	static const char *const files[] = {"/proc/net/tcp", "/proc/net/tcp6"};
	for (size_t f = 0; f < 2; f++) {
		_cleanup_fclose_ FILE *fp = fopen(files[f], "re");
		char line[512];
		if (!fp || !fgets(line, sizeof(line), fp)) /* the header */
			continue;
		while (fgets(line, sizeof(line), fp)) {
			char local[64];
			unsigned lport, st;
			unsigned long inode;
			if (sscanf(line, " %*d: %63[0-9A-Fa-f]:%x %*s %x %*s %*s %*s %*s %*s %lu",
			           local, &lport, &st, &inode) != 4)
				continue;
			if (st == 0x0A && (int)lport == port && proc_addr_matches(local, host))
				return inode;
		}
	}
	return 0;
}

/* The process holding socket inode, or 0. */
static pid_t socket_owner(unsigned long inode)
{
	_cleanup_free_ char *want = xasprintf("socket:[%lu]", inode);
	DIR *proc = opendir("/proc");
	pid_t found = 0;
	for (struct dirent *p = proc ? readdir(proc) : NULL; p && !found; p = readdir(proc)) {
		if (strspn(p->d_name, "0123456789") != strlen(p->d_name))
			continue;
		_cleanup_free_ char *fds = xasprintf("/proc/%s/fd", p->d_name);
		DIR *d = opendir(fds);
		for (struct dirent *f = d ? readdir(d) : NULL; f && !found; f = readdir(d)) {
			char link[64];
			_cleanup_free_ char *path = xasprintf("%s/%s", fds, f->d_name);
			ssize_t n = readlink(path, link, sizeof(link) - 1);
			if (n > 0 && (link[n] = '\0', !strcmp(link, want)))
				found = (pid_t)atoi(p->d_name);
		}
		if (d)
			closedir(d);
	}
	if (proc)
		closedir(proc);
	return found;
}

/* pid's comm, and the configuration file of its command line (stunnel's one argument; made
 * absolute against its working directory). */
static void process_info(pid_t pid, char **comm, char **conf)
{
	buf b = BUF_INIT;
	_cleanup_free_ char *cpath = xasprintf("/proc/%d/comm", (int)pid);
	_cleanup_free_ char *apath = xasprintf("/proc/%d/cmdline", (int)pid);
	*comm = NULL;
	*conf = NULL;
	if (read_file_at(AT_FDCWD, cpath, 256, &b, NULL) == 0)
		*comm = xstrndup(buf_str(&b), strcspn(buf_str(&b), "\n"));
	buf_deinit(&b);
	if (read_file_at(AT_FDCWD, apath, 65536, &b, NULL) < 0 || !b.len) {
		buf_deinit(&b);
		return;
	}
	const char *arg1 = memchr(b.data, '\0', b.len);
	if (arg1 && (size_t)(++arg1 - (const char *)b.data) < b.len && arg1[0] && arg1[0] != '-') {
		if (arg1[0] == '/') {
			*conf = xstrdup(arg1);
		} else {
			char cwd[4096];
			_cleanup_free_ char *lpath = xasprintf("/proc/%d/cwd", (int)pid);
			ssize_t n = readlink(lpath, cwd, sizeof(cwd) - 1);
			if (n > 0) {
				cwd[n] = '\0';
				*conf = xasprintf("%s/%s", cwd, arg1);
			}
		}
	}
	buf_deinit(&b);
}

/* ---- stunnel's configuration ---- */

typedef struct service {
	char *name, *accept, *connect, *cafile, *capath, *cert, *key, *check_host, *check_ip, *sni;
	bool client, verify;
} service;

typedef struct stunnel_conf {
	service *s;
	size_t n;
} stunnel_conf;

static int on_conf(void *user, const char *section, const char *k, const char *v)
{
	stunnel_conf *sc = user;
	if (!section[0])
		return 1; /* global options */
	if (!sc->n || strcmp(sc->s[sc->n - 1].name, section)) {
		sc->s = xreallocarray(sc->s, sc->n + 1, sizeof(*sc->s));
		sc->s[sc->n++] = (service){.name = xstrdup(section)};
	}
	service *s = &sc->s[sc->n - 1];
	struct {
		const char *key;
		char **dst;
	} strs[] = {
	    {"accept", &s->accept},        {"connect", &s->connect},  {"CAfile", &s->cafile},
	    {"CApath", &s->capath},        {"cert", &s->cert},        {"key", &s->key},
	    {"checkHost", &s->check_host}, {"checkIP", &s->check_ip}, {"sni", &s->sni}};
	for (size_t i = 0; i < ARRAY_SIZE(strs); i++)
		if (!strcasecmp(k, strs[i].key)) {
			free(*strs[i].dst);
			*strs[i].dst = xstrdup(v);
		}
	if (!strcasecmp(k, "client"))
		s->client = !strcasecmp(v, "yes");
	if (!strcasecmp(k, "verifyChain") || !strcasecmp(k, "verifyPeer"))
		s->verify = s->verify || !strcasecmp(v, "yes");
	if (!strcasecmp(k, "verify"))
		s->verify = s->verify || atoi(v) >= 2;
	return 1;
}

static void conf_deinit(stunnel_conf *sc)
{
	for (size_t i = 0; i < sc->n; i++) {
		service *s = &sc->s[i];
		char *all[] = {s->name, s->accept, s->connect,    s->cafile,   s->capath,
		               s->cert, s->key,    s->check_host, s->check_ip, s->sni};
		for (size_t j = 0; j < ARRAY_SIZE(all); j++)
			free(all[j]);
	}
	free(sc->s);
}

/* The service of sc accepting on port ("port", "host:port"), or NULL. */
static const service *service_for(const stunnel_conf *sc, int port)
{
	for (size_t i = 0; i < sc->n; i++) {
		const char *a = sc->s[i].accept;
		const char *colon = a ? strrchr(a, ':') : NULL;
		if (a && atoi(colon ? colon + 1 : a) == port)
			return &sc->s[i];
	}
	return NULL;
}

/* ---- the TLS probe ---- */

/* A TCP connection to addr within ms (also the timeout of every read and write). -1 with *e. */
static int tcp_connect(const char *addr, int64_t ms, err **e)
{
	_cleanup_free_ char *host = NULL, *path = NULL;
	int port;
	if (addr_split(addr, &host, &port, &path, e) < 0 || path)
		return path ? err_set(e, 0, "%s: not host:port", addr) : -1;
	char ps[16];
	snprintf(ps, sizeof(ps), "%d", port);
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
	int gai = getaddrinfo(host, ps, &hints, &res);
	if (gai)
		return err_set(e, 0, "%s: %s", addr, gai_strerror(gai));
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	int fd = -1, saved = 0;
	for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0);
		if (fd < 0)
			continue;
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
			saved = errno;
			close(fd);
			fd = -1;
		}
	}
	freeaddrinfo(res);
	if (fd < 0)
		return err_set(e, saved, "%s: connect", addr);
	return fd;
}

/* The reason of the last OpenSSL error ("certificate verify failed"), or fallback. */
static const char *ssl_reason(const char *fallback)
{
	unsigned long code = ERR_peek_last_error();
	const char *r = code ? ERR_reason_error_string(code) : NULL;
	return r ? r : fallback;
}

static int load_credentials(SSL_CTX *ctx, const service *s, err **e)
{
	if ((s->cafile || s->capath) &&
	    SSL_CTX_load_verify_locations(ctx, s->cafile, s->capath) != 1)
		return err_set(e, 0, "CAfile %s: %s", s->cafile ? s->cafile : s->capath,
		               ssl_reason("cannot load"));
	if (!s->cert)
		return 0;
	if (SSL_CTX_use_certificate_chain_file(ctx, s->cert) != 1)
		return err_set(e, 0, "cert %s: %s", s->cert, ssl_reason("cannot load"));
	const char *key = s->key ? s->key : s->cert;
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1)
		return err_set(e, 0, "key %s: %s", key,
		               ssl_reason("does not match the certificate"));
	return 0;
}

/* After the handshake: one PING, so that a server that rejects the client certificate (a
 * TLS 1.3 alert after the handshake) says so. */
static int probe_ping(SSL *ssl, const service *s, err **e)
{
	char reply[64];
	int n = SSL_write(ssl, "PING\r\n", 6);
	if (n > 0)
		n = SSL_read(ssl, reply, sizeof(reply));
	if (n > 0 && (reply[0] == '+' || reply[0] == '-'))
		return 0;
	if (n > 0)
		return err_set(e, 0, "the server at %s does not speak Redis over TLS", s->connect);
	return err_set(e, 0,
	               "Redis at %s refused the sidecar's client certificate %s (%s): it must be "
	               "signed by a CA in Redis's tls-ca-cert-file",
	               s->connect, s->cert ? s->cert : "(none: cert = is not set)",
	               ssl_reason("connection closed"));
}

/* The TLS handshake on fd the way the sidecar makes it (its name checks), then PING. */
static int handshake(SSL_CTX *ctx, int fd, const service *s, err **e)
{
	SSL *ssl = SSL_new(ctx);
	SSL_set_fd(ssl, fd);
	_cleanup_free_ char *host = NULL, *path = NULL;
	int port;
	addr_split(s->connect, &host, &port, &path, NULL);
	const char *name = s->sni ? s->sni : s->check_host ? s->check_host : host;
	if (name && !loopback(name) && strspn(name, "0123456789.:") != strlen(name))
		SSL_set_tlsext_host_name(ssl, name);
	if (s->check_host)
		SSL_set1_host(ssl, s->check_host);
	if (s->check_ip)
		X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), s->check_ip);
	int ret = -1;
	if (SSL_connect(ssl) == 1) {
		ret = probe_ping(ssl, s, e);
	} else {
		long v = SSL_get_verify_result(ssl);
		if (v != X509_V_OK)
			err_set(
			    e, 0,
			    "Redis's certificate at %s does not verify with the sidecar's CAfile "
			    "%s: %s",
			    s->connect,
			    s->cafile   ? s->cafile
			    : s->capath ? s->capath
			                : "(none)",
			    X509_verify_cert_error_string(v));
		else
			err_set(e, 0, "TLS handshake with %s failed: %s", s->connect,
			        ssl_reason("no TLS on the other side"));
	}
	SSL_free(ssl);
	return ret;
}

/* Handshake with s->connect the way the sidecar does (its CA, certificate, key, name). */
static int probe_tls(const service *s, int64_t ms, err **e)
{
	ERR_clear_error();
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx)
		return err_set(e, 0, "OpenSSL: %s", ssl_reason("cannot create a context"));
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	int fd = -1, ret = -1;
	if (load_credentials(ctx, s, e) == 0 && (fd = tcp_connect(s->connect, ms, e)) >= 0)
		ret = handshake(ctx, fd, s, e);
	SSL_CTX_free(ctx);
	if (fd >= 0)
		close(fd);
	return ret;
}

/* ---- through the tunnel ---- */

static int ping_through(const config *c, const endpoint *ep, err **e)
{
	_cleanup_free_ char *host = NULL, *path = NULL;
	int port;
	if (addr_split(ep->addr, &host, &port, &path, e) < 0)
		return -1;
	struct timeval tv = {c->redis_timeout_ms / 1000, (c->redis_timeout_ms % 1000) * 1000};
	redisContext *rc = redisConnectWithTimeout(host, port, tv);
	if (!rc || rc->err) {
		err_set(e, 0, "%s: %s", ep->addr, rc ? rc->errstr : "out of memory");
		redisFree(rc);
		return -1;
	}
	redisSetTimeout(rc, tv);
	const char *user = ep->sentinel ? c->redis_sentinel_user : c->redis_user;
	const char *pw = ep->sentinel ? c->redis_sentinel_password : c->redis_password;
	redisReply *r = NULL;
	if (pw)
		r = user ? redisCommand(rc, "AUTH %s %s", user, pw)
		         : redisCommand(rc, "AUTH %s", pw);
	if (!pw || (r && r->type != REDIS_REPLY_ERROR)) {
		freeReplyObject(r);
		r = redisCommand(rc, "PING");
	}
	int ret = 0;
	if (!r || r->type == REDIS_REPLY_ERROR)
		ret = err_set(e, 0, "%s through the sidecar: %s", ep->addr,
		              r               ? r->str
		              : rc->errstr[0] ? rc->errstr
		                              : "no answer");
	freeReplyObject(r);
	redisFree(rc);
	return ret;
}

/* The sidecar in front of ep: stunnel, its client service, the probe, a PING. */
static int check_live(const config *c, const endpoint *ep, err **e)
{
	_cleanup_free_ char *host = NULL, *path = NULL, *comm = NULL, *conf = NULL;
	int port;
	if (addr_split(ep->addr, &host, &port, &path, e) < 0)
		return -1;
	unsigned long inode = listening_inode(host, port);
	if (!inode)
		return err_set(e, 0,
		               "nothing listens on %s: start the TLS sidecar (systemctl start "
		               "aisp-redis-tls)",
		               ep->addr);
	pid_t pid = socket_owner(inode);
	if (pid)
		process_info(pid, &comm, &conf);
	if (!comm || strncmp(comm, "stunnel", 7))
		return err_set(e, 0,
		               "%s is served by %s (pid %d), not by the TLS sidecar (stunnel): the "
		               "node would speak plain text to it",
		               ep->addr, comm ? comm : "an unknown process", (int)pid);
	if (!conf)
		conf = xstrdup("/etc/stunnel/stunnel.conf");
	stunnel_conf sc = {0};
	int ret = -1;
	if (ini_parse(conf, on_conf, &sc) == -1) {
		err_set(e, errno, "the sidecar's configuration %s", conf);
		goto out;
	}
	const service *s = service_for(&sc, port);
	if (!s || !s->connect)
		err_set(e, 0, "the sidecar (pid %d, %s) has no service accepting on port %d",
		        (int)pid, conf, port);
	else if (!s->client)
		err_set(
		    e, 0,
		    "%s [%s]: client = yes is missing: the sidecar would not speak TLS to Redis",
		    conf, s->name);
	else if (!s->verify || (!s->cafile && !s->capath))
		err_set(
		    e, 0,
		    "%s [%s]: the sidecar does not verify Redis's certificate (set verifyChain = "
		    "yes, CAfile and checkHost or checkIP)",
		    conf, s->name);
	else if (probe_tls(s, c->redis_timeout_ms, e) < 0)
		err_prefix(e, "the TLS sidecar for %s (%s [%s])", ep->addr, conf, s->name);
	else
		ret = ping_through(c, ep, e);
out:
	conf_deinit(&sc);
	return ret;
}

int sidecar_check(const config *c, bool live, err **e)
{
	if (!c->redis_tls_sidecar)
		return 0;
	endpoint eps[2 * CONFIG_MAX_SENTINELS + 64];
	size_t n = endpoints(c, eps, ARRAY_SIZE(eps));
	for (size_t i = 0; i < n; i++)
		if (check_local(&eps[i], e) < 0)
			return -1;
	for (size_t i = 0; live && i < n; i++)
		if (check_live(c, &eps[i], e) < 0)
			return -1;
	return 0;
}
