/*
 * cmd_bulk.c - `anchorctl token issue --from FILE --out OUT`: enrollment tokens
 * for thousands of addresses of one domain (PROTOCOL.md §5.2).
 *
 * The whole input is read and checked first: every bad line (not an address,
 * another domain, a repeat) is reported with its line number and issued
 * nothing.  OUT (0600, "address,token" CSV) is both the result and the state:
 * each token is appended, in one write and synced, as soon as the server
 * answers, and a rerun skips every address OUT already holds, so an interrupted
 * run resumes without a second token for an address done.  (A kill between the
 * server's answer and that write loses one token, which then simply expires.)
 * Tokens go to OUT only: never to standard output or the terminal.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bulk.h"
#include "cmd.h"
#include "names.h"
#include "output.h"
#include "pki/name.h"
#include "progress.h"

#define TTL_MIN 60LL
#define TTL_MAX (30LL * 86400)
#define RETRIES 4          /* a 429 or 503 is tried again, after 1, 2, 4 s */
#define GIVE_UP_IN_A_ROW 5 /* the server is down or refuses everything: stop */

struct bulk {
	const char *out_path;
	int fd;
	char *domain;   /* malloc'd */
	json_t *done;   /* address -> true: already in OUT */
	json_t *seen;   /* address -> line: in this input */
	json_t *todo;   /* [[line, address]...] */
	json_t *bad;    /* [{line, text, error}] */
	json_t *failed; /* [{line, address, error, message}] */
	long long issued, skipped, not_tried, ttl;
	struct ctl_progress pg;
};

static void bad_line(struct bulk *b, long line, const char *text, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void bad_line(struct bulk *b, long line, const char *text, const char *fmt, ...)
{
	char msg[ERR_MSG_MAX + 64];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "anchorctl: line %ld: %s\n", line, msg);
	json_array_append_new(b->bad, json_pack("{s:I, s:s, s:s}", "line", (json_int_t)line, "text",
	                                        text, "error", msg));
}

/* ---- OUT: what earlier runs issued ---- */

/* Every "address,token" line of OUT is an address done; a last line without its newline
 * (a write cut short) gets one, so that the next line starts clean. */
static int load_done(struct bulk *b, struct err *e)
{
	FILE *f = fopen(b->out_path, "r");
	char *line = NULL, *comma;
	size_t cap = 0;
	ssize_t n;
	int torn = 0;

	if (f == NULL)
		return errno == ENOENT ? 0
		                       : err_set(e, ERR_INPUT, "unreadable", "%s: %s", b->out_path,
		                                 strerror(errno));
	while ((n = getline(&line, &cap, f)) > 0) {
		torn = line[n - 1] != '\n';
		line[strcspn(line, "\r\n")] = '\0';
		comma = strchr(line, ',');
		if (comma == NULL || comma[1] == '\0' || strcmp(line, "address,token") == 0)
			continue;
		*comma = '\0';
		json_object_set_new(b->done, ctl_name_lower(line), json_true());
	}
	free(line);
	fclose(f);
	if (torn && (b->fd = open(b->out_path, O_WRONLY | O_APPEND | O_CLOEXEC)) >= 0) {
		if (write(b->fd, "\n", 1) != 1)
			return err_set(e, ERR_INTERNAL, "write_failed", "%s: %s", b->out_path,
			               strerror(errno));
		close(b->fd);
		b->fd = -1;
	}
	return 0;
}

