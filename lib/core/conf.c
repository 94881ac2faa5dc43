/*
 * conf.c - Postfix-style "key = value" configuration from one typed table;
 * see conf.h.
 *
 * The text is split into logical lines first (a physical line that starts
 * with a blank continues the previous one; its indent becomes one space), then
 * each logical line is "name = value" and goes through conf_set(), the same
 * path as a default and as a command-line -o override.  So a value is checked
 * identically wherever it comes from.
 *
 * The settings struct must start zeroed (or hold values from an earlier
 * load): setting a string frees the string it replaces.
 */
#include "core/conf.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CONF_FILE_MAX (1024 * 1024) /* a configuration file is small; refuse anything bigger */
#define CONF_SHOW_MAX 64            /* how much of a bad value an error message repeats */

/* Where a parameter's value lives inside the settings struct. */
static void *conf_field(const struct conf_param *p, void *settings)
{
	return (char *)settings + p->offset;
}

static const void *conf_cfield(const struct conf_param *p, const void *settings)
{
	return (const char *)settings + p->offset;
}

static const struct conf_param *conf_find(const struct conf_param *table, const char *name)
{
	for (const struct conf_param *p = table; p->name != NULL; p++) {
		if (strcmp(p->name, name) == 0)
			return p;
	}
	return NULL;
}

static int conf_bad(struct err *e, const struct conf_param *p, const char *value, const char *why)
{
	return err_set(e, ERR_INPUT, "bad_config", "%s = %.*s: %s", p->name, CONF_SHOW_MAX, value,
	               why);
}

/* Decimal integer with an optional sign; *end points after the digits. */
static int conf_parse_number(const char *s, long long *out, const char **end)
{
	char *stop;

	if (!isdigit((unsigned char)s[0]) && !(s[0] == '-' && isdigit((unsigned char)s[1])))
		return -1;
	errno = 0;
	*out = strtoll(s, &stop, 10);
	if (errno == ERANGE)
		return -1;
	*end = stop;
	return 0;
}

/* multiply by unit, refusing to overflow */
static int conf_scale(long long *v, long long unit)
{
	if (*v > LLONG_MAX / unit || *v < LLONG_MIN / unit)
		return -1;
	*v *= unit;
	return 0;
}

static int conf_duration_unit(const char *suffix, long long *unit)
{
	static const struct {
		const char *name;
		long long seconds;
	} units[] = {
	    {"", 1}, {"s", 1}, {"m", 60}, {"h", 3600}, {"d", 86400}, {"w", 604800},
	};

	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcasecmp(suffix, units[i].name) == 0) {
			*unit = units[i].seconds;
			return 0;
		}
	}
	return -1;
}

/* "64k", "1m", "1g", "1t", binary multiples; "kb"/"kib" spellings accepted too. */
static int conf_size_unit(const char *suffix, long long *unit)
{
	static const char letters[] = "kmgt";
	const char *hit;

	if (suffix[0] == '\0' || strcasecmp(suffix, "b") == 0) {
		*unit = 1;
		return 0;
	}
	hit = strchr(letters, tolower((unsigned char)suffix[0]));
	if (hit == NULL)
		return -1;
	if (suffix[1] != '\0' && strcasecmp(suffix + 1, "b") != 0 &&
	    strcasecmp(suffix + 1, "ib") != 0)
		return -1;
	*unit = 1LL << (10 * (hit - letters + 1));
	return 0;
}

static int conf_parse_bool(const char *s, int *out)
{
	static const char *const yes[] = {"yes", "true", "on", "1"};
	static const char *const no[] = {"no", "false", "off", "0"};

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = 1;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = 0;
			return 0;
		}
	}
	return -1;
}

/* min == max == 0 in the table means "no bounds". */
static int conf_check_bounds(const struct conf_param *p, const char *value, long long v,
                             struct err *e)
{
	char why[96];

