/*
 * cmd_relay.c - the relay's control API (PROTOCOL.md §12): a recipient's
 * trust, block and subscribe lists, and spam complaints.  As the relay's
 * admin (bearer token) for any local recipient, or as the recipient itself
 * with a request signed by its own key (--key), which the relay checks
 * against the recipient domain's pinned root.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "pki/crypto.h"
#include "names.h"
#include "output.h"
#include "relay_call.h"
#include "sign.h"

#define RELAY_MESSAGE_MAX (32L * 1024 * 1024)

static const char *const list_names[] = {"trust", "block", "subscribe"};

/* ---- output ---- */

static void print_lists(const json_t *j)
{
	printf("lists of %s\n", ctl_out_str(j, "address"));
	for (size_t k = 0; k < sizeof(list_names) / sizeof(list_names[0]); k++) {
		const json_t *a = json_object_get(j, list_names[k]), *v;
		size_t i;
		printf("%s:%*s", list_names[k], (int)(10 - strlen(list_names[k])), "");
		if (json_array_size(a) == 0)
			printf("(none)");
		json_array_foreach(a, i, v)
		{
			printf("%s%s", i > 0 ? " " : "", json_string_value(v));
		}
		printf("\n");
	}
}

/* ---- relay list ---- */

int ctl_cmd_relay_list(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	struct relay_call rc = {0};
	const struct ctl_opt opts[] = {RELAY_OPTS(&rc), CTL_COMMON_OPTS(ctl), {NULL, NULL, NULL}};
	struct ctl_args a;
	struct err e = {0};
	json_t *answer = NULL;
	char *plain = NULL, *url = NULL;
	int status = CTL_FAIL;

	if (ctl_parse(cmd, opts, argc, argv, 1, 1, &a, &status) < 0 ||
	    ctl_arg_address(cmd, a.pos[0], &status) < 0 ||
	    ctl_relay_setup(ctl, cmd, &rc, &status) < 0)
		goto out;
	url = ctl_api_path("lists", a.pos[0], NULL);
	if (url == NULL || asprintf(&plain, "/v1/lists/%s", a.pos[0]) < 0) {
		plain = NULL;
		err_set(&e, ERR_INTERNAL, "internal", "out of memory");
		status = ctl_fail(&e);
		goto out;
	}
	if (ctl_relay_do(&rc, a.pos[0], "GET", plain, url, NULL, &answer, &e) < 0) {
		status = ctl_fail(&e);
		goto out;
	}
	if (ctl->json)
		ctl_out_json(stdout, answer);
	else
		print_lists(answer);
	status = CTL_OK;
out:
	ctl_relay_call_clear(&rc);
	json_decref(answer);
	free(plain);
	free(url);
	return status;
}

/* ---- relay trust|block|subscribe add|remove ---- */

int ctl_cmd_relay_entry(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	struct relay_call rc = {0};
	const struct ctl_opt opts[] = {RELAY_OPTS(&rc), CTL_COMMON_OPTS(ctl), {NULL, NULL, NULL}};
	const char *list = cmd->sub, *method;
	struct ctl_args a;
	struct err e = {0};
	json_t *answer = NULL;
	char *plain = NULL, *url = NULL, *esc = NULL, *rest = NULL;
	int status = CTL_FAIL, add;

	if (ctl_parse(cmd, opts, argc, argv, 3, 3, &a, &status) < 0)
		goto out;
	if (strcmp(a.pos[0], "add") != 0 && strcmp(a.pos[0], "remove") != 0) {
		status = ctl_usage(cmd, "say add or remove, not '%s'", a.pos[0]);
		goto out;
	}
	add = strcmp(a.pos[0], "add") == 0;
	method = add ? "PUT" : "DELETE";
	if (ctl_arg_address(cmd, a.pos[1], &status) < 0 ||
	    ctl_relay_setup(ctl, cmd, &rc, &status) < 0)
		goto out;
	ctl_name_lower(a.pos[2]);
	if ((esc = ctl_name_path_escape(a.pos[2])) == NULL ||
	    asprintf(&rest, "/%s/%s", list, esc) < 0)
		rest = NULL;
	if (rest != NULL)
		url = ctl_api_path("lists", a.pos[1], rest);
	if (url == NULL || asprintf(&plain, "/v1/lists/%s/%s/%s", a.pos[1], list, a.pos[2]) < 0) {
		plain = NULL;
		err_set(&e, ERR_INTERNAL, "internal", "out of memory");
		status = ctl_fail(&e);
		goto out;
	}
	if (ctl_relay_do(&rc, a.pos[1], method, plain, url, NULL, &answer, &e) < 0) {
		status = ctl_fail(&e);
		goto out;
	}
	if (ctl->json)
		ctl_out_json(stdout, answer);
	else
		printf("%s %s the %s list of %s\n", a.pos[2], add ? "added to" : "removed from",
		       list, a.pos[1]);
	status = CTL_OK;
out:
	ctl_relay_call_clear(&rc);
	json_decref(answer);
	free(plain);
	free(url);
	free(esc);
	free(rest);
	return status;
}

