/*
 * payload.c - the payload of a signed report (PROTOCOL.md §11.3), checked
 * and canonicalised.  Touches no store and no network: the fuzzer links it alone
 * (tests/fuzz/fuzz_rep_report.c).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pki/name.h"
#include "rep.h"

#define REP_TYPE_REPORT "anchor-report"

/* A string member; NULL when absent (*e set when required) or not a string (*e set). */
static const char *member(json_t *obj, const char *key, int required, struct err *e)
{
	json_t *v = json_object_get(obj, key);

	if (v == NULL || json_is_null(v)) {
		if (required)
			err_set(e, ERR_INPUT, "bad_request", "the report needs a \"%s\" member",
			        key);
		return NULL;
	}
	if (!json_is_string(v)) {
		err_set(e, ERR_INPUT, "bad_request", "\"%s\" must be a string", key);
		return NULL;
	}
	return json_string_value(v);
}

/* RFC 3339: "2026-11-23T15:43:05Z", fractional seconds and numeric offsets allowed. */
int rep_time_parse(const char *s, long long *out)
{
	struct tm tm = {0};
	const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	long long t, off = 0;

	if (p == NULL)
		return -1;
	if (*p == '.') {
		p++;
		if (!isdigit((unsigned char)*p))
			return -1;
		while (isdigit((unsigned char)*p))
			p++;
	}
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if ((*p == '+' || *p == '-') && isdigit((unsigned char)p[1]) &&
	           isdigit((unsigned char)p[2]) && p[3] == ':' && isdigit((unsigned char)p[4]) &&
	           isdigit((unsigned char)p[5])) {
		off = ((p[1] - '0') * 10 + (p[2] - '0')) * 3600 +
		      ((p[4] - '0') * 10 + (p[5] - '0')) * 60;
		if (*p == '+')
			off = -off;
		p += 6;
	} else {
		return -1;
	}
	if (*p != '\0')
		return -1;
	t = (long long)timegm(&tm);
	*out = t + off;
	return 0;
}

static int id_ok(const char *id)
{
	size_t n = strlen(id);

	if (n == 0 || n > 127)
		return 0;
	for (; *id; id++)
		if (!isalnum((unsigned char)*id) && strchr("._:@+=/-", *id) == NULL)
			return 0;
	return 1;
}

static int payload_subjects(json_t *arr, struct rep_report *out, struct err *e)
{
	const int max = (int)(sizeof(out->subjects) / sizeof(out->subjects[0]));
	json_t *v;
	size_t i;

	if (!json_is_array(arr) || json_array_size(arr) == 0 || json_array_size(arr) > (size_t)max)
		return err_set(e, ERR_INPUT, "bad_subject",
		               "\"subjects\" must be an array of 1 to %d subjects", max);
	json_array_foreach(arr, i, v)
	{
		struct rep_subject s;
		int dup = 0;

		if (!json_is_string(v))
			return err_set(e, ERR_INPUT, "bad_subject", "subjects[%zu] is not a string",
			               i);
		if (rep_subject_parse(json_string_value(v), &s, e) < 0) {
			char msg[ERR_MSG_MAX];

			snprintf(msg, sizeof(msg), "%s", e->msg);
			return err_set(e, ERR_INPUT, "bad_subject", "subjects[%zu]: %s", i, msg);
		}
		for (int k = 0; k < out->nsubjects; k++)
			dup |= strcmp(out->subjects[k].text, s.text) == 0;
		if (!dup)
			out->subjects[out->nsubjects++] = s;
	}
	return 0;
}

static int payload_time(json_t *obj, long long now, long long max_age, long long max_skew,
                        long long *out, struct err *e)
{
	const char *text;

	if ((text = member(obj, "observed", 1, e)) == NULL)
		return -1;
	if (rep_time_parse(text, out) < 0)
		return err_set(
		    e, ERR_INPUT, "bad_time",
		    "\"observed\" must be an RFC 3339 time such as 2026-11-23T15:43:05Z");
	if (*out > now + max_skew)
		return err_set(e, ERR_INPUT, "bad_time", "\"observed\" (%s) lies in the future",
		               text);
	if (*out < now - max_age)
		return err_set(
		    e, ERR_INPUT, "report_too_old",
		    "\"observed\" (%s) is older than %lld days: such reports no longer count", text,
		    max_age / 86400);
	return 0;
}

