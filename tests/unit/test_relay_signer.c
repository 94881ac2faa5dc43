/*
 * test_relay_signer.c - the signer process and its client: a real signer is
 * forked against a temporary directory of generated keys and asked over its
 * socket.  What it signs must verify with lib/dkim (and lib/jws); what it
 * must refuse (key files others can read, garbage, data that is not a
 * DKIM-Signature's) it refuses, and survives.
 *
 * RELAY_SIGNER_DUMP=DIR also writes the signed test messages and the key
 * records there (ed.eml, rsa.eml, *.rec) for an ad hoc check with dkimpy.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/pem.h>

#include "pki/cert.h"
#include "pki/crypto.h"
#include "mail/dkim.h"
#include "pki/jws.h"
#include "core/log.h"
#include "relay.h"
#include "signer_proto.h"

static const char msg[] = "From: Alice <alice@ed.example>\r\n"
                          "To: bob@example.net\r\n"
                          "Subject: Lunch  on\r\n"
                          "\tThursday\r\n"
                          "Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
                          "Message-ID: <1@ed.example>\r\n"
                          "\r\n"
                          "Hello Bob,  \r\n"
                          "see you  at noon.\r\n";

static char dir[40], sock[100];
static EVP_PKEY *ed_key, *rsa_key, *user_key, *root_key, *issuer_key, *report_key;
static char *ed_rec, *rsa_rec, *user_rec;
static char root_pin[CRYPTO_PIN_MAX];
static struct relay_settings settings;
static pid_t signer_pid = -1;
static int signer_pipe = -1;
static struct relay_signer_client *client;

/* ---------------------------------------------------------------- fixtures */

static char *path_in_dir(const char *name)
{
	char *p = NULL;

	if (asprintf(&p, "%s/%s", dir, name) < 0)
		abort();
	return p;
}

static void write_key(const char *name, EVP_PKEY *key)
{
	char *p = path_in_dir(name);
	struct err e = {0};

	assert_int_equal(crypto_key_write_private(p, key, &e), 0);
	free(p);
}

/* The report key's certificate chain: leaf, issuer, root. */
static void write_chain(void)
{
	struct cert_issue req = {CERT_PURPOSE_SIGNING, "reports.ed.example",
	                         "0b6f5c0e-4d3a-4c8e-9a57-6a1f1d0e8a12", 30};
	struct err e = {0};
	X509 *root, *issuer, *leaf;
	char *p = path_in_dir("chain.pem");
	FILE *f = fopen(p, "w");

	root_key = crypto_key_generate(KEY_ED25519, 0, &e);
	issuer_key = crypto_key_generate(KEY_P256, 0, &e);
	report_key = crypto_key_generate(KEY_P256, 0, &e);
	assert_non_null(report_key);
	root = cert_make_root(root_key, "ed.example", 30, &e);
	issuer = cert_make_issuer(issuer_key, root, root_key, "ed.example", 30, &e);
	leaf = cert_issue_leaf(&req, report_key, issuer, issuer_key, &e);
	assert_non_null(leaf);
	assert_non_null(f);
	assert_true(PEM_write_X509(f, leaf) && PEM_write_X509(f, issuer) &&
	            PEM_write_X509(f, root));
	fclose(f);
	assert_int_equal(crypto_key_pin(root_key, root_pin, &e), 0);
	X509_free(root);
	X509_free(issuer);
	X509_free(leaf);
	free(p);
	write_key("report.key", report_key);
}

