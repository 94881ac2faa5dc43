/*
 * relay.h - anchor-relay, the paired SMTP relay (see anchor-relay(8) and
 * PROTOCOL.md §12).
 *
 * Two processes, as OpenSMTPD keeps its keys in the "ca" process:
 *   - the signer (signer.c), forked at start, the only holder of private
 *     keys; it answers signing requests on a Unix socket;
 *   - the relay proper: one libevent loop for every socket (server.c) and a
 *     pool of worker threads (pool.c) for what blocks or burns CPU (DNS and
 *     key-server lookups, DKIM verification, signing requests, deliveries).
 *
 *   main.c        arguments, settings, forking the signer, the loop, signals
 *   settings.c    the one table of parameters and their checks
 *   pool.c        worker threads whose results come back to the loop
 *   server.c      listeners, accepting within the limits, the TLS context
 *   conn.c        one connection's lifetime (references), bytes <->
 *                 lib/mail/smtp_session, STARTTLS, replies, its envelope
 *   auth.c        SMTP AUTH on the submission side: the users table, the check
 *   inbound.c     the inbound pipeline: reputation at connect/HELO, local
 *                 recipients, verify -> tier -> headers -> queue
 *   outbound.c    the outbound pipeline: sign -> queue
 *   txn.c         trace fields; queueing a message, answered once durable
 *   txn_dsn.c     a transaction's DSN parameters (RFC 3461) on their way to the queue
 *   scheduler.c   due recipients -> deliveries -> queue_mark, bounces
 *   deliver.c     the SMTP/LMTP client (blocking, run on a worker)
 *   deliver_conn.c  its connection: deadlines, connecting, TLS and pins
 *   deliver_resume.c  outbound TLS sessions kept per destination and resumed
 *   route.c       where an outbound recipient goes (lib/resolve, MX fallback)
 *   bounce.c      delivery status notifications (RFC 3464): failed, delayed, relayed
 *   dsn_notice.c  which reports NOTIFY asks for, queued (signed) to the sender
 *   tls_optional.c  "TLS-Required: No" (RFC 8689 §5): the anchored TLS policy dropped
 *   signer.c      the signer process; signer_client.c its client,
 *                 signer_proto.c their wire format, signer_keyfile.c key files
 *   verify.c      DKIM verification with anchored and legacy keys
 *   verify_net.c  the verifier's network: discovery, key servers, DNS TXT
 *   author.c      what the signatures say of the authors; the refusal rule
 *   authres.c     Authentication-Results (RFC 8601) and the tier header
 *   tier.c        trusted / known / unknown
 *   lists.c       recipients' trust, block and subscription lists
 *   pow.c         proof-of-work stamps (hashcash)
 *   reputation.c  the reputation service: queries (cached) and reports
 *   rep_trace.c   the relay's own trace fields of a message, for reports
 *   control.c     the HTTPS control API (lists, spam complaints, signing, decisions)
 *   control_signed.c  requests a recipient signs with its own key
 *   partial_*.c   receiver-chosen transfer between anchored relays (partial.h)
 *   peers.c       who is an anchored peer: the key of its certificate (peers.h)
 *
 * Every exported name starts with relay_.
 */
#ifndef ANCHOR_RELAY_H
#define ANCHOR_RELAY_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "core/conf.h"
#include "mail/dkim.h"
#include "core/err.h"
#include "pki/tls_policy.h"
#include "mail/queue.h"

/* ------------------------------------------------------------------ settings */

struct relay_settings {
	char *hostname;           /* greeting, EHLO, Received, authserv-id default */
	char *authserv_id;        /* Authentication-Results authserv-id; unset: hostname */
	char *inbound_listen;     /* "127.0.0.1:2525": mail from the Internet */
	char *submission_listen;  /* "127.0.0.1:10027": mail from the local MTA to sign */
	char *submission_auth;    /* "none" (trusted local MTA) or "required" (SMTP AUTH) */
	char *submission_users;   /* "address:crypt-hash" lines for SMTP AUTH (0600) */
	char *control_listen;     /* "127.0.0.1:10443": the HTTPS control API; "" off */
	char *control_token_hash; /* SHA-256 hex of the admin bearer token; unset: no admin */
	char *state_dir;          /* spool/in, spool/out, lists/, pow/, signer socket */
	char *tls_cert_file;      /* STARTTLS and control API certificate chain (PEM) */
	char *tls_key_file;
	struct tls_policy_conf tls; /* tls_profile, tls_ciphers, tls_groups: every listener */
	char *local_domains;        /* comma-separated domains mail is accepted for inbound */
	long long max_message_size;
	long long max_rcpts;
	long long max_connections;
	long long max_connections_per_ip;
	long long control_max_connections_per_ip; /* control API connections from one address */
	long long control_request_timeout;        /* control API: seconds to the first request */
	long long idle_timeout;
	long long workers;

