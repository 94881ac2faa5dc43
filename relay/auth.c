/*
 * auth.c - SMTP AUTH on the submission side (submission_auth = required):
 * the submission_users table and the password check.
 *
 * The table ("address:crypt-hash" lines) is read at start and again when the
 * file changes; it is only touched on the event loop's thread.  A check
 * copies the hash it needs (the user's, or a dummy one for an unknown or
 * locked user, so that every attempt costs one crypt(3) and a guesser learns
 * nothing from the time taken) and runs crypt_r() on a worker.  Passwords are
 * wiped once checked and never logged.
 */
#include <crypt.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <openssl/crypto.h>

#include "core/log.h"
#include "relayd.h"

/* sha512-crypt of a random password nobody knows: the cost of a check when no user has one */
#define DUMMY_HASH                                                                                 \
	"$6$OFICJ/ZHAij.jO1L$rKtNJF/Z.xX3bXXb0GxLuQ3TStGNp/"                                       \
	"Gc6Oituktz6B5PsSZtcw8cCX9rir8Rq5Y0zz10hIz8O"                                              \
	"goCBFvxtBHgz."

struct relayd_user {
	char *address;
	char *hash;
	int locked; /* "!hash" or "*": the account exists but nobody may log in */
};

struct relayd_users {
	char *path;
	struct stat st; /* of the file as loaded: a change reloads it */
	struct relayd_user *v;
	size_t n, cap;
	const char *dummy; /* a hash of the same kind as the users' */
};

void relayd_users_free(struct relayd_users *u)
{
	if (u == NULL)
		return;
	for (size_t i = 0; i < u->n; i++) {
		free(u->v[i].address);
		free(u->v[i].hash);
	}
	free(u->v);
	free(u->path);
	free(u);
}

static struct relayd_user *users_find(const struct relayd_users *u, const char *address)
{
	for (size_t i = 0; i < u->n; i++)
		if (strcasecmp(u->v[i].address, address) == 0)
			return &u->v[i];
	return NULL;
}

int relayd_users_check(const struct relayd_users *u, const char *address, const char *pass)
{
	const struct relayd_user *x = users_find(u, address);
	/* a miss costs a crypt too, so that timing does not tell who has an account */
	int ok = relayd_auth_verify(x != NULL && !x->locked ? x->hash : u->dummy, pass);

	return ok && x != NULL && !x->locked;
}

/* "address:hash" -> a new entry; the address is a mailbox, the hash one libcrypt accepts. */
static int users_add(struct relayd_users *u, char *line, unsigned lineno, struct err *e)
{
	char *colon = strrchr(line, ':'), *hash;
	struct relayd_user *x;
	int locked, ok;

	if (colon == NULL || colon == line || colon[1] == '\0')
		return err_set(e, ERR_INPUT, "bad_config", "%s line %u: not address:hash", u->path,
		               lineno);
	*colon = '\0';
	hash = colon + 1;
	if (!smtp_mailbox_valid(line, strlen(line)))
		return err_set(e, ERR_INPUT, "bad_config", "%s line %u: '%s' is not an address",
		               u->path, lineno, line);
	if (users_find(u, line) != NULL)
		return err_set(e, ERR_INPUT, "bad_config", "%s line %u: %s is listed twice",
		               u->path, lineno, line);
	locked = hash[0] == '!' || strcmp(hash, "*") == 0;
	ok = crypt_checksalt(hash[0] == '!' ? hash + 1 : hash);
	if (strcmp(hash, "*") != 0 && ok != CRYPT_SALT_OK && ok != CRYPT_SALT_TOO_CHEAP)
		return err_set(e, ERR_INPUT, "bad_config",
		               "%s line %u: the hash of %s is not one libcrypt accepts (use $y$ "
		               "yescrypt, $2b$ bcrypt or $6$ sha512-crypt)",
		               u->path, lineno, line);
	if (ok == CRYPT_SALT_TOO_CHEAP)
		log_warn(NULL, "%s line %u: the hash of %s is cheap to attack; rehash it", u->path,
		         lineno, line);
	if (u->n == u->cap) {
		size_t cap = u->cap ? u->cap * 2 : 16;

		if ((x = realloc(u->v, cap * sizeof(*x))) == NULL)
			return err_set(e, ERR_INTERNAL, "nomem", "out of memory");
		u->v = x;
		u->cap = cap;
	}
	x = &u->v[u->n];
	x->address = strdup(line);
	x->hash = strdup(hash);
	x->locked = locked;
	if (x->address == NULL || x->hash == NULL) {
		free(x->address);
		free(x->hash);
		return err_set(e, ERR_INTERNAL, "nomem", "out of memory");
	}
	u->n++;
	return 0;
}

