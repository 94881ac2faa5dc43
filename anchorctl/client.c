/* client.c - HTTPS requests to the key server; see client.h. */
#include "client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <arpa/inet.h>

#include "http/https_client.h"

int ctl_client_init(struct err *e)
{
	return https_init(e);
}

static int host_is_loopback(const char *host, size_t len)
{
	if (len == 9 && strncasecmp(host, "localhost", 9) == 0)
		return 1;
	if (len == 5 && strncmp(host, "[::1]", 5) == 0)
		return 1;
	return len > 4 && strncmp(host, "127.", 4) == 0 && strspn(host, "0123456789.") == len;
}

int ctl_client_check_url(const char *url, struct err *e)
{
	const char *host, *end;
	int plain;

	if (strncasecmp(url, "https://", 8) == 0)
		plain = 0;
	else if (strncasecmp(url, "http://", 7) == 0)
		plain = 1;
	else
		return err_set(e, ERR_INPUT, "bad_url", "key server URL '%s' is not https://", url);
	host = url + (plain ? 7 : 8);
	if (*host == '[')
		end = strchr(host, ']') ? strchr(host, ']') + 1 : host + strlen(host);
	else
		end = host + strcspn(host, ":/");
	if (end == host || strpbrk(url, " ?#@") != NULL)
		return err_set(e, ERR_INPUT, "bad_url", "key server URL '%s' is malformed", url);
	if (plain && !host_is_loopback(host, (size_t)(end - host)))
		return err_set(e, ERR_INPUT, "bad_url",
		               "plain http is allowed to a loopback address only; use https://");
	return 0;
}

/* The host (without brackets) and port of an http(s) URL already checked. */
static void url_host_port(const char *url, char *host, size_t size, long *port)
{
	int plain = strncasecmp(url, "http://", 7) == 0;
	const char *h = url + (plain ? 7 : 8), *end;
	size_t n;

	if (*h == '[') {
		h++;
		end = h + strcspn(h, "]");
	} else {
		end = h + strcspn(h, ":/");
	}
	n = (size_t)(end - h) < size ? (size_t)(end - h) : size - 1;
	memcpy(host, h, n);
	host[n] = '\0';
	if (*end == ']')
		end++;
	*port = *end == ':' ? strtol(end + 1, NULL, 10) : plain ? 80 : 443;
}

int ctl_client_check_resolve(const char *resolve, const char *url, struct err *e)
{
	char host[256], want[256], addr[64];
	const char *c1 = strchr(resolve, ':'), *c2 = c1 != NULL ? strchr(c1 + 1, ':') : NULL;
	unsigned char buf[16];
	long port, want_port;
	char *end;
	size_t alen;

	if (c1 == NULL || c2 == NULL || c1 == resolve || (size_t)(c1 - resolve) >= sizeof(host))
		return err_set(
		    e, ERR_INPUT, "bad_resolve",
		    "--resolve takes HOST:PORT:ADDR, e.g. mx.example.com:10443:127.0.0.1");
	memcpy(host, resolve, (size_t)(c1 - resolve));
	host[c1 - resolve] = '\0';
	port = strtol(c1 + 1, &end, 10);
	if (end != c2 || port < 1 || port > 65535)
		return err_set(e, ERR_INPUT, "bad_resolve", "--resolve: '%.*s' is not a port",
		               (int)(c2 - c1 - 1), c1 + 1);
	alen = strlen(c2 + 1);
	if (alen > 2 && c2[1] == '[' && c2[alen] == ']')
		snprintf(addr, sizeof(addr), "%.*s", (int)(alen - 2), c2 + 2);
	else
		snprintf(addr, sizeof(addr), "%s", c2 + 1);
	if (alen >= sizeof(addr) ||
	    (inet_pton(AF_INET, addr, buf) != 1 && inet_pton(AF_INET6, addr, buf) != 1))
		return err_set(e, ERR_INPUT, "bad_resolve",
		               "--resolve: '%s' is not an IPv4 or IPv6 address", c2 + 1);
	url_host_port(url, want, sizeof(want), &want_port);
	if (strcasecmp(host, want) != 0 || port != want_port)
		return err_set(
		    e, ERR_INPUT, "bad_resolve",
		    "--resolve names %s:%ld but the URL %s is %s:%ld: it would not be used", host,
		    port, url, want, want_port);
	return 0;
}

static enum err_kind kind_of_status(long status)
{
	switch (status) {
	case 400:
		return ERR_INPUT;
	case 401:
		return ERR_AUTH;
	case 403:
		return ERR_FORBIDDEN;
	case 404:
		return ERR_NOTFOUND;
	case 405:
		return ERR_INPUT;
	case 409:
		return ERR_CONFLICT;
	case 410:
		return ERR_GONE;
	case 413:
		return ERR_TOOBIG;
	case 415:
		return ERR_MEDIA;
	case 422:
		return ERR_UNPROC;
	case 429:
		return ERR_RATE;
	case 502:
	case 503:
	case 504:
		return ERR_TEMP;
	default:
		return status >= 400 && status < 500 ? ERR_INPUT : ERR_INTERNAL;
	}
}

