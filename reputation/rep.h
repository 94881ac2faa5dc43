/*
 * rep.h - anchor-reputation's shared state and the seams between its parts.
 *
 *   main.c, settings.c   the daemon and its one table of parameters
 *   router.c             HTTPS resources (lib/http/http_path.c) -> handlers (handlers.h);
 *                        auth.c who asks (operator token, anchored signatures),
 *                        reply.c how an error is answered
 *   store_*.c            the store (store.h): the only SQL, one file per aggregate
 *   report.c             signed report intake (JWS by a key anchored in the
 *                        reporter's domain, found with lib/dns/discover.c); ARF
 *                        intake (arf.c parses) for registered reporters
 *   score.c              time-decayed, capped, standing-weighted aggregation
 *   query.c              answers: CSA + per-subject scores + verdict; batches; CSV
 *   delist.c             review requests and their public audit trail
 *   federation.c         the signed feed of score changes; importing a peer's
 *   dnszone.c            an RFC 5782-style DNS zone over UDP (ldns); its pure wire
 *                        half in dnszone_wire.c
 *   lib/mail/csa.c            the CSA check (Exim semantics), shared with the relay
 *
 * Subjects are typed strings: "ip:192.0.2.1", "helo:mx.example.com",
 * "domain:example.com", "signer:example.com", "key:sha256:<hex>",
 * "address:alice@example.com".  rep_subject_parse() checks and canonicalises
 * them (lowercase names, compressed IPv6).
 */
#ifndef REP_REP_H
#define REP_REP_H

#include <stdatomic.h>
#include <time.h>

#include <jansson.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "core/db.h"
#include "core/db_rw.h"
#include "core/err.h"
#include "http/http.h"
#include "pki/jws.h"

#define REP_SUBJECT_MAX 340
#define REP_NET_LEN 48   /* one network: "192.0.2.0/24", "2001:db8:1::/48" */
#define REP_NETS_PER 8   /* networks kept per reporter */
#define REP_NETS_MAX 256 /* a reporter's networks: space-separated, sorted */

enum rep_subject_kind {
	REP_IP = 0,
	REP_HELO,
	REP_DOMAIN,
	REP_SIGNER,
	REP_KEY,
	REP_ADDRESS,
};

struct rep_subject {
	enum rep_subject_kind kind;
	char value[REP_SUBJECT_MAX];     /* canonical form without the kind prefix */
	char text[REP_SUBJECT_MAX + 16]; /* "kind:value" */
};

int rep_subject_parse(const char *text, struct rep_subject *out, struct err *e);
int rep_subject_make(enum rep_subject_kind kind, const char *value, struct rep_subject *out,
                     struct err *e);

enum rep_category {
	REP_SPAM = 0,
	REP_PHISHING,
	REP_MALWARE,
	REP_ABUSE,
	REP_NOT_SPAM,
	REP_AUTH_FAIL
};
int rep_category_parse(const char *name, enum rep_category *out, struct err *e);
const char *rep_category_name(enum rep_category c);

enum rep_verdict { REP_TRUSTED = 0, REP_KNOWN, REP_UNKNOWN, REP_BLOCK };
const char *rep_verdict_name(enum rep_verdict v);

/* One report as the scoring sees it, whatever door it came in by. */
struct rep_report {
	char id[128];       /* reporter-chosen id; a repeated (reporter, id) counts once */
	char reporter[256]; /* the reporter's anchored domain */
	char reporter_net[REP_NETS_MAX]; /* the reporter's networks from its DNS (netdns.c):
	                                    "192.0.2.0/24 198.51.100.0/24", "" when none */
	struct rep_subject subjects[8];
	int nsubjects;
	enum rep_category category;
	time_t observed;       /* when the reporter saw it */
	int verified_identity; /* the subject's identity was verified by the reporter
	                          (CSA pass or an anchored signature): needed for not-spam
	                          to earn positive standing */
	char evidence[512];    /* free text or a message id, kept for delisting disputes */
	/* Per subject: the hex id of a DKIM signature in the report's quoted message that this
	 * service verified for it (evidence.c), "" when none.  Domain, signer and address
	 * subjects carry weight only with one. */
	char sig_id[8][65];
	char trap[320]; /* a spamtrap hit: the trap address the message was sent to, "" if not */
	/* Added by the daemon (zero them when filling a report): */
	char source[16]; /* "jws", "arf"; "" means "jws" */
	const char *raw; /* the JWS or ARF message as received, kept for disputes
	                    (borrowed; may be NULL) */
};

