/* test_keywrap.c - unit tests for lib/pki/keywrap.c: issuer keys sealed under the node's KEK. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "pki/crypto.h"
#include "pki/keywrap.h"

static uint8_t kek_a[KEYWRAP_KEK_LEN], kek_b[KEYWRAP_KEK_LEN];
static EVP_PKEY *ed_key, *p256_key;
static char dir[] = "/tmp/anchor-keywrap-XXXXXX";

static int group_setup(void **state)
{
	struct err e = {0};

	for (int i = 0; i < KEYWRAP_KEK_LEN; i++) {
		kek_a[i] = (uint8_t)i;
		kek_b[i] = (uint8_t)(i + 1);
	}
	ed_key = crypto_key_generate(KEY_ED25519, 0, &e);
	p256_key = crypto_key_generate(KEY_P256, 0, &e);
	return ed_key != NULL && p256_key != NULL && mkdtemp(dir) != NULL ? 0 : -1;
}

static int group_teardown(void **state)
{
	char cmd[128];

	EVP_PKEY_free(ed_key);
	EVP_PKEY_free(p256_key);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static char *seal(const uint8_t *kek, const char *owner, EVP_PKEY *key)
{
	struct err e = {0};
	char *text = keywrap_seal(kek, owner, key, &e);

	if (text == NULL)
		fail_msg("keywrap_seal: %s", e.msg);
	return text;
}

/* Opening must fail with the one error the key server reports for every such case. */
static void expect_unsealable(const uint8_t *kek, const char *owner, const char *text)
{
	struct err e = {0};

	assert_null(keywrap_open(kek, owner, text, &e));
	assert_int_equal(e.kind, ERR_INTERNAL);
	assert_string_equal(e.code, "key_unsealable");
	assert_non_null(strstr(e.msg, owner));
}

static void test_round_trip(void **state)
{
	EVP_PKEY *keys[] = {ed_key, p256_key};

	for (size_t i = 0; i < 2; i++) {
		struct err e = {0};
		char *text = seal(kek_a, "example.com", keys[i]);
		EVP_PKEY *back;

		assert_int_equal(strncmp(text, "v1:", 3), 0);
		back = keywrap_open(kek_a, "example.com", text, &e);
		if (back == NULL)
			fail_msg("keywrap_open: %s", e.msg);
		/* The private halves match: the same public key and the same type. */
		assert_int_equal(EVP_PKEY_eq(back, keys[i]), 1);
		assert_int_equal(EVP_PKEY_get_base_id(back), EVP_PKEY_get_base_id(keys[i]));
		EVP_PKEY_free(back);
		free(text);
	}
}

static void test_fresh_nonce(void **state)
{
	char *one = seal(kek_a, "example.com", ed_key);
	char *two = seal(kek_a, "example.com", ed_key);

	/* The same key sealed twice must not give the same text (a fresh nonce each time). */
	assert_int_equal(strlen(one), strlen(two));
	assert_string_not_equal(one, two);
	free(one);
	free(two);
}

static void test_wrong_kek_or_owner(void **state)
{
	char *text = seal(kek_a, "example.com", p256_key);

	expect_unsealable(kek_b, "example.com", text);
	/* The owner is bound as associated data: the row cannot be moved to another domain. */
	expect_unsealable(kek_a, "example.org", text);
	expect_unsealable(kek_a, "example.co", text);
	expect_unsealable(kek_a, "", text);
	free(text);
}

static void test_tampered(void **state)
{
	char *text = seal(kek_a, "example.com", ed_key);
	size_t len = strlen(text);

	/* Flip one base64 character at the nonce, in the ciphertext and in the tag. */
	size_t where[] = {3, 3 + 16, len / 2, len - 6};
	for (size_t i = 0; i < sizeof(where) / sizeof(where[0]); i++) {
		char *copy = strdup(text);

		copy[where[i]] = copy[where[i]] == 'A' ? 'B' : 'A';
		expect_unsealable(kek_a, "example.com", copy);
		free(copy);
	}
	free(text);
}

