/* The skill and blob fields of a task ("skill", "mount_skills", "blobs") and the runtime
 * fields of a result ("logs_preview", "logs", "output_blobs"): PROTOCOL.md, "Skills". The node
 * resolves the skills and fetches the blobs (daemon/task-skill.c); here they are only parsed,
 * bounded and written back. */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "common/cleanup.h"
#include "common/xalloc.h"
#include "proto/internal.h"
#include "proto/json.h"

static const char *const skill_fields[] = {"skill", "mount_skills", "blobs", "blobs_age"};

bool proto_task_skill_field(const char *key)
{
	for (size_t i = 0; i < ARRAY_SIZE(skill_fields); i++)
		if (!strcmp(key, skill_fields[i]))
			return true;
	return false;
}

static bool digest_valid(const char *s)
{
	return !strncmp(s, "sha256:", 7) && strlen(s) == 71 &&
	       strspn(s + 7, "0123456789abcdef") == 64;
}

static bool name_valid(const char *s, size_t n)
{
	return n >= 1 && n <= 64 && s[0] >= 'a' && s[0] <= 'z' &&
	       strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_") >= n;
}

bool proto_skill_ref_valid(const char *s)
{
	const char *at = strchr(s, '@');
	if (at) /* NAME@sha256:<hex>: the name, pinned to a digest */
		return name_valid(s, (size_t)(at - s)) && digest_valid(at + 1);
	return digest_valid(s) || name_valid(s, strlen(s));
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* An array of strings, each checked by ok, at most max, unique; sorted into *out. */
static int get_list(yajl_val root, const char *key, size_t max, bool (*ok)(const char *),
                    const char *what, char ***out, size_t *n, err **e)
{
	yajl_val v = proto_json_get(root, key);
	if (!v)
		return 0;
	if (!YAJL_IS_ARRAY(v))
		return err_set(e, 0, "field \"%s\" must be an array of strings", key);
	if (v->u.array.len > max)
		return err_set(e, 0, "field \"%s\" lists %zu entries, above the cap of %zu", key,
		               v->u.array.len, max);
	*out = xcalloc(v->u.array.len + 1, sizeof(char *));
	for (size_t i = 0; i < v->u.array.len; i++) {
		yajl_val s = v->u.array.values[i];
		if (!YAJL_IS_STRING(s))
			return err_set(e, 0, "field \"%s\"[%zu] must be a string", key, i);
		if (!ok(s->u.string)) {
			_cleanup_free_ char *q = proto_quote(s->u.string, strlen(s->u.string));
			return err_set(e, 0, "field \"%s\"[%zu]: %s is not %s", key, i, q, what);
		}
		(*out)[(*n)++] = xstrdup(s->u.string);
	}
	qsort(*out, *n, sizeof(char *), cmp_str);
	for (size_t i = 1; i < *n; i++)
		if (!strcmp((*out)[i - 1], (*out)[i]))
			return err_set(e, 0, "field \"%s\" lists \"%s\" twice", key, (*out)[i]);
	return 0;
}

#define SKILL_WHAT                                                                                 \
	"a skill name ([a-z][a-z0-9_]{0,63}), a digest (sha256: and 64 lower-case hex digits) or " \
	"NAME@DIGEST"
#define BLOB_WHAT "a blob id (expected sha256: and 64 lower-case hex digits)"

int proto_task_skill_parse(yajl_val root, proto_task *t, err **e)
{
	yajl_val skill = proto_json_get(root, "skill");
	bool any = skill || proto_json_get(root, "mount_skills") || proto_json_get(root, "blobs");
	if (any && (proto_json_get(root, "steps") || proto_json_get(root, "steps_age")))
		return err_set(e, 0,
		               "a chain task (with \"steps\") cannot use skill, mount_skills or "
		               "blobs: they are for plain tasks");
	if (skill && !YAJL_IS_STRING(skill))
		return err_set(e, 0, "field \"skill\" must be a string");
	if (skill && !proto_skill_ref_valid(skill->u.string)) {
		_cleanup_free_ char *q = proto_quote(skill->u.string, strlen(skill->u.string));
		return err_set(e, 0, "field \"skill\": %s is not " SKILL_WHAT, q);
	}
	if (skill)
		t->skill = xstrdup(skill->u.string);
	if (get_list(root, "mount_skills", PROTO_SKILLS_MAX, proto_skill_ref_valid, SKILL_WHAT,
	             &t->mount_skills, &t->n_mount_skills, e) < 0 ||
	    get_list(root, "blobs", PROTO_BLOBS_MAX, proto_blob_id_valid, BLOB_WHAT, &t->blobs,
	             &t->n_blobs, e) < 0)
		return -1;
	yajl_val ba = proto_json_get(root, "blobs_age");
	if (ba && !YAJL_IS_TRUE(ba) && !YAJL_IS_FALSE(ba))
		return err_set(e, 0, "field \"blobs_age\" must be true or false");
	t->blobs_age = ba && YAJL_IS_TRUE(ba);
	if (t->blobs_age && !t->n_blobs)
		return err_set(e, 0, "field \"blobs_age\" needs \"blobs\" (the age files to open)");
	if (t->skill && t->n_mount_skills)
		return err_set(
		    e, 0,
		    "field \"mount_skills\" is for run_code tasks: a task with \"skill\" "
		    "runs that skill alone");
	return 0;
}

static void gen_list(proto_gen *g, const char *key, char *const *v, size_t n)
{
	if (!n)
		return;
	proto_json_gen_str(g, key);
	proto_json_gen_open(g, false);
	for (size_t i = 0; i < n; i++)
		proto_json_gen_str(g, v[i]);
	proto_json_gen_close(g, false);
}

void proto_task_skill_gen(proto_gen *g, const proto_task *t)
{
	if (t->skill)
		proto_json_gen_kstr(g, "skill", t->skill);
	gen_list(g, "mount_skills", t->mount_skills, t->n_mount_skills);
	gen_list(g, "blobs", t->blobs, t->n_blobs);
	if (t->blobs_age)
		proto_json_gen_kbool(g, "blobs_age", true);
}

static void strv_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void proto_task_skill_deinit(proto_task *t)
{
	free(t->skill);
	strv_free(t->mount_skills, t->n_mount_skills);
	strv_free(t->blobs, t->n_blobs);
	for (size_t i = 0; i < t->n_skill_refs; i++) {
		free(t->skill_refs[i].name);
		free(t->skill_refs[i].digest);
	}
	free(t->skill_refs);
	strv_free(t->secret_names, t->n_secret_names);
}

void proto_blobs_free(proto_blob *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (b[i].data) /* a sealed task's blobs (blobs_age): wiped, not only freed */
			OPENSSL_cleanse(b[i].data, b[i].len);
		free(b[i].data);
	}
	free(b);
}

