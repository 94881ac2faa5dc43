/*
 * cmd_route.c - routes (PROTOCOL.md §6): what the route commands share (the
 * name a route is kept under, a signed route checked against the domain's
 * pins and shown) and `route show`, which reads a route from the key server
 * or, without -s, finds it through DNS as a sender would.  Changing routes
 * is cmd_route_change.c, walking an address across domains
 * cmd_route_resolve.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmd.h"
#include "cmd_log.h"
#include "cmd_route.h"
#include "dns/resolve.h"
#include "names.h"
#include "output.h"
#include "pki/crypto.h"

#define ROUTE_MAX_PINS 8

_Static_assert(ROUTE_MAX_PINS == CTL_LOG_MAX_PINS, "the pins of a domain object fit --pin's");

/* ---- names ---- */

int ctl_route_name(const struct ctl_cmd *cmd, char *arg, int *is_domain, int *status)
{
	*is_domain = strchr(arg, '@') == NULL;
	return *is_domain ? ctl_arg_domain(cmd, arg, status) : ctl_arg_address(cmd, arg, status);
}

const char *ctl_route_domain_of(const char *name, int is_domain)
{
	return is_domain ? name : ctl_name_domain_of(name);
}

char *ctl_route_path(const char *name, int is_domain)
{
	return is_domain ? ctl_api_path("domains", name, "/route")
	                 : ctl_api_path("routes", name, NULL);
}

/* ---- showing a verified route ---- */

static void show_route(const json_t *p, const char *verified_by)
{
	const json_t *servers = json_object_get(p, "servers"), *s;
	size_t i;

	printf("route:    %s\n", ctl_out_str(p, "name"));
	printf("domain:   %s\n", ctl_out_str(p, "domain"));
	printf("scope:    %s\n", ctl_out_str(p, "scope"));
	if (json_is_array(servers)) {
		printf("servers:\n");
		json_array_foreach(servers, i, s)
		{
			printf("  %s:%lld priority %lld weight %lld pin %s\n",
			       ctl_out_str(s, "host"),
			       (long long)json_integer_value(json_object_get(s, "port")),
			       (long long)json_integer_value(json_object_get(s, "priority")),
			       (long long)json_integer_value(json_object_get(s, "weight")),
			       ctl_out_str(s, "pin"));
		}
	} else {
		printf("alias:    %s\n", ctl_out_str(p, "alias"));
	}
	printf("ttl:      %lld\n", (long long)json_integer_value(json_object_get(p, "ttl")));
	printf("issued:   %s\n", ctl_out_str(p, "issued"));
	printf("expires:  %s\n", ctl_out_str(p, "expires"));
	printf("updated:  %s\n", ctl_out_str(p, "updated"));
	printf("verified: %s\n", verified_by);
}

/* Check a signed answer (parsed JSON) for name against pins; prints it on success. */
static int check_and_show(const struct ctl *ctl, const json_t *jws, const char *name,
                          const char pins[][CRYPTO_PIN_MAX], int npins, const char *how,
                          struct err *e)
{
	char *text = jws != NULL ? json_dumps(jws, JSON_COMPACT) : NULL;
	json_t *payload = NULL;
	char verified[DNS_NAME_MAX + 128];

	if (text == NULL)
		return err_set(e, ERR_INTERNAL, "bad_response", "the key server sent no route");
	if (resolve_check_answer(text, strlen(text), name, pins, npins, time(NULL), &payload, e) <
	    0) {
		free(text);
		return -1;
	}
	free(text);
	if (ctl->json) {
		ctl_out_json(stdout, payload);
	} else {
		snprintf(verified, sizeof(verified), "signature and chain to a root pinned %s",
		         how);
		show_route(payload, verified);
	}
	json_decref(payload);
	return 0;
}

int ctl_route_show_answer(const struct ctl *ctl, const struct ctl_client *c, const char *name,
                          int is_domain, const json_t *answer)
{
	struct ctl_trust t = {0};
	struct err e = {0};
	int rc;

	rc = ctl_trust_load(c, ctl_route_domain_of(name, is_domain), NULL, &t, &e) < 0 ||
	             check_and_show(ctl, answer, name, (const char(*)[CRYPTO_PIN_MAX])t.pins,
	                            t.npins, "by the domain object", &e) < 0
	         ? ctl_fail(&e)
	         : CTL_OK;
	ctl_trust_free(&t);
	return rc;
}

/* ---- route show ---- */

