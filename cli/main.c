/* aisp: the command line for schedulers (submit, wait, result), auditors (verify), operators
 * (keygen, nodes, image, run), and buyers and sellers of sealed work (seal, unseal).
 * Dispatches to one cmd_* function per command. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "common/cleanup.h"

struct command {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *usage;
};

static const struct command commands[] = {
    {"run", cmd_run, "run a task locally in a sandbox (no Redis)"},
    {"submit", cmd_submit, "submit a task to the network (--wait for its result)"},
    {"wait", cmd_wait, "wait for a task's result"},
    {"result", cmd_result, "print a task's result document"},
    {"cancel", cmd_cancel, "cancel a queued or running task"},
    {"nodes", cmd_nodes, "list live nodes and their pools"},
    {"verify", cmd_verify, "verify a result's signed attestation"},
    {"keygen", cmd_keygen, "create a node's signing key pair and age identity"},
    {"seal", cmd_seal, "encrypt to age recipients (a node's age.pub, a buyer's age1...)"},
    {"unseal", cmd_unseal, "decrypt an age file with an age identity (--verify: a sealed result)"},
    {"task", cmd_task, "seal, sign and check task documents (sealed tasks, trust levels)"},
    {"passport", cmd_passport, "issue, show, verify and revoke passports"},
    {"image", cmd_image, "build, list, export and import sandbox images"},
    {"skill", cmd_skill, "add, list, export, import and remove the node's skills"},
    {"blob", cmd_blob, "put a file into Redis as a content-addressed blob, get one back"},
    {NULL, NULL, NULL},
};

static void usage(FILE *f)
{
	fprintf(f, "usage: aisp COMMAND [ARGS...]   (aisp COMMAND --help for details)\n\n");
	for (const struct command *c = commands; c->name; c++)
		fprintf(f, "  %-9s %s\n", c->name, c->usage);
	fprintf(
	    f,
	    "\nRedis (submit, wait, result, nodes, verify --redis): --redis ADDR or $AISP_REDIS,\n"
	    "  host:port, unix:/path or sentinel://host:port,host:port/MASTER (Sentinel: the\n"
	    "  master is asked for, then confirmed with ROLE); $AISP_REDIS_USER and\n"
	    "  $AISP_REDIS_PASSWORD (ACL user, deploy/redis.conf), $AISP_SENTINEL_USER and\n"
	    "  $AISP_SENTINEL_PASSWORD, $AISP_REDIS_ADDRESS_MAP (announced->local tunnels of\n"
	    "  a TLS sidecar; deploy/REDIS.md)\n");
	fprintf(f, "\nexit codes of run / submit --wait: the program's exit code; 124 timeout, "
	           "125 output limit, 126 sandbox error or internal, 137 out of memory, "
	           "1 function error, 2 rejected or usage error, 3 --wait-timeout reached, "
	           "4 Redis unreachable, 5 output files not saved (--out), 130 cancelled\n");
}

int main(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("aisp %s\n", AISP_VERSION);
		return 0;
	}
	for (const struct command *c = commands; c->name; c++)
		if (!strcmp(argv[1], c->name))
			return c->fn(argc - 1, argv + 1);
	fprintf(stderr, "aisp: unknown command \"%s\"\n", argv[1]);
	usage(stderr);
	return 2;
}