	if (p->min == 0 && p->max == 0)
		return 0;
	if (v >= p->min && v <= p->max)
		return 0;
	snprintf(why, sizeof(why), "must be between %lld and %lld", p->min, p->max);
	return conf_bad(e, p, value, why);
}

static int conf_parse_scaled(const struct conf_param *p, const char *value, long long *out,
                             struct err *e)
{
	const char *end;
	long long v, unit;
	int bad_unit;

	if (conf_parse_number(value, &v, &end) < 0)
		return conf_bad(e, p, value, "not a number");
	if (p->type == CONF_INT) {
		if (*end != '\0')
			return conf_bad(e, p, value, "not a number");
	} else {
		bad_unit = p->type == CONF_DURATION ? conf_duration_unit(end, &unit)
		                                    : conf_size_unit(end, &unit);
		if (bad_unit < 0)
			return conf_bad(e, p, value,
			                p->type == CONF_DURATION
			                    ? "unknown unit (use s, m, h, d or w)"
			                    : "unknown unit (use k, m, g or t)");
		if (v < 0)
			return conf_bad(e, p, value, "must not be negative");
		if (conf_scale(&v, unit) < 0)
			return conf_bad(e, p, value, "too large");
	}
	if (conf_check_bounds(p, value, v, e) < 0)
		return -1;
	*out = v;
	return 0;
}

static int conf_set_param(const struct conf_param *p, void *settings, const char *value,
                          struct err *e)
{
	long long n;
	int b;
	char *s, **slot;

	switch (p->type) {
	case CONF_STR:
		slot = conf_field(p, settings);
		s = NULL;
		if (value != NULL && (s = strdup(value)) == NULL)
			return err_set(e, ERR_INTERNAL, "no_memory", "out of memory");
		free(*slot);
		*slot = s;
		return 0;
	case CONF_BOOL:
		if (value == NULL) {
			b = 0;
		} else if (conf_parse_bool(value, &b) < 0) {
			return conf_bad(e, p, value, "must be yes or no");
		}
		memcpy(conf_field(p, settings), &b, sizeof(b));
		return 0;
	case CONF_INT:
	case CONF_DURATION:
	case CONF_SIZE:
		n = 0;
		if (value != NULL && conf_parse_scaled(p, value, &n, e) < 0)
			return -1;
		memcpy(conf_field(p, settings), &n, sizeof(n));
		return 0;
	}
	return err_set(e, ERR_INTERNAL, "bad_config", "%s: unknown parameter type", p->name);
}

int conf_set(const struct conf_param *table, void *settings, const char *name, const char *value,
             struct err *e)
{
	const struct conf_param *p = conf_find(table, name);

	if (p == NULL)
		return err_set(e, ERR_INPUT, "bad_config", "unknown parameter \"%.*s\"",
		               CONF_SHOW_MAX, name);
	return conf_set_param(p, settings, value, e);
}

int conf_defaults(const struct conf_param *table, void *settings, struct err *e)
{
	struct err inner;

	for (const struct conf_param *p = table; p->name != NULL; p++) {
		if (conf_set_param(p, settings, p->def, &inner) < 0)
			/* A default that does not parse is a bug in the table. */
			return err_set(e, ERR_INTERNAL, "bad_config", "built-in default: %s",
			               inner.msg);
	}
	return 0;
}

static char *conf_trim(char *s)
{
	char *end;

	while (*s == ' ' || *s == '\t')
		s++;
	end = s + strlen(s);
	while (end > s && isspace((unsigned char)end[-1]))
		end--;
	*end = '\0';
	return s;
}

static int conf_valid_name(const char *s)
{
	if (*s == '\0')
		return 0;
	for (; *s != '\0'; s++) {
		if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-' && *s != '.')
			return 0;
	}
	return 1;
}

/* One logical line: "name = value". */
static int conf_apply_line(const struct conf_param *table, void *settings, char *line,
                           struct err *e)
{
	char *eq = strchr(line, '=');
	char *name, *value;

