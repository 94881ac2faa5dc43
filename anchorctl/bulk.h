/*
 * bulk.h - the input of `anchorctl token issue --from FILE`: one address a
 * line, or CSV (RFC 4180 quoting) whose header names an "address" (or
 * "email") column.  Blank lines and lines starting with '#' are skipped by
 * the caller.  Pure functions over one line at a time, fuzzed.
 */
#ifndef ANCHORCTL_BULK_H
#define ANCHORCTL_BULK_H

#include "core/err.h"

#define CTL_BULK_MAX_FIELDS 64

struct ctl_bulk_fmt {
	int csv; /* else one address a line */
	int col; /* the address column (CSV) */
};

/*
 * Decide the format from the first line that is not blank or a comment:
 * with a comma it is a CSV header and must name the address column; else it is
 * a header only when it is the word "address" or "email".  *header is set when
 * the line is a header (and so holds no address).  line is modified.
 */
int ctl_bulk_detect(char *line, struct ctl_bulk_fmt *f, int *header, struct err *e);
/*
 * The address of one data line (blanks around it removed), pointing into line
 * (which is modified); NULL with e set (ERR_INPUT) when the line is not
 * well-formed CSV or has no such column.  The address itself is not checked.
 */
char *ctl_bulk_address(char *line, const struct ctl_bulk_fmt *f, struct err *e);
/* Split a CSV line in place into at most max fields; the count, or -1 with e set. */
int ctl_bulk_split(char *line, char **fields, int max, struct err *e);

#endif
