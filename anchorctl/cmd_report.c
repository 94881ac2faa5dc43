/*
 * cmd_report.c - talking to a reputation service (PROTOCOL.md §11) as a
 * receiver: abuse reports signed with a key anchored in the reporter's own
 * domain (§11.3), made from the command line or imported from an ARF message
 * (§11.4, parsed by lib/mail/arf.c as the service parses it), and delisting
 * requests proven by such a signature or by CSA (§11.6).  The service's URL
 * is -s, else ANCHOR_REPUTATION_URL.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mail/arf.h"
#include "cmd.h"
#include "pki/crypto.h"
#include "pki/name.h"
#include "names.h"
#include "output.h"
#include "sign.h"

#define REPORT_TYP "anchor-report+jws"
#define DELIST_TYP "anchor-delist-request+jws"
#define REPORT_MAX_SUBJECTS 8

/* Who signs: --key, its certificate and chain. */
struct signing {
	const char *key, *cert, *chain;
	int sign_only; /* print the JWS instead of sending it */
};

static int service(const struct ctl *ctl, const struct ctl_cmd *cmd, struct ctl_client *c,
                   int *status)
{
	return ctl_service(ctl, cmd, "ANCHOR_REPUTATION_URL", "reputation service", c, status);
}

/* The anchored domain a signer speaks for: given, else its root's domain, else its name's. */
static int signer_domain(const struct ctl_cmd *cmd, const struct ctl_signer *s, const char *given,
                         char out[256], int *status)
{
	const char *at = strrchr(s->name, '@');
	struct err e = {0};

	const char *d = given != NULL          ? given
	                : s->domain[0] != '\0' ? s->domain
	                : at                   ? at + 1
	                                       : s->name;

	if (strlen(d) >= 256) {
		*status = ctl_usage(cmd, "'%.64s...' is too long for a domain name", d);
		return -1;
	}
	memcpy(out, d, strlen(d) + 1);
	ctl_name_lower(out);
	if (name_check_domain(out, &e) < 0) {
		*status =
		    ctl_usage(cmd, "'%s' is not a domain name: %s; give the domain", out, e.msg);
		return -1;
	}
	return 0;
}

/* Sign payload; with sign_only print the JWS and set *done. */
static char *sign_payload(const struct signing *sg, const struct ctl_signer *s, json_t *payload,
                          const char *typ, int *done, struct err *e)
{
	char *jws = ctl_signer_sign(s, payload, typ, e);

	*done = 0;
	if (jws != NULL && sg->sign_only) {
		printf("%s\n", jws);
		*done = 1;
	}
	return jws;
}

/* ---- report ---- */

struct report_opts {
	struct signing sg;
	const char *reporter, *category, *id, *observed, *evidence, *arf;
	int verified;
};

/* "anchorctl-" and 24 random hex digits: unique per report, as the relay's "relay-" ids. */
static int random_id(char out[48], struct err *e)
{
	unsigned char rnd[12];
	char hex[2 * sizeof(rnd) + 1];

	if (crypto_random_bytes(rnd, sizeof(rnd), e) < 0)
		return -1;
	crypto_hex(rnd, sizeof(rnd), hex);
	snprintf(out, 48, "anchorctl-%s", hex);
	return 0;
}

