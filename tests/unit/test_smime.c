/*
 * test_smime.c - lib/mail/smime with locally made keys: RSA, P-256, X25519
 * and Ed25519 certificates under one test CA.  The cipher choice, the
 * keyUsage rule, round trips of every kind, and each refusal with its code.
 * (Interop with openssl cms and gpgsm: tests/integration/test_anchorctl_mail.py.)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/cms.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include "mail/smime.h"
#include "smime_test_ca.h"

static const char MSG[] = "Content-Type: text/plain\r\n\r\nThe meeting is at noon.\r\n";

static EVP_PKEY *gen(const char *alg)
{
	if (strcmp(alg, "RSA") == 0)
		return EVP_RSA_gen(2048);
	if (strcmp(alg, "RSA1024") == 0)
		return EVP_RSA_gen(1024);
	if (strcmp(alg, "P-256") == 0)
		return EVP_EC_gen("P-256");
	return EVP_PKEY_Q_keygen(NULL, NULL, alg);
}

static struct who user(const char *alg, const char *email, const char *ku)
{
	static int serial = 10;
	struct who w;

	w.key = gen(alg);
	assert_non_null(w.key);
	w.cert = make_cert(w.key, email, ku, serial++);
	return w;
}

static STACK_OF(X509) * stack_of(X509 *a, X509 *b)
{
	STACK_OF(X509) *s = sk_X509_new_null();

	sk_X509_push(s, a);
	if (b != NULL)
		sk_X509_push(s, b);
	return s;
}

static void encrypt_to(STACK_OF(X509) * r, enum smime_cipher c, struct smime_buf *out)
{
	struct err e = {0};

	assert_int_equal(smime_encrypt(MSG, strlen(MSG), r, c, out, &e), 0);
}

static void opens(const struct smime_buf *enc, const struct who *w)
{
	struct smime_buf plain = {0};
	struct err e = {0};

	assert_int_equal(smime_decrypt(enc->data, enc->len, w->key, w->cert, &plain, &e), 0);
	assert_int_equal(plain.len, strlen(MSG));
	assert_memory_equal(plain.data, MSG, plain.len);
	smime_buf_clear(&plain);
}

static void refused(const struct smime_buf *enc, const struct who *w, const char *code)
{
	struct smime_buf plain = {0};
	struct err e = {0};

	assert_int_equal(smime_decrypt(enc->data, enc->len, w->key, w->cert, &plain, &e), -1);
	assert_string_equal(e.code, code);
	assert_null(plain.data);
}

static void test_ec_gets_gcm_rsa_gets_cbc(void **state)
{
	struct who ec = user("P-256", "ec@a.test", "critical,digitalSignature,keyAgreement");
	struct who rsa = user("RSA", "rsa@a.test", "critical,digitalSignature,keyEncipherment");
	STACK_OF(X509) *only_ec = stack_of(ec.cert, NULL), *both = stack_of(ec.cert, rsa.cert);
	struct smime_buf enc = {0};
	enum smime_cipher c;
	struct err e = {0};

	assert_int_equal(smime_pick_cipher(only_ec, &c, &e), 0);
	assert_int_equal(c, SMIME_AES256_GCM);
	encrypt_to(only_ec, c, &enc);
	assert_non_null(strstr(enc.data, "smime-type=authEnveloped-data"));
	opens(&enc, &ec);
	refused(&enc, &rsa, "not_for_you");
	smime_buf_clear(&enc);

	assert_int_equal(smime_pick_cipher(both, &c, &e), 0);
	assert_int_equal(c, SMIME_AES256_CBC);
	encrypt_to(both, c, &enc);
	assert_non_null(strstr(enc.data, "smime-type=enveloped-data"));
	opens(&enc, &ec);
	opens(&enc, &rsa);
	smime_buf_clear(&enc);
	sk_X509_free(only_ec);
	sk_X509_free(both);
	who_free(&ec);
	who_free(&rsa);
}

static void test_keys_that_cannot_encrypt(void **state)
{
	struct who sig = user("P-256", "s@a.test", "critical,digitalSignature");
	struct who x = user("X25519", "x@a.test", "critical,keyAgreement");
	struct who weak = user("RSA1024", "w@a.test", "critical,keyEncipherment");
	struct who ed = user("ED25519", "ed@a.test", "critical,digitalSignature");
	struct smime_buf out = {0};
	struct err e = {0};
	STACK_OF(X509) * s;

	assert_int_equal(smime_cert_check_recipient(sig.cert, &e), -1);
	assert_string_equal(e.code, "no_encryption_usage");
	assert_int_equal(smime_cert_check_recipient(x.cert, &e), -1);
	assert_string_equal(e.code, "unsupported_algorithm");
	assert_int_equal(smime_cert_check_recipient(weak.cert, &e), -1);
	assert_string_equal(e.code, "weak_key");
	assert_int_equal(smime_cert_check_recipient(ed.cert, &e), -1);
	assert_string_equal(e.code, "no_encryption_usage");
	/* smime_encrypt refuses them itself, whoever calls it. */
	s = stack_of(x.cert, NULL);
	assert_int_equal(smime_encrypt(MSG, strlen(MSG), s, SMIME_AES256_GCM, &out, &e), -1);
	assert_string_equal(e.code, "unsupported_algorithm");
	assert_null(out.data);
	sk_X509_free(s);
	/* nor can X25519 decrypt, nor Ed25519 sign, here */
	assert_int_equal(smime_decrypt(MSG, strlen(MSG), x.key, x.cert, &out, &e), -1);
	assert_string_equal(e.code, "unsupported_algorithm");
	assert_int_equal(smime_sign(MSG, strlen(MSG), ed.key, ed.cert, NULL, &out, &e), -1);
	assert_string_equal(e.code, "unsupported_algorithm");
	who_free(&sig);
	who_free(&x);
	who_free(&weak);
	who_free(&ed);
}