/* ---- relay complain ---- */

/* The message file ("-": stdin) in wire form: bare LF become CRLF. */
static char *read_message(const char *path, size_t *len, struct err *e)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
	char *out = NULL, *bigger;
	size_t cap = 0, n = 0;
	int c, prev = 0;

	if (f == NULL) {
		err_set(e, ERR_INPUT, "no_file", "cannot read %s: %s", path, strerror(errno));
		return NULL;
	}
	while ((c = getc(f)) != EOF) {
		if (n + 3 > cap) {
			cap = cap ? cap * 2 : 65536;
			if (cap > (size_t)RELAY_MESSAGE_MAX + 3 ||
			    (bigger = realloc(out, cap)) == NULL) {
				err_set(e, ERR_INPUT, "too_large", "%s is larger than %ld bytes",
				        path, RELAY_MESSAGE_MAX);
				goto fail;
			}
			out = bigger;
		}
		if (c == '\n' && prev != '\r')
			out[n++] = '\r';
		out[n++] = (char)c;
		prev = c;
	}
	if (n == 0) {
		err_set(e, ERR_INPUT, "empty_message", "%s is empty", path);
		goto fail;
	}
	if (f != stdin)
		fclose(f);
	*len = n;
	return out;
fail:
	if (f != stdin)
		fclose(f);
	free(out);
	return NULL;
}

/* What was reported: the subjects, and a clear word when no hop outside the relay
 * operator's own servers was found (local submission): then no address or HELO was. */
static void print_complaint(json_t *answer, int spam, const char *file, const char *rcpt)
{
	json_t *subjects = json_object_get(answer, "subjects"), *s;
	const char *source = json_string_value(json_object_get(answer, "source"));
	size_t i;

	printf("%s complaint about %s reported for %s\n", spam ? "spam" : "not-spam", file, rcpt);
	json_array_foreach(subjects, i, s) printf("  reported: %s\n", json_string_value(s));
	if (source != NULL && strcmp(source, "none") == 0)
		printf("  no hop outside our own servers (local submission): no address or HELO "
		       "reported, only the foreign names above\n");
}

int ctl_cmd_relay_complain(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	struct relay_call rc = {0};
	int spam = 0, not_spam = 0;
	const struct ctl_opt opts[] = {RELAY_OPTS(&rc),
	                               {"--spam", NULL, &spam},
	                               {"--not-spam", NULL, &not_spam},
	                               CTL_COMMON_OPTS(ctl),
	                               {NULL, NULL, NULL}};
	struct ctl_args a;
	struct err e = {0};
	json_t *body = NULL, *answer = NULL;
	char *msg = NULL, *b64 = NULL;
	size_t len = 0;
	int status = CTL_FAIL;

	if (ctl_parse(cmd, opts, argc, argv, 2, 2, &a, &status) < 0 ||
	    ctl_arg_address(cmd, a.pos[0], &status) < 0)
		goto out;
	if (spam == not_spam) {
		status = ctl_usage(cmd, "say --spam or --not-spam");
		goto out;
	}
	if (ctl_relay_setup(ctl, cmd, &rc, &status) < 0)
		goto out;
	if ((msg = read_message(a.pos[1], &len, &e)) == NULL) {
		status = ctl_fail(&e);
		goto out;
	}
	if ((b64 = crypto_b64_encode(msg, len)) == NULL ||
	    (body = json_pack("{s:s, s:s}", "category", spam ? "spam" : "not-spam", "message",
	                      b64)) == NULL) {
		err_set(&e, ERR_INTERNAL, "internal", "out of memory");
		status = ctl_fail(&e);
		goto out;
	}
	if (ctl_relay_do(&rc, a.pos[0], "POST", "/v1/complaints", "/v1/complaints", body, &answer,
	                 &e) < 0) {
		status = ctl_fail(&e);
		goto out;
	}
	if (ctl->json)
		ctl_out_json(stdout, answer);
	else
		print_complaint(answer, spam, a.pos[1], a.pos[0]);
	status = CTL_OK;
out:
	ctl_relay_call_clear(&rc);
	json_decref(body);
	json_decref(answer);
	free(msg);
	free(b64);
	return status;
}

/* ---- relay fetch ---- */

/* The whole message of a partial view (PROTOCOL.md §12.12): the relay fetches it from its
 * sender and delivers it beside the view.  As the admin, or as a recipient (--key). */
