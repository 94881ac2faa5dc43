/*
 * settings.h - anchor-reputation's configuration, one typed table (settings.c), and
 * the parameters checked and parsed out of it (rep_settings_check).  Depends on
 * nothing of the daemon: rep.h includes it, not the other way round.
 */
#ifndef REP_SETTINGS_H
#define REP_SETTINGS_H

#include "core/conf.h"
#include "core/err.h"
#include "pki/tls_policy.h"

#define REP_MAX_PEERS 16
#define REP_MAX_VETTED 32 /* vetted_reporters */
#define REP_MAX_TRAPS 64  /* spamtraps */

struct rep_settings {
	/* HTTPS */
	char *listen_address;
	long long listen_port;
	char *port_file;
	char *tls_cert_file;
	char *tls_key_file;
	int allow_plain_http;
	long long max_body;
	long long http_threads;
	long long max_connections;
	long long max_connections_per_ip;
	long long conn_timeout;
	long long request_timeout;
	long long tls_ticket_rotation;
	struct tls_policy_conf tls; /* tls_profile, tls_ciphers, tls_groups */
	long long rate_limit;
	long long rate_burst;
	/* store */
	char *db_conninfo;
	long long db_pool_size;
	char *db_read_conninfo;
	long long db_read_wait_ms;
	char *sql_dir;
	int migrate_on_start;
	char *operator_token_hash;
	/* scoring (fractions are text, parsed into struct rep_params by rep_settings_check) */
	long long half_life;
	long long min_reporters;
	char *list_weight;
	char *trust_weight;
	char *reporter_cap;
	char *network_cap;
	long long network_prefix4;
	long long network_prefix6;
	char *standing_default;
	char *standing_min;
	char *standing_max;
	long long standing_interval;
	long long newcomer_ramp;
	long long min_networks;
	long long network_ttl;
	long long burst_reporters;
	long long burst_window;
	/* reports */
	int signed_evidence;    /* domain/signer/address evidence must be a verified message */
	char *spamtraps;        /* ground truth: trap addresses and domains */
	char *vetted_reporters; /* "DOMAIN WEIGHT, ..." */
	char *report_rate;
	long long report_burst;
	long long max_report_age;
	long long max_clock_skew;
	long long batch_max;
	long long answer_cache_ttl;
	long long answer_cache_bytes; /* budget of the answer cache (cache.c) */
	long long dns_cache_bytes;    /* budget of the DNS zone's verdict cache */
	/* discovery of reporters' and peers' anchors (environment ANCHOR_* fills what is unset) */
	char *resolver;
	char *trust_anchor_file;
	char *cacert;
	long long dns_timeout_ms;
	long long key_status_ttl;        /* seconds a signer's key status is reused */
	long long key_status_cache_size; /* status answers kept */
	/* federation */
	char *provider_domain;
	char *federation_key;
	char *federation_cert;
	char *federation_peers;
	long long federation_interval;
	long long federation_batch;
	/* the DNS zone (dnszone.c) */
	char *dns_listen;
	char *dns_zone;
	long long dns_ttl;
	/* logging */
	char *log_level;
	int syslog;
};

extern const struct conf_param rep_settings_table[];

/* A reporter the operator vetted: its fixed weight per report, never judged. */
struct rep_vetted {
	char domain[256];
	double weight;
};

/* The scoring parameters, parsed from the settings (fractions are text there). */
struct rep_params {
	double half_life;        /* seconds */
	int min_reporters;       /* distinct reporting domains before anything is listed */
	double list_weight;      /* bad weight needed to list */
	double trust_weight;     /* verified good weight needed for "trusted" */
	double reporter_cap;     /* most weight one reporter (or one peer) adds to a subject */
	double network_cap;      /* most weight one reporter network adds to a subject */
	double standing_default; /* a new reporter's standing (its weight per report) */
	double standing_min, standing_max;
	int prefix4, prefix6;   /* a reporter network: the client address's /prefix */
	double report_rate;     /* reports per second per reporter domain */
	double newcomer_ramp;   /* seconds until a new reporter weighs fully; 0: at once */
	int min_networks;       /* independent reporter networks a verdict needs (networks.c) */
	int burst_reporters;    /* new reporters converging on a subject that are a burst; 0: off */
	long long burst_window; /* seconds */
	int signed_evidence;    /* claims the service cannot verify earn no good weight */
	struct rep_vetted vetted[REP_MAX_VETTED];
	int nvetted;
	char traps[REP_MAX_TRAPS][320]; /* "user@domain" (that address) or "domain" (all) */
	int ntraps;
};

struct rep_peer {
	char url[512];    /* https://host:port of the peer's anchor-reputation */
	char domain[256]; /* the peer's anchored domain: its feed is signed by a key of it */
	double weight;    /* what one unit of the peer's weight is worth here */
};

int rep_settings_check(const struct rep_settings *s, struct rep_params *p, struct rep_peer *peers,
                       int *npeers, struct err *e);

#endif
