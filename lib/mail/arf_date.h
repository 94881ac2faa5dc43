/*
 * arf_date.h - the Date of an abuse report: an RFC 5322 date-time, obsolete zone
 * names accepted (RFC 5322 §4.3), as reporters' mailers still write them.
 */
#ifndef ANCHOR_ARF_DATE_H
#define ANCHOR_ARF_DATE_H

#include <time.h>

/* text -> seconds since the epoch in *out; 0, or -1 when it is no date-time. */
int arf_date_parse(const char *text, time_t *out);

#endif