	/* the signer (only the signer process opens these files) */
	char *signing_keys;         /* "domain:selector:keyfile[,...]" */
	char *user_keys_dir;        /* "<address>.key" files: users' own keys; unset: none */
	char *report_key;           /* key of the reporter's signing certificate */
	char *report_chain;         /* its certificate, the issuer, the root (PEM) */
	char *gateway_decrypt_keys; /* "domain:keyfile:certfile[,...]": inbound decryption */

	/* verification and discovery */
	char *dns_server;       /* "ADDR[:PORT]"; unset: /etc/resolv.conf */
	char *dns_trust_anchor; /* DS/DNSKEY file for DNSSEC; unset: unvalidated */
	char *keyserver_cacert; /* CA for key servers' HTTPS; unset: system */
	long long lookup_timeout_ms;
	long long key_cache_ttl;         /* seconds a fetched key is reused */
	long long key_status_ttl;        /* seconds a signer's key status is reused (certauth) */
	long long key_status_cache_size; /* status answers kept */

	/* reputation */
	char *reputation_url; /* https://host:port; unset: no reputation checks */
	char *reputation_cacert;
	long long reputation_timeout_ms;
	long long reputation_cache_ttl;
	char *reputation_on_error; /* "open" (accept) or "closed" (4xx) */
	char *reporter_domain;     /* our domain, as the reports' "reporter" */
	char *own_networks;        /* our servers' addresses/prefixes: complaints skip their hops */
	char *own_hosts;           /* our other servers' names (their Received fields are ours) */

	/* tiers */
	long long pow_bits;   /* hashcash difficulty */
	long long pow_window; /* seconds a stamp's date may lie in the past */
	char *tier_header;    /* "X-Anchor-Tier" */
	char *unknown_folder; /* "" : header only; "Junk": rcpt local+Junk@domain */
	char *recipient_delimiter;

	/* delivery */
	char *inbound_next_hop; /* "lmtp:HOST:PORT", "smtp:HOST:PORT" or "lmtp:unix:/path" */
	int verify_recipients;  /* ask the next hop at RCPT time whether it takes the recipient */
	long long verify_cache_ttl; /* seconds an answer of the next hop is reused */
	long long smtp_port;        /* port for MX (legacy) deliveries; 25 */
	char *outbound_tls;         /* legacy peers: "may" (opportunistic) or "encrypt" */
	int direct_allow_private;   /* direct endpoints on loopback/private addresses: tests */
	int smtp_chunking;          /* BDAT to a next hop that offers CHUNKING (RFC 3030) */
	long long connect_timeout;
	long long command_timeout;
	long long data_timeout;
	long long connection_idle_time;   /* seconds a session is kept for the next message */
	long long connection_reuse_limit; /* most messages per delivery session */
	long long backoff_base;
	long long backoff_max;
	long long queue_lifetime;
	long long
	    encryption_defer_time; /* a `required` recipient without certificate: returned after */
	char *refuse_unencrypted; /* inbound plain mail to a `required` domain: no, anchored, all */
	/* the anchored relays we peer with (peers.c): ANCHOR-DEFER, ANCHOR-PARTIAL, FETCH */
	char *anchored_peers; /* "name=sha256:pin[,...]": peers by the key of their TLS cert */
	int anchored_client;  /* present tls_cert_file as our TLS client certificate */
	/* deferred disposition between anchored relays (defer.c) */
	char *defer_recipients;       /* addresses/@domains whose mail from peers is held */
	char *defer_tiers;            /* tiers whose mail from peers is held ("unknown") */
	long long defer_min_interval; /* the offered window: ask no sooner than this apart */
	long long defer_max_interval; /* ... and no later */
	long long defer_hold_time;    /* a held message without a decision expires after */

	/* receiver-chosen transfer (partial_*.c) */
	char *partial_tiers;           /* "unknown" or "": tiers that get a view first */
	char *partial_view;            /* headers, signers, hash, text or full */
	long long partial_keep_time;   /* seconds a sent view's message is kept; 0: no views */
	char *partial_fetch_address;   /* where receivers FETCH; unset: inbound_listen */
	long long held_sweep_interval; /* held_sweep.c: held/kept copies past their time go */

