/* aispd's configuration: an INI file read once with inih, validated, then const.
 * Every key and its default is documented in deploy/aispd.conf.example. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "attest/attest.h"
#include "common/err.h"
#include "daemon/proxy.h"
#include "daemon/secrets.h"
#include "proto/proto.h"

#define CONFIG_PATH_DEFAULT  "/etc/aisp/aispd.conf"
#define CONFIG_MAX_SENTINELS 16

typedef struct config_runtime {
	char *name;     /* the section suffix: [runtime.NAME] */
	char *path;     /* NULL: NAME looked up in PATH */
	char *kind;     /* "runsc", "runc" or "oci"; NULL: guessed from the name */
	char *platform; /* runsc only; NULL: the runtime's default */
	char **flags;   /* NULL-terminated extra global flags (split on spaces) */
} config_runtime;

typedef struct config_pool_target {
	char *runtime, *image, *lang;
	int64_t warm;
	int line; /* of its key in [pool] */
} config_pool_target;

/* A price of the [llm] prices list: micro-USD per million tokens. */
typedef struct config_price {
	char *model; /* or "*" */
	int64_t prompt_per_mtok, completion_per_mtok;
} config_price;

/* Where the file set something: a key (key non-NULL) or a section header (key NULL). */
typedef struct config_line {
	char *section, *key;
	int line;
} config_line;

typedef struct config {
	char *path; /* the file read, or NULL when only defaults */
	/* Every key and section header read, with its line: messages of later checks name
	 * file:line (config_loc). */
	config_line *lines;
	size_t n_lines;
	/* Every problem config_load found, each "file:line: reason" ("file: reason" when no line
	 * applies), in file order, then the whole-file checks. NULL-terminated. */
	char **errors;
	size_t n_errors;

	/* [node] */
	char *node_id;
	int64_t slots;
	char *state_dir;
	char *run_dir;
	char *key_path;
	bool create_key;
	int log_level;
	char *agent_path;
	int64_t heartbeat_ms;
	int64_t drain_s;

	/* [redis] (deploy/REDIS.md: Sentinel, WAIT, the TLS sidecar) */
	char *redis_address;     /* host:port or unix:/path; unused with sentinels */
	char **redis_sentinels;  /* NULL-terminated host:port list, or NULL: use address */
	char *redis_master_name; /* the Sentinel master name (with sentinels only) */
	char *redis_sentinel_user, *redis_sentinel_password; /* AUTH to the sentinels */
	/* NULL-terminated pairs (announced host:port, local host:port): the tunnels a master
	 * named by Sentinel is reached through; NULL: connect to what Sentinel names. */
	char **redis_address_map;
	char *redis_password;
	char *redis_user;
	int64_t redis_wait_replicas;   /* WAIT after each published result; 0: off */
	int64_t redis_wait_timeout_ms; /* WAIT's timeout */
	bool redis_tls_sidecar;        /* Redis is reached through a local TLS sidecar */
	int64_t redis_timeout_ms;
	int64_t result_ttl_s;
	int64_t reclaim_ms;
	int64_t max_deliveries;
	int64_t block_ms;

	/* [images] */
	char *image_store;
	char *image_default;

	/* [skills] store (the skill store, proto/PROTOCOL.md "Skills") */
	char *skill_store;

	/* [runtime.NAME] and [runtimes] */
	config_runtime *runtimes;
	size_t n_runtimes;
	char *runtime_default;
	char **enabled; /* NULL-terminated */
	size_t n_enabled;

	/* [limits] */
	proto_limits limits_default;
	proto_limits limits_max;

	/* [pool] */
	int64_t pool_max_live;
	int64_t pool_max_creating;
	int64_t pool_max_age_s;
	int64_t pool_max_used;
	config_pool_target *targets;
	size_t n_targets;

	/* [http] */
	char *http_listen; /* "" disables */

	/* [trust] (attest/TRUST.md): issuers, clock skew, revocation polling, the minimum level */
	attest_trust_config trust;
	/* [node] age_key: the node's age identity for sealed tasks; NULL: age.key beside the key */
	char *age_key_path;

	/* [llm]: chains' llm steps (daemon/LLM.md, "Proposed [llm] config keys"); off without
	 * the section. 0 in a number: llm.h's default. */
	bool llm_enabled;
	char *llm_base_url; /* NULL: LLM_DEFAULT_BASE_URL */
	char *llm_api_key_file;
	char **llm_models; /* NULL-terminated */
	size_t n_llm_models;
	int64_t llm_max_tokens, llm_connect_timeout_ms, llm_timeout_ms, llm_max_attempts;
	int64_t llm_retry_budget_ms, llm_retry_base_ms, llm_max_response_bytes;
	char *llm_ca_file;
	config_price *llm_prices;
	size_t n_llm_prices;
	bool llm_allow_http, llm_allow_private; /* TESTS ONLY */

	/* [cost]: what a sandbox's run costs, nano-USD per CPU-second and per GiB-second of
	 * memory (proto/CHAINS.md, "Cost"); 0: free. */
	int64_t cost_cpu_second_nusd, cost_gib_second_nusd;

	/* [secrets] (daemon/secrets.h): the node's secret store */
	secrets_config secrets;
	/* [proxy] and [proxy.NAME] (daemon/proxy.h): the credential proxy's services */
	proxy_config proxy;
} config;

/* Fills c with every default (the one place defaults live). */
void config_defaults(config *c);
/* Reads path over the defaults. Every problem is found in one pass (a bad value leaves the
 * default in place and parsing goes on) and listed in c->errors. Returns 0, or -1 with *e = the
 * first problem ("path:line: reason"). */
int config_load(config *c, const char *path, err **e);
/* Same, from a string (tests); name is used in messages. */
int config_load_string(config *c, const char *name, const char *text, err **e);
void config_deinit(config *c);

/* The line where the file set [section] key (key NULL: the section's header), or 0. */
int config_line_of(const config *c, const char *section, const char *key);
/* "file:line" of [section] key, or of the section's header when key is not set, or NULL when
 * the file sets neither (the value is a default). Caller frees. */
char *config_loc(const config *c, const char *section, const char *key);

/* The [runtime.NAME] section for name, or NULL. Borrowed. */
const config_runtime *config_find_runtime(const config *c, const char *name);
bool config_runtime_enabled(const config *c, const char *name);
/* "runsc, runc": the enabled runtimes for messages. Caller frees. */
char *config_enabled_list(const config *c, const char *sep);
