/*
 * records.c - `anchor-dns records <domain>`: read the domain's published
 * objects from its key server and print the DNS records to publish.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/pem.h>

#include "pki/cert.h"
#include "pki/name.h"
#include "dnstools.h"

struct rec_state {
	json_t *domain_obj;
	json_t *servers; /* {"servers": [...]} or NULL without a token */
	json_t *smimea_docs[DT_MAX_LIST];
	char *peer_pem;
	struct dns_keyserver ks[DT_MAX_LIST];
	struct dns_server_cert srv[256];
	int nsrv;
	struct dns_smimea sm[DT_MAX_LIST * 8];
	int nsm;
	const char *pins[DNS_MAX_PINS];
	int npins;
	X509 *tlsa;
	char id[DNS_ID_MAX];
};

static void state_free(struct rec_state *s)
{
	int i;

	json_decref(s->domain_obj);
	json_decref(s->servers);
	for (i = 0; i < DT_MAX_LIST; i++)
		json_decref(s->smimea_docs[i]);
	for (i = 0; i < s->nsrv; i++)
		X509_free(s->srv[i].cert);
	for (i = 0; i < s->nsm; i++)
		X509_free(s->sm[i].cert);
	X509_free(s->tlsa);
	free(s->peer_pem);
}

static X509 *pem_cert(json_t *obj, struct err *e)
{
	const char *pem = json_string_value(json_object_get(obj, "certificate"));

	if (pem == NULL) {
		err_set(e, ERR_UNPROC, "object_invalid", "a certificate object has no PEM");
		return NULL;
	}
	return cert_from_pem(pem, strlen(pem), e);
}

static int collect_servers(struct rec_state *s, struct err *e)
{
	json_t *list = json_object_get(s->servers, "servers"), *c;
	size_t i;

	json_array_foreach(list, i, c)
	{
		const char *status = json_string_value(json_object_get(c, "status"));

		if (status != NULL && strcmp(status, "current") != 0)
			continue;
		if (s->nsrv == (int)(sizeof(s->srv) / sizeof(s->srv[0])))
			break;
		s->srv[s->nsrv].purpose = json_string_value(json_object_get(c, "purpose"));
		s->srv[s->nsrv].name = json_string_value(json_object_get(c, "name"));
		if (s->srv[s->nsrv].purpose == NULL || s->srv[s->nsrv].name == NULL)
			return err_set(e, ERR_UNPROC, "object_invalid",
			               "a server certificate object lacks purpose or name");
		s->srv[s->nsrv].cert = pem_cert(c, e);
		if (s->srv[s->nsrv].cert == NULL)
			return -1;
		s->nsrv++;
	}
	return 0;
}

static int collect_smimea(const struct dt_opts *o, struct rec_state *s, const char *domain,
                          struct err *e)
{
	char path[512];
	int i;

	for (i = 0; i < o->nsmimea; i++) {
		const char *addr = o->smimea[i], *at = strrchr(addr, '@');
		json_t *certs, *c;
		size_t k;
		int before;

		if (name_check_address(addr, e) < 0)
			return -1;
		if (at == NULL || strcmp(at + 1, domain) != 0)
			return err_set(e, ERR_INPUT, "address_outside_domain",
			               "--smimea %s is not an address of %s", addr, domain);
		snprintf(path, sizeof(path), "/v1/addresses/%s", addr);
		s->smimea_docs[i] = dt_get_json(o, o->server, NULL, 0, NULL, path, NULL, NULL, e);
		if (s->smimea_docs[i] == NULL)
			return -1;
		/* What a sender encrypts to (PROTOCOL.md §3.3, §8.1): the encryption block,
		 * and of it only what can encrypt, checked here again. */
		certs = json_object_get(json_object_get(s->smimea_docs[i], "encryption"),
		                        "certificates");
		before = s->nsm;
		json_array_foreach(certs, k, c)
		{
			if (s->nsm == (int)(sizeof(s->sm) / sizeof(s->sm[0])))
				break;
			s->sm[s->nsm].address = addr;
			s->sm[s->nsm].cert = pem_cert(c, e);
			if (s->sm[s->nsm].cert == NULL)
				return -1;
			if (!cert_can_encrypt(s->sm[s->nsm].cert)) {
				X509_free(s->sm[s->nsm].cert);
				s->sm[s->nsm].cert = NULL;
				continue;
			}
			s->nsm++;
		}
		if (s->nsm == before)
			fprintf(stderr,
			        "anchor-dns: %s has no certificate that can encrypt: no SMIMEA\n",
			        addr);
	}
	return 0;
}

