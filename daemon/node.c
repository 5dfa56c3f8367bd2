/* The node (node.h): what it is made of and in which order it is built and torn down, the list
 * of tasks in flight, and what those tasks borrow (task_host): resolving a task to a runtime,
 * image and limits, and signing a result into the node's hash chain. */
#include "daemon/node.h"

#include <dirent.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "daemon/chain-save.h"

#define MAX_IMAGES 64

/* ---- runtimes and images ---- */

const sandbox_runtime *node_runtime(const node *n, const char *name)
{
	for (size_t i = 0; i < n->n_rts; i++)
		if (!strcmp(sandbox_runtime_name(n->rts[i]), name))
			return n->rts[i];
	return NULL;
}

const sandbox_image *node_image(node *n, const char *name_or_digest, err **e)
{
	sandbox_image img = {0};
	if (sandbox_image_resolve(n->cfg->image_store, name_or_digest, &img, e) < 0)
		return NULL;
	for (size_t i = 0; i < n->n_imgs; i++)
		if (!strcmp(n->imgs[i].digest, img.digest)) {
			sandbox_image_deinit(&img);
			return &n->imgs[i];
		}
	/* Kept for the node's lifetime: pools and specs borrow these strings, so the array is
	 * allocated once and never moves. */
	if (n->n_imgs == MAX_IMAGES) {
		log_error("more than %d distinct images; not caching", MAX_IMAGES);
		sandbox_image_deinit(&img);
		err_set(e, 0, "too many distinct images on this node");
		return NULL;
	}
	if (!n->imgs)
		n->imgs = xcalloc(MAX_IMAGES, sizeof(*n->imgs));
	n->imgs[n->n_imgs] = img;
	return &n->imgs[n->n_imgs++];
}

void node_list_images(node *n)
{
	buf names = BUF_INIT, digests = BUF_INIT;
	_cleanup_free_ char *dir = xasprintf("%s/names", n->cfg->image_store);
	DIR *d = opendir(dir);
	for (struct dirent *de = d ? readdir(d) : NULL; de; de = readdir(d)) {
		sandbox_image img = {0};
		if (de->d_name[0] == '.' ||
		    sandbox_image_resolve(n->cfg->image_store, de->d_name, &img, NULL) < 0)
			continue;
		buf_appendf(&names, "%s%s", names.len ? "," : "", de->d_name);
		buf_appendf(&digests, "%s%s", digests.len ? "," : "", img.digest);
		sandbox_image_deinit(&img);
	}
	if (d)
		closedir(d);
	free(n->images_csv);
	free(n->image_digests_csv);
	n->images_csv = xstrdup(buf_str(&names));
	n->image_digests_csv = xstrdup(buf_str(&digests));
	buf_deinit(&names);
	buf_deinit(&digests);
}

/* Every enabled runtime that works joins n->rts; each one that does not is reported at the
 * line of its [runtime.NAME] path, or of [runtimes] enabled. */
static void open_runtimes(node *n, checks *k)
{
	const config *c = n->cfg;
	n->rts = xcalloc(c->n_enabled, sizeof(*n->rts));
	for (size_t i = 0; i < c->n_enabled; i++) {
		const char *name = c->enabled[i];
		const config_runtime *r = config_find_runtime(c, name);
		sandbox_runtime_opts o = {
		    .name = name,
		    .path = r ? r->path : NULL,
		    .kind = sandbox_runtime_kind_for(r && r->kind ? r->kind : name),
		    .platform = r ? r->platform : NULL,
		    .extra_flags = r ? (const char *const *)r->flags : NULL,
		};
		_cleanup_err_ err *e = NULL;
		_cleanup_free_ char *sec = xasprintf("runtime.%s", name);
		if (sandbox_runtime_new(&n->rts[n->n_rts], &o, c->run_dir, &e) < 0) {
			checks_error(k, r && r->path ? sec : "runtimes",
			             r && r->path ? "path" : "enabled", "%s", err_msg(e));
			continue;
		}
		log_info("runtime %s: %s", name, sandbox_runtime_version(n->rts[n->n_rts]));
		if (o.kind == SANDBOX_RT_RUNSC &&
		    checks_platform(k, name, o.path ? o.path : name,
		                    o.platform ? o.platform : "ptrace") < 0) {
			n->rts[n->n_rts] = sandbox_runtime_free(n->rts[n->n_rts]);
			continue;
		}
		n->n_rts++;
	}
	n->runtimes_csv = config_enabled_list(c, ",");
}

