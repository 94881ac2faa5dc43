/* test_cert.c - unit tests for lib/pki/cert.c, cert_check.c, csr.c and name.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "pki/cert.h"
#include "pki/csr.h"
#include "pki/name.h"
#include "pki/crypto.h"

/* Two complete domain hierarchies, made once for the whole group. */
struct domain_set {
	const char *domain;
	EVP_PKEY *root_key, *issuer_key;
	X509 *root, *issuer;
};

static struct domain_set example = {.domain = "example.com"};
static struct domain_set other = {.domain = "other.org"};
static EVP_PKEY *ed_key, *p256_key, *rsa_key;

static void make_set(struct domain_set *s, enum key_alg root_alg, enum key_alg issuer_alg)
{
	struct err e;

	err_clear(&e);
	s->root_key = crypto_key_generate(root_alg, 2048, &e);
	s->issuer_key = crypto_key_generate(issuer_alg, 2048, &e);
	assert_non_null(s->root_key);
	assert_non_null(s->issuer_key);
	s->root = cert_make_root(s->root_key, s->domain, 3650, &e);
	assert_non_null(s->root);
	s->issuer = cert_make_issuer(s->issuer_key, s->root, s->root_key, s->domain, 730, &e);
	if (s->issuer == NULL)
		fail_msg("cert_make_issuer: %s", e.msg);
}

static void free_set(struct domain_set *s)
{
	X509_free(s->root);
	X509_free(s->issuer);
	EVP_PKEY_free(s->root_key);
	EVP_PKEY_free(s->issuer_key);
}

static int group_setup(void **state)
{
	struct err e;

	make_set(&example, KEY_ED25519, KEY_P256);
	make_set(&other, KEY_P256, KEY_ED25519);
	ed_key = crypto_key_generate(KEY_ED25519, 0, &e);
	p256_key = crypto_key_generate(KEY_P256, 0, &e);
	rsa_key = crypto_key_generate(KEY_RSA, 2048, &e);
	return ed_key && p256_key && rsa_key ? 0 : -1;
}

static int group_teardown(void **state)
{
	free_set(&example);
	free_set(&other);
	EVP_PKEY_free(ed_key);
	EVP_PKEY_free(p256_key);
	EVP_PKEY_free(rsa_key);
	return 0;
}

static X509 *issue(struct domain_set *s, enum cert_purpose purpose, const char *name, EVP_PKEY *key,
                   struct err *e)
{
	char id[CRYPTO_UUID_LEN];
	struct cert_issue req;

	assert_int_equal(crypto_uuid_v4(id, e), 0);
	req.purpose = purpose;
	req.name = name;
	req.key_id = id;
	req.days = 365;
	err_clear(e);
	return cert_issue_leaf(&req, key, s->issuer, s->issuer_key, e);
}

/* ---- the hierarchy ---- */

static void test_root_and_issuer(void **state)
{
	NAME_CONSTRAINTS *nc;
	int crit = -1;

	assert_int_equal(X509_check_ca(example.root), 1);
	assert_int_equal(X509_self_signed(example.root, 1), 1);
	assert_int_equal(X509_get_key_usage(example.root), KU_KEY_CERT_SIGN | KU_CRL_SIGN);
	nc = X509_get_ext_d2i(example.root, NID_name_constraints, &crit, NULL);
	assert_non_null(nc);
	assert_int_equal(crit, 1);
	assert_int_equal(sk_GENERAL_SUBTREE_num(nc->permittedSubtrees), 3);
	NAME_CONSTRAINTS_free(nc);

	assert_int_equal(X509_check_ca(example.issuer), 1);
	assert_int_equal(X509_get_pathlen(example.issuer), 0);
	assert_int_equal(X509_verify(example.issuer, X509_get0_pubkey(example.root)), 1);
	assert_int_equal(X509_check_issued(example.root, example.issuer), X509_V_OK);
	assert_non_null(X509_get0_subject_key_id(example.issuer));
	assert_non_null(X509_get0_authority_key_id(example.issuer));
}

