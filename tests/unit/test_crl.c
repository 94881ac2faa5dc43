/* test_crl.c - unit tests for lib/pki/crl.c: issuer-signed CRLs read back with OpenSSL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "pki/cert.h"
#include "pki/crl.h"
#include "pki/crypto.h"

struct issuer {
	EVP_PKEY *root_key, *key;
	X509 *root, *cert;
};

static struct issuer ed, p256, other;

static void make_issuer(struct issuer *s, const char *domain, enum key_alg alg)
{
	struct err e = {0};

	s->root_key = crypto_key_generate(KEY_ED25519, 0, &e);
	s->key = crypto_key_generate(alg, 2048, &e);
	assert_non_null(s->root_key);
	assert_non_null(s->key);
	s->root = cert_make_root(s->root_key, domain, 3650, &e);
	assert_non_null(s->root);
	s->cert = cert_make_issuer(s->key, s->root, s->root_key, domain, 730, &e);
	if (s->cert == NULL)
		fail_msg("cert_make_issuer: %s", e.msg);
}

static void free_issuer(struct issuer *s)
{
	EVP_PKEY_free(s->root_key);
	EVP_PKEY_free(s->key);
	X509_free(s->root);
	X509_free(s->cert);
}

static int group_setup(void **state)
{
	make_issuer(&ed, "example.com", KEY_ED25519);
	make_issuer(&p256, "example.org", KEY_P256);
	make_issuer(&other, "example.net", KEY_P256);
	return 0;
}

static int group_teardown(void **state)
{
	free_issuer(&ed);
	free_issuer(&p256);
	free_issuer(&other);
	return 0;
}

/* Build, encode to DER and parse back: the test looks only at what a relying party sees. */
static X509_CRL *make_and_parse(struct issuer *s, const struct crl_entry *en, size_t n,
                                long long number, long next)
{
	struct err e = {0};
	X509_CRL *crl = crl_make(s->cert, s->key, en, n, number, next, &e), *back;
	unsigned char *der;
	const unsigned char *p;
	size_t len = 0;

	if (crl == NULL)
		fail_msg("crl_make: %s", e.msg);
	der = crl_to_der(crl, &len, &e);
	assert_non_null(der);
	assert_true(len > 0);
	p = der;
	back = d2i_X509_CRL(NULL, &p, (long)len);
	assert_non_null(back);
	assert_ptr_equal(p, der + len); /* nothing after the CRL */
	free(der);
	X509_CRL_free(crl);
	return back;
}

static long long asn1_int(const ASN1_INTEGER *i)
{
	int64_t v = -1;

	assert_int_equal(ASN1_INTEGER_get_int64(&v, i), 1);
	return (long long)v;
}

static char *serial_hex(const X509_REVOKED *r)
{
	BIGNUM *bn = ASN1_INTEGER_to_BN(X509_REVOKED_get0_serialNumber(r), NULL);
	char *hex = BN_bn2hex(bn);

	BN_free(bn);
	return hex;
}

/* The reason code of an entry, or -1 when it carries none. */
static int entry_reason(const X509_REVOKED *r)
{
	int crit = 0;
	ASN1_ENUMERATED *reason = X509_REVOKED_get_ext_d2i(r, NID_crl_reason, &crit, NULL);
	int code = reason ? (int)ASN1_ENUMERATED_get(reason) : -1;

	ASN1_ENUMERATED_free(reason);
	return code;
}

