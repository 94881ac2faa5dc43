/*
 * dnstools.h - anchor-dns(1): records, discover, check, validate.
 *
 * main.c parses the command line into struct dt_opts and calls one of the
 * dt_cmd_* functions, each of which returns the exit status: 0 ok, 1 error,
 * 2 usage.
 */
#ifndef ANCHOR_DNSTOOLS_H
#define ANCHOR_DNSTOOLS_H

#include <jansson.h>

#include "dns/discover.h"
#include "dns/dns.h"
#include "core/err.h"

#define DT_MAX_LIST 32

struct dt_opts {
	const char *server;       /* -s URL: the key server to read the domain's objects from */
	const char *cacert;       /* --cacert */
	const char *resolver;     /* --resolver */
	const char *trust_anchor; /* --trust-anchor */
	const char *token_file;   /* --token-file */
	const char *token;        /* read from token_file or ANCHOR_ADMIN_TOKEN; never printed */
	int timeout_ms;
	int json;
	/* records */
	const char *keyservers[DT_MAX_LIST];
	int nkeyservers;
	const char *smimea[DT_MAX_LIST];
	int nsmimea;
	const char *extra_pins[DNS_MAX_PINS];
	int nextra_pins;
	const char *mode;     /* --mode, NULL: the domain object's */
	int tlsa;             /* --tlsa: from the TLS handshake */
	const char *tls_cert; /* --tls-cert FILE */
	long ttl;
	/* discover */
	int count; /* --count N: repeat in one process (cache warm after the first) */
	/* validate */
	const char *qtype; /* --type, NULL: TXT */
};

int dt_cmd_records(const struct dt_opts *o, const char *domain);
int dt_cmd_discover(const struct dt_opts *o, const char *target);
int dt_cmd_check(const struct dt_opts *o, const char *domain);
int dt_cmd_validate(const struct dt_opts *o, const char *name);

/* Shared helpers (util.c). */
void dt_error(const struct err *e);
struct discover_ctx *dt_discover_ctx(const struct dt_opts *o, int no_cache, struct err *e);
/* GET path from the key server at base_url (or host:port when base_url is NULL). */
json_t *dt_get_json(const struct dt_opts *o, const char *base_url, const char *host, uint16_t port,
                    const char *ip, const char *path, const char *token, char **peer_cert_pem,
                    struct err *e);
/* An IP address for host from the resolver, "" when it does not know (the system will). */
void dt_resolve_host(struct dns_resolver *res, const char *host, char *ip, size_t size);
/* The id= token: short hash of the published objects. */
void dt_records_id(json_t *domain_obj, json_t *servers, char out[DNS_ID_MAX]);
/* Current server certificates of servers JSON ({"servers": [...]}) as X509s. */
int dt_print_json(json_t *doc); /* prints and decrefs; returns 0 */

#endif