static void test_bad_ciphertexts(void **state)
{
	struct who ec = user("P-256", "ec2@a.test", "critical,keyAgreement");
	struct who other = user("P-256", "o@a.test", "critical,keyAgreement");
	STACK_OF(X509) *s = stack_of(ec.cert, NULL);
	struct smime_buf enc = {0}, bad = {0};
	char *body;

	encrypt_to(s, SMIME_AES256_GCM, &enc);
	/* truncated: the base64 cut in half */
	bad.data = strdup(enc.data);
	bad.len = enc.len / 2;
	refused(&bad, &ec, "bad_message");
	/* one base64 character of the ciphertext's end changed: GCM's tag fails */
	bad.len = enc.len;
	body = bad.data + enc.len - 60;
	*body = *body == 'A' ? 'B' : 'A';
	refused(&bad, &ec, "decrypt_failed");
	smime_buf_clear(&bad);
	/* garbage, and a key that is not the certificate's */
	bad.data = strdup("MIME-Version: 1.0\nContent-Type: application/pkcs7-mime\n\n%%%\n");
	bad.len = strlen(bad.data);
	refused(&bad, &ec, "bad_message");
	smime_buf_clear(&bad);
	{
		struct who mixed = {other.key, ec.cert};
		refused(&enc, &mixed, "key_mismatch");
	}
	refused(&enc, &other, "not_for_you");
	smime_buf_clear(&enc);
	sk_X509_free(s);
	who_free(&ec);
	who_free(&other);
}

/* A key agreement message whose key is wrapped with RFC 5649 AES key wrap
 * with padding, made with OpenSSL directly (smime_encrypt never makes one). */
static void encrypt_with_wrap_pad(X509 *to, struct smime_buf *out)
{
	CMS_ContentInfo *cms = CMS_encrypt(NULL, NULL, EVP_aes_256_cbc(), CMS_PARTIAL);
	CMS_RecipientInfo *ri = CMS_add1_recipient_cert(cms, to, CMS_KEY_PARAM);
	BIO *data = BIO_new_mem_buf(MSG, -1), *w = BIO_new(BIO_s_mem());
	char *p;
	long n;

	assert_non_null(ri);
	assert_int_equal(EVP_EncryptInit_ex(CMS_RecipientInfo_kari_get0_ctx(ri),
	                                    EVP_aes_256_wrap_pad(), NULL, NULL, NULL),
	                 1);
	assert_int_equal(CMS_final(cms, data, NULL, 0), 1);
	assert_int_equal(SMIME_write_CMS(w, cms, NULL, 0), 1);
	n = BIO_get_mem_data(w, &p);
	/* Not strndup: the BIO's buffer has no NUL after its n octets. */
	out->data = malloc((size_t)n + 1);
	assert_non_null(out->data);
	memcpy(out->data, p, (size_t)n);
	out->data[n] = '\0';
	out->len = (size_t)n;
	BIO_free(w);
	BIO_free(data);
	CMS_ContentInfo_free(cms);
}

/* OpenSSL's RFC 5649 unwrap writes past its buffer when it fails, so such
 * a message is refused before OpenSSL unwraps anything. */