static void test_truncated_and_garbage(void **state)
{
	char *text = seal(kek_a, "example.com", ed_key);
	char *copy = strdup(text);
	static const char *const bad[] = {
	    "",
	    "v1:",
	    "v1:!!!!",
	    "v2:AAAA",
	    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
	    /* 28 bytes: nonce and tag, no ciphertext at all */
	    "v1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		expect_unsealable(kek_a, "example.com", bad[i]);
	expect_unsealable(kek_a, "example.com", NULL);
	/* Cut at 4-character boundaries, so that the base64 itself stays valid. */
	for (size_t cut = 4; cut < strlen(text) - 3; cut += 4) {
		memcpy(copy, text, strlen(text) + 1);
		copy[strlen(text) - cut] = '\0';
		expect_unsealable(kek_a, "example.com", copy);
	}
	/* The prefix names the format: a text without it is not opened. */
	expect_unsealable(kek_a, "example.com", text + 3);
	free(copy);
	free(text);
}

static void write_file(const char *path, const void *data, size_t len, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static void test_kek_create_and_load(void **state)
{
	uint8_t made[KEYWRAP_KEK_LEN], again[KEYWRAP_KEK_LEN];
	char path[256];
	struct stat st;
	struct err e = {0};
	int created = -1;

	snprintf(path, sizeof(path), "%s/new.kek", dir);
	/* Without create, a missing file is a configuration error. */
	assert_int_equal(keywrap_kek_load(path, 0, made, &created, &e), -1);
	assert_string_equal(e.code, "bad_config");
	assert_int_equal(created, 0);
	assert_int_equal(stat(path, &st), -1);

	err_clear(&e);
	assert_int_equal(keywrap_kek_load(path, 1, made, &created, &e), 0);
	assert_int_equal(created, 1);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(st.st_size, KEYWRAP_KEK_LEN);

	/* Loading it again reads the same key and makes nothing. */
	assert_int_equal(keywrap_kek_load(path, 1, again, &created, &e), 0);
	assert_int_equal(created, 0);
	assert_memory_equal(made, again, KEYWRAP_KEK_LEN);

	/* The loaded KEK opens what the made one sealed. */
	char *text = seal(made, "example.com", ed_key);
	EVP_PKEY *back = keywrap_open(again, "example.com", text, &e);
	assert_non_null(back);
	EVP_PKEY_free(back);
	free(text);
	unlink(path);
}

static void test_kek_file_refused(void **state)
{
	uint8_t kek[KEYWRAP_KEK_LEN], data[KEYWRAP_KEK_LEN + 1];
	char path[256];
	struct err e = {0};
	int created;

	memset(data, 7, sizeof(data));
	snprintf(path, sizeof(path), "%s/bad.kek", dir);

	/* Readable by the group or others: refused, whatever it holds. */
	write_file(path, data, KEYWRAP_KEK_LEN, 0640);
	assert_int_equal(keywrap_kek_load(path, 1, kek, &created, &e), -1);
	assert_string_equal(e.code, "bad_config");
	assert_non_null(strstr(e.msg, "chmod 600"));
	write_file(path, data, KEYWRAP_KEK_LEN, 0604);
	assert_int_equal(keywrap_kek_load(path, 1, kek, &created, &e), -1);
	assert_non_null(strstr(e.msg, "chmod 600"));

	/* A byte short or a byte long: refused, not padded or truncated. */
	write_file(path, data, KEYWRAP_KEK_LEN - 1, 0600);
	err_clear(&e);
	assert_int_equal(keywrap_kek_load(path, 1, kek, &created, &e), -1);
	assert_string_equal(e.code, "bad_config");
	assert_non_null(strstr(e.msg, "exactly 32 bytes"));
	write_file(path, data, KEYWRAP_KEK_LEN + 1, 0600);
	err_clear(&e);
	assert_int_equal(keywrap_kek_load(path, 1, kek, &created, &e), -1);
	assert_non_null(strstr(e.msg, "exactly 32 bytes"));
	assert_int_equal(created, 0);

	/* An empty file is not replaced by a new key: create applies only to a missing file. */
	write_file(path, data, 0, 0600);
	assert_int_equal(keywrap_kek_load(path, 1, kek, &created, &e), -1);
	assert_int_equal(created, 0);

	write_file(path, data, KEYWRAP_KEK_LEN, 0600);
	assert_int_equal(keywrap_kek_load(path, 0, kek, &created, &e), 0);
	assert_memory_equal(kek, data, KEYWRAP_KEK_LEN);
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_round_trip),
	    cmocka_unit_test(test_fresh_nonce),
	    cmocka_unit_test(test_wrong_kek_or_owner),
	    cmocka_unit_test(test_tampered),
	    cmocka_unit_test(test_truncated_and_garbage),
	    cmocka_unit_test(test_kek_create_and_load),
	    cmocka_unit_test(test_kek_file_refused),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