/* ---- the pool ---- */

/* `aisp image build NAME`, with --store when the store is not the default one. */
static char *build_hint(const config *c, const char *image)
{
	bool own = strcmp(c->image_store, SANDBOX_IMAGE_STORE_DEFAULT) != 0;
	return xasprintf("build it with `aisp image build %s%s%s`", image, own ? " --store " : "",
	                 own ? c->image_store : "");
}

/* One [pool] target as a spec. Returns 0, or -1 when it was reported. The config checked the
 * runtime is enabled and the language known; a runtime that did not open was reported. */
static int target_spec(node *n, checks *k, const config_pool_target *pt, sandbox_spec *spec)
{
	proto_lang lang;
	_cleanup_free_ char *key = xasprintf("%s/%s/%s", pt->runtime, pt->image, pt->lang);
	spec->rt = node_runtime(n, pt->runtime);
	if (!spec->rt || proto_lang_parse(pt->lang, &lang) < 0)
		return -1;
	_cleanup_err_ err *e = NULL;
	const sandbox_image *img = node_image(n, pt->image, &e);
	if (!img) {
		_cleanup_free_ char *hint = build_hint(n->cfg, pt->image);
		checks_error(k, "pool", key, "[pool] %s: %s (%s)", key, err_msg(e), hint);
		return -1;
	}
	spec->rootfs = img->rootfs;
	spec->image_digest = img->digest;
	spec->lang = lang;
	sandbox_spec_set_limits(spec, &n->cfg->limits_default);
	return 0;
}

static int make_pool(node *n, const sandbox_spec *specs, err **e)
{
	const config *c = n->cfg;
	_cleanup_free_ char *prefix = xasprintf("aisp-%s-", c->node_id);
	sandbox_ctx_opts so = {
	    .state_dir = c->run_dir,
	    .agent_path = c->agent_path,
	    .id_prefix = prefix,
	};
	if (sandbox_ctx_new(&n->sbx, n->base, &so, e) < 0)
		return err_prefix(e, "sandbox context");
	pool_opts po = {
	    .max_live = (size_t)c->pool_max_live,
	    .max_creating = (size_t)c->pool_max_creating,
	    .max_age_ms = c->pool_max_age_s * 1000,
	    .max_used = (size_t)c->pool_max_used,
	};
	if (pool_new(&n->pool, n->base, &pool_sandbox_ops, n->sbx, &po, e) < 0)
		return err_prefix(e, "pool");
	for (size_t i = 0; i < c->n_targets; i++) {
		const config_pool_target *pt = &c->targets[i];
		if (pool_add(n->pool, &specs[i], (size_t)pt->warm, e) < 0)
			return err_prefix(e, "[pool] %s/%s/%s", pt->runtime, pt->image, pt->lang);
	}
	return 0;
}

/* Resolves every warm target (nothing is created while one may fail). */
static void pool_specs(node *n, checks *k, sandbox_spec *specs)
{
	const config *c = n->cfg;
	for (size_t i = 0; i < c->n_targets; i++) {
		const config_pool_target *pt = &c->targets[i];
		if (target_spec(n, k, pt, &specs[i]) < 0)
			continue;
		for (size_t j = 0; j < i; j++)
			if (specs[j].rt == specs[i].rt && specs[j].lang == specs[i].lang &&
			    specs[j].image_digest &&
			    !strcmp(specs[j].image_digest, specs[i].image_digest)) {
				_cleanup_free_ char *key =
				    xasprintf("%s/%s/%s", pt->runtime, pt->image, pt->lang);
				checks_error(k, "pool", key, "[pool] %s: the same pool as line %d",
				             key, c->targets[j].line);
			}
	}
}

/* ---- what tasks borrow ---- */