static void test_issue_bad_input(void **state)
{
	struct cert_issue req = {CERT_PURPOSE_SMIME, "alice@example.com", "not-a-uuid", 365};
	X509 *leaf;
	struct err e;

	err_clear(&e);
	assert_null(cert_issue_leaf(&req, ed_key, example.issuer, example.issuer_key, &e));
	assert_null(issue(&example, CERT_PURPOSE_SMIME, "Alice@example.com", ed_key, &e));
	assert_string_equal(e.code, "bad_name");
	assert_null(issue(&example, CERT_PURPOSE_MTA, "alice@example.com", ed_key, &e));
	assert_string_equal(e.code, "bad_name");
	/* A key that is not the issuer's cannot sign for it. */
	req.key_id = "0b6f5c0e-4d3a-4c8e-9a57-6a1f1d0e8a11";
	assert_null(cert_issue_leaf(&req, ed_key, example.issuer, other.issuer_key, &e));
	req.days = 826;
	assert_null(cert_issue_leaf(&req, ed_key, example.issuer, example.issuer_key, &e));
	req.days = 365;
	leaf = cert_issue_leaf(&req, ed_key, example.issuer, example.issuer_key, &e);
	assert_non_null(leaf);
	X509_free(leaf);
}

static void test_user_leaf(void **state)
{
	char id[CRYPTO_UUID_LEN], buf[80], *serial;
	struct cert_issue req;
	GENERAL_NAMES *san;
	GENERAL_NAME *gen;
	time_t now = time(NULL);
	X509 *leaf;
	struct err e;

	assert_int_equal(crypto_uuid_v4(id, &e), 0);
	req = (struct cert_issue){CERT_PURPOSE_SMIME, "alice@example.com", id, 365};
	leaf = cert_issue_leaf(&req, ed_key, example.issuer, example.issuer_key, &e);
	assert_non_null(leaf);

	if (cert_verify_chain(leaf, example.issuer, example.root, &e) != 0)
		fail_msg("verify: %s", e.msg);
	assert_int_equal(X509_check_ca(leaf), 0);
	assert_true(X509_get_extension_flags(leaf) & EXFLAG_XKUSAGE);
	assert_int_equal(X509_get_extended_key_usage(leaf), XKU_SMIME);
	assert_int_equal(X509_get_key_usage(leaf), KU_DIGITAL_SIGNATURE);
	assert_int_equal(X509_check_email(leaf, "alice@example.com", 0, 0), 1);

	san = X509_get_ext_d2i(leaf, NID_subject_alt_name, NULL, NULL);
	assert_non_null(san);
	assert_int_equal(sk_GENERAL_NAME_num(san), 1);
	gen = sk_GENERAL_NAME_value(san, 0);
	assert_int_equal(gen->type, GEN_EMAIL);
	GENERAL_NAMES_free(san);

	assert_true(X509_NAME_get_text_by_NID(X509_get_subject_name(leaf), NID_serialNumber, buf,
	                                      sizeof(buf)) > 0);
	assert_string_equal(buf, id);

	serial = cert_serial_hex(leaf);
	assert_non_null(serial);
	assert_int_equal(strlen(serial), 32);
	assert_int_equal(strspn(serial, "0123456789abcdef"), 32);
	free(serial);

	assert_true(cert_not_before(leaf) <= now - 290 && cert_not_before(leaf) >= now - 320);
	assert_true(cert_not_after(leaf) >= now + 365 * 86400 - 10 &&
	            cert_not_after(leaf) <= now + 365 * 86400 + 10);
	X509_free(leaf);
}

