/* dns_txt.c - the _anchor TXT record: "v=ANCHOR1; pin=sha256:<b64>; mode=...; id=..." */
#include "dns/dns.h"

#include <stdlib.h>
#include <string.h>

#define TAG_NAME_MAX 32
#define TAGS_MAX 32

const char *dns_mode_name(enum dns_mode mode)
{
	return mode == DNS_MODE_TESTING ? "testing" : "enforce";
}

int dns_mode_parse(const char *name, enum dns_mode *out)
{
	if (name != NULL && strcmp(name, "enforce") == 0)
		*out = DNS_MODE_ENFORCE;
	else if (name != NULL && strcmp(name, "testing") == 0)
		*out = DNS_MODE_TESTING;
	else
		return -1;
	return 0;
}

static int is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static int is_tag_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-';
}

static int is_id_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-' || c == '.' || c == '+' || c == '/' || c == '=';
}

/* Trim blanks from both ends of [*s, *end). */
static void trim(const char **s, const char **end)
{
	while (*s < *end && is_blank(**s))
		(*s)++;
	while (*end > *s && is_blank((*end)[-1]))
		(*end)--;
}

static int parse_pin(const char *v, size_t vlen, struct dns_anchor_txt *out, struct err *e)
{
	char text[CRYPTO_PIN_MAX];
	const char *colon = memchr(v, ':', vlen);
	uint8_t *digest;
	size_t dlen = 0;
	int i;

	if (colon == NULL)
		return err_set(
		    e, ERR_INPUT, "txt_bad_pin",
		    "pin= must be \"sha256:\" followed by base64 of the root key's SHA-256");
	if ((size_t)(colon - v) != 6 || strncmp(v, "sha256", 6) != 0)
		return err_set(e, ERR_INPUT, "pin_algorithm",
		               "pin= uses the digest algorithm \"%.*s\"; only sha256 is defined",
		               (int)((colon - v) > 16 ? 16 : (colon - v)), v);
	if (vlen >= sizeof(text))
		return err_set(e, ERR_INPUT, "txt_bad_pin",
		               "pin= is %zu characters long; a SHA-256 pin has 51", vlen);
	memcpy(text, v, vlen);
	text[vlen] = '\0';
	digest = crypto_b64_decode(text + 7, &dlen);
	if (digest == NULL)
		return err_set(e, ERR_INPUT, "txt_bad_pin",
		               "pin= is not canonical padded base64 after \"sha256:\"");
	free(digest);
	if (dlen != 32)
		return err_set(e, ERR_INPUT, "txt_bad_pin",
		               "pin= holds a %zu-octet digest; SHA-256 has 32 octets", dlen);
	for (i = 0; i < out->npins; i++)
		if (strcmp(out->pins[i], text) == 0)
			return 0; /* the same pin twice says nothing new */
	if (out->npins >= DNS_MAX_PINS)
		return err_set(e, ERR_INPUT, "txt_too_many_pins",
		               "the record has more than %d pins", DNS_MAX_PINS);
	memcpy(out->pins[out->npins++], text, vlen + 1);
	return 0;
}

static int parse_tag(const char *name, const char *v, size_t vlen, struct dns_anchor_txt *out,
                     struct err *e)
{
	char mode[16];

	if (strcmp(name, "pin") == 0)
		return parse_pin(v, vlen, out, e);
	if (strcmp(name, "mode") == 0) {
		if (vlen >= sizeof(mode) || (memcpy(mode, v, vlen), mode[vlen] = '\0',
		                             dns_mode_parse(mode, &out->mode) < 0))
			return err_set(e, ERR_INPUT, "txt_bad_mode",
			               "mode= is \"%.*s\"; it must be enforce or testing",
			               (int)(vlen > 32 ? 32 : vlen), v);
		return 0;
	}
	if (strcmp(name, "id") == 0) {
		size_t i;

		if (vlen == 0 || vlen >= DNS_ID_MAX)
			return err_set(e, ERR_INPUT, "txt_bad_id", "id= must be 1 to %d characters",
			               DNS_ID_MAX - 1);
		for (i = 0; i < vlen; i++)
			if (!is_id_char(v[i]))
				return err_set(e, ERR_INPUT, "txt_bad_id",
				               "id= may hold only letters, digits and _-.+/=");
		memcpy(out->id, v, vlen);
		out->id[vlen] = '\0';
		return 0;
	}
	if (strcmp(name, "v") == 0)
		return err_set(e, ERR_INPUT, "txt_duplicate_tag", "v= appears more than once");
	out->unknown_tags++;
	return 0;
}

int dns_txt_is_anchor(const char *text, size_t len)
{
	while (len > 0 && is_blank(*text))
		text++, len--;
	return len >= 8 && strncmp(text, "v=ANCHOR", 8) == 0;
}

