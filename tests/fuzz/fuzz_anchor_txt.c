/*
 * fuzz_anchor_txt.c - the _anchor TXT parser and the DNS answer interpreter.
 *
 * The input is parsed as TXT text (dns_txt_parse); when it is a parseable
 * record, what it says must survive a round trip through record generation.
 * The same bytes are also read as a DNS response packet and interpreted the
 * way discovery does (rcode, TC, CNAME chains, SRV/TXT extraction).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dns/dns.h"

static void roundtrip(const struct dns_anchor_txt *t)
{
	const char *pins[DNS_MAX_PINS];
	struct dns_anchor_txt back;
	struct err e;
	char *text;
	int i;

	for (i = 0; i < t->npins; i++)
		pins[i] = t->pins[i];
	text = dns_records_anchor_text(pins, t->npins, t->mode, t->id);
	if (text == NULL)
		return;
	if (dns_txt_parse(text, strlen(text), &back, &e) != 0 || back.npins != t->npins ||
	    back.mode != t->mode || strcmp(back.id, t->id) != 0)
		abort();
	free(text);
}

static void as_packet(const uint8_t *data, size_t size)
{
	static const ldns_rr_type types[] = {LDNS_RR_TYPE_TXT, LDNS_RR_TYPE_SRV};
	ldns_pkt *pkt = NULL;
	size_t t, i;

	if (ldns_wire2pkt(&pkt, data, size) != LDNS_STATUS_OK)
		return;
	for (t = 0; t < 2; t++) {
		struct dns_answer a = {0};
		char next[DNS_NAME_MAX];
		struct err e;

		if (dns_answer_from_pkt(pkt, "_anchor.x.test", types[t], &a, next, sizeof(next),
		                        &e) == 0) {
			for (i = 0; i < ldns_rr_list_rr_count(a.rrs); i++) {
				ldns_rr *rr = ldns_rr_list_rr(a.rrs, i);
				struct dns_srv s;
				struct dns_anchor_txt txt;
				size_t len;
				char *text;

				if (types[t] == LDNS_RR_TYPE_SRV) {
					(void)dns_srv_from_rr(rr, &s, &e);
					continue;
				}
				text = dns_txt_rr_text(rr, &len);
				if (text != NULL)
					(void)dns_txt_parse(text, len, &txt, &e);
				free(text);
			}
		}
		dns_answer_clear(&a);
	}
	ldns_pkt_free(pkt);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dns_anchor_txt t;
	struct err e;

	if (dns_txt_parse((const char *)data, size, &t, &e) == 0)
		roundtrip(&t);
	as_packet(data, size);
	return 0;
}
