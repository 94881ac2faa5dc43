/*
 * name.c - the name checks used wherever a domain or address arrives; see name.h.
 *
 * The checks are deliberately narrower than DNS and RFC 5322 allow: lowercase
 * LDH labels in A-label form and dot-atom local parts, the names a certificate
 * can carry and a relying party can compare byte for byte.  Callers lowercase
 * before checking; uppercase here means somebody forgot.
 */
#include "core/text.h"
#include "core/utf8.h"
#include "pki/name.h"

#include <ctype.h>
#include <idn2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unicase.h>
#include <unictype.h>
#include <uninorm.h>
#include <unistr.h>

#define DOMAIN_MAX 253
#define LABEL_MAX 63
#define ADDRESS_MAX 254
#define LOCAL_MAX 64

static int is_ldh(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

/* A printable rendering of an offending character for a message. */
static const char *show_char(char c, char buf[8])
{
	unsigned char u = (unsigned char)c;

	if (isprint(u) && u < 0x80)
		snprintf(buf, 8, "'%c'", c);
	else
		snprintf(buf, 8, "0x%02x", u);
	return buf;
}

/*
 * An xn-- label must be the A-label of a valid U-label (IDNA2008, RFC 5891 §5.4): libidn2
 * decodes it and encodes it back, and only the same label is accepted.  Without this,
 * "xn--" followed by anything would be a second spelling no U-label maps to.
 */
static int check_alabel(const char *label, size_t len, struct err *e)
{
	char in[LABEL_MAX + 1];
	char *out = NULL;
	int rc;

	memcpy(in, label, len);
	in[len] = '\0';
	rc = idn2_to_ascii_8z(in, &out, IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL);
	if (rc == IDN2_OK && strcmp(out, in) != 0)
		rc = IDN2_ALABEL_ROUNDTRIP_FAILED;
	idn2_free(out);
	if (rc != IDN2_OK)
		return err_set(e, ERR_INPUT, "bad_name",
		               "the label %s of the domain name is not a valid IDNA A-label (%s)",
		               in, idn2_strerror(rc));
	return 0;
}

static int check_label(const char *label, size_t len, struct err *e)
{
	char cbuf[8];
	size_t i;

	if (len == 0)
		return err_set(e, ERR_INPUT, "bad_name",
		               "the domain name has an empty label (two dots in a row, or a "
		               "leading or trailing dot)");
	if (len > LABEL_MAX)
		return err_set(e, ERR_INPUT, "bad_name",
		               "the domain name has a label of %zu octets; at most %d are allowed",
		               len, LABEL_MAX);
	for (i = 0; i < len; i++) {
		if (label[i] >= 'A' && label[i] <= 'Z')
			return err_set(e, ERR_INPUT, "bad_name",
			               "the domain name must be in lowercase");
		if (!is_ldh(label[i]))
			return err_set(e, ERR_INPUT, "bad_name",
			               "the domain name contains %s; only letters, digits and "
			               "hyphens are allowed (IDNs in their xn-- form)",
			               show_char(label[i], cbuf));
	}
	if (label[0] == '-' || label[len - 1] == '-')
		return err_set(e, ERR_INPUT, "bad_name",
		               "a label of the domain name starts or ends with a hyphen");
	/* "??--" is reserved for IDNA encodings, of which only "xn--" exists. */
	if (len >= 4 && label[2] == '-' && label[3] == '-' && strncmp(label, "xn", 2) != 0)
		return err_set(e, ERR_INPUT, "bad_name",
		               "a label of the domain name has hyphens in the third and fourth "
		               "positions but is not an xn-- label");
	if (len >= 4 && strncmp(label, "xn--", 4) == 0)
		return check_alabel(label, len, e);
	return 0;
}

int name_check_domain(const char *name, struct err *e)
{
	const char *label, *dot, *tld;
	size_t len, i;

	if (name == NULL || name[0] == '\0')
		return err_set(e, ERR_INPUT, "bad_name", "the domain name is empty");
	len = strlen(name);
	if (len > DOMAIN_MAX)
		return err_set(e, ERR_INPUT, "bad_name",
		               "the domain name is %zu octets long; at most %d are allowed", len,
		               DOMAIN_MAX);
	if (name[len - 1] == '.')
		return err_set(e, ERR_INPUT, "bad_name",
		               "write the domain name without a trailing dot");
	if (strchr(name, '.') == NULL)
		return err_set(e, ERR_INPUT, "bad_name",
		               "the domain name must have at least two labels (like example.com)");
	for (label = name;; label = dot + 1) {
		dot = strchr(label, '.');
		if (check_label(label, dot ? (size_t)(dot - label) : strlen(label), e) < 0)
			return -1;
		if (dot == NULL)
			break;
	}
	/* An all-digit last label would make "192.0.2.1" a domain. */
	tld = strrchr(name, '.') + 1;
	for (i = 0; tld[i] >= '0' && tld[i] <= '9'; i++)
		;
	if (tld[i] == '\0')
		return err_set(e, ERR_INPUT, "bad_name",
		               "the last label of the domain name is all digits; IP addresses are "
		               "not domain names");
	return 0;
}

/* RFC 5322 atext, lowercase only (names here are canonical). */
static int is_lower_atext(char c)
{
	return text_is_atext((unsigned char)c) && !(c >= 'A' && c <= 'Z');
}

/*
 * The canonical form of a local part: ASCII letters and every other letter lowercased
 * by the Unicode default (language-neutral) mapping, then NFC (RFC 6532 §3.1).  A
 * malloc'ed string of *outlen octets, or NULL when s is not well-formed UTF-8 or
 * memory ran out (utf8_valid tells which).
 */
static uint8_t *local_canon(const char *s, size_t len, size_t *outlen)
{
	if (!utf8_valid((const unsigned char *)s, len))
		return NULL;
	return u8_tolower((const uint8_t *)s, len, NULL, UNINORM_NFC, NULL, outlen);
}

/*
 * A non-ASCII local part (RFC 6531 §3.3): well-formed UTF-8 (no overlong form, no
 * surrogate, nothing past U+10FFFF); no control, format (bidi overrides, zero-width
 * joiners), private-use, unassigned or separator code point, which would print as
 * nothing or as another name; and already in the canonical form of local_canon.
 */
static int check_local_utf8(const char *local, size_t len, struct err *e)
{
	const uint8_t *p = (const uint8_t *)local, *end = p + len;
	size_t clen = 0;
	uint8_t *canon;
	int same;

	if (!utf8_valid(p, len))
		return err_set(e, ERR_INPUT, "bad_name",
		               "the local part of the address is not well-formed UTF-8");
	while (p < end) {
		ucs4_t uc;
		int n = u8_mbtouc(&uc, p, (size_t)(end - p));

		if (uc >= 0x80 &&
		    uc_is_general_category_withtable(uc, UC_CATEGORY_MASK_C | UC_CATEGORY_MASK_Z))
			return err_set(e, ERR_INPUT, "bad_name",
			               "the local part of the address holds U+%04X, a control, "
			               "format, separator, private-use or unassigned code point",
			               (unsigned)uc);
		p += n;
	}
	if ((canon = local_canon(local, len, &clen)) == NULL)
		return err_set(e, ERR_INTERNAL, "internal", "out of memory");
	same = clen == len && memcmp(canon, local, len) == 0;
	free(canon);
	if (!same)
		return err_set(e, ERR_INPUT, "bad_name",
		               "the local part of the address is not in canonical form (lowercase, "
		               "Unicode NFC)");
	return 0;
}

static int check_local(const char *local, size_t len, struct err *e)
{
	char cbuf[8];
	size_t i;
	int utf8 = 0;

	if (len == 0)
		return err_set(e, ERR_INPUT, "bad_name", "the address has an empty local part");
	if (len > LOCAL_MAX)
		return err_set(
		    e, ERR_INPUT, "bad_name",
		    "the local part of the address is %zu octets; at most %d are allowed", len,
		    LOCAL_MAX);
	if (local[0] == '"')
		return err_set(e, ERR_INPUT, "bad_name",
		               "quoted local parts are not supported; use a dot-atom address such "
		               "as alice@example.com");
	if (local[0] == '.' || local[len - 1] == '.')
		return err_set(e, ERR_INPUT, "bad_name",
		               "the local part of the address starts or ends with a dot");
	for (i = 0; i < len; i++) {
		if (local[i] == '.') {
			if (local[i + 1] == '.')
				return err_set(
				    e, ERR_INPUT, "bad_name",
				    "the local part of the address has two dots in a row");
			continue;
		}
		if (local[i] >= 'A' && local[i] <= 'Z')
			return err_set(e, ERR_INPUT, "bad_name",
			               "the address must be in lowercase");
		if ((unsigned char)local[i] >= 0x80) {
			utf8 = 1;
			continue;
		}
		if (!is_lower_atext(local[i]))
			return err_set(
			    e, ERR_INPUT, "bad_name",
			    "the local part of the address contains %s, which a dot-atom "
			    "does not allow",
			    show_char(local[i], cbuf));
	}
	return utf8 ? check_local_utf8(local, len, e) : 0;
}

int name_check_address(const char *addr, struct err *e)
{
	const char *at;
	size_t len;

	if (addr == NULL || addr[0] == '\0')
		return err_set(e, ERR_INPUT, "bad_name", "the address is empty");
	len = strlen(addr);
	if (len > ADDRESS_MAX)
		return err_set(e, ERR_INPUT, "bad_name",
		               "the address is %zu octets long; at most %d are allowed", len,
		               ADDRESS_MAX);
	if (addr[0] == '"')
		return check_local(addr, len, e);
	at = strchr(addr, '@');
	if (at == NULL)
		return err_set(e, ERR_INPUT, "bad_name",
		               "the address has no '@'; write it as local@domain");
	if (strchr(at + 1, '@') != NULL)
		return err_set(e, ERR_INPUT, "bad_name", "the address has more than one '@'");
	if (check_local(addr, (size_t)(at - addr), e) < 0)
		return -1;
	return name_check_domain(at + 1, e);
}

int name_in_domain(const char *host, const char *domain)
{
	size_t hl, dl;

	if (host == NULL || domain == NULL || domain[0] == '\0')
		return 0;
	hl = strlen(host);
	dl = strlen(domain);
	if (hl == dl)
		return strcmp(host, domain) == 0;
	return hl > dl + 1 && host[hl - dl - 1] == '.' && strcmp(host + hl - dl, domain) == 0;
}

static int has_8bit(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s >= 0x80)
			return 1;
	return 0;
}

