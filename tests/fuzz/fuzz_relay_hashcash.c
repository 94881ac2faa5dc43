/*
 * fuzz_relay_hashcash.c - the proof-of-work stamp reader of the relay
 * (relay/pow.c): header fields, unfolding, stamp fields and dates.
 *
 * The input is a message for bob@example.com checked at a fixed time
 * (2026-11-23 12:00 UTC, the date of the seed stamps).  A stamp that counts
 * must be spent: the same message checked again never counts twice.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "relay.h"

#define FUZZ_NOW 1795435200 /* 2026-11-23T12:00:00Z */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct relay_pow *pow_store(void)
{
	static struct relay_pow *p;
	static char dir[] = "/tmp/fuzz_relay_hashcash_XXXXXX";
	struct err e = {0};

	if (p == NULL) {
		if (mkdtemp(dir) == NULL)
			abort();
		/* 12 bits: the seeds hold valid stamps, random input practically never does */
		if ((p = relay_pow_open(dir, 12, 2 * 86400, &e)) == NULL)
			abort();
	}
	return p;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct relay_pow *p = pow_store();
	char why[160];
	int rc;

	memset(why, 'x', sizeof(why));
	rc = relay_pow_check(p, (const char *)data, size, "bob@example.com", FUZZ_NOW, why,
	                     sizeof(why));
	if ((rc != 0 && rc != 1) || memchr(why, '\0', sizeof(why)) == NULL)
		abort();
	if (rc == 1 && (strncmp(why, "valid", 5) != 0 ||
	                relay_pow_check(p, (const char *)data, size, "bob@example.com", FUZZ_NOW,
	                                why, sizeof(why)) != 0))
		abort();
	return 0;
}
