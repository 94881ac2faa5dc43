/*
 * dns_records.c - the records a domain publishes (DESIGN.md §3), built as
 * ldns RRs from their parts, never pasted together as text.
 */
#include "dns/dns.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509.h>

#include "pki/cert.h"
#include "pki/name.h"

/* ------------------------------------------------------------------ inputs */

int dns_keyserver_parse(const char *text, struct dns_keyserver *out, struct err *e)
{
	char buf[DNS_NAME_MAX + 32], *parts[4], *save = NULL, *p;
	long v[3] = {0, 10, 10};
	int n = 0, i;

	memset(out, 0, sizeof(*out));
	if (text == NULL || strlen(text) >= sizeof(buf))
		goto bad;
	snprintf(buf, sizeof(buf), "%s", text);
	for (p = strtok_r(buf, ":", &save); p != NULL && n < 4; p = strtok_r(NULL, ":", &save))
		parts[n++] = p;
	if ((n != 2 && n != 4) || p != NULL)
		goto bad;
	for (i = 1; i < n; i++) {
		char *stop;

		v[i - 1] = strtol(parts[i], &stop, 10);
		if (*stop != '\0' || v[i - 1] < (i == 1 ? 1 : 0) || v[i - 1] > 65535)
			goto bad;
	}
	/* "localhost" is allowed for a development stack (make run): it resolves everywhere. */
	if (strcmp(parts[0], "localhost") != 0 && name_check_domain(parts[0], e) < 0)
		return -1;
	snprintf(out->host, sizeof(out->host), "%s", parts[0]);
	out->port = (uint16_t)v[0];
	out->priority = (uint16_t)v[1];
	out->weight = (uint16_t)v[2];
	return 0;
bad:
	return err_set(e, ERR_INPUT, "bad_keyserver",
	               "--keyserver \"%.64s\" is not HOST:PORT[:PRIORITY:WEIGHT] (numbers 0-65535, "
	               "port 1-65535)",
	               text ? text : "");
}

int dns_dkim_selector(const char *cert_name, const char *domain, char *out, size_t size)
{
	size_t nl = strlen(cert_name), dl = strlen(domain);
	const char *dot;

	if (nl > dl + 1 && strcmp(cert_name + nl - dl, domain) == 0 &&
	    cert_name[nl - dl - 1] == '.') {
		dot = strchr(cert_name, '.');
		if ((size_t)(dot - cert_name) >= size)
			return -1;
		memcpy(out, cert_name, (size_t)(dot - cert_name));
		out[dot - cert_name] = '\0';
		return 0;
	}
	if (strcmp(cert_name, domain) == 0 && size > 6) {
		snprintf(out, size, "anchor");
		return 0;
	}
	return -1;
}

/* ------------------------------------------------------------------ RR construction */

static ldns_rr *rr_start(const char *owner, ldns_rr_type type, uint32_t ttl, struct err *e)
{
	char fq[DNS_NAME_MAX + 2];
	ldns_rdf *name;
	ldns_rr *rr;

	if (strlen(owner) > 253) {
		err_set(e, ERR_INPUT, "bad_name", "the owner name %.64s... is too long", owner);
		return NULL;
	}
	snprintf(fq, sizeof(fq), "%s.", owner);
	name = ldns_dname_new_frm_str(fq);
	rr = ldns_rr_new();
	if (name == NULL || rr == NULL) {
		ldns_rdf_deep_free(name);
		ldns_rr_free(rr);
		err_set(e, ERR_INPUT, "bad_name", "\"%.64s\" is not a valid owner name", owner);
		return NULL;
	}
	ldns_rr_set_owner(rr, name);
	ldns_rr_set_type(rr, type);
	ldns_rr_set_class(rr, LDNS_RR_CLASS_IN);
	ldns_rr_set_ttl(rr, ttl);
	return rr;
}

static int push(ldns_rr *rr, ldns_rdf *rdf, struct err *e)
{
	if (rdf == NULL || !ldns_rr_push_rdf(rr, rdf)) {
		ldns_rdf_deep_free(rdf);
		return err_set(e, ERR_INTERNAL, "internal", "cannot build a resource record");
	}
	return 0;
}

static ldns_rdf *dname_rdf(const char *host)
{
	char fq[DNS_NAME_MAX + 2];

	snprintf(fq, sizeof(fq), "%s.", host);
	return ldns_dname_new_frm_str(fq);
}

