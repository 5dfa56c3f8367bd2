/* Internals of the skill store (sandbox/skill*.c), shared between its files and its tests and
 * fuzz targets. The public interface is the skills section of sandbox/sandbox.h. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"
#include "sandbox/sandbox.h"

/* ---- the TOML subset (skill-toml.c; proto/SKILLS.md, "The manifest") ----
 * A document is a list of key = value items, each in a table ("" for the top level). Values
 * are strings, integers, booleans and arrays of strings; everything else TOML has is refused
 * with "FILE:LINE: ... is not supported", so what parses here means the same in any TOML
 * reader. */
typedef enum skill_toml_type {
	SKILL_TOML_STRING = 0,
	SKILL_TOML_INTEGER,
	SKILL_TOML_BOOLEAN,
	SKILL_TOML_STRINGS, /* an array whose elements are all strings (or empty) */
} skill_toml_type;

#define SKILL_TOML_ARRAY_MAX 256 /* elements in one array */

typedef struct skill_toml_item {
	char *table; /* "" for the top level; owned */
	char *key;   /* owned */
	int line;    /* of the key */
	skill_toml_type type;
	char *str; /* SKILL_TOML_STRING: owned, no NUL inside */
	int64_t integer;
	bool boolean;
	char **strs; /* SKILL_TOML_STRINGS: n_strs owned strings */
	size_t n_strs;
} skill_toml_item;

typedef struct skill_toml_table {
	char *name; /* owned */
	int line;   /* of its [header] */
} skill_toml_table;

typedef struct skill_toml_doc {
	skill_toml_item *items;
	size_t n_items;
	skill_toml_table *tables;
	size_t n_tables;
} skill_toml_doc;

/* Parses text (len bytes, need not be NUL-terminated). Returns 0 with *d filled (release with
 * skill_toml_deinit), or -1 with "file:line: reason" in *e and *d empty. */
int skill_toml_parse(const char *file, const char *text, size_t len, skill_toml_doc *d, err **e);
void skill_toml_deinit(skill_toml_doc *d);
/* The item table.key ("" for the top level), or NULL. */
const skill_toml_item *skill_toml_find(const skill_toml_doc *d, const char *table, const char *key);

/* ---- trees (skill-tree.c) ----
 * A skill's files as the digest sees them (proto/SKILLS.md, "Digest"): paths relative to the
 * skill's root, directories and regular files only, files either executable or not. */
typedef struct skill_entry {
	char *path; /* owned, relative, '/'-separated */
	bool dir;
	bool exec; /* files: any execute bit was set */
	uint64_t size;
	uint8_t sha256[32];
} skill_entry;

typedef struct skill_tree {
	skill_entry *v;
	size_t n;
	uint64_t bytes; /* file contents, summed */
} skill_tree;

void skill_tree_deinit(skill_tree *t);
/* A path from untrusted input for a message: path characters as they are, other bytes as
 * \xHH, cut at SANDBOX_SKILL_PATH_MAX bytes. Caller frees. */
char *skill_shown_path(const char *s);
/* True when p is a valid relative path in a skill: 1..SANDBOX_SKILL_PATH_MAX bytes of
 * '/'-separated components of 1..SANDBOX_SKILL_NAME_PART_MAX bytes of [A-Za-z0-9._@+=,~-],
 * none "." or "..". (So that "skill/" + any path fits a ustar header's prefix and name.) */
bool skill_path_valid(const char *p);
/* Walks the directory srcfd (never following a link, refusing anything but directories and
 * regular files, within the caps) and, when dstfd >= 0, copies it below dstfd with modes
 * 0755/0644. Fills *t with every entry, sorted by path. label names srcfd in messages. */
int skill_tree_walk(int srcfd, int dstfd, const char *label, skill_tree *t, err **e);
/* The canonical list of a sorted tree (proto/SKILLS.md, "Digest") and its digest
 * "sha256:<hex>". */
void skill_tree_list(const skill_tree *t, buf *out);
void skill_tree_digest(const skill_tree *t, char out[72]);
/* The entry for path, or NULL. */
const skill_entry *skill_tree_find(const skill_tree *t, const char *path);