static task_verdict resolve(void *arg, const proto_task *t, task_plan *plan, char **msg)
{
	node *n = arg;
	const config *c = n->cfg;
	if ((*msg = node_llm_check(n, t)))
		return TASK_REJECT; /* a fleet serves the same models: no other node would */
	if ((*msg = proxy_check_task(n->proxy, t)))
		return TASK_REJECT; /* the services are the fleet's configuration, like models */
	const char *rname = t->runtime ? t->runtime : c->runtime_default;
	memset(plan, 0, sizeof(*plan));
	plan->rt = node_runtime(n, rname);
	if (!plan->rt) {
		_cleanup_free_ char *l = config_enabled_list(c, ", ");
		*msg =
		    xasprintf("runtime \"%s\" is not enabled on this node (enabled: %s)", rname, l);
		return TASK_ELSEWHERE;
	}
	const char *iname = t->image ? t->image : c->image_default;
	_cleanup_err_ err *e = NULL;
	plan->img = node_image(n, iname, &e);
	if (!plan->img && !t->image) {
		*msg = xasprintf("this node's default image \"%s\" is not in its store (%s)", iname,
		                 err_msg(e));
		return TASK_NODE_FAULT;
	}
	if (!plan->img) {
		if (log_get_level() <= LOG_LVL_DEBUG) {
			buf b = BUF_INIT;
			log_kv(&b, "for_task",
			       t->id); /* no entry here: not a task line (README, Logs) */
			log_kv(&b, "event", "no_image");
			log_kv(&b, "error", err_msg(e));
			log_debug("%s", buf_str(&b) + 1);
			buf_deinit(&b);
		}
		node_list_images(n);
		*msg = xasprintf("unknown image \"%s\" (this node has: %s)", iname,
		                 n->images_csv[0] ? n->images_csv : "none");
		return TASK_ELSEWHERE;
	}
	plan->limits = t->limits;
	if (proto_limits_resolve(&plan->limits, &c->limits_default, &c->limits_max, &e) < 0) {
		*msg = xstrdup(err_msg(e));
		return TASK_ELSEWHERE;
	}
	plan->spec.rt = plan->rt;
	plan->spec.rootfs = plan->img->rootfs;
	plan->spec.image_digest = plan->img->digest;
	plan->spec.lang = t->lang;
	sandbox_spec_set_limits(&plan->spec, &plan->limits);
	return TASK_SERVE;
}

/* One task in flight: no other task waits for the loop, so the save is made here and the
 * result goes out without waiting in save (chain_saver_store_now), sparing it the handoff's
 * two wake-ups. The price: this save has no deadline; a disk that hangs holds the loop (its
 * heartbeat and leases stop, so other nodes take its entries over), as every save did before
 * the saver's thread. If it fails, this signature is discarded and the chain stays at its
 * saved state. Otherwise (or while the saver is busy) the chain advances at once and the save
 * goes to the thread. Returns 0, or -1 with *e when this signature is discarded. */
static int save_here(node *n, const attest_chain *next, attest_claim *c, err **e)
{
	_cleanup_err_ err *se = NULL;
	int r = n->n_tasks <= 1 ? chain_saver_store_now(n->saver, next, &se) : 1;
	if (r == 0)
		n->saved = *next;
	if (r >= 0) {
		n->chain = *next;
		if (r == 1)
			chain_saver_save(n->saver, &n->chain);
		return 0;
	}
	n->chain_error = xstrdup(err_msg(se));
	log_error("cannot save the chain state (%s): taking no tasks until it saves; the "
	          "signature of sequence %llu is discarded",
	          n->chain_error, (unsigned long long)c->sequence);
	err_set(e, 0, "the chain state cannot be saved: %s", n->chain_error);
	c->sequence = 0;
	return -1;
}

/* A signed result leaves the node only once its chain state is on disk: saved here at once
 * with one task in flight (save_here), else on the saver's thread while the result waits in
 * save (saved() below; chain-save.h). A signature whose number a restart would hand out again
 * never leaves the node (ATTESTATION.md, "The chain state"). */
static int sign(void *arg, attest_claim *c, char **envelope, char **exec_digest, err **e)
{
	node *n = arg;
	if (!n->key)
		return 0;
	if (n->chain_error)
		return err_set(e, 0, "the chain state cannot be saved: %s", n->chain_error), -2;
	if (!n->saver)
		return err_set(e, 0, "the chain state cannot be saved: it is not open"), -2;
	c->previous = n->chain.previous;
	c->sequence = n->chain.sequence + 1;
	_cleanup_free_ char *att = NULL, *env = NULL, *exec = NULL;
	if (attest_sign(n->key, c, &env, &exec, &att, e) < 0)
		return -1;
	attest_chain next = n->chain;
	attest_chain_advance(&next, att, c->sequence);
	if (save_here(n, &next, c, e) < 0)
		return -2;
	*envelope = steal_pointer(&env);
	if (exec_digest) /* NULL: the caller does not keep it (a sealed result's two statements) */
		*exec_digest = steal_pointer(&exec);
	return 0;
}

/* A save not done by then fails (chain-save.h): the tasks go back to the stream, /healthz says
 * why, instead of the node holding them, and their leases, for as long as its disk hangs. */
