/* OCI bundle generation: a typed description of the container serialised to config.json with
 * the JSON generator (never printf), written atomically on the bundle's directory fd. */
#include "sandbox/bundle.h"

#include <stdio.h>
#include <string.h>

#include "proto/json.h"

#include "common/cleanup.h"
#include "common/xalloc.h"

static void s(proto_gen *g, const char *str)
{
	proto_json_gen_str(g, str);
}

#define kv        proto_json_gen_kstr
#define ki        proto_json_gen_kint
#define kb        proto_json_gen_kbool
#define str_array proto_json_gen_kstrs

static void mount(proto_gen *g, const char *dst, const char *type, const char *src,
                  const char *const *opts)
{
	proto_json_gen_open(g, true);
	kv(g, "destination", dst);
	kv(g, "type", type);
	kv(g, "source", src);
	str_array(g, "options", opts);
	proto_json_gen_close(g, true);
}

/* The agent (PID 1) starts as the container's uid 0 with only what it needs to start the
 * program as 65534 with nothing (its own user, so the program cannot reach the agent's pipes
 * or signal it) and to end the program's processes. The program's child drops the bounding
 * set and every id before exec. */
static const char *const agent_caps[] = {"CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP", "CAP_KILL",
                                         NULL};

static void gen_process(proto_gen *g, const sandbox_bundle_spec *b)
{
	static const char *const none[] = {NULL};
	s(g, "process");
	proto_json_gen_open(g, true);
	kb(g, "terminal", false);
	s(g, "user");
	proto_json_gen_open(g, true);
	ki(g, "uid", 0);
	ki(g, "gid", 0);
	proto_json_gen_close(g, true);
	str_array(g, "args", b->args);
	str_array(g, "env", b->env);
	kv(g, "cwd", "/workspace");
	s(g, "capabilities");
	proto_json_gen_open(g, true);
	str_array(g, "bounding", agent_caps);
	str_array(g, "effective", agent_caps);
	str_array(g, "inheritable", none);
	str_array(g, "permitted", agent_caps);
	str_array(g, "ambient", none);
	proto_json_gen_close(g, true);
	/* runc sets these from outside with prlimit(), which needs CAP_SYS_RESOURCE over the
	 * container's user namespace: host root has it as the owner of a namespace runc makes,
	 * but not over one of ours (owned by the sandbox's uid, userns.c) on a host that drops
	 * CAP_SYS_RESOURCE from root. The agent lowers both itself at start anyway (agent.c). */
	if (!b->userns_path) {
		s(g, "rlimits");
		proto_json_gen_open(g, false);
		struct {
			const char *type;
			int64_t v;
		} rl[] = {{"RLIMIT_CORE", 0}, {"RLIMIT_NOFILE", b->nofile}};
		for (size_t i = 0; i < ARRAY_SIZE(rl); i++) {
			proto_json_gen_open(g, true);
			kv(g, "type", rl[i].type);
			ki(g, "hard", rl[i].v);
			ki(g, "soft", rl[i].v);
			proto_json_gen_close(g, true);
		}
		proto_json_gen_close(g, false);
	}
	kb(g, "noNewPrivileges", true);
	proto_json_gen_close(g, true);
}

