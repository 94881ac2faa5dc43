/*
 * signer.c - the signer process: the only holder of the relay's private
 * keys, as OpenSMTPD keeps its keys in the "ca" process.
 *
 * It holds the domains' DKIM keys (signing_keys), reads users' keys from
 * user_keys_dir when asked (cached, reloaded when the file changes) and
 * holds the report key and its chain.  It never sees a message: the relay
 * sends the few hundred bytes of header data a DKIM signature covers (which
 * must end with an unsigned DKIM-Signature for that very key) or a JWS
 * signing input, and gets the signature back.  Every key file must be
 * readable by its owner alone, as ssh insists.
 *
 * The socket and its connections are lib/core/frame's server: one thread per
 * connection, at most SIGNER_MAX_CONN; the main thread accepts and watches
 * the parent: when the parent's end of the pipe closes (or the parent dies:
 * PR_SET_PDEATHSIG) the signer ends.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "pki/cert.h"
#include "pki/name.h"
#include "pki/crypto.h"
#include "pki/jws.h"
#include "core/log.h"
#include "relay.h"
#include "signer_decrypt.h"
#include "signer_keyfile.h"
#include "signer_proto.h"

#define SIGNER_MAX_CONN 32
#define SIGNER_USER_CACHE 256

struct domain_key {
	char domain[DKIM_DOMAIN_MAX];
	char selector[DKIM_SELECTOR_MAX];
	enum dkim_alg alg;
	EVP_PKEY *key;
};

/* A user's key as last read, with what identifies the file's version. */
struct user_key {
	char addr[SIGNER_NAME_MAX];
	EVP_PKEY *key;
	enum dkim_alg alg;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
	unsigned long used;
};

struct signer {
	struct domain_key *dkeys;
	size_t ndkeys;
	int udir; /* user_keys_dir, or -1 */
	pthread_mutex_t umu;
	struct user_key users[SIGNER_USER_CACHE];
	size_t nusers;
	unsigned long tick;
	EVP_PKEY *report_key;
	char *chain_pem;
	struct signer_dec *dec; /* gateway decryption keys */
};

/* ---------------------------------------------------------------- key files */

static int selector_ok(const char *s)
{
	size_t k, n = strlen(s);

	if (n == 0 || n >= DKIM_SELECTOR_MAX || s[0] == '.' || s[n - 1] == '.')
		return 0;
	for (k = 0; k < n; k++)
		if (!((s[k] >= 'a' && s[k] <= 'z') || (s[k] >= 'A' && s[k] <= 'Z') ||
		      (s[k] >= '0' && s[k] <= '9') || s[k] == '-' || s[k] == '.' || s[k] == '_'))
			return 0;
	return 1;
}

/* One "domain:selector:keyfile" entry (text is modified). */
static int domain_key_load(struct signer *sg, char *text, struct err *e)
{
	char *sel = strchr(text, ':'), *path = sel ? strchr(sel + 1, ':') : NULL;
	struct domain_key *dk = &sg->dkeys[sg->ndkeys];
	struct stat st;
	size_t k;

	if (path == NULL)
		return err_set(e, ERR_INPUT, "bad_setting",
		               "signing_keys: \"%s\" is not domain:selector:keyfile", text);
	*sel++ = '\0';
	*path++ = '\0';
	for (k = 0; text[k]; k++)
		text[k] = (char)(text[k] >= 'A' && text[k] <= 'Z' ? text[k] + 32 : text[k]);
	if (name_check_domain(text, e) < 0 || !selector_ok(sel) || *path == '\0')
		return err_set(e, ERR_INPUT, "bad_setting",
		               "signing_keys: bad domain, selector or file in \"%s:%s:%s\"", text,
		               sel, path);
	for (k = 0; k < sg->ndkeys; k++)
		if (strcmp(sg->dkeys[k].domain, text) == 0)
			return err_set(e, ERR_INPUT, "bad_setting",
			               "signing_keys: %s has two keys; one key per domain", text);
	snprintf(dk->domain, sizeof(dk->domain), "%s", text);
	snprintf(dk->selector, sizeof(dk->selector), "%s", sel);
	if ((dk->key = relay_signer_key_read(AT_FDCWD, path, 0, &st, e)) == NULL)
		return -1;
	sg->ndkeys++; /* counted now so that it is freed even when refused below */
	if (relay_signer_dkim_key_ok(dk->key, path, &dk->alg, e) < 0)
		return -1;
	log_info(NULL, "signer: domain key d=%s s=%s a=%s from %s", dk->domain, dk->selector,
	         dkim_alg_name(dk->alg), path);
	return 0;
}