static int open_out(struct bulk *b, struct err *e)
{
	static const char header[] = "address,token\n";
	struct stat st;

	b->fd = open(b->out_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (b->fd < 0)
		return err_set(e, ERR_INPUT, "unwritable", "%s: %s", b->out_path, strerror(errno));
	/* Tokens are secrets: whatever mode the file had, only its owner reads it now. */
	if (fstat(b->fd, &st) < 0 || !S_ISREG(st.st_mode) || fchmod(b->fd, 0600) < 0)
		return err_set(e, ERR_INPUT, "unwritable", "%s: not a regular file of ours",
		               b->out_path);
	if (st.st_size == 0 && write(b->fd, header, sizeof(header) - 1) != sizeof(header) - 1)
		return err_set(e, ERR_INTERNAL, "write_failed", "%s: %s", b->out_path,
		               strerror(errno));
	return 0;
}

/* ---- the input ---- */

/* One data line: an address of the domain, not seen before in this input. */
static void take_line(struct bulk *b, long lineno, char *line, const struct ctl_bulk_fmt *f)
{
	char *copy = strdup(line), *addr;
	struct err e = {0};
	json_t *prev;

	if (copy == NULL)
		return;
	if ((addr = ctl_bulk_address(line, f, &e)) == NULL) {
		bad_line(b, lineno, copy, "%s", e.msg);
	} else if (name_check_address(ctl_name_lower(addr), &e) < 0) {
		bad_line(b, lineno, copy, "'%s' is not a mail address: %s", addr, e.msg);
	} else if (b->domain == NULL && (b->domain = strdup(ctl_name_domain_of(addr))) == NULL) {
		bad_line(b, lineno, copy, "out of memory");
	} else if (strcmp(ctl_name_domain_of(addr), b->domain) != 0) {
		bad_line(b, lineno, copy, "%s is not in the domain %s", addr, b->domain);
	} else if ((prev = json_object_get(b->seen, addr)) != NULL) {
		bad_line(b, lineno, copy, "%s repeats line %lld", addr,
		         (long long)json_integer_value(prev));
	} else {
		json_object_set_new(b->seen, addr, json_integer(lineno));
		json_array_append_new(b->todo, json_pack("[I, s]", (json_int_t)lineno, addr));
	}
	free(copy);
}

static int read_input(struct bulk *b, const char *from, struct err *e)
{
	FILE *f = strcmp(from, "-") == 0 ? stdin : fopen(from, "r");
	struct ctl_bulk_fmt fmt = {0};
	char *line = NULL, *p;
	size_t cap = 0;
	long lineno = 0;
	int started = 0, header, rc = 0;

	if (f == NULL)
		return err_set(e, ERR_INPUT, "unreadable", "%s: %s", from, strerror(errno));
	while (rc == 0 && getline(&line, &cap, f) > 0) {
		lineno++;
		line[strcspn(line, "\r\n")] = '\0';
		for (p = line; *p == ' ' || *p == '\t'; p++)
			;
		if (*p == '\0' || *p == '#')
			continue;
		if (!started) {
			char *copy = strdup(line);

			started = 1;
			if (copy == NULL)
				rc = err_set(e, ERR_INTERNAL, "internal", "out of memory");
			else if (ctl_bulk_detect(copy, &fmt, &header, e) < 0)
				rc = err_set(e, ERR_INPUT, e->code, "line %ld: %s", lineno, e->msg);
			free(copy);
			if (rc < 0 || header)
				continue;
		}
		take_line(b, lineno, line, &fmt);
	}
	free(line);
	if (f != stdin)
		fclose(f);
	return rc;
}

/* ---- issuing ---- */

static int issue_one(struct bulk *b, const struct ctl_client *c, const char *path, const char *addr,
                     struct err *e)
{
	json_t *body = b->ttl > 0
	                   ? json_pack("{s:s, s:I}", "address", addr, "ttl", (json_int_t)b->ttl)
	                   : json_pack("{s:s}", "address", addr);
	json_t *answer = NULL;
	const char *token;
	char rec[CTL_TOKEN_MAX + 512];
	int rc = -1, len;

	for (int i = 0; i < RETRIES; i++) {
		memset(e, 0, sizeof(*e));
		json_decref(answer);
		answer = NULL;
		if ((rc = ctl_client_call(c, "POST", path, body, &answer, e)) == 0 ||
		    (e->kind != ERR_RATE && e->kind != ERR_TEMP))
			break;
		sleep(1u << i);
	}
	if (rc == 0) {
		rc = -1;
		if ((token = json_string_value(json_object_get(answer, "token"))) == NULL)
			err_set(e, ERR_INTERNAL, "bad_response", "the answer holds no token");
		else if ((len = snprintf(rec, sizeof(rec), "%s,%s\n", addr, token)) < 0 ||
		         (size_t)len >= sizeof(rec))
			err_set(e, ERR_INTERNAL, "bad_response", "the token is too long");
		/* One write per line: a rerun sees either the whole line or none of it. */
		else if (write(b->fd, rec, (size_t)len) != len || fdatasync(b->fd) < 0)
			err_set(e, ERR_INTERNAL, "write_failed", "%s: %s", b->out_path,
			        strerror(errno));
		else
			rc = 0;
		explicit_bzero(rec, sizeof(rec));
	}
	json_decref(body);
	json_decref(answer);
	return rc;
}

/* Issue every address not done yet; stops early when the server refuses the admin or
 * keeps failing (the rest then count as not tried). */
static void issue_all(struct bulk *b, const struct ctl_client *c, const char *path)
{
	size_t i, n = json_array_size(b->todo);
	int in_a_row = 0;

	ctl_progress_start(&b->pg, stderr, "issuing tokens", n);
	for (i = 0; i < n; i++) {
		json_t *item = json_array_get(b->todo, i);
		const char *addr = json_string_value(json_array_get(item, 1));
		json_int_t line = json_integer_value(json_array_get(item, 0));
		struct err e = {0};

		if (json_object_get(b->done, addr) != NULL) {
			b->skipped++;
			ctl_progress_step(&b->pg, 0);
			continue;
		}
		if (issue_one(b, c, path, addr, &e) == 0) {
			b->issued++;
			in_a_row = 0;
			ctl_progress_step(&b->pg, 0);
			continue;
		}
		ctl_progress_note(&b->pg, "anchorctl: line %lld: %s: %s: %s", (long long)line, addr,
		                  e.code, e.msg);
		json_array_append_new(b->failed,
		                      json_pack("{s:I, s:s, s:s, s:s}", "line", line, "address",
		                                addr, "error", e.code, "message", e.msg));
		ctl_progress_step(&b->pg, 1);
		if (e.kind == ERR_AUTH || e.kind == ERR_FORBIDDEN ||
		    ++in_a_row >= GIVE_UP_IN_A_ROW) {
			ctl_progress_note(&b->pg,
			                  "anchorctl: stopping after this failure; rerun to go on");
			i++;
			break;
		}
	}
	b->not_tried = (long long)(n - i);
	ctl_progress_end(&b->pg);
}

static int summary(const struct ctl *ctl, const struct bulk *b)
{
	size_t i;
	json_t *f;
	int failed =
	    json_array_size(b->failed) > 0 || json_array_size(b->bad) > 0 || b->not_tried > 0;

	if (ctl->json) {
		json_t *o = json_pack("{s:s, s:I, s:I, s:I, s:O, s:O}", "output", b->out_path,
		                      "issued", (json_int_t)b->issued, "already_issued",
		                      (json_int_t)b->skipped, "not_tried", (json_int_t)b->not_tried,
		                      "failed", b->failed, "bad_lines", b->bad);
		ctl_out_json(stdout, o);
		json_decref(o);
	}
	fprintf(stderr,
	        "anchorctl: %lld tokens issued to %s, %lld already there, %zu failed, %zu bad "
	        "lines, %lld not tried\n",
	        b->issued, b->out_path, b->skipped, json_array_size(b->failed),
	        json_array_size(b->bad), b->not_tried);
	json_array_foreach(b->failed, i, f)
	{
		fprintf(stderr, "anchorctl: failed: line %lld: %s: %s\n",
		        (long long)json_integer_value(json_object_get(f, "line")),
		        json_string_value(json_object_get(f, "address")),
		        json_string_value(json_object_get(f, "error")));
	}
	return failed ? CTL_FAIL : CTL_OK;
}

static int bulk_run(struct ctl *ctl, const struct ctl_cmd *cmd, struct bulk *b, const char *from)
{
	char token[CTL_TOKEN_MAX] = "";
	struct ctl_client client;
	struct err e = {0};
	char *path = NULL;
	int status = CTL_FAIL;

	if (read_input(b, from, &e) < 0 || load_done(b, &e) < 0)
		return ctl_fail(&e);
	if (b->domain == NULL) {
		fprintf(stderr, "anchorctl: %s holds no address to issue a token for\n", from);
		return summary(ctl, b) == CTL_OK ? CTL_OK : CTL_FAIL;
	}
	if (open_out(b, &e) < 0)
		return ctl_fail(&e);
	if (ctl_admin_client(ctl, cmd, b->domain, token, &client, &status) < 0)
		goto out;
	if ((path = ctl_api_path("domains", b->domain, "/tokens")) == NULL) {
		status = ctl_fail(&(struct err){ERR_INTERNAL, "internal", "out of memory"});
		goto out;
	}
	issue_all(b, &client, path);
	status = summary(ctl, b);
out:
	explicit_bzero(token, sizeof(token));
	free(path);
	return status;
}

int ctl_bulk_token_issue(struct ctl *ctl, const struct ctl_cmd *cmd, const char *from,
                         const char *out, const char *domain, const char *ttl)
{
	struct bulk b = {.out_path = out, .fd = -1};
	int status;

	if (out == NULL)
		return ctl_usage(cmd, "--from needs --out FILE: the tokens go there, never to the "
		                      "terminal");
	if (ttl != NULL && ctl_args_int(ttl, TTL_MIN, TTL_MAX, &b.ttl) < 0)
		return ctl_usage(cmd, "--ttl must be %lld to %lld seconds", TTL_MIN, TTL_MAX);
	if (domain != NULL && (b.domain = strdup(domain)) != NULL &&
	    ctl_arg_domain(cmd, b.domain, &status) < 0) {
		free(b.domain);
		return status;
	}
	b.done = json_object();
	b.seen = json_object();
	b.todo = json_array();
	b.bad = json_array();
	b.failed = json_array();
	status = bulk_run(ctl, cmd, &b, from);
	if (b.fd >= 0)
		close(b.fd);
	free(b.domain);
	json_decref(b.done);
	json_decref(b.seen);
	json_decref(b.todo);
	json_decref(b.bad);
	json_decref(b.failed);
	return status;
}
