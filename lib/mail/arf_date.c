/*
 * arf_date.c - RFC 5322 date-time (§3.3, obsolete zone names of §4.3 accepted) ->
 * seconds since the epoch: ARF's Arrival-Date and a report's own Date (arf.h).
 */
#include "mail/arf_date.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

static int month_of(const char *m)
{
	static const char *const names[] = {"jan", "feb", "mar", "apr", "may", "jun",
	                                    "jul", "aug", "sep", "oct", "nov", "dec"};
	int i;

	for (i = 0; i < 12; i++)
		if (strncasecmp(m, names[i], 3) == 0)
			return i;
	return -1;
}

static int zone_offset(const char *z, long *off)
{
	static const struct {
		const char *name;
		int hours;
	} zones[] = {{"UT", 0},   {"GMT", 0},  {"Z", 0},    {"EST", -5}, {"EDT", -4}, {"CST", -6},
	             {"CDT", -5}, {"MST", -7}, {"MDT", -6}, {"PST", -8}, {"PDT", -7}};
	size_t i;

	if ((z[0] == '+' || z[0] == '-') && isdigit((unsigned char)z[1]) &&
	    isdigit((unsigned char)z[2]) && isdigit((unsigned char)z[3]) &&
	    isdigit((unsigned char)z[4])) {
		long h = (z[1] - '0') * 10 + (z[2] - '0'), m = (z[3] - '0') * 10 + (z[4] - '0');

		if (m > 59)
			return -1;
		*off = (z[0] == '-' ? -1 : 1) * (h * 3600 + m * 60);
		return 0;
	}
	for (i = 0; i < sizeof(zones) / sizeof(zones[0]); i++)
		if (strncasecmp(z, zones[i].name, strlen(zones[i].name)) == 0) {
			*off = zones[i].hours * 3600L;
			return 0;
		}
	if (isalpha((unsigned char)z[0])) { /* obsolete military zones: RFC 5322 says 0 */
		*off = 0;
		return 0;
	}
	return -1;
}

/* 1..max decimal digits at *p into *out; advances *p. */
static int digits(const char **p, int max, int *out)
{
	int n = 0, v = 0;

	while (n < max && isdigit((unsigned char)**p)) {
		v = v * 10 + (**p - '0');
		(*p)++;
		n++;
	}
	*out = v;
	return n > 0 ? 0 : -1;
}

static void blanks(const char **p)
{
	while (**p == ' ' || **p == '\t')
		(*p)++;
}

int arf_date_parse(const char *text, time_t *out)
{
	int day, year, hh, mm, ss = 0, m;
	const char *p = text, *comma = strchr(text, ',');
	struct tm tm;
	long off;
	time_t t;

	/* [day-of-week ","] day month year hour ":" minute [":" second] zone */
	if (comma != NULL)
		p = comma + 1;
	blanks(&p);
	if (digits(&p, 2, &day) < 0)
		return -1;
	blanks(&p);
	m = month_of(p);
	if (m < 0 || !isspace((unsigned char)p[3]))
		return -1;
	p += 3;
	blanks(&p);
	if (digits(&p, 4, &year) < 0 || !isspace((unsigned char)*p))
		return -1;
	blanks(&p);
	if (digits(&p, 2, &hh) < 0 || *p++ != ':' || digits(&p, 2, &mm) < 0)
		return -1;
	if (*p == ':' && (p++, digits(&p, 2, &ss) < 0))
		return -1;
	blanks(&p);
	if (year < 50)
		year += 2000;
	else if (year < 1000)
		year += 1900;
	if (day < 1 || day > 31 || hh > 23 || mm > 59 || ss > 60 || zone_offset(p, &off) < 0)
		return -1;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = year - 1900;
	tm.tm_mon = m;
	tm.tm_mday = day;
	tm.tm_hour = hh;
	tm.tm_min = mm;
	tm.tm_sec = ss;
	t = timegm(&tm);
	if (t == (time_t)-1)
		return -1;
	*out = t - off;
	return 0;
}