static void test_server_leaves(void **state)
{
	X509 *leaf;
	struct err e;

	leaf = issue(&example, CERT_PURPOSE_MTA, "mx.example.com", rsa_key, &e);
	assert_non_null(leaf);
	assert_int_equal(cert_verify_chain(leaf, example.issuer, example.root, &e), 0);
	assert_int_equal(X509_get_extended_key_usage(leaf), XKU_SSL_SERVER | XKU_SSL_CLIENT);
	assert_int_equal(X509_get_key_usage(leaf), KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT);
	assert_int_equal(X509_check_host(leaf, "mx.example.com", 0, 0, NULL), 1);
	X509_free(leaf);

	leaf = issue(&example, CERT_PURPOSE_KEYSERVER, "keys.example.com", p256_key, &e);
	assert_non_null(leaf);
	assert_int_equal(cert_verify_chain(leaf, example.issuer, example.root, &e), 0);
	assert_int_equal(X509_get_extended_key_usage(leaf), XKU_SSL_SERVER);
	assert_int_equal(X509_get_key_usage(leaf), KU_DIGITAL_SIGNATURE);
	X509_free(leaf);

	leaf = issue(&example, CERT_PURPOSE_SIGNING, "example.com", rsa_key, &e);
	assert_non_null(leaf);
	assert_int_equal(cert_verify_chain(leaf, example.issuer, example.root, &e), 0);
	assert_int_equal(X509_get_ext_by_NID(leaf, NID_ext_key_usage, -1), -1);
	assert_int_equal(X509_get_key_usage(leaf), KU_DIGITAL_SIGNATURE);
	X509_free(leaf);

	/* Subdomains are inside the constraints. */
	leaf = issue(&example, CERT_PURPOSE_SMIME, "bob@lists.example.com", p256_key, &e);
	assert_non_null(leaf);
	assert_int_equal(cert_verify_chain(leaf, example.issuer, example.root, &e), 0);
	X509_free(leaf);
}

static void expect_chain_failure(X509 *leaf, struct domain_set *s, const char *why)
{
	struct err e;

	assert_non_null(leaf);
	err_clear(&e);
	assert_int_equal(cert_verify_chain(leaf, s->issuer, s->root, &e), -1);
	assert_int_equal(e.kind, ERR_UNPROC);
	if (why != NULL && strstr(e.msg, why) == NULL)
		fail_msg("expected \"%s\" in \"%s\"", why, e.msg);
	X509_free(leaf);
}

static void test_cross_domain_leaf_fails(void **state)
{
	struct err e;

	/* The issuer signs anything; the root's name constraints stop it counting. */
	expect_chain_failure(issue(&example, CERT_PURPOSE_SMIME, "mallory@other.org", ed_key, &e),
	                     &example, "subtree");
	expect_chain_failure(issue(&example, CERT_PURPOSE_MTA, "mx.other.org", ed_key, &e),
	                     &example, "subtree");
	expect_chain_failure(issue(&example, CERT_PURPOSE_SMIME, "eve@notexample.com", ed_key, &e),
	                     &example, "subtree");
	/* And a good leaf does not verify under another domain's root. */
	expect_chain_failure(issue(&example, CERT_PURPOSE_SMIME, "alice@example.com", ed_key, &e),
	                     &other, NULL);
}

/* ---- cert_check_domain_set ---- */

static void expect_bad_set(const char *domain, X509 *root, X509 *issuer, EVP_PKEY *key,
                           const char *why)
{
	struct err e;

	err_clear(&e);
	assert_int_equal(cert_check_domain_set(domain, root, issuer, key, &e), -1);
	assert_int_equal(e.kind, ERR_UNPROC);
	assert_string_equal(e.code, "bad_domain_set");
	if (strstr(e.msg, why) == NULL)
		fail_msg("expected \"%s\" in \"%s\"", why, e.msg);
}

/* A self-signed CA with the given nameConstraints (none when NULL), made by hand. */
static X509 *hand_root(EVP_PKEY *key, const char *nc)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	X509 *cert = X509_new();

	X509_set_version(cert, X509_VERSION_3);
	ASN1_INTEGER_set(X509_get_serialNumber(cert), 7);
	X509_gmtime_adj(X509_getm_notBefore(cert), -60);
	X509_gmtime_adj(X509_getm_notAfter(cert), 86400);
	X509_set_pubkey(cert, key);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(cert), "CN", MBSTRING_ASC,
	                           (const unsigned char *)"Plain root", -1, -1, 0);
	X509_set_issuer_name(cert, X509_get_subject_name(cert));
	X509V3_set_ctx(&ctx, cert, cert, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints, "critical,CA:TRUE");
	X509_add_ext(cert, ext, -1);
	X509_EXTENSION_free(ext);
	if (nc != NULL) {
		ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_name_constraints, nc);
		assert_non_null(ext);
		X509_add_ext(cert, ext, -1);
		X509_EXTENSION_free(ext);
	}
	assert_true(X509_sign(cert, key, NULL) > 0);
	return cert;
}