static void rfc3339(time_t t, char out[32])
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* The members an ARF message gives (lib/mail/arf.c, the service's own mapping). */
static json_t *payload_from_arf(const char *path, struct err *e)
{
	struct arf_report *r = calloc(1, sizeof(*r));
	json_t *subjects = json_array(), *payload = NULL;
	char observed[32], *msg = NULL;
	size_t len;

	if (r == NULL || subjects == NULL) {
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		goto out;
	}
	if ((msg = ctl_file_read(path, &len, e)) == NULL || arf_report_make(msg, len, r, e) < 0)
		goto out;
	for (int i = 0; i < r->nsubjects; i++)
		json_array_append_new(subjects, json_string(r->subjects[i]));
	rfc3339(r->observed, observed);
	payload = json_pack("{s:s, s:s, s:O, s:s, s:b, s:s}", "id", r->id, "category", r->category,
	                    "subjects", subjects, "observed", observed, "verified_identity",
	                    r->verified_identity, "evidence", r->evidence);
	if (payload == NULL)
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
out:
	json_decref(subjects);
	free(msg);
	free(r);
	return payload;
}

static json_t *payload_from_args(const struct report_opts *o, const struct ctl_args *a,
                                 struct err *e)
{
	json_t *subjects = json_array(), *payload = NULL;
	char id[48], observed[32];

	if (subjects == NULL)
		goto oom;
	for (int i = 0; i < a->npos; i++)
		json_array_append_new(subjects, json_string(a->pos[i]));
	if (o->id == NULL && random_id(id, e) < 0) {
		json_decref(subjects);
		return NULL;
	}
	if (o->observed == NULL)
		ctl_rfc3339_now(observed);
	payload = json_pack("{s:s, s:s, s:o, s:s, s:b}", "id", o->id != NULL ? o->id : id,
	                    "category", o->category != NULL ? o->category : "spam", "subjects",
	                    subjects, "observed", o->observed != NULL ? o->observed : observed,
	                    "verified_identity", o->verified);
	if (payload != NULL && o->evidence != NULL &&
	    json_object_set_new(payload, "evidence", json_string(o->evidence)) < 0) {
		json_decref(payload);
		payload = NULL;
	}
	if (payload != NULL)
		return payload;
oom:
	err_set(e, ERR_INTERNAL, "internal", "out of memory");
	return NULL;
}

static void print_report_answer(const json_t *answer)
{
	const json_t *subjects = json_object_get(answer, "subjects"), *v;
	size_t i;

	if (json_is_true(json_object_get(answer, "duplicate"))) {
		printf("duplicate: report %s/%s was received before; nothing changed\n",
		       ctl_out_str(answer, "reporter"), ctl_out_str(answer, "id"));
		return;
	}
	printf("accepted: report %s/%s (%s)\nsubjects:", ctl_out_str(answer, "reporter"),
	       ctl_out_str(answer, "id"), ctl_out_str(answer, "category"));
	json_array_foreach(subjects, i, v)
	{
		printf(" %s", json_string_value(v));
	}
	printf("\n");
}

static int report_usage_check(const struct ctl_cmd *cmd, const struct report_opts *o,
                              const struct ctl_args *a, int *status)
{
	if (o->sg.key == NULL)
		*status = ctl_usage(cmd, "a report is signed: give --key FILE");
	else if (o->arf != NULL && (a->npos > 0 || o->category != NULL || o->id != NULL ||
	                            o->observed != NULL || o->evidence != NULL || o->verified))
		*status =
		    ctl_usage(cmd, "--arf gives the subjects, category, id, time and evidence: "
		                   "give no others");
	else if (o->arf == NULL && a->npos == 0)
		*status =
		    ctl_usage(cmd, "name at least one subject (kind:value) or give --arf FILE");
	else if (a->npos > REPORT_MAX_SUBJECTS)
		*status = ctl_usage(cmd, "at most %d subjects", REPORT_MAX_SUBJECTS);
	else
		return 0;
	return -1;
}

int ctl_cmd_report(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	struct report_opts o = {0};
	const struct ctl_opt opts[] = {{"--key", &o.sg.key, NULL},
	                               {"--cert", &o.sg.cert, NULL},
	                               {"--chain", &o.sg.chain, NULL},
	                               {"--sign-only", NULL, &o.sg.sign_only},
	                               {"--reporter", &o.reporter, NULL},
	                               {"--category", &o.category, NULL},
	                               {"--id", &o.id, NULL},
	                               {"--observed", &o.observed, NULL},
	                               {"--evidence", &o.evidence, NULL},
	                               {"--verified", NULL, &o.verified},
	                               {"--arf", &o.arf, NULL},
	                               CTL_COMMON_OPTS(ctl),
	                               {NULL, NULL, NULL}};
	struct ctl_signer s = {0};
	struct ctl_client c = {0};
	struct ctl_args a;
	struct err e = {0};
	json_t *payload = NULL, *body = NULL, *answer = NULL;
	char reporter[256], *jws = NULL;
	int status = CTL_FAIL, done;

	if (ctl_parse(cmd, opts, argc, argv, 0, -1, &a, &status) < 0 ||
	    report_usage_check(cmd, &o, &a, &status) < 0 ||
	    (!o.sg.sign_only && service(ctl, cmd, &c, &status) < 0))
		goto out;
	if (ctl_signer_load(&s, o.sg.key, o.sg.cert, o.sg.chain, &e) < 0) {
		status = ctl_fail(&e);
		goto out;
	}
	if (signer_domain(cmd, &s, o.reporter, reporter, &status) < 0)
		goto out;
	payload = o.arf != NULL ? payload_from_arf(o.arf, &e) : payload_from_args(&o, &a, &e);
	if (payload == NULL ||
	    json_object_set_new(payload, "type", json_string("anchor-report")) < 0 ||
	    json_object_set_new(payload, "reporter", json_string(reporter)) < 0 ||
	    (jws = sign_payload(&o.sg, &s, payload, REPORT_TYP, &done, &e)) == NULL) {
		status = ctl_fail(&e);
		goto out;
	}
	if (done) {
		status = CTL_OK;
		goto out;
	}
	if ((body = json_loads(jws, 0, NULL)) == NULL ||
	    ctl_client_call(&c, "POST", "/v1/reports", body, &answer, &e) < 0) {
		if (body == NULL)
			err_set(&e, ERR_INTERNAL, "internal", "the signed report is not JSON");
		status = ctl_fail(&e);
		goto out;
	}
	if (ctl->json)
		ctl_out_json(stdout, answer);
	else
		print_report_answer(answer);
	status = CTL_OK;
out:
	ctl_signer_clear(&s);
	json_decref(payload);
	json_decref(body);
	json_decref(answer);
	free(jws);
	return status;
}

/* ---- delist request | show ---- */

struct delist_opts {
	struct signing sg;
	const char *domain, *helo, *reason, *contact;
};

/* {"request": "<JWS>"}: the signed request, as a string (§11.6). */
static json_t *signed_delist(const struct ctl_cmd *cmd, const struct delist_opts *o,
                             const char *subject, int *status, int *done)
{
	struct ctl_signer s = {0};
	struct err e = {0};
	json_t *payload = NULL, *body = NULL;
	char domain[256], issued[32], *jws = NULL;

	*done = 0;
	if (ctl_signer_load(&s, o->sg.key, o->sg.cert, o->sg.chain, &e) < 0) {
		*status = ctl_fail(&e);
		return NULL;
	}
	if (signer_domain(cmd, &s, o->domain, domain, status) < 0)
		goto out;
	ctl_rfc3339_now(issued);
	payload =
	    json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "type", "anchor-delist-request", "domain",
	              domain, "subject", subject, "reason", o->reason != NULL ? o->reason : "",
	              "contact", o->contact != NULL ? o->contact : "", "issued", issued);
	if (payload == NULL)
		err_set(&e, ERR_INTERNAL, "internal", "out of memory");
	else
		jws = sign_payload(&o->sg, &s, payload, DELIST_TYP, done, &e);
	if (jws != NULL && !*done && (body = json_pack("{s:s}", "request", jws)) == NULL)
		err_set(&e, ERR_INTERNAL, "internal", "out of memory");
	if (body == NULL && !*done)
		*status = ctl_fail(&e);
out:
	ctl_signer_clear(&s);
	json_decref(payload);
	free(jws);
	return body;
}