#define CHAIN_SAVE_TIMEOUT_MS 10000

static bool saved(void *arg, uint64_t sequence)
{
	const node *n = arg;
	return sequence <= n->saved.sequence;
}

/* Every task waiting for the chain state hears of a save or a failure (task_chain_saved). A
 * task that finishes leaves the array: the one moved into its place is told next. */
static void tell_tasks(node *n, uint64_t sequence, const err *e)
{
	for (size_t i = 0; i < n->n_tasks;) {
		size_t before = n->n_tasks;
		task_chain_saved(n->tasks[i], sequence, e);
		if (n->n_tasks == before)
			i++;
	}
}

/* The saver's word (on the loop). A failure discards every signature past the saved state: the
 * tasks that wait give their entries back, the chain goes on from the saved state (their
 * numbers are handed out again: none was published), and the node takes no task until a
 * save succeeds (node_chain_retry). */
static void on_chain_saved(void *arg, const attest_chain *state, const err *e)
{
	node *n = arg;
	if (e) {
		free(n->chain_error);
		n->chain_error = xstrdup(err_msg(e));
		if (n->chain.sequence > n->saved.sequence)
			log_error(
			    "cannot save the chain state (%s): taking no tasks until it saves; "
			    "the signatures of sequence %llu to %llu are discarded",
			    n->chain_error, (unsigned long long)n->saved.sequence + 1,
			    (unsigned long long)n->chain.sequence);
		else
			log_error(
			    "cannot save the chain state (%s): taking no tasks until it saves",
			    n->chain_error);
		n->chain = n->saved;
		tell_tasks(n, n->saved.sequence, e);
		return;
	}
	n->saved = *state;
	tell_tasks(n, state->sequence, NULL);
	if (n->chain_error) {
		log_info("the chain state saves again (it could not: %s); taking tasks",
		         n->chain_error);
		free(n->chain_error);
		n->chain_error = NULL;
		/* what other nodes left meanwhile, as the reclaim tick would */
		n->cons.want_claim = true;
		consumer_read_more(n);
	}
}

int node_chain_retry(node *n)
{
	if (!n->chain_error)
		return 0;
	chain_saver_resume(n->saver, &n->chain); /* on_chain_saved clears chain_error */
	return -1;
}

static bool id_active(void *arg, const task *self, const char *id)
{
	const node *n = arg;
	for (size_t i = 0; i < n->n_tasks; i++) {
		const task *o = n->tasks[i];
		if (o != self && task_admitted(o) && !strcmp(task_id(o), id))
			return true;
	}
	return false;
}

static void gone(void *arg, task *t)
{
	node *n = arg;
	for (size_t i = 0; i < n->n_tasks; i++)
		if (n->tasks[i] == t) {
			n->tasks[i] = n->tasks[--n->n_tasks];
			break;
		}
	consumer_task_gone(n);
}

static const task_host_ops host_ops = {
    .resolve = resolve,
    .sign = sign,
    .saved = saved,
    .id_active = id_active,
    .gone = gone,
};

/* ---- tasks ---- */

task *node_find_entry(const node *n, const char *entry)
{
	for (size_t i = 0; i < n->n_tasks; i++)
		if (!strcmp(task_entry(n->tasks[i]), entry))
			return n->tasks[i];
	return NULL;
}

void node_add_task(node *n, const char *entry, const char *payload, size_t len, bool fresh,
                   const char *bad_entry)
{
	task *t = task_new(&n->host, entry, payload, len, fresh, bad_entry);
	if (n->n_tasks == n->cap_tasks) {
		n->cap_tasks = n->cap_tasks ? 2 * n->cap_tasks : 16;
		n->tasks = xreallocarray(n->tasks, n->cap_tasks, sizeof(*n->tasks));
	}
	n->tasks[n->n_tasks++] = t;
	task_start(t);
}

void node_update_health(node *n)
{
	pool_stats s;
	pool_get_stats(n->pool, &s);
	if (s.created != n->seen_created)
		n->creation_failing = false;
	else if (s.failed != n->seen_failed)
		n->creation_failing = true;
	n->seen_created = s.created;
	n->seen_failed = s.failed;
}

/* ---- lifecycle ---- */

/* The node's age identity: [node] age_key, else age.key beside the signing key (written by
 * aisp keygen). Optional: without one the node takes no sealed task (and says so). */
