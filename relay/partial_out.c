/*
 * partial_out.c - receiver-chosen transfer, the sender's side (PROTOCOL.md §12.12): the
 * view a receiver asks for, the whole message kept for its FETCH, and the FETCH itself.
 *
 * A kept message is two files under state_dir/partial/out named by the SHA-256 of its
 * fetch token (the token itself is written nowhere but to the receiver): NAME.msg, the
 * message as it would have been sent, and NAME.meta, "peer=NAME\nexpires=UNIX\n", NAME
 * the anchored_peers name of the server the view went to (peers.c, by its certificate's
 * key).  A FETCH answers only that peer, known by its TLS client certificate's key (never
 * by an address or an EHLO name), and only before expires; FETCH ... DONE
 * (the receiver has the message and it matched) deletes them, as does any FETCH or new
 * view that finds them expired.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "deliver_conn.h"
#include "partial.h"
#include "peers.h"
#include "pki/crypto.h"
#include "relayd.h"

#define META_MAX 512

/* ---- files ---- */

int relay_partial_file_write(const char *path, const char *data, size_t len, struct err *e)
{
	char tmp[4200];
	int fd;
	size_t off = 0;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0)
		return err_set(e, ERR_INTERNAL, "partial_store", "cannot create %s: %s", tmp,
		               strerror(errno));
	while (off < len) {
		ssize_t n = write(fd, data + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	if (off < len || fsync(fd) < 0 || close(fd) < 0 || rename(tmp, path) < 0) {
		int saved = errno;
		if (off < len)
			close(fd);
		unlink(tmp);
		return err_set(e, ERR_INTERNAL, "partial_store", "cannot write %s: %s", path,
		               strerror(saved));
	}
	return 0;
}

char *relay_partial_file_read(const char *path, size_t max, size_t *len, struct err *e)
{
	FILE *f = fopen(path, "rb");
	struct stat st;
	char *buf;

	if (f == NULL) {
		err_set(e, errno == ENOENT ? ERR_NOTFOUND : ERR_INTERNAL, "partial_read", "%s: %s",
		        path, strerror(errno));
		return NULL;
	}
	if (fstat(fileno(f), &st) < 0 || st.st_size < 0 || (size_t)st.st_size > max ||
	    (buf = malloc((size_t)st.st_size + 1)) == NULL) {
		fclose(f);
		err_set(e, ERR_INTERNAL, "partial_read", "%s: unreadable or too big", path);
		return NULL;
	}
	*len = fread(buf, 1, (size_t)st.st_size, f);
	fclose(f);
	buf[*len] = '\0';
	return buf;
}

static void out_path(const struct relay_settings *s, const char *name, const char *ext, char *path,
                     size_t size)
{
	snprintf(path, size, "%s/partial/out/%s.%s", s->state_dir, name, ext);
}

static void drop(const struct relay_settings *s, const char *name)
{
	char path[4096];

	out_path(s, name, "msg", path, sizeof(path));
	unlink(path);
	out_path(s, name, "meta", path, sizeof(path));
	unlink(path);
}

struct kept {
	char peer[256];
	long long expires;
};

static int meta_read(const struct relay_settings *s, const char *name, struct kept *k,
                     struct err *e)
{
	char path[4096];
	size_t len;
	char *text;

	out_path(s, name, "meta", path, sizeof(path));
	if ((text = relay_partial_file_read(path, META_MAX, &len, e)) == NULL)
		return -1;
	memset(k, 0, sizeof(*k));
	char *nl = strchr(text, '\n'), *end = NULL;
	if (strncmp(text, "peer=", 5) == 0 && nl != NULL &&
	    (size_t)(nl - text - 5) < sizeof(k->peer) && strncmp(nl + 1, "expires=", 8) == 0) {
		memcpy(k->peer, text + 5, (size_t)(nl - text - 5));
		k->expires = strtoll(nl + 9, &end, 10);
	}
	int ok = k->peer[0] != '\0' && end != NULL && *end == '\n';

	free(text);
	return ok ? 0 : err_set(e, ERR_INTERNAL, "partial_meta", "%s is unreadable", path);
}

/* Every kept message whose time is over goes: how many. */
static unsigned sweep(const struct relay_settings *s)
{
	char dir[4096];
	DIR *d;
	struct dirent *de;
	long long now = (long long)time(NULL);
	unsigned count = 0;

	snprintf(dir, sizeof(dir), "%s/partial/out", s->state_dir);
	if ((d = opendir(dir)) == NULL)
		return 0;
	while ((de = readdir(d)) != NULL) {
		size_t n = strlen(de->d_name);
		char name[65];
		struct kept k;
		struct err e = {0};

		if (n != 69 || strcmp(de->d_name + 64, ".meta") != 0)
			continue;
		memcpy(name, de->d_name, 64);
		name[64] = '\0';
		if (meta_read(s, name, &k, &e) == 0 && k.expires <= now) {
			log_info(NULL, "partial: kept message %.12s... expired unfetched", name);
			drop(s, name);
			count++;
		}
	}
	closedir(d);
	return count;
}

unsigned relay_partial_sweep(const struct relay_settings *s)
{
	return sweep(s);
}

/* ---- the view ---- */

/* "VIEW=name" in the reply to PARTIAL; MAIL_VIEW_FULL when absent or unknown. */
static enum mail_view asked_view(const struct relay_smtp_reply *rep)
{
	const char *p = strstr(rep->text, "VIEW=");
	enum mail_view v;

	if (rep->code != 250 || p == NULL)
		return MAIL_VIEW_FULL;
	p += 5;
	if (mail_view_parse(p, strcspn(p, " \n"), &v) < 0)
		return MAIL_VIEW_FULL;
	return v;
}

/* The fetch address: partial_fetch_address, else inbound_listen. */
static int fetch_address(const struct relay_settings *s, struct relay_partial_meta *m)
{
	const char *a = s->partial_fetch_address ? s->partial_fetch_address : s->inbound_listen;
	char field[200];
	struct relay_partial_meta probe;
	struct err e = {0};
	uint8_t zero[32] = {0};
	char hex[65];

	/* read through the same parser as the receiver will */
	relay_partial_hex(zero, 32, hex);
	snprintf(field, sizeof(field), "view=hash; size=0; sha256=%s; token=%s; fetch=%s", hex, hex,
	         a ? a : "");
	if (relay_partial_meta_parse(field, strlen(field), &probe, &e) < 0)
		return -1;
	memcpy(m->host, probe.host, sizeof(m->host));
	m->port = probe.port;
	return 0;
}

/* Keep the message for peer; the meta filled in (token, hash, size). */
static int keep(const struct relay_settings *s, const char *peer, const char *body, size_t len,
                struct relay_partial_meta *m, struct err *e)
{
	uint8_t tok[32];
	char name[65], path[4096], meta[META_MAX];

	if (crypto_random_bytes(tok, sizeof(tok), e) < 0)
		return -1;
	relay_partial_hex(tok, sizeof(tok), m->token);
	crypto_sha256_hex(m->token, RELAY_PARTIAL_TOKEN_HEX, name);
	crypto_sha256_hex(body, len, m->sha256);
	m->size = len;
	out_path(s, name, "msg", path, sizeof(path));
	if (relay_partial_file_write(path, body, len, e) < 0)
		return -1;
	snprintf(meta, sizeof(meta), "peer=%s\nexpires=%lld\n", peer,
	         (long long)time(NULL) + s->partial_keep_time);
	out_path(s, name, "meta", path, sizeof(path));
	if (relay_partial_file_write(path, meta, strlen(meta), e) < 0) {
		drop(s, name);
		return -1;
	}
	return 0;
}

int relay_partial_offer(const struct relay_settings *s, struct relay_dconn *c, const char *peer,
                        const char *body, size_t len, int seconds, char **view, size_t *vlen)
{
	struct relay_smtp_reply rep;
	struct relay_partial_meta m = {0};
	struct err e = {0};
	char *v = NULL, *field = NULL;
	size_t n, fl;

	*view = NULL;
	if (relay_dconn_write(c, "PARTIAL\r\n", 9, seconds) < 0 ||
	    relay_dconn_read_reply(c, seconds, &rep) < 0)
		return RELAY_IO_FAIL;
	if ((m.view = asked_view(&rep)) == MAIL_VIEW_FULL)
		return RELAY_IO_OK;
	(void)sweep(s);
	if (peer[0] == '\0' || strpbrk(peer, " \t\r\n") != NULL || fetch_address(s, &m) < 0 ||
	    keep(s, peer, body, len, &m, &e) < 0 ||
	    (v = mail_view_build(body, len, m.view, &n, &e)) == NULL ||
	    (field = relay_partial_meta_field(&m)) == NULL) {
		log_warn(NULL, "partial: %s asked for the %s view; sending the whole message (%s)",
		         c->peer, mail_view_name(m.view), e.msg[0] ? e.msg : "no fetch address");
		free(v);
		return RELAY_IO_OK;
	}
	fl = strlen(field);
	if ((*view = malloc(fl + n + 1)) != NULL) {
		memcpy(*view, field, fl);
		memcpy(*view + fl, v, n + 1);
		*vlen = fl + n;
		log_info(NULL, "partial: %s gets the %s view (%zu of %zu octets), kept for %llds",
		         c->peer, mail_view_name(m.view), *vlen, len, s->partial_keep_time);
	}
	free(field);
	free(v);
	return RELAY_IO_OK;
}

/* ---- FETCH ---- */

struct fetch_job {
	struct relayd_conn *c;
	char token[RELAY_PARTIAL_TOKEN_HEX + 1];
	int done;                       /* FETCH token DONE */
	char peer[RELAY_PEER_NAME_MAX]; /* the client certificate's (peers.c) */
	struct smtp_reply r;
	char *msg;
	size_t len;
};

static void fetch_answer(struct fetch_job *j)
{
	const struct relay_settings *s = j->c->d->s;
	char name[65], path[4096];
	struct kept k;
	struct err e = {0};

	crypto_sha256_hex(j->token, RELAY_PARTIAL_TOKEN_HEX, name);
	if (meta_read(s, name, &k, &e) < 0) {
		relayd_reply_set(&j->r, 550, "5.7.1", "Unknown fetch token");
		return;
	}
	if (k.expires <= (long long)time(NULL)) { /* said before the sweep forgets it */
		drop(s, name);
		relayd_reply_set(&j->r, 550, "5.4.7",
		                 "The message is no longer kept (partial_keep_time is over)");
		return;
	}
	(void)sweep(s);
	if (strcmp(k.peer, j->peer) != 0) {
		relayd_reply_set(&j->r, 550, "5.7.1", "This message was not sent to %s", j->peer);
		return;
	}
	if (j->done) {
		drop(s, name);
		relayd_reply_set(&j->r, 250, "2.0.0", "Fetched; no longer kept");
		return;
	}
	out_path(s, name, "msg", path, sizeof(path));
	if ((j->msg = relay_partial_file_read(path, (size_t)s->max_message_size * 2, &j->len,
	                                      &e)) == NULL) {
		relayd_reply_set(&j->r, 451, "4.3.0", "Cannot read the kept message now");
		return;
	}
	relayd_reply_set(&j->r, 250, "2.0.0", "%zu octets follow", j->len);
}

static void fetch_work(void *arg)
{
	struct fetch_job *j = arg;

	fetch_answer(j);
	log_info(NULL, "conn %lu: %s FETCH%s by %s: %d %s", j->c->id, j->c->ip,
	         j->done ? " DONE" : "", j->peer, j->r.code, j->r.text);
}

static void fetch_done(void *arg)
{
	struct fetch_job *j = arg;

	relayd_conn_decide_data(j->c, &j->r, j->msg, j->r.code == 250 ? j->len : 0);
	relayd_conn_unref(j->c);
	free(j->msg);
	free(j);
}

/* "FETCH <token> [DONE]" outside a transaction. */
int relayd_partial_fetch_cmd(struct relayd_conn *c, const char *line, size_t len, int phase,
                             struct smtp_reply *r)
{
	struct fetch_job *j;
	const char *arg = line + 5;
	size_t alen = len > 5 ? len - 5 : 0;

	if (c->peer[0] == '\0') { /* offered to peers only (peers.c); said twice is safer */
		relayd_reply_set(r, 530, "5.7.0", "FETCH needs an anchored peer's certificate");
		return SMTP_DECIDED;
	}
	if (phase != SMTP_EXT_READY) {
		relayd_reply_set(r, 503, "5.5.1", "FETCH is not allowed during a mail transaction");
		return SMTP_DECIDED;
	}
	if (len < 6 || line[5] != ' ' ||
	    (alen != RELAY_PARTIAL_TOKEN_HEX + 1 && alen != RELAY_PARTIAL_TOKEN_HEX + 6) ||
	    (alen > RELAY_PARTIAL_TOKEN_HEX + 1 &&
	     strncasecmp(arg + 1 + RELAY_PARTIAL_TOKEN_HEX, " DONE", 5) != 0)) {
		relayd_reply_set(r, 501, "5.5.4", "Syntax: FETCH <token> [DONE]");
		return SMTP_DECIDED;
	}
	if ((j = calloc(1, sizeof(*j))) == NULL) {
		relayd_reply_set(r, 451, "4.3.0", "Out of memory");
		return SMTP_DECIDED;
	}
	memcpy(j->token, arg + 1, RELAY_PARTIAL_TOKEN_HEX);
	if (!relay_partial_is_hex(j->token, RELAY_PARTIAL_TOKEN_HEX)) {
		free(j);
		relayd_reply_set(r, 501, "5.5.4", "Syntax: FETCH <token> [DONE]");
		return SMTP_DECIDED;
	}
	j->c = c;
	j->done = alen > RELAY_PARTIAL_TOKEN_HEX + 1;
	snprintf(j->peer, sizeof(j->peer), "%s", c->peer);
	relayd_conn_ref(c);
	if (relay_pool_run(c->d->pool, fetch_work, fetch_done, j, NULL) < 0) {
		relayd_conn_unref(c);
		free(j);
		relayd_reply_set(r, 451, "4.3.0", "Busy, try again later");
		return SMTP_DECIDED;
	}
	return SMTP_PENDING;
}