static void print_delist(const struct ctl_client *c, const json_t *r)
{
	const json_t *events = json_object_get(r, "events"), *ev;
	size_t i, n;

	printf("delisting request %lld: %s\n",
	       (long long)json_integer_value(json_object_get(r, "id")), ctl_out_str(r, "status"));
	printf("subject:   %s\nproven by: %s (%s)\n", ctl_out_str(r, "subject"),
	       ctl_out_str(r, "proven_by"), ctl_out_str(r, "method"));
	if (json_is_string(json_object_get(r, "decided")))
		printf("decided:   %s%s%s\n", ctl_out_str(r, "decided"),
		       json_is_string(json_object_get(r, "decision_note")) ? ": " : "",
		       json_is_string(json_object_get(r, "decision_note"))
		           ? ctl_out_str(r, "decision_note")
		           : "");
	json_array_foreach(events, i, ev)
	{
		printf("event:     %s %s %s\n", ctl_out_str(ev, "at"), ctl_out_str(ev, "event"),
		       ctl_out_str(ev, "detail"));
	}
	n = strlen(c->base_url);
	while (n > 0 && c->base_url[n - 1] == '/')
		n--;
	printf("trail:     %.*s/v1/delist/%lld\n", (int)n, c->base_url,
	       (long long)json_integer_value(json_object_get(r, "id")));
}

