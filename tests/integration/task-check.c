/* tests: parses task files with proto_task_parse(), the node's parser, and prints one line per
 * file: "ok <file>" or "rejected <file>: <message>". Exit status 0. Used to compare the
 * parser with the JSON Schema (test-schema.py). */
#include <fcntl.h>
#include <stdio.h>

#include "common/buf.h"
#include "common/cleanup.h"
#include "common/err.h"
#include "common/util.h"
#include "proto/proto.h"

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		buf b = BUF_INIT;
		_cleanup_err_ err *e = NULL;
		if (read_file_at(AT_FDCWD, argv[i], PROTO_TASK_MAX_BYTES + 1, &b, &e) < 0) {
			printf("unreadable %s: %s\n", argv[i], err_msg(e));
			continue;
		}
		proto_task t;
		if (proto_task_parse(buf_str(&b), b.len, &t, NULL, &e) < 0) {
			printf("rejected %s: %s\n", argv[i], err_msg(e));
		} else {
			printf("ok %s\n", argv[i]);
			proto_task_deinit(&t);
		}
		buf_deinit(&b);
	}
	return 0;
}
