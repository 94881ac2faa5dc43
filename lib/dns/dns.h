/*
 * dns.h - the DNS side of the anchor (DESIGN.md §3, PROTOCOL.md §8), over ldns.
 *
 *   dns_txt_*      the _anchor TXT record: parse and check (dns_txt.c)
 *   dns_srv_*      RFC 2782 ordering of SRV targets (dns_srv.c)
 *   dns_resolver_* queries with CNAME chasing, error mapping and DNSSEC
 *                  validation from a configured trust anchor, the root's or a
 *                  zone's (dns_resolve.c, dns_dnssec.c, dns_verdict.c)
 *   dns_records_*  the records a domain publishes, built as ldns RRs (dns_records.c)
 *
 * Functions return 0 (or a pointer) on success, -1 (or NULL) with *e filled.
 * ldns objects handed back are owned by the caller unless said otherwise.
 */
#ifndef ANCHOR_DNS_H
#define ANCHOR_DNS_H

#include <stddef.h>
#include <stdint.h>

#include <ldns/ldns.h>

#include "pki/crypto.h"
#include "core/err.h"

#define DNS_NAME_MAX 256 /* presentation form with the trailing dot, + NUL */
#define DNS_MAX_PINS 8   /* pins in one _anchor TXT record */
#define DNS_ID_MAX 65    /* id= token */
#define DNS_TXT_MAX 4096 /* longest _anchor TXT text accepted */
#define DNS_CNAME_MAX 8  /* CNAME hops followed before giving up */

/* ------------------------------------------------------------------ TXT */

enum dns_mode { DNS_MODE_ENFORCE = 0, DNS_MODE_TESTING };

const char *dns_mode_name(enum dns_mode mode);
int dns_mode_parse(const char *name, enum dns_mode *out);

struct dns_anchor_txt {
	enum dns_mode mode;
	int npins;
	char pins[DNS_MAX_PINS][CRYPTO_PIN_MAX]; /* "sha256:<b64>", canonical */
	char id[DNS_ID_MAX];                     /* "" when absent */
	int unknown_tags;                        /* tags ignored for forward compatibility */
};

/*
 * Parse "v=ANCHOR1; pin=sha256:<b64>; [pin=...;] mode=enforce|testing; [id=<token>]".
 * text[0..len) need not be NUL-terminated.  Tags are separated by ';' with
 * optional blanks; v= must come first.  Errors (ERR_INPUT): txt_syntax,
 * txt_version, txt_no_pin, txt_bad_pin, pin_algorithm, txt_duplicate_tag,
 * txt_bad_mode, txt_too_many_pins, txt_bad_id.  Unknown tags are counted and
 * ignored (forward compatibility) but may not repeat either; mode= is optional
 * and defaults to enforce, the stricter reading.  A pin repeated verbatim is
 * kept once.
 */
int dns_txt_parse(const char *text, size_t len, struct dns_anchor_txt *out, struct err *e);

/* The character-strings of a TXT RR concatenated (RFC 7208 §3.3); malloc'd, NUL-terminated. */
char *dns_txt_rr_text(const ldns_rr *rr, size_t *len);

/* True when the text claims to be an anchor record (starts with "v=ANCHOR"). */
int dns_txt_is_anchor(const char *text, size_t len);

/* ------------------------------------------------------------------ SRV */

struct dns_srv {
	char target[DNS_NAME_MAX]; /* without the trailing dot, lowercase */
	uint16_t priority;
	uint16_t weight;
	uint16_t port;
	uint32_t ttl;
};

/* Uniform random number in [0, bound); bound > 0. */
typedef uint32_t (*dns_rand_fn)(void *ctx, uint32_t bound);
uint32_t dns_rand_uniform(void *ctx, uint32_t bound); /* OpenSSL RAND based */

/*
 * Order srv[0..n) in place for trying: ascending priority, and within one
 * priority a weighted random order (RFC 2782): each next entry is drawn with
 * probability weight / (sum of the remaining weights); entries of weight 0
 * come after the weighted ones unless all are 0 (then uniform).  A single
 * record whose target is "." means "no service" (srv_no_service); "." mixed
 * with real targets is srv_bad_target.  rnd NULL means dns_rand_uniform.
 */
int dns_srv_order(struct dns_srv *srv, size_t n, dns_rand_fn rnd, void *ctx, struct err *e);

/* Fill *out from an SRV RR; rejects a malformed RR (srv_malformed). */
int dns_srv_from_rr(const ldns_rr *rr, struct dns_srv *out, struct err *e);

/* ------------------------------------------------------------------ resolver */

enum dns_sec { DNS_SEC_UNVALIDATED = 0, DNS_SEC_SECURE, DNS_SEC_INSECURE, DNS_SEC_BOGUS };
const char *dns_sec_name(enum dns_sec s);

struct dns_resolver;

/*
 * server: "ADDR[:PORT]" or "[ADDR6]:PORT" (port 53 by default); NULL or "" uses
 * the first nameserver of /etc/resolv.conf.  trust_anchor_file: DS and/or
 * DNSKEY records in master-file form, the root's (/usr/share/dns/root.key)
 * and/or zone apexes' (the closest above a name is used), or NULL: answers
 * are then "unvalidated".  timeout_ms per query (>= 100), within
 * which a query unanswered over UDP is sent again, then asked over TCP.
 */