/* ---- the bundle (skill-tar.c; proto/SKILLS.md, "Export and import") ----
 * A ustar archive: "digest" (the skill's digest and a newline), then "skill/" and every
 * entry of the tree below it, sorted, with zero times and owners. */
typedef int (*skill_tar_fn)(const char *path, bool dir, bool exec, const uint8_t *data, size_t len,
                            void *arg, err **e);
/* Parses an archive of n bytes strictly (ustar or GNU headers; regular files and directories
 * only; checksums; the end-of-archive blocks) and calls cb for each member in order with its
 * path ("./" and a trailing "/" removed). Returns 0, or -1 with "archive: ..." in *e. */
int skill_tar_parse(const uint8_t *p, size_t n, skill_tar_fn cb, void *arg, err **e);
/* Appends one member (a directory when data is NULL and dir is set) to out. path must be a
 * valid path within the ustar name and prefix fields. */
int skill_tar_add(buf *out, const char *path, bool dir, bool exec, const uint8_t *data, size_t len,
                  err **e);
/* Appends the end-of-archive blocks. */
void skill_tar_finish(buf *out);
/* Appends every entry of the sorted tree t (read below treefd, each checked against what the
 * walk hashed) as prefix + path, then the end-of-archive blocks. */
int skill_tar_tree(int treefd, const skill_tree *t, const char *prefix, buf *tar, err **e);
/* Reads the file of entry en below treefd into out, refusing it unless its size and SHA-256
 * are still what the walk saw. */
int skill_read_entry(int treefd, const skill_entry *en, buf *out, err **e);

/* ---- the store (skill.c), shared with the bundle code (skill-bundle.c) ---- */
typedef struct skill_store {
	char *abs;  /* the store's absolute path */
	int fd;     /* the store directory */
	int lockfd; /* .lock, flock()ed, or -1 for readers */
} skill_store;

#define SKILL_STORE_INIT                                                                           \
	{                                                                                          \
		NULL, -1, -1                                                                       \
	}

/* Opens the store (NULL or "": the default). A writer creates what is missing and takes the
 * store's lock; a reader fails with "skill store S: ..." when it is missing. */
int skill_store_open(skill_store *s, const char *store, bool writer, err **e);
void skill_store_close(skill_store *s);
/* A new empty directory below <store>/tmp/ (*name owned; *fd its directory fd). */
int skill_store_tmp(skill_store *s, char **name, int *fd, err **e);
/* Publishes the tree in tmp/<name> as sandbox_skill_add() describes; expect (may be NULL) is
 * the digest it must have. The temporary tree is consumed: renamed into skills/ or removed. */
int skill_store_publish(skill_store *s, const char *name, int fd, const char *label,
                        const char *expect, bool replace, sandbox_skill *out, bool *added, err **e);
/* Resolves a name or digest into *out (manifest, digest, dir; no walk). */
int skill_store_resolve(skill_store *s, const char *name_or_digest, sandbox_skill *out, err **e);
/* Resolves and walks a stored skill: *out with files and bytes, *t its sorted entries. */
int skill_store_walk(skill_store *s, const char *ref, sandbox_skill *out, skill_tree *t, err **e);
/* skill.toml at the root of the tree treefd, parsed and validated; label names the tree in
 * messages. */
int skill_load_manifest(int treefd, const char *label, sandbox_skill_manifest *m, err **e);
/* Opens the skill directory dir and walks it into *t. Returns its fd, or -1 with *e. */
int skill_walk_dir(const char *dir, skill_tree *t, err **e);
/* For a task: walks the stored tree of s (resolved) into *t and refuses it unless it still
 * hashes to s->digest. Returns the tree's directory fd, or -1 with *e and *t empty. */
int skill_store_open_tree(const char *store, const sandbox_skill *s, skill_tree *t, err **e);
/* A stored sealed skill's tree (skill-sealed.c): exactly skill.toml and skill.age. */
int skill_sealed_check_tree(const skill_tree *t, const char *label, err **e);

/* Opens a path below rootfd one component at a time with O_NOFOLLOW (flags: O_DIRECTORY for
 * a directory, 0 for a file to read). Returns the fd or -1 with *e. */
int skill_open_below(int rootfd, const char *path, int flags, err **e);
