/*
 * fuzz_relay_enc_answer.c - gateway encryption's reading of a key server's address
 * answer (relay/encrypt_policy.c): the input is the body of GET /v1/addresses/{a} for
 * a recipient of a domain that requires encryption, served by a fake network (a
 * discovery with no verified root: every listed certificate must be refused).
 * Whatever the answer says, no certificate may come out usable, and the first line
 * of the input is also read as a message's header for relay_enc_is_encrypted.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "dns/discover.h"
#include "encrypt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t *in;
static size_t in_len;

static int fake_discover(void *ctx, const char *domain, struct discover_result **out, struct err *e)
{
	struct discover_result *r = calloc(1, sizeof(*r));

	(void)ctx;
	(void)e;
	if (r == NULL)
		abort();
	*out = r;
	snprintf(r->domain, sizeof(r->domain), "%s", domain);
	r->status = DISCOVER_ANCHORED;
	r->used_target = -1;
	r->object = json_pack("{s:s}", "encryption", "required");
	return 0;
}

static int fake_get(void *ctx, const struct discover_result *d, const char *path, char **body,
                    struct err *e)
{
	(void)ctx;
	(void)d;
	(void)path;
	(void)e;
	if ((*body = malloc(in_len + 1)) == NULL)
		abort();
	memcpy(*body, in, in_len);
	(*body)[in_len] = '\0';
	return 0;
}

static int fake_txt(void *ctx, const char *name, char **text, struct err *e)
{
	(void)ctx;
	(void)name;
	*text = NULL;
	return err_set(e, ERR_NOTFOUND, "dkim_no_key", "none");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct relay_verifier *v;
	struct relay_enc_target t;
	struct err e = {0};

	if (v == NULL) {
		struct relay_settings s = {0};
		struct relay_verify_net net = {fake_discover, fake_get, fake_txt, NULL};

		s.lookup_timeout_ms = 500;
		s.dns_server = "127.0.0.1:9"; /* never asked */
		if ((v = relay_verifier_new(&s, &e)) == NULL)
			abort();
		relay_verifier_set_net(v, &net);
	}
	in = data;
	in_len = size;
	if (relay_enc_lookup(v, "bob@enc.example", 0, &t, &e) < 0)
		abort(); /* the requirement is known: only the certificates may fail */
	if (t.req != RELAY_ENC_REQUIRED || sk_X509_num(t.certs) > 0)
		__builtin_trap(); /* nothing chains to a root that is not there */
	relay_enc_target_clear(&t);
	(void)relay_enc_is_encrypted((const char *)data, size);
	return 0;
}
