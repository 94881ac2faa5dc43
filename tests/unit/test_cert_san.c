/* test_cert_san.c - unit tests for lib/pki/cert_san.c: RFC 9598 SmtpUTF8Mailbox in
 * issued certificates and requests, and the address readers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "pki/cert.h"
#include "pki/cert_san.h"
#include "pki/csr.h"
#include "pki/crypto.h"

#define IDN "xn--bcher-kva.example" /* bücher.example */
#define DORTE "d\xc3\xb6rte@" IDN   /* canonical: NFC, lowercase, A-label */
/* a string literal and its length, NULs inside included */
#define S(lit) lit, sizeof(lit) - 1
#define DORTE_U                                                                                    \
	"d\xc3\xb6rte@b\xc3\xbc"                                                                   \
	"cher.example"

static EVP_PKEY *root_key, *issuer_key, *user_key;
static X509 *root, *issuer;

static int group_setup(void **state)
{
	struct err e = {0};

	(void)state;
	root_key = crypto_key_generate(KEY_ED25519, 0, &e);
	issuer_key = crypto_key_generate(KEY_ED25519, 0, &e);
	user_key = crypto_key_generate(KEY_ED25519, 0, &e);
	root = cert_make_root(root_key, IDN, 3650, &e);
	issuer = cert_make_issuer(issuer_key, root, root_key, IDN, 730, &e);
	return root != NULL && issuer != NULL && user_key != NULL ? 0 : -1;
}

static int group_teardown(void **state)
{
	(void)state;
	X509_free(root);
	X509_free(issuer);
	EVP_PKEY_free(root_key);
	EVP_PKEY_free(issuer_key);
	EVP_PKEY_free(user_key);
	return 0;
}

static void parse_ok(const char *in, size_t len, const char *want)
{
	char out[CERT_SAN_ADDR_MAX];
	struct err e = {0};

	if (cert_san_smtputf8_parse((const unsigned char *)in, len, out, sizeof(out), &e) < 0)
		fail_msg("%s refused: %s", in, e.msg);
	assert_string_equal(out, want);
}

static void parse_bad(const char *in, size_t len, const char *why)
{
	char out[CERT_SAN_ADDR_MAX];
	struct err e = {0};

	if (cert_san_smtputf8_parse((const unsigned char *)in, len, out, sizeof(out), &e) == 0)
		fail_msg("%s accepted as %s", why, out);
	assert_string_equal(e.code, "bad_name");
	assert_string_equal(out, "");
}

static void test_smtputf8_text(void **state)
{
	char out[CERT_SAN_ADDR_MAX];
	struct err e = {0};

	(void)state;
	assert_int_equal(cert_san_smtputf8_text(DORTE, out, sizeof(out), &e), 0);
	assert_string_equal(out, DORTE_U); /* RFC 9598 §3: U-labels in the domain */
	assert_int_equal(cert_san_smtputf8_text("d\xc3\xb6rte@example.com", out, sizeof(out), &e),
	                 0);
	assert_string_equal(out, "d\xc3\xb6rte@example.com");
	/* an ASCII local part is an rfc822Name's; a name that is not canonical is refused */
	assert_int_equal(cert_san_smtputf8_text("alice@" IDN, out, sizeof(out), &e), -1);
	assert_int_equal(cert_san_smtputf8_text("D\xc3\x96RTE@" IDN, out, sizeof(out), &e), -1);
}

static void test_smtputf8_parse(void **state)
{
	(void)state;
	parse_ok(DORTE_U, strlen(DORTE_U), DORTE);
	/* case, decomposed form, U-label case: the one canonical address (§1.3) */
	parse_ok(S("D\xc3\x96RTE@B\xc3\x9c"
	           "CHER.example"),
	         DORTE);
	parse_ok(S("do\xcc\x88rte@b\xc3\xbc"
	           "cher.example"),
	         DORTE);
	parse_ok(S("j\xc3\xb6rg@example.com"), "j\xc3\xb6rg@example.com");
	parse_bad("d\xc3\xb6rte@" IDN, strlen(DORTE), "an A-label");
	parse_bad(S("d\xc3\xb6rte@sub.XN--bcher-kva.example"), "an upper-case A-label");
	parse_bad(S("alice@b\xc3\xbc"
	            "cher.example"),
	          "an ASCII local part");
	parse_bad(S("alice@example.com"), "an ASCII address");
	parse_bad(S("d\xc3\xb6rte\0x@example.com"), "a NUL");
	parse_bad(S("d\xc3rte@example.com"), "truncated UTF-8");
	parse_bad(S("d\xc0\xafrte@example.com"), "an overlong form");
	parse_bad(S("d\xed\xa0\x80rte@example.com"), "a surrogate");
	parse_bad(S("d\xe2\x80\xaerte@example.com"), "a bidi override");
	parse_bad(S("d\xe2\x80\x8b\xc3\xb6rte@example.com"), "a zero-width space");
	parse_bad(S("d\xc3\xb6rte"), "no domain");
	parse_bad(S("@example.com"), "no local part");
	parse_bad(S(""), "empty");
	parse_bad(S("\"d\xc3\xb6 rte\"@example.com"), "a quoted local part");
}

