/* libFuzzer target: the aispd config parser (inih + strict validation) on arbitrary text. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "daemon/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	memcpy(text, data, size);
	text[size] = 0;
	config c;
	config_defaults(&c);
	err *e = NULL;
	(void)config_load_string(&c, "fuzz.conf", text, &e);
	err_free(e);
	config_deinit(&c);
	free(text);
	return 0;
}
