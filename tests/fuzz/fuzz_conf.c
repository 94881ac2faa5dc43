/* fuzz_conf.c - the configuration parser on arbitrary file contents. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/conf.h"

struct fuzz_settings {
	char *listen;
	char *key_dir;
	long long port;
	long long offset;
	int plain;
	long long timeout;
	long long max_body;
};

static const struct conf_param fuzz_table[] = {
    {"listen", CONF_STR, "127.0.0.1", 0, 0, offsetof(struct fuzz_settings, listen), NULL},
    {"key_dir", CONF_STR, NULL, 0, 0, offsetof(struct fuzz_settings, key_dir), NULL},
    {"port", CONF_INT, "8443", 0, 65535, offsetof(struct fuzz_settings, port), NULL},
    {"offset", CONF_INT, "0", 0, 0, offsetof(struct fuzz_settings, offset), NULL},
    {"allow_plain_http", CONF_BOOL, "no", 0, 0, offsetof(struct fuzz_settings, plain), NULL},
    {"conn_timeout", CONF_DURATION, "30s", 1, 86400, offsetof(struct fuzz_settings, timeout), NULL},
    {"max_body", CONF_SIZE, "64k", 1, 1LL << 30, offsetof(struct fuzz_settings, max_body), NULL},
    {NULL, 0, NULL, 0, 0, 0, NULL},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static FILE *sink;
	struct fuzz_settings s = {0};
	struct err e;

	if (sink == NULL)
		sink = fopen("/dev/null", "w");
	if (conf_load_buffer(fuzz_table, &s, "fuzz.conf", (const char *)data, size, &e) == 0 &&
	    sink != NULL)
		conf_dump(fuzz_table, &s, sink);
	conf_free(fuzz_table, &s);
	return 0;
}