static X509 *read_cert_file(const char *path, struct err *e)
{
	FILE *f = fopen(path, "r");
	X509 *c;

	if (f == NULL) {
		err_set(e, ERR_INPUT, "bad_file", "cannot open %s", path);
		return NULL;
	}
	c = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (c == NULL)
		err_set_ssl(e, ERR_INPUT, "bad_certificate", "no PEM certificate in the file");
	return c;
}

static int collect_inputs(const struct dt_opts *o, struct rec_state *s, const char *domain,
                          struct err *e)
{
	char path[512];
	json_t *pins, *p;
	size_t i;
	int k;

	if (o->server == NULL)
		return err_set(e, ERR_INPUT, "no_server",
		               "give the key server with -s URL (or ANCHOR_SERVER)");
	snprintf(path, sizeof(path), "/v1/domains/%s", domain);
	s->domain_obj = dt_get_json(o, o->server, NULL, 0, NULL, path, NULL,
	                            o->tlsa && !o->tls_cert ? &s->peer_pem : NULL, e);
	if (s->domain_obj == NULL)
		return -1;
	pins = json_object_get(s->domain_obj, "pins");
	json_array_foreach(pins, i, p)
	{
		if (json_is_string(p) && s->npins < DNS_MAX_PINS)
			s->pins[s->npins++] = json_string_value(p);
	}
	for (k = 0; k < o->nextra_pins && s->npins < DNS_MAX_PINS; k++) {
		struct dns_anchor_txt t;
		char probe[128];

		/* Check an extra pin the way a client will parse it. */
		snprintf(probe, sizeof(probe), "v=ANCHOR1; pin=%.90s", o->extra_pins[k]);
		if (dns_txt_parse(probe, strlen(probe), &t, e) < 0)
			return -1;
		s->pins[s->npins++] = o->extra_pins[k];
	}
	if (s->npins == 0)
		return err_set(e, ERR_UNPROC, "object_invalid", "the domain object lists no pins");
	if (o->token != NULL) {
		snprintf(path, sizeof(path), "/v1/domains/%s/servers", domain);
		s->servers = dt_get_json(o, o->server, NULL, 0, NULL, path, o->token, NULL, e);
		if (s->servers == NULL || collect_servers(s, e) < 0)
			return -1;
	}
	if (collect_smimea(o, s, domain, e) < 0)
		return -1;
	if (o->tls_cert != NULL) {
		s->tlsa = read_cert_file(o->tls_cert, e);
		if (s->tlsa == NULL)
			return -1;
	} else if (o->tlsa) {
		if (s->peer_pem == NULL)
			return err_set(
			    e, ERR_UNPROC, "no_peer_cert",
			    "the TLS handshake gave no certificate; use --tls-cert FILE");
		s->tlsa = cert_from_pem(s->peer_pem, strlen(s->peer_pem), e);
		if (s->tlsa == NULL)
			return -1;
	}
	dt_records_id(s->domain_obj, s->servers, s->id);
	return 0;
}

/* Default SRV target when none is given: the -s URL's host, if it is a name. */
static int default_keyserver(const struct dt_opts *o, struct dns_keyserver *k, struct err *e)
{
	char hostport[300];
	const char *h = o->server + strlen("https://");
	size_t n = strcspn(h, "/");
	struct err ign;

	snprintf(hostport, sizeof(hostport), "%.*s", (int)(n < 290 ? n : 290), h);
	if (strchr(hostport, ':') == NULL)
		snprintf(hostport + strlen(hostport), sizeof(hostport) - strlen(hostport), ":443");
	if (dns_keyserver_parse(hostport, k, &ign) < 0)
		return err_set(e, ERR_INPUT, "no_keyserver",
		               "the key server URL's host is not a DNS name; give the SRV "
		               "target(s) with --keyserver HOST:PORT[:PRIORITY:WEIGHT]");
	return 0;
}

static int owner_in_domain(const ldns_rr *rr, const char *domain)
{
	char *owner = ldns_rdf2str(ldns_rr_owner(rr));
	size_t len = owner ? strlen(owner) : 0;
	int in;

	if (len > 0 && owner[len - 1] == '.')
		owner[len - 1] = '\0';
	in = owner != NULL && name_in_domain(owner, domain);
	free(owner);
	return in;
}

