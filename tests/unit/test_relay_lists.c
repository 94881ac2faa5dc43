/* test_relay_lists.c - recipients' trust, block and subscription lists (relay/lists.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <pthread.h>

#include "pki/crypto.h"
#include "relay.h"

static char dir[64];

static int setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/test_relay_lists_XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static struct relay_lists *open_lists(void)
{
	char path[128];
	struct err e = {0};
	struct relay_lists *l;

	snprintf(path, sizeof(path), "%s/lists", dir);
	l = relay_lists_open(path, &e);
	if (l == NULL)
		fail_msg("open: %s", e.msg);
	return l;
}

static json_t *lists_of(struct relay_lists *l, const char *rcpt)
{
	struct err e = {0};
	char *text = relay_lists_json(l, rcpt, &e);
	json_t *j;

	if (text == NULL)
		fail_msg("json: %s %s", e.code, e.msg);
	j = json_loads(text, 0, NULL);
	free(text);
	assert_non_null(j);
	return j;
}

static void assert_list(json_t *j, const char *list, const char *want /* comma-separated */)
{
	json_t *a = json_object_get(j, list), *v;
	char got[1024] = "";
	size_t i;

	assert_true(json_is_array(a));
	json_array_foreach(a, i, v)
	{
		if (i > 0)
			strcat(got, ",");
		strcat(got, json_string_value(v));
	}
	assert_string_equal(got, want);
}

static void test_add_check_remove(void **state)
{
	struct relay_lists *l = open_lists();
	struct err e = {0};
	json_t *j;

	assert_int_equal(
	    relay_lists_check(l, "bob@example.com", "alice@example.org", "example.org"),
	    RELAY_LIST_NONE);
	assert_int_equal(relay_lists_add(l, "Bob@Example.com", "trust", "Alice@Example.ORG", &e),
	                 0);
	assert_int_equal(relay_lists_add(l, "bob@example.com", "subscribe", "News.Example.net", &e),
	                 0);
	assert_int_equal(relay_lists_add(l, "bob@example.com", "block", "@spam.example", &e), 0);
	/* adding twice is not an error and keeps one entry */
	assert_int_equal(relay_lists_add(l, "bob@example.com", "trust", "alice@example.org", &e),
	                 0);

	assert_int_equal(relay_lists_check(l, "bob@example.com", "alice@example.org", ""),
	                 RELAY_LIST_TRUST);
	assert_int_equal(relay_lists_check(l, "BOB@example.com", "ALICE@example.org", NULL),
	                 RELAY_LIST_TRUST);
	/* an address entry needs the address: the domain alone is not alice */
	assert_int_equal(relay_lists_check(l, "bob@example.com", "", "example.org"),
	                 RELAY_LIST_NONE);
	assert_int_equal(
	    relay_lists_check(l, "bob@example.com", "carol@example.org", "example.org"),
	    RELAY_LIST_NONE);
	/* a domain entry: the domain, or any verified address of it */
	assert_int_equal(relay_lists_check(l, "bob@example.com", "", "news.example.net"),
	                 RELAY_LIST_SUBSCRIBED);
	assert_int_equal(relay_lists_check(l, "bob@example.com", "x@news.example.net", ""),
	                 RELAY_LIST_SUBSCRIBED);
	/* exactly the domain: not its subdomains, not its parent */
	assert_int_equal(relay_lists_check(l, "bob@example.com", "", "a.news.example.net"),
	                 RELAY_LIST_NONE);
	assert_int_equal(relay_lists_check(l, "bob@example.com", "", "example.net"),
	                 RELAY_LIST_NONE);
	assert_int_equal(relay_lists_check(l, "bob@example.com", "x@spam.example", ""),
	                 RELAY_LIST_BLOCK);
	/* another recipient's lists are its own */
	assert_int_equal(relay_lists_check(l, "carol@example.com", "alice@example.org", ""),
	                 RELAY_LIST_NONE);

	j = lists_of(l, "bob@example.com");
	assert_string_equal(json_string_value(json_object_get(j, "address")), "bob@example.com");
	assert_list(j, "trust", "alice@example.org");
	assert_list(j, "block", "@spam.example");
	assert_list(j, "subscribe", "@news.example.net");
	json_decref(j);

	assert_int_equal(relay_lists_remove(l, "bob@example.com", "trust", "ALICE@example.org", &e),
	                 0);
	assert_int_equal(relay_lists_check(l, "bob@example.com", "alice@example.org", ""),
	                 RELAY_LIST_NONE);
	assert_int_equal(relay_lists_remove(l, "bob@example.com", "trust", "alice@example.org", &e),
	                 -1);
	assert_int_equal(e.kind, ERR_NOTFOUND);
	assert_string_equal(e.code, "not_listed");

	/* somebody without lists has empty ones */
	j = lists_of(l, "nobody@example.com");
	assert_list(j, "trust", "");
	assert_list(j, "block", "");
	json_decref(j);
	relay_lists_free(l);
}

