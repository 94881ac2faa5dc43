/*
 * smime_encrypt.c - S/MIME messages encrypted per second with lib/mail/smime.
 *
 *   smime_encrypt DIR [SECONDS] [SIZE]
 *
 * Makes ten P-256 recipient certificates (keyAgreement, as the key server
 * issues them) and one message of SIZE bytes (default 4096), writes them to
 * DIR (r0.pem .. r9.pem, msg.txt) for bench/smime.sh's `openssl cms -encrypt`
 * runs, then encrypts the message with smime_encrypt, as `anchorctl mail
 * encrypt` does after its lookups, to 1 and to 10 recipients for SECONDS
 * (default 3) each.  Prints "key value" lines:
 *
 *   r1_per_s N   r10_per_s N   message_bytes N
 *
 * Rates are per second of this process's CPU time.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "mail/smime.h"

#define NRECIP 10

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
	fprintf(stderr, "smime_encrypt: %s\n", what);
	exit(1);
}

/* A self-signed P-256 certificate allowed to encrypt (keyAgreement). */
static X509 *make_cert(int i)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	char cn[32];

	if (k == NULL || x == NULL)
		die("out of memory");
	snprintf(cn, sizeof(cn), "r%d", i);
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), i + 1);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
	                           (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(x));
	X509_set_pubkey(x, k);
	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_key_usage, "critical,keyAgreement");
	if (ext == NULL || !X509_add_ext(x, ext, -1) || !X509_sign(x, k, EVP_sha256()))
		die("making a certificate");
	X509_EXTENSION_free(ext);
	EVP_PKEY_free(k);
	return x;
}

static void write_file(const char *dir, const char *name, const void *data, size_t len, X509 *x)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if ((f = fopen(path, "w")) == NULL)
		die(path);
	if (x != NULL ? PEM_write_X509(f, x) != 1 : fwrite(data, 1, len, f) != len)
		die(path);
	fclose(f);
}

static double rate(const char *msg, size_t len, STACK_OF(X509) *r, double seconds)
{
	struct smime_buf out;
	struct err e = {0};
	double t0 = now(), t;
	long n = 0;

	do {
		if (smime_encrypt(msg, len, r, SMIME_AES256_GCM, &out, &e) < 0)
			die(e.msg);
		smime_buf_clear(&out);
		n++;
	} while ((t = now() - t0) < seconds);
	return (double)n / t;
}

int main(int argc, char **argv)
{
	double seconds = argc > 2 ? atof(argv[2]) : 3;
	size_t len = argc > 3 ? (size_t)atol(argv[3]) : 4096;
	STACK_OF(X509) *one = sk_X509_new_null(), *ten = sk_X509_new_null();
	char *msg = malloc(len + 1), name[16];
	const char *head = "Content-Type: text/plain\n\n";

	if (argc < 2 || msg == NULL || one == NULL || ten == NULL || len < 64)
		die("usage: smime_encrypt DIR [SECONDS] [SIZE >= 64]");
	for (size_t i = 0; i < len; i++)
		msg[i] = (i % 64 == 63) ? '\n' : (char)('a' + i % 26);
	memcpy(msg, head, strlen(head));
	write_file(argv[1], "msg.txt", msg, len, NULL);
	for (int i = 0; i < NRECIP; i++) {
		X509 *x = make_cert(i);
		snprintf(name, sizeof(name), "r%d.pem", i);
		write_file(argv[1], name, NULL, 0, x);
		if (i == 0) {
			X509_up_ref(x);
			sk_X509_push(one, x);
		}
		sk_X509_push(ten, x);
	}
	printf("r1_per_s %.0f\n", rate(msg, len, one, seconds));
	printf("r10_per_s %.0f\n", rate(msg, len, ten, seconds));
	printf("message_bytes %zu\n", len);
	sk_X509_pop_free(one, X509_free);
	sk_X509_pop_free(ten, X509_free);
	free(msg);
	return 0;
}