static void gen_mounts(proto_gen *g, const sandbox_bundle_spec *b)
{
	_cleanup_free_ char *ws = xasprintf("size=%lld", (long long)b->workspace_bytes);
	const char *proc_o[] = {"nosuid", "noexec", "nodev", NULL};
	const char *dev_o[] = {"nosuid", "strictatime", "mode=755", "size=65536k", NULL};
	const char *shm_o[] = {"nosuid", "noexec", "nodev", "mode=1777", "size=65536k", NULL};
	const char *sys_o[] = {"nosuid", "noexec", "nodev", "ro", NULL};
	const char *tmp_o[] = {"nosuid", "nodev", "mode=1777", ws, NULL};
	const char *agent_o[] = {"rbind", "ro", "nosuid", "nodev", NULL};
	/* SANDBOX_SKILLS_TREE_MAX, and the blobs' PROTO_BLOBS_TOTAL with room for the inodes */
	const char *skills_o[] = {"nosuid", "nodev", "mode=755", "size=65536k", NULL};
	const char *blobs_o[] = {"nosuid", "nodev", "noexec", "mode=755", "size=33792k", NULL};
	s(g, "mounts");
	proto_json_gen_open(g, false);
	mount(g, "/proc", "proc", "proc", proc_o);
	mount(g, "/dev", "tmpfs", "tmpfs", dev_o);
	mount(g, "/dev/shm", "tmpfs", "shm", shm_o);
	mount(g, "/sys", "sysfs", "sysfs", sys_o);
	mount(g, "/workspace", "tmpfs", "tmpfs", tmp_o);
	mount(g, "/tmp", "tmpfs", "tmpfs", tmp_o);
	mount(g, "/.aisp", "bind", b->agent_dir, agent_o);
	/* a task's skills and input blobs, written by the agent as root (agent-skills.c) */
	mount(g, "/.aisp/skills", "tmpfs", "tmpfs", skills_o);
	mount(g, "/.aisp/blobs", "tmpfs", "tmpfs", blobs_o);
	proto_json_gen_close(g, false);
}

/* The deny-list: syscalls a sandboxed program has no business making. Everything else is
 * allowed (the default docker profile is an allow-list; a deny-list keeps Python and Node
 * working on any kernel while closing the known escape and attack surface). */
static const char *const denied_syscalls[] = {
    "acct",
    "add_key",
    "bpf",
    "clock_adjtime",
    "clock_settime",
    "create_module",
    "delete_module",
    "finit_module",
    "fsconfig",
    "fsmount",
    "fsopen",
    "fspick",
    "get_kernel_syms",
    "init_module",
    "io_uring_enter",
    "io_uring_register",
    "io_uring_setup",
    "ioperm",
    "iopl",
    "kcmp",
    "kexec_file_load",
    "kexec_load",
    "keyctl",
    "lookup_dcookie",
    "mount",
    "mount_setattr",
    "move_mount",
    "name_to_handle_at",
    "nfsservctl",
    "open_by_handle_at",
    "open_tree",
    "perf_event_open",
    "pivot_root",
    "process_vm_readv",
    "process_vm_writev",
    "ptrace",
    "query_module",
    "quotactl",
    "reboot",
    "request_key",
    "setns",
    "settimeofday",
    "socketcall", /* 32-bit x86: its arguments are out of the filter's reach (socket rules below) */
    "swapoff",
    "swapon",
    "syslog",
    "umount",
    "umount2",
    "unshare",
    "uselib",
    "userfaultfd",
    "vhangup",
    "vm86",
    "vm86old",
    NULL,
};

/* One rule: the syscalls fail with errno when argument 0 compares to value (masked by mask for
 * SCMP_CMP_MASKED_EQ). Values are unsigned 64-bit, so they are emitted from their text. */
static void arg0_rule(proto_gen *g, const char *const *names, int errno_ret, const char *op,
                      uint64_t mask, uint64_t value)
{
	char t[24];
	proto_json_gen_open(g, true);
	str_array(g, "names", names);
	kv(g, "action", "SCMP_ACT_ERRNO");
	ki(g, "errnoRet", errno_ret);
	s(g, "args");
	proto_json_gen_open(g, false);
	proto_json_gen_open(g, true);
	ki(g, "index", 0);
	s(g, "value");
	snprintf(t, sizeof(t), "%llu",
	         (unsigned long long)(strcmp(op, "SCMP_CMP_MASKED_EQ") ? value : mask));
	proto_json_gen_number(g, t);
	if (!strcmp(op, "SCMP_CMP_MASKED_EQ")) {
		s(g, "valueTwo");
		snprintf(t, sizeof(t), "%llu", (unsigned long long)value);
		proto_json_gen_number(g, t);
	}
	kv(g, "op", op);
	proto_json_gen_close(g, true);
	proto_json_gen_close(g, false);
	proto_json_gen_close(g, true);
}