static void test_block_wins(void **state)
{
	struct relay_lists *l = open_lists();
	struct err e = {0};

	assert_int_equal(relay_lists_add(l, "dan@example.com", "trust", "@example.org", &e), 0);
	assert_int_equal(
	    relay_lists_add(l, "dan@example.com", "subscribe", "mallory@example.org", &e), 0);
	assert_int_equal(
	    relay_lists_check(l, "dan@example.com", "mallory@example.org", "example.org"),
	    RELAY_LIST_TRUST); /* trust beats subscribe */
	assert_int_equal(relay_lists_add(l, "dan@example.com", "block", "mallory@example.org", &e),
	                 0);
	assert_int_equal(
	    relay_lists_check(l, "dan@example.com", "mallory@example.org", "example.org"),
	    RELAY_LIST_BLOCK);
	assert_int_equal(
	    relay_lists_check(l, "dan@example.com", "alice@example.org", "example.org"),
	    RELAY_LIST_TRUST);
	relay_lists_free(l);
}

static void test_bad_input(void **state)
{
	struct relay_lists *l = open_lists();
	struct err e = {0};

	assert_int_equal(relay_lists_add(l, "bob@example.com", "friends", "a@b.example", &e), -1);
	assert_string_equal(e.code, "bad_list");
	assert_int_equal(e.kind, ERR_INPUT);
	assert_int_equal(relay_lists_add(l, "bob@example.com", "trust", "a@@b.example", &e), -1);
	assert_string_equal(e.code, "bad_entry");
	assert_int_equal(relay_lists_add(l, "bob@example.com", "trust", "@", &e), -1);
	assert_string_equal(e.code, "bad_entry");
	assert_int_equal(relay_lists_add(l, "bob@example.com", "trust", "", &e), -1);
	assert_string_equal(e.code, "bad_entry");
	assert_int_equal(relay_lists_add(l, "bob@example.com", "trust", "bad domain", &e), -1);
	assert_string_equal(e.code, "bad_entry");
	assert_int_equal(relay_lists_add(l, "not-an-address", "trust", "a@b.example", &e), -1);
	assert_string_equal(e.code, "bad_name");
	assert_null(relay_lists_json(l, "../../etc/passwd", &e));
	/* nothing was written for the refused changes */
	assert_int_equal(relay_lists_check(l, "bob@example.com", "a@b.example", "b.example"),
	                 RELAY_LIST_NONE);
	relay_lists_free(l);
}

static void file_path(const char *rcpt, char *out, size_t len)
{
	char hex[CRYPTO_HEX256_LEN];

	crypto_sha256_hex(rcpt, strlen(rcpt), hex);
	snprintf(out, len, "%s/lists/%s.json", dir, hex);
}