static ldns_rr *srv_rr(const char *owner, uint32_t ttl, uint16_t prio, uint16_t weight,
                       uint16_t port, const char *target, struct err *e)
{
	ldns_rr *rr = rr_start(owner, LDNS_RR_TYPE_SRV, ttl, e);

	if (rr == NULL)
		return NULL;
	if (push(rr, ldns_native2rdf_int16(LDNS_RDF_TYPE_INT16, prio), e) < 0 ||
	    push(rr, ldns_native2rdf_int16(LDNS_RDF_TYPE_INT16, weight), e) < 0 ||
	    push(rr, ldns_native2rdf_int16(LDNS_RDF_TYPE_INT16, port), e) < 0 ||
	    push(rr, dname_rdf(target), e) < 0) {
		ldns_rr_free(rr);
		return NULL;
	}
	return rr;
}

ldns_rr *dns_records_txt(const char *owner, uint32_t ttl, const char *text, struct err *e)
{
	size_t len = strlen(text), off = 0;
	ldns_rr *rr = rr_start(owner, LDNS_RR_TYPE_TXT, ttl, e);

	if (rr == NULL)
		return NULL;
	/* RFC 1035 character-strings hold at most 255 octets; RFC 7208 §3.3 style split. */
	do {
		size_t n = len - off > 255 ? 255 : len - off;
		uint8_t buf[256];

		buf[0] = (uint8_t)n;
		memcpy(buf + 1, text + off, n);
		if (push(rr, ldns_rdf_new_frm_data(LDNS_RDF_TYPE_STR, n + 1, buf), e) < 0) {
			ldns_rr_free(rr);
			return NULL;
		}
		off += n;
	} while (off < len);
	return rr;
}

/* TLSA or SMIMEA: usage, selector, matching type, data. */
static ldns_rr *dane_rr(const char *owner, ldns_rr_type type, uint32_t ttl, uint8_t usage,
                        uint8_t selector, uint8_t mtype, const uint8_t *data, size_t len,
                        struct err *e)
{
	ldns_rr *rr = rr_start(owner, type, ttl, e);

	if (rr == NULL)
		return NULL;
	if (push(rr, ldns_native2rdf_int8(LDNS_RDF_TYPE_CERTIFICATE_USAGE, usage), e) < 0 ||
	    push(rr, ldns_native2rdf_int8(LDNS_RDF_TYPE_SELECTOR, selector), e) < 0 ||
	    push(rr, ldns_native2rdf_int8(LDNS_RDF_TYPE_MATCHING_TYPE, mtype), e) < 0 ||
	    push(rr, ldns_rdf_new_frm_data(LDNS_RDF_TYPE_HEX, len, data), e) < 0) {
		ldns_rr_free(rr);
		return NULL;
	}
	return rr;
}

/* ------------------------------------------------------------------ texts */

static int append(char **buf, size_t *len, size_t *cap, const char *s)
{
	size_t n = strlen(s);

	if (*len + n + 1 > *cap) {
		size_t nc = (*len + n + 1) * 2;
		char *nb = realloc(*buf, nc);

		if (nb == NULL)
			return -1;
		*buf = nb;
		*cap = nc;
	}
	memcpy(*buf + *len, s, n + 1);
	*len += n;
	return 0;
}

char *dns_records_anchor_text(const char *const *pins, int npins, enum dns_mode mode,
                              const char *id)
{
	char *buf = NULL, part[128];
	size_t len = 0, cap = 0;
	int i, bad = append(&buf, &len, &cap, "v=ANCHOR1;");

	for (i = 0; i < npins && !bad; i++) {
		snprintf(part, sizeof(part), " pin=%s;", pins[i]);
		bad = append(&buf, &len, &cap, part);
	}
	snprintf(part, sizeof(part), " mode=%s", dns_mode_name(mode));
	bad = bad || append(&buf, &len, &cap, part);
	if (id != NULL && id[0] != '\0') {
		snprintf(part, sizeof(part), "; id=%.64s", id);
		bad = bad || append(&buf, &len, &cap, part);
	}
	if (bad) {
		free(buf);
		return NULL;
	}
	return buf;
}

