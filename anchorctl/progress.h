/*
 * progress.h - progress of a long run (bulk token issuance, the audit of a
 * large log) on standard error: a bar redrawn in place on a terminal, plain
 * lines at every tenth otherwise (a log or a pipe gets no carriage returns).
 * Notes (a bad line, a failure) go out as whole lines in both cases.
 */
#ifndef ANCHORCTL_PROGRESS_H
#define ANCHORCTL_PROGRESS_H

#include <stdint.h>
#include <stdio.h>

struct ctl_progress {
	FILE *out;
	const char *what; /* "issuing tokens" */
	uint64_t total;   /* 0: unknown */
	uint64_t done, failed;
	int tty;            /* redraw in place */
	int drawn;          /* a bar is on the current line */
	uint64_t next_line; /* plain mode: print when done reaches it */
	long long last_ms;  /* tty mode: last redraw */
};

/* Start on out (stderr), bar or lines as isatty(out) says. */
void ctl_progress_start(struct ctl_progress *p, FILE *out, const char *what, uint64_t total);
/* One more item done, failed or not. */
void ctl_progress_step(struct ctl_progress *p, int failed);
/* A whole line (printf-style), above the bar on a terminal. */
void ctl_progress_note(struct ctl_progress *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The final state, then a newline on a terminal. */
void ctl_progress_end(struct ctl_progress *p);
/* The bar for done of total, width cells, into buf (pure, for the unit test). */
void ctl_progress_bar(uint64_t done, uint64_t total, int width, char *buf, size_t len);

#endif
