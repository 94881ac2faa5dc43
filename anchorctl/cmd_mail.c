/*
 * cmd_mail.c - `anchorctl mail encrypt|decrypt|sign|verify`: S/MIME 4.0
 * messages (PROTOCOL.md §14) made and read with lib/mail/smime, recipients and
 * signers checked through their domains' key servers (mail.h).
 *
 * Nothing is written unless the whole command succeeded: the output goes to
 * --out FILE through a temporary file and a rename, or to stdout only at the
 * end.  What was checked (the signer, the recipients) goes to stderr.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "cmd.h"
#include "keyfiles.h"
#include "mail.h"
#include "mail/smime.h"
#include "pki/crypto.h"

#define MAIL_MAX_CERTS 16 /* in one --cert/--chain/--self file */

/* Options every mail command may take. */
struct mail_opts {
	const char *in, *out, *key, *cert, *chain, *self, *from, *ca, *state;
	int sign, no_discover;
};

struct mail_id {
	EVP_PKEY *key;
	X509 *cert;
	STACK_OF(X509) * chain; /* the certificates after the first, may be empty */
};

static void id_clear(struct mail_id *id)
{
	EVP_PKEY_free(id->key);
	X509_free(id->cert);
	sk_X509_pop_free(id->chain, X509_free);
	memset(id, 0, sizeof(*id));
}

/* Append the certificates of path to st; the count read, or -1. */
static int certs_into(const char *path, STACK_OF(X509) * st, struct err *e)
{
	X509 *list[MAIL_MAX_CERTS] = {0};
	int n = ctl_certs_read(path, list, 0, MAIL_MAX_CERTS, e);

	for (int i = 0; i < n; i++)
		if (sk_X509_push(st, list[i]) <= 0) {
			for (int k = i; k < n; k++)
				X509_free(list[k]);
			return err_set(e, ERR_INTERNAL, "internal", "out of memory");
		}
	return n;
}

/*
 * The user's key, its certificate (--cert, else the key's name with .pem) and
 * the chain (the rest of that file, then --chain or <cert>.chain.pem if it
 * exists): what `key new`/`key enroll` write.
 */
static int id_load(const struct mail_opts *o, struct mail_id *id, struct err *e)
{
	struct ctl_keyfiles f;
	int rc = -1;

	memset(id, 0, sizeof(*id));
	if (ctl_keyfiles_find(&f, o->key, o->cert, o->chain, e) < 0)
		return -1;
	if ((id->chain = sk_X509_new_null()) == NULL ||
	    (id->key = crypto_key_read_private(f.key, e)) == NULL ||
	    certs_into(f.cert, id->chain, e) < 0)
		goto out;
	id->cert = sk_X509_shift(id->chain);
	if (f.chain != NULL && certs_into(f.chain, id->chain, e) < 0)
		goto out;
	rc = ctl_keyfiles_match(&f, id->key, id->cert, e);
out:
	ctl_keyfiles_clear(&f);
	return rc;
}

static int write_out(const char *path, const struct smime_buf *b, struct err *e)
{
	if (path == NULL || strcmp(path, "-") == 0) {
		if (fwrite(b->data, 1, b->len, stdout) != b->len || fflush(stdout) != 0)
			return err_set(e, ERR_INTERNAL, "write", "writing to stdout failed");
		return 0;
	}
	return ctl_file_write(path, b->data, b->len, 0600, 1, e);
}

static char *read_in(const struct mail_opts *o, size_t *len, struct err *e)
{
	return ctl_file_read_max(o->in != NULL ? o->in : "-", SMIME_MAX_INPUT, len, e);
}

/* Parse argv with the mail options and the common ones. */
static int mail_parse(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv, int min,
                      int max, struct mail_opts *o, struct ctl_args *a, int *status)
{
	const struct ctl_opt opts[] = {{"--in", &o->in, NULL},
	                               {"--out", &o->out, NULL},
	                               {"--key", &o->key, NULL},
	                               {"--cert", &o->cert, NULL},
	                               {"--chain", &o->chain, NULL},
	                               {"--self", &o->self, NULL},
	                               {"--from", &o->from, NULL},
	                               {"--ca", &o->ca, NULL},
	                               {"--state", &o->state, NULL},
	                               {"--sign", NULL, &o->sign},
	                               {"--no-discover", NULL, &o->no_discover},
	                               CTL_COMMON_OPTS(ctl),
	                               {NULL, NULL, NULL}};

	memset(o, 0, sizeof(*o));
	if (ctl_parse(cmd, opts, argc, argv, min, max, a, status) < 0)
		return -1;
	if (o->no_discover && o->ca == NULL) {
		*status =
		    ctl_usage(cmd, "--no-discover needs --ca FILE to check the signer against");
		return -1;
	}
	return 0;
}