static int open_age_key(node *n, err **e)
{
	const config *c = n->cfg;
	_cleanup_free_ char *dir = xstrdup(c->key_path);
	char *slash = strrchr(dir, '/');
	if (slash)
		*slash = '\0';
	_cleanup_free_ char *path =
	    c->age_key_path ? xstrdup(c->age_key_path) : xasprintf("%s/age.key", slash ? dir : ".");
	if (!c->age_key_path && access(path, F_OK) < 0) {
		log_info(
		    "no age identity at %s: sealed tasks are rejected (aisp keygen --age-only)",
		    path);
		return 0;
	}
	if (attest_age_identities_load(path, &n->age_ids, &n->n_age_ids, e) < 0)
		return err_prefix(e, "age identity");
	attest_age_recipient r;
	attest_age_identity_recipient(n->age_ids[0], &r);
	if (attest_recipient_sign(n->key, c->node_id, &r, now_wall_ms(), &n->age_recipient_env, e) <
	    0)
		return err_prefix(e, "age identity");
	n->age_recipient = xmalloc(ATTEST_AGE_RECIPIENT_LEN + 1);
	attest_age_recipient_format(&r, n->age_recipient);
	log_info("age recipient %s (sealed tasks)", n->age_recipient);
	return 0;
}

static void open_key(node *n, checks *k)
{
	const config *c = n->cfg;
	_cleanup_err_ err *e = NULL;
	if (checks_key(k) < 0)
		return;
	if (attest_key_load_private(&n->key, c->key_path, &e) < 0) {
		checks_error(k, "node", "key", "node key: %s", err_msg(e));
		return;
	}
	n->pubkey_pem = attest_key_public_pem(n->key);
	/* --check only reads the chain state: a start creates or converts it */
	int rc = 0;
	if (n->state_dirfd >= 0 && n->check_only)
		rc = attest_chain_load(n->state_dirfd, "chain.json", &n->chain, &e);
	else if (n->state_dirfd >= 0)
		rc = attest_chain_open(n->state_dirfd, "chain.json", &n->chain_file, &n->chain, &e);
	if (rc < 0)
		checks_error(k, "node", "state_dir", "chain state in %s: %s", c->state_dir,
		             err_msg(e));
	else if (attest_chain_skipped(n->chain_file))
		log_warn("chain state in %s: %s", c->state_dir,
		         attest_chain_skipped(n->chain_file));
	n->saved = n->chain;
	if (n->chain_file && chain_saver_new(&n->saver, n->base, n->chain_file,
	                                     CHAIN_SAVE_TIMEOUT_MS, on_chain_saved, n, &e) < 0)
		checks_error(k, "node", "state_dir", "%s", err_msg(e));
	else
		n->chain_file = NULL; /* the saver's */
	_cleanup_err_ err *ae = NULL;
	if (open_age_key(n, &ae) < 0)
		checks_error(k, "node", "age_key", "%s", err_msg(ae));
}

/* The secret store: optional (a node without one rejects the skills that declare a secret). */
static void open_secrets(node *n)
{
	_cleanup_err_ err *e = NULL;
	if (secrets_open(&n->secrets, &n->cfg->secrets, &e) < 0)
		log_info("no secret store (%s): skills that declare secrets are rejected",
		         err_msg(e));
}

static void init_host(node *n)
{
	open_secrets(n);
	const config *c = n->cfg;
	n->host = (task_host){
	    .base = n->base,
	    .pool = n->pool,
	    .m = &n->m,
	    .node_id = c->node_id,
	    .result_ttl_ms = c->result_ttl_s * 1000,
	    .lease_ttl_ms = c->reclaim_ms,
	    .max_deliveries = c->max_deliveries,
	    .handoff_max_hops = 8,
	    .age_ids = n->age_ids,
	    .n_age_ids = n->n_age_ids,
	    .age_recipient = n->age_recipient,
	    .trust = &c->trust,
	    .llm = n->llm,
	    .skill_store = c->skill_store,
	    .secrets = n->secrets,
	    .secrets_cfg = &c->secrets,
	    .proxy = n->proxy,
	    .cpu_second_nusd = c->cost_cpu_second_nusd,
	    .gib_second_nusd = c->cost_gib_second_nusd,
	    .ops = &host_ops,
	    .arg = n,
	};
	/* host.rc is set by consumer_start() when the connection exists. */
}

/* Every startup check and everything a node is made of but the pool, reporting each
 * problem to k; specs receives the [pool] targets. Returns the default image, or NULL. */