struct dns_resolver *dns_resolver_new(const char *server, const char *trust_anchor_file,
                                      int timeout_ms, struct err *e);
void dns_resolver_free(struct dns_resolver *r);
int dns_resolver_has_anchor(const struct dns_resolver *r);
/* Round trips made so far (thread-safe counter). */
unsigned dns_resolver_queries(const struct dns_resolver *r);
/* Of those, how many were asked again (over UDP, then TCP) for want of an answer. */
unsigned dns_resolver_retries(const struct dns_resolver *r);

struct dns_answer {
	char qname[DNS_NAME_MAX];      /* asked, no trailing dot */
	char final_name[DNS_NAME_MAX]; /* after CNAMEs */
	ldns_rr_type type;
	int nxdomain; /* name does not exist */
	int nodata;   /* name exists, no record of the type */
	ldns_rr_list
	    *rrs;     /* the records of the type at final_name, owned (never NULL on success) */
	uint32_t ttl; /* smallest TTL of the answer (or the SOA minimum on a negative answer) */
	int cnames;   /* CNAME hops followed */
	enum dns_sec sec;
	char sec_why[200]; /* why the validator said so */
};

/*
 * Ask for name/type.  A negative answer (NXDOMAIN, NODATA) is success with
 * the flag set.  Errors (ERR_TEMP unless said): dns_timeout, dns_servfail,
 * dns_refused, dns_rcode, dns_truncated, dns_cname_loop (ERR_UNPROC),
 * dns_cname_chain (too long), dns_bad_name (ERR_INPUT).  A bogus answer is
 * NOT an error here: sec says so, and callers refuse it.
 */
int dns_query(struct dns_resolver *r, const char *name, ldns_rr_type type, struct dns_answer *out,
              struct err *e);
void dns_answer_clear(struct dns_answer *a);

/*
 * The packet-interpretation half of dns_query, exported for unit tests: read
 * the answer to qname/type from pkt, following CNAMEs present in the packet.
 * Returns 0 with next_name set ("" when done, else the CNAME target the
 * packet does not answer); out->cnames counts the hops, and a name seen twice
 * in one chain is dns_cname_loop.  A packet with the TC bit is dns_truncated;
 * SERVFAIL/REFUSED/other rcodes map as for dns_query.
 */
int dns_answer_from_pkt(const ldns_pkt *pkt, const char *qname, ldns_rr_type type,
                        struct dns_answer *out, char *next_name, size_t next_size, struct err *e);

/* Canonical form of a host name: lowercase, no trailing dot; ERR_INPUT dns_bad_name. */
int dns_name_canon(const char *in, char *out, size_t size, struct err *e);

/* ------------------------------------------------------------------ records */

struct dns_keyserver {
	char host[DNS_NAME_MAX];
	uint16_t port, priority, weight;
};

/* "host:port[:priority:weight]" (priority 10, weight 10 by default). */
int dns_keyserver_parse(const char *text, struct dns_keyserver *out, struct err *e);

struct dns_records_input {
	const char *domain;
	uint32_t ttl;
	enum dns_mode mode;
	const char *const *pins; /* root pins, in order */
	int npins;
	const char *id; /* id= value, or NULL */
	const struct dns_keyserver *keyservers;
	int nkeyservers;
	/* Current server certificates: purpose "mta" -> CSA, "signing" -> DKIM. */
	struct dns_server_cert {
		const char *purpose;
		const char *name; /* host name from the certificate object */
		X509 *cert;
	} * servers;
	int nservers;
	/* SMIMEA: one per (address, certificate). */
	struct dns_smimea {
		const char *address;
		X509 *cert;
	} * smimea;
	int nsmimea;
	X509 *tlsa_cert; /* key server TLS certificate, or NULL */
};

/* DKIM selector for a signing certificate name (first label, or "anchor" for the apex). */
int dns_dkim_selector(const char *cert_name, const char *domain, char *out, size_t size);

/*
 * Build the record set.  Warnings (a signing key DKIM cannot express, ...)
 * are appended to *notes as "; "-separated text (malloc'd, may stay NULL).
 */
ldns_rr_list *dns_records_build(const struct dns_records_input *in, char **notes, struct err *e);

/* TXT RR with text split into character-strings of at most 255 octets. */
ldns_rr *dns_records_txt(const char *owner, uint32_t ttl, const char *text, struct err *e);

/* The _anchor TXT text for pins/mode/id. */
char *dns_records_anchor_text(const char *const *pins, int npins, enum dns_mode mode,
                              const char *id);

/* DKIM TXT text for a public key (Ed25519 raw per RFC 8463, RSA SPKI); NULL for other keys. */
char *dns_records_dkim_text(EVP_PKEY *key, struct err *e);

/* SMIMEA owner: hex(SHA-256(local part))[0..56] "._smimecert." domain (RFC 8162 §3). */
int dns_records_smimea_owner(const char *address, char *out, size_t size, struct err *e);

/* One RR as JSON-friendly parts: owner, ttl, class, type, rdata (all malloc'd into *out). */
char *dns_rr_to_string(const ldns_rr *rr);

#endif