static void test_domain_set(void **state)
{
	struct err e;
	X509 *plain, *leaf;

	err_clear(&e);
	if (cert_check_domain_set("example.com", example.root, example.issuer, example.issuer_key,
	                          &e) != 0)
		fail_msg("good set refused: %s", e.msg);
	assert_int_equal(
	    cert_check_domain_set("other.org", other.root, other.issuer, other.issuer_key, &e), 0);

	/* An RSA issuer works as well (its probe signature uses SHA-256). */
	plain = cert_make_issuer(rsa_key, example.root, example.root_key, "example.com", 30, &e);
	assert_non_null(plain);
	if (cert_check_domain_set("example.com", example.root, plain, rsa_key, &e) != 0)
		fail_msg("RSA issuer refused: %s", e.msg);
	expect_bad_set("example.com", example.root, plain, example.issuer_key,
	               "does not belong to the issuer");
	X509_free(plain);
	/* Issuer from another root. */
	expect_bad_set("example.com", example.root, other.issuer, other.issuer_key,
	               "not issued by this root");
	/* Issuer key that is not the issuer's. */
	expect_bad_set("example.com", example.root, example.issuer, other.issuer_key,
	               "does not belong to the issuer");
	expect_bad_set("example.com", example.root, example.issuer, NULL,
	               "does not belong to the issuer");
	/* Root constrained to another domain. */
	expect_bad_set("other.org", example.root, example.issuer, example.issuer_key,
	               "outside other.org");
	expect_bad_set("sub.example.com", example.root, example.issuer, example.issuer_key,
	               "outside sub.example.com");
	/* Root without any constraints. */
	plain = hand_root(ed_key, NULL);
	expect_bad_set("example.com", plain, example.issuer, example.issuer_key,
	               "no name constraints");
	X509_free(plain);
	/* Constraints that leave addresses, or the domain itself, unconstrained or out. */
	plain = hand_root(ed_key, "critical,permitted;DNS:example.com");
	expect_bad_set("example.com", plain, example.issuer, example.issuer_key,
	               "do not restrict email addresses");
	X509_free(plain);
	plain =
	    hand_root(ed_key, "critical,permitted;DNS:mx.example.com,permitted;email:example.com");
	expect_bad_set("example.com", plain, example.issuer, example.issuer_key,
	               "do not permit DNS:example.com");
	X509_free(plain);
	plain = hand_root(ed_key, "critical,permitted;DNS:example.com,permitted;email:.org");
	expect_bad_set("example.com", plain, example.issuer, example.issuer_key,
	               "email:.org, outside");
	X509_free(plain);
	plain = hand_root(ed_key, "permitted;DNS:example.com,permitted;email:example.com");
	expect_bad_set("example.com", plain, example.issuer, example.issuer_key, "critical");
	X509_free(plain);
	/* Everything right about the root but the issuer: it is not this root's. */
	plain = hand_root(ed_key, "critical,permitted;DNS:example.com,permitted;email:example.com");
	expect_bad_set("example.com", plain, example.issuer, example.issuer_key,
	               "not issued by this root");
	X509_free(plain);
	/* The root used as its own issuer: no pathlen 0. */
	expect_bad_set("example.com", example.root, example.root, example.root_key, "pathlen 0");
	/* A leaf is no issuer. */
	leaf = issue(&example, CERT_PURPOSE_SMIME, "alice@example.com", ed_key, &e);
	assert_non_null(leaf);
	expect_bad_set("example.com", example.root, leaf, ed_key, "not a CA");
	/* Nor a root. */
	expect_bad_set("example.com", leaf, example.issuer, example.issuer_key, "self-issued");
	X509_free(leaf);
	err_clear(&e);
	assert_int_equal(cert_check_domain_set("Example.com", example.root, example.issuer,
	                                       example.issuer_key, &e),
	                 -1);
	assert_string_equal(e.code, "bad_name");
}