/* ---- encrypt ---- */

/* The sender's own encryption certificates: --self, else --from's, else --cert's. */
static int self_certs(const struct ctl *ctl, const struct mail_opts *o, const struct mail_id *id,
                      STACK_OF(X509) * recips, struct err *e)
{
	if (o->self != NULL)
		return certs_into(o->self, recips, e) < 0 ? -1 : 0;
	if (o->from != NULL)
		return ctl_mail_recipient_certs(ctl, o->from, o->state, recips, e);
	if (id->cert != NULL && smime_cert_check_recipient(id->cert, e) == 0) {
		X509_up_ref(id->cert);
		if (sk_X509_push(recips, id->cert) <= 0) {
			X509_free(id->cert);
			return err_set(e, ERR_INTERNAL, "internal", "out of memory");
		}
		return 0;
	}
	return err_set(e, ERR_INPUT, "no_self",
	               "the sender's copy must stay readable: give --self CERT (your encryption "
	               "certificate) or --from ADDRESS (looked up like a recipient)");
}

static int encrypt_run(const struct ctl *ctl, const struct mail_opts *o, struct ctl_args *a,
                       const struct mail_id *id, struct smime_buf *out, struct err *e)
{
	STACK_OF(X509) *recips = sk_X509_new_null();
	struct smime_buf signed_msg = {0};
	enum smime_cipher c;
	char *msg = NULL;
	size_t len = 0;
	int rc = -1;

	if (recips == NULL)
		return err_set(e, ERR_INTERNAL, "internal", "out of memory");
	for (int i = 0; i < a->npos; i++)
		if (ctl_mail_recipient_certs(ctl, a->pos[i], o->state, recips, e) < 0)
			goto out;
	if (self_certs(ctl, o, id, recips, e) < 0 || smime_pick_cipher(recips, &c, e) < 0 ||
	    (msg = read_in(o, &len, e)) == NULL)
		goto out;
	/* Sign, then encrypt: the signature is inside, readable only by the recipients. */
	if (o->sign && smime_sign(msg, len, id->key, id->cert, id->chain, &signed_msg, e) < 0)
		goto out;
	if (o->sign)
		rc = smime_encrypt(signed_msg.data, signed_msg.len, recips, c, out, e);
	else
		rc = smime_encrypt(msg, len, recips, c, out, e);
	if (rc == 0)
		fprintf(stderr, "anchorctl: encrypted to %d certificate(s) (%s)%s\n",
		        sk_X509_num(recips), smime_cipher_name(c), o->sign ? ", signed" : "");
out:
	smime_buf_clear(&signed_msg);
	free(msg);
	sk_X509_pop_free(recips, X509_free);
	return rc;
}

int ctl_cmd_mail_encrypt(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	struct smime_buf out = {0};
	struct mail_id id = {0};
	struct mail_opts o;
	struct ctl_args a;
	struct err e = {0};
	int status = CTL_FAIL;

	if (mail_parse(ctl, cmd, argc, argv, 1, CTL_ARGS_MAX, &o, &a, &status) < 0)
		return status;
	for (int i = 0; i < a.npos; i++)
		if (ctl_arg_address(cmd, a.pos[i], &status) < 0)
			return status;
	if (o.sign && o.key == NULL)
		return ctl_usage(cmd, "--sign needs --key FILE");
	if ((o.key != NULL && id_load(&o, &id, &e) < 0) ||
	    encrypt_run(ctl, &o, &a, &id, &out, &e) < 0 || write_out(o.out, &out, &e) < 0)
		status = ctl_fail(&e);
	else
		status = CTL_OK;
	smime_buf_clear(&out);
	id_clear(&id);
	return status;
}

/* ---- verify and decrypt ---- */

/* The trust for --ca (offline): a store holding that file's certificates. */
static X509_STORE *ca_store(const char *path, struct err *e)
{
	X509_STORE *st = X509_STORE_new();

	if (st == NULL || X509_STORE_load_file(st, path) != 1) {
		ERR_clear_error();
		X509_STORE_free(st);
		err_set(e, ERR_INPUT, "bad_certificate", "%s: no CA certificate to trust", path);
		return NULL;
	}
	/* An S/MIME signature: the signer's certificate is for mail. */
	X509_STORE_set_purpose(st, X509_PURPOSE_SMIME_SIGN);
	return st;
}

