/*
 * cmd_lookup.c - the public lookups (PROTOCOL.md §3): a human summary, the
 * server's JSON (--json) or the certificates' PEM (--pem).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "cmd_log.h"
#include "names.h"
#include "output.h"

enum lookup_kind { LK_DOMAIN, LK_ADDRESS, LK_HISTORY, LK_KEY, LK_FINGERPRINT };

static const char *const kind_names[] = {"domain", "address",     "history",
                                         "key",    "fingerprint", NULL};

static int kind_of(const char *word)
{
	for (int i = 0; kind_names[i] != NULL; i++)
		if (strcmp(word, kind_names[i]) == 0)
			return i;
	return -1;
}

/* Check the argument and make the resource path. */
static char *lookup_path(const struct ctl_cmd *cmd, int kind, char *arg, int *status)
{
	char fpr[CERT_FPR_LEN];

	switch (kind) {
	case LK_DOMAIN:
		return ctl_arg_domain(cmd, arg, status) < 0 ? NULL
		                                            : ctl_api_path("domains", arg, NULL);
	case LK_ADDRESS:
	case LK_HISTORY:
		if (ctl_arg_address(cmd, arg, status) < 0)
			return NULL;
		return ctl_api_path("addresses", arg, kind == LK_HISTORY ? "/history" : NULL);
	case LK_KEY:
		return ctl_api_path("keys", ctl_name_lower(arg), NULL);
	default:
		if (ctl_name_fingerprint(arg, fpr) < 0) {
			*status = ctl_usage(
			    cmd, "'%s' is not a SHA-256 fingerprint (sha256:<64 hex>)", arg);
			return NULL;
		}
		return ctl_api_path("fingerprints", fpr, NULL);
	}
}

static void show_domain(const json_t *d)
{
	const json_t *pins = json_object_get(d, "pins");
	size_t i;

	printf("domain:  %s\n", ctl_out_str(d, "domain"));
	printf("policy:  %s\n", ctl_out_str(d, "policy"));
	printf("mode:    %s\n", ctl_out_str(d, "mode"));
	for (i = 0; i < json_array_size(pins); i++)
		printf("pin:     %s\n", json_string_value(json_array_get(pins, i)));
	printf("updated: %s\n", ctl_out_str(d, "updated"));
}

static int is_revoked(const json_t *cert)
{
	return strcmp(ctl_out_str(cert, "status"), "revoked") == 0;
}

static void show_revocation(const json_t *cert, const char *indent)
{
	const json_t *r = json_object_get(cert, "revocation");

	printf("%s  REVOKED:     %s, reason %s, by %s: do not use this key\n", indent,
	       ctl_out_str(r, "time"), ctl_out_str(r, "reason"), ctl_out_str(r, "method"));
}

/* want: 1 the usable certificates, 0 the revoked ones, -1 all. */
static void show_certs_which(const json_t *list, const char *indent, int want)
{
	int shown = 0;

	for (size_t i = 0; i < json_array_size(list); i++) {
		const json_t *c = json_array_get(list, i);
		if (want >= 0 && is_revoked(c) == want)
			continue;
		ctl_out_cert(stdout, c, indent);
		if (is_revoked(c))
			show_revocation(c, indent);
		shown++;
	}
	if (shown == 0 && want != 0)
		printf("%s(none)\n", indent);
}

static void show_certs(const json_t *list, const char *indent)
{
	show_certs_which(list, indent, -1);
}

static int count_revoked(const json_t *list)
{
	int n = 0;

	for (size_t i = 0; i < json_array_size(list); i++)
		n += is_revoked(json_array_get(list, i));
	return n;
}

/* The usable certificates of a list (a new array). */
static json_t *usable(const json_t *list)
{
	json_t *out = json_array();

	for (size_t i = 0; out != NULL && i < json_array_size(list); i++)
		if (!is_revoked(json_array_get(list, i)))
			json_array_append(out, json_array_get(list, i));
	return out;
}