/*
 * A domain holding U-labels, in place, into A-labels: IDNA2008 lookup with the UTS #46
 * non-transitional mapping (case folded, NFC, "ß" kept), through libidn2.  Labels
 * already in A-label form pass through and are checked by name_check_domain.
 */
static int to_alabels(char *name, size_t size, struct err *e)
{
	char *ascii = NULL;
	int rc;

	if (!utf8_valid((const unsigned char *)name, strlen(name)))
		return err_set(e, ERR_INPUT, "bad_name",
		               "the domain name is not well-formed UTF-8");
	rc = idn2_to_ascii_8z(name, &ascii, IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL);
	if (rc != IDN2_OK)
		return err_set(e, ERR_INPUT, "bad_name",
		               "the domain name is not a valid internationalised name (%s)",
		               idn2_strerror(rc));
	if (strlen(ascii) >= size || strlen(ascii) > DOMAIN_MAX) {
		idn2_free(ascii);
		return err_set(e, ERR_INPUT, "bad_name",
		               "the domain name is longer than %d octets in A-label form",
		               DOMAIN_MAX);
	}
	memcpy(name, ascii, strlen(ascii) + 1);
	idn2_free(ascii);
	return 0;
}

static int canon_domain(const char *in, char *out, size_t size, int idn, struct err *e)
{
	size_t len = in != NULL ? strlen(in) : 0, i;

	if (size == 0)
		return err_set(e, ERR_INTERNAL, "internal", "no room for a domain name");
	out[0] = '\0';
	if (len > 0 && in[len - 1] == '.')
		len--; /* the root label: "example.com." is example.com */
	if (len > DOMAIN_MAX || len >= size)
		return err_set(e, ERR_INPUT, "bad_name",
		               "the domain name is %zu octets long; at most %d are allowed", len,
		               DOMAIN_MAX);
	for (i = 0; i < len; i++)
		out[i] = (char)(in[i] >= 'A' && in[i] <= 'Z' ? in[i] + ('a' - 'A') : in[i]);
	out[len] = '\0';
	if (idn && has_8bit(out) && to_alabels(out, size, e) < 0) {
		out[0] = '\0';
		return -1;
	}
	if (name_check_domain(out, e) < 0) {
		out[0] = '\0';
		return -1;
	}
	return 0;
}

