/* test_dns_records.c - record construction: TXT splitting, SMIMEA owner, DKIM, the full set. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dns/dns.h"

static void test_txt_split(void **state)
{
	char text[601], *back;
	struct err e;
	ldns_rr *rr;
	size_t len;

	(void)state;
	memset(text, 'a', 600);
	text[600] = '\0';
	rr = dns_records_txt("s._domainkey.x.test", 300, text, &e);
	assert_non_null(rr);
	assert_int_equal(ldns_rr_rd_count(rr), 3);
	assert_int_equal(ldns_rdf_data(ldns_rr_rdf(rr, 0))[0], 255);
	assert_int_equal(ldns_rdf_data(ldns_rr_rdf(rr, 1))[0], 255);
	assert_int_equal(ldns_rdf_data(ldns_rr_rdf(rr, 2))[0], 90);
	back = dns_txt_rr_text(rr, &len);
	assert_int_equal(len, 600);
	assert_string_equal(back, text);
	free(back);
	ldns_rr_free(rr);
	rr = dns_records_txt("x.test", 300, "", &e); /* one empty string, still valid */
	assert_non_null(rr);
	assert_int_equal(ldns_rr_rd_count(rr), 1);
	ldns_rr_free(rr);
}

static void test_smimea_owner(void **state)
{
	char out[DNS_NAME_MAX + 80], hex[65];
	uint8_t d[32];
	struct err e;

	(void)state;
	assert_int_equal(dns_records_smimea_owner("alice@x.test", out, sizeof(out), &e), 0);
	crypto_sha256("alice", 5, d);
	crypto_hex(d, 28, hex);
	assert_int_equal(strlen(hex), 56);
	assert_memory_equal(out, hex, 56);
	assert_string_equal(out + 56, "._smimecert.x.test");
	assert_int_equal(dns_records_smimea_owner("no-at-sign", out, sizeof(out), &e), -1);
}

static void test_keyserver_parse(void **state)
{
	struct dns_keyserver k;
	struct err e;

	(void)state;
	assert_int_equal(dns_keyserver_parse("keys.x.test:8443", &k, &e), 0);
	assert_string_equal(k.host, "keys.x.test");
	assert_int_equal(k.port, 8443);
	assert_int_equal(k.priority, 10);
	assert_int_equal(k.weight, 10);
	assert_int_equal(dns_keyserver_parse("keys.x.test:443:5:60", &k, &e), 0);
	assert_int_equal(k.priority, 5);
	assert_int_equal(k.weight, 60);
	assert_int_equal(dns_keyserver_parse("keys.x.test", &k, &e), -1);
	assert_int_equal(dns_keyserver_parse("keys.x.test:0", &k, &e), -1);
	assert_int_equal(dns_keyserver_parse("keys.x.test:443:5", &k, &e), -1);
	assert_int_equal(dns_keyserver_parse("keys.x.test:443:1:70000", &k, &e), -1);
	assert_int_equal(dns_keyserver_parse("bücher.test:443", &k, &e), -1);
	assert_string_equal(e.code, "bad_name");
}

static void test_dkim_and_selector(void **state)
{
	EVP_PKEY *ed, *p256;
	uint8_t raw[32];
	size_t rawlen = 32, dlen;
	char *text, sel[64], *b64;
	uint8_t *dec;
	struct err e;

	(void)state;
	ed = crypto_key_generate(KEY_ED25519, 0, &e);
	assert_non_null(ed);
	text = dns_records_dkim_text(ed, &e);
	assert_non_null(text);
	assert_int_equal(strncmp(text, "v=DKIM1; k=ed25519; p=", 22), 0);
	b64 = text + 22;
	dec = crypto_b64_decode(b64, &dlen);
	assert_non_null(dec);
	assert_int_equal(dlen, 32);
	assert_int_equal(EVP_PKEY_get_raw_public_key(ed, raw, &rawlen), 1);
	assert_memory_equal(dec, raw, 32);
	free(dec);
	free(text);
	EVP_PKEY_free(ed);
	p256 = crypto_key_generate(KEY_P256, 0, &e);
	assert_null(dns_records_dkim_text(p256, &e));
	assert_string_equal(e.code, "dkim_unsupported");
	EVP_PKEY_free(p256);
	assert_int_equal(dns_dkim_selector("s2026.x.test", "x.test", sel, sizeof(sel)), 0);
	assert_string_equal(sel, "s2026");
	assert_int_equal(dns_dkim_selector("x.test", "x.test", sel, sizeof(sel)), 0);
	assert_string_equal(sel, "anchor");
	assert_int_equal(dns_dkim_selector("a.b.y.test", "x.test", sel, sizeof(sel)), -1);
}

static void test_build_set(void **state)
{
	const char *pins[] = {"sha256:9GgajhnWPOAqku0rjqivw3viOa5MdXIdM6z0dGMsJfo=",
	                      "sha256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="};
	struct dns_keyserver ks[2];
	struct dns_records_input in = {.domain = "x.test",
	                               .ttl = 600,
	                               .mode = DNS_MODE_TESTING,
	                               .pins = pins,
	                               .npins = 2,
	                               .id = "abc"};
	struct dns_anchor_txt t;
	ldns_rr_list *list;
	char *notes = NULL, *s, *text;
	struct err e;
	size_t len;

	(void)state;
	assert_int_equal(dns_keyserver_parse("k1.x.test:443:10:60", &ks[0], &e), 0);
	assert_int_equal(dns_keyserver_parse("k2.other.test:8443:20:0", &ks[1], &e), 0);
	in.keyservers = ks;
	in.nkeyservers = 2;
	list = dns_records_build(&in, &notes, &e);
	assert_non_null(list);
	assert_int_equal(ldns_rr_list_rr_count(list), 3);
	s = ldns_rr2str(ldns_rr_list_rr(list, 0));
	assert_string_equal(s, "_anchor._tcp.x.test.\t600\tIN\tSRV\t10 60 443 k1.x.test.\n");
	free(s);
	/* What is published parses back to what was asked. */
	text = dns_txt_rr_text(ldns_rr_list_rr(list, 2), &len);
	assert_int_equal(dns_txt_parse(text, len, &t, &e), 0);
	assert_int_equal(t.npins, 2);
	assert_int_equal(t.mode, DNS_MODE_TESTING);
	assert_string_equal(t.id, "abc");
	free(text);
	ldns_rr_list_deep_free(list);
	free(notes);
	in.npins = 0;
	assert_null(dns_records_build(&in, &notes, &e));
	assert_string_equal(e.code, "txt_no_pin");
	in.npins = 2;
	in.domain = "Not A Domain";
	assert_null(dns_records_build(&in, &notes, &e));
	free(notes);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_txt_split),       cmocka_unit_test(test_smimea_owner),
	    cmocka_unit_test(test_keyserver_parse), cmocka_unit_test(test_dkim_and_selector),
	    cmocka_unit_test(test_build_set),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