/* ---- PEM and accessors ---- */

static void test_pem_and_fingerprint(void **state)
{
	char fpr[CERT_FPR_LEN], fpr2[CERT_FPR_LEN], *pem, *bad;
	enum cert_purpose p;
	struct err e;
	X509 *back;
	size_t len;

	pem = cert_to_pem(example.issuer, &e);
	assert_non_null(pem);
	len = strlen(pem);
	back = cert_from_pem(pem, len, &e);
	assert_non_null(back);
	assert_int_equal(X509_cmp(back, example.issuer), 0);
	assert_int_equal(cert_fingerprint(back, fpr, &e), 0);
	assert_int_equal(cert_fingerprint(example.issuer, fpr2, &e), 0);
	assert_string_equal(fpr, fpr2);
	assert_int_equal(strlen(fpr), 71);
	assert_memory_equal(fpr, "sha256:", 7);
	assert_int_equal(strspn(fpr + 7, "0123456789abcdef"), 64);
	assert_int_equal(cert_fingerprint(example.root, fpr2, &e), 0);
	assert_string_not_equal(fpr, fpr2);
	X509_free(back);

	/* Surrounding whitespace is fine; anything else is not. */
	bad = malloc(2 * len + 16);
	sprintf(bad, "\n  %s\n\n", pem);
	back = cert_from_pem(bad, strlen(bad), &e);
	assert_non_null(back);
	X509_free(back);
	sprintf(bad, "%sx", pem);
	assert_null(cert_from_pem(bad, strlen(bad), &e));
	assert_int_equal(e.kind, ERR_INPUT);
	sprintf(bad, "junk\n%s", pem);
	assert_null(cert_from_pem(bad, strlen(bad), &e));
	sprintf(bad, "%s%s", pem, pem);
	assert_null(cert_from_pem(bad, strlen(bad), &e));
	assert_null(cert_from_pem(pem, len / 2, &e));
	assert_null(cert_from_pem("", 0, &e));
	free(bad);
	free(pem);

	assert_int_equal(cert_purpose_parse("keyserver", &p, &e), 0);
	assert_int_equal(p, CERT_PURPOSE_KEYSERVER);
	assert_string_equal(cert_purpose_name(CERT_PURPOSE_MTA), "mta");
	assert_int_equal(cert_purpose_parse("tls", &p, &e), -1);
	assert_int_equal(e.kind, ERR_INPUT);
}

/* ---- CSRs ---- */

static X509_REQ *round_trip(X509_REQ *req)
{
	struct err e;
	X509_REQ *back;
	char *pem;

	pem = csr_to_pem(req, &e);
	assert_non_null(pem);
	assert_non_null(strstr(pem, "-----BEGIN CERTIFICATE REQUEST-----"));
	back = csr_from_pem(pem, strlen(pem), &e);
	free(pem);
	assert_non_null(back);
	X509_REQ_free(req);
	return back;
}

static void csr_case(EVP_PKEY *key, enum cert_kind kind, const char *name)
{
	X509_REQ *req;
	struct err e;
	char *got;

	err_clear(&e);
	req = csr_make(key, kind, name, &e);
	if (req == NULL)
		fail_msg("csr_make: %s", e.msg);
	req = round_trip(req);
	if (csr_verify(req, &e) != 0)
		fail_msg("csr_verify: %s", e.msg);
	got = csr_requested_name(req, kind, &e);
	assert_non_null(got);
	assert_string_equal(got, name);
	free(got);
	X509_REQ_free(req);
}

static void test_csr_round_trip(void **state)
{
	csr_case(ed_key, CERT_USER, "alice@example.com");
	csr_case(p256_key, CERT_USER, "o'brien+tag@example.com");
	csr_case(rsa_key, CERT_SERVER, "mx.example.com");
	csr_case(ed_key, CERT_SERVER, "example.com");
	/* Longer than any subject attribute allows: the SAN carries it alone. */
	csr_case(ed_key, CERT_USER,
	         "a.very.long.local.part.that.goes.on.and.on.and.on.for.sixty-four"
	         "@a-domain-name-that-is-long-enough-to-push-the-address-past-128."
	         "example.com");
}