static int domain_keys_load(struct signer *sg, const char *spec, struct err *e)
{
	char *copy, *p, *save = NULL;
	size_t n = 1;
	int rc = 0;

	if (spec == NULL || *spec == '\0')
		return 0;
	for (p = (char *)spec; *p; p++)
		n += *p == ',';
	if ((sg->dkeys = calloc(n, sizeof(*sg->dkeys))) == NULL || (copy = strdup(spec)) == NULL)
		return err_set(e, ERR_INTERNAL, "internal", "out of memory");
	for (p = strtok_r(copy, ", \t", &save); p != NULL && rc == 0;
	     p = strtok_r(NULL, ", \t", &save))
		rc = domain_key_load(sg, p, e);
	free(copy);
	return rc;
}

/* The report chain, certificates only, re-encoded; its first certificate must be the key's. */
static int report_chain_load(struct signer *sg, const char *path, struct err *e)
{
	char *text = relay_signer_file_read(path, e);
	BIO *in = text ? BIO_new_mem_buf(text, -1) : NULL, *out = BIO_new(BIO_s_mem());
	X509 *c;
	int n = 0, rc = -1;
	char *mem;
	long len;

	if (text == NULL || in == NULL || out == NULL)
		goto out;
	while (n <= JWS_MAX_CHAIN && (c = PEM_read_bio_X509(in, NULL, NULL, NULL)) != NULL) {
		int ok = (n > 0 || crypto_key_matches(sg->report_key, X509_get0_pubkey(c))) &&
		         PEM_write_bio_X509(out, c);
		X509_free(c);
		if (!ok) {
			err_set(e, ERR_INPUT, "bad_setting",
			        "report_chain %s: its first certificate is not the report key's",
			        path);
			goto out;
		}
		n++;
	}
	if (n == 0 || n > JWS_MAX_CHAIN) {
		err_set(e, ERR_INPUT, "bad_setting", "report_chain %s: 1 to %d certificates", path,
		        JWS_MAX_CHAIN);
		goto out;
	}
	/* not strndup: the memory BIO's data has no NUL after it */
	len = BIO_get_mem_data(out, &mem);
	if (len >= 0 && (sg->chain_pem = malloc((size_t)len + 1)) != NULL) {
		memcpy(sg->chain_pem, mem, (size_t)len);
		sg->chain_pem[len] = '\0';
		rc = 0;
	}
out:
	if (rc < 0 && e->kind == ERR_NONE)
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
	BIO_free(in);
	BIO_free(out);
	free(text);
	return rc;
}

static int report_key_load(struct signer *sg, const char *key, const char *chain, struct err *e)
{
	struct stat st;
	struct err why = {0};

	if ((key == NULL || !*key) && (chain == NULL || !*chain))
		return 0;
	if (key == NULL || !*key || chain == NULL || !*chain)
		return err_set(e, ERR_INPUT, "bad_setting",
		               "report_key and report_chain go together");
	if ((sg->report_key = relay_signer_key_read(AT_FDCWD, key, 0, &st, e)) == NULL)
		return -1;
	if (crypto_key_check_allowed(sg->report_key, &why) < 0)
		return err_set(e, ERR_UNPROC, "weak_key", "report_key %s: %s", key, why.msg);
	if (report_chain_load(sg, chain, e) < 0)
		return -1;
	log_info(NULL, "signer: report key %s (%s)", key, jws_alg_name(sg->report_key));
	return 0;
}

/* ---------------------------------------------------------------- users' keys */

static struct user_key *user_slot(struct signer *sg, const char *addr, int make)
{
	struct user_key *u, *lru = NULL;
	size_t k;