/* Socket families: only those a network namespace isolates stay, AF_UNIX (1), AF_INET (2),
 * AF_INET6 (10) and AF_NETLINK (16); every other (AF_VSOCK's ports are the VM's, outside any
 * namespace; AF_PACKET, AF_ALG, AF_BLUETOOTH, ...) fails with EAFNOSUPPORT, as if the kernel had
 * none. The rules deny 3, 4-7, 8-9, 11, 12-15 and everything >= 17, which also catches a value
 * with bits above the int the kernel reads. */
static void gen_socket_rules(proto_gen *g)
{
	static const char *const sock[] = {"socket", "socketpair", NULL};
	const uint64_t all = ~(uint64_t)0;
	enum { EAFNOSUPPORT_ = 97 };
	arg0_rule(g, sock, EAFNOSUPPORT_, "SCMP_CMP_GE", 0, 17);
	arg0_rule(g, sock, EAFNOSUPPORT_, "SCMP_CMP_EQ", 0, 3);
	arg0_rule(g, sock, EAFNOSUPPORT_, "SCMP_CMP_MASKED_EQ", all << 2, 4);
	arg0_rule(g, sock, EAFNOSUPPORT_, "SCMP_CMP_MASKED_EQ", all << 1, 8);
	arg0_rule(g, sock, EAFNOSUPPORT_, "SCMP_CMP_EQ", 0, 11);
	arg0_rule(g, sock, EAFNOSUPPORT_, "SCMP_CMP_MASKED_EQ", all << 2, 12);
}

static void gen_seccomp(proto_gen *g)
{
	s(g, "seccomp");
	proto_json_gen_open(g, true);
	kv(g, "defaultAction", "SCMP_ACT_ALLOW");
	str_array(
	    g, "architectures",
	    (const char *const[]){"SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32", NULL});
	s(g, "syscalls");
	proto_json_gen_open(g, false);
	proto_json_gen_open(g, true);
	str_array(g, "names", denied_syscalls);
	kv(g, "action", "SCMP_ACT_ERRNO");
	ki(g, "errnoRet", 1); /* EPERM */
	proto_json_gen_close(g, true);
	/* clone3 cannot be filtered by flags: ENOSYS makes libc fall back to clone. */
	proto_json_gen_open(g, true);
	str_array(g, "names", (const char *const[]){"clone3", NULL});
	kv(g, "action", "SCMP_ACT_ERRNO");
	ki(g, "errnoRet", 38); /* ENOSYS */
	proto_json_gen_close(g, true);
	/* clone with any namespace flag (one rule per flag: rules for a syscall are OR'ed):
	 * CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET. */
	static const int64_t ns_flags[] = {0x00020000, 0x02000000, 0x04000000, 0x08000000,
	                                   0x10000000, 0x20000000, 0x40000000};
	for (size_t i = 0; i < ARRAY_SIZE(ns_flags); i++)
		arg0_rule(g, (const char *const[]){"clone", NULL}, 1, "SCMP_CMP_MASKED_EQ",
		          (uint64_t)ns_flags[i], (uint64_t)ns_flags[i]);
	gen_socket_rules(g);
	proto_json_gen_close(g, false);
	proto_json_gen_close(g, true);
}

