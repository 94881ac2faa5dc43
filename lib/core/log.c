/* log.c - stderr or syslog logging with a request id per line; see log.h. */
#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <time.h>
#include <pthread.h>

#include "core/utf8.h"

static const char *log_ident = "anchor";
static enum log_level log_threshold = LOG_LVL_INFO;
static int log_to_syslog;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const level_names[] = {"error", "warning", "info", "debug"};

void log_init(const char *ident, enum log_level level, int use_syslog)
{
	log_ident = ident;
	log_threshold = level;
	log_to_syslog = use_syslog;
	if (use_syslog)
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
}

void log_set_level(enum log_level level)
{
	log_threshold = level;
}

int log_level_parse(const char *name, enum log_level *out)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcasecmp(name, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -1;
}

static int syslog_priority(enum log_level level)
{
	switch (level) {
	case LOG_LVL_ERR:
		return LOG_ERR;
	case LOG_LVL_WARN:
		return LOG_WARNING;
	case LOG_LVL_INFO:
		return LOG_INFO;
	case LOG_LVL_DEBUG:
		break;
	}
	return LOG_DEBUG;
}

size_t log_escape(char *dst, size_t len, const char *src, size_t srclen)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *s = (const unsigned char *)src;
	size_t j = 0;

	if (len == 0)
		return 0;
	for (size_t i = 0; i < srclen;) {
		size_t n = utf8_seq(s + i, srclen - i);

		if (n == 0 || s[i] < 0x20 || s[i] == 0x7f) {
			if (j + 4 >= len)
				break;
			dst[j++] = '\\';
			dst[j++] = 'x';
			dst[j++] = hex[s[i] >> 4];
			dst[j++] = hex[s[i] & 0xf];
			i++;
			continue;
		}
		if (j + n >= len)
			break;
		memcpy(dst + j, s + i, n);
		j += n;
		i += n;
	}
	dst[j] = '\0';
	return j;
}

void log_msg(enum log_level level, const char *reqid, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(level, reqid, fmt, ap);
	va_end(ap);
}

void log_vmsg(enum log_level level, const char *reqid, const char *fmt, va_list ap)
{
	char raw[2048], line[2048];
	size_t off = 0;

	if (level > log_threshold)
		return;
	if (reqid != NULL)
		off = (size_t)snprintf(raw, sizeof(raw), "req=%s ", reqid);
	if (off >= sizeof(raw))
		off = 0;
	vsnprintf(raw + off, sizeof(raw) - off, fmt, ap);
	/* Whatever a client sent and a caller echoes stays one printable line. */
	log_escape(line, sizeof(line), raw, strlen(raw));

	if (log_to_syslog) {
		syslog(syslog_priority(level), "%s", line);
		return;
	}

	struct timespec ts;
	struct tm tm;
	char stamp[32];

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	/* One lock so that lines from concurrent request threads never interleave. */
	pthread_mutex_lock(&log_lock);
	fprintf(stderr, "%s.%03ldZ %s %s: %s\n", stamp, ts.tv_nsec / 1000000L, log_ident,
	        level_names[level], line);
	pthread_mutex_unlock(&log_lock);
}

/* The count of what was held back, once its window is over; call with r->lock held. */
static void repeat_summary(struct log_repeat *r, time_t now)
{
	if (r->count > 0)
		log_msg(r->level, NULL, "%s: repeated %lu times in the last %lld s", r->what,
		        r->count, (long long)(now - r->since));
	r->count = 0;
	r->since = 0;
}

void log_repeat(struct log_repeat *r, const char *reqid, const char *fmt, ...)
{
	time_t now = time(NULL);
	va_list ap;

	pthread_mutex_lock(&r->lock);
	if (r->since != 0 && now - r->since < (time_t)r->window) {
		r->count++;
		pthread_mutex_unlock(&r->lock);
		return;
	}
	repeat_summary(r, now);
	r->since = now;
	pthread_mutex_unlock(&r->lock);
	va_start(ap, fmt);
	log_vmsg(r->level, reqid, fmt, ap);
	va_end(ap);
}

void log_repeat_flush(struct log_repeat *r)
{
	time_t now = time(NULL);

	pthread_mutex_lock(&r->lock);
	if (r->since != 0 && now - r->since >= (time_t)r->window)
		repeat_summary(r, now);
	pthread_mutex_unlock(&r->lock);
}
