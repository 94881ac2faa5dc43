/*
 * rep_report.c - a recipient's complaint turned into a signed report to anchor-reputation
 * (POST /v1/reports, PROTOCOL.md §11.3), sent by lib/http's one HTTPS client.
 *
 * A report names only what the relay itself saw (rep_trace.h): the source hop (the first
 * outside our own servers: its IP and HELO), the signers of passing signatures from our
 * own Authentication-Results, and the From domain when one of those signers vouches for
 * it (aligned, as in DMARC's relaxed mode).  Nothing of ours is ever named: not our own
 * hops, not our reporter domain, hostname or local domains as signer or From domain, so a
 * message that never left our servers (local submission delivered back to us) reports
 * only what is foreign in it, or is refused (no_subjects) when nothing is.
 * verified_identity is true when a foreign signature passed or our CSA check of the
 * source passed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "pki/crypto.h"
#include "pki/name.h"
#include "rep_priv.h"
#include "rep_trace.h"

#define REP_TYP "anchor-report+jws"
#define REP_MESSAGE_MAX 65536 /* the service's bound on a quoted header section */

static int category_ok(const char *c)
{
	static const char *const cats[] = {"spam",  "phishing", "malware",
	                                   "abuse", "not-spam", "auth-fail"};

	for (size_t i = 0; c != NULL && i < sizeof(cats) / sizeof(cats[0]); i++)
		if (strcmp(c, cats[i]) == 0)
			return 1;
	return 0;
}

/* A name that is ours: our reporter domain, our hostname or a local domain, or below one. */
static int own_name(const struct relay_rep *r, const char *name)
{
	const char *dot;

	if (name[0] == '\0')
		return 0;
	if ((r->reporter != NULL && name_in_domain(name, r->reporter)) ||
	    name_in_domain(name, r->hostname))
		return 1;
	for (const char *p = name; p != NULL; p = (dot = strchr(p, '.')) ? dot + 1 : NULL)
		if (relay_list_has(r->local_domains, p))
			return 1;
	return 0;
}

static void add_subject(struct relay_rep_reported *out, const char *kind, const char *value)
{
	char s[sizeof(out->subjects[0])];

	if (value[0] == '\0' || out->nsubjects >= RELAY_REP_MAX_SUBJECTS)
		return;
	snprintf(s, sizeof(s), "%s:%s", kind, value);
	for (int i = 0; i < out->nsubjects; i++)
		if (strcmp(out->subjects[i], s) == 0)
			return;
	snprintf(out->subjects[out->nsubjects++], sizeof(s), "%s", s);
}

/* The subjects of the message (see the top of the file) into *out; *verified set. */
static void subjects_of(const struct relay_rep *r, const struct relay_rep_trace *o,
                        struct relay_rep_reported *out, int *verified)
{
	int foreign_signer = 0;

	memset(out, 0, sizeof(*out));
	out->external = o->external;
	out->own_hops = o->own_hops;
	add_subject(out, "ip", o->ip);
	if (!own_name(r, o->helo)) /* a client may claim our name: never report it */
		add_subject(out, "helo", o->helo);
	for (int i = 0; i < o->nsigners; i++)
		if (!own_name(r, o->signers[i])) {
			add_subject(out, "signer", o->signers[i]);
			foreign_signer = 1;
		}
	/* the From domain only when a passing signature vouches for it (aligned, as DMARC
	 * relaxed): else anyone could sign spam "From" a victim's domain and get it reported */
	for (int i = 0; i < o->nsigners; i++)
		if (!own_name(r, o->signers[i]) && !own_name(r, o->from_domain) &&
		    name_in_domain(o->from_domain, o->signers[i]))
			add_subject(out, "domain", o->from_domain);
	*verified = foreign_signer || o->csa_pass;
}

static void no_subjects(const struct relay_rep *r, const struct relay_rep_trace *o, struct err *e)
{
	if (o->have_received && !o->external)
		err_set(e, ERR_INPUT, "no_subjects",
		        "the message never left our own servers (%d hop%s from own_networks or "
		        "our submission port, none from outside) and carries no foreign "
		        "signature: nothing to report",
		        o->own_hops, o->own_hops == 1 ? "" : "s");
	else
		err_set(e, ERR_INPUT, "no_subjects",
		        "the message carries no Received or Authentication-Results field of %s: "
		        "nothing to report",
		        r->hostname);
}

/* The message's header section, through its last field (no blank line): what the service
 * verifies the signatures of (PROTOCOL.md §11.3 "message").  0 when there is none. */
static size_t header_section(const char *msg, size_t len)
{
	for (size_t i = 0; i + 1 < len; i++) {
		if (msg[i] == '\n' && msg[i + 1] == '\n')
			return i + 1;
		if (msg[i] == '\n' && msg[i + 1] == '\r' && i + 2 < len && msg[i + 2] == '\n')
			return i + 1;
	}
	return len;
}

/* A signer or domain subject counts at the service only with the signed message: quote
 * its header fields (never the body), when they fit. */
static void add_message(json_t *payload, const struct relay_rep_reported *out, const char *msg,
                        size_t len)
{
	size_t hl = header_section(msg, len);
	int signed_subject = 0;

	for (int i = 0; i < out->nsubjects; i++)
		signed_subject |= strncmp(out->subjects[i], "signer:", 7) == 0 ||
		                  strncmp(out->subjects[i], "domain:", 7) == 0;
	/* A NUL (which RFC 5322 does not allow) would go out as \u0000, which the service's
	 * JSON reader refuses: the whole report would be lost for one quoted field. */
	if (signed_subject && hl > 0 && hl <= REP_MESSAGE_MAX && memchr(msg, '\0', hl) == NULL)
		json_object_set_new(payload, "message",
		                    json_stringn(msg, hl)); /* NULL: not UTF-8 */
}

