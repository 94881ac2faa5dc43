/* settings.c - the one table of anchor-relay parameters: name, type, default, bounds. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "relay.h"

#define S(field) offsetof(struct relay_settings, field)

const struct conf_param relay_settings_table[] = {
    {"hostname", CONF_STR, "localhost", 0, 0, S(hostname),
     "our name in the greeting, EHLO/LHLO and Received fields"},
    {"authserv_id", CONF_STR, NULL, 0, 0, S(authserv_id),
     "authserv-id of the Authentication-Results we add (and trust); unset: hostname"},
    {"inbound_listen", CONF_STR, "127.0.0.1:2525", 0, 0, S(inbound_listen),
     "ADDRESS:PORT ([::1]:PORT) for mail from other domains; empty: off"},
    {"submission_listen", CONF_STR, "127.0.0.1:10027", 0, 0, S(submission_listen),
     "ADDRESS:PORT for mail from the local MTA to sign and send; empty: off"},
    {"submission_auth", CONF_STR, "none", 0, 0, S(submission_auth),
     "none (the port trusts whoever connects: the local MTA) or required (SMTP AUTH "
     "after STARTTLS, and the sender must be the authenticated address)"},
    {"submission_users", CONF_STR, NULL, 0, 0, S(submission_users),
     "file of address:crypt(3)-hash lines (mode 0600) for submission_auth = required"},
    {"control_listen", CONF_STR, "", 0, 0, S(control_listen),
     "ADDRESS:PORT of the HTTPS control API (lists, complaints); empty: off"},
    {"control_token_hash", CONF_STR, NULL, 0, 0, S(control_token_hash),
     "SHA-256 (hex) of the control API's admin bearer token; unset: users only"},
    {"state_dir", CONF_STR, "/var/lib/anchor/relay", 0, 0, S(state_dir),
     "queues (spool/in, spool/out), lists, spent stamps and the signer's socket"},
    {"tls_cert_file", CONF_STR, NULL, 0, 0, S(tls_cert_file),
     "certificate chain (PEM) for STARTTLS and the control API; unset: no STARTTLS"},
    {"tls_key_file", CONF_STR, NULL, 0, 0, S(tls_key_file), "its private key (PEM, 0600)"},
    TLS_POLICY_CONF_PARAMS(S(tls)),
    {"local_domains", CONF_STR, "", 0, 0, S(local_domains),
     "comma-separated domains whose mail the inbound side accepts"},
    {"max_message_size", CONF_SIZE, "25m", 1024, 1073741824LL, S(max_message_size),
     "largest message accepted (advertised as SIZE)"},
    {"max_rcpts", CONF_INT, "100", 1, 1000, S(max_rcpts), "recipients per message"},
    {"max_connections", CONF_INT, "1000", 1, 100000, S(max_connections),
     "simultaneous SMTP connections, both listeners together"},
    {"max_connections_per_ip", CONF_INT, "20", 1, 100000, S(max_connections_per_ip),
     "simultaneous inbound SMTP connections from one client address"},
    {"control_max_connections_per_ip", CONF_INT, "16", 1, 64, S(control_max_connections_per_ip),
     "simultaneous control API connections from one client address (of 64 in all)"},
    {"control_request_timeout", CONF_DURATION, "10s", 1, 30, S(control_request_timeout),
     "a new control API connection silent this long before its first request (TLS "
     "handshake included) is closed; after a request the idle limit is 30s"},
    {"idle_timeout", CONF_DURATION, "300s", 1, 86400, S(idle_timeout),
     "a client silent this long is disconnected (RFC 5321 §4.5.3.2.7: 5 minutes)"},
    {"workers", CONF_INT, "8", 1, 256, S(workers),
     "threads for verification, signing, lookups and deliveries"},
    {"signing_keys", CONF_STR, "", 0, 0, S(signing_keys),
     "domain:selector:keyfile[,...] domain keys, read by the signer process only"},
    {"user_keys_dir", CONF_STR, NULL, 0, 0, S(user_keys_dir),
     "directory of <address>.key user keys, read by the signer process only"},
    {"report_key", CONF_STR, NULL, 0, 0, S(report_key),
     "private key of the certificate that signs abuse reports (signer only)"},
    {"report_chain", CONF_STR, NULL, 0, 0, S(report_chain),
     "that certificate, then its issuer and the domain's root (PEM)"},
    {"gateway_decrypt_keys", CONF_STR, "", 0, 0, S(gateway_decrypt_keys),
     "domain:keyfile:certfile,... keys (0600) the signer decrypts inbound S/MIME with"},
    {"dns_server", CONF_STR, NULL, 0, 0, S(dns_server),
     "ADDR[:PORT] of the DNS resolver; unset: /etc/resolv.conf"},
    {"dns_trust_anchor", CONF_STR, NULL, 0, 0, S(dns_trust_anchor),
     "DS/DNSKEY file for DNSSEC validation of anchors; unset: unvalidated"},
    {"keyserver_cacert", CONF_STR, NULL, 0, 0, S(keyserver_cacert),
     "CA certificates for key servers' HTTPS; unset: the system's"},
    {"lookup_timeout_ms", CONF_INT, "3000", 50, 60000, S(lookup_timeout_ms),
     "longest wait for one DNS query or key-server request"},
    {"key_cache_ttl", CONF_DURATION, "300s", 0, 86400, S(key_cache_ttl),
     "seconds a verified signing key is reused"},
    {"key_status_ttl", CONF_DURATION, "60s", 0, 3600, S(key_status_ttl),
     "seconds the key server's answer on the status of a control-API signer's key is "
     "reused (0: ask every time); a revoked or superseded key stops within this time"},
    {"key_status_cache_size", CONF_INT, "4096", 1, 1000000, S(key_status_cache_size),
     "key status answers kept; the oldest goes when full"},
    {"reputation_url", CONF_STR, NULL, 0, 0, S(reputation_url),
     "https://host:port of anchor-reputation; unset: no reputation checks or reports"},
    {"reputation_cacert", CONF_STR, NULL, 0, 0, S(reputation_cacert),
     "CA certificates for its HTTPS; unset: the system's"},
    {"reputation_timeout_ms", CONF_INT, "500", 10, 60000, S(reputation_timeout_ms),
     "longest wait for a reputation answer"},
    {"reputation_cache_ttl", CONF_DURATION, "300s", 0, 86400, S(reputation_cache_ttl),
     "seconds a reputation verdict is reused"},
    {"reputation_on_error", CONF_STR, "open", 0, 0, S(reputation_on_error),
     "when the reputation service cannot answer: open (accept) or closed (451)"},
    {"reporter_domain", CONF_STR, NULL, 0, 0, S(reporter_domain),
     "our anchored domain, named as the reporter of complaints"},
    {"own_networks", CONF_STR, "127.0.0.1, ::1", 0, 0, S(own_networks),
     "addresses and prefixes of our own servers (this relay, the local MTA): a complaint "
     "skips hops from them to name the first outside one"},
    {"own_hosts", CONF_STR, "", 0, 0, S(own_hosts),
     "names of our other servers, whose Received fields a complaint may read below ours"},
    {"pow_bits", CONF_INT, "20", 1, 40, S(pow_bits),
     "leading zero bits a hashcash stamp needs to lift a message to known"},
    {"pow_window", CONF_DURATION, "2d", 60, 2592000, S(pow_window),
     "how old a stamp's date may be"},
    {"tier_header", CONF_STR, "X-Anchor-Tier", 0, 0, S(tier_header),
     "header field naming the tier of an inbound message"},
    {"unknown_folder", CONF_STR, "", 0, 0, S(unknown_folder),
     "for unknown-tier mail, deliver to local<delim>FOLDER@domain; empty: header only"},
    {"recipient_delimiter", CONF_STR, "+", 0, 0, S(recipient_delimiter),
     "the next hop's recipient delimiter (Postfix recipient_delimiter)"},
    {"inbound_next_hop", CONF_STR, "lmtp:127.0.0.1:24", 0, 0, S(inbound_next_hop),
     "where inbound mail goes: lmtp:HOST:PORT, smtp:HOST:PORT or lmtp:unix:/path"},
    {"verify_recipients", CONF_BOOL, "no", 0, 1, S(verify_recipients),
     "ask the inbound next hop at RCPT time whether it takes the recipient (MAIL FROM:<> "
     "and RCPT, no DATA), so that unknown users are refused with 550 instead of bounced "
     "later to a possibly forged sender; an unreachable next hop accepts"},
    {"verify_cache_ttl", CONF_DURATION, "10m", 0, 86400, S(verify_cache_ttl),
     "seconds the next hop's answer about a recipient is reused; 0: ask every time"},
    {"smtp_port", CONF_INT, "25", 1, 65535, S(smtp_port), "port of MX hosts (legacy domains)"},
    {"direct_allow_private", CONF_BOOL, "no", 0, 1, S(direct_allow_private),
     "deliver to a user's direct endpoint (PROTOCOL.md 6.5) on a loopback or private "
     "address (tests only; otherwise such an endpoint is skipped for the domain's servers)"},
    {"outbound_tls", CONF_STR, "may", 0, 0, S(outbound_tls),
     "TLS to legacy domains: may (opportunistic) or encrypt; anchored ones always verify"},
    {"smtp_chunking", CONF_BOOL, "yes", 0, 1, S(smtp_chunking),
     "send messages with BDAT (RFC 3030) to a next hop that offers CHUNKING; no: always DATA"},
    {"connect_timeout", CONF_DURATION, "30s", 1, 600, S(connect_timeout),
     "longest wait to connect to a next hop"},
    {"command_timeout", CONF_DURATION, "300s", 1, 3600, S(command_timeout),
     "longest wait for a reply to one command (RFC 5321 §4.5.3.2)"},
    {"data_timeout", CONF_DURATION, "600s", 1, 3600, S(data_timeout),
     "longest wait for the reply after the message (RFC 5321: 10 minutes)"},
    {"connection_idle_time", CONF_DURATION, "2s", 0, 300, S(connection_idle_time),
     "how long a delivery session waits, after RSET, for the next message to the same "
     "next hop; 0: one session per message"},
    {"connection_reuse_limit", CONF_INT, "100", 1, 100000, S(connection_reuse_limit),
     "most messages one delivery session carries before QUIT"},
    {"backoff_base", CONF_DURATION, "60s", 1, 86400, S(backoff_base),
     "wait before the first retry; doubles each time"},
    {"backoff_max", CONF_DURATION, "1h", 1, 604800, S(backoff_max), "longest wait between retries"},
    {"queue_lifetime", CONF_DURATION, "5d", 60, 2592000, S(queue_lifetime),
     "a recipient still deferred after this long fails and is bounced"},
    {"encryption_defer_time", CONF_DURATION, "1h", 1, 2592000, S(encryption_defer_time),
     "a recipient whose domain requires encryption and who has no usable encryption "
     "certificate is deferred (never sent in the clear), then returned after this long"},
    {"refuse_unencrypted", CONF_STR, "no", 0, 0, S(refuse_unencrypted),
     "inbound mail that is not encrypted, to a local domain whose encryption requirement "
     "is required: no (accepted), anchored (refused from anchored senders), all"},
    /* the anchored relays we peer with, for ANCHOR-DEFER and ANCHOR-PARTIAL (peers.c) */
    {"anchored_peers", CONF_STR, "", 0, 0, S(anchored_peers),
     "name=sha256:PIN[,...] anchored relays known by the key pin of the TLS certificate "
     "they present: only they see ANCHOR-DEFER and ANCHOR-PARTIAL (after STARTTLS) and "
     "may FETCH; empty: nobody (every client is a legacy peer)"},
    {"defer_recipients", CONF_STR, "", 0, 0, S(defer_recipients),
     "addresses or @domains whose mail from a peer is held for a decision"},
    {"defer_tiers", CONF_STR, "", 0, 0, S(defer_tiers),
     "tiers (unknown, known, trusted) whose mail from a peer is held for a decision"},
    {"defer_min_interval", CONF_DURATION, "60s", 1, 86400, S(defer_min_interval),
     "offered retry window: a peer asks for the status no sooner than this apart"},
    {"defer_max_interval", CONF_DURATION, "1h", 1, 86400, S(defer_max_interval),
     "offered retry window: ... and no later than this (at least defer_min_interval)"},
    {"defer_hold_time", CONF_DURATION, "5d", 1, 2592000, S(defer_hold_time),
     "a held message without a decision expires (is deleted) after this long"},
    {"anchored_client", CONF_BOOL, "no", 0, 1, S(anchored_client),
     "present tls_cert_file as the TLS client certificate of deliveries and fetches, so "
     "that peers that list its key offer ANCHOR-DEFER and ANCHOR-PARTIAL"},
    /* receiver-chosen transfer between anchored relays (partial_*.c, PROTOCOL.md §12.12) */
    {"partial_tiers", CONF_STR, "unknown", 0, 0, S(partial_tiers),
     "tiers whose mail from an anchored peer arrives as a view first: unknown, or empty "
     "(always the whole message)"},
    {"partial_view", CONF_STR, "text", 0, 0, S(partial_view),
     "the view asked for: headers, signers, hash, text or full"},
    {"partial_keep_time", CONF_DURATION, "7d", 0, 2592000, S(partial_keep_time),
     "how long a sender keeps a message whose view it sent, for the receiver's FETCH; "
     "0: never offer views"},
    {"partial_fetch_address", CONF_STR, NULL, 0, 0, S(partial_fetch_address),
     "ADDRESS:PORT where receivers FETCH our kept messages; unset: inbound_listen"},
    {"held_sweep_interval", CONF_DURATION, "5m", 1, 86400, S(held_sweep_interval),
     "how often messages held for a decision and messages kept for a FETCH are deleted "
     "once past defer_hold_time or partial_keep_time"},
    {"port_file", CONF_STR, NULL, 0, 0, S(port_file),
     "write the bound ports here (inbound=N, submission=N, control=N) once listening"},
    {"log_level", CONF_STR, "info", 0, 0, S(log_level), "error, warning, info or debug"},
    {"syslog", CONF_BOOL, "no", 0, 1, S(syslog), "log to syslog instead of stderr"},
    {NULL, 0, NULL, 0, 0, 0, NULL},
};

