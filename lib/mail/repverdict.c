/*
 * repverdict.c - reading anchor-reputation's query answer (see repverdict.h).
 *
 * Text from the service ends up in SMTP replies and Postfix actions, so it is
 * reduced to printable ASCII here, once, for every client.
 */
#include "mail/repverdict.h"

#include <stdio.h>
#include <string.h>

#include <jansson.h>

void repverdict_clean(const char *in, char *out, size_t size)
{
	size_t i = 0;

	if (size == 0)
		return;
	for (; in != NULL && *in && i + 1 < size; in++)
		out[i++] = (*in >= 0x20 && *in < 0x7f) ? *in : ' ';
	out[i] = '\0';
}

static int verdict_known(const char *v)
{
	return v != NULL && (strcmp(v, "trusted") == 0 || strcmp(v, "known") == 0 ||
	                     strcmp(v, "unknown") == 0 || strcmp(v, "block") == 0);
}

/* The text of the reason that decided the verdict (PROTOCOL.md §11.2): the answer lists
 * the CSA result first and then the reasons of the subjects whose verdict is the overall
 * one, so a block, trusted or known verdict is explained by the first reason that names
 * a subject (a listing, not "CSA unknown"); an unknown one by the first reason. */
static const char *deciding_reason(json_t *reasons, const char *verdict)
{
	json_t *r;
	size_t i;

	if (!json_is_array(reasons) || json_array_size(reasons) == 0)
		return NULL;
	if (strcmp(verdict, "unknown") != 0) {
		json_array_foreach(reasons, i, r)
		{
			if (json_is_string(json_object_get(r, "subject")))
				return json_string_value(json_object_get(r, "text"));
		}
	}
	return json_string_value(json_object_get(json_array_get(reasons, 0), "text"));
}

int repverdict_parse(const char *body, size_t len, struct repverdict *v, struct err *e)
{
	json_error_t je;
	json_t *root, *reasons, *csa;
	const char *verdict, *text = NULL;

	memset(v, 0, sizeof(*v));
	root = json_loadb(body, len, 0, &je);
	if (root == NULL)
		return err_set(e, ERR_UNPROC, "bad_answer", "the answer is not JSON: %s", je.text);
	verdict = json_string_value(json_object_get(root, "verdict"));
	if (!verdict_known(verdict)) {
		json_decref(root);
		return err_set(e, ERR_UNPROC, "bad_answer",
		               "the answer has no verdict trusted, known, unknown or block");
	}
	snprintf(v->verdict, sizeof(v->verdict), "%s", verdict);
	reasons = json_object_get(root, "reasons");
	text = deciding_reason(reasons, verdict);
	repverdict_clean(text, v->reason, sizeof(v->reason));
	csa = json_object_get(root, "csa");
	if (json_is_object(csa))
		repverdict_clean(json_string_value(json_object_get(csa, "result")), v->csa,
		                 sizeof(v->csa));
	json_decref(root);
	return 0;
}