/* A request built by hand: subject entries and SAN names as given, signed by key. */
static X509_REQ *hand_csr(EVP_PKEY *key, const char *cn, const char *email, int san_type,
                          const char *san1, const char *san2)
{
	STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
	X509_REQ *req = X509_REQ_new();
	X509_NAME *subject = X509_REQ_get_subject_name(req);
	GENERAL_NAMES *gens = GENERAL_NAMES_new();
	const char *sans[2] = {san1, san2};
	int i;

	X509_REQ_set_pubkey(req, key);
	if (cn != NULL)
		X509_NAME_add_entry_by_NID(subject, NID_commonName, MBSTRING_ASC,
		                           (const unsigned char *)cn, -1, -1, 0);
	if (email != NULL)
		X509_NAME_add_entry_by_NID(subject, NID_pkcs9_emailAddress, MBSTRING_ASC,
		                           (const unsigned char *)email, -1, -1, 0);
	for (i = 0; i < 2; i++) {
		GENERAL_NAME *gen;
		ASN1_IA5STRING *ia5;

		if (sans[i] == NULL)
			continue;
		gen = GENERAL_NAME_new();
		ia5 = ASN1_IA5STRING_new();
		ASN1_STRING_set(ia5, sans[i], -1);
		GENERAL_NAME_set0_value(gen, san_type, ia5);
		sk_GENERAL_NAME_push(gens, gen);
	}
	if (sk_GENERAL_NAME_num(gens) > 0) {
		sk_X509_EXTENSION_push(exts, X509V3_EXT_i2d(NID_subject_alt_name, 0, gens));
		X509_REQ_add_extensions(req, exts);
	}
	GENERAL_NAMES_free(gens);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	assert_true(
	    X509_REQ_sign(req, key,
	                  EVP_PKEY_get_base_id(key) == EVP_PKEY_ED25519 ? NULL : EVP_sha256()) > 0);
	return round_trip(req);
}

static void expect_name(X509_REQ *req, enum cert_kind kind, const char *want, const char *code)
{
	struct err e;
	char *got;

	err_clear(&e);
	got = csr_requested_name(req, kind, &e);
	if (want != NULL) {
		if (got == NULL)
			fail_msg("expected %s, got error %s: %s", want, e.code, e.msg);
		assert_string_equal(got, want);
	} else {
		assert_null(got);
		assert_int_equal(e.kind, ERR_INPUT);
		assert_string_equal(e.code, code);
	}
	free(got);
	X509_REQ_free(req);
}

static void test_csr_requested_name(void **state)
{
	/* SAN, lowercased. */
	expect_name(hand_csr(ed_key, NULL, NULL, GEN_EMAIL, "Alice@Example.COM", NULL), CERT_USER,
	            "alice@example.com", NULL);
	/* The same name twice is one name. */
	expect_name(hand_csr(ed_key, NULL, NULL, GEN_EMAIL, "a@example.com", "A@example.com"),
	            CERT_USER, "a@example.com", NULL);
	expect_name(hand_csr(ed_key, NULL, NULL, GEN_EMAIL, "a@example.com", "b@example.com"),
	            CERT_USER, NULL, "bad_csr");
	/* SAN wins over the subject. */
	expect_name(
	    hand_csr(ed_key, "x.example.com", "x@example.com", GEN_DNS, "mx.example.com", NULL),
	    CERT_SERVER, "mx.example.com", NULL);
	/* Subject fallbacks. */
	expect_name(hand_csr(ed_key, "Alice", "alice@example.com", 0, NULL, NULL), CERT_USER,
	            "alice@example.com", NULL);
	expect_name(hand_csr(ed_key, "MX.example.com", NULL, 0, NULL, NULL), CERT_SERVER,
	            "mx.example.com", NULL);
	/* A user request with only a DNS name names no address. */
	expect_name(hand_csr(ed_key, NULL, NULL, GEN_DNS, "mx.example.com", NULL), CERT_USER, NULL,
	            "bad_csr");
	expect_name(hand_csr(ed_key, NULL, NULL, 0, NULL, NULL), CERT_SERVER, NULL, "bad_csr");
	/* Names that are not names. */
	expect_name(hand_csr(ed_key, NULL, NULL, GEN_EMAIL, "\"a b\"@example.com", NULL), CERT_USER,
	            NULL, "bad_name");
	expect_name(hand_csr(ed_key, NULL, NULL, GEN_DNS, "localhost", NULL), CERT_SERVER, NULL,
	            "bad_name");
	expect_name(hand_csr(ed_key, "Alice Example", NULL, 0, NULL, NULL), CERT_SERVER, NULL,
	            "bad_name");
}

