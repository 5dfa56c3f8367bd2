/* aisp submit --follow (cli/follow.h). */
#include "cli/follow.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cli_follow_init(cli_follow *f)
{
	memset(f, 0, sizeof(*f));
	buf_init(&f->shown[0]);
	buf_init(&f->shown[1]);
}

void cli_follow_deinit(cli_follow *f)
{
	buf_deinit(&f->shown[0]);
	buf_deinit(&f->shown[1]);
}

static const redisReply *field(const redisReply *f, const char *name)
{
	for (size_t i = 0; f->type == REDIS_REPLY_ARRAY && i + 1 < f->elements; i += 2)
		if (f->element[i]->type == REDIS_REPLY_STRING &&
		    !strcmp(f->element[i]->str, name) &&
		    f->element[i + 1]->type == REDIS_REPLY_STRING)
			return f->element[i + 1];
	return NULL;
}

static const char *field_str(const redisReply *f, const char *name)
{
	const redisReply *v = field(f, name);
	return v ? v->str : NULL;
}

static void on_started(cli_follow *f, const redisReply *fields)
{
	const char *node = field_str(fields, "node"), *sb = field_str(fields, "sandbox");
	const char *rt = field_str(fields, "runtime");
	if (!node)
		return;
	if (f->started) { /* the task runs again (a retry, a takeover): its output starts over */
		f->gap[0] = f->gap[1] = true;
		fprintf(stderr,
		        "aisp: started again on node %s: the live output below is not "
		        "shown; the result follows\n",
		        node);
		return;
	}
	f->started = true;
	fprintf(stderr, "aisp: started on node %s, runtime %s, sandbox %s\n", node, rt ? rt : "?",
	        sb ? sb : "?");
}

/* data at offset of stream k: printed when it continues what was shown (the part past it,
 * when an event repeats bytes), else the gap is remembered. */
static void on_output(cli_follow *f, const redisReply *fields)
{
	const char *stream = field_str(fields, "stream"), *off_s = field_str(fields, "offset");
	const redisReply *data = field(fields, "data");
	if (!stream || !off_s || !data)
		return;
	int k = !strcmp(stream, "stdout") ? 0 : !strcmp(stream, "stderr") ? 1 : -1;
	char *end;
	unsigned long long off = strtoull(off_s, &end, 10);
	if (k < 0 || *end || end == off_s)
		return;
	buf *shown = &f->shown[k];
	if (off > shown->len) {
		f->gap[k] = true;
		return;
	}
	size_t skip = shown->len - (size_t)off;
	if (f->gap[k] || skip >= data->len)
		return;
	FILE *out = k ? stderr : stdout;
	fwrite(data->str + skip, 1, data->len - skip, out);
	fflush(out);
	buf_append(shown, data->str + skip, data->len - skip);
}

void cli_follow_event(cli_follow *f, const redisReply *fields)
{
	const char *event = field_str(fields, "event");
	if (!event)
		return;
	if (!strcmp(event, "started"))
		on_started(f, fields);
	else if (!strcmp(event, "output"))
		on_output(f, fields);
}

/* Removes shown's bytes from the front of out, when they are its beginning; else false. */
static bool drop_shown(const buf *shown, buf *out)
{
	if (!shown->len)
		return true;
	if (shown->len > out->len || memcmp(shown->data, out->data, shown->len))
		return false;
	memmove(out->data, out->data + shown->len, out->len - shown->len);
	out->len -= shown->len;
	out->data[out->len] = '\0';
	return true;
}

void cli_follow_finish(cli_follow *f, proto_output *o)
{
	static const char *const names[] = {"stdout", "stderr"};
	buf *outs[] = {&o->out, &o->err};
	for (int k = 0; k < 2; k++)
		if (f->gap[k] || !drop_shown(&f->shown[k], outs[k]))
			fprintf(
			    stderr,
			    "aisp: the live %s was not the beginning of the result's; the result's "
			    "whole %s follows (the signed result is the truth)\n",
			    names[k], names[k]);
}