	if (eq == NULL)
		return err_set(e, ERR_INPUT, "bad_config",
		               "expected \"name = value\", got \"%.*s\"", CONF_SHOW_MAX,
		               conf_trim(line));
	*eq = '\0';
	name = conf_trim(line);
	value = conf_trim(eq + 1);
	if (!conf_valid_name(name))
		return err_set(e, ERR_INPUT, "bad_config", "bad parameter name \"%.*s\"",
		               CONF_SHOW_MAX, name);
	return conf_set(table, settings, name, value, e);
}

static int conf_is_blank_or_comment(const char *line, size_t len)
{
	size_t i = 0;

	while (i < len && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r'))
		i++;
	return i == len || line[i] == '#';
}

/* Prefix an error with "name:line: " so the person knows where to look. */
static int conf_at(struct err *e, const char *name, unsigned line)
{
	char msg[ERR_MSG_MAX];

	snprintf(msg, sizeof(msg), "%s", e->msg);
	if (snprintf(e->msg, sizeof(e->msg), "%s:%u: %s", name, line, msg) >= (int)sizeof(e->msg))
		e->msg[sizeof(e->msg) - 1] = '\0'; /* a cut message still says where */
	return -1;
}

/*
 * Walk the physical lines, gathering each logical line (first line plus its
 * continuations) into one buffer before applying it.
 */
static int conf_parse_text(const struct conf_param *table, void *settings, const char *name,
                           const char *buf, size_t len, struct err *e)
{
	char *logical = malloc(len + 1);
	size_t used = 0, pos = 0;
	unsigned lineno = 0, start_line = 0;
	int have = 0, rc = -1;

	if (logical == NULL)
		return err_set(e, ERR_INTERNAL, "no_memory", "out of memory");
	while (pos < len) {
		const char *line = buf + pos;
		const char *nl = memchr(line, '\n', len - pos);
		size_t n = nl != NULL ? (size_t)(nl - line) : len - pos;

		pos += n + (nl != NULL);
		lineno++;
		if (memchr(line, '\0', n) != NULL) {
			err_set(e, ERR_INPUT, "bad_config", "NUL byte in line");
			conf_at(e, name, lineno);
			goto out;
		}
		if (conf_is_blank_or_comment(line, n))
			continue;
		if (line[0] == ' ' || line[0] == '\t') {
			if (!have) {
				err_set(e, ERR_INPUT, "bad_config",
				        "continuation line without a parameter before it");
				conf_at(e, name, lineno);
				goto out;
			}
			/* joined by one space, as the continuation's indent is layout */
			while (n > 0 && (*line == ' ' || *line == '\t')) {
				line++;
				n--;
			}
			logical[used++] = ' ';
		} else {
			if (have) {
				logical[used] = '\0';
				if (conf_apply_line(table, settings, logical, e) < 0) {
					conf_at(e, name, start_line);
					goto out;
				}
			}
			have = 1;
			used = 0;
			start_line = lineno;
		}
		memcpy(logical + used, line, n);
		used += n;
	}
	if (have) {
		logical[used] = '\0';
		if (conf_apply_line(table, settings, logical, e) < 0) {
			conf_at(e, name, start_line);
			goto out;
		}
	}
	rc = 0;
out:
	free(logical);
	return rc;
}

int conf_load_buffer(const struct conf_param *table, void *settings, const char *name,
                     const char *buf, size_t len, struct err *e)
{
	if (conf_defaults(table, settings, e) < 0)
		return -1;
	return conf_parse_text(table, settings, name != NULL ? name : "(buffer)", buf, len, e);
}

static int conf_read_file(const char *path, char **out, size_t *outlen, struct err *e)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t len;

	if (f == NULL) {
		err_set(e, ERR_INPUT, "bad_config", "%s: %s", path, strerror(errno));
		return -1; /* spelled out: callers rely on *out only after 0 */
	}
	buf = malloc(CONF_FILE_MAX + 1);
	if (buf == NULL) {
		err_set(e, ERR_INTERNAL, "no_memory", "out of memory");
		goto fail;
	}
	len = fread(buf, 1, CONF_FILE_MAX + 1, f);
	if (ferror(f)) {
		err_set(e, ERR_INPUT, "bad_config", "%s: read error", path);
		goto fail;
	}
	if (len > CONF_FILE_MAX) {
		err_set(e, ERR_INPUT, "bad_config", "%s: larger than %d bytes", path,
		        CONF_FILE_MAX);
		goto fail;
	}
	fclose(f);
	*out = buf;
	*outlen = len;
	return 0;
fail:
	free(buf);
	fclose(f);
	return -1;
}