int name_canon_domain(const char *in, char *out, size_t size, struct err *e)
{
	return canon_domain(in, out, size, 0, e);
}

int name_canon_idn(const char *in, char *out, size_t size, struct err *e)
{
	return canon_domain(in, out, size, 1, e);
}

int name_canon_address(const char *in, char *out, size_t size, struct err *e)
{
	const char *at = in != NULL ? strrchr(in, '@') : NULL;
	char domain[DOMAIN_MAX + 1];
	uint8_t *local = NULL;
	size_t llen = 0;
	int n;

	if (size > 0)
		out[0] = '\0';
	if (in == NULL || in[0] == '\0')
		return err_set(e, ERR_INPUT, "bad_name", "the address is empty");
	if (at == NULL)
		return err_set(e, ERR_INPUT, "bad_name",
		               "the address has no '@'; write it as local@domain");
	if (name_canon_idn(at + 1, domain, sizeof(domain), e) < 0)
		return -1;
	if ((local = local_canon(in, (size_t)(at - in), &llen)) == NULL)
		return utf8_valid((const unsigned char *)in, (size_t)(at - in))
		           ? err_set(e, ERR_INTERNAL, "internal", "out of memory")
		           : err_set(e, ERR_INPUT, "bad_name",
		                     "the local part of the address is not well-formed UTF-8");
	n = snprintf(out, size, "%.*s@%s", (int)llen, (const char *)local, domain);
	free(local);
	if (n < 0 || (size_t)n >= size || memchr(out, '\0', (size_t)n) != NULL) {
		if (size > 0)
			out[0] = '\0';
		return err_set(e, ERR_INPUT, "bad_name",
		               "the address is longer than %d octets in canonical form",
		               ADDRESS_MAX);
	}
	if (name_check_address(out, e) < 0) {
		out[0] = '\0';
		return -1;
	}
	return 0;
}

int name_is_ascii(const char *s)
{
	return s != NULL && !has_8bit(s);
}

int name_is_ascii_n(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] >= 0x80)
			return 0;
	return 1;
}
