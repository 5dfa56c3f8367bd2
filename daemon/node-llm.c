/* The node's llm client for chains' llm steps ([llm] in aispd.conf; daemon/LLM.md): the API key
 * read once from api_key_file (a regular file, not a link, accessible by its owner only; its
 * first line), the HTTP client on the node's loop and the llm built from the config; and the
 * check of a chain's llm steps against what this node allows, before the task is leased.
 *
 * The key lives in the llm's memory only (and in the header libcurl sends): it is never logged,
 * never passed to a task, a sandbox, Redis or a result, and messages about the file never
 * quote its contents. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "daemon/node.h"

#define API_KEY_FILE_MAX 4096

/* The key: the file's first line, without its line end. Wiped and freed by the caller. */
static int read_api_key(const char *path, char **out, err **e)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return err_set(e, errno, "[llm] api_key_file %s", path);
	struct stat st;
	if (fstat(fd, &st) < 0)
		return err_set(e, errno, "[llm] api_key_file %s: stat", path);
	if (!S_ISREG(st.st_mode))
		return err_set(e, 0, "[llm] api_key_file %s: not a regular file", path);
	if (st.st_mode & 077)
		return err_set(e, 0,
		               "[llm] api_key_file %s has mode %04o: it must not be accessible by "
		               "group or others (chmod 600 %s)",
		               path, (unsigned)(st.st_mode & 07777), path);
	buf b = BUF_INIT;
	if (read_all(fd, &b, API_KEY_FILE_MAX) < 0) {
		buf_deinit(&b);
		return err_set(e, errno, "[llm] api_key_file %s: read (at most %d bytes)", path,
		               API_KEY_FILE_MAX);
	}
	size_t n = strcspn(buf_str(&b), "\r\n");
	*out = xstrndup(buf_str(&b), n);
	explicit_bzero(b.data, b.cap);
	buf_deinit(&b);
	if (!n)
		return err_set(e, 0, "[llm] api_key_file %s: its first line is empty", path);
	return 0;
}

static void wipe(char **key)
{
	if (*key) {
		explicit_bzero(*key, strlen(*key));
		free(*key);
	}
}

static int make_llm(node *n, const char *key, err **e)
{
	const config *c = n->cfg;
	_cleanup_free_ llm_price *prices = xcalloc(c->n_llm_prices + 1, sizeof(*prices));
	for (size_t i = 0; i < c->n_llm_prices; i++)
		prices[i] = (llm_price){c->llm_prices[i].model, c->llm_prices[i].prompt_per_mtok,
		                        c->llm_prices[i].completion_per_mtok};
	llm_options o = {
	    .base_url = c->llm_base_url,
	    .api_key = key,
	    .models = (const char *const *)c->llm_models,
	    .prices = prices,
	    .n_prices = c->n_llm_prices,
	    .max_tokens = c->llm_max_tokens,
	    .connect_timeout_ms = c->llm_connect_timeout_ms,
	    .timeout_ms = c->llm_timeout_ms,
	    .max_attempts = (int)c->llm_max_attempts,
	    .retry_budget_ms = c->llm_retry_budget_ms,
	    .retry_base_ms = c->llm_retry_base_ms,
	    .max_response_bytes = (size_t)c->llm_max_response_bytes,
	    .ca_file = c->llm_ca_file,
	    .allow_http = c->llm_allow_http,
	    .allow_private = c->llm_allow_private,
	};
	return llm_new(&n->llm, n->hc, &o, e);
}

int node_llm_open(node *n, err **e)
{
	const config *c = n->cfg;
	if (!c->llm_enabled)
		return 0;
	char *key = NULL;
	int rc = read_api_key(c->llm_api_key_file, &key, e);
	if (rc == 0 && !(n->hc = http_client_new(n->base, e)))
		rc = -1;
	if (rc == 0)
		rc = make_llm(n, key, e);
	wipe(&key);
	if (rc < 0)
		return -1;
	if (c->llm_allow_http || c->llm_allow_private)
		log_warn(
		    "[llm] allow_insecure_http or allow_private_addresses is set: these are for "
		    "tests only");
	log_info("llm steps: %s, %zu model%s allowed",
	         c->llm_base_url ? c->llm_base_url : LLM_DEFAULT_BASE_URL, c->n_llm_models,
	         c->n_llm_models == 1 ? "" : "s");
	return 0;
}

void node_llm_close(node *n)
{
	n->llm = llm_free(n->llm);
	n->hc = http_client_free(n->hc);
}

char *node_llm_check(const node *n, const proto_task *t)
{
	for (size_t i = 0; i < t->n_steps; i++) {
		const proto_step *s = &t->steps[i];
		if (s->type != PROTO_STEP_LLM)
			continue;
		if (!n->llm)
			return xasprintf(
			    "steps[%zu]: this node runs no llm steps (its config has no "
			    "[llm] section)",
			    i);
		llm_request rq = {.model = s->model,
		                  .temperature_milli = s->temperature_milli,
		                  .max_tokens = s->max_tokens};
		_cleanup_err_ err *e = NULL;
		if (llm_check_request(n->llm, &rq, &e) < 0)
			return xasprintf("steps[%zu]: %s", i, err_msg(e));
	}
	return NULL;
}
