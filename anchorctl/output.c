/* output.c - errors, usage and summaries; see output.h and ctl.h. */
#include "output.h"

#include <stdarg.h>
#include <string.h>

#include "ctl.h"

int ctl_fail(const struct err *e)
{
	fprintf(stderr, "anchorctl: %s: %s\n", e->code[0] != '\0' ? e->code : "error",
	        e->msg[0] != '\0' ? e->msg : "failed");
	return CTL_FAIL;
}

static void print_synopsis(FILE *out, const struct ctl_cmd *cmd, const char *lead)
{
	fprintf(out, "%sanchorctl [global options] %s%s%s %s\n", lead, cmd->word,
	        cmd->sub != NULL ? " " : "", cmd->sub != NULL ? cmd->sub : "", cmd->synopsis);
}

int ctl_usage(const struct ctl_cmd *cmd, const char *fmt, ...)
{
	va_list ap;

	fputs("anchorctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (cmd != NULL) {
		print_synopsis(stderr, cmd, "usage: ");
		fprintf(stderr, "Try 'anchorctl %s%s%s --help'.\n", cmd->word,
		        cmd->sub != NULL ? " " : "", cmd->sub != NULL ? cmd->sub : "");
	} else {
		fputs("Try 'anchorctl help'.\n", stderr);
	}
	return CTL_USAGE;
}

int ctl_help(const struct ctl_cmd *cmd)
{
	print_synopsis(stdout, cmd, "usage: ");
	printf("\n%s\n", cmd->help);
	printf(
	    "\nGlobal options (also accepted after the command):\n"
	    "  -s URL            key server base URL (env ANCHOR_SERVER)\n"
	    "  --cacert FILE     CA certificate(s) for the key server's TLS (env ANCHOR_CACERT)\n"
	    "  -c FILE           keyserver.conf, for the db commands\n"
	    "  --token-file FILE read the operator, admin or enrollment token from FILE\n"
	    "  --json            print the server's JSON\n");
	return CTL_OK;
}

int ctl_out_json(FILE *out, const json_t *json)
{
	if (json == NULL || json_dumpf(json, out, JSON_INDENT(2) | JSON_PRESERVE_ORDER) < 0)
		return -1;
	fputc('\n', out);
	return 0;
}

const char *ctl_out_str(const json_t *obj, const char *key)
{
	const char *s = json_string_value(json_object_get(obj, key));

	return s != NULL ? s : "-";
}

void ctl_out_cert(FILE *out, const json_t *cert, const char *indent)
{
	const char *purpose = ctl_out_str(cert, "purpose");

	fprintf(out, "%s%s (%s%s%s)\n", indent, ctl_out_str(cert, "name"),
	        ctl_out_str(cert, "kind"), strcmp(purpose, "-") != 0 ? ", " : "",
	        strcmp(purpose, "-") != 0 ? purpose : "");
	fprintf(out, "%s  key id:      %s\n", indent, ctl_out_str(cert, "key_id"));
	fprintf(out, "%s  status:      %s", indent, ctl_out_str(cert, "status"));
	if (json_is_string(json_object_get(cert, "superseded")))
		fprintf(out, " (since %s)", ctl_out_str(cert, "superseded"));
	fputc('\n', out);
	fprintf(out, "%s  algorithm:   %s\n", indent, ctl_out_str(cert, "algorithm"));
	fprintf(out, "%s  fingerprint: %s\n", indent, ctl_out_str(cert, "fingerprint"));
	fprintf(out, "%s  not before:  %s\n", indent, ctl_out_str(cert, "not_before"));
	fprintf(out, "%s  not after:   %s\n", indent, ctl_out_str(cert, "not_after"));
}

static int seen_before(json_t *seen, const char *fpr)
{
	if (seen == NULL || fpr == NULL)
		return 0;
	for (size_t i = 0; i < json_array_size(seen); i++)
		if (strcmp(json_string_value(json_array_get(seen, i)), fpr) == 0)
			return 1;
	json_array_append_new(seen, json_string(fpr));
	return 0;
}

int ctl_out_pems(FILE *out, const json_t *list, json_t *seen)
{
	int n = 0;

	for (size_t i = 0; i < json_array_size(list); i++) {
		const json_t *cert = json_array_get(list, i);
		const char *pem = json_string_value(json_object_get(cert, "certificate"));
		size_t len;

		if (pem == NULL ||
		    seen_before(seen, json_string_value(json_object_get(cert, "fingerprint"))))
			continue;
		len = strlen(pem);
		fputs(pem, out);
		if (len > 0 && pem[len - 1] != '\n')
			fputc('\n', out);
		n++;
	}
	return n;
}