char *dns_records_dkim_text(EVP_PKEY *key, struct err *e)
{
	uint8_t raw[32], *der = NULL;
	size_t rawlen = sizeof(raw);
	char *b64 = NULL, *out = NULL;
	const char *k;
	int dlen;

	switch (EVP_PKEY_get_base_id(key)) {
	case EVP_PKEY_ED25519:
		/* RFC 8463 §4.2: p= is the bare 32-octet public key. */
		if (EVP_PKEY_get_raw_public_key(key, raw, &rawlen) != 1 || rawlen != 32) {
			err_set_ssl(e, ERR_INTERNAL, "internal", "cannot read the Ed25519 key");
			return NULL;
		}
		b64 = crypto_b64_encode(raw, rawlen);
		k = "ed25519";
		break;
	case EVP_PKEY_RSA:
		/* RFC 6376 §3.6.1: p= is the DER SubjectPublicKeyInfo. */
		dlen = i2d_PUBKEY(key, &der);
		if (dlen <= 0) {
			err_set_ssl(e, ERR_INTERNAL, "internal", "cannot encode the RSA key");
			return NULL;
		}
		b64 = crypto_b64_encode(der, (size_t)dlen);
		OPENSSL_free(der);
		k = "rsa";
		break;
	default:
		err_set(e, ERR_UNPROC, "dkim_unsupported",
		        "DKIM defines no record for %s keys (only rsa and ed25519)",
		        crypto_key_alg_name(key));
		return NULL;
	}
	if (b64 == NULL || asprintf(&out, "v=DKIM1; k=%s; p=%s", k, b64) < 0) {
		out = NULL;
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
	}
	free(b64);
	return out;
}

int dns_records_smimea_owner(const char *address, char *out, size_t size, struct err *e)
{
	const char *at = strrchr(address, '@');
	uint8_t digest[32];
	char hex[65];

	if (at == NULL || name_check_address(address, e) < 0)
		return at == NULL ? err_set(e, ERR_INPUT, "bad_name", "\"%.64s\" is not an address",
		                            address)
		                  : -1;
	/* RFC 8162 §3: SHA-256 of the local part, truncated to 28 octets. */
	crypto_sha256(address, (size_t)(at - address), digest);
	crypto_hex(digest, 28, hex);
	if (snprintf(out, size, "%s._smimecert.%s", hex, at + 1) >= (int)size)
		return err_set(e, ERR_INPUT, "bad_name", "the SMIMEA owner name is too long");
	return 0;
}

char *dns_rr_to_string(const ldns_rr *rr)
{
	return ldns_rr2str(rr);
}

/* ------------------------------------------------------------------ the set */

static void note(char **notes, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(char **notes, const char *fmt, ...)
{
	char *line = NULL, *joined = NULL;
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(&line, fmt, ap) < 0)
		line = NULL;
	va_end(ap);
	if (line == NULL)
		return;
	if (*notes == NULL) {
		*notes = line;
		return;
	}
	if (asprintf(&joined, "%s; %s", *notes, line) >= 0) {
		free(*notes);
		*notes = joined;
	}
	free(line);
}

static int add(ldns_rr_list *list, ldns_rr *rr)
{
	if (rr == NULL)
		return -1;
	ldns_rr_list_push_rr(list, rr);
	return 0;
}

static int add_tlsa(ldns_rr_list *list, const struct dns_records_input *in, struct err *e)
{
	uint8_t *der = NULL, digest[32];
	char owner[DNS_NAME_MAX + 32];
	int dlen, i;

	dlen = i2d_PUBKEY(X509_get0_pubkey(in->tlsa_cert), &der);
	if (dlen <= 0)
		return err_set_ssl(e, ERR_UNPROC, "bad_certificate",
		                   "cannot read the key server's TLS key");
	crypto_sha256(der, (size_t)dlen, digest);
	OPENSSL_free(der);
	for (i = 0; i < in->nkeyservers; i++) {
		/* DANE-EE, SPKI, SHA-256 (RFC 7671 §5.1): survives certificate renewal. */
		snprintf(owner, sizeof(owner), "_%u._tcp.%s", in->keyservers[i].port,
		         in->keyservers[i].host);
		if (add(list, dane_rr(owner, LDNS_RR_TYPE_TLSA, in->ttl, 3, 1, 1, digest, 32, e)) <
		    0)
			return -1;
	}
	return 0;
}