static void test_entries_and_signature(void **state)
{
	const struct crl_entry en[] = {
	    {"0A1B2C3D4E5F", 1700000000, CRL_KEY_COMPROMISE},
	    {"01", 1700000100, CRL_UNSPECIFIED},
	    {"7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF", 1700000200, CRL_SUPERSEDED},
	};
	struct issuer *sets[] = {&ed, &p256};

	for (size_t k = 0; k < 2; k++) {
		X509_CRL *crl = make_and_parse(sets[k], en, 3, 42, 3600);
		STACK_OF(X509_REVOKED) *revs = X509_CRL_get_REVOKED(crl);
		int found = 0;

		/* Signed by the issuer key, named after the issuer, not by anyone else. */
		assert_int_equal(X509_CRL_verify(crl, sets[k]->key), 1);
		/* 0 for another key of the same type, -1 for one of another type. */
		assert_true(X509_CRL_verify(crl, other.key) != 1);
		assert_int_equal(
		    X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_subject_name(sets[k]->cert)),
		    0);
		assert_int_equal(X509_CRL_get_version(crl), 1); /* v2 */
		assert_int_equal(sk_X509_REVOKED_num(revs), 3);
		for (int i = 0; i < sk_X509_REVOKED_num(revs); i++) {
			X509_REVOKED *r = sk_X509_REVOKED_value(revs, i);
			char *hex = serial_hex(r);

			for (size_t j = 0; j < 3; j++) {
				if (strcmp(hex, en[j].serial_hex) != 0)
					continue;
				found++;
				assert_int_equal(
				    ASN1_TIME_cmp_time_t(X509_REVOKED_get0_revocationDate(r),
				                         en[j].revoked_at),
				    0);
				/* "unspecified" is left out, as RFC 5280 §5.3.1 asks. */
				assert_int_equal(entry_reason(r), en[j].reason == CRL_UNSPECIFIED
				                                      ? -1
				                                      : en[j].reason);
			}
			OPENSSL_free(hex);
		}
		assert_int_equal(found, 3);

		/* The lookup a verifier does: by serial. */
		X509_REVOKED *hit = NULL;
		ASN1_INTEGER *serial = ASN1_INTEGER_new();
		ASN1_INTEGER_set_int64(serial, 1);
		assert_int_equal(X509_CRL_get0_by_serial(crl, &hit, serial), 1);
		ASN1_INTEGER_set_int64(serial, 2);
		assert_int_equal(X509_CRL_get0_by_serial(crl, &hit, serial), 0);
		ASN1_INTEGER_free(serial);
		X509_CRL_free(crl);
	}
}

static void test_number_times_and_aki(void **state)
{
	const struct crl_entry en[] = {{"05", 1700000000, CRL_CESSATION}};
	time_t before = time(NULL);
	X509_CRL *crl = make_and_parse(&p256, en, 1, 1234567890123LL, 7200);
	time_t after = time(NULL);
	int crit = -1;
	ASN1_INTEGER *num = X509_CRL_get_ext_d2i(crl, NID_crl_number, &crit, NULL);
	AUTHORITY_KEYID *aki = X509_CRL_get_ext_d2i(crl, NID_authority_key_identifier, &crit, NULL);
	const ASN1_OCTET_STRING *skid = X509_get0_subject_key_id(p256.cert);

	assert_non_null(num);
	assert_int_equal(asn1_int(num), 1234567890123LL);
	/* thisUpdate is now; nextUpdate is now plus the period. */
	assert_true(ASN1_TIME_cmp_time_t(X509_CRL_get0_lastUpdate(crl), before) >= 0);
	assert_true(ASN1_TIME_cmp_time_t(X509_CRL_get0_lastUpdate(crl), after) <= 0);
	assert_true(ASN1_TIME_cmp_time_t(X509_CRL_get0_nextUpdate(crl), before + 7200) >= 0);
	assert_true(ASN1_TIME_cmp_time_t(X509_CRL_get0_nextUpdate(crl), after + 7200) <= 0);
	/* The AKI names the issuer's key, so a verifier can pick the right issuer. */
	assert_non_null(aki);
	assert_non_null(skid);
	assert_int_equal(ASN1_OCTET_STRING_cmp(aki->keyid, skid), 0);
	ASN1_INTEGER_free(num);
	AUTHORITY_KEYID_free(aki);
	X509_CRL_free(crl);
}

static void test_empty(void **state)
{
	X509_CRL *crl = make_and_parse(&ed, NULL, 0, 1, 3600);

	assert_int_equal(X509_CRL_verify(crl, ed.key), 1);
	/* RFC 5280 §5.1.2.6: with nothing revoked the list is absent, not empty. */
	assert_null(X509_CRL_get_REVOKED(crl));
	assert_int_equal(X509_CRL_get_version(crl), 1);
	X509_CRL_free(crl);
}

/* Entries go out sorted by serial whatever order they come in (X509_CRL_get0_by_serial
 * and other readers rely on it), and many of them fit. */