/* "trap": the spamtrap address a message was sent to (a spamtrap hit, PROTOCOL.md §11.3);
 * whether it is one, and whether the reporter may say so, is the daemon's to check. */
static int payload_trap(json_t *obj, struct rep_report *out, struct err *e)
{
	const char *trap = member(obj, "trap", 0, e), *at;

	if (e->kind != ERR_NONE)
		return -1;
	if (trap == NULL)
		return 0;
	at = strrchr(trap, '@');
	if (strlen(trap) >= sizeof(out->trap) || at == NULL || at == trap ||
	    name_check_domain(at + 1, e) < 0) {
		return err_set(e, ERR_INPUT, "bad_trap",
		               "\"trap\" must be the spamtrap address the message was sent to");
	}
	if (out->category == REP_NOT_SPAM)
		return err_set(e, ERR_INPUT, "bad_trap", "a spamtrap hit cannot be not-spam");
	for (size_t i = 0; trap[i]; i++)
		out->trap[i] = (char)tolower((unsigned char)trap[i]);
	return 0;
}

int rep_report_from_json(const char *payload, size_t len, long long now, const struct rep_params *p,
                         long long max_age, long long max_skew, struct rep_report *out,
                         struct err *e)
{
	json_t *obj = json_loadb(payload, len, JSON_REJECT_DUPLICATES, NULL);
	const char *type, *id, *reporter, *category, *evidence;
	json_t *verified;
	long long observed = 0;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	if (!json_is_object(obj)) {
		err_set(e, ERR_INPUT, "bad_request", "the report payload must be a JSON object");
		goto out;
	}
	if ((type = member(obj, "type", 1, e)) == NULL)
		goto out;
	if (strcmp(type, REP_TYPE_REPORT) != 0) {
		err_set(e, ERR_INPUT, "bad_request", "\"type\" must be \"%s\"", REP_TYPE_REPORT);
		goto out;
	}
	if ((id = member(obj, "id", 1, e)) == NULL)
		goto out;
	if (!id_ok(id)) {
		err_set(e, ERR_INPUT, "bad_report_id",
		        "\"id\" must have 1 to 127 letters, digits or ._:@+=/- characters");
		goto out;
	}
	if ((reporter = member(obj, "reporter", 1, e)) == NULL)
		goto out;
	if (strlen(reporter) >= sizeof(out->reporter) || name_check_domain(reporter, e) < 0) {
		err_set(e, ERR_INPUT, "bad_reporter",
		        "\"reporter\" must be the reporter's domain, in lowercase");
		goto out;
	}
	if ((category = member(obj, "category", 1, e)) == NULL ||
	    rep_category_parse(category, &out->category, e) < 0)
		goto out;
	if (payload_subjects(json_object_get(obj, "subjects"), out, e) < 0 ||
	    payload_time(obj, now, max_age, max_skew, &observed, e) < 0)
		goto out;
	verified = json_object_get(obj, "verified_identity");
	if (verified != NULL && !json_is_boolean(verified)) {
		err_set(e, ERR_INPUT, "bad_request", "\"verified_identity\" must be true or false");
		goto out;
	}
	evidence = member(obj, "evidence", 0, e);
	if (e->kind != ERR_NONE || payload_trap(obj, out, e) < 0)
		goto out;
	if (evidence != NULL && strlen(evidence) >= sizeof(out->evidence)) {
		err_set(e, ERR_INPUT, "bad_request", "\"evidence\" is longer than %zu bytes",
		        sizeof(out->evidence) - 1);
		goto out;
	}
	snprintf(out->id, sizeof(out->id), "%s", id);
	snprintf(out->reporter, sizeof(out->reporter), "%s", reporter);
	snprintf(out->evidence, sizeof(out->evidence), "%s", evidence ? evidence : "");
	snprintf(out->source, sizeof(out->source), "jws");
	out->observed = (time_t)(observed > now ? now : observed);
	out->verified_identity = json_is_true(verified);
	rc = 0;
out:
	json_decref(obj);
	return rc;
}