/* ---- the result's runtime fields ---- */

/* Appends p[0..n) to b, at most room bytes, cut on a UTF-8 boundary, invalid bytes as U+FFFD
 * (which counts 3 bytes). Returns the bytes appended. */
static size_t append_text(buf *b, const uint8_t *p, size_t n, size_t room)
{
	size_t used = 0;
	for (size_t i = 0; i < n;) {
		size_t k = proto_utf8_seq(p + i, n - i);
		if (k == 0 || (k == 1 && p[i] == 0)) {
			if (used + 3 > room)
				break;
			buf_append(b, "\xef\xbf\xbd", 3);
			used += 3;
			i++;
			continue;
		}
		if (used + k > room)
			break;
		buf_append(b, p + i, k);
		used += k;
		i += k;
	}
	return used;
}

char *proto_logs_preview(const proto_output *o)
{
	buf b = BUF_INIT;
	size_t used = append_text(&b, o->out.data, o->out.len, PROTO_LOGS_PREVIEW_MAX);
	append_text(&b, o->err.data, o->err.len, PROTO_LOGS_PREVIEW_MAX - used);
	buf_append(&b, "", 1);
	return buf_steal(&b, NULL);
}

void proto_output_skill_gen(proto_gen *g, const proto_output *o)
{
	if (!o->runtime_fields)
		return;
	_cleanup_free_ char *preview = proto_logs_preview(o);
	proto_json_gen_kstr(g, "logs_preview", preview);
	proto_json_gen_str(g, "logs");
	if (!o->logs_json || proto_json_gen_json(g, o->logs_json, strlen(o->logs_json), NULL) < 0) {
		proto_json_gen_open(g, false);
		proto_json_gen_close(g, false);
	}
	if (o->logs_truncated)
		proto_json_gen_kbool(g, "logs_truncated", true);
	proto_json_gen_str(g, "output_blobs");
	proto_json_gen_open(g, false);
	for (size_t i = 0; i < o->n_out_blobs; i++)
		proto_json_gen_str(g, o->out_blobs[i].id);
	proto_json_gen_close(g, false);
	if (o->out_blobs_truncated)
		proto_json_gen_kbool(g, "output_blobs_truncated", true);
}