static int users_read(struct relayd_users *u, FILE *f, struct err *e)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	unsigned lineno = 0;
	int rc = 0;

	while (rc == 0 && (len = getline(&line, &cap, f)) >= 0) {
		char *p = line;

		lineno++;
		while (len > 0 && (p[len - 1] == '\n' || p[len - 1] == '\r' || p[len - 1] == ' ' ||
		                   p[len - 1] == '\t'))
			p[--len] = '\0';
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0' || *p == '#')
			continue;
		rc = users_add(u, p, lineno, e);
	}
	if (rc == 0 && ferror(f))
		rc = err_set(e, ERR_INTERNAL, "io", "cannot read %s: %s", u->path, strerror(errno));
	if (line != NULL)
		explicit_bzero(line, cap);
	free(line);
	return rc;
}

struct relayd_users *relayd_users_load(const char *path, struct err *e)
{
	struct relayd_users *u = calloc(1, sizeof(*u));
	FILE *f = NULL;

	if (u == NULL || (u->path = strdup(path)) == NULL) {
		err_set(e, ERR_INTERNAL, "nomem", "out of memory");
		goto fail;
	}
	if ((f = fopen(path, "re")) == NULL) {
		/* "users = /etc/x   # comment": '#' is a comment at the start of a line only */
		err_set(e, ERR_INPUT, "bad_config", "cannot open submission_users %s: %s%s", path,
		        strerror(errno),
		        strstr(path, " #") != NULL || strstr(path, "\t#") != NULL
		            ? " ('#' starts a comment only at the start of a line: the comment "
		              "is part of the path)"
		            : "");
		goto fail;
	}
	if (fstat(fileno(f), &u->st) < 0 || !S_ISREG(u->st.st_mode)) {
		err_set(e, ERR_INPUT, "bad_config", "submission_users %s is not a regular file",
		        path);
		goto fail;
	}
	/* like ssh with its keys: password hashes are for the relay's eyes only */
	if ((u->st.st_mode & 077) != 0) {
		err_set(e, ERR_INPUT, "bad_config",
		        "submission_users %s is accessible by group or others (mode %04o): "
		        "chmod 600 it",
		        path, (unsigned)(u->st.st_mode & 07777));
		goto fail;
	}
	if (users_read(u, f, e) < 0)
		goto fail;
	fclose(f);
	u->dummy = DUMMY_HASH;
	for (size_t i = 0; i < u->n; i++)
		if (!u->v[i].locked) {
			u->dummy = u->v[i].hash; /* same algorithm and cost as a real check */
			break;
		}
	return u;
fail:
	if (f != NULL)
		fclose(f);
	relayd_users_free(u);
	return NULL;
}

size_t relayd_users_count(const struct relayd_users *u)
{
	return u ? u->n : 0;
}

int relayd_auth_start(struct relayd *d, struct err *e)
{
	if (d->s->submission_listen == NULL || *d->s->submission_listen == '\0' ||
	    strcmp(d->s->submission_auth, "required") != 0)
		return 0;
	if ((d->users = relayd_users_load(d->s->submission_users, e)) == NULL)
		return -1;
	log_info(NULL, "submission: SMTP AUTH required, %zu users in %s",
	         relayd_users_count(d->users), d->s->submission_users);
	return 0;
}

void relayd_auth_stop(struct relayd *d)
{
	/* only the loop's thread reads the table (an AUTH check copies its hash) */
	relayd_users_free(d->users);
	d->users = NULL;
}

/* The file changed since it was read: read it again, keeping the old table if that fails. */
static void users_refresh(struct relayd_users **up)
{
	struct relayd_users *u = *up, *fresh;
	struct stat st;
	struct err e = {0};

	if (stat(u->path, &st) < 0 || (st.st_mtim.tv_sec == u->st.st_mtim.tv_sec &&
	                               st.st_mtim.tv_nsec == u->st.st_mtim.tv_nsec &&
	                               st.st_ino == u->st.st_ino && st.st_size == u->st.st_size))
		return;
	if ((fresh = relayd_users_load(u->path, &e)) == NULL) {
		log_err(NULL, "%s (still using the users read before)", e.msg);
		u->st = st; /* say it once per change */
		return;
	}
	log_info(NULL, "%s changed: %zu users", u->path, fresh->n);
	relayd_users_free(u);
	*up = fresh;
}