/* The single SAN entry of cert or req (GENERAL_NAMES, owned by the caller). */
static GENERAL_NAMES *cert_sans(X509 *cert)
{
	GENERAL_NAMES *g = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);

	assert_non_null(g);
	assert_int_equal(sk_GENERAL_NAME_num(g), 1);
	return g;
}

static X509 *issue(const char *addr)
{
	struct cert_issue req = {.purpose = CERT_PURPOSE_SMIME,
	                         .name = addr,
	                         .key_id = "0b7c9d6e-1f2a-4b3c-8d4e-5f6a7b8c9d0e",
	                         .days = 30};
	struct err e = {0};
	X509 *c = cert_issue_leaf(&req, user_key, issuer, issuer_key, &e);

	if (c == NULL)
		fail_msg("cert_issue_leaf %s: %s", addr, e.msg);
	return c;
}

static void test_issued_utf8_local_part(void **state)
{
	X509 *c = issue(DORTE);
	GENERAL_NAMES *g = cert_sans(c);
	GENERAL_NAME *n = sk_GENERAL_NAME_value(g, 0);
	char addr[CERT_SAN_ADDR_MAX];
	struct err e = {0};

	(void)state;
	/* an otherName id-on-SmtpUTF8Mailbox, UTF8String, U-label domain; no rfc822Name */
	assert_int_equal(n->type, GEN_OTHERNAME);
	assert_int_equal(OBJ_obj2nid(n->d.otherName->type_id), NID_id_on_SmtpUTF8Mailbox);
	assert_int_equal(n->d.otherName->value->type, V_ASN1_UTF8STRING);
	assert_int_equal(ASN1_STRING_length(n->d.otherName->value->value.utf8string),
	                 (int)strlen(DORTE_U));
	assert_memory_equal(ASN1_STRING_get0_data(n->d.otherName->value->value.utf8string), DORTE_U,
	                    strlen(DORTE_U));
	GENERAL_NAMES_free(g);
	/* OpenSSL checks it against the root's rfc822Name constraint (the A-label domain) */
	if (cert_verify_chain(c, issuer, root, &e) < 0)
		fail_msg("chain: %s", e.msg);
	cert_san_address(c, addr, sizeof(addr));
	assert_string_equal(addr, DORTE);
	assert_true(cert_san_has_address(c, DORTE));
	assert_false(cert_san_has_address(c, "dorte@" IDN));
	X509_free(c);
}

static void test_issued_ascii_local_part_idn_domain(void **state)
{
	X509 *c = issue("alice@" IDN);
	GENERAL_NAMES *g = cert_sans(c);
	GENERAL_NAME *n = sk_GENERAL_NAME_value(g, 0);
	struct err e = {0};

	(void)state;
	assert_int_equal(n->type, GEN_EMAIL); /* rfc822Name, A-label domain */
	assert_string_equal((const char *)ASN1_STRING_get0_data(n->d.rfc822Name), "alice@" IDN);
	GENERAL_NAMES_free(g);
	assert_int_equal(cert_verify_chain(c, issuer, root, &e), 0);
	assert_true(cert_san_has_address(c, "alice@" IDN));
	X509_free(c);
}

static void test_outside_constraint_fails_chain(void **state)
{
	/* the issuer signs whatever it is given; the root's constraint is what refuses */
	X509 *c = issue("d\xc3\xb6rte@other.example");
	struct err e = {0};

	(void)state;
	assert_int_equal(cert_verify_chain(c, issuer, root, &e), -1);
	X509_free(c);
}