static int parse_logs(yajl_val root, proto_output *o, err **e)
{
	yajl_val v = proto_json_get(root, "logs");
	if (!v)
		return 0;
	if (!YAJL_IS_ARRAY(v) || v->u.array.len > PROTO_LOG_ENTRIES_MAX + 1)
		return err_set(e, 0, "result field \"logs\" must be an array of at most %d entries",
		               PROTO_LOG_ENTRIES_MAX + 1);
	for (size_t i = 0; i < v->u.array.len; i++)
		if (!YAJL_IS_OBJECT(v->u.array.values[i]))
			return err_set(e, 0, "result field \"logs\"[%zu] must be an object", i);
	_cleanup_json_gen_ proto_gen *g = proto_json_gen_new();
	proto_json_gen_value(g, v);
	buf b = BUF_INIT;
	proto_json_gen_take_valid(g, &b);
	o->logs_json = buf_steal(&b, NULL);
	return 0;
}

static int parse_out_blobs(yajl_val root, proto_output *o, err **e)
{
	yajl_val v = proto_json_get(root, "output_blobs");
	if (!v)
		return 0;
	if (!YAJL_IS_ARRAY(v) || v->u.array.len > PROTO_OUT_BLOBS_MAX)
		return err_set(e, 0,
		               "result field \"output_blobs\" must be an array of at most %d ids",
		               PROTO_OUT_BLOBS_MAX);
	o->out_blobs = xcalloc(v->u.array.len + 1, sizeof(*o->out_blobs));
	for (size_t i = 0; i < v->u.array.len; i++) {
		yajl_val s = v->u.array.values[i];
		if (!YAJL_IS_STRING(s) || !proto_blob_id_valid(s->u.string) ||
		    (i && strcmp(o->out_blobs[i - 1].id, s->u.string) >= 0))
			return err_set(
			    e, 0,
			    "result field \"output_blobs\"[%zu] must be a blob id, the ids "
			    "sorted and unique",
			    i);
		memcpy(o->out_blobs[o->n_out_blobs++].id, s->u.string, PROTO_BLOB_ID_LEN + 1);
	}
	return 0;
}

int proto_output_skill_parse(yajl_val root, proto_output *o, err **e)
{
	yajl_val pv = proto_json_get(root, "logs_preview");
	yajl_val lt = proto_json_get(root, "logs_truncated");
	yajl_val bt = proto_json_get(root, "output_blobs_truncated");
	if (!pv && !lt && !bt && !proto_json_get(root, "logs") &&
	    !proto_json_get(root, "output_blobs"))
		return 0;
	o->runtime_fields = true; /* any of them: the output digest covers them all */
	o->logs_truncated = lt && YAJL_IS_TRUE(lt);
	o->out_blobs_truncated = bt && YAJL_IS_TRUE(bt);
	if (parse_logs(root, o, e) < 0 || parse_out_blobs(root, o, e) < 0)
		return -1;
	/* The preview is stdout and stderr's start: one that is not says the result was edited. */
	_cleanup_free_ char *want = pv ? proto_logs_preview(o) : NULL;
	if (pv && (!YAJL_IS_STRING(pv) || strcmp(pv->u.string, want)))
		return err_set(
		    e, 0, "result field \"logs_preview\" is not the start of stdout and stderr");
	return 0;
}
