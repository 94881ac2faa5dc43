/*
 * output.h - how anchorctl shows things: errors, usage, the server's JSON,
 * and human summaries of certificate and domain objects (PROTOCOL.md §3).
 */
#ifndef ANCHORCTL_OUTPUT_H
#define ANCHORCTL_OUTPUT_H

#include <stdio.h>

#include <jansson.h>

/* Pretty-print JSON (2-space indent, server's key order) and a newline. */
int ctl_out_json(FILE *out, const json_t *json);

/* One certificate object as an indented block of "label: value" lines. */
void ctl_out_cert(FILE *out, const json_t *cert, const char *indent);

/* A JSON string field, or "-" when it is missing or not a string. */
const char *ctl_out_str(const json_t *obj, const char *key);

/* Print the "certificate" PEM of each certificate in list (an array), skipping
 * fingerprints already in seen (an array it appends to; may be NULL). */
int ctl_out_pems(FILE *out, const json_t *list, json_t *seen);

#endif