static void test_ordering_and_many(void **state)
{
	enum { N = 500 };
	struct crl_entry *en = calloc(N, sizeof(*en));
	char(*hex)[16] = calloc(N, sizeof(*hex));
	X509_CRL *crl;
	STACK_OF(X509_REVOKED) * revs;
	BIGNUM *prev = NULL;

	for (int i = 0; i < N; i++) {
		/* descending, then a stride that mixes them up */
		snprintf(hex[i], sizeof(hex[i]), "%X", (unsigned)((N - i) * 7919 % 100003 + 1));
		en[i] = (struct crl_entry){hex[i], 1700000000 + i, CRL_KEY_COMPROMISE};
	}
	crl = make_and_parse(&p256, en, N, 9, 3600);
	assert_int_equal(X509_CRL_verify(crl, p256.key), 1);
	revs = X509_CRL_get_REVOKED(crl);
	assert_int_equal(sk_X509_REVOKED_num(revs), N);
	for (int i = 0; i < N; i++) {
		BIGNUM *bn = ASN1_INTEGER_to_BN(
		    X509_REVOKED_get0_serialNumber(sk_X509_REVOKED_value(revs, i)), NULL);
		if (prev != NULL)
			assert_true(BN_cmp(prev, bn) < 0);
		BN_free(prev);
		prev = bn;
	}
	BN_free(prev);
	X509_CRL_free(crl);
	free(en);
	free(hex);
}

static void test_pem(void **state)
{
	const struct crl_entry en[] = {{"2A", 1700000000, CRL_PRIVILEGE_WITHDRAWN}};
	struct err e = {0};
	X509_CRL *crl = crl_make(ed.cert, ed.key, en, 1, 3, 60, &e), *back;
	char *pem = crl_to_pem(crl, &e);
	BIO *bio;

	assert_non_null(pem);
	assert_int_equal(strncmp(pem, "-----BEGIN X509 CRL-----\n", 25), 0);
	bio = BIO_new_mem_buf(pem, -1);
	back = PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL);
	assert_non_null(back);
	assert_int_equal(X509_CRL_cmp(crl, back), 0);
	assert_int_equal(X509_CRL_verify(back, ed.key), 1);
	assert_int_equal(entry_reason(sk_X509_REVOKED_value(X509_CRL_get_REVOKED(back), 0)),
	                 CRL_PRIVILEGE_WITHDRAWN);
	BIO_free(bio);
	X509_CRL_free(back);
	X509_CRL_free(crl);
	free(pem);
}

static void test_bad_serial(void **state)
{
	const struct crl_entry en[] = {{"not hex", 1700000000, CRL_KEY_COMPROMISE}};
	struct err e = {0};

	assert_null(crl_make(ed.cert, ed.key, en, 1, 1, 60, &e));
	assert_int_equal(e.kind, ERR_INTERNAL);
	assert_string_equal(e.code, "internal");
}

static void test_reasons(void **state)
{
	static const struct {
		const char *name;
		int code;
	} known[] = {
	    {"unspecified", 0}, {"keyCompromise", 1},        {"affiliationChanged", 3},
	    {"superseded", 4},  {"cessationOfOperation", 5}, {"privilegeWithdrawn", 9},
	};
	static const char *const bad[] = {"",
	                                  "KeyCompromise",
	                                  "keycompromise",
	                                  "cACompromise",
	                                  "removeFromCRL",
	                                  "certificateHold",
	                                  "keyCompromise "};
	struct err e;
	int code;

	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
		code = -1;
		err_clear(&e);
		assert_int_equal(crl_reason_parse(known[i].name, &code, &e), 0);
		assert_int_equal(code, known[i].code);
		assert_string_equal(crl_reason_name(known[i].code), known[i].name);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err_clear(&e);
		assert_int_equal(crl_reason_parse(bad[i], &code, &e), -1);
		assert_int_equal(e.kind, ERR_INPUT);
		assert_string_equal(e.code, "bad_reason");
	}
	assert_int_equal(crl_reason_parse(NULL, &code, &e), -1);
	/* Codes we never issue have no name: 2 (cACompromise), 6 (certificateHold), 8. */
	assert_null(crl_reason_name(2));
	assert_null(crl_reason_name(6));
	assert_null(crl_reason_name(8));
	assert_null(crl_reason_name(-1));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_entries_and_signature),
	    cmocka_unit_test(test_number_times_and_aki),
	    cmocka_unit_test(test_empty),
	    cmocka_unit_test(test_ordering_and_many),
	    cmocka_unit_test(test_pem),
	    cmocka_unit_test(test_bad_serial),
	    cmocka_unit_test(test_reasons),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
