/*
 * csr.c - PKCS#10 requests: parsing, proof of possession, the name asked
 * for, and making one locally; see csr.h.
 *
 * A request is untrusted input from the network: every accessor here copes
 * with requests that lie about their contents or are malformed halfway.
 */
#include "pki/csr.h"
#include "pki/cert.h"
#include "pki/cert_priv.h"
#include "pki/cert_san.h"
#include "pki/name.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#define CN_MAX 64     /* ub-common-name */
#define EMAIL_MAX 128 /* OpenSSL's bound for the emailAddress attribute */
#define NAME_MAX_LEN 254

X509_REQ *csr_from_pem(const char *pem, size_t len, struct err *e)
{
	X509_REQ *req = NULL;
	BIO *bio;

	bio = cert_pem_bio(pem, len);
	if (bio != NULL)
		req = PEM_read_bio_X509_REQ(bio, NULL, NULL, NULL);
	if (req != NULL && !cert_pem_bio_done(bio)) {
		X509_REQ_free(req);
		req = NULL;
	}
	BIO_free(bio);
	if (req == NULL)
		err_set_ssl(e, ERR_INPUT, "bad_csr",
		            "the request is not one PEM-encoded PKCS#10 certificate request");
	return req;
}

int csr_verify(X509_REQ *req, struct err *e)
{
	EVP_PKEY *pub;

	pub = X509_REQ_get0_pubkey(req);
	if (pub == NULL)
		return err_set_ssl(e, ERR_INPUT, "bad_csr",
		                   "the request's public key cannot be parsed");
	if (X509_REQ_verify(req, pub) != 1)
		return err_set_ssl(e, ERR_INPUT, "csr_signature",
		                   "the request's signature does not verify with its own key");
	return crypto_key_check_allowed(pub, e);
}

/* ---- the requested name ---- */

/* Up to two distinct names seen so far: enough to tell "one" from "more than one". */
struct names {
	char first[NAME_MAX_LEN + 1];
	int count;      /* distinct names, saturating at 2 */
	int bad;        /* a name that cannot be a name at all (NUL, non-ASCII, too long) */
	int broken;     /* a subjectAltName extension that does not decode */
	struct err why; /* the first address entry refused, and why (cert_san.c) */
};

static void names_add_canon(struct names *n, const char *canon)
{
	size_t len = strlen(canon);

	if (len > NAME_MAX_LEN) {
		n->bad = 1;
	} else if (n->count == 0) {
		memcpy(n->first, canon, len + 1);
		n->count = 1;
	} else if (strcmp(n->first, canon) != 0) {
		n->count = 2;
	}
}

/* An address entry (rfc822Name or SmtpUTF8Mailbox) in its canonical form, so that
 * two spellings of one address are one name and a refused one says why. */
static void names_add_address(struct names *n, const GENERAL_NAME *gen)
{
	char canon[CERT_SAN_ADDR_MAX];
	struct err e = {0};
	int rc = cert_san_entry_address(gen, canon, sizeof(canon), &e);

	if (rc == 1) {
		names_add_canon(n, canon);
	} else if (rc != 0) {
		if (!n->bad && rc < 0)
			n->why = e;
		n->bad = 1;
	}
}

static void names_add(struct names *n, const unsigned char *data, int len)
{
	char buf[NAME_MAX_LEN + 1];
	int i;

	if (data == NULL || len <= 0 || len > NAME_MAX_LEN) {
		n->bad = 1;
		return;
	}
	for (i = 0; i < len; i++) {
		if (data[i] == 0 || data[i] >= 0x80) {
			n->bad = 1;
			return;
		}
		buf[i] = (char)tolower(data[i]);
	}
	buf[len] = '\0';
	if (n->count == 0) {
		memcpy(n->first, buf, (size_t)len + 1);
		n->count = 1;
	} else if (strcmp(n->first, buf) != 0) {
		n->count = 2;
	}
}

/* Collect the SAN entries of the wanted type from every subjectAltName extension. */
static void names_from_san(X509_REQ *req, int type, struct names *n)
{
	STACK_OF(X509_EXTENSION) * exts;
	GENERAL_NAMES *gens;
	GENERAL_NAME *gen;
	int i, j;

	exts = X509_REQ_get_extensions(req);
	for (i = 0; i < sk_X509_EXTENSION_num(exts); i++) {
		X509_EXTENSION *ext = sk_X509_EXTENSION_value(exts, i);

		if (OBJ_obj2nid(X509_EXTENSION_get_object(ext)) != NID_subject_alt_name)
			continue;
		gens = X509V3_EXT_d2i(ext);
		if (gens == NULL) {
			n->broken = 1;
			continue;
		}
		for (j = 0; j < sk_GENERAL_NAME_num(gens); j++) {
			gen = sk_GENERAL_NAME_value(gens, j);
			if (type == GEN_EMAIL)
				names_add_address(n, gen);
			else if (gen->type == type)
				names_add(n, ASN1_STRING_get0_data(gen->d.ia5),
				          ASN1_STRING_length(gen->d.ia5));
		}
		GENERAL_NAMES_free(gens);
	}
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	ERR_clear_error();
}

static void names_from_subject(X509_REQ *req, int nid, struct names *n)
{
	X509_NAME *subject = X509_REQ_get_subject_name(req);
	unsigned char *utf8;
	int i = -1, len;

	while ((i = X509_NAME_get_index_by_NID(subject, nid, i)) >= 0) {
		utf8 = NULL;
		len = ASN1_STRING_to_UTF8(
		    &utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, i)));
		if (len < 0)
			n->bad = 1;
		else
			names_add(n, utf8, len);
		OPENSSL_free(utf8);
	}
	ERR_clear_error();
}

