/* bulk.c - the lines of a bulk onboarding file; see bulk.h. */
#include "bulk.h"

#include <string.h>
#include <strings.h>

static char *trim(char *s)
{
	char *end;

	while (*s == ' ' || *s == '\t')
		s++;
	end = s + strlen(s);
	while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r' || end[-1] == '\n'))
		*--end = '\0';
	return s;
}

/* One quoted field starting after its opening quote at *p; unquoted in place ("" -> "). */
static int quoted_field(char **p, char **field, struct err *e)
{
	char *r = *p, *w = *p;

	*field = w;
	for (;;) {
		if (*r == '\0')
			return err_set(e, ERR_INPUT, "bad_line", "a quoted field is not closed");
		if (*r == '"' && r[1] == '"') {
			*w++ = '"';
			r += 2;
		} else if (*r == '"') {
			r++;
			break;
		} else {
			*w++ = *r++;
		}
	}
	while (*r == ' ' || *r == '\t' || *r == '\r')
		r++;
	if (*r != ',' && *r != '\0')
		return err_set(e, ERR_INPUT, "bad_line", "text after a closing quote");
	*w = '\0';
	*p = r;
	return 0;
}

int ctl_bulk_split(char *line, char **fields, int max, struct err *e)
{
	char *p = line;
	int n = 0;

	for (;;) {
		char *start;

		if (n == max)
			return err_set(e, ERR_INPUT, "bad_line", "more than %d fields", max);
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '"') {
			p++;
			if (quoted_field(&p, &fields[n], e) < 0)
				return -1;
			n++;
		} else {
			start = p;
			while (*p != ',' && *p != '\0')
				p++;
			fields[n++] = start;
		}
		if (*p == '\0')
			break;
		*p++ = '\0'; /* the comma */
	}
	for (int i = 0; i < n; i++)
		fields[i] = trim(fields[i]);
	return n;
}

static int is_address_word(const char *s)
{
	return strcasecmp(s, "address") == 0 || strcasecmp(s, "email") == 0;
}

int ctl_bulk_detect(char *line, struct ctl_bulk_fmt *f, int *header, struct err *e)
{
	char *fields[CTL_BULK_MAX_FIELDS];
	int n;

	f->csv = strchr(line, ',') != NULL;
	f->col = 0;
	*header = 0;
	if (!f->csv) {
		*header = is_address_word(trim(line));
		return 0;
	}
	if ((n = ctl_bulk_split(line, fields, CTL_BULK_MAX_FIELDS, e)) < 0)
		return -1;
	for (int i = 0; i < n; i++) {
		if (is_address_word(fields[i])) {
			f->col = i;
			*header = 1;
			return 0;
		}
	}
	return err_set(e, ERR_INPUT, "no_address_column",
	               "a CSV file starts with a header naming its \"address\" column");
}

char *ctl_bulk_address(char *line, const struct ctl_bulk_fmt *f, struct err *e)
{
	char *fields[CTL_BULK_MAX_FIELDS];
	int n;

	if (!f->csv)
		return trim(line);
	if ((n = ctl_bulk_split(line, fields, CTL_BULK_MAX_FIELDS, e)) < 0)
		return NULL;
	if (f->col >= n) {
		err_set(e, ERR_INPUT, "bad_line",
		        "no address column (%d fields, the address is #%d)", n, f->col + 1);
		return NULL;
	}
	return fields[f->col];
}
