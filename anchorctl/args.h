/*
 * args.h - a small, table-driven option parser for anchorctl's commands.
 *
 * Options and positional arguments may be interleaved ("lookup address a@b
 * --json"); "--" ends the options.  Long options take their value as the next
 * argument or after '=' ("--dir DIR", "--dir=DIR"); short options as the next
 * argument ("-s URL").  "-h" and "--help" set the help flag.  The parser only
 * points into argv: nothing is copied or allocated.
 */
#ifndef ANCHORCTL_ARGS_H
#define ANCHORCTL_ARGS_H

#include <stddef.h>

struct ctl_opt {
	const char *name;   /* "--dir" or "-s" */
	const char **value; /* set for options that take a value, else NULL */
	int *flag;          /* set to 1 for flags (value == NULL) */
};

#define CTL_ARGS_MAX 64

struct ctl_args {
	char *pos[CTL_ARGS_MAX]; /* positional arguments, in order */
	int npos;
	int help;
	int next; /* with stop_at_word: index of the first positional argument */
};

/*
 * Parse argv[0..argc-1] against opts (ending with a NULL name).  With
 * stop_at_word set, parsing stops at the first positional argument (for the
 * global options before the command).  Returns 0, or -1 with a message for
 * the user in errbuf.
 */
int ctl_args_parse(const struct ctl_opt *opts, int argc, char **argv, int stop_at_word,
                   struct ctl_args *out, char *errbuf, size_t errlen);

/* Parse a duration: a whole number with an optional unit s, m, h, d or w (seconds when
 * none), up to ten years; returns 0 or -1. */
int ctl_args_duration(const char *text, long long *seconds);

/* Parse a decimal integer within min..max; returns 0 or -1. */
int ctl_args_int(const char *text, long long min, long long max, long long *out);

/*
 * The parser keeps one value per option; options such as --server and --pin
 * may repeat.  Take every "NAME VALUE" / "NAME=VALUE" out of argv into vals
 * (at most max), leaving the rest in order for ctl_parse.  Returns the count,
 * or -1 (usage message in msg).
 */
int ctl_args_take_repeated(const char *name, int *argc, char **argv, const char **vals, int max,
                           char *msg, size_t msglen);

#endif