struct rep_settings;
struct rep;

/* The public id of a stored report ("ev-" and 32 hex digits): what answers cite.  It is
 * random, so that the evidence behind a verdict never names its reporter. */
#define REP_EVIDENCE_ID_MAX 40

/* Store a report and update the subjects' scores in one transaction.  Returns 1 when
 * stored (evidence_id, when not NULL, gets its public id), 0 when it was a duplicate
 * (nothing changed), -1 on error. */
int rep_report_ingest(struct rep *rep, struct db *db, const struct rep_report *r,
                      char evidence_id[REP_EVIDENCE_ID_MAX], struct err *e);

/* The score of one subject as of now. */
struct rep_score {
	double score; /* -1 (good) .. +1 (bad); 0 when nothing is known */
	double ci_low, ci_high;
	double weight; /* the decayed, capped evidence behind it */
	long reports;
	long reporters;                     /* distinct reporting domains */
	char first_seen[32], last_seen[32]; /* RFC 3339 or "" */
	enum rep_verdict verdict;
	json_t *reasons; /* array of {"code", "text", "evidence": [ids]} (owned) */
	/* The parts, for the feed, the export and the explanations: */
	double bad, good;                  /* capped, standing-weighted, decayed weights */
	double local_bad, local_good;      /* the same without imported (federation) evidence */
	int bad_reporters, good_reporters; /* distinct domains carrying weight each way */
	int bad_networks, good_networks;   /* independent networks among them (networks.c) */
	int burst;                         /* new reporters held back as a burst (0: none) */
	unsigned categories;               /* bit (1 << enum rep_category) of every category seen */
	long long decayed_at;              /* the time the weights are valid for (now) */
};

int rep_score_get(struct rep *rep, struct db *db, const struct rep_subject *s,
                  struct rep_score *out, struct err *e);
void rep_score_clear(struct rep_score *s);

/* The whole answer to a query, as JSON (the CSA check included when ip and helo are
 * given).  Used by the HTTPS query, the batch query, the DNS zone and the policy door. */
json_t *rep_query_answer(struct rep *rep, struct db *db, json_t *query, struct err *e);

/* ------------------------------------------------------------------ the daemon */

#include "dns/certauth.h"
#include "dns/discover.h"
#include "http/ratelimit.h"
#include "settings.h"

struct rep_federation;
struct rep_netcache;
struct rep_standing;
struct rep_cache;
struct rep_dnszone;

struct rep {
	struct rep_settings cfg;
	struct rep_params p;
	struct rep_peer peers[REP_MAX_PEERS];
	int npeers;
	struct db_pool *pool;        /* the primary's: writes, the zone, the background threads */
	struct db_rw *rw;            /* HTTPS requests: GETs from a replica (core/db_rw.h) */
	struct discover_ctx *disc;   /* reporters' and peers' anchors; its resolver does CSA */
	struct certauth *auth;       /* signers' certificates and their status (over disc) */
	struct ratelimit *report_rl; /* per reporter domain */
	EVP_PKEY *fed_key;           /* signs the federation feed (NULL: no feed) */
	X509 *fed_chain[JWS_MAX_CHAIN];
	int fed_nchain;
	struct rep_federation *fed;    /* the importer thread */
	struct rep_standing *standing; /* the standing thread */
	struct rep_dnszone *zone;      /* the DNS zone (dnszone.c), when dns_listen is set */
	struct rep_cache *cache;       /* recent per-subject answers (cache.c); NULL: none */
	struct rep_netcache *nets;     /* reporters' networks from DNS (netdns.c) */
	atomic_ullong reports_accepted, reports_duplicate, reports_refused, queries;
	atomic_ullong reports_burst; /* accepted reports about a subject held in a burst */
};

/* dnszone.c: the RFC 5782 zone over UDP, started after the HTTPS server when
 * cfg.dns_listen is set; answers from rep_query_answer / rep_score_get. */