/* Fork a signer on settings; 0 once its socket answers. */
static int signer_start_at(const struct relay_settings *s, const char *path, pid_t *pid, int *wfd)
{
	int pfd[2];

	if (pipe(pfd) < 0)
		return -1;
	*pid = fork();
	if (*pid == 0) {
		close(pfd[1]);
		_exit(relay_signer_main(s, path, pfd[0]));
	}
	close(pfd[0]);
	*wfd = pfd[1];
	for (int k = 0; k < 500; k++) {
		struct sockaddr_un sa = {.sun_family = AF_UNIX};
		int fd = socket(AF_UNIX, SOCK_STREAM, 0), ok;
		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
		ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
		close(fd);
		if (ok)
			return 0;
		if (waitpid(*pid, NULL, WNOHANG) == *pid) {
			*pid = -1;
			return -1;
		}
		usleep(10000);
	}
	return -1;
}

static int signer_start(const struct relay_settings *s, pid_t *pid, int *wfd)
{
	return signer_start_at(s, sock, pid, wfd);
}

/* Close the pipe (the "parent" goes away); the signer's exit status. */
static int signer_stop(pid_t pid, int wfd)
{
	int status = -1;

	close(wfd);
	if (pid > 0 && waitpid(pid, &status, 0) != pid)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static int setup(void **state)
{
	struct err e = {0};
	char *users;

	log_init("test_relay_signer", LOG_LVL_ERR, 0);
	snprintf(dir, sizeof(dir), "/tmp/relay-signer-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(sock, sizeof(sock), "%s/run/signer.sock", dir);
	ed_key = crypto_key_generate(KEY_ED25519, 0, &e);
	rsa_key = crypto_key_generate(KEY_RSA, 2048, &e);
	user_key = crypto_key_generate(KEY_ED25519, 0, &e);
	if (ed_key == NULL || rsa_key == NULL || user_key == NULL)
		return -1;
	ed_rec = dkim_key_record(ed_key, &e);
	rsa_rec = dkim_key_record(rsa_key, &e);
	user_rec = dkim_key_record(user_key, &e);
	write_key("ed.key", ed_key);
	write_key("rsa.key", rsa_key);
	users = path_in_dir("users");
	mkdir(users, 0700);
	write_key("users/alice@ed.example.key", user_key);
	write_key("users/carol@ed.example.key", user_key);
	write_chain();
	if (asprintf(&settings.signing_keys,
	             "ed.example:sel1:%s/ed.key, rsa.example:sel2:%s/rsa.key", dir, dir) < 0)
		return -1;
	settings.user_keys_dir = users;
	settings.report_key = path_in_dir("report.key");
	settings.report_chain = path_in_dir("chain.pem");
	{
		/* carol's key file is readable by others: it must not be used */
		char *carol = path_in_dir("users/carol@ed.example.key");
		chmod(carol, 0644);
		free(carol);
	}
	if (signer_start(&settings, &signer_pid, &signer_pipe) < 0)
		return -1;
	client = relay_signer_client_new(sock, &e);
	return client ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];
	int status;

	relay_signer_client_free(client);
	status = signer_stop(signer_pid, signer_pipe);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		return -1;
	EVP_PKEY_free(ed_key);
	EVP_PKEY_free(rsa_key);
	EVP_PKEY_free(user_key);
	EVP_PKEY_free(root_key);
	EVP_PKEY_free(issuer_key);
	EVP_PKEY_free(report_key);
	free(ed_rec);
	free(rsa_rec);
	free(user_rec);
	free(settings.signing_keys);
	free(settings.user_keys_dir);
	free(settings.report_key);
	free(settings.report_chain);
	return status == 0 ? 0 : -1; /* the signer ended cleanly when its parent went */
}

/* ---------------------------------------------------------------- verifying */

static int lookup(const char *sel, const char *dom, void *ctx, char **rec, struct err *e)
{
	const char *r = NULL;

	if (strcmp(sel, "sel1") == 0 && strcmp(dom, "ed.example") == 0)
		r = ed_rec;
	else if (strcmp(sel, "sel2") == 0 && strcmp(dom, "rsa.example") == 0)
		r = rsa_rec;
	else if (strcmp(sel, SIGNER_USER_SELECTOR) == 0 && strcmp(dom, "ed.example") == 0)
		r = user_rec; /* in real life: the key server's /v1/addresses/{i} */
	if (r == NULL)
		return err_set(e, ERR_NOTFOUND, "no_key", "no key");
	*rec = strdup(r);
	return 0;
}

/* fields prepended to msg; every signature verified; *n results (free them). */
static struct dkim_result *verify_signed(const char *fields, const char *name, size_t *n)
{
	struct dkim_result *res = NULL;
	struct err e = {0};
	char *signed_msg = NULL, *dump = getenv("RELAY_SIGNER_DUMP");

	assert_true(asprintf(&signed_msg, "%s%s", fields, msg) > 0);
	assert_int_equal(dkim_verify_all(signed_msg, strlen(signed_msg), lookup, NULL, &res, n, &e),
	                 0);
	if (dump != NULL) {
		char path[512];
		FILE *f;
		snprintf(path, sizeof(path), "%s/%s.eml", dump, name);
		if ((f = fopen(path, "w")) != NULL) {
			fputs(signed_msg, f);
			fclose(f);
		}
		snprintf(path, sizeof(path), "%s/keys.txt", dump);
		if ((f = fopen(path, "w")) != NULL) {
			fprintf(f, "sel1._domainkey.ed.example %s\n", ed_rec);
			fprintf(f, "sel2._domainkey.rsa.example %s\n", rsa_rec);
			fprintf(f, "%s._domainkey.ed.example %s\n", SIGNER_USER_SELECTOR, user_rec);
			fclose(f);
		}
	}
	free(signed_msg);
	return res;
}

static void test_sign_ed25519_with_user(void **state)
{
	struct err e = {0};
	char *fields = NULL;
	struct dkim_result *r;
	size_t n = 0;

	assert_int_equal(relay_signer_sign(client, msg, strlen(msg), "ED.example",
	                                   "Alice@ed.example", &fields, &e),
	                 0);
	/* the domain's signature first (on top), then the user's; each ends in CRLF */
	assert_int_equal(strncmp(fields, "DKIM-Signature: v=1; a=ed25519-sha256;", 38), 0);
	assert_non_null(strstr(fields, "\r\nDKIM-Signature: "));
	assert_string_equal(fields + strlen(fields) - 2, "\r\n");
	r = verify_signed(fields, "ed", &n);
	assert_int_equal(n, 2);
	assert_int_equal(r[0].status, DKIM_PASS);
	assert_string_equal(r[0].d, "ed.example");
	assert_string_equal(r[0].s, "sel1");
	assert_string_equal(r[0].i, "@ed.example");
	assert_int_equal(r[1].status, DKIM_PASS);
	assert_string_equal(r[1].s, SIGNER_USER_SELECTOR);
	assert_string_equal(r[1].i, "alice@ed.example");
	assert_string_equal(r[1].d, "ed.example");
	free(r);
	free(fields);
}

static void test_sign_rsa_without_user_key(void **state)
{
	struct err e = {0};
	char *fields = NULL;
	struct dkim_result *r;
	size_t n = 0;

	assert_int_equal(relay_signer_sign(client, msg, strlen(msg), "rsa.example",
	                                   "bob@rsa.example", &fields, &e),
	                 0);
	r = verify_signed(fields, "rsa", &n);
	assert_int_equal(n, 1);
	assert_int_equal(r[0].status, DKIM_PASS);
	assert_string_equal(r[0].a, "rsa-sha256");
	assert_string_equal(r[0].s, "sel2");
	free(r);
	free(fields);
}

/* carol's key file is mode 0644: no user signature, the domain's still made. */
static void test_user_key_mode_refused(void **state)
{
	struct err e = {0};
	char *fields = NULL;
	struct dkim_result *r;
	size_t n = 0;

	assert_int_equal(relay_signer_sign(client, msg, strlen(msg), "ed.example",
	                                   "carol@ed.example", &fields, &e),
	                 0);
	r = verify_signed(fields, "carol", &n);
	assert_int_equal(n, 1);
	assert_int_equal(r[0].status, DKIM_PASS);
	free(r);
	free(fields);
}

/* A tampered message fails: the signature is really over it. */
static void test_tampered_fails(void **state)
{
	struct err e = {0};
	char *fields = NULL, *m = NULL, *p;
	struct dkim_result *res = NULL;
	size_t n = 0;

	assert_int_equal(relay_signer_sign(client, msg, strlen(msg), "ed.example",
	                                   "alice@ed.example", &fields, &e),
	                 0);
	assert_true(asprintf(&m, "%s%s", fields, msg) > 0);
	p = strstr(m, "noon");
	p[0] = 'N';
	assert_int_equal(dkim_verify_all(m, strlen(m), lookup, NULL, &res, &n, &e), 0);
	assert_int_equal(n, 2);
	assert_int_equal(res[0].status, DKIM_FAIL);
	assert_int_equal(res[1].status, DKIM_FAIL);
	free(res);
	free(m);
	free(fields);
}

static void test_has_domain_and_missing_key(void **state)
{
	struct err e = {0};
	char *fields = (char *)1;

	assert_int_equal(relay_signer_has_domain(client, "ed.example", &e), 1);
	assert_int_equal(relay_signer_has_domain(client, "Rsa.Example", &e), 1);
	assert_int_equal(relay_signer_has_domain(client, "other.example", &e), 0);
	assert_int_equal(e.kind, ERR_NONE);
	assert_int_equal(relay_signer_has_domain(client, "bad domain", &e), 0);
	assert_int_equal(
	    relay_signer_sign(client, msg, strlen(msg), "bad domain", NULL, &fields, &e), -1);
	assert_string_equal(e.code, "no_signing_key");
	err_clear(&e);
	assert_int_equal(
	    relay_signer_sign(client, msg, strlen(msg), "other.example", NULL, &fields, &e), -1);
	assert_int_equal(e.kind, ERR_NOTFOUND);
	assert_string_equal(e.code, "no_signing_key");
	assert_null(fields);
}

static void test_jws(void **state)
{
	static const char payload[] = "{\"category\":\"spam\",\"reporter\":\"ed.example\"}";
	const char *pins[1] = {root_pin};
	struct jws_verified v;
	struct err e = {0};
	char *jws = NULL;

	assert_int_equal(relay_signer_sign_jws(client, payload, "anchor-report+jws", &jws, &e), 0);
	assert_int_equal(jws_verify(jws, strlen(jws), pins, 1, &v, &e), 0);
	assert_string_equal(v.payload, payload);
	assert_string_equal(v.typ, "anchor-report+jws");
	jws_verified_free(&v);
	free(jws);
}

/* ---------------------------------------------------------------- raw protocol */

static int raw_connect(void)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct timeval tv = {5, 0};

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

/* Send bytes; read one answer frame: its type (and first field as text), or -1 on EOF. */
static int raw_ask(int fd, const void *req, size_t len, char *field0, size_t cap)
{
	uint8_t hdr[4], *body;
	struct frame_msg m;
	struct err e = {0};
	size_t blen;
	int type;

	assert_int_equal(send(fd, req, len, MSG_NOSIGNAL), (ssize_t)len);
	if (recv(fd, hdr, 4, MSG_WAITALL) != 4)
		return -1;
	assert_int_equal(frame_len(hdr, &blen, &e), 0);
	body = malloc(blen);
	assert_int_equal(recv(fd, body, blen, MSG_WAITALL), (ssize_t)blen);
	assert_int_equal(frame_parse(body, blen, &m, &e), 0);
	type = m.type;
	if (field0 != NULL) {
		field0[0] = '\0';
		if (m.n > 0)
			snprintf(field0, cap, "%.*s", (int)m.f[0].len, (const char *)m.f[0].p);
	}
	free(body);
	return type;
}

static int raw_request(int fd, uint8_t op, const struct frame_field *f, int n, char *field0,
                       size_t cap)
{
	struct err e = {0};
	size_t len = 0;
	uint8_t *req = frame_encode(op, f, n, &len, &e);
	int type;

	assert_non_null(req);
	type = raw_ask(fd, req, len, field0, cap);
	free(req);
	return type;
}

static void test_garbage_refused_signer_survives(void **state)
{
	static const uint8_t bad_fields[] = {0, 0, 0, 7, 1, 1, 0, 0, 0, 9, 'x'};
	static const uint8_t trailing[] = {0, 0, 0, 4, 5, 0, 'x', 'y'};
	static const uint8_t too_big[] = {0x7f, 0xff, 0xff, 0xff};
	struct frame_field f[3];
	char code[128], *fields = NULL;
	struct err e = {0};
	int fd = raw_connect();

	assert_int_equal(raw_request(fd, 99, NULL, 0, code, sizeof(code)), ERR_INPUT);
	assert_string_equal(code, "unknown_op");
	assert_int_equal(raw_ask(fd, bad_fields, sizeof(bad_fields), code, sizeof(code)),
	                 ERR_INPUT);
	assert_string_equal(code, "bad_frame");
	assert_int_equal(raw_ask(fd, trailing, sizeof(trailing), code, sizeof(code)), ERR_INPUT);
	/* the wrong number of fields */
	f[0] = frame_str("ed.example");
	assert_int_equal(raw_request(fd, SIGNER_OP_DOMAIN, f, 0, code, sizeof(code)), ERR_INPUT);
	/* still in step: a real question gets a real answer */
	assert_int_equal(raw_request(fd, SIGNER_OP_DOMAIN, f, 1, code, sizeof(code)), FRAME_OK);
	assert_string_equal(code, "sel1");
	/* a key is not an oracle: the data must be a DKIM-Signature's for that key */
	f[1] = frame_str("ed25519-sha256");
	f[2] = frame_str("from:mallory\r\nsubject:anything");
	assert_int_equal(raw_request(fd, SIGNER_OP_SIGN_DOMAIN, f, 3, code, sizeof(code)),
	                 ERR_FORBIDDEN);
	assert_string_equal(code, "not_dkim_data");
	f[2] = frame_str("from:a\r\ndkim-signature:v=1; a=ed25519-sha256; d=rsa.example; s=sel1; "
	                 "bh=x; b=");
	assert_int_equal(raw_request(fd, SIGNER_OP_SIGN_DOMAIN, f, 3, code, sizeof(code)),
	                 ERR_FORBIDDEN);
	f[2] = frame_str("from:a\r\ndkim-signature:v=1; a=ed25519-sha256; d=ed.example; s=sel1; "
	                 "bh=x; b=");
	assert_int_equal(raw_request(fd, SIGNER_OP_SIGN_DOMAIN, f, 3, code, sizeof(code)),
	                 FRAME_OK);
	/* the wrong algorithm for the key */
	f[1] = frame_str("rsa-sha256");
	assert_int_equal(raw_request(fd, SIGNER_OP_SIGN_DOMAIN, f, 3, code, sizeof(code)),
	                 ERR_CONFLICT);
	/* no path out of the users' directory */
	f[0] = frame_str("../../ed@ed.example");
	assert_int_equal(raw_request(fd, SIGNER_OP_USER, f, 1, code, sizeof(code)), ERR_INPUT);
	f[0] = frame_str("a/../../ed@ed.example");
	assert_int_equal(raw_request(fd, SIGNER_OP_USER, f, 1, code, sizeof(code)), ERR_INPUT);
	f[0] = frame_str("alice@ed.example");
	assert_int_equal(raw_request(fd, SIGNER_OP_USER, f, 1, code, sizeof(code)), FRAME_OK);
	assert_string_equal(code, "ed25519-sha256");
	f[0] = frame_str("carol@ed.example");
	assert_int_equal(raw_request(fd, SIGNER_OP_USER, f, 1, code, sizeof(code)), ERR_FORBIDDEN);
	assert_string_equal(code, "key_mode");
	f[0] = frame_str("dave@ed.example");
	assert_int_equal(raw_request(fd, SIGNER_OP_USER, f, 1, code, sizeof(code)), ERR_NOTFOUND);
	/* the report key signs JWS signing inputs only */
	f[0] = frame_str("not a signing input");
	assert_int_equal(raw_request(fd, SIGNER_OP_SIGN_REPORT, f, 1, code, sizeof(code)),
	                 ERR_INPUT);
	/* a frame too big: an answer, then the connection ends */
	assert_int_equal(raw_ask(fd, too_big, sizeof(too_big), code, sizeof(code)), ERR_TOOBIG);
	assert_int_equal(recv(fd, code, 1, 0), 0);
	close(fd);
	/* random bytes then a hang-up mid-frame */
	fd = raw_connect();
	assert_int_equal(send(fd, "\0\0\1\0garbage", 11, MSG_NOSIGNAL), 11);
	close(fd);
	/* the signer is still there */
	assert_int_equal(
	    relay_signer_sign(client, msg, strlen(msg), "ed.example", NULL, &fields, &e), 0);
	free(fields);
}

/* ---------------------------------------------------------------- concurrency and restarts */

static void *sign_many(void *arg)
{
	long fails = 0;

	for (int k = 0; k < 20; k++) {
		struct err e = {0};
		char *fields = NULL;
		if (relay_signer_sign(client, msg, strlen(msg),
		                      k % 2 ? "ed.example" : "rsa.example", "alice@ed.example",
		                      &fields, &e) < 0 ||
		    strstr(fields, "DKIM-Signature") == NULL)
			fails++;
		free(fields);
	}
	return (void *)fails;
}

/* More threads than pooled connections: they wait their turn, none fails. */
static void test_threads_share_the_pool(void **state)
{
	pthread_t t[12];
	void *fails;

	for (int k = 0; k < 12; k++)
		assert_int_equal(pthread_create(&t[k], NULL, sign_many, NULL), 0);
	for (int k = 0; k < 12; k++) {
		assert_int_equal(pthread_join(t[k], &fails), 0);
		assert_int_equal((long)fails, 0);
	}
}

/* The signer restarts: the client's pooled connections are stale and replaced. */
static void test_client_survives_signer_restart(void **state)
{
	struct err e = {0};
	char *fields = NULL;
	size_t n = 0;
	struct dkim_result *r;

	assert_int_equal(relay_signer_has_domain(client, "ed.example", &e), 1);
	assert_int_equal(signer_stop(signer_pid, signer_pipe), 0);
	signer_pid = -1;
	/* while it is down: a temporary error, quickly */
	assert_int_equal(relay_signer_has_domain(client, "ed.example", &e), -1);
	assert_int_equal(e.kind, ERR_TEMP);
	err_clear(&e);
	assert_int_equal(signer_start(&settings, &signer_pid, &signer_pipe), 0);
	assert_int_equal(relay_signer_sign(client, msg, strlen(msg), "ed.example",
	                                   "alice@ed.example", &fields, &e),
	                 0);
	r = verify_signed(fields, "restart", &n);
	assert_int_equal(n, 2);
	assert_int_equal(r[0].status, DKIM_PASS);
	assert_int_equal(r[1].status, DKIM_PASS);
	free(r);
	free(fields);
}

/* ---------------------------------------------------------------- refusals at start */

static void test_key_file_mode_refused(void **state)
{
	struct relay_settings s = {0};
	char *p = path_in_dir("loose.key"), *spec = NULL, *good = NULL;
	struct err e = {0};
	EVP_PKEY *k = crypto_key_generate(KEY_ED25519, 0, &e);
	EVP_PKEY *weak = EVP_RSA_gen(1024);
	char *wp = path_in_dir("weak.key"), *sock2 = NULL;
	pid_t pid;
	int wfd;

	assert_non_null(weak);
	assert_true(asprintf(&sock2, "%s/run2/signer.sock", dir) > 0);
	assert_int_equal(crypto_key_write_private(p, k, &e), 0);
	assert_int_equal(chmod(p, 0644), 0);
	assert_true(asprintf(&spec, "loose.example:s:%s", p) > 0);
	s.signing_keys = spec;
	/* the signer refuses to start: exit status 1, no socket */
	assert_int_equal(signer_start_at(&s, sock2, &pid, &wfd), -1);
	close(wfd);
	assert_int_equal(chmod(p, 0600), 0);
	assert_int_equal(signer_start_at(&s, sock2, &pid, &wfd), 0);
	assert_int_equal(signer_stop(pid, wfd), 0);
	/* an RSA key under 2048 bits, a missing file, a bad spec, an unlinked report key */
	assert_int_equal(crypto_key_write_private(wp, weak, &e), 0);
	assert_true(asprintf(&good, "weak.example:s:%s", wp) > 0);
	s.signing_keys = good;
	assert_int_equal(signer_start_at(&s, sock2, &pid, &wfd), -1);
	close(wfd);
	s.signing_keys = "missing.example:s:/nonexistent/key";
	assert_int_equal(signer_start_at(&s, sock2, &pid, &wfd), -1);
	close(wfd);
	s.signing_keys = "no-selector.example";
	assert_int_equal(signer_start_at(&s, sock2, &pid, &wfd), -1);
	close(wfd);
	s.signing_keys = NULL;
	s.report_key = settings.report_key;
	assert_int_equal(signer_start_at(&s, sock2, &pid, &wfd), -1);
	close(wfd);
	free(sock2);
	EVP_PKEY_free(k);
	EVP_PKEY_free(weak);
	free(p);
	free(wp);
	free(spec);
	free(good);
}

/* ---------------------------------------------------------------- the split API and the protocol
 */

/* prepare + sign_data + finish is dkim_sign, byte for byte (both algorithms are deterministic). */
static void test_split_equals_dkim_sign(void **state)
{
	EVP_PKEY *keys[2] = {ed_key, rsa_key};

	for (int k = 0; k < 2; k++) {
		struct dkim_sign_opts o = {
		    .d = "ed.example", .s = "sel1", .i = "alice@ed.example", .now = 1700000000};
		struct dkim_sign_prep p = {0};
		struct err e = {0};
		uint8_t sig[DKIM_SIG_MAX];
		size_t siglen = 0;
		enum dkim_alg alg;
		char *one, *split;

		one = dkim_sign(msg, strlen(msg), &o, keys[k], &e);
		assert_non_null(one);
		assert_int_equal(dkim_key_alg(keys[k], &alg, &e), 0);
		assert_int_equal(dkim_sign_prepare(msg, strlen(msg), &o, alg, &p, &e), 0);
		assert_int_equal(signer_dkim_data_check((const uint8_t *)p.data, p.datalen, alg,
		                                        "ed.example", "sel1", "alice@ed.example",
		                                        &e),
		                 0);
		assert_int_equal(dkim_sign_data(keys[k], p.data, p.datalen, sig, &siglen, &e), 0);
		split = dkim_sign_finish(&p, sig, siglen, &e);
		assert_non_null(split);
		assert_string_equal(one, split);
		dkim_sign_prep_clear(&p);
		free(one);
		free(split);
	}
}

static void test_proto_round_trip(void **state)
{
	struct frame_field f[3] = {frame_str("ed.example"), frame_str("rsa-sha256"),
	                           frame_str("data")};
	struct signer_request r;
	struct frame_msg m;
	struct err e = {0};
	size_t len = 0, blen;
	uint8_t *frame = frame_encode(SIGNER_OP_SIGN_DOMAIN, f, 3, &len, &e);

	assert_non_null(frame);
	assert_int_equal(frame_len(frame, &blen, &e), 0);
	assert_int_equal(blen, len - 4);
	assert_int_equal(frame_parse(frame + 4, blen, &m, &e), 0);
	assert_int_equal(m.n, 3);
	assert_int_equal(signer_request_parse(frame + 4, blen, &r, &e), 0);
	assert_string_equal(r.name, "ed.example");
	assert_int_equal(r.alg, DKIM_RSA_SHA256);
	assert_int_equal(r.datalen, 4);
	/* one byte less or more is refused */
	assert_int_equal(frame_parse(frame + 4, blen - 1, &m, &e), -1);
	frame[4 + blen - 1] = 0;
	assert_int_equal(signer_request_parse(frame + 4, blen, &r, &e), 0); /* data may hold NUL */
	f[0] = frame_str("Ed.Example"); /* names arrive lowercase */
	free(frame);
	frame = frame_encode(SIGNER_OP_SIGN_DOMAIN, f, 3, &len, &e);
	assert_int_equal(signer_request_parse(frame + 4, len - 4, &r, &e), -1);
	free(frame);
	assert_int_equal(frame_len((const uint8_t *)"\0\0\0\0", &blen, &e), -1);
	assert_int_equal(frame_len((const uint8_t *)"\0\x20\0\0", &blen, &e), -1);
}

/* DECRYPT: a domain and a message; a missing message or an address for the domain is
 * refused. */
static void test_proto_decrypt(void **state)
{
	struct frame_field f[2] = {frame_str("corp.example"), frame_str("Content-Type: x\r\n")};
	struct signer_request r;
	struct err e = {0};
	size_t len = 0;
	uint8_t *frame = frame_encode(SIGNER_OP_DECRYPT, f, 2, &len, &e);

	(void)state;
	assert_int_equal(signer_request_parse(frame + 4, len - 4, &r, &e), 0);
	assert_int_equal(r.op, SIGNER_OP_DECRYPT);
	assert_string_equal(r.name, "corp.example");
	assert_int_equal(r.datalen, strlen("Content-Type: x\r\n"));
	free(frame);
	frame = frame_encode(SIGNER_OP_DECRYPT, f, 1, &len, &e);
	assert_int_equal(signer_request_parse(frame + 4, len - 4, &r, &e), -1);
	free(frame);
	f[0] = frame_str("a@corp.example");
	frame = frame_encode(SIGNER_OP_DECRYPT, f, 2, &len, &e);
	assert_int_equal(signer_request_parse(frame + 4, len - 4, &r, &e), -1);
	free(frame);
	f[0] = frame_str("corp.example");
	f[1].len = 0;
	frame = frame_encode(SIGNER_OP_DECRYPT, f, 2, &len, &e);
	assert_int_equal(signer_request_parse(frame + 4, len - 4, &r, &e), -1);
	free(frame);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_split_equals_dkim_sign),
	    cmocka_unit_test(test_proto_round_trip),
	    cmocka_unit_test(test_proto_decrypt),
	    cmocka_unit_test(test_sign_ed25519_with_user),
	    cmocka_unit_test(test_sign_rsa_without_user_key),
	    cmocka_unit_test(test_user_key_mode_refused),
	    cmocka_unit_test(test_tampered_fails),
	    cmocka_unit_test(test_has_domain_and_missing_key),
	    cmocka_unit_test(test_jws),
	    cmocka_unit_test(test_garbage_refused_signer_survives),
	    cmocka_unit_test(test_threads_share_the_pool),
	    cmocka_unit_test(test_key_file_mode_refused),
	    cmocka_unit_test(test_client_survives_signer_restart),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
