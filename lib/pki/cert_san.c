/*
 * cert_san.c - mailbox names in subjectAltName, both forms of RFC 9598; see
 * cert_san.h.
 *
 * A SmtpUTF8Mailbox is untrusted input whenever it is read (a request, somebody
 * else's certificate): it is a counted string, so a NUL is looked for before
 * anything treats it as text, and the address it names goes through the same
 * canonical form (pki/name.c) as every other name before it is compared.
 */
#include "pki/cert_san.h"
#include "pki/name.h"
#include "core/utf8.h"

#include <ctype.h>
#include <idn2.h>
#include <string.h>

#include <openssl/err.h>

/* The domain of a canonical address (A-labels) in U-labels, as RFC 9598 §3 wants it. */
static int domain_ulabels(const char *alabels, char *out, size_t size, struct err *e)
{
	char *u = NULL;
	int rc = idn2_to_unicode_8z8z(alabels, &u, 0);

	if (rc != IDN2_OK || strlen(u) >= size) {
		idn2_free(u);
		return err_set(e, ERR_INPUT, "bad_name", "the domain %s has no U-label form (%s)",
		               alabels, rc != IDN2_OK ? idn2_strerror(rc) : "too long");
	}
	memcpy(out, u, strlen(u) + 1);
	idn2_free(u);
	return 0;
}

int cert_san_smtputf8_text(const char *canon, char *out, size_t size, struct err *e)
{
	const char *at = strrchr(canon, '@');
	char dom[CERT_SAN_ADDR_MAX];
	size_t ll;

	out[0] = '\0';
	if (name_check_address(canon, e) < 0)
		return -1;
	ll = (size_t)(at - canon);
	if (name_is_ascii_n(canon, ll))
		return err_set(e, ERR_INPUT, "bad_name",
		               "%s has an ASCII local part: its certificate names it in an "
		               "rfc822Name (RFC 9598 §3)",
		               canon);
	if (domain_ulabels(at + 1, dom, sizeof(dom), e) < 0)
		return -1;
	if (ll + 1 + strlen(dom) >= size)
		return err_set(e, ERR_INPUT, "bad_name", "the address is too long");
	memcpy(out, canon, ll + 1);
	memcpy(out + ll + 1, dom, strlen(dom) + 1);
	return 0;
}

/* A label of the domain part spelt as an A-label ("xn--", any case). */
static int has_alabel(const char *domain)
{
	const char *p = domain;

	for (;;) {
		if (strncasecmp(p, "xn--", 4) == 0)
			return 1;
		p = strchr(p, '.');
		if (p == NULL)
			return 0;
		p++;
	}
}

int cert_san_smtputf8_parse(const unsigned char *data, size_t len, char *out, size_t size,
                            struct err *e)
{
	char text[CERT_SAN_ADDR_MAX];
	const char *at;

	out[0] = '\0';
	if (data == NULL || len == 0 || len >= sizeof(text))
		return err_set(e, ERR_INPUT, "bad_name",
		               "the SmtpUTF8Mailbox is empty or longer than any address");
	if (memchr(data, 0, len) != NULL)
		return err_set(e, ERR_INPUT, "bad_name", "the SmtpUTF8Mailbox holds a NUL");
	if (!utf8_valid(data, len))
		return err_set(e, ERR_INPUT, "bad_name",
		               "the SmtpUTF8Mailbox is not well-formed UTF-8");
	memcpy(text, data, len);
	text[len] = '\0';
	at = strrchr(text, '@');
	if (at == NULL || at == text)
		return err_set(e, ERR_INPUT, "bad_name", "the SmtpUTF8Mailbox is not local@domain");
	if (name_is_ascii_n(text, (size_t)(at - text)))
		return err_set(e, ERR_INPUT, "bad_name",
		               "the SmtpUTF8Mailbox has an ASCII local part; RFC 9598 §3 puts "
		               "such an address in an rfc822Name");
	if (has_alabel(at + 1))
		return err_set(e, ERR_INPUT, "bad_name",
		               "the SmtpUTF8Mailbox spells its domain with an A-label; RFC 9598 §3 "
		               "wants U-labels there");
	return name_canon_address(text, out, size, e);
}