	char *port_file; /* "inbound=N submission=N control=N" lines, for tests */
	char *log_level;
	int syslog;
};

extern const struct conf_param relay_settings_table[];
/* Checks the settings; an empty optional value ("name =") becomes unset. */
int relay_settings_check(struct relay_settings *s, struct err *e);
/* 1 when domain (any case) is one of local_domains. */
/* 1 when want is one of the comma-separated, blank-trimmed items of list (any case). */
int relay_list_has(const char *list, const char *want);
int relay_is_local_domain(const struct relay_settings *s, const char *domain);
/* The partial_* settings and anchored_peers' syntax (partial_view.c, peers.c). */
int relay_partial_settings_check(const struct relay_settings *s, struct err *e);

/* ------------------------------------------------------------------ worker pool */

struct event_base;
struct relay_pool;

/* work(arg) runs on a worker thread, then done(arg) on the loop's thread. */
typedef void (*relay_work_fn)(void *arg);

struct relay_pool *relay_pool_new(struct event_base *base, int nthreads, struct err *e);
int relay_pool_run(struct relay_pool *p, relay_work_fn work, relay_work_fn done, void *arg,
                   struct err *e);
/* done(arg) on the loop's thread, from any thread (a queue commit, say). */
int relay_pool_post(struct relay_pool *p, relay_work_fn done, void *arg, struct err *e);
/* Runs the queued work and stops the workers; done() callbacks wait for relay_pool_free.
 * NULL is fine. */
void relay_pool_stop(struct relay_pool *p);
/* Stops the workers after the queued work; every done() runs first.  NULL is fine. */
void relay_pool_free(struct relay_pool *p);

/* ------------------------------------------------------------------ signer */

struct relay_signer_client;

/*
 * The signer process: forked by main before any thread starts.  It opens
 * the key files named by the settings, listens on socket_path (created 0600
 * in a 0700 directory) and serves until its parent goes away (it exits when
 * the parent's end of ppipe_fd closes).  Returns the exit status.
 */
int relay_signer_main(const struct relay_settings *s, const char *socket_path, int parent_fd);

/* Thread-safe client: a small pool of connections to the signer. */
struct relay_signer_client *relay_signer_client_new(const char *socket_path, struct err *e);
void relay_signer_client_free(struct relay_signer_client *c);

/* 1 when the signer holds a domain key for domain, 0 when not, -1 on error. */
int relay_signer_has_domain(struct relay_signer_client *c, const char *domain, struct err *e);

/*
 * The DKIM-Signature fields for msg (wire form, CRLF): the domain signature
 * of the sender's domain and, when the signer holds the user's key, a
 * second one with i=<user>.  *fields is malloc'd, each field followed by
 * CRLF, ready to prepend.  ERR_NOTFOUND "no_signing_key" when the signer
 * has no key for the domain.
 */
int relay_signer_sign(struct relay_signer_client *c, const char *msg, size_t len,
                      const char *domain, const char *user, char **fields, struct err *e);

/* Gateway decryption (signer_decrypt.c, PROTOCOL.md §12.11): msg decrypted by the signer
 * with a key of domain (gateway_decrypt_keys); *plain (malloc'd) the inner entity and
 * fpr the certificate that opened it.  ERR_NOTFOUND "no_decryption_key" when the signer
 * has none for domain; smime.h's codes otherwise. */
int relay_signer_decrypt(struct relay_signer_client *c, const char *domain, const char *msg,
                         size_t len, char **plain, size_t *plen, char fpr[80], struct err *e);

/* A flattened JWS of payload (JSON text) with typ, signed with the report key,
 * x5c = the report chain; malloc'd. */
int relay_signer_sign_jws(struct relay_signer_client *c, const char *payload, const char *typ,
                          char **jws, struct err *e);

/* ------------------------------------------------------------------ verification */

#define RELAY_ADDR_MAX 320

enum relay_key_source { RELAY_KEY_NONE = 0, RELAY_KEY_DNS, RELAY_KEY_ANCHOR, RELAY_KEY_USER };

/* One DKIM-Signature's verdict, with where its key came from. */
struct relay_sig {
	struct dkim_result r;
	enum relay_key_source source;
	char user[RELAY_ADDR_MAX]; /* RELAY_KEY_USER: the address its certificate names */
};

/* The authors of a message (its From field, RFC 5322 §3.6.2; mailaddr.c). */
#define RELAY_AUTHORS_MAX 16 /* mailboxes read from one From field; more is an error */