char *csr_requested_name(X509_REQ *req, enum cert_kind kind, struct err *e)
{
	const char *what = kind == CERT_USER ? "address" : "host name";
	struct names n;
	char *out;

	memset(&n, 0, sizeof(n));
	names_from_san(req, kind == CERT_USER ? GEN_EMAIL : GEN_DNS, &n);
	if (n.broken) {
		err_set(e, ERR_INPUT, "bad_csr", "the request's subjectAltName cannot be decoded");
		return NULL;
	}
	if (n.count == 0 && !n.bad)
		names_from_subject(req, kind == CERT_USER ? NID_pkcs9_emailAddress : NID_commonName,
		                   &n);
	if (n.bad && n.why.code[0] != '\0') {
		*e = n.why;
		return NULL;
	}
	if (n.bad) {
		err_set(e, ERR_INPUT, "bad_name",
		        "a name in the request is not ASCII, holds a NUL or is too long");
		return NULL;
	}
	if (n.count == 0) {
		err_set(e, ERR_INPUT, "bad_csr",
		        kind == CERT_USER
		            ? "the request names no address; put it in an rfc822Name "
		              "subjectAltName (a SmtpUTF8Mailbox one for a UTF-8 local part) or "
		              "the subject emailAddress"
		            : "the request names no host; put it in a dNSName subjectAltName or "
		              "the subject CN");
		return NULL;
	}
	if (n.count > 1) {
		err_set(e, ERR_INPUT, "bad_csr", "the request names more than one %s", what);
		return NULL;
	}
	if ((kind == CERT_USER ? name_check_address(n.first, e) : name_check_domain(n.first, e)) <
	    0)
		return NULL;
	out = strdup(n.first);
	if (out == NULL)
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
	return out;
}

/* ---- making a request ---- */

/* The request's SAN: a dNSName, or the address entry of cert_san_entry_for. */
static int req_add_san(X509_REQ *req, enum cert_kind kind, const char *name)
{
	STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
	GENERAL_NAMES *gens = GENERAL_NAMES_new();
	GENERAL_NAME *gen = NULL;
	ASN1_IA5STRING *ia5 = NULL;
	X509_EXTENSION *ext = NULL;
	struct err ignore = {0};
	int ok = 0;

	if (kind == CERT_USER) {
		gen = cert_san_entry_for(name, &ignore);
	} else if ((gen = GENERAL_NAME_new()) != NULL && (ia5 = ASN1_IA5STRING_new()) != NULL &&
	           ASN1_STRING_set(ia5, name, -1) == 1) {
		GENERAL_NAME_set0_value(gen, GEN_DNS, ia5);
		ia5 = NULL;
	} else {
		GENERAL_NAME_free(gen);
		gen = NULL;
	}
	if (exts == NULL || gens == NULL || gen == NULL)
		goto out;
	if (sk_GENERAL_NAME_push(gens, gen) <= 0)
		goto out;
	gen = NULL;
	ext = X509V3_EXT_i2d(NID_subject_alt_name, 0, gens);
	if (ext == NULL || sk_X509_EXTENSION_push(exts, ext) <= 0)
		goto out;
	ext = NULL; /* the stack owns it */
	ok = X509_REQ_add_extensions(req, exts) == 1;
out:
	X509_EXTENSION_free(ext);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	ASN1_IA5STRING_free(ia5);
	GENERAL_NAME_free(gen);
	GENERAL_NAMES_free(gens);
	return ok ? 0 : -1;
}

static int subject_add(X509_NAME *subject, int nid, const char *value)
{
	return X509_NAME_add_entry_by_NID(subject, nid, MBSTRING_UTF8, (const unsigned char *)value,
	                                  -1, -1, 0) == 1
	           ? 0
	           : -1;
}

/* Subject CN (and emailAddress for users) when the name fits; the SAN always. */
static int req_set_names(X509_REQ *req, enum cert_kind kind, const char *name)
{
	X509_NAME *subject = X509_REQ_get_subject_name(req);
	size_t len = strlen(name);

	if (len <= CN_MAX && subject_add(subject, NID_commonName, name) < 0)
		return -1;
	/* emailAddress is an IA5String: a UTF-8 address lives in the SAN only (RFC 9598) */
	if (kind == CERT_USER && len <= EMAIL_MAX && name_is_ascii(name) &&
	    subject_add(subject, NID_pkcs9_emailAddress, name) < 0)
		return -1;
	return req_add_san(req, kind, name);
}

X509_REQ *csr_make(EVP_PKEY *key, enum cert_kind kind, const char *name, struct err *e)
{
	X509_REQ *req;

	if ((kind == CERT_USER ? name_check_address(name, e) : name_check_domain(name, e)) < 0 ||
	    crypto_key_check_allowed(key, e) < 0)
		return NULL;
	req = X509_REQ_new();
	if (req == NULL || X509_REQ_set_version(req, X509_REQ_VERSION_1) != 1 ||
	    X509_REQ_set_pubkey(req, key) != 1 || req_set_names(req, kind, name) < 0 ||
	    X509_REQ_sign(req, key, cert_sign_md(key)) <= 0) {
		err_set_ssl(e, ERR_INTERNAL, "internal", "cannot build the certificate request");
		X509_REQ_free(req);
		return NULL;
	}
	return req;
}

char *csr_to_pem(X509_REQ *req, struct err *e)
{
	BIO *bio;
	char *out = NULL;

	bio = BIO_new(BIO_s_mem());
	if (bio != NULL && PEM_write_bio_X509_REQ(bio, req) == 1)
		out = crypto_bio_string(bio);
	BIO_free(bio);
	if (out == NULL)
		err_set_ssl(e, ERR_INTERNAL, "internal", "cannot encode the certificate request");
	return out;
}
