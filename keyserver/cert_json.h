/*
 * cert_json.h - the certificate and log entry objects the protocol publishes
 * (PROTOCOL.md §5, §6), built from the store's structs (cert_json.c): pure, no
 * database.  A certificate's "log" member (its inclusion proof) is added by the
 * caller (tlog.c, ks_log_certs_json), which alone reads the log.
 */
#ifndef KS_CERT_JSON_H
#define KS_CERT_JSON_H

#include "store.h"

/* The object of c without its "log" member; an erased one has only what PROTOCOL.md
 * §10.1 keeps.  A new reference, or NULL when out of memory. */
json_t *ks_cert_json(const struct ks_cert *c);
/* The entry as the log and the feed publish it (salt and name when the page has them). */
json_t *ks_log_entry_json(const struct ks_log_entry *en);
/* The page's entries as an array. */
json_t *ks_log_page_json(const struct ks_log_page *p);

#endif