struct relay_author {
	char addr[RELAY_ADDR_MAX]; /* lowercase; a local part that needs quotes is quoted */
	char domain[256];          /* lowercase, no trailing dot, LDH (A-labels) */
	/* what relay_verify_message found for the domain */
	int verified;  /* a passing, aligned signature (not t=y, not cut short by l=) */
	int anchored;  /* the domain publishes an anchor (discovered) */
	int testing;   /* ... in mode=testing */
	int temperror; /* an aligned signature could not be checked now */
	/* discovery failed (DNS timeout or SERVFAIL, key server unreachable, a pin that does
	 * not verify): whether the domain enforces is unknown, so its unsigned mail is
	 * deferred, never taken as a legacy domain's (an attacker who can break the lookup
	 * must not win a bypass of enforce mode) */
	int undiscovered;
};

struct relay_authors {
	size_t n;
	struct relay_author a[RELAY_AUTHORS_MAX];
};

struct relay_auth {
	struct relay_sig *sigs; /* top to bottom */
	size_t nsigs;
	/* Every author; none when from_error says why they cannot be told. */
	struct relay_authors authors;
	char from_error[ERR_MSG_MAX];
	/* The author when there is exactly one (else ""), for tiers, lists and logs. */
	char from_addr[RELAY_ADDR_MAX]; /* lowercase */
	char from_domain[256];          /* lowercase, no trailing dot */
	/* a passing signature whose d= is the From domain (or a parent of it), for every
	 * author */
	int domain_verified;
	int domain_anchored;     /* ... whose key came from the anchored key server */
	int user_verified;       /* a passing user signature whose i= is from_addr */
	int sender_anchored;     /* an author domain publishes an anchor (discovered) */
	int sender_mode_testing; /* ... and every anchored author domain says mode=testing */
	/* Set by the caller before relay_verify_message, which keeps it: the message came
	 * with SMTPUTF8, so its header fields may hold UTF-8 addresses (RFC 6532). */
	int smtputf8;
	/* Set by relay_verify_view: the verdicts are on a view (partial_in.c), whose body is
	 * not the signed one: the signatures' bh= was not compared, everything else was. */
	int headers_only;
	char why[200]; /* a short summary for logs */
};

struct relay_verifier;

struct relay_verifier *relay_verifier_new(const struct relay_settings *s, struct err *e);
void relay_verifier_free(struct relay_verifier *v);

/* Thread-safe, blocking.  Verifies every signature; fills *out (relay_auth_clear).
 * Returns -1 only when the message cannot be read at all (e says why). */
int relay_verify_message(struct relay_verifier *v, const char *msg, size_t len,
                         struct relay_auth *out, struct err *e);
void relay_auth_clear(struct relay_auth *a);
/* The same for a view of a message (PROTOCOL.md §12.12): bh= is not compared. */
int relay_verify_view(struct relay_verifier *v, const char *msg, size_t len, struct relay_auth *out,
                      struct err *e);

/* author.c, for verify.c: the authors of a split message into a (from_error when
 * they cannot be told); then, once a->sigs is filled, what the signatures say of
 * each author domain, whether it publishes an anchor (asked through net), and
 * a->why. */
void relay_auth_authors(const struct dkim_msg *m, struct relay_auth *a);
struct relay_verify_net;
void relay_auth_conclude(struct relay_auth *a, const struct relay_verify_net *net);

/* How a message must be answered after DATA, given its verdict. */
struct relay_refusal {
	int code;       /* 550 or 451 */
	char status[8]; /* RFC 3463 */
	char text[200];
};
/*
 * 1 and *out when the message must be refused (or deferred): its authors cannot
 * be told (no From field, several, unreadable: 550 5.7.1), an author domain
 * anchored in mode=enforce is not verified (550 5.7.1, or 451 4.7.5 while its
 * signature cannot be checked), or the From field names several authors
 * (550 5.7.1).  0 when it may be delivered.
 */
int relay_auth_refusal(const struct relay_auth *a, struct relay_refusal *out);

/*
 * A From field's value (after the colon) as the list of its mailboxes
 * (mailbox-list, with the obsolete forms of RFC 5322 §4.4): each address
 * lowercase, each domain canonical (dns_name_canon, name_check_domain).  -1
 * (ERR_INPUT "from_unreadable", e->msg says why) for anything else: a group,
 * a domain literal, a non-ASCII address, a control character, text where
 * the grammar has none, no mailbox; *out is then empty.
 */
int relay_authors_parse(const char *value, size_t len, struct relay_authors *out, struct err *e);
/* The same; utf8 set for a message that came with SMTPUTF8 (RFC 6532): UTF-8 addresses
 * are read, in the canonical form of pki/name (domain in A-labels). */
