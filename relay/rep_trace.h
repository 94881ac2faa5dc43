/*
 * rep_trace.h - what the relay's own trace fields say about a message, for its spam
 * reports (see reputation.c): the client's IP and HELO from our Received field, the
 * passing signers from our Authentication-Results, the From domain and Message-ID.
 * Only the topmost field carrying our hostname / authserv-id is read.
 */
#ifndef RELAY_REP_TRACE_H
#define RELAY_REP_TRACE_H

#include <stddef.h>

#define REP_EVIDENCE_MAX 511

struct relay_rep_trace {
	char ip[64];
	char helo[256];
	int have_received, have_ar;
	int dkim_pass;
	int csa_pass; /* our csa=pass: the ip and helo are the client's own */
	char signers[2][256];
	int nsigners;
	char from_domain[256]; /* from our AR's header.from, else the From field */
	char message_id[REP_EVIDENCE_MAX - 12 + 1]; /* room for "Message-ID: " */
};

/* Read the header section of msg (len octets) into *o (cleared first). */
void relay_rep_trace_read(const char *hostname, const char *authserv_id, const char *msg,
                          size_t len, struct relay_rep_trace *o);

#endif