static void show_address(const json_t *ad)
{
	const json_t *enc = json_object_get(ad, "encryption");
	const json_t *own = json_object_get(ad, "certificates");

	printf("address: %s\n", ctl_out_str(ad, "address"));
	printf("domain:  %s\n", ctl_out_str(ad, "domain"));
	printf("policy:  %s\n", ctl_out_str(ad, "policy"));
	printf("certificates:\n");
	show_certs_which(own, "  ", 1);
	if (count_revoked(own) > 0) {
		printf("revoked (not usable):\n");
		show_certs_which(own, "  ", 0);
	}
	if (enc == NULL) {
		printf("encryption: none\n");
		return;
	}
	printf("encryption: to %s (%s)\n", ctl_out_str(enc, "address"), ctl_out_str(enc, "reason"));
	show_certs_which(json_object_get(enc, "certificates"), "  ", 1);
}

/* History may come as a bare array or as an object holding "certificates". */
static const json_t *history_list(const json_t *h)
{
	if (json_is_array(h))
		return h;
	if (json_is_array(json_object_get(h, "certificates")))
		return json_object_get(h, "certificates");
	return json_object_get(h, "history");
}

static int show_pem(int kind, const json_t *answer)
{
	json_t *seen = json_array();
	json_t *one;
	int n = 0;

	switch (kind) {
	case LK_DOMAIN:
		one = json_pack("[{s:O?}, {s:O?}]", "certificate", json_object_get(answer, "root"),
		                "certificate", json_object_get(answer, "issuer"));
		n = ctl_out_pems(stdout, one, NULL);
		json_decref(one);
		break;
	case LK_ADDRESS:
		/* A revoked certificate is never offered for use. */
		one = usable(json_object_get(answer, "certificates"));
		n = ctl_out_pems(stdout, one, seen);
		json_decref(one);
		one =
		    usable(json_object_get(json_object_get(answer, "encryption"), "certificates"));
		n += ctl_out_pems(stdout, one, seen);
		json_decref(one);
		break;
	case LK_HISTORY:
		n = ctl_out_pems(stdout, history_list(answer), NULL);
		break;
	default:
		one = json_pack("[O]", answer);
		n = ctl_out_pems(stdout, one, NULL);
		json_decref(one);
		break;
	}
	json_decref(seen);
	return n;
}

static void show(int kind, const json_t *answer)
{
	switch (kind) {
	case LK_DOMAIN:
		show_domain(answer);
		break;
	case LK_ADDRESS:
		show_address(answer);
		break;
	case LK_HISTORY:
		show_certs(history_list(answer), "");
		break;
	default:
		ctl_out_cert(stdout, answer, "");
		if (is_revoked(answer))
			show_revocation(answer, "");
		break;
	}
}

/* Every certificate of the answer, for the log checks (a new array). */
static json_t *answer_certs(int kind, const json_t *answer)
{
	json_t *all = json_array();

	switch (kind) {
	case LK_ADDRESS:
		json_array_extend(all, json_object_get(answer, "certificates"));
		json_array_extend(
		    all, json_object_get(json_object_get(answer, "encryption"), "certificates"));
		break;
	case LK_HISTORY:
		json_array_extend(all, (json_t *)history_list(answer));
		break;
	default:
		json_array_append(all, (json_t *)answer);
		break;
	}
	return all;
}

/* --pem of a history or key: the PEM goes out, the warning to stderr. */
static void warn_revoked(int kind, const json_t *answer)
{
	json_t *certs = answer_certs(kind, answer);

	if (count_revoked(certs) > 0)
		fprintf(stderr, "anchorctl: warning: a certificate printed is REVOKED\n");
	json_decref(certs);
}

/*
 * The relying party's checks (cmd_log.c): the certificates chain to the
 * domain's root and are in its log, the head verifies against the pins and is
 * consistent with the one remembered.  Fills line with what to report.
 */