int relay_authors_parse_opt(const char *value, size_t len, int utf8, struct relay_authors *out,
                            struct err *e);
/* The authors of a message (as dkim_msg_parse leaves it, m.buf: the fields the
 * signatures cover): its one From field (lib/mail/header), parsed.  ERR_INPUT
 * "from_missing", "from_several", "from_unreadable", "bad_header" (a malformed
 * header line) or "bad_field_name" (a field name that is not printable ASCII: it
 * may read as From elsewhere). */
int relay_message_authors(const char *msg, size_t len, struct relay_authors *out, struct err *e);
/* The same; utf8: SMTPUTF8 (every header value must be well-formed UTF-8 then). */
int relay_message_authors_opt(const char *msg, size_t len, int utf8, struct relay_authors *out,
                              struct err *e);
/* The address of the single author of msg, lowercase; -1 with addr "" when the
 * message has no such author (none, several, unreadable). */
int relay_from_address(const char *msg, size_t len, int utf8, char *addr, size_t size);
/* The domain of an address: the part after the last '@' ("" when none). */
const char *relay_addr_domain(const char *addr);

/*
 * Where the verifier's keys come from: DNS, discovery and the key servers.
 * relay_verifier_new sets the real ones; unit tests replace them
 * (relay_verifier_set_net) to run every check of verify.c offline.
 *   discover       as discover_domain() (*out always set, caller frees)
 *   keyserver_get  GET path from d's key servers: *body malloc'd (NUL-terminated);
 *                  ERR_NOTFOUND for a 404, ERR_TEMP when none answers
 *   dns_txt        the TXT record at name, strings concatenated (malloc'd);
 *                  ERR_NOTFOUND when there is none, ERR_TEMP on timeouts
 */
struct discover_result;
struct relay_verify_net {
	int (*discover)(void *ctx, const char *domain, struct discover_result **out, struct err *e);
	int (*keyserver_get)(void *ctx, const struct discover_result *d, const char *path,
	                     char **body, struct err *e);
	int (*dns_txt)(void *ctx, const char *name, char **text, struct err *e);
	void *ctx;
};
void relay_verifier_set_net(struct relay_verifier *v, const struct relay_verify_net *net);
/* The real network over dctx (verify_net.c). */
struct discover_ctx;
void relay_verify_net_real(struct relay_verify_net *net, struct discover_ctx *dctx);
/* For gateway encryption (encrypt_policy.c): the checks of a certificate object of d
 * (chain to the pinned root, log inclusion, a head consistent with those seen, the
 * logged purpose; not revocation), and the verifier's network. */
struct json_t;
struct x509_st;
int relay_verifier_check_cert(struct relay_verifier *v, const struct discover_result *d,
                              const struct json_t *cert, const char *head_text, const char *purpose,
                              struct x509_st **leaf, struct err *e);
const struct relay_verify_net *relay_verifier_net(const struct relay_verifier *v);
/* Forget every cached key (tests; a key rollover seen early). */
void relay_verifier_flush(struct relay_verifier *v);

/* The s= of a signature by a user's own key (i= the address); see verify.c. */
#define RELAY_USER_SELECTOR "anchor-user"

/* ------------------------------------------------------------------ netlist.c */

/* A comma-separated list of addresses and CIDR prefixes ("127.0.0.1, 10.0.0.0/8, ::1"):
 * 0 when every item is one, else ERR_INPUT bad_config naming setting and the item. */
int relay_netlist_check(const char *setting, const char *list, struct err *e);
/* 1 when ip (text) is in one of the list's prefixes. */
int relay_netlist_match(const char *list, const char *ip);

/* ------------------------------------------------------------------ reputation */

enum relay_rep_verdict {
	RELAY_REP_UNKNOWN = 0,
	RELAY_REP_KNOWN,
	RELAY_REP_TRUSTED,
	RELAY_REP_BLOCK
};

struct relay_rep_answer {
	enum relay_rep_verdict verdict;
	char csa[16];     /* "pass", "fail", "none", ... ("" when not asked) */
	char reason[200]; /* printable, for the 5xx text and the logs */
};

struct relay_rep;

struct relay_rep *relay_rep_new(const struct relay_settings *s, struct err *e);
void relay_rep_free(struct relay_rep *r);
/* 1 when a reputation service is configured. */
int relay_rep_enabled(const struct relay_rep *r);
/* Thread-safe, blocking, cached.  -1 when the service cannot answer (outage,
 * timeout, garbage): the caller applies reputation_on_error. */
