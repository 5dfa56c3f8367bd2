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

static int open_runtimes(node *n, err **e)
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
		if (sandbox_runtime_new(&n->rts[n->n_rts], &o, c->run_dir, e) < 0)
			return err_prefix(e, "runtime %s", name);
		log_info("runtime %s: %s", name, sandbox_runtime_version(n->rts[n->n_rts]));
		n->n_rts++;
	}
	n->runtimes_csv = config_enabled_list(c, ",");
	return 0;
}

/* ---- the pool ---- */

/* One [pool] target as a spec. Returns 0 or -1 with *e naming the target. */
static int target_spec(node *n, const config_pool_target *pt, sandbox_spec *spec, err **e)
{
	proto_lang lang;
	spec->rt = node_runtime(n, pt->runtime);
	if (!spec->rt)
		return err_set(e, 0, "[pool] %s/%s/%s: runtime not enabled", pt->runtime, pt->image,
		               pt->lang);
	if (proto_lang_parse(pt->lang, &lang) < 0)
		return err_set(e, 0, "[pool] %s/%s/%s: unknown language \"%s\"", pt->runtime,
		               pt->image, pt->lang, pt->lang);
	const sandbox_image *img = node_image(n, pt->image, e);
	if (!img)
		return err_prefix(e, "[pool] %s/%s/%s: image", pt->runtime, pt->image, pt->lang);
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

/* Resolves every warm target first (nothing is created while a later one may still fail),
 * then, unless dry, creates the sandbox context and the pool and declares the targets. */
static int open_pool(node *n, bool dry, err **e)
{
	const config *c = n->cfg;
	_cleanup_free_ sandbox_spec *specs = xcalloc(c->n_targets + 1, sizeof(*specs));
	for (size_t i = 0; i < c->n_targets; i++) {
		if (target_spec(n, &c->targets[i], &specs[i], e) < 0)
			return -1;
		for (size_t k = 0; k < i; k++)
			if (specs[k].rt == specs[i].rt && specs[k].lang == specs[i].lang &&
			    !strcmp(specs[k].image_digest, specs[i].image_digest))
				return err_set(e, 0, "[pool] %s/%s/%s: declared twice",
				               c->targets[i].runtime, c->targets[i].image,
				               c->targets[i].lang);
	}
	return dry ? 0 : make_pool(n, specs, e);
}

/* ---- what tasks borrow ---- */

static task_verdict resolve(void *arg, const proto_task *t, task_plan *plan, char **msg)
{
	node *n = arg;
	const config *c = n->cfg;
	if ((*msg = node_llm_check(n, t)))
		return TASK_REJECT; /* a fleet serves the same models: no other node would */
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
		log_debug("task %s: %s", t->id, err_msg(e));
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

/* The chain advances only once its new state is on disk: a signature whose number a restart
 * would hand out again never leaves the node (ATTESTATION.md, "The chain state"). */
static int sign(void *arg, attest_claim *c, char **envelope, char **exec_digest, err **e)
{
	node *n = arg;
	if (!n->key)
		return 0;
	if (n->chain_error)
		return err_set(e, 0, "the chain state cannot be saved: %s", n->chain_error), -2;
	c->previous = n->chain.previous;
	c->sequence = n->chain.sequence + 1;
	_cleanup_free_ char *att = NULL, *env = NULL, *exec = NULL;
	if (attest_sign(n->key, c, &env, &exec, &att, e) < 0)
		return -1;
	attest_chain next = n->chain;
	attest_chain_advance(&next, att, c->sequence);
	_cleanup_err_ err *se = NULL;
	if (attest_chain_save(n->state_dirfd, "chain.json", &next, &se) < 0) {
		n->chain_error = xstrdup(err_msg(se));
		log_error("cannot save the chain state (%s): taking no tasks until it saves; the "
		          "signature of sequence %llu is discarded",
		          n->chain_error, (unsigned long long)c->sequence);
		err_set(e, 0, "the chain state cannot be saved: %s", n->chain_error);
		c->sequence = 0;
		return -2;
	}
	n->chain = next;
	*envelope = steal_pointer(&env);
	if (exec_digest) /* NULL: the caller does not keep it (a sealed result's two statements) */
		*exec_digest = steal_pointer(&exec);
	return 0;
}

int node_chain_retry(node *n)
{
	if (!n->chain_error)
		return 0;
	_cleanup_err_ err *e = NULL;
	if (attest_chain_save(n->state_dirfd, "chain.json", &n->chain, &e) < 0)
		return -1;
	log_info("the chain state saves again (it could not: %s); taking tasks", n->chain_error);
	free(n->chain_error);
	n->chain_error = NULL;
	return 0;
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

static int open_key(node *n, err **e)
{
	const config *c = n->cfg;
	if (checks_key(c, e) < 0)
		return -1;
	if (attest_key_load_private(&n->key, c->key_path, e) < 0)
		return err_prefix(e, "node key");
	n->pubkey_pem = attest_key_public_pem(n->key);
	if (attest_chain_load(n->state_dirfd, "chain.json", &n->chain, e) < 0)
		return err_prefix(e, "chain state in %s", c->state_dir);
	return open_age_key(n, e);
}

static void init_host(node *n)
{
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
	    .cpu_second_nusd = c->cost_cpu_second_nusd,
	    .gib_second_nusd = c->cost_gib_second_nusd,
	    .ops = &host_ops,
	    .arg = n,
	};
	/* host.rc is set by consumer_start() when the connection exists. */
}

int node_new(node **out, const config *cfg, struct event_base *base, bool dry, err **e)
{
	node *n = xzalloc(sizeof(*n));
	n->cfg = cfg;
	n->base = base;
	n->state_dirfd = -1;
	n->started_ms = now_wall_ms();
	*out = NULL;
	if (checks_host(cfg, &n->state_dirfd, e) < 0 || open_key(n, e) < 0 ||
	    node_llm_open(n, e) < 0 || open_runtimes(n, e) < 0)
		goto fail;
	if (!node_image(n, cfg->image_default, e)) {
		err_prefix(e, "image %s (build it with `aisp image build %s`)", cfg->image_default,
		           cfg->image_default);
		goto fail;
	}
	node_list_images(n);
	if (open_pool(n, dry, e) < 0)
		goto fail;
	init_host(n);
	*out = n;
	return 0;
fail:
	node_free(n);
	return -1;
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
	n->key = attest_key_free(n->key);
	free(n->pubkey_pem);
	n->age_ids = attest_age_identities_free(n->age_ids, n->n_age_ids);
	free(n->age_recipient_env);
	free(n->age_recipient);
	free(n->chain_error);
	free(n->runtimes_csv);
	free(n->images_csv);
	free(n->image_digests_csv);
	free(n->tasks);
	if (n->state_dirfd >= 0)
		close(n->state_dirfd);
	free(n);
	return NULL;
}
