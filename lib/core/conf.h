/*
 * conf.h - Postfix-style "key = value" configuration from one typed table.
 *
 * A program declares its parameters once, as an array of struct conf_param
 * ending with an entry whose name is NULL: name, type, default, bounds, and
 * where the value lives in the program's own settings struct.  conf_load()
 * applies the defaults, reads the file and checks every value; an unknown
 * key, a bad number or a value out of bounds is an error that names the file
 * and line.  Programs offer a check-only mode (-n) that loads the file,
 * prints the effective settings with conf_dump() and exits.
 *
 * File syntax: one "name = value" per line; '#' starts a comment line;
 * leading/trailing blanks are ignored; a line starting with a blank continues
 * the previous one (as in Postfix main.cf).
 */
#ifndef ANCHOR_CONF_H
#define ANCHOR_CONF_H

#include <stddef.h>
#include <stdio.h>

#include "core/err.h"

enum conf_type {
	CONF_STR,      /* char * (owned by the settings struct, freed by conf_free) */
	CONF_INT,      /* long long, bounded by min..max */
	CONF_BOOL,     /* int: yes/no, true/false, on/off, 1/0 */
	CONF_DURATION, /* long long seconds: "30", "30s", "5m", "2h", "7d" */
	CONF_SIZE,     /* long long bytes: "512", "64k", "1m", "1g" */
};

struct conf_param {
	const char *name;
	enum conf_type type;
	const char *def; /* textual default, parsed like a file value; NULL = unset */
	long long min;   /* bounds for INT/DURATION/SIZE (inclusive), */
	long long max;   /* none when min == max == 0 */
	size_t offset;   /* offsetof(settings struct, field) */
	const char *help;
};

/* Apply every default. */
int conf_defaults(const struct conf_param *table, void *settings, struct err *e);

/* Defaults, then the file (path may be NULL for defaults only). */
int conf_load(const struct conf_param *table, void *settings, const char *path, struct err *e);

/* Defaults, then the text buf[0..len) as if it were a file called name (used by
 * conf_load and by the fuzzer).  Errors are prefixed "name:line: ". */
int conf_load_buffer(const struct conf_param *table, void *settings, const char *name,
                     const char *buf, size_t len, struct err *e);

/* Set one parameter from text (used for the file and for -o name=value). */
int conf_set(const struct conf_param *table, void *settings, const char *name, const char *value,
             struct err *e);

/* Print "name = value" for every parameter, in table order. */
void conf_dump(const struct conf_param *table, const void *settings, FILE *out);

/* The value of the parameter name in settings, for code that programs share and whose
 * tables name it alike (lib/http's server settings): 0, or -1 with ERR_INTERNAL when
 * the table has no parameter of that name and kind (a string; a boolean; a number, which
 * is an INT, a DURATION or a SIZE). */
int conf_get_str(const struct conf_param *table, const void *settings, const char *name,
                 const char **out, struct err *e);
int conf_get_bool(const struct conf_param *table, const void *settings, const char *name, int *out,
                  struct err *e);
int conf_get_num(const struct conf_param *table, const void *settings, const char *name,
                 long long *out, struct err *e);

/* Free the strings a settings struct owns.  Accepts NULL. */
void conf_free(const struct conf_param *table, void *settings);

#endif