/* An rfc822Name: ASCII without NUL (IA5String), then the canonical form. */
static int rfc822_address(const ASN1_IA5STRING *s, char *out, size_t size, struct err *e)
{
	char text[CERT_SAN_ADDR_MAX];
	int len = ASN1_STRING_length(s);
	const unsigned char *d = ASN1_STRING_get0_data(s);

	out[0] = '\0';
	if (d == NULL || len <= 0 || (size_t)len >= sizeof(text) ||
	    memchr(d, 0, (size_t)len) != NULL || !name_is_ascii_n((const char *)d, (size_t)len))
		return err_set(e, ERR_INPUT, "bad_name",
		               "an rfc822Name is empty, not ASCII, holds a NUL or is too long");
	memcpy(text, d, (size_t)len);
	text[len] = '\0';
	return name_canon_address(text, out, size, e);
}

int cert_san_entry_address(const GENERAL_NAME *g, char *out, size_t size, struct err *e)
{
	const OTHERNAME *on;

	out[0] = '\0';
	if (g->type == GEN_EMAIL)
		return rfc822_address(g->d.rfc822Name, out, size, e) < 0 ? -1 : 1;
	if (g->type != GEN_OTHERNAME)
		return 0;
	on = g->d.otherName;
	if (on == NULL || OBJ_obj2nid(on->type_id) != NID_id_on_SmtpUTF8Mailbox)
		return 0;
	if (on->value == NULL || on->value->type != V_ASN1_UTF8STRING)
		return err_set(e, ERR_INPUT, "bad_name", "the SmtpUTF8Mailbox is not a UTF8String");
	return cert_san_smtputf8_parse(ASN1_STRING_get0_data(on->value->value.utf8string),
	                               (size_t)ASN1_STRING_length(on->value->value.utf8string), out,
	                               size, e) < 0
	           ? -1
	           : 1;
}

GENERAL_NAME *cert_san_entry_for(const char *canon, struct err *e)
{
	char text[CERT_SAN_ADDR_MAX];
	GENERAL_NAME *g = GENERAL_NAME_new();
	ASN1_IA5STRING *ia5 = NULL;
	ASN1_TYPE *val = NULL;
	ASN1_OBJECT *oid = NULL;
	const char *at = strrchr(canon, '@');

	if (name_check_address(canon, e) < 0) {
		GENERAL_NAME_free(g);
		return NULL;
	}
	if (name_is_ascii_n(canon, (size_t)(at - canon))) {
		ia5 = ASN1_IA5STRING_new();
		if (g != NULL && ia5 != NULL && ASN1_STRING_set(ia5, canon, -1) == 1) {
			GENERAL_NAME_set0_value(g, GEN_EMAIL, ia5);
			return g;
		}
	} else {
		if (cert_san_smtputf8_text(canon, text, sizeof(text), e) < 0) {
			GENERAL_NAME_free(g);
			return NULL;
		}
		val = ASN1_TYPE_new();
		ia5 = ASN1_UTF8STRING_new();
		oid = OBJ_nid2obj(NID_id_on_SmtpUTF8Mailbox);
		if (g != NULL && val != NULL && ia5 != NULL && oid != NULL &&
		    ASN1_STRING_set(ia5, text, -1) == 1) {
			ASN1_TYPE_set(val, V_ASN1_UTF8STRING, ia5);
			if (GENERAL_NAME_set0_othername(g, oid, val) == 1)
				return g;
			ia5 = NULL; /* val owns it */
		}
	}
	ASN1_STRING_free(ia5);
	ASN1_TYPE_free(val);
	GENERAL_NAME_free(g);
	err_set_ssl(e, ERR_INTERNAL, "internal", "cannot build the subjectAltName");
	return NULL;
}

void cert_san_address(X509 *cert, char *out, size_t size)
{
	GENERAL_NAMES *gens = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	struct err ignore = {0};

	out[0] = '\0';
	for (int i = 0; gens != NULL && i < sk_GENERAL_NAME_num(gens); i++)
		if (cert_san_entry_address(sk_GENERAL_NAME_value(gens, i), out, size, &ignore) == 1)
			break;
	GENERAL_NAMES_free(gens);
	ERR_clear_error();
}

int cert_san_has_address(X509 *cert, const char *canon)
{
	GENERAL_NAMES *gens = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	char addr[CERT_SAN_ADDR_MAX];
	struct err ignore = {0};
	int found = 0;

	for (int i = 0; gens != NULL && i < sk_GENERAL_NAME_num(gens) && !found; i++)
		found = cert_san_entry_address(sk_GENERAL_NAME_value(gens, i), addr, sizeof(addr),
		                               &ignore) == 1 &&
		        strcmp(addr, canon) == 0;
	GENERAL_NAMES_free(gens);
	ERR_clear_error();
	return found;
}