int ctl_cmd_relay_fetch(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	struct relay_call rc = {0};
	const struct ctl_opt opts[] = {RELAY_OPTS(&rc), CTL_COMMON_OPTS(ctl), {NULL, NULL, NULL}};
	struct ctl_args a;
	struct err e = {0};
	json_t *answer = NULL;
	char path[128];
	int status = CTL_FAIL;

	if (ctl_parse(cmd, opts, argc, argv, 1, 2, &a, &status) < 0)
		goto out;
	if (strlen(a.pos[0]) != 32 || strspn(a.pos[0], "0123456789abcdef") != 32) {
		status =
		    ctl_usage(cmd, "the id is the 32 hex digits of the view's Anchor-Partial id=");
		goto out;
	}
	if (rc.key_path != NULL && (a.npos < 2 || ctl_arg_address(cmd, a.pos[1], &status) < 0)) {
		if (a.npos < 2)
			status = ctl_usage(cmd, "with --key, name the recipient address too");
		goto out;
	}
	if (ctl_relay_setup(ctl, cmd, &rc, &status) < 0)
		goto out;
	snprintf(path, sizeof(path), "/v1/partial/%s/fetch", a.pos[0]);
	if (ctl_relay_do(&rc, a.npos > 1 ? a.pos[1] : "", "POST", path, path, NULL, &answer, &e) <
	    0) {
		status = ctl_fail(&e);
		goto out;
	}
	if (ctl->json)
		ctl_out_json(stdout, answer);
	else
		printf("fetched: %s\n", ctl_out_str(answer, "message"));
	status = CTL_OK;
out:
	ctl_relay_call_clear(&rc);
	json_decref(answer);
	return status;
}

/* ---- relay sign ---- */

/* "Authorization: Basic <b64 of address:password>", the password the first line of path. */
static char *basic_line(const char *address, const char *path, struct err *e)
{
	size_t len = 0;
	char *pass = ctl_file_read(path, &len, e), *pair = NULL, *b64 = NULL, *line = NULL;

	if (pass == NULL)
		return NULL;
	pass[strcspn(pass, "\r\n")] = '\0';
	if (asprintf(&pair, "%s:%s", address, pass) < 0)
		pair = NULL;
	if (pair == NULL || (b64 = crypto_b64_encode(pair, strlen(pair))) == NULL ||
	    asprintf(&line, "Authorization: Basic %s", b64) < 0) {
		line = NULL;
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
	}
	explicit_bzero(pass, strlen(pass));
	if (pair != NULL)
		explicit_bzero(pair, strlen(pair));
	if (b64 != NULL)
		explicit_bzero(b64, strlen(b64));
	free(pass);
	free(pair);
	free(b64);
	return line;
}

/* The signed message of the answer, as it is, on standard output. */
static int print_signed(const json_t *answer, struct err *e)
{
	const char *b64 = json_string_value(json_object_get(answer, "message"));
	size_t len = 0;
	uint8_t *msg = b64 != NULL ? crypto_b64_decode(b64, &len) : NULL;
	int ok = msg != NULL && fwrite(msg, 1, len, stdout) == len && fflush(stdout) == 0;

	free(msg);
	return ok ? 0 : err_set(e, ERR_INTERNAL, "bad_response", "no signed message in the answer");
}

int ctl_cmd_relay_sign(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	const char *pw_file = NULL;
	const struct ctl_opt opts[] = {
	    {"--password-file", &pw_file, NULL}, CTL_COMMON_OPTS(ctl), {NULL, NULL, NULL}};
	struct ctl_client client = {0};
	struct ctl_args a;
	struct err e = {0};
	json_t *body = NULL, *answer = NULL;
	char *msg = NULL, *b64 = NULL, *basic = NULL;
	size_t len = 0;
	int status = CTL_FAIL;

	if (ctl_parse(cmd, opts, argc, argv, 2, 2, &a, &status) < 0 ||
	    ctl_arg_address(cmd, a.pos[0], &status) < 0)
		return status;
	if (pw_file == NULL)
		return ctl_usage(cmd, "give --password-file: the submission password of %s",
		                 a.pos[0]);
	if (ctl_service(ctl, cmd, "ANCHOR_RELAY_URL", "relay", &client, &status) < 0)
		return status;
	if ((basic = basic_line(a.pos[0], pw_file, &e)) == NULL ||
	    (msg = read_message(a.pos[1], &len, &e)) == NULL)
		goto fail;
	client.basic = basic;
	if ((b64 = crypto_b64_encode(msg, len)) == NULL ||
	    (body = json_pack("{s:s}", "message", b64)) == NULL) {
		err_set(&e, ERR_INTERNAL, "internal", "out of memory");
		goto fail;
	}
	if (ctl_client_call(&client, "POST", "/v1/sign", body, &answer, &e) < 0 ||
	    (ctl->json ? ctl_out_json(stdout, answer) : print_signed(answer, &e)) < 0)
		goto fail;
	status = CTL_OK;
	goto out;
fail:
	status = ctl_fail(&e);
out:
	if (basic != NULL)
		explicit_bzero(basic, strlen(basic));
	free(basic);
	json_decref(body);
	json_decref(answer);
	free(msg);
	free(b64);
	return status;
}