static const sandbox_image *build(node *n, checks *k, sandbox_spec *specs)
{
	const config *c = n->cfg;
	checks_host(k, &n->state_dirfd);
	open_key(n, k);
	_cleanup_err_ err *e = NULL;
	if (node_llm_open(n, &e) < 0) /* [llm]: chains' llm steps */
		checks_error(k, "llm", "api_key_file", "%s", err_msg(e));
	err_free(steal_pointer(&e));
	if (proxy_new(&n->proxy, n->base, &c->proxy, &c->secrets, &e) < 0)
		checks_error(k, "proxy", NULL, "%s", err_msg(e));
	err_free(steal_pointer(&e));
	open_runtimes(n, k);
	const sandbox_image *img = node_image(n, c->image_default, &e);
	if (!img) {
		_cleanup_free_ char *hint = build_hint(c, c->image_default);
		checks_error(k, "images", "default", "default image %s: %s (%s)", c->image_default,
		             err_msg(e), hint);
	}
	node_list_images(n);
	pool_specs(n, k, specs);
	return img;
}

static node *node_alloc(const config *cfg, struct event_base *base)
{
	node *n = xzalloc(sizeof(*n));
	n->cfg = cfg;
	n->base = base;
	n->state_dirfd = -1;
	n->started_ms = now_wall_ms();
	return n;
}

int node_new(node **out, const config *cfg, struct event_base *base, err **e)
{
	node *n = node_alloc(cfg, base);
	checks k = {.cfg = cfg};
	_cleanup_free_ sandbox_spec *specs = xcalloc(cfg->n_targets + 1, sizeof(*specs));
	*out = NULL;
	build(n, &k, specs);
	_cleanup_err_ err *he = NULL;
	if (http_start(n, &he) < 0)
		checks_error(&k, "http", "listen", "%s", err_msg(he));
	if (k.errors) {
		node_free(n);
		return err_set(e, 0, "%d startup check%s failed (each is logged above)", k.errors,
		               k.errors == 1 ? "" : "s");
	}
	if (make_pool(n, specs, e) < 0) {
		node_free(n);
		return -1;
	}
	init_host(n);
	*out = n;
	return 0;
}

void node_check(const config *cfg, struct event_base *base, checks *k)
{
	node *n = node_alloc(cfg, base);
	n->check_only = true;
	_cleanup_free_ sandbox_spec *specs = xcalloc(cfg->n_targets + 1, sizeof(*specs));
	const sandbox_image *img = build(n, k, specs);
	if (img && n->n_rts && access(cfg->agent_path, X_OK) == 0)
		checks_sandboxes(k, n, img);
	checks_http(k, n);
	checks_redis(k);
	node_free(n);
}

static void on_pool_gone(void *arg)
{
	event_base_loopexit(arg, NULL);
}

node *node_free(node *n)
{
	if (!n)
		return NULL;
	if (n->pool && !n->cons.stopping) {
		pool_shutdown(n->pool, on_pool_gone, n->base);
		event_base_dispatch(n->base);
	}
	http_stop(n);
	consumer_deinit(n);
	registry_deinit(n);
	n->rv = revocation_free(n->rv);
	n->secrets = secrets_free(n->secrets);
	n->rc = rconn_free(n->rc);
	n->rd = rconn_free(n->rd);
	n->dur = durability_free(n->dur); /* after rc: its WAIT in flight has come back */
	n->pool = pool_free(n->pool);
	n->sbx = sandbox_ctx_free(n->sbx);
	for (size_t i = 0; i < n->n_rts; i++)
		sandbox_runtime_free(n->rts[i]);
	free(n->rts);
	for (size_t i = 0; i < n->n_imgs; i++)
		sandbox_image_deinit(&n->imgs[i]);
	free(n->imgs);
	node_llm_close(n);
	n->proxy = proxy_free(n->proxy);
	n->key = attest_key_free(n->key);
	free(n->pubkey_pem);
	n->age_ids = attest_age_identities_free(n->age_ids, n->n_age_ids);
	free(n->age_recipient_env);
	free(n->age_recipient);
	free(n->chain_error);
	n->saver = chain_saver_free(n->saver);
	n->chain_file = attest_chain_close(n->chain_file);
	free(n->runtimes_csv);
	free(n->images_csv);
	free(n->image_digests_csv);
	free(n->tasks);
	if (n->state_dirfd >= 0)
		close(n->state_dirfd);
	free(n);
	return NULL;
}