int relayd_auth_verify(const char *hash, const char *pass)
{
	struct crypt_data *cd = calloc(1, sizeof(*cd));
	const char *out;
	size_t hl = strlen(hash);
	int ok = 0;

	if (cd == NULL)
		return 0;
	out = crypt_r(pass, hash, cd);
	/* a failure is "*0"/"*1" or NULL, never equal to a hash that passed crypt_checksalt */
	if (out != NULL && strlen(out) == hl && CRYPTO_memcmp(out, hash, hl) == 0)
		ok = 1;
	explicit_bzero(cd, sizeof(*cd));
	free(cd);
	return ok;
}

/* ------------------------------------------------------------------ the check, on a worker */

struct auth_job {
	struct relayd_conn *c;
	char mech[8];
	char user[SMTP_AUTH_FIELD_MAX];
	char pass[SMTP_AUTH_FIELD_MAX];
	char *hash;
	int known; /* the user exists and is not locked */
	int ok;
};

static void auth_job_free(struct auth_job *j)
{
	free(j->hash);
	explicit_bzero(j, sizeof(*j));
	free(j);
}

static void auth_work(void *arg)
{
	struct auth_job *j = arg;

	/* the crypt runs for unknown users too: same time either way */
	j->ok = relayd_auth_verify(j->hash, j->pass) && j->known;
	explicit_bzero(j->pass, sizeof(j->pass));
}

static void auth_done(void *arg)
{
	struct auth_job *j = arg;
	struct relayd_conn *c = j->c;
	struct smtp_reply r;

	if (j->ok) {
		relayd_reply_set(&r, 235, "2.7.0", "Authentication successful");
		log_info(NULL, "conn %lu: %s authenticated as <%s> (%s)", c->id, c->ip, j->user,
		         j->mech);
	} else {
		relayd_reply_set(&r, 535, "5.7.8", "Authentication credentials invalid");
		log_info(NULL, "conn %lu: %s: AUTH %s failed for <%s>%s", c->id, c->ip, j->mech,
		         j->user, j->known ? "" : " (no such user)");
	}
	relayd_conn_decide(c, &r);
	relayd_conn_unref(c);
	auth_job_free(j);
}

int relayd_auth_on_auth(void *ctx, struct smtp_session *s, const char *mech, const char *user,
                        const char *pass, struct smtp_reply *r)
{
	struct relayd_conn *c = ctx;
	struct relayd *d = c->d;
	const struct relayd_user *x;
	struct auth_job *j;

	(void)s;
	if (d->users == NULL) {
		relayd_reply_set(r, 454, "4.7.0", "Temporary authentication failure");
		return SMTP_DECIDED;
	}
	users_refresh(&d->users);
	x = users_find(d->users, user);
	if ((j = calloc(1, sizeof(*j))) == NULL)
		goto unavailable;
	j->c = c;
	snprintf(j->mech, sizeof(j->mech), "%s", mech);
	snprintf(j->user, sizeof(j->user), "%s", user);
	snprintf(j->pass, sizeof(j->pass), "%s", pass);
	j->known = x != NULL && !x->locked;
	if ((j->hash = strdup(j->known ? x->hash : d->users->dummy)) == NULL)
		goto unavailable;
	relayd_conn_ref(c);
	if (relay_pool_run(d->pool, auth_work, auth_done, j, NULL) < 0) {
		relayd_conn_unref(c);
		goto unavailable;
	}
	return SMTP_PENDING;
unavailable:
	if (j != NULL)
		auth_job_free(j);
	relayd_reply_set(r, 454, "4.7.0", "Temporary authentication failure");
	return SMTP_DECIDED;
}

const char *relayd_auth_user(const struct relayd_conn *c)
{
	return c->side == RELAYD_SUBMISSION ? smtp_session_auth_user(c->smtp) : NULL;
}

int relayd_auth_owns(const struct relayd_conn *c, const char *address)
{
	const char *user = relayd_auth_user(c);

	return user != NULL && address != NULL && address[0] != '\0' &&
	       strcasecmp(user, address) == 0;
}