int relay_rep_query(struct relay_rep *r, const char *ip, const char *helo, const char *domain,
                    struct relay_rep_answer *out, struct err *e);
/* What a report named (rep_report.c): its subjects ("ip:...", "helo:...", "signer:...",
 * "domain:..."), and whether a hop outside our own servers was found (external; 0 for a
 * message that never left them, own_hops hops of ours skipped). */
#define RELAY_REP_MAX_SUBJECTS 8
struct relay_rep_reported {
	char subjects[RELAY_REP_MAX_SUBJECTS][320];
	int nsubjects;
	int external;
	int own_hops;
};
/* A recipient's complaint about msg: a signed report (category "spam" or
 * "not-spam") built from the message and the relay's own trace fields, POSTed to the
 * service; what it named in *out (may be NULL).  Blocking. */
int relay_rep_report(struct relay_rep *r, struct relay_signer_client *sc, const char *msg,
                     size_t len, const char *category, struct relay_rep_reported *out,
                     struct err *e);

/* The JSON payload of that report (PROTOCOL.md §11.3) as observed at now, malloc'd.
 * Subjects come only from the relay's own fields (rep_trace.h): the first hop outside
 * our own servers (own_networks, our submission port; ip, helo) and the topmost
 * Authentication-Results of authserv_id (signers of passing signatures, and the From
 * domain when aligned with one of them); names of ours are never subjects.
 * ERR_INPUT "no_subjects" when there are none. */
char *relay_rep_report_payload(const struct relay_rep *r, const char *msg, size_t len,
                               const char *category, time_t now, struct err *e);
/* Seams for the tests: sign reports with fn instead of the signer process, and the
 * seconds without queries after a failure (default 5). */
typedef int (*relay_rep_sign_fn)(void *arg, const char *payload, const char *typ, char **jws,
                                 struct err *e);
void relay_rep_set_signer(struct relay_rep *r, relay_rep_sign_fn fn, void *arg);
void relay_rep_set_backoff(struct relay_rep *r, long long seconds);

/* ------------------------------------------------------------------ tiers */

enum relay_tier { RELAY_TIER_UNKNOWN = 0, RELAY_TIER_KNOWN, RELAY_TIER_TRUSTED };

enum relay_list_hit {
	RELAY_LIST_NONE = 0,
	RELAY_LIST_TRUST,
	RELAY_LIST_BLOCK,
	RELAY_LIST_SUBSCRIBED
};

struct relay_lists;

/* The lists of every recipient, kept under dir (one file per recipient,
 * replaced atomically and fsync'd).  Thread-safe. */
struct relay_lists *relay_lists_open(const char *dir, struct err *e);
void relay_lists_free(struct relay_lists *l);
/* What rcpt's lists say about a verified sender (address and/or domain; either may be ""). */
enum relay_list_hit relay_lists_check(struct relay_lists *l, const char *rcpt,
                                      const char *sender_addr, const char *sender_domain);
/* list: "trust", "block" or "subscribe"; entry: an address or "@domain" / "domain". */
int relay_lists_add(struct relay_lists *l, const char *rcpt, const char *list, const char *entry,
                    struct err *e);
int relay_lists_remove(struct relay_lists *l, const char *rcpt, const char *list, const char *entry,
                       struct err *e);
/* {"address": rcpt, "trust": [...], "block": [...], "subscribe": [...]} (JSON text, malloc'd). */
char *relay_lists_json(struct relay_lists *l, const char *rcpt, struct err *e);

struct relay_pow;

struct relay_pow *relay_pow_open(const char *dir, unsigned bits, long long window, struct err *e);
void relay_pow_free(struct relay_pow *p);
/* 1 when msg carries a valid, unspent X-Hashcash stamp for rcpt of at least
 * the configured bits (it is then spent, durably), 0 otherwise (why says
 * why: none, too few bits, expired, spent, other resource). */
int relay_pow_check(struct relay_pow *p, const char *msg, size_t len, const char *rcpt, time_t now,
                    char *why, size_t whylen);

struct relay_tier_input {
	const struct relay_auth *auth;
	enum relay_list_hit list;          /* the recipient's lists on the verified sender */
	int have_rep;                      /* the reputation service answered for the sender */
	enum relay_rep_verdict sender_rep; /* its verdict on the verified domain */
	int pow_ok;                        /* a valid proof-of-work stamp for this recipient */
};

/* The tier, and a one-line reason (for the tier header). */
enum relay_tier relay_tier_decide(const struct relay_tier_input *in, char *why, size_t whylen);
const char *relay_tier_name(enum relay_tier t);
/* The recipient as the next hop should see it: local+unknown_folder@domain for unknown
 * mail when unknown_folder is set, else rcpt (malloc'd; NULL when out of memory). */