/* A request whose SAN holds the given otherName value (type, octets), signed. */
static X509_REQ *othername_csr(int type, const char *val, size_t len, const char *rfc822)
{
	STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
	GENERAL_NAMES *gens = GENERAL_NAMES_new();
	GENERAL_NAME *gen = GENERAL_NAME_new();
	ASN1_TYPE *at = ASN1_TYPE_new();
	ASN1_STRING *s = ASN1_STRING_type_new(type);
	X509_REQ *req = X509_REQ_new();

	ASN1_STRING_set(s, val, (int)len);
	ASN1_TYPE_set(at, type, s);
	GENERAL_NAME_set0_othername(gen, OBJ_nid2obj(NID_id_on_SmtpUTF8Mailbox), at);
	sk_GENERAL_NAME_push(gens, gen);
	if (rfc822 != NULL) {
		GENERAL_NAME *g2 = GENERAL_NAME_new();
		ASN1_IA5STRING *ia5 = ASN1_IA5STRING_new();

		ASN1_STRING_set(ia5, rfc822, -1);
		GENERAL_NAME_set0_value(g2, GEN_EMAIL, ia5);
		sk_GENERAL_NAME_push(gens, g2);
	}
	sk_X509_EXTENSION_push(exts, X509V3_EXT_i2d(NID_subject_alt_name, 0, gens));
	X509_REQ_add_extensions(req, exts);
	X509_REQ_set_pubkey(req, user_key);
	assert_true(X509_REQ_sign(req, user_key, NULL) > 0);
	GENERAL_NAMES_free(gens);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	return req;
}

static void expect(X509_REQ *req, const char *want, const char *code)
{
	struct err e = {0};
	char *got = csr_requested_name(req, CERT_USER, &e);

	if (want != NULL) {
		if (got == NULL)
			fail_msg("expected %s, got %s: %s", want, e.code, e.msg);
		assert_string_equal(got, want);
	} else {
		if (got != NULL)
			fail_msg("expected %s, got %s", code, got);
		assert_string_equal(e.code, code);
	}
	free(got);
	X509_REQ_free(req);
}

static void test_csr_smtputf8(void **state)
{
	struct err e = {0};
	X509_REQ *req;
	char *pem;

	(void)state;
	/* what anchorctl makes: the otherName, no emailAddress; read back canonical */
	req = csr_make(user_key, CERT_USER, DORTE, &e);
	if (req == NULL)
		fail_msg("csr_make: %s", e.msg);
	assert_int_equal(
	    X509_NAME_get_index_by_NID(X509_REQ_get_subject_name(req), NID_pkcs9_emailAddress, -1),
	    -1);
	pem = csr_to_pem(req, &e);
	X509_REQ_free(req);
	req = csr_from_pem(pem, strlen(pem), &e);
	free(pem);
	expect(req, DORTE, NULL);

	/* spellings of one address are that address */
	expect(othername_csr(V_ASN1_UTF8STRING,
	                     S("D\xc3\x96RTE@B\xc3\x9c"
	                       "CHER.EXAMPLE"),
	                     NULL),
	       DORTE, NULL);
	expect(othername_csr(V_ASN1_UTF8STRING,
	                     S("do\xcc\x88rte@b\xc3\xbc"
	                       "cher.example"),
	                     NULL),
	       DORTE, NULL);
	/* ... and it with an rfc822Name of another address is two names */
	expect(othername_csr(V_ASN1_UTF8STRING, DORTE_U, strlen(DORTE_U), "dorte@" IDN), NULL,
	       "bad_csr");
	/* refused: ASCII local part, A-label domain, NUL, not UTF-8, not a UTF8String */
	expect(othername_csr(V_ASN1_UTF8STRING,
	                     S("alice@b\xc3\xbc"
	                       "cher.example"),
	                     NULL),
	       NULL, "bad_name");
	expect(othername_csr(V_ASN1_UTF8STRING, DORTE, strlen(DORTE), NULL), NULL, "bad_name");
	expect(othername_csr(V_ASN1_UTF8STRING, S("d\xc3\xb6rte\0@" IDN), NULL), NULL, "bad_name");
	expect(othername_csr(V_ASN1_UTF8STRING, S("d\xc3rte@example.com"), NULL), NULL, "bad_name");
	expect(othername_csr(V_ASN1_IA5STRING, S("d\xc3\xb6rte@example.com"), NULL), NULL,
	       "bad_name");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_smtputf8_text),
	    cmocka_unit_test(test_smtputf8_parse),
	    cmocka_unit_test(test_issued_utf8_local_part),
	    cmocka_unit_test(test_issued_ascii_local_part_idn_domain),
	    cmocka_unit_test(test_outside_constraint_fails_chain),
	    cmocka_unit_test(test_csr_smtputf8),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