int dns_txt_parse(const char *text, size_t len, struct dns_anchor_txt *out, struct err *e)
{
	char seen[TAGS_MAX][TAG_NAME_MAX];
	const char *p = text, *end = text + len;
	int nseen = 0, first = 1, i;

	memset(out, 0, sizeof(*out));
	out->mode = DNS_MODE_ENFORCE;
	if (len > DNS_TXT_MAX)
		return err_set(e, ERR_INPUT, "txt_syntax", "the record is %zu octets; at most %d",
		               len, DNS_TXT_MAX);
	for (i = 0; i < (int)len; i++)
		if ((unsigned char)text[i] < 0x20 || (unsigned char)text[i] > 0x7e)
			return err_set(e, ERR_INPUT, "txt_syntax",
			               "the record holds a non-printable octet at offset %d", i);
	while (p < end) {
		const char *semi = memchr(p, ';', (size_t)(end - p));
		const char *tend = semi ? semi : end, *ts = p, *eq, *ne, *vs;
		char name[TAG_NAME_MAX];
		size_t nlen;

		p = semi ? semi + 1 : end;
		trim(&ts, &tend);
		if (ts == tend)
			continue; /* empty tag, e.g. after a trailing ';' */
		eq = memchr(ts, '=', (size_t)(tend - ts));
		if (eq == NULL)
			return err_set(e, ERR_INPUT, "txt_syntax",
			               "\"%.*s\" is not a tag=value pair",
			               (int)(tend - ts > 32 ? 32 : tend - ts), ts);
		ne = eq;
		trim(&ts, &ne);
		nlen = (size_t)(ne - ts);
		if (nlen == 0 || nlen >= sizeof(name))
			return err_set(e, ERR_INPUT, "txt_syntax",
			               "a tag has an empty or long name");
		for (i = 0; i < (int)nlen; i++)
			if (!is_tag_char(ts[i]))
				return err_set(e, ERR_INPUT, "txt_syntax",
				               "a tag name holds the character '%c'", ts[i]);
		memcpy(name, ts, nlen);
		name[nlen] = '\0';
		vs = eq + 1;
		trim(&vs, &tend);
		if (first) {
			if (strcmp(name, "v") != 0)
				return err_set(e, ERR_INPUT, "txt_version",
				               "the record must start with v=ANCHOR1");
			if (tend - vs != 7 || strncmp(vs, "ANCHOR1", 7) != 0)
				return err_set(
				    e, ERR_INPUT, "txt_version",
				    "unknown version \"%.*s\"; this client knows ANCHOR1",
				    (int)(tend - vs > 16 ? 16 : tend - vs), vs);
			first = 0;
			continue;
		}
		if (strcmp(name, "pin") != 0) {
			for (i = 0; i < nseen; i++)
				if (strcmp(seen[i], name) == 0)
					return err_set(e, ERR_INPUT, "txt_duplicate_tag",
					               "the tag %s= appears more than once", name);
			if (nseen == TAGS_MAX)
				return err_set(e, ERR_INPUT, "txt_syntax", "too many tags");
			memcpy(seen[nseen++], name, nlen + 1);
		}
		if (parse_tag(name, vs, (size_t)(tend - vs), out, e) < 0)
			return -1;
	}
	if (first)
		return err_set(e, ERR_INPUT, "txt_version",
		               "the record is empty; expected v=ANCHOR1");
	if (out->npins == 0)
		return err_set(e, ERR_INPUT, "txt_no_pin", "the record has no pin=sha256:... tag");
	return 0;
}

char *dns_txt_rr_text(const ldns_rr *rr, size_t *len)
{
	size_t total = 0, i, n = ldns_rr_rd_count(rr);
	char *out;

	for (i = 0; i < n; i++) {
		const ldns_rdf *rdf = ldns_rr_rdf(rr, i);

		if (ldns_rdf_get_type(rdf) != LDNS_RDF_TYPE_STR || ldns_rdf_size(rdf) < 1)
			return NULL;
		total += ldns_rdf_size(rdf) - 1;
	}
	out = malloc(total + 1);
	if (out == NULL)
		return NULL;
	total = 0;
	for (i = 0; i < n; i++) {
		const uint8_t *d = ldns_rdf_data(ldns_rr_rdf(rr, i));
		size_t l = d[0] < ldns_rdf_size(ldns_rr_rdf(rr, i))
		               ? d[0]
		               : ldns_rdf_size(ldns_rr_rdf(rr, i)) - 1;

		memcpy(out + total, d + 1, l);
		total += l;
	}
	out[total] = '\0';
	if (len != NULL)
		*len = total;
	return out;
}