char *relay_tier_rcpt(const struct relay_settings *s, const char *rcpt, enum relay_tier t);
/* relay_lists_check on the message's verified sender: the From address when a user
 * signature or an aligned domain signature passed, the From domain when a domain
 * signature passed (tier.c); what inbound passes as relay_tier_input.list. */
enum relay_list_hit relay_tier_lists(struct relay_lists *l, const char *rcpt,
                                     const struct relay_auth *a);

/* The Authentication-Results field (name, value, folded, no final CRLF);
 * malloc'd.  ip/helo describe the connection, csa its CSA result ("" none). */
char *relay_authres_field(const char *authserv_id, const struct relay_auth *a, const char *ip,
                          const char *helo, const char *csa, struct err *e);

/* ------------------------------------------------------------------ delivery */

struct resolve_ctx;
struct ttlcache;

enum relay_next_proto { RELAY_PROTO_SMTP = 0, RELAY_PROTO_LMTP };

/* Where to deliver: a host and port (or a Unix socket path), and the TLS rule. */
struct relay_hop {
	enum relay_next_proto proto;
	char host[256]; /* or the socket path when unix */
	int unix_socket;
	uint16_t port;
	int tls_required;   /* refuse to send without STARTTLS */
	char pin[64];       /* "sha256:..": the peer's chain must end in this root; "" none */
	int requiretls;     /* the message has REQUIRETLS (RFC 8689): see deliver.c */
	char tls_name[256]; /* name the peer certificate must carry; "" any */
};

/* tls_optional.c: the message carries "TLS-Required: No" (RFC 8689 §5): 1, else 0; and
 * the anchored servers' TLS policy dropped from hops (opportunistic TLS instead). */
int relay_tls_required_no(const char *msg, size_t len);
void relay_hops_tls_optional(struct relay_hop *hops, size_t n);

/* The outcome of one recipient. */
struct relay_rcpt_result {
	int code;                 /* SMTP reply code; 0 when never asked (connection failed) */
	char reply[512];          /* the reply text, or why it failed */
	enum queue_status status; /* DELIVERED, DEFERRED or FAILED */
	int dsn_passed;           /* the hop offered DSN and was given the parameters */
};

/*
 * One SMTP or LMTP transaction to hop for sender and rcpts (n of them), body
 * in wire form.  Blocking, thread-safe.  Fills results[n]; returns 0 when
 * the transaction ran (whatever the recipients' fates), -1 when the
 * connection could not be made or broke (every result says so, DEFERRED).
 */
int relay_deliver(const struct relay_settings *s, const struct relay_hop *hop, const char *sender,
                  const char *const *rcpts, size_t n, const char *body, size_t len,
                  struct relay_rcpt_result *results, struct err *e);

/* The DSN parameters (RFC 3461) a transaction passes on to a hop that offers DSN. */
struct relay_dsn_out {
	enum dsn_ret ret;
	const char *envid;        /* NULL: none */
	const unsigned *notify;   /* per recipient (as rcpts) */
	const char *const *orcpt; /* per recipient, NULL entries: none */
};
/* relay_deliver with DSN parameters (dsn NULL: none). */
int relay_deliver_dsn(const struct relay_settings *s, const struct relay_hop *hop,
                      const char *sender, const char *const *rcpts, size_t n,
                      const struct relay_dsn_out *dsn, const char *body, size_t len,
                      struct relay_rcpt_result *results, struct err *e);

/*
 * Ask hop whether it takes rcpt, without sending anything (Postfix's address
 * verification): EHLO/LHLO, MAIL FROM:<>, RCPT TO, QUIT.  result: 2xx
 * QUEUE_DELIVERED (taken), 4xx DEFERRED, 5xx FAILED.  -1 as relay_deliver.
 */
int relay_probe_rcpt(const struct relay_settings *s, const struct relay_hop *hop, const char *rcpt,
                     struct relay_rcpt_result *result, struct err *e);

/*
 * The hops, in order of preference, for an outbound recipient (anchored route
 * with pins and TLS required, or MX for a legacy domain); *n hops.  Aliases
 * rewrite the recipient: final_rcpt (RELAY_ADDR_MAX bytes, may be NULL) gets
 * the address to give in RCPT TO.  Errors: ERR_TEMP (DNS, key server,
 * unverifiable or expired answers: defer) or, for what retrying cannot fix,
 * ERR_NOTFOUND "no_route" and ERR_UNPROC "route_loop", "too_many_hops",
 * "bad_address" (fail); err_is_temporary() tells them apart.  addrs (NULL: none) keeps
 * hosts' addresses for their DNS TTL, at most an hour; its values are strings.
 */