static int add_server(ldns_rr_list *list, const struct dns_records_input *in,
                      const struct dns_server_cert *s, char **notes, struct err *e)
{
	char owner[DNS_NAME_MAX + 64], sel[64], *text;
	ldns_rr *rr;

	if (name_check_domain(s->name, e) < 0 || !name_in_domain(s->name, in->domain))
		return err_set(e, ERR_UNPROC, "bad_name",
		               "server certificate name \"%.64s\" is not inside %s", s->name,
		               in->domain);
	if (strcmp(s->purpose, "mta") == 0) {
		/* CSA (draft-ietf-marid-csv-csa): _client._smtp.<host> SRV 1 2 0 <host>. */
		snprintf(owner, sizeof(owner), "_client._smtp.%s", s->name);
		return add(list, srv_rr(owner, in->ttl, 1, 2, 0, s->name, e));
	}
	if (strcmp(s->purpose, "signing") != 0)
		return 0;
	if (dns_dkim_selector(s->name, in->domain, sel, sizeof(sel)) < 0)
		return err_set(e, ERR_UNPROC, "bad_name", "no DKIM selector for \"%.64s\"",
		               s->name);
	text = dns_records_dkim_text(X509_get0_pubkey(s->cert), e);
	if (text == NULL) {
		if (strcmp(e->code, "dkim_unsupported") != 0)
			return -1;
		note(notes, "no DKIM record for %s: %s", s->name, e->msg);
		err_clear(e);
		return 0;
	}
	snprintf(owner, sizeof(owner), "%s._domainkey.%s", sel, in->domain);
	rr = dns_records_txt(owner, in->ttl, text, e);
	free(text);
	return add(list, rr);
}

static int add_smimea(ldns_rr_list *list, const struct dns_records_input *in,
                      const struct dns_smimea *s, struct err *e)
{
	char owner[DNS_NAME_MAX + 80];
	uint8_t *der = NULL;
	ldns_rr *rr;
	int dlen;

	if (dns_records_smimea_owner(s->address, owner, sizeof(owner), e) < 0)
		return -1;
	dlen = i2d_X509(s->cert, &der);
	if (dlen <= 0)
		return err_set_ssl(e, ERR_UNPROC, "bad_certificate", "cannot encode a certificate");
	/* DANE-EE, full certificate, exact match: a sender fetches the certificate itself. */
	rr = dane_rr(owner, LDNS_RR_TYPE_SMIMEA, in->ttl, 3, 0, 0, der, (size_t)dlen, e);
	OPENSSL_free(der);
	return add(list, rr);
}

ldns_rr_list *dns_records_build(const struct dns_records_input *in, char **notes, struct err *e)
{
	ldns_rr_list *list = ldns_rr_list_new();
	char owner[DNS_NAME_MAX + 32], *text = NULL;
	int i;

	if (list == NULL || name_check_domain(in->domain, e) < 0)
		goto fail;
	snprintf(owner, sizeof(owner), "_anchor._tcp.%s", in->domain);
	for (i = 0; i < in->nkeyservers; i++) {
		const struct dns_keyserver *k = &in->keyservers[i];

		if (add(list, srv_rr(owner, in->ttl, k->priority, k->weight, k->port, k->host, e)) <
		    0)
			goto fail;
	}
	if (in->npins < 1) {
		err_set(e, ERR_INPUT, "txt_no_pin", "no pin to publish");
		goto fail;
	}
	text = dns_records_anchor_text(in->pins, in->npins, in->mode, in->id);
	snprintf(owner, sizeof(owner), "_anchor.%s", in->domain);
	if (text == NULL || add(list, dns_records_txt(owner, in->ttl, text, e)) < 0)
		goto fail;
	if (in->tlsa_cert != NULL && add_tlsa(list, in, e) < 0)
		goto fail;
	for (i = 0; i < in->nservers; i++)
		if (add_server(list, in, &in->servers[i], notes, e) < 0)
			goto fail;
	for (i = 0; i < in->nsmimea; i++)
		if (add_smimea(list, in, &in->smimea[i], e) < 0)
			goto fail;
	free(text);
	return list;
fail:
	if (e->kind == ERR_NONE)
		err_set(e, ERR_INTERNAL, "internal", "cannot build the records");
	free(text);
	ldns_rr_list_deep_free(list);
	return NULL;
}