	for (k = 0; k < sg->nusers; k++)
		if (strcmp(sg->users[k].addr, addr) == 0)
			return &sg->users[k];
	if (!make)
		return NULL;
	if (sg->nusers < SIGNER_USER_CACHE)
		return &sg->users[sg->nusers++];
	for (k = 0; k < sg->nusers; k++)
		if (lru == NULL || sg->users[k].used < lru->used)
			lru = &sg->users[k];
	u = lru;
	EVP_PKEY_free(u->key);
	memset(u, 0, sizeof(*u));
	return u;
}

static void user_forget(struct signer *sg, const char *addr)
{
	struct user_key *u = user_slot(sg, addr, 0);

	if (u != NULL) {
		EVP_PKEY_free(u->key);
		*u = sg->users[--sg->nusers];
		memset(&sg->users[sg->nusers], 0, sizeof(sg->users[0]));
	}
}

static int same_file(const struct user_key *u, const struct stat *st)
{
	return u->dev == st->st_dev && u->ino == st->st_ino && u->size == st->st_size &&
	       u->mtime.tv_sec == st->st_mtim.tv_sec && u->mtime.tv_nsec == st->st_mtim.tv_nsec;
}

/* Under umu: the user's key, from the cache while its file is unchanged. */
static EVP_PKEY *user_key_locked(struct signer *sg, const char *addr, enum dkim_alg *alg,
                                 struct err *e)
{
	char name[SIGNER_NAME_MAX + 8];
	struct user_key *u;
	struct stat st;
	EVP_PKEY *key;

	if (snprintf(name, sizeof(name), "%s.key", addr) >= (int)sizeof(name) ||
	    fstatat(sg->udir, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		user_forget(sg, addr);
		err_set(e, ERR_NOTFOUND, "no_user_key", "no key for %s", addr);
		return NULL;
	}
	u = user_slot(sg, addr, 0);
	if (u == NULL || !same_file(u, &st)) {
		user_forget(sg, addr);
		if ((key = relay_signer_key_read(sg->udir, name, 1, &st, e)) == NULL)
			return NULL;
		if (relay_signer_dkim_key_ok(key, name, alg, e) < 0) {
			EVP_PKEY_free(key);
			return NULL;
		}
		u = user_slot(sg, addr, 1);
		snprintf(u->addr, sizeof(u->addr), "%s", addr);
		u->key = key;
		u->alg = *alg;
		u->dev = st.st_dev;
		u->ino = st.st_ino;
		u->size = st.st_size;
		u->mtime = st.st_mtim;
	}
	u->used = ++sg->tick;
	*alg = u->alg;
	EVP_PKEY_up_ref(u->key);
	return u->key;
}

/* The user's key (EVP_PKEY_free it); ERR_NOTFOUND "no_user_key" when there is none. */
static EVP_PKEY *user_key_get(struct signer *sg, const char *addr, enum dkim_alg *alg,
                              struct err *e)
{
	EVP_PKEY *key;

	if (sg->udir < 0) {
		err_set(e, ERR_NOTFOUND, "no_user_key", "no users' keys here");
		return NULL;
	}
	pthread_mutex_lock(&sg->umu);
	key = user_key_locked(sg, addr, alg, e);
	pthread_mutex_unlock(&sg->umu);
	return key;
}

/* ---------------------------------------------------------------- requests */

static const struct domain_key *domain_key_find(const struct signer *sg, const char *domain)
{
	for (size_t k = 0; k < sg->ndkeys; k++)
		if (strcmp(sg->dkeys[k].domain, domain) == 0)
			return &sg->dkeys[k];
	return NULL;
}

static const char *op_name(enum signer_op op)
{
	static const char *const names[] = {"?",           "domain",    "user",
	                                    "sign-domain", "sign-user", "report-chain",
	                                    "sign-report", "decrypt"};
	return (unsigned)op < sizeof(names) / sizeof(names[0]) ? names[op] : "?";
}

/* A DKIM signature of r->data with key for d=, s= (and i=). */
static int sign_dkim(const struct signer_request *r, EVP_PKEY *key, enum dkim_alg alg,
                     const char *d, const char *s, const char *i, uint8_t *sig, size_t *siglen,
                     struct err *e)
{
	if (r->alg != alg)
		return err_set(e, ERR_CONFLICT, "alg_mismatch", "the key for %s signs %s",
		               i ? i : d, dkim_alg_name(alg));
	if (signer_dkim_data_check(r->data, r->datalen, alg, d, s, i, e) < 0)
		return -1;
	return dkim_sign_data(key, r->data, r->datalen, sig, siglen, e);
}

/* What one request's success answer holds until it is encoded. */
struct answer {
	struct frame_field f[2];
	int n;
	uint8_t sig[DKIM_SIG_MAX];
	unsigned char *jsig; /* a JWS signature, malloc'd */
	size_t siglen;
	struct smime_buf plain; /* DECRYPT: the inner entity */
	char fpr[CERT_FPR_LEN];
	EVP_PKEY *ukey; /* a user's key, referenced */
};

/* DOMAIN: the selector and a=; SIGN_DOMAIN: a signature with the domain's key. */
static int answer_domain(struct signer *sg, const struct signer_request *r, struct answer *a,
                         struct err *e)
{
	const struct domain_key *dk = domain_key_find(sg, r->name);

