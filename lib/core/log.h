/*
 * log.h - one logging path for every program.
 *
 * Lines go to stderr or syslog.  Every line can carry the id of the request
 * or session it belongs to, so that one request can be followed through the
 * log (OpenSMTPD style: "req=3f9a... lookup address ...").  Nothing secret is
 * ever passed to these functions: tokens, keys and secrets are logged by
 * their hash prefix at most.
 */
#ifndef ANCHOR_LOG_H
#define ANCHOR_LOG_H

enum log_level { LOG_LVL_ERR = 0, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

/* ident names the program; use_syslog selects syslog instead of stderr. */
void log_init(const char *ident, enum log_level level, int use_syslog);
void log_set_level(enum log_level level);
int log_level_parse(const char *name, enum log_level *out);

/* reqid may be NULL for lines that belong to no request. */
void log_msg(enum log_level level, const char *reqid, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define log_err(id, ...) log_msg(LOG_LVL_ERR, id, __VA_ARGS__)
#define log_warn(id, ...) log_msg(LOG_LVL_WARN, id, __VA_ARGS__)
#define log_info(id, ...) log_msg(LOG_LVL_INFO, id, __VA_ARGS__)
#define log_debug(id, ...) log_msg(LOG_LVL_DEBUG, id, __VA_ARGS__)

#endif