int ctl_cmd_delist_request(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	struct delist_opts o = {0};
	const struct ctl_opt opts[] = {
	    {"--key", &o.sg.key, NULL},     {"--cert", &o.sg.cert, NULL},
	    {"--chain", &o.sg.chain, NULL}, {"--sign-only", NULL, &o.sg.sign_only},
	    {"--domain", &o.domain, NULL},  {"--helo", &o.helo, NULL},
	    {"--reason", &o.reason, NULL},  {"--contact", &o.contact, NULL},
	    CTL_COMMON_OPTS(ctl),           {NULL, NULL, NULL}};
	struct ctl_client c = {0};
	struct ctl_args a;
	struct err e = {0};
	json_t *body = NULL, *answer = NULL;
	int status = CTL_FAIL, done = 0;

	if (ctl_parse(cmd, opts, argc, argv, 1, 1, &a, &status) < 0)
		goto out;
	if ((o.sg.key != NULL) == (o.helo != NULL)) {
		status =
		    ctl_usage(cmd, "prove ownership with --key FILE (a signature) or --helo NAME "
		                   "(CSA), one of the two");
		goto out;
	}
	if (o.helo != NULL &&
	    (o.sg.sign_only || o.domain != NULL || o.sg.cert != NULL || o.sg.chain != NULL)) {
		status = ctl_usage(cmd, "--sign-only, --domain, --cert and --chain go with --key");
		goto out;
	}
	if (!o.sg.sign_only && service(ctl, cmd, &c, &status) < 0)
		goto out;
	if (o.helo != NULL)
		body = json_pack("{s:s, s:s, s:s, s:s}", "subject", a.pos[0], "helo", o.helo,
		                 "reason", o.reason != NULL ? o.reason : "", "contact",
		                 o.contact != NULL ? o.contact : "");
	else
		body = signed_delist(cmd, &o, a.pos[0], &status, &done);
	if (done) {
		status = CTL_OK;
		goto out;
	}
	if (body == NULL)
		goto out; /* reported */
	if (ctl_client_call(&c, "POST", "/v1/delist", body, &answer, &e) < 0) {
		status = ctl_fail(&e);
		goto out;
	}
	if (ctl->json)
		ctl_out_json(stdout, answer);
	else
		print_delist(&c, answer);
	status = CTL_OK;
out:
	json_decref(body);
	json_decref(answer);
	return status;
}

int ctl_cmd_delist_show(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	const struct ctl_opt opts[] = {CTL_COMMON_OPTS(ctl), {NULL, NULL, NULL}};
	struct ctl_client c = {0};
	struct ctl_args a;
	struct err e = {0};
	json_t *answer = NULL;
	long long id;
	char path[64];
	int status = CTL_FAIL;

	if (ctl_parse(cmd, opts, argc, argv, 1, 1, &a, &status) < 0)
		return status;
	if (ctl_args_int(a.pos[0], 1, 999999999999999999LL, &id) < 0)
		return ctl_usage(cmd, "'%s' is not a request number", a.pos[0]);
	if (service(ctl, cmd, &c, &status) < 0)
		return status;
	snprintf(path, sizeof(path), "/v1/delist/%lld", id);
	if (ctl_client_call(&c, "GET", path, NULL, &answer, &e) < 0)
		return ctl_fail(&e);
	if (ctl->json)
		ctl_out_json(stdout, answer);
	else
		print_delist(&c, answer);
	json_decref(answer);
	return CTL_OK;
}
