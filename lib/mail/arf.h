/*
 * arf.h - Abuse Reporting Format (RFC 5965, RFC 6430 not-spam, RFC 6591
 * auth-failure) reports -> the members of a report (PROTOCOL.md §11.3, §11.11).
 * Shared by anchor-reputation (ARF intake) and anchorctl (`report --arf`, which
 * turns an ARF message into a signed report): one parser, one mapping.
 *
 * A report is a multipart/report; report-type=feedback-report message whose
 * parts are a human-readable text, the machine-readable message/feedback-report
 * fields, and the original message (message/rfc822) or its headers
 * (text/rfc822-headers).  arf_feedback_parse() reads the parts into struct
 * arf_feedback without touching anything else (the fuzzer's entry point);
 * arf_report_make() turns that into a report's members:
 *
 *   Feedback-Type  abuse -> spam, fraud -> phishing, virus -> malware,
 *                  other -> abuse, not-spam -> not-spam, auth-failure -> auth-fail
 *   subjects       Source-IP (ip), Reported-Domain (domain, each), the original
 *                  message's DKIM-Signature d= (signer) and i= with a local part
 *                  (address), Original-Mail-From (address), From (address)
 *   id             the report's Message-ID, else "sha256:" of the whole message
 *   observed       Arrival-Date, else the report's Date, else now
 *   verified       an Authentication-Results field of the report saying
 *                  dkim=pass for a signer named in the original message
 *
 * Malformed reports are ERR_INPUT with a code naming the fault (see arf.c's
 * list at arf_feedback_parse); a message over ARF_MAX_MESSAGE is ERR_TOOBIG.
 */
#ifndef ANCHOR_ARF_H
#define ANCHOR_ARF_H

#include <stddef.h>
#include <time.h>

#include "core/err.h"
#include "mail/arf_date.h"

#define ARF_MAX_MESSAGE (4 * 1024 * 1024)
#define ARF_MAX_LIST 8
#define ARF_MAX_DKIM 4
#define ARF_MAX_SUBJECTS 8
#define ARF_SUBJECT_MAX 340

struct arf_feedback {
	char feedback_type[32]; /* lowercase */
	char user_agent[128];
	char version[16];
	char source_ip[64];
	char original_mail_from[320]; /* without <>, "" for the null sender */
	char original_envelope_id[128];
	char reporting_mta[256]; /* "dns; mx.example.com" as given */
	time_t arrival;          /* Arrival-Date, 0 when absent */
	long incidents;          /* 1 when absent */
	char reported_domain[ARF_MAX_LIST][256];
	int nreported_domain;
	char verified_dkim[ARF_MAX_DKIM][256]; /* Authentication-Results dkim=pass header.d= */
	int nverified_dkim;
	/* The report's own headers. */
	char message_id[256]; /* without <> */
	time_t date;          /* Date:, 0 when absent */
	/* The original message's headers. */
	int have_original;
	char orig_from[320];
	char orig_message_id[256];
	char orig_subject[128];
	char dkim_d[ARF_MAX_DKIM][256];
	char dkim_i[ARF_MAX_DKIM][320];
	int ndkim;
};

/* Parse the message msg[0..len) (need not be NUL-terminated) into *out. */
int arf_feedback_parse(const char *msg, size_t len, struct arf_feedback *out, struct err *e);

/* Feedback-Type -> the report category ("spam", "phishing", "malware", "abuse",
 * "not-spam", "auth-fail"); NULL for a type this code does not know. */
const char *arf_category_name(const char *feedback_type);

/* What an ARF message says, as the members of a report (PROTOCOL.md §11.3). */
struct arf_report {
	char id[128];
	const char *category;                                  /* static string */
	char subjects[ARF_MAX_SUBJECTS][ARF_SUBJECT_MAX + 16]; /* canonical "kind:value" */
	int nsubjects;
	time_t observed;
	int verified_identity;
	char evidence[512];
};

/*
 * The whole conversion: parse msg[0..len) and fill *out.  A malformed
 * Source-IP or Reported-Domain is an error (arf_bad_source_ip,
 * arf_bad_reported_domain); a malformed hint from the original message (DKIM
 * d=/i=, envelope sender, From) is left out; none at all is arf_no_subject.
 */
int arf_report_make(const char *msg, size_t len, struct arf_report *out, struct err *e);

#endif