static void test_wrap_pad_refused(void **state)
{
	struct who ec = user("P-256", "pad@a.test", "critical,keyAgreement");
	struct smime_buf enc = {0};

	encrypt_with_wrap_pad(ec.cert, &enc);
	assert_non_null(strstr(enc.data, "enveloped-data"));
	refused(&enc, &ec, "unsupported_algorithm");
	smime_buf_clear(&enc);
	who_free(&ec);
}

static void test_sign_verify(void **state)
{
	struct who ec = user("P-256", "Signer@A.test", "critical,digitalSignature,keyAgreement");
	struct smime_buf sig = {0}, content = {0};
	X509_STORE *store = X509_STORE_new(), *other = X509_STORE_new();
	EVP_PKEY *k2 = EVP_EC_gen("P-256");
	X509 *self = NULL, *signer = NULL;
	struct err e = {0};
	char addr[64], *p;

	X509_STORE_add_cert(store, ca_cert);
	assert_int_equal(smime_sign(MSG, strlen(MSG), ec.key, ec.cert, NULL, &sig, &e), 0);
	assert_non_null(strstr(sig.data, "multipart/signed"));
	assert_int_equal(smime_is_signed(sig.data, sig.len), 1);
	assert_int_equal(smime_verify(sig.data, sig.len, store, NULL, &content, &signer, &e), 0);
	assert_non_null(strstr(content.data, "The meeting is at noon."));
	smime_cert_address(signer, addr, sizeof(addr));
	assert_string_equal(addr, "signer@a.test");
	X509_free(signer);
	smime_buf_clear(&content);
	/* another trust: untrusted_signer */
	self = X509_new();
	X509_set_pubkey(self, k2);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(self), "CN", MBSTRING_ASC,
	                           (const unsigned char *)"other", -1, -1, 0);
	X509_set_issuer_name(self, X509_get_subject_name(self));
	X509_gmtime_adj(X509_getm_notBefore(self), -60);
	X509_gmtime_adj(X509_getm_notAfter(self), 86400);
	X509_sign(self, k2, EVP_sha256());
	X509_STORE_add_cert(other, self);
	assert_int_equal(smime_verify(sig.data, sig.len, other, NULL, &content, &signer, &e), -1);
	assert_string_equal(e.code, "untrusted_signer");
	assert_null(signer);
	/* changed content */
	p = strstr(sig.data, "noon");
	memcpy(p, "nine", 4);
	assert_int_equal(smime_verify(sig.data, sig.len, store, NULL, &content, &signer, &e), -1);
	assert_string_equal(e.code, "bad_signature");
	assert_null(content.data);
	/* not signed */
	assert_int_equal(smime_verify(MSG, strlen(MSG), NULL, NULL, &content, &signer, &e), -1);
	assert_string_equal(e.code, "bad_message");
	smime_buf_clear(&sig);
	X509_free(self);
	EVP_PKEY_free(k2);
	X509_STORE_free(store);
	X509_STORE_free(other);
	who_free(&ec);
}

static void test_sign_then_encrypt(void **state)
{
	struct who ec = user("P-256", "se@a.test", "critical,digitalSignature,keyAgreement");
	STACK_OF(X509) *s = stack_of(ec.cert, NULL);
	struct smime_buf sig = {0}, enc = {0}, plain = {0}, content = {0};
	X509 *signer = NULL;
	struct err e = {0};

	assert_int_equal(smime_sign(MSG, strlen(MSG), ec.key, ec.cert, NULL, &sig, &e), 0);
	assert_int_equal(smime_encrypt(sig.data, sig.len, s, SMIME_AES256_GCM, &enc, &e), 0);
	assert_int_equal(smime_is_signed(enc.data, enc.len), 0);
	assert_int_equal(smime_decrypt(enc.data, enc.len, ec.key, ec.cert, &plain, &e), 0);
	assert_int_equal(smime_is_signed(plain.data, plain.len), 1);
	assert_int_equal(smime_verify(plain.data, plain.len, NULL, NULL, &content, &signer, &e), 0);
	assert_non_null(strstr(content.data, "The meeting is at noon."));
	X509_free(signer);
	smime_buf_clear(&sig);
	smime_buf_clear(&enc);
	smime_buf_clear(&plain);
	smime_buf_clear(&content);
	sk_X509_free(s);
	who_free(&ec);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ec_gets_gcm_rsa_gets_cbc),
	    cmocka_unit_test(test_keys_that_cannot_encrypt),
	    cmocka_unit_test(test_bad_ciphertexts),
	    cmocka_unit_test(test_wrap_pad_refused),
	    cmocka_unit_test(test_sign_verify),
	    cmocka_unit_test(test_sign_then_encrypt),
	};

	return cmocka_run_group_tests(tests, ca_setup, ca_teardown);
}