struct rep_dnszone *rep_dnszone_start(struct rep *rep, struct err *e);
void rep_dnszone_stop(struct rep_dnszone *z); /* accepts NULL */

/* cache.c: after committing a change to a subject (or to many), forget it in every cache
 * that answers for the store: the HTTPS answers (rep->cache) and the DNS zone's verdicts
 * (rep->zone), so that both show the change at once. */
void rep_changed(struct rep *rep, const char *subject);
void rep_changed_all(struct rep *rep);
/* dnszone.c: the zone's share of the above; accept NULL. */
void rep_dnszone_forget(struct rep_dnszone *z, const char *subject);
void rep_dnszone_flush(struct rep_dnszone *z);

/* arf.c: an ARF (RFC 5965) message -> one report (id, subjects, category, observed,
 * evidence).  The caller fills reporter, reporter_net and source afterwards. */
int arf_parse(const char *msg, size_t len, struct rep_report *out, struct err *e);
/* Feedback-Type -> category; -1 for a type this server does not know. */
int arf_category(const char *feedback_type, enum rep_category *out);

/* ------------------------------------------------------------------ reports (report.c) */

/* evidence.c: does a subject of this kind need verified evidence (a signed message) to
 * carry weight?  Domain, signer and address subjects do. */
int rep_evidence_needed(const struct rep_subject *s);
/* The payload's "message" (the offending message's header section): every DKIM
 * signature in it is verified (header fields only) and its id noted for the subjects it
 * speaks for (rr->sig_id).  No message is no evidence (0); a malformed one is 400
 * bad_message.  Network I/O: called before the store transaction. */
int rep_evidence_verify(struct rep *rep, const char *payload, size_t len, struct rep_report *rr,
                        struct err *e);

/* ------------------------------------------------------------------ answers (cache.c) */

/* NULL when ttl <= 0 (no cache).  Every function accepts a NULL cache. */
struct rep_cache *rep_cache_new(size_t max_bytes, double ttl);
/* For /metrics: bytes charged (never above the budget), the budget, entries held. */
void rep_cache_stats(struct rep_cache *c, size_t *bytes, size_t *max_bytes, size_t *entries);
void rep_cache_free(struct rep_cache *c);
/* Read before computing an answer; rep_cache_put stores it only if nothing was forgotten
 * since (an answer computed from data older than a commit is never cached). */
unsigned long long rep_cache_generation(struct rep_cache *c);
json_t *rep_cache_get(struct rep_cache *c, const char *subject, double now); /* new ref */
void rep_cache_put(struct rep_cache *c, const char *subject, json_t *v, unsigned long long gen,
                   double now);
/* An entry that depends on more than one subject (a whole answer, key "q|..."): only
 * while nothing at all was forgotten since it was computed. */
json_t *rep_cache_get_current(struct rep_cache *c, const char *key, double now);
/* After committing a change to a subject, or to many. */
void rep_cache_forget(struct rep_cache *c, const char *subject);
void rep_cache_flush(struct rep_cache *c);

/* ------------------------------------------------------------------ names (subject.c) */

const char *rep_subject_kind_name(enum rep_subject_kind k);
int rep_verdict_parse(const char *name, enum rep_verdict *out); /* 0, or -1 when unknown */

/* The payload of a signed report (PROTOCOL.md "Reputation"), checked and canonicalised
 * into *out; now bounds "observed".  Exported for the fuzzer; touches no store. */
int rep_report_from_json(const char *payload, size_t len, long long now, const struct rep_params *p,
                         long long max_age, long long max_skew, struct rep_report *out,
                         struct err *e);

/* An RFC 3339 time ("2026-11-23T15:43:05Z", fractions and offsets allowed) -> unix seconds. */
int rep_time_parse(const char *text, long long *out);

/* The reporter network of an address ("192.0.2.0/24"), into out. */
void rep_network_of(const char *ip, int prefix4, int prefix6, char *out, size_t size);

/* netdns.c: a reporter's networks from its DNS (its MX hosts' and key server's
 * addresses), cached for the answers' TTL; "" when nothing resolves. */
struct rep_netcache *rep_netcache_new(void);
void rep_netcache_free(struct rep_netcache *c); /* accepts NULL */
void rep_reporter_networks(struct rep *rep, const char *domain, char out[REP_NETS_MAX]);