static void test_csr_bad_signature(void **state)
{
	unsigned char *der = NULL;
	const unsigned char *p;
	X509_REQ *req;
	struct err e;
	int len;

	req = csr_make(p256_key, CERT_USER, "alice@example.com", &e);
	assert_non_null(req);
	len = i2d_X509_REQ(req, &der);
	assert_true(len > 0);
	X509_REQ_free(req);

	der[len - 1] ^= 0x01; /* the last octet of the signature */
	p = der;
	req = d2i_X509_REQ(NULL, &p, len);
	assert_non_null(req);
	err_clear(&e);
	assert_int_equal(csr_verify(req, &e), -1);
	assert_int_equal(e.kind, ERR_INPUT);
	assert_string_equal(e.code, "csr_signature");
	X509_REQ_free(req);
	OPENSSL_free(der);
}

static void test_csr_weak_key(void **state)
{
	EVP_PKEY *weak = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
	X509_REQ *req;
	struct err e;

	assert_non_null(weak);
	err_clear(&e);
	assert_null(csr_make(weak, CERT_USER, "alice@example.com", &e));
	assert_string_equal(e.code, "weak_key");

	req = hand_csr(weak, NULL, NULL, GEN_EMAIL, "alice@example.com", NULL);
	err_clear(&e);
	assert_int_equal(csr_verify(req, &e), -1);
	assert_int_equal(e.kind, ERR_UNPROC);
	assert_string_equal(e.code, "weak_key");
	assert_non_null(strstr(e.msg, "this one has 1024"));
	X509_REQ_free(req);
	EVP_PKEY_free(weak);
}

static void test_csr_garbage(void **state)
{
	static const char *const bad[] = {
	    "",
	    "hello",
	    "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
	    "-----BEGIN CERTIFICATE REQUEST-----\n",
	    "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n",
	};
	X509_REQ *req;
	struct err e;
	char *pem, *padded;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err_clear(&e);
		assert_null(csr_from_pem(bad[i], strlen(bad[i]), &e));
		assert_int_equal(e.kind, ERR_INPUT);
		assert_string_equal(e.code, "bad_csr");
	}
	req = csr_make(ed_key, CERT_USER, "alice@example.com", &e);
	pem = csr_to_pem(req, &e);
	padded = malloc(strlen(pem) + 8);
	sprintf(padded, "%sjunk", pem);
	assert_null(csr_from_pem(padded, strlen(padded), &e));
	assert_string_equal(e.code, "bad_csr");
	/* A certificate is not a request. */
	free(pem);
	pem = cert_to_pem(example.root, &e);
	assert_null(csr_from_pem(pem, strlen(pem), &e));
	free(pem);
	free(padded);
	X509_REQ_free(req);
}

/* ---- names ---- */