static char *payload_build(const struct relay_rep *r, const char *msg, size_t len,
                           const char *category, time_t now, struct relay_rep_reported *out,
                           struct err *e)
{
	struct relay_rep_own own = {r->hostname, r->authserv_id, r->own_networks, r->own_hosts};
	struct relay_rep_trace o;
	uint8_t rnd[12];
	char hex[2 * sizeof(rnd) + 1], id[40], observed[32], evidence[REP_EVIDENCE_MAX + 1];
	struct tm tm;
	json_t *subjects, *payload;
	char *text;
	int verified;

	if (r->reporter == NULL) {
		err_set(e, ERR_INPUT, "bad_config", "reporter_domain is not set: no reports");
		return NULL;
	}
	if (!category_ok(category)) {
		err_set(
		    e, ERR_INPUT, "bad_category",
		    "the category must be spam, phishing, malware, abuse, not-spam or auth-fail");
		return NULL;
	}
	if (crypto_random_bytes(rnd, sizeof(rnd), e) < 0)
		return NULL;
	relay_rep_trace_read(&own, msg, len, &o);
	subjects_of(r, &o, out, &verified);
	if (out->nsubjects == 0) {
		no_subjects(r, &o, e);
		return NULL;
	}
	if ((subjects = json_array()) == NULL) {
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		return NULL;
	}
	for (int i = 0; i < out->nsubjects; i++)
		json_array_append_new(subjects, json_string(out->subjects[i]));
	crypto_hex(rnd, sizeof(rnd), hex);
	snprintf(id, sizeof(id), "relay-%s", hex);
	gmtime_r(&now, &tm);
	strftime(observed, sizeof(observed), "%Y-%m-%dT%H:%M:%SZ", &tm);
	payload = json_pack("{s:s, s:s, s:s, s:s, s:o, s:s, s:b}", "type", "anchor-report", "id",
	                    id, "reporter", r->reporter, "category", category, "subjects", subjects,
	                    "observed", observed, "verified_identity", verified);
	if (payload != NULL && o.message_id[0]) {
		snprintf(evidence, sizeof(evidence), "Message-ID: %s", o.message_id);
		json_object_set_new(payload, "evidence", json_string(evidence));
	}
	if (payload != NULL)
		add_message(payload, out, msg, len);
	text = payload != NULL ? json_dumps(payload, JSON_COMPACT) : NULL;
	json_decref(payload);
	if (text == NULL)
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
	return text;
}

char *relay_rep_report_payload(const struct relay_rep *r, const char *msg, size_t len,
                               const char *category, time_t now, struct err *e)
{
	struct relay_rep_reported out;

	return payload_build(r, msg, len, category, now, &out, e);
}

/* The relay's own error codes for a report that got no answer (as the query's). */
static int post_failed(const struct relay_rep *r, struct err *e)
{
	char msg[ERR_MSG_MAX];

	snprintf(msg, sizeof(msg), "%s", e->msg);
	if (strcmp(e->code, "fetch_too_big") == 0)
		return err_set(e, ERR_UNPROC, "bad_answer", "anchor-reputation's answer: %s", msg);
	if (strcmp(e->code, "fetch_timeout") == 0)
		return err_set(e, ERR_TEMP, "timeout",
		               "anchor-reputation did not answer in %ld ms: %s", r->timeout_ms,
		               msg);
	if (e->kind == ERR_INTERNAL)
		return -1;
	return err_set(e, ERR_TEMP, "unreachable", "anchor-reputation: %s", msg);
}

static int post_report(const struct relay_rep *r, const char *jws, struct err *e)
{
	struct https_opts o = rep_https_opts(r);
	struct https_reply reply;
	int rc = 0;

	o.any_status = 1; /* the service's own error is kept (rep_error_from_answer) */
	if (https_post_url(r->url, "/v1/reports", &o, "application/json", jws, strlen(jws), &reply,
	                   e) < 0)
		return post_failed(r, e);
	if (reply.status != 200 && reply.status != 201)
		rc = rep_error_from_answer(reply.status, reply.body, reply.len, e);
	https_reply_clear(&reply);
	return rc;
}

int relay_rep_report(struct relay_rep *r, struct relay_signer_client *sc, const char *msg,
                     size_t len, const char *category, struct relay_rep_reported *out,
                     struct err *e)
{
	struct relay_rep_reported mine;
	char *payload = NULL, *jws = NULL;
	relay_rep_sign_fn fn;
	void *fn_arg;
	int rc = -1;

	if (!relay_rep_enabled(r))
		return err_set(e, ERR_INPUT, "disabled", "no reputation service is configured");
	if (out == NULL)
		out = &mine;
	if ((payload = payload_build(r, msg, len, category, time(NULL), out, e)) == NULL)
		return -1;
	pthread_mutex_lock(&r->lock);
	fn = r->sign_fn;
	fn_arg = r->sign_arg;
	pthread_mutex_unlock(&r->lock);
	if ((fn != NULL ? fn(fn_arg, payload, REP_TYP, &jws, e)
	                : relay_signer_sign_jws(sc, payload, REP_TYP, &jws, e)) < 0)
		goto out;
	rc = post_report(r, jws, e);
out:
	free(jws);
	free(payload);
	return rc;
}
