/*
 * dkim_verify.c - DKIM signatures verified per second with lib/dkim.
 *
 *   dkim_verify [SECONDS] [SIZE]
 *
 * For ed25519-sha256 and rsa-sha256 (2048 bits): signs one message of SIZE
 * bytes of body (default 4096) with dkim_sign, relaxed/relaxed, then verifies
 * that signature with dkim_verify_sig for SECONDS (default 3) per algorithm.
 * Each verification is the whole per-message work of a verifier once the key
 * record is in hand: parse the message and the DKIM-Signature, canonicalise
 * and hash header and body, find the key (a record parsed once is cached), check the
 * signature.  Prints "key value" lines for bench/dkim.sh:
 *
 *   ed25519_sign_per_s N     ed25519_verify_per_s N
 *   rsa2048_sign_per_s N     rsa2048_verify_per_s N
 *   ed25519_key_parse_per_s N  rsa2048_key_parse_per_s N  (the record alone)
 *   message_bytes N
 *
 * Rates are per second of this process's user CPU time, like `openssl speed`'s.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>

#include <openssl/evp.h>

#include "pki/crypto.h"
#include "mail/dkim.h"

/* User CPU time of this process, as `openssl speed` counts: its default divides by the
 * user time times() reports, not the elapsed time nor the system time.  Both figures
 * then leave out the time other work on a shared machine took, and ours leaves out the
 * system time of reading this clock (a system call, made every 16 operations only). */
static double now(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6;
}

static void die(const char *what, const struct err *e)
{
	fprintf(stderr, "dkim_verify: %s: %s\n", what, e->msg);
	exit(1);
}

/* The key record is handed over as a DNS answer would be, as text each time (lib/dkim
 * parses a given record text once and keeps the key). */
static int lookup(const char *selector, const char *domain, void *ctx, char **record, struct err *e)
{
	(void)selector;
	(void)domain;
	*record = strdup(ctx);
	if (*record == NULL)
		return err_set(e, ERR_INTERNAL, "oom", "out of memory");
	return 0;
}

/* A plain-text message: the usual header fields and size bytes of 70-column lines. */
static char *make_message(size_t size, size_t *len)
{
	static const char head[] = "From: Alice <alice@bench.test>\r\n"
	                           "To: Bob <bob@example.net>\r\n"
	                           "Subject: DKIM verification benchmark\r\n"
	                           "Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
	                           "Message-ID: <bench.1@bench.test>\r\n"
	                           "MIME-Version: 1.0\r\n"
	                           "Content-Type: text/plain; charset=us-ascii\r\n"
	                           "\r\n";
	static const char line[] =
	    "The quick brown fox jumps over the lazy dog; 0123456789 abcdefghijk.\r\n";
	size_t n = strlen(head), ll = strlen(line);
	char *m = malloc(n + size + ll + 1);

	if (m == NULL)
		return NULL;
	memcpy(m, head, n);
	while (n < strlen(head) + size) {
		memcpy(m + n, line, ll);
		n += ll;
	}
	m[n] = '\0';
	*len = n;
	return m;
}

struct rates {
	double sign, verify, parse;
};

static struct rates run(const char *name, enum key_alg alg, const char *msg, size_t len,
                        double seconds)
{
	struct dkim_sign_opts o = {.d = "bench.test", .s = "bench"};
	struct rates r = {0, 0, 0};
	struct err e = {0};
	EVP_PKEY *key = crypto_key_generate(alg, alg == KEY_RSA ? 2048 : 0, &e);
	char *record, *field, *signed_msg;
	size_t flen, slen;
	long n;
	double t0;

	if (key == NULL)
		die("key", &e);
	record = dkim_key_record(key, &e);
	if (record == NULL)
		die("record", &e);

	/* signing, for scale: a tenth of the time */
	field = NULL;
	n = 0;
	t0 = now();
	do {
		free(field);
		field = dkim_sign(msg, len, &o, key, &e);
		if (field == NULL)
			die("sign", &e);
		n++;
	} while ((n & 15) != 0 || now() - t0 < seconds / 10);
	r.sign = (double)n / (now() - t0);

	flen = strlen(field);
	slen = flen + 2 + len;
	signed_msg = malloc(slen + 1);
	if (signed_msg == NULL) {
		fprintf(stderr, "dkim_verify: out of memory\n");
		exit(1);
	}
	memcpy(signed_msg, field, flen);
	memcpy(signed_msg + flen, "\r\n", 2);
	memcpy(signed_msg + flen + 2, msg, len);
	signed_msg[slen] = '\0';

	n = 0;
	t0 = now();
	do {
		struct dkim_result res;

		if (dkim_verify_sig(signed_msg, slen, 0, lookup, record, &res, &e) < 0 ||
		    res.status != DKIM_PASS) {
			fprintf(stderr, "dkim_verify: %s: verification failed: %s (%s)\n", name,
			        e.msg, res.reason);
			exit(1);
		}
		n++;
	} while ((n & 15) != 0 || now() - t0 < seconds);
	r.verify = (double)n / (now() - t0);

	/* the key record alone: what lib/dkim's cache of parsed keys saves */
	n = 0;
	t0 = now();
	do {
		struct dkim_key k;

		if (dkim_key_parse(record, strlen(record), &k, &e) < 0)
			die("key parse", &e);
		dkim_key_clear(&k);
		n++;
	} while ((n & 15) != 0 || now() - t0 < seconds / 10);
	r.parse = (double)n / (now() - t0);

	free(signed_msg);
	free(field);
	free(record);
	EVP_PKEY_free(key);
	return r;
}

int main(int argc, char **argv)
{
	double seconds = argc > 1 ? atof(argv[1]) : 3.0;
	size_t size = argc > 2 ? (size_t)atol(argv[2]) : 4096;
	size_t len;
	char *msg;
	struct rates ed, rsa;

	if (seconds <= 0 || size == 0) {
		fprintf(stderr, "usage: dkim_verify [SECONDS] [SIZE]\n");
		return 2;
	}
	msg = make_message(size, &len);
	if (msg == NULL) {
		fprintf(stderr, "dkim_verify: out of memory\n");
		return 1;
	}
	ed = run("ed25519", KEY_ED25519, msg, len, seconds);
	rsa = run("rsa2048", KEY_RSA, msg, len, seconds);
	printf("message_bytes %zu\n", len);
	printf("ed25519_sign_per_s %.0f\n", ed.sign);
	printf("ed25519_verify_per_s %.0f\n", ed.verify);
	printf("rsa2048_sign_per_s %.0f\n", rsa.sign);
	printf("rsa2048_verify_per_s %.0f\n", rsa.verify);
	printf("ed25519_key_parse_per_s %.0f\n", ed.parse);
	printf("rsa2048_key_parse_per_s %.0f\n", rsa.parse);
	free(msg);
	return 0;
}