int relay_list_has(const char *list, const char *want)
{
	const char *p = list;
	size_t wl = strlen(want);

	while (p != NULL && *p != '\0') {
		const char *end = strchr(p, ',');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		const char *q = p;

		while (n > 0 && (*q == ' ' || *q == '\t')) {
			q++;
			n--;
		}
		while (n > 0 && (q[n - 1] == ' ' || q[n - 1] == '\t'))
			n--;
		if (n == wl && strncasecmp(q, want, n) == 0)
			return 1;
		p = end ? end + 1 : NULL;
	}
	return 0;
}

int relay_is_local_domain(const struct relay_settings *s, const char *domain)
{
	if (s->local_domains == NULL || domain == NULL || *domain == '\0')
		return 0;
	return relay_list_has(s->local_domains, domain);
}

/* "name =" with nothing after it means unset, for every optional file, URL or name. */
static void empty_is_unset(struct relay_settings *s)
{
	char **opt[] = {&s->authserv_id,          &s->control_token_hash, &s->tls_cert_file,
	                &s->tls_key_file,         &s->user_keys_dir,      &s->report_key,
	                &s->report_chain,         &s->dns_server,         &s->dns_trust_anchor,
	                &s->keyserver_cacert,     &s->reputation_url,     &s->reputation_cacert,
	                &s->reporter_domain,      &s->port_file,          &s->submission_users,
	                &s->partial_fetch_address};

	for (size_t i = 0; i < sizeof(opt) / sizeof(opt[0]); i++)
		if (*opt[i] != NULL && **opt[i] == '\0') {
			free(*opt[i]);
			*opt[i] = NULL;
		}
}