int conf_load(const struct conf_param *table, void *settings, const char *path, struct err *e)
{
	char *buf;
	size_t len;
	int rc;

	if (path == NULL)
		return conf_defaults(table, settings, e);
	if (conf_read_file(path, &buf, &len, e) < 0)
		return -1;
	rc = conf_load_buffer(table, settings, path, buf, len, e);
	free(buf);
	return rc;
}

void conf_dump(const struct conf_param *table, const void *settings, FILE *out)
{
	for (const struct conf_param *p = table; p->name != NULL; p++) {
		const void *field = conf_cfield(p, settings);
		const char *s;
		long long n;
		int b;

		switch (p->type) {
		case CONF_STR:
			memcpy(&s, field, sizeof(s));
			if (s == NULL || s[0] == '\0')
				fprintf(out, "%s =\n", p->name);
			else
				fprintf(out, "%s = %s\n", p->name, s);
			break;
		case CONF_BOOL:
			memcpy(&b, field, sizeof(b));
			fprintf(out, "%s = %s\n", p->name, b ? "yes" : "no");
			break;
		case CONF_INT:
		case CONF_DURATION:
		case CONF_SIZE:
			memcpy(&n, field, sizeof(n));
			fprintf(out, "%s = %lld\n", p->name, n);
			break;
		}
	}
}

/* The parameter name of one of the kinds asked (a bit per enum conf_type), or NULL. */
static const struct conf_param *conf_typed(const struct conf_param *table, const char *name,
                                           unsigned kinds, struct err *e)
{
	const struct conf_param *p = conf_find(table, name);

	if (p == NULL || (kinds & (1u << p->type)) == 0) {
		err_set(e, ERR_INTERNAL, "internal", "no %s setting of the kind its user reads",
		        name);
		return NULL;
	}
	return p;
}

int conf_get_str(const struct conf_param *table, const void *settings, const char *name,
                 const char **out, struct err *e)
{
	const struct conf_param *p = conf_typed(table, name, 1u << CONF_STR, e);

	if (p == NULL)
		return -1;
	memcpy(out, conf_cfield(p, settings), sizeof(*out));
	return 0;
}

int conf_get_bool(const struct conf_param *table, const void *settings, const char *name, int *out,
                  struct err *e)
{
	const struct conf_param *p = conf_typed(table, name, 1u << CONF_BOOL, e);

	if (p == NULL)
		return -1;
	memcpy(out, conf_cfield(p, settings), sizeof(*out));
	return 0;
}

int conf_get_num(const struct conf_param *table, const void *settings, const char *name,
                 long long *out, struct err *e)
{
	const struct conf_param *p =
	    conf_typed(table, name, 1u << CONF_INT | 1u << CONF_DURATION | 1u << CONF_SIZE, e);

	if (p == NULL)
		return -1;
	memcpy(out, conf_cfield(p, settings), sizeof(*out));
	return 0;
}

void conf_free(const struct conf_param *table, void *settings)
{
	if (table == NULL || settings == NULL)
		return;
	for (const struct conf_param *p = table; p->name != NULL; p++) {
		if (p->type == CONF_STR) {
			char **slot = conf_field(p, settings);

			free(*slot);
			*slot = NULL;
		}
	}
}