	if (dk == NULL)
		return err_set(e, ERR_NOTFOUND, "no_signing_key", "no signing key for %s", r->name);
	if (r->op == SIGNER_OP_DOMAIN) {
		a->f[a->n++] = frame_str(dk->selector);
		a->f[a->n++] = frame_str(dkim_alg_name(dk->alg));
		return 0;
	}
	return sign_dkim(r, dk->key, dk->alg, dk->domain, dk->selector, NULL, a->sig, &a->siglen,
	                 e);
}

/* USER: the user's a=; SIGN_USER: a signature with the user's key (i= the address). */
static int answer_user(struct signer *sg, const struct signer_request *r, struct answer *a,
                       struct err *e)
{
	enum dkim_alg alg;

	if ((a->ukey = user_key_get(sg, r->name, &alg, e)) == NULL)
		return -1;
	if (r->op == SIGNER_OP_USER) {
		a->f[a->n++] = frame_str(dkim_alg_name(alg));
		return 0;
	}
	return sign_dkim(r, a->ukey, alg, strchr(r->name, '@') + 1, SIGNER_USER_SELECTOR, r->name,
	                 a->sig, &a->siglen, e);
}

/* REPORT_CHAIN: the chain (PEM); SIGN_REPORT: a JWS signature with the report key. */
static int answer_report(struct signer *sg, const struct signer_request *r, struct answer *a,
                         struct err *e)
{
	char *in;