static void test_name_check_domain(void **state)
{
	static const char *const good[] = {
	    "example.com",
	    "a.b.c.example.co.uk",
	    "xn--bcher-kva.example",
	    "a-b.com",
	    "1example.com",
	    "x.y",
	    "example.xn--p1ai",
	    "123.example.com",
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.com", /* 63 */
	};
	static const char *const bad[] = {
	    "",
	    "com",
	    "example.com.",
	    "Example.com",
	    "-a.com",
	    "a-.com",
	    "a..com",
	    ".a.com",
	    "a_b.com",
	    "a b.com",
	    "ab--c.com",
	    "exa\xc3\xa9mple.com",
	    "192.0.2.1",
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.com", /* 64 */
	    "a@b.com",
	};
	char longname[300];
	struct err e;
	size_t i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		if (name_check_domain(good[i], &e) != 0)
			fail_msg("%s refused: %s", good[i], e.msg);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err_clear(&e);
		if (name_check_domain(bad[i], &e) != -1)
			fail_msg("%s accepted", bad[i]);
		assert_int_equal(e.kind, ERR_INPUT);
		assert_string_equal(e.code, "bad_name");
	}
	assert_int_equal(name_check_domain(NULL, &e), -1);

	/* 253 octets pass, 254 do not: 4 * (62 + '.') + "abcd.com"... built exactly. */
	memset(longname, 'a', sizeof(longname));
	for (i = 63; i < 253; i += 64)
		longname[i] = '.';
	longname[249] = '.';
	memcpy(longname + 250, "com", 4);
	assert_int_equal(strlen(longname), 253);
	assert_int_equal(name_check_domain(longname, &e), 0);
	memmove(longname + 1, longname, 254);
	assert_int_equal(strlen(longname), 254);
	assert_int_equal(name_check_domain(longname, &e), -1);
	assert_non_null(strstr(e.msg, "253"));
}

static void test_name_check_address(void **state)
{
	static const char *const good[] = {
	    "alice@example.com",
	    "a.b@example.com",
	    "a+tag@example.com",
	    "o'brien@example.com",
	    "x!#$%&'*+-/=?^_`{|}~@example.com",
	    "1@x.y",
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@example.com",
	};
	static const char *const bad[] = {
	    "",
	    "alice",
	    "@example.com",
	    "alice@",
	    ".alice@example.com",
	    "alice.@example.com",
	    "a..b@example.com",
	    "Alice@example.com",
	    "alice@Example.com",
	    "a@b@example.com",
	    "a(b)@example.com",
	    "a b@example.com",
	    "a,b@example.com",
	    "alice@localhost",
	    "alice@example.com.",
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@example.com",
	};
	struct err e;
	size_t i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		if (name_check_address(good[i], &e) != 0)
			fail_msg("%s refused: %s", good[i], e.msg);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err_clear(&e);
		if (name_check_address(bad[i], &e) != -1)
			fail_msg("%s accepted", bad[i]);
		assert_string_equal(e.code, "bad_name");
	}
	err_clear(&e);
	assert_int_equal(name_check_address("\"john doe\"@example.com", &e), -1);
	assert_non_null(strstr(e.msg, "quoted"));
}

static void test_name_in_domain(void **state)
{
	static const struct {
		const char *host, *domain;
		int want;
	} cases[] = {
	    {"example.com", "example.com", 1},
	    {"mx.example.com", "example.com", 1},
	    {"a.b.example.com", "example.com", 1},
	    {"notexample.com", "example.com", 0},
	    {"example.com", "mx.example.com", 0},
	    {"example.com.evil", "example.com", 0},
	    {".example.com", "example.com", 0},
	    {"example.org", "example.com", 0},
	    {"com", "example.com", 0},
	    {"x", "", 0},
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (name_in_domain(cases[i].host, cases[i].domain) != cases[i].want)
			fail_msg("name_in_domain(%s, %s) != %d", cases[i].host, cases[i].domain,
			         cases[i].want);
	assert_int_equal(name_in_domain(NULL, "example.com"), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_root_and_issuer),
	    cmocka_unit_test(test_issue_bad_input),
	    cmocka_unit_test(test_user_leaf),
	    cmocka_unit_test(test_server_leaves),
	    cmocka_unit_test(test_cross_domain_leaf_fails),
	    cmocka_unit_test(test_domain_set),
	    cmocka_unit_test(test_pem_and_fingerprint),
	    cmocka_unit_test(test_csr_round_trip),
	    cmocka_unit_test(test_csr_requested_name),
	    cmocka_unit_test(test_csr_bad_signature),
	    cmocka_unit_test(test_csr_weak_key),
	    cmocka_unit_test(test_csr_garbage),
	    cmocka_unit_test(test_name_check_domain),
	    cmocka_unit_test(test_name_check_address),
	    cmocka_unit_test(test_name_in_domain),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
