/*
 * arf.c - an ARF (RFC 5965) message becomes a report for the scoring.  The
 * parser and the mapping (which field gives which subject) are lib/mail/arf.c's,
 * shared with anchorctl; here the subjects and the category take the types the
 * scoring uses.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mail/arf.h"
#include "rep.h"

_Static_assert(ARF_MAX_SUBJECTS <= sizeof(((struct rep_report *)0)->subjects) /
                                       sizeof(((struct rep_report *)0)->subjects[0]),
               "an ARF report fits a report");
_Static_assert(ARF_SUBJECT_MAX == REP_SUBJECT_MAX, "one subject length");

int arf_category(const char *type, enum rep_category *out)
{
	struct err e = {0};
	const char *name = arf_category_name(type);

	return name != NULL && rep_category_parse(name, out, &e) == 0 ? 0 : -1;
}

int arf_parse(const char *msg, size_t len, struct rep_report *out, struct err *e)
{
	struct arf_report *a = calloc(1, sizeof(*a));
	int i, rc = -1;

	memset(out, 0, sizeof(*out));
	if (a == NULL)
		return err_set(e, ERR_INTERNAL, "internal", "out of memory");
	if (arf_report_make(msg, len, a, e) < 0 ||
	    rep_category_parse(a->category, &out->category, e) < 0)
		goto out;
	for (i = 0; i < a->nsubjects; i++)
		if (rep_subject_parse(a->subjects[i], &out->subjects[i], e) < 0)
			goto out;
	out->nsubjects = a->nsubjects;
	snprintf(out->id, sizeof(out->id), "%s", a->id);
	snprintf(out->evidence, sizeof(out->evidence), "%s", a->evidence);
	out->observed = a->observed;
	out->verified_identity = a->verified_identity;
	snprintf(out->source, sizeof(out->source), "arf");
	rc = 0;
out:
	free(a);
	return rc;
}