/* ------------------------------------------------------------------ scoring (score.c) */

/* One reporter's (or peer's) stored evidence about one subject. */
struct rep_contrib {
	const char *subject;  /* the subject the evidence is about */
	const char *reporter; /* domain, or "peer:<domain>" for imported evidence */
	const char *net;      /* reporter network, "" when unknown */
	double standing;      /* the reporter's weight per unit (1 for peers: weighted on import) */
	double bad, good;     /* decayed sums as of t */
	long long t;
	unsigned categories;
	long reports;
	long long first_seen, last_seen; /* unix seconds */
	int peer;
	int vetted; /* a vetted reporter: standing is its configured weight (truth.c) */
	long long reporter_since; /* when the service first saw the reporter (0: a peer) */
};

/* sum * 2^(-(now - t) / half_life); sums never grow with time (now < t gives sum). */
double rep_decay(double sum, long long t, long long now, double half_life);
/* Fold weight w observed at time at into (sum, t): both decayed to the later time. */
void rep_fold(double *sum, long long *t, double w, long long at, double half_life);
/* Wilson score interval of the proportion bad/n at z (1.96 for 95%). */
void rep_wilson(double bad, double n, double z, double *lo, double *hi);
/* The weight one report of a category adds (bad or good). */
double rep_category_weight(enum rep_category c, int verified, int *good);

/* The score of one subject from its evidence, at time now; reasons without evidence ids. */
int rep_score_compute(const struct rep_params *p, const char *subject, const struct rep_contrib *c,
                      int n, long long now, struct rep_score *out, struct err *e);

/* truth.c: ground truth and vetting.  The weight of a vetted reporter, or -1. */
double rep_vetted_weight(const struct rep_params *p, const char *domain);
/* Is address (lowercase) one of the configured spamtraps, or at a trap domain? */
int rep_trap_match(const struct rep_params *p, const char *address);
/* Vetted reporters' rows take their configured weight as standing; every other
 * reporter's standing ramps from 0 over newcomer_ramp since it was first seen. */
void rep_contribs_vet(const struct rep_params *p, struct rep_contrib *c, int n, long long now);
/* A subject the operator's spamtraps caught within a half-life is listed whatever the
 * reporters say (reason "spamtrap"): 1 when it applied, 0 when not, -1 on error. */
int rep_truth_apply(struct rep *rep, struct db *db, const char *subject, long long now,
                    struct rep_score *o, struct err *e);
/* Hits of the operator's spamtraps about subject within a half-life (0: none; *last the
 * time of the last), -1 on error. */
long long rep_truth_recent(struct rep *rep, struct db *db, const char *subject, long long now,
                           long long *last, struct err *e);

/* networks.c: independent networks.  Each contributor names its networks (c->net,
 * space-separated; a vetted reporter or a peer is a network of its own); the independent
 * networks of a set of contributors are the most of them that can each be given a
 * distinct network of their own (a bipartite matching), so that reporters sharing
 * networks count once and one reporter naming many counts once. */
struct rep_nets;
struct rep_nets *rep_nets_new(const struct rep_contrib *c, int n);
void rep_nets_free(struct rep_nets *m); /* accepts NULL */
/* How many of the contributors with use[i] set get a network of their own; group[i]
 * (when not NULL) receives the network each contributor is counted in, -1 for none. */
int rep_nets_count(struct rep_nets *m, const int *use, int *group);

/* rep_score_get at an explicit time (rep_score_get uses time(NULL)). */
int rep_score_get_at(struct rep *rep, struct db *db, const struct rep_subject *s, long long now,
                     struct rep_score *out, struct err *e);
json_t *rep_score_json(const struct rep_subject *s, const struct rep_score *sc);

/* Recompute the stored summary of a subject (rep_subject_scores) inside the caller's
 * transaction and give it the next feed sequence number. */
int rep_subject_refresh(struct rep *rep, struct db *db, const char *subject, long long now,
                        struct err *e);
/* The same; *burst receives how many reporters a burst holds back (0: none). */
int rep_subject_refresh_held(struct rep *rep, struct db *db, const char *subject, long long now,
                             int *burst, struct err *e);

#endif