static int check_log(const struct ctl_client *c, int kind, const char *arg, const json_t *answer,
                     const char *pin, const char *state, char *line, size_t len, struct err *e)
{
	struct tlog_head head;
	json_t *certs;
	int rc;

	if (kind == LK_DOMAIN) {
		rc = ctl_log_check_domain(c, pin, state, arg, &head, e);
		if (rc == 0 && head.size == 0)
			snprintf(line, len, "log:     empty");
		else if (rc == 0)
			snprintf(line, len, "log:     head of size %llu (verified)",
			         (unsigned long long)head.size);
	} else {
		certs = answer_certs(kind, answer);
		rc = ctl_log_check_certs(c, pin, state, answer, certs, &head, e);
		json_decref(certs);
		if (rc == 0)
			snprintf(line, len, "log: included in head of size %llu (verified)",
			         (unsigned long long)head.size);
	}
	if (rc < 0 && strcmp(e->code, "log_fork") == 0)
		ctl_log_print_fork(state, &head);
	tlog_head_clear(&head);
	return rc;
}

/*
 * An address lookup lists current certificates only (PROTOCOL.md §3.3): after a
 * revocation the address may have none, and the server's 404 alone reads as if it
 * never had any.  Say where revoked and superseded ones are.
 */
static void address_not_found(const char *address, struct err *e)
{
	char msg[ERR_MSG_MAX];

	snprintf(msg, sizeof(msg), "%s", e->msg);
	err_set(e, ERR_NOTFOUND, "not_found",
	        "%s (only current certificates are listed; `anchorctl lookup history %s` "
	        "shows revoked and superseded ones)",
	        msg, address);
}

int ctl_cmd_lookup(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	int pem = 0;
	const char *pin = NULL, *state = NULL;
	const struct ctl_opt opts[] = {{"--pem", NULL, &pem},
	                               {"--pin", &pin, NULL},
	                               {"--state", &state, NULL},
	                               CTL_COMMON_OPTS(ctl),
	                               {NULL, NULL, NULL}};
	char logline[128] = "";
	struct ctl_client client;
	struct ctl_args a;
	struct err e = {0};
	json_t *answer = NULL;
	char *path;
	int kind = kind_of(argv[0]), status = CTL_FAIL;

	if (ctl_parse(cmd, opts, argc, argv, 1, 1, &a, &status) < 0)
		return status;
	if (kind < 0)
		return ctl_usage(cmd, "unknown lookup '%s'", argv[0]);
	if (pem && ctl->json)
		return ctl_usage(cmd, "--pem and --json exclude each other");
	if (ctl_server(ctl, cmd, NULL, &client, &status) < 0)
		return status;
	if ((path = lookup_path(cmd, kind, a.pos[0], &status)) == NULL)
		return status;
	if (ctl_client_call(&client, "GET", path, NULL, &answer, &e) < 0) {
		if (kind == LK_ADDRESS && strcmp(e.code, "not_found") == 0)
			address_not_found(a.pos[0], &e);
		status = ctl_fail(&e);
	} else if (answer == NULL) {
		err_set(&e, ERR_INTERNAL, "bad_response", "the key server sent an empty answer");
		status = ctl_fail(&e);
	} else if (check_log(&client, kind, a.pos[0], answer, pin, state, logline, sizeof(logline),
	                     &e) < 0) {
		status = ctl_fail(&e);
	} else {
		status = CTL_OK;
		if (ctl->json)
			ctl_out_json(stdout, answer);
		else if (pem && show_pem(kind, answer) == 0)
			status = ctl_fail(&(struct err){ERR_NOTFOUND, "not_found",
			                                "the answer holds no certificate"});
		else if (!pem) {
			show(kind, answer);
			printf("%s\n", logline);
		}
		if (pem && kind != LK_ADDRESS && kind != LK_DOMAIN)
			warn_revoked(kind, answer);
	}
	json_decref(answer);
	free(path);
	return status;
}