int relay_settings_check(struct relay_settings *s, struct err *e)
{
	struct tls_policy tp;

	empty_is_unset(s);
	if (tls_policy_make(&tp, &s->tls, e) < 0)
		return -1;
	if (strcmp(s->reputation_on_error, "open") != 0 &&
	    strcmp(s->reputation_on_error, "closed") != 0)
		return err_set(e, ERR_INPUT, "bad_config",
		               "reputation_on_error must be open or closed, not '%s'",
		               s->reputation_on_error);
	if (strcmp(s->submission_auth, "none") != 0 && strcmp(s->submission_auth, "required") != 0)
		return err_set(e, ERR_INPUT, "bad_config",
		               "submission_auth must be none or required, not '%s'",
		               s->submission_auth);
	if (strcmp(s->submission_auth, "required") == 0 &&
	    (s->submission_users == NULL || s->tls_cert_file == NULL))
		return err_set(e, ERR_INPUT, "bad_config",
		               "submission_auth = required needs submission_users and a TLS "
		               "certificate (passwords only travel after STARTTLS)");
	if (strcmp(s->outbound_tls, "may") != 0 && strcmp(s->outbound_tls, "encrypt") != 0)
		return err_set(e, ERR_INPUT, "bad_config",
		               "outbound_tls must be may or encrypt, not '%s'", s->outbound_tls);
	if (strcmp(s->refuse_unencrypted, "no") != 0 &&
	    strcmp(s->refuse_unencrypted, "anchored") != 0 &&
	    strcmp(s->refuse_unencrypted, "all") != 0)
		return err_set(e, ERR_INPUT, "bad_config",
		               "refuse_unencrypted must be no, anchored or all, not '%s'",
		               s->refuse_unencrypted);
	if ((s->tls_cert_file == NULL) != (s->tls_key_file == NULL))
		return err_set(e, ERR_INPUT, "bad_config",
		               "tls_cert_file and tls_key_file go together");
	if (s->control_listen != NULL && *s->control_listen != '\0' && s->tls_cert_file == NULL)
		return err_set(e, ERR_INPUT, "bad_config",
		               "the control API needs tls_cert_file and tls_key_file (or turn it "
		               "off with an empty control_listen)");
	if (s->reputation_url != NULL && strncmp(s->reputation_url, "https://", 8) != 0)
		return err_set(e, ERR_INPUT, "bad_config", "reputation_url must be https://");
	if (strlen(s->recipient_delimiter) != 1 && *s->unknown_folder != '\0')
		return err_set(
		    e, ERR_INPUT, "bad_config",
		    "recipient_delimiter must be one character when unknown_folder is set");
	if (strpbrk(s->unknown_folder, "@<> \t\r\n\"") != NULL)
		return err_set(e, ERR_INPUT, "bad_config",
		               "unknown_folder may not contain @, <, >, quotes or spaces");
	if (s->backoff_base > s->backoff_max)
		return err_set(e, ERR_INPUT, "bad_config", "backoff_base exceeds backoff_max");
	if (s->defer_min_interval > s->defer_max_interval)
		return err_set(e, ERR_INPUT, "bad_config",
		               "defer_min_interval exceeds defer_max_interval");
	if (relay_partial_settings_check(s, e) < 0)
		return -1;
	return relay_netlist_check("own_networks", s->own_networks, e);
}
