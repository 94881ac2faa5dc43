/*
 * direct_json.c - a direct endpoint's request members and published form.  Every
 * member is checked here, once, before anything is stored: the host is a name or an
 * IP literal (never an address inside the server's own networks unless the operator
 * allows it), the pin a SHA-256 in the routes' format, and the expiry inside the
 * server's maximum lifetime.
 */
#include "direct_json.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/ipaddr.h"
#include "pki/name.h"

static int bad(struct err *e, const char *what)
{
	return err_set(e, ERR_INPUT, "bad_direct", "%s", what);
}

static int members_known(json_t *p, struct err *e)
{
	static const char *const known[] = {"type", "address", "issued", "host",
	                                    "port", "pin",     "expires"};
	const char *key;
	json_t *v;

	json_object_foreach(p, key, v)
	{
		size_t k = 0;
		while (k < sizeof(known) / sizeof(known[0]) && strcmp(known[k], key) != 0)
			k++;
		if (k == sizeof(known) / sizeof(known[0]))
			return err_set(e, ERR_INPUT, "bad_direct",
			               "a direct registration has no member \"%.40s\" "
			               "(host, port, pin, expires)",
			               key);
	}
	return 0;
}

static int pin_ok(const char *pin)
{
	size_t len = 0;
	uint8_t *raw;

	if (pin == NULL || strncmp(pin, "sha256:", 7) != 0 || strlen(pin) >= 64)
		return 0;
	raw = crypto_b64_decode(pin + 7, &len);
	free(raw);
	return raw != NULL && len == 32;
}

static int localhost_name(const char *h)
{
	size_t n = strlen(h);

	return strcmp(h, "localhost") == 0 || (n > 10 && strcmp(h + n - 10, ".localhost") == 0);
}

static int host_parse(const char *host, const struct ks_direct_limits *lim, struct ks_direct *out,
                      struct err *e)
{
	struct err ne = {0};
	int priv;

	if (host == NULL || *host == '\0' || strlen(host) >= sizeof(out->host))
		return bad(e, "\"host\" must be a host name or an IP address");
	for (size_t i = 0; i <= strlen(host); i++)
		out->host[i] = (char)tolower((unsigned char)host[i]);
	priv = ipaddr_is_private(out->host);
	if (priv < 0 && name_check_domain(out->host, &ne) < 0)
		return err_set(e, ERR_INPUT, "bad_direct", "\"host\": %s", ne.msg);
	if (!lim->allow_private && (priv == 1 || (priv < 0 && localhost_name(out->host))))
		return err_set(e, ERR_INPUT, "private_host",
		               "%s is a loopback or private address; this key server takes "
		               "only public hosts",
		               out->host);
	return 0;
}

int ks_direct_parse(json_t *payload, long long now, const struct ks_direct_limits *lim,
                    struct ks_direct *out, struct err *e)
{
	json_t *port = json_object_get(payload, "port"), *exp = json_object_get(payload, "expires");
	const char *pin = json_string_value(json_object_get(payload, "pin"));

	memset(out, 0, sizeof(*out));
	out->log_seq = -1;
	if (!json_is_object(payload))
		return bad(e, "a direct registration is a JSON object");
	if (members_known(payload, e) < 0 ||
	    host_parse(json_string_value(json_object_get(payload, "host")), lim, out, e) < 0)
		return -1;
	if (!json_is_integer(port) || json_integer_value(port) < 1 ||
	    json_integer_value(port) > 65535)
		return bad(e, "\"port\" must be a whole number from 1 to 65535");
	out->port = (int)json_integer_value(port);
	if (!pin_ok(pin))
		return bad(e, "\"pin\" must be sha256: and the base64 SHA-256 of the key "
		              "(SubjectPublicKeyInfo) the daemon presents in TLS");
	snprintf(out->pin, sizeof(out->pin), "%s", pin);
	if (!json_is_integer(exp))
		return bad(e, "\"expires\" must be a time in Unix seconds");
	out->expires = json_integer_value(exp);
	if (out->expires < now + KS_DIRECT_MIN_LIFETIME || out->expires > now + lim->max_lifetime)
		return err_set(e, ERR_INPUT, "bad_direct",
		               "\"expires\" must lie from %d seconds to %lld seconds from now",
		               KS_DIRECT_MIN_LIFETIME, lim->max_lifetime);
	return 0;
}

json_t *ks_direct_json(const struct ks_direct *dr)
{
	char expires[32];
	time_t t = (time_t)dr->expires;
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(expires, sizeof(expires), "%Y-%m-%dT%H:%M:%SZ", &tm);
	return json_pack("{s:s, s:i, s:s, s:s}", "host", dr->host, "port", dr->port, "pin", dr->pin,
	                 "expires", expires);
}
