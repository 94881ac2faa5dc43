/*
 * fuzz_queue_record.c - the spool file parser of the relay queue.
 *
 * Whatever parses must be canonical: formatting the parsed envelope gives
 * back exactly the header bytes that were read, and the body that follows
 * has exactly the recorded size.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mail/queue.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct err e = {0};
	size_t off = 0, len = 0;
	struct queue_msg *m = queue_record_parse((const char *)data, size, &off, &e);
	struct queue_msg *c;
	char *txt;

	if (m == NULL) {
		if (e.kind != ERR_INPUT && e.kind != ERR_INTERNAL)
			abort();
		return 0;
	}
	if (off > size || size - off != m->size || m->nrcpt == 0 || m->nrcpt > QUEUE_MAX_RCPT)
		abort();
	txt = queue_record_format(m, &len, &e);
	if (txt == NULL || len != off || memcmp(txt, data, len) != 0)
		abort();
	c = queue_msg_dup(m);
	if (c == NULL || strcmp(c->id, m->id) != 0 || c->nrcpt != m->nrcpt)
		abort();
	free(txt);
	queue_msg_free(c);
	queue_msg_free(m);
	return 0;
}