static void test_durable_and_reloaded(void **state)
{
	struct relay_lists *l = open_lists();
	struct err e = {0};
	char path[256];
	json_t *j;
	struct stat st;

	assert_int_equal(relay_lists_add(l, "erin@example.com", "trust", "frank@example.org", &e),
	                 0);
	relay_lists_free(l);

	/* the file is named by the SHA-256 of the address and holds the address */
	file_path("erin@example.com", path, sizeof(path));
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	j = json_load_file(path, 0, NULL);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "address")), "erin@example.com");
	assert_list(j, "trust", "frank@example.org");
	json_decref(j);

	l = open_lists();
	assert_int_equal(relay_lists_check(l, "erin@example.com", "frank@example.org", ""),
	                 RELAY_LIST_TRUST);
	relay_lists_free(l);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void test_corrupt_file(void **state)
{
	struct relay_lists *l = open_lists();
	struct err e = {0};
	char path[256];

	file_path("gina@example.com", path, sizeof(path));
	write_file(path, "{\"address\": \"gina@example.com\", \"trust\": [\"not valid!\"]}");
	assert_int_equal(relay_lists_check(l, "gina@example.com", "x@example.org", "example.org"),
	                 RELAY_LIST_NONE);
	assert_null(relay_lists_json(l, "gina@example.com", &e));
	assert_string_equal(e.code, "lists_corrupt");
	/* a file that claims another address is not taken for this one */
	write_file(path, "{\"address\": \"other@example.com\", \"trust\": [\"x@example.org\"]}");
	assert_int_equal(relay_lists_check(l, "gina@example.com", "x@example.org", ""),
	                 RELAY_LIST_NONE);
	assert_int_equal(relay_lists_add(l, "gina@example.com", "trust", "y@example.org", &e), -1);
	assert_string_equal(e.code, "lists_corrupt");
	relay_lists_free(l);
}

static void test_too_many_entries(void **state)
{
	struct relay_lists *l;
	struct err e = {0};
	char path[256], entry[64];
	json_t *o = json_pack("{s:s, s:[]}", "address", "hank@example.com", "block"), *arr;

	/* written by hand: 10000 fsync'd additions would take too long */
	arr = json_object_get(o, "block");
	for (int i = 0; i < 10000; i++) {
		snprintf(entry, sizeof(entry), "s%d@spam.example", i);
		json_array_append_new(arr, json_string(entry));
	}
	file_path("hank@example.com", path, sizeof(path));
	mkdir(dir, 0700);
	l = open_lists();
	assert_int_equal(json_dump_file(o, path, 0), 0);
	json_decref(o);
	assert_int_equal(relay_lists_check(l, "hank@example.com", "s9999@spam.example", ""),
	                 RELAY_LIST_BLOCK);
	assert_int_equal(relay_lists_add(l, "hank@example.com", "block", "one@more.example", &e),
	                 -1);
	assert_string_equal(e.code, "too_many_entries");
	assert_int_equal(e.kind, ERR_INPUT);
	/* the other lists have room, and removing makes room */
	assert_int_equal(relay_lists_add(l, "hank@example.com", "trust", "ok@more.example", &e), 0);
	assert_int_equal(relay_lists_remove(l, "hank@example.com", "block", "s0@spam.example", &e),
	                 0);
	assert_int_equal(relay_lists_add(l, "hank@example.com", "block", "one@more.example", &e),
	                 0);
	relay_lists_free(l);
}

struct worker {
	struct relay_lists *l;
	int id;
	int failures;
};

static void *adder(void *arg)
{
	struct worker *w = arg;
	char entry[64];
	struct err e = {0};

	for (int i = 0; i < 25; i++) {
		snprintf(entry, sizeof(entry), "w%d-%d@example.org", w->id, i);
		if (relay_lists_add(w->l, "ivy@example.com", "trust", entry, &e) < 0)
			w->failures++;
		if (relay_lists_check(w->l, "ivy@example.com", entry, "") != RELAY_LIST_TRUST)
			w->failures++;
	}
	return NULL;
}

static void test_threads(void **state)
{
	struct relay_lists *l = open_lists();
	struct worker w[4];
	pthread_t t[4];
	char entry[64];

	for (int i = 0; i < 4; i++) {
		w[i] = (struct worker){.l = l, .id = i};
		pthread_create(&t[i], NULL, adder, &w[i]);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(w[i].failures, 0);
	}
	relay_lists_free(l);
	/* every addition reached the disk */
	l = open_lists();
	for (int i = 0; i < 4; i++)
		for (int k = 0; k < 25; k++) {
			snprintf(entry, sizeof(entry), "w%d-%d@example.org", i, k);
			assert_int_equal(relay_lists_check(l, "ivy@example.com", entry, ""),
			                 RELAY_LIST_TRUST);
		}
	relay_lists_free(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_add_check_remove), cmocka_unit_test(test_block_wins),
	    cmocka_unit_test(test_bad_input),        cmocka_unit_test(test_durable_and_reloaded),
	    cmocka_unit_test(test_corrupt_file),     cmocka_unit_test(test_too_many_entries),
	    cmocka_unit_test(test_threads),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
