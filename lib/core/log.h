/*
 * log.h - one logging path for every program.
 *
 * Lines go to stderr or syslog.  Every line can carry the id of the request
 * or session it belongs to, so that one request can be followed through the
 * log (OpenSMTPD style: "req=3f9a... lookup address ...").  Nothing secret is
 * ever passed to these functions: tokens, keys and secrets are logged by
 * their hash prefix at most.  Each line is escaped (log_escape) before it is
 * written: control bytes and invalid UTF-8 appear as \xHH.
 */
#ifndef ANCHOR_LOG_H
#define ANCHOR_LOG_H

#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <time.h>

enum log_level { LOG_LVL_ERR = 0, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

/* ident names the program; use_syslog selects syslog instead of stderr. */
void log_init(const char *ident, enum log_level level, int use_syslog);
void log_set_level(enum log_level level);
int log_level_parse(const char *name, enum log_level *out);

/* reqid may be NULL for lines that belong to no request. */
void log_msg(enum log_level level, const char *reqid, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

void log_vmsg(enum log_level level, const char *reqid, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

/*
 * One error that repeats (every attempt on a full disk fails the same way) is
 * logged once with a count, not once per occurrence: log_repeat() writes its
 * line when nothing went through r in the last window seconds and only counts
 * it otherwise; the next line after the window, or log_repeat_flush() (call it
 * now and then, e.g. from a timer), first writes "<what>: repeated N times in
 * the last T s".  Thread-safe.  Define one per kind of error:
 *   static struct log_repeat r = LOG_REPEAT_INIT(LOG_LVL_ERR, "cannot record ...", 60);
 */
struct log_repeat {
	pthread_mutex_t lock;
	enum log_level level;
	const char *what;    /* names the error in the summary line */
	unsigned window;     /* seconds */
	time_t since;        /* when the last line was written; 0: no window open */
	unsigned long count; /* occurrences held back since */
};

#define LOG_REPEAT_INIT(level, what, window)                                                       \
	{                                                                                          \
		PTHREAD_MUTEX_INITIALIZER, (level), (what), (window), 0, 0                         \
	}

void log_repeat(struct log_repeat *r, const char *reqid, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void log_repeat_flush(struct log_repeat *r);

/* Copy src[0..srclen) into dst (NUL-terminated, cut to fit len) with every control
 * byte and every byte that is not part of well-formed UTF-8 written as \xHH, so that
 * what a client sent can neither forge a log line nor put raw bytes in the log.
 * log_msg() passes every line through it.  Returns the length written. */
size_t log_escape(char *dst, size_t len, const char *src, size_t srclen);

#define log_err(id, ...) log_msg(LOG_LVL_ERR, id, __VA_ARGS__)
#define log_warn(id, ...) log_msg(LOG_LVL_WARN, id, __VA_ARGS__)
#define log_info(id, ...) log_msg(LOG_LVL_INFO, id, __VA_ARGS__)
#define log_debug(id, ...) log_msg(LOG_LVL_DEBUG, id, __VA_ARGS__)

#endif