int relay_route(struct resolve_ctx *rc, struct ttlcache *addrs, const struct relay_settings *s,
                const char *rcpt, struct relay_hop *hops, size_t max, size_t *n, char *final_rcpt,
                struct err *e);

/* "lmtp:HOST:PORT", "smtp:HOST[:PORT]", "HOST:PORT", "[::1]:PORT", "lmtp:[::1]:PORT",
 * "lmtp:unix:/path" (or "unix:/path", LMTP) -> *out (no TLS rule, no pin).
 * SMTP's port defaults to 25; TCP LMTP needs one.  ERR_INPUT "bad_next_hop". */
int relay_hop_parse(const char *text, struct relay_hop *out, struct err *e);

/* ---- SMTP/LMTP replies as a client reads them (smtp_reply.c) ---- */

#define RELAY_REPLY_LINE_MAX 2048 /* longest reply line accepted, LF included */
#define RELAY_REPLY_LINES_MAX 128 /* longest multiline reply accepted */
#define RELAY_REPLY_TEXT_MAX 4096

struct relay_smtp_reply {
	int code;          /* 200..599 once complete */
	char enhanced[16]; /* RFC 3463 "5.1.1" of the first line, or "" */
	int nlines;
	int done;
	/* the lines' texts (after "250-"/"250 "), joined by '\n'; bytes outside
	 * printable ASCII become '?'; truncated to fit */
	char text[RELAY_REPLY_TEXT_MAX];
};

void relay_smtp_reply_init(struct relay_smtp_reply *r);
/* One reply line (without its LF; a final CR is dropped): 1 when it ends the
 * reply, 0 when more lines follow, -1 (ERR_UNPROC "bad_reply") when malformed:
 * no 3-digit code in 200..599, a bad separator, a code differing from the
 * first line's, an over-long line, too many lines. */
int relay_smtp_reply_line(struct relay_smtp_reply *r, const char *line, size_t len, struct err *e);
/* One whole reply at the start of buf: 1 and *used when complete, 0 when more
 * bytes are needed, -1 when malformed. */
int relay_smtp_reply_parse(const char *buf, size_t len, struct relay_smtp_reply *r, size_t *used,
                           struct err *e);
/* The text on one line, continuation lines' repeated enhanced codes dropped. */
void relay_smtp_reply_oneline(const struct relay_smtp_reply *r, char *out, size_t outlen);

/* What an EHLO/LHLO reply offers. */
struct relay_smtp_caps {
	int pipelining, starttls, eightbitmime, enhancedstatuscodes, size, chunking, requiretls;
	int smtputf8;                /* RFC 6531 */
	int dsn;                     /* RFC 3461 */
	int anchor_partial;          /* ANCHOR-PARTIAL: an anchored relay (PROTOCOL.md §12.12) */
	char name[256];              /* the server's name, first word of the EHLO reply */
	unsigned long long size_max; /* SIZE's limit; 0: none given */
};
void relay_smtp_caps_parse(const struct relay_smtp_reply *ehlo, struct relay_smtp_caps *caps);

/* What a delivery status notification reports (RFC 3464 §2.3.3 Action). */
enum relay_dsn_action {
	RELAY_DSN_FAILED = 0,
	RELAY_DSN_DELAYED,
	RELAY_DSN_DELIVERED, /* final delivery (LMTP) to a hop that does not offer DSN */
	RELAY_DSN_RELAYED,   /* to an SMTP hop that does not offer DSN (RFC 3461 §6.2.2) */
};
/* A DSN (RFC 3464 multipart/report) on the recipients idx[n] of m, every one with this
 * action, to m's sender: the message attached in full for a failure with RET=FULL, else
 * its header section; Original-Envelope-Id and Original-Recipient from ENVID and ORCPT. */
char *relay_report_build(const struct relay_settings *s, const struct queue_msg *m,
                         const char *orig, size_t origlen, const size_t *idx, size_t n,
                         enum relay_dsn_action action, size_t *len, struct err *e);
/* A delivery status notification (RFC 3464) for the failed recipients of a
 * message, to its sender; malloc'd wire-form message. */
char *relay_bounce_build(const struct relay_settings *s, const struct queue_msg *m,
                         const char *orig, size_t origlen, const size_t *failed, size_t nfailed,
                         size_t *len, struct err *e);

#endif