/* Codes and messages come from the network: keep terminal control bytes out. */
static void printable(char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < ' ' || *s == 0x7f)
			*s = '?';
}

void ctl_client_error_from_body(long status, const char *body, size_t len, const char *reqid,
                                struct err *e)
{
	json_t *root = body != NULL ? json_loadb(body, len, 0, NULL) : NULL;
	const char *code = json_string_value(json_object_get(root, "error"));
	const char *msg = json_string_value(json_object_get(root, "message"));
	char codebuf[ERR_CODE_MAX];

	if (code == NULL || *code == '\0') {
		snprintf(codebuf, sizeof(codebuf), "http_%ld", status);
		code = codebuf;
	}
	if (msg == NULL || *msg == '\0')
		err_set(e, kind_of_status(status), code, "the key server answered HTTP %ld",
		        status);
	else if (status >= 500 && reqid != NULL && *reqid != '\0')
		err_set(e, kind_of_status(status), code, "%s (request id %s)", msg, reqid);
	else
		err_set(e, kind_of_status(status), code, "%s", msg);
	printable(e->code);
	printable(e->msg);
	json_decref(root);
}

/* A transport failure of the shared client as anchorctl's codes (anchorctl(1) EXIT
 * STATUS): timeout, tls, network, bad_response. */
static void transport_error(struct err *e)
{
	char msg[sizeof(e->msg)];

	if (strncmp(e->code, "fetch_", 6) != 0)
		return; /* out of memory and the like: as it is */
	snprintf(msg, sizeof(msg), "%s", e->msg);
	if (strcmp(e->code, "fetch_timeout") == 0)
		err_set(e, ERR_TEMP, "timeout", "%s", msg);
	else if (strcmp(e->code, "fetch_tls") == 0)
		err_set(e, ERR_INPUT, "tls", "%s", msg);
	else if (strcmp(e->code, "fetch_too_big") == 0)
		err_set(e, ERR_INTERNAL, "bad_response", "the key server's answer is too large");
	else
		err_set(e, ERR_TEMP, "network", "%s", msg);
}

static int parse_answer(const struct https_reply *resp, json_t **out, struct err *e)
{
	json_error_t jerr;

	if (resp->status < 200 || resp->status >= 300) {
		ctl_client_error_from_body(resp->status, resp->body, resp->len, resp->request_id,
		                           e);
		return -1;
	}
	if (resp->len == 0) {
		*out = NULL;
		return 0;
	}
	*out = json_loadb(resp->body, resp->len, 0, &jerr);
	if (*out == NULL)
		return err_set(e, ERR_INTERNAL, "bad_response",
		               "the key server's answer is not JSON (%s)", jerr.text);
	return 0;
}

int ctl_client_call(const struct ctl_client *c, const char *method, const char *path, json_t *body,
                    json_t **out, struct err *e)
{
	const char *const basic[] = {c->basic, NULL};
	/* TLS policy, timeouts and user agent as every client of the tree has them; plain
	 * http:// only for the loopback URL ctl_client_check_url allows. */
	const struct https_opts o = {.cacert = c->cacert,
	                             .token = c->token,
	                             .connect_timeout_ms = (int)CTL_CLIENT_CONNECT_TIMEOUT * 1000,
	                             .timeout_ms = (int)CTL_CLIENT_TIMEOUT * 1000,
	                             .user_agent = "anchorctl/1",
	                             .allow_http = strncasecmp(c->base_url, "http://", 7) == 0,
	                             .any_status = 1,
	                             .resolve = c->resolve,
	                             .max_response = CTL_CLIENT_MAX_RESPONSE,
	                             .headers = c->basic != NULL ? basic : NULL};
	struct https_reply resp = {0};
	size_t blen = strlen(c->base_url);
	char *url = NULL, *text = NULL;
	int ret = -1;

	*out = NULL;
	if (ctl_client_check_url(c->base_url, e) < 0 ||
	    (c->resolve != NULL && ctl_client_check_resolve(c->resolve, c->base_url, e) < 0))
		return -1;
	while (blen > 0 && c->base_url[blen - 1] == '/')
		blen--;
	if (asprintf(&url, "%.*s%s", (int)blen, c->base_url, path) < 0) {
		url = NULL;
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		goto out;
	}
	if (body != NULL && (text = json_dumps(body, JSON_COMPACT)) == NULL) {
		err_set(e, ERR_INTERNAL, "internal", "cannot encode the request");
		goto out;
	}
	if (https_request(method, url, &o, "application/json", text, text ? strlen(text) : 0, &resp,
	                  e) < 0)
		transport_error(e);
	else
		ret = parse_answer(&resp, out, e);
out:
	if (text != NULL) {
		/* Request bodies can carry tokens and the issuer's private key. */
		explicit_bzero(text, strlen(text));
		free(text);
	}
	https_reply_clear(&resp); /* wiped: answers can carry an admin token */
	free(url);
	return ret;
}
