/* args.c - anchorctl's option parser; see args.h. */
#include "args.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct ctl_opt *find_opt(const struct ctl_opt *opts, const char *arg, size_t len)
{
	for (; opts->name != NULL; opts++)
		if (strlen(opts->name) == len && strncmp(opts->name, arg, len) == 0)
			return opts;
	return NULL;
}

/* One option at argv[*i]; advances *i past a separate value. */
static int parse_one(const struct ctl_opt *opts, int argc, char **argv, int *i,
                     struct ctl_args *out, char *errbuf, size_t errlen)
{
	const char *arg = argv[*i];
	const char *eq = NULL;
	const struct ctl_opt *opt;
	size_t len = strlen(arg);

	if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
		out->help = 1;
		return 0;
	}
	if (arg[1] == '-' && (eq = strchr(arg, '=')) != NULL)
		len = (size_t)(eq - arg);
	opt = find_opt(opts, arg, len);
	if (opt == NULL) {
		snprintf(errbuf, errlen, "unknown option '%.*s'", (int)len, arg);
		return -1;
	}
	if (opt->value == NULL) {
		if (eq != NULL) {
			snprintf(errbuf, errlen, "option '%s' takes no value", opt->name);
			return -1;
		}
		*opt->flag = 1;
		return 0;
	}
	if (eq != NULL) {
		*opt->value = eq + 1;
	} else if (*i + 1 < argc) {
		*opt->value = argv[++*i];
	} else {
		snprintf(errbuf, errlen, "option '%s' needs a value", opt->name);
		return -1;
	}
	if (**opt->value == '\0') {
		snprintf(errbuf, errlen, "option '%s' needs a non-empty value", opt->name);
		return -1;
	}
	return 0;
}

int ctl_args_parse(const struct ctl_opt *opts, int argc, char **argv, int stop_at_word,
                   struct ctl_args *out, char *errbuf, size_t errlen)
{
	int i, only_words = 0;

	memset(out, 0, sizeof(*out));
	out->next = argc;
	for (i = 0; i < argc; i++) {
		char *arg = argv[i];
		int is_opt = !only_words && arg[0] == '-' && arg[1] != '\0';

		if (is_opt && strcmp(arg, "--") == 0) {
			only_words = 1;
			continue;
		}
		if (is_opt) {
			if (parse_one(opts, argc, argv, &i, out, errbuf, errlen) < 0)
				return -1;
			continue;
		}
		if (stop_at_word) {
			out->next = i;
			return 0;
		}
		if (out->npos == CTL_ARGS_MAX) {
			snprintf(errbuf, errlen, "too many arguments");
			return -1;
		}
		out->pos[out->npos++] = arg;
	}
	return 0;
}

int ctl_args_int(const char *text, long long min, long long max, long long *out)
{
	char *end;
	long long v;

	if (text == NULL || *text == '\0')
		return -1;
	errno = 0;
	v = strtoll(text, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

int ctl_args_duration(const char *text, long long *seconds)
{
	static const char units[] = "smhdw";
	static const long long scale[] = {1, 60, 3600, 86400, 7 * 86400};
	const long long limit = 10LL * 366 * 86400;
	long long v = 0, mul = 1;
	const char *p = text;

	if (text == NULL || *p < '0' || *p > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		v = v * 10 + (*p - '0');
		if (v > limit)
			return -1;
	}
	if (*p != '\0') {
		const char *u = strchr(units, *p);
		if (u == NULL || p[1] != '\0')
			return -1;
		mul = scale[u - units];
	}
	if (v > limit / mul)
		return -1;
	*seconds = v * mul;
	return 0;
}

int ctl_args_take_repeated(const char *name, int *argc, char **argv, const char **vals, int max,
                           char *msg, size_t msglen)
{
	size_t nlen = strlen(name);
	int n = 0, out = 0;

	for (int i = 0; i < *argc; i++) {
		const char *v = NULL;
		if (strcmp(argv[i], "--") == 0) {
			while (i < *argc)
				argv[out++] = argv[i++];
			break;
		}
		if (strcmp(argv[i], name) == 0) {
			if (i + 1 >= *argc) {
				snprintf(msg, msglen, "option '%s' needs a value", name);
				return -1;
			}
			v = argv[++i];
		} else if (strncmp(argv[i], name, nlen) == 0 && argv[i][nlen] == '=') {
			v = argv[i] + nlen + 1;
		} else {
			argv[out++] = argv[i];
			continue;
		}
		if (*v == '\0' || n == max) {
			snprintf(msg, msglen,
			         *v == '\0' ? "option '%s' needs a non-empty value"
			                    : "option '%s' given too often",
			         name);
			return -1;
		}
		vals[n++] = v;
	}
	*argc = out;
	return n;
}