static void gen_namespaces(proto_gen *g, const sandbox_bundle_spec *b)
{
	s(g, "namespaces");
	proto_json_gen_open(g, false);
	const char *ns[] = {"pid", "ipc", "uts", "mount", "network", "cgroup", NULL};
	for (const char **n = ns; *n; n++) {
		if (!strcmp(*n, "cgroup") && b->kind == SANDBOX_RT_RUNSC)
			continue;
		proto_json_gen_open(g, true);
		kv(g, "type", *n);
		proto_json_gen_close(g, true);
	}
	if (b->userns) {
		proto_json_gen_open(g, true);
		kv(g, "type", "user");
		if (b->userns_path)
			kv(g, "path", b->userns_path);
		proto_json_gen_close(g, true);
	}
	proto_json_gen_close(g, false);
	if (!b->userns)
		return;
	const char *maps[] = {"uidMappings", "gidMappings"};
	for (int i = 0; i < 2; i++) {
		s(g, maps[i]);
		proto_json_gen_open(g, false);
		proto_json_gen_open(g, true);
		ki(g, "containerID", 0);
		ki(g, "hostID", b->userns_base);
		ki(g, "size", 65536);
		proto_json_gen_close(g, true);
		proto_json_gen_close(g, false);
	}
}

/* The cgroup limits. Only a v2 host gets "unified" (runc refuses it on v1). */
static void gen_resources(proto_gen *g, const sandbox_bundle_spec *b)
{
	s(g, "resources");
	proto_json_gen_open(g, true);
	s(g, "memory");
	proto_json_gen_open(g, true);
	ki(g, "limit", b->memory_bytes);
	ki(g, "swap", b->memory_bytes);
	proto_json_gen_close(g, true);
	s(g, "cpu");
	proto_json_gen_open(g, true);
	ki(g, "quota", b->cpus_milli * 100);
	ki(g, "period", 100000);
	if (b->cpu_shares > 0)
		ki(g, "shares", b->cpu_shares);
	proto_json_gen_close(g, true);
	s(g, "pids");
	proto_json_gen_open(g, true);
	ki(g, "limit", b->pids);
	proto_json_gen_close(g, true);
	if (b->cpu_weight > 0) {
		_cleanup_free_ char *w = xasprintf("%lld", (long long)b->cpu_weight);
		s(g, "unified");
		proto_json_gen_open(g, true);
		kv(g, "cpu.weight", w);
		proto_json_gen_close(g, true);
	}
	proto_json_gen_close(g, true);
}

static void gen_linux(proto_gen *g, const sandbox_bundle_spec *b)
{
	static const char *const masked[] = {"/proc/acpi",
	                                     "/proc/asound",
	                                     "/proc/kcore",
	                                     "/proc/keys",
	                                     "/proc/latency_stats",
	                                     "/proc/timer_list",
	                                     "/proc/timer_stats",
	                                     "/proc/sched_debug",
	                                     "/proc/scsi",
	                                     "/sys/firmware",
	                                     "/sys/devices/virtual/powercap",
	                                     NULL};
	static const char *const readonly[] = {
	    "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger", NULL};
	s(g, "linux");
	proto_json_gen_open(g, true);
	gen_namespaces(g, b);
	gen_resources(g, b);
	kv(g, "cgroupsPath", b->cgroups_path);
	str_array(g, "maskedPaths", masked);
	str_array(g, "readonlyPaths", readonly);
	if (b->kind != SANDBOX_RT_RUNSC)
		gen_seccomp(g);
	proto_json_gen_close(g, true);
}

void sandbox_bundle_config_json(const sandbox_bundle_spec *b, buf *out)
{
	_cleanup_json_gen_ proto_gen *g = proto_json_gen_new();
	proto_json_gen_open(g, true);
	kv(g, "ociVersion", "1.0.2");
	gen_process(g, b);
	s(g, "root");
	proto_json_gen_open(g, true);
	kv(g, "path", b->rootfs);
	kb(g, "readonly", true);
	proto_json_gen_close(g, true);
	kv(g, "hostname", "sandbox");
	gen_mounts(g, b);
	gen_linux(g, b);
	proto_json_gen_close(g, true);
	proto_json_gen_take_valid(g, out);
}

int sandbox_bundle_write(int dirfd, const sandbox_bundle_spec *b, err **e)
{
	buf json = BUF_INIT;
	sandbox_bundle_config_json(b, &json);
	int r = write_file_at_volatile(dirfd, "config.json", json.data, json.len, 0644, e);
	buf_deinit(&json);
	return r;
}