struct discover_ctx *ctl_route_discovery(const struct ctl *ctl, struct err *e)
{
	struct discover_config c = {0};

	c.cacert = ctl->cacert;
	discover_config_from_env(&c);
	return discover_new(&c, e);
}

/* Without -s: find the key server and the pins in DNS, as a sender would. */
static int show_discovered(const struct ctl *ctl, const char *name, int is_domain, struct err *e)
{
	struct discover_ctx *dctx = ctl_route_discovery(ctl, e);
	struct resolve_ctx *rctx = dctx != NULL ? resolve_new(dctx, e) : NULL;
	struct discover_result *d = NULL;
	struct https_reply rep = {0};
	json_t *jws = NULL;
	char how[DNS_NAME_MAX + 64];
	int rc = -1;

	if (rctx == NULL || discover_domain(dctx, ctl_route_domain_of(name, is_domain), &d, e) < 0)
		goto out;
	if (d->status == DISCOVER_LEGACY) {
		err_set(e, ERR_NOTFOUND, "legacy_domain",
		        "%s publishes no _anchor records: mail goes by its MX records", d->domain);
		goto out;
	}
	if (resolve_fetch_answer(rctx, d, name, &rep, e) < 0)
		goto out;
	if ((jws = json_loadb(rep.body, rep.len, 0, NULL)) == NULL) {
		err_set(e, ERR_UNPROC, "route_unverified", "the answer for %s is not JSON", name);
		goto out;
	}
	snprintf(how, sizeof(how), "in DNS (_anchor.%s, dnssec %s)", d->domain,
	         dns_sec_name(d->dnssec));
	rc = check_and_show(ctl, jws, name, (const char(*)[CRYPTO_PIN_MAX])d->pins, d->npins, how,
	                    e);
out:
	json_decref(jws);
	https_reply_clear(&rep);
	discover_result_free(d);
	resolve_free(rctx);
	discover_free(dctx);
	return rc;
}

int ctl_cmd_route_show(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	const struct ctl_opt opts[] = {CTL_COMMON_OPTS(ctl), {NULL, NULL, NULL}};
	const char *pinv[ROUTE_MAX_PINS];
	char pins[ROUTE_MAX_PINS][CRYPTO_PIN_MAX], msg[200], *path = NULL;
	struct ctl_client client;
	struct ctl_args a;
	struct err e = {0};
	struct ctl_trust t = {0};
	json_t *answer = NULL;
	int npins, given, is_domain, status = CTL_FAIL;

	npins =
	    ctl_args_take_repeated("--pin", &argc, argv, pinv, ROUTE_MAX_PINS, msg, sizeof(msg));
	if (npins < 0)
		return ctl_usage(cmd, "%s", msg);
	if (ctl_parse(cmd, opts, argc, argv, 1, 1, &a, &status) < 0 ||
	    ctl_route_name(cmd, a.pos[0], &is_domain, &status) < 0)
		return status;
	for (int i = 0; i < npins; i++)
		snprintf(pins[i], CRYPTO_PIN_MAX, "%s", pinv[i]);
	given = npins;
	if (ctl->server == NULL || *ctl->server == '\0') {
		if (npins > 0)
			return ctl_usage(cmd,
			                 "--pin needs -s URL (without it the pins come from DNS)");
		return show_discovered(ctl, a.pos[0], is_domain, &e) < 0 ? ctl_fail(&e) : CTL_OK;
	}
	if (ctl_server(ctl, cmd, NULL, &client, &status) < 0)
		return status;
	if (npins == 0) {
		if (ctl_trust_load(&client, ctl_route_domain_of(a.pos[0], is_domain), NULL, &t,
		                   &e) < 0)
			goto fail;
		memcpy(pins, t.pins, sizeof(t.pins));
		npins = t.npins;
	}
	if ((path = ctl_route_path(a.pos[0], is_domain)) == NULL) {
		err_set(&e, ERR_INTERNAL, "internal", "out of memory");
		goto fail;
	}
	if (ctl_client_call(&client, "GET", path, NULL, &answer, &e) < 0 ||
	    check_and_show(ctl, answer, a.pos[0], (const char(*)[CRYPTO_PIN_MAX])pins, npins,
	                   given > 0 ? "by --pin" : "by the domain object", &e) < 0)
		goto fail;
	status = CTL_OK;
	goto out;
fail:
	status = ctl_fail(&e);
out:
	ctl_trust_free(&t);
	json_decref(answer);
	free(path);
	return status;
}