static json_t *rr_json(const ldns_rr *rr, const char *domain)
{
	json_t *o = json_object(), *rdata = json_array();
	char *owner = ldns_rdf2str(ldns_rr_owner(rr)),
	     *type = ldns_rr_type2str(ldns_rr_get_type(rr)), *text = ldns_rr2str(rr);
	size_t i;

	json_object_set_new(o, "name", json_string(owner ? owner : ""));
	json_object_set_new(o, "ttl", json_integer(ldns_rr_ttl(rr)));
	json_object_set_new(o, "class", json_string("IN"));
	json_object_set_new(o, "type", json_string(type ? type : ""));
	for (i = 0; i < ldns_rr_rd_count(rr); i++) {
		char *r = ldns_rdf2str(ldns_rr_rdf(rr, i));

		json_array_append_new(rdata, json_string(r ? r : ""));
		free(r);
	}
	json_object_set_new(o, "rdata", rdata);
	if (text != NULL)
		text[strcspn(text, "\n")] = '\0';
	json_object_set_new(o, "text", json_string(text ? text : ""));
	json_object_set_new(o, "in_zone", json_boolean(owner_in_domain(rr, domain)));
	free(owner);
	free(type);
	free(text);
	return o;
}

static void print_records(const struct dt_opts *o, const char *domain, ldns_rr_list *list,
                          const char *notes, const struct rec_state *s)
{
	size_t i;

	if (o->json) {
		json_t *doc = json_object(), *arr = json_array();

		for (i = 0; i < ldns_rr_list_rr_count(list); i++)
			json_array_append_new(arr, rr_json(ldns_rr_list_rr(list, i), domain));
		json_object_set_new(doc, "domain", json_string(domain));
		json_object_set_new(doc, "id", json_string(s->id));
		json_object_set_new(doc, "records", arr);
		json_object_set_new(doc, "notes", json_string(notes ? notes : ""));
		dt_print_json(doc);
		return;
	}
	printf("; Anchormail records for %s (anchor-dns records); id=%s\n", domain, s->id);
	if (o->token == NULL)
		printf("; no admin token: CSA and DKIM records omitted (--token-file)\n");
	if (notes != NULL)
		printf("; note: %s\n", notes);
	for (i = 0; i < ldns_rr_list_rr_count(list); i++) {
		ldns_rr *rr = ldns_rr_list_rr(list, i);

		/* A TLSA for a key server outside the domain belongs in that host's zone: keep
		 * the output loadable as the domain's zone and show it as a comment. */
		if (!owner_in_domain(rr, domain)) {
			char *text = ldns_rr2str(rr);

			printf("; publish in the zone of its owner (outside %s): %s", domain,
			       text ? text : "\n");
			free(text);
			continue;
		}
		ldns_rr_print(stdout, rr);
	}
}

int dt_cmd_records(const struct dt_opts *o, const char *domain)
{
	struct rec_state s;
	struct dns_records_input in = {.domain = domain};
	ldns_rr_list *list = NULL;
	char *notes = NULL;
	struct err e = {0};
	int i, rc = 1;

	memset(&s, 0, sizeof(s));
	if (name_check_domain(domain, &e) < 0)
		goto out;
	for (i = 0; i < o->nkeyservers; i++)
		if (dns_keyserver_parse(o->keyservers[i], &s.ks[i], &e) < 0)
			goto out;
	if (o->mode != NULL && dns_mode_parse(o->mode, &in.mode) < 0) {
		err_set(&e, ERR_INPUT, "bad_mode", "--mode must be enforce or testing");
		goto out;
	}
	if (collect_inputs(o, &s, domain, &e) < 0)
		goto out;
	in.nkeyservers = o->nkeyservers;
	if (in.nkeyservers == 0) {
		if (default_keyserver(o, &s.ks[0], &e) < 0)
			goto out;
		in.nkeyservers = 1;
	}
	if (o->mode == NULL &&
	    dns_mode_parse(json_string_value(json_object_get(s.domain_obj, "mode")), &in.mode) < 0)
		in.mode = DNS_MODE_ENFORCE;
	in.ttl = (uint32_t)o->ttl;
	in.pins = s.pins;
	in.npins = s.npins;
	in.id = s.id;
	in.keyservers = s.ks;
	in.servers = s.srv;
	in.nservers = s.nsrv;
	in.smimea = s.sm;
	in.nsmimea = s.nsm;
	in.tlsa_cert = s.tlsa;
	list = dns_records_build(&in, &notes, &e);
	if (list == NULL)
		goto out;
	print_records(o, domain, list, notes, &s);
	rc = 0;
out:
	if (rc != 0)
		dt_error(&e);
	ldns_rr_list_deep_free(list);
	free(notes);
	state_free(&s);
	return rc;
}
