/*
 * client.h - anchorctl's calls to the key server (lib/http/https_client, jansson).
 *
 * The peer and its host name are always verified (against --cacert when
 * given, else the system store); there is no switch to turn that off.  Plain
 * http:// is accepted only to a loopback address, for a development server.
 * A 4xx/5xx answer becomes an err whose code and message are the server's
 * {"error", "message"}.
 */
#ifndef ANCHORCTL_CLIENT_H
#define ANCHORCTL_CLIENT_H

#include <stddef.h>

#include <jansson.h>

#include "core/err.h"

#define CTL_CLIENT_CONNECT_TIMEOUT 5L
#define CTL_CLIENT_TIMEOUT 30L
#define CTL_CLIENT_MAX_RESPONSE (8L * 1024 * 1024)

struct ctl_client {
	const char *base_url; /* "https://keys.example.com:8443" */
	const char *cacert;   /* CA file or NULL for the system store */
	const char *token;    /* bearer token or NULL; never printed */
	const char *resolve;  /* "HOST:PORT:ADDR": connect there for HOST:PORT, or NULL */
	const char *basic;    /* "Authorization: Basic <b64>" line or NULL; never printed */
};

/* Call once before any request (lib/http/https_client's https_init). */
int ctl_client_init(struct err *e);

/*
 * method and path ("/v1/...", components already escaped); body may be NULL
 * and is not consumed.  On a 2xx answer returns 0 and *out holds the parsed
 * JSON (NULL for an empty body); else -1 with e filled.
 */
int ctl_client_call(const struct ctl_client *c, const char *method, const char *path, json_t *body,
                    json_t **out, struct err *e);

/* Accept https://HOST[:PORT][/], or http:// to a loopback host. */
int ctl_client_check_url(const char *url, struct err *e);

/*
 * Check a --resolve entry against the URL it is for: "HOST:PORT:ADDR" (ADDR an
 * IPv4 address or an IPv6 one, bracketed or not), HOST and PORT those of url
 * (PORT 443 when url gives none).  The connection then goes to ADDR while TLS
 * still checks HOST, as curl --resolve does: a service whose certificate names
 * a host that DNS does not lead to is reached without touching /etc/hosts.
 */
int ctl_client_check_resolve(const char *resolve, const char *url, struct err *e);

/* The err for an error answer: the server's code and message when the body
 * is a protocol error body, else a code made from the status. */
void ctl_client_error_from_body(long status, const char *body, size_t len, const char *reqid,
                                struct err *e);

#endif