	if (sg->report_key == NULL)
		return err_set(e, ERR_NOTFOUND, "no_report_key", "no report key here");
	if (r->op == SIGNER_OP_REPORT_CHAIN) {
		a->f[a->n++] = frame_str(sg->chain_pem);
		return 0;
	}
	/* the field is not NUL-terminated in the frame */
	if ((in = malloc(r->datalen + 1)) == NULL)
		return -1;
	memcpy(in, r->data, r->datalen);
	in[r->datalen] = '\0';
	a->jsig = jws_sign_input(sg->report_key, in, &a->siglen, e);
	free(in);
	return a->jsig != NULL ? 0 : -1;
}

static int answer_request(struct signer *sg, const struct signer_request *r, struct answer *a,
                          struct err *e)
{
	switch (r->op) {
	case SIGNER_OP_DOMAIN:
	case SIGNER_OP_SIGN_DOMAIN:
		return answer_domain(sg, r, a, e);
	case SIGNER_OP_USER:
	case SIGNER_OP_SIGN_USER:
		return answer_user(sg, r, a, e);
	case SIGNER_OP_REPORT_CHAIN:
	case SIGNER_OP_SIGN_REPORT:
		return answer_report(sg, r, a, e);
	case SIGNER_OP_DECRYPT:
		if (signer_decrypt_run(sg->dec, r->name, r->data, r->datalen, &a->plain, a->fpr,
		                       e) < 0)
			return -1;
		a->f[a->n].p = (const uint8_t *)a->plain.data;
		a->f[a->n++].len = a->plain.len;
		a->f[a->n++] = frame_str(a->fpr);
		return 0;
	}
	return 0;
}

/* The refusal frame for e (logged here: a missing key is routine, the rest is not). */
static uint8_t *refusal(const struct signer_request *r, struct err *e, size_t *outlen)
{
	struct frame_field f[2];

	if (e->kind == ERR_NONE)
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
	if (e->kind == ERR_NOTFOUND)
		log_debug(NULL, "signer: %s %s: %s", op_name(r->op), r->name, e->msg);
	else
		log_warn(NULL, "signer: %s refused: %s (%s)", op_name(r->op), e->msg, e->code);
	f[0] = frame_str(e->code);
	f[1] = frame_str(e->msg);
	return frame_encode((uint8_t)e->kind, f, 2, outlen, e);
}

/* The answer to one request body (a whole frame, malloc'd). */
static uint8_t *handle(void *ctx, const uint8_t *body, size_t len, size_t *outlen)
{
	struct signer *sg = ctx;
	struct signer_request r;
	struct answer a;
	struct err e = {0};
	uint8_t *out = NULL;

	memset(&a, 0, sizeof(a));
	if (signer_request_parse(body, len, &r, &e) == 0 && answer_request(sg, &r, &a, &e) == 0) {
		if (a.siglen > 0) {
			a.f[a.n].p = a.jsig ? a.jsig : a.sig;
			a.f[a.n++].len = a.siglen;
		}
		log_debug(NULL, "signer: %s %s", op_name(r.op), r.name);
		out = frame_encode(FRAME_OK, a.f, a.n, outlen, &e);
	}
	if (out == NULL)
		out = refusal(&r, &e, outlen);
	EVP_PKEY_free(a.ukey);
	OPENSSL_cleanse(a.sig, sizeof(a.sig));
	free(a.jsig);
	if (a.plain.data != NULL)
		OPENSSL_cleanse(a.plain.data, a.plain.len);
	smime_buf_clear(&a.plain);
	return out;
}

/* ---------------------------------------------------------------- the process */

static void signer_free(struct signer *sg)
{
	if (sg == NULL)
		return;
	for (size_t k = 0; k < sg->ndkeys; k++)
		EVP_PKEY_free(sg->dkeys[k].key);
	free(sg->dkeys);
	for (size_t k = 0; k < sg->nusers; k++)
		EVP_PKEY_free(sg->users[k].key);
	if (sg->udir >= 0)
		close(sg->udir);
	EVP_PKEY_free(sg->report_key);
	free(sg->chain_pem);
	signer_decrypt_free(sg->dec);
	pthread_mutex_destroy(&sg->umu);
	free(sg);
}

static struct signer *signer_new(const struct relay_settings *s, struct err *e)
{
	struct signer *sg = calloc(1, sizeof(*sg));

	if (sg == NULL) {
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		return NULL;
	}
	sg->udir = -1;
	pthread_mutex_init(&sg->umu, NULL);
	if (domain_keys_load(sg, s->signing_keys, e) < 0 ||
	    report_key_load(sg, s->report_key, s->report_chain, e) < 0 ||
	    signer_decrypt_load(s->gateway_decrypt_keys, &sg->dec, e) < 0)
		goto fail;
	if (s->user_keys_dir != NULL && *s->user_keys_dir) {
		sg->udir = open(s->user_keys_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (sg->udir < 0) {
			err_set(e, ERR_INPUT, "bad_setting", "user_keys_dir %s: %s",
			        s->user_keys_dir, strerror(errno));
			goto fail;
		}
	}
	return sg;
fail:
	signer_free(sg);
	return NULL;
}

int relay_signer_main(const struct relay_settings *s, const char *socket_path, int parent_fd)
{
	struct signer *sg;
	struct err e = {0};
	int rc;

	/* Die with the parent even if it could not close the pipe (SIGKILL). */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	signal(SIGPIPE, SIG_IGN);
	if ((sg = signer_new(s, &e)) == NULL) {
		log_err(NULL, "signer: %s", e.msg);
		return 1;
	}
	log_info(NULL, "signer: ready on %s (%zu domain keys, users' keys %s, report key %s)",
	         socket_path, sg->ndkeys, sg->udir >= 0 ? s->user_keys_dir : "none",
	         sg->report_key ? "yes" : "none");
	rc = frame_serve(socket_path, parent_fd, SIGNER_MAX_CONN, handle, sg, &e);
	if (rc < 0) {
		log_err(NULL, "signer: %s", e.msg);
		signer_free(sg);
		return 1;
	}
	log_info(NULL, "signer: the relay has gone; stopping");
	if (rc == 0) /* else a thread may still use the keys: leave them */
		signer_free(sg);
	return 0;
}
