/*
 * name.c - the name checks used wherever a domain or address arrives; see name.h.
 *
 * The checks are deliberately narrower than DNS and RFC 5322 allow: lowercase
 * LDH labels in A-label form and dot-atom local parts, the names a certificate
 * can carry and a relying party can compare byte for byte.  Callers lowercase
 * before checking; uppercase here means somebody forgot.
 */
#include "core/text.h"
#include "pki/name.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

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

static int check_local(const char *local, size_t len, struct err *e)
{
	char cbuf[8];
	size_t i;

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
		if (!is_lower_atext(local[i]))
			return err_set(
			    e, ERR_INPUT, "bad_name",
			    "the local part of the address contains %s, which a dot-atom "
			    "does not allow",
			    show_char(local[i], cbuf));
	}
	return 0;
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

int name_canon_domain(const char *in, char *out, size_t size, struct err *e)
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
	if (name_check_domain(out, e) < 0) {
		out[0] = '\0';
		return -1;
	}
	return 0;
}
