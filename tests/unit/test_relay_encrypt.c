/* test_relay_encrypt.c - gateway encryption (relay/encrypt.c): which messages count as
 * encrypted for refuse_unencrypted (PROTOCOL.md §12.9). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "encrypt.h"

static int enc(const char *msg)
{
	return relay_enc_is_encrypted(msg, strlen(msg));
}

static void test_encrypted_types(void **state)
{
	(void)state;
	assert_int_equal(enc("From: a@b.example\r\nContent-Type: application/pkcs7-mime; "
	                     "smime-type=enveloped-data\r\n\r\nMIIB"),
	                 1);
	assert_int_equal(enc("Content-Type:APPLICATION/PKCS7-MIME\r\n\r\nx"), 1);
	assert_int_equal(enc("Content-Type: application/x-pkcs7-mime; name=smime.p7m\r\n\r\n"), 1);
	/* folded after the colon */
	assert_int_equal(enc("Content-Type:\r\n\tapplication/pkcs7-mime;\r\n smime-type=x\r\n\r\n"),
	                 1);
	assert_int_equal(enc("Content-Type: multipart/encrypted; protocol=\"application/"
	                     "pgp-encrypted\"; boundary=b\r\n\r\n"),
	                 1);
}

static void test_plain_types(void **state)
{
	(void)state;
	assert_int_equal(enc("From: a@b.example\r\nSubject: hi\r\n\r\nhello"), 0);
	assert_int_equal(enc("Content-Type: text/plain\r\n\r\napplication/pkcs7-mime"), 0);
	/* a longer type that starts alike is not it */
	assert_int_equal(enc("Content-Type: application/pkcs7-mimex\r\n\r\n"), 0);
	/* a signed message is not an encrypted one */
	assert_int_equal(enc("Content-Type: multipart/signed; protocol=\"application/"
	                     "pkcs7-signature\"\r\n\r\n"),
	                 0);
	/* only the header counts: a body line is not a field */
	assert_int_equal(enc("Subject: x\r\n\r\nContent-Type: application/pkcs7-mime\r\n"), 0);
	assert_int_equal(enc(""), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_encrypted_types),
	    cmocka_unit_test(test_plain_types),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