/*
 * Verify msg: the signature, and the signer against --ca or through its
 * domain's key server.  content gets the signed entity.
 */
static int verify_run(const struct ctl *ctl, const struct mail_opts *o, const char *msg, size_t len,
                      struct smime_buf *content, struct err *e)
{
	X509_STORE *store = NULL;
	X509 *signer = NULL;
	char who[320];
	int rc = -1;

	if (o->ca != NULL && (store = ca_store(o->ca, e)) == NULL)
		return -1;
	if (smime_verify(msg, len, store, NULL, content, &signer, e) < 0)
		goto out;
	if (o->no_discover) {
		smime_cert_address(signer, who, sizeof(who));
		fprintf(stderr, "anchorctl: signed by %s: chains to %s (not looked up)\n",
		        who[0] ? who : "(no address)", o->ca);
		rc = 0;
	} else if (ctl_mail_signer_check(ctl, signer, o->state, who, sizeof(who), e) == 0) {
		fprintf(stderr,
		        "anchorctl: signed by %s: anchored (chains to its domain's root, in its "
		        "log, not revoked)\n",
		        who);
		rc = 0;
	}
out:
	if (rc < 0)
		smime_buf_clear(content);
	X509_free(signer);
	X509_STORE_free(store);
	return rc;
}

int ctl_cmd_mail_verify(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	struct smime_buf content = {0};
	struct mail_opts o;
	struct ctl_args a;
	struct err e = {0};
	char *msg = NULL;
	size_t len = 0;
	int status = CTL_FAIL;

	if (mail_parse(ctl, cmd, argc, argv, 0, 0, &o, &a, &status) < 0)
		return status;
	if ((msg = read_in(&o, &len, &e)) == NULL ||
	    verify_run(ctl, &o, msg, len, &content, &e) < 0 ||
	    (o.out != NULL && write_out(o.out, &content, &e) < 0))
		status = ctl_fail(&e);
	else
		status = CTL_OK;
	smime_buf_clear(&content);
	free(msg);
	return status;
}

int ctl_cmd_mail_decrypt(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	struct smime_buf plain = {0}, content = {0};
	struct mail_id id = {0};
	struct mail_opts o;
	struct ctl_args a;
	struct err e = {0};
	char *msg = NULL;
	size_t len = 0;
	int status = CTL_FAIL, sig;

	if (mail_parse(ctl, cmd, argc, argv, 0, 0, &o, &a, &status) < 0)
		return status;
	if (o.key == NULL)
		return ctl_usage(cmd, "give --key FILE (the private key to decrypt with)");
	if (id_load(&o, &id, &e) < 0 || (msg = read_in(&o, &len, &e)) == NULL ||
	    smime_decrypt(msg, len, id.key, id.cert, &plain, &e) < 0)
		goto fail;
	/* Decrypt, then verify what was signed inside. */
	sig = smime_is_signed(plain.data, plain.len);
	if (sig == 1 && verify_run(ctl, &o, plain.data, plain.len, &content, &e) < 0)
		goto fail;
	if (sig != 1)
		fprintf(stderr, "anchorctl: the message is not signed: its sender is unknown\n");
	if (write_out(o.out, sig == 1 ? &content : &plain, &e) < 0)
		goto fail;
	status = CTL_OK;
	goto out;
fail:
	status = ctl_fail(&e);
out:
	smime_buf_clear(&plain);
	smime_buf_clear(&content);
	free(msg);
	id_clear(&id);
	return status;
}

/* ---- sign ---- */

int ctl_cmd_mail_sign(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	struct smime_buf out = {0};
	struct mail_id id = {0};
	struct mail_opts o;
	struct ctl_args a;
	struct err e = {0};
	char *msg = NULL;
	size_t len = 0;
	int status = CTL_FAIL;

	if (mail_parse(ctl, cmd, argc, argv, 0, 0, &o, &a, &status) < 0)
		return status;
	if (o.key == NULL)
		return ctl_usage(cmd, "give --key FILE (the private key to sign with)");
	if (id_load(&o, &id, &e) < 0 || (msg = read_in(&o, &len, &e)) == NULL ||
	    smime_sign(msg, len, id.key, id.cert, id.chain, &out, &e) < 0 ||
	    write_out(o.out, &out, &e) < 0)
		status = ctl_fail(&e);
	else
		status = CTL_OK;
	smime_buf_clear(&out);
	free(msg);
	id_clear(&id);
	return status;
}
