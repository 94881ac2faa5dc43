/*
 * rep_trace.h - what the relay's own trace fields say about a message, for its spam
 * reports (rep_report.c): where it came from, the passing signers from our
 * Authentication-Results, the From domain and the Message-ID.
 *
 * The source is the first hop outside the operator's own servers, as ARF's Source-IP:
 * the walk starts at the topmost Received field whose "by" is our hostname (fields above
 * it were added after us, by the mailbox side) and goes down the chain while a hop is
 * our own: its client address is in own_networks, or the field is the one our
 * submission port writes ("from HELO ([ip]) by us").  Below such a hop it reads only
 * fields whose "by" is our hostname or one of own_hosts; the first hop from elsewhere is
 * the source.  A message that never left our own servers (local submission delivered
 * back to us) has no source: ip and helo stay empty and own_hops says why.  Only the
 * topmost Authentication-Results with our authserv-id is read.
 */
#ifndef RELAY_REP_TRACE_H
#define RELAY_REP_TRACE_H

#include <stddef.h>

#define REP_EVIDENCE_MAX 511

/* Who we are, for the walk. */
struct relay_rep_own {
	const char *hostname;     /* the "by" of our Received fields */
	const char *authserv_id;  /* of our Authentication-Results */
	const char *own_networks; /* addresses/prefixes of our servers (relay_netlist) */
	const char *own_hosts;    /* names of our other servers, comma-separated */
};

struct relay_rep_trace {
	char ip[64];    /* the source: the first hop outside our servers ("" when none) */
	char helo[256]; /* its HELO */
	int have_received, have_ar;
	int own_hops; /* hops skipped as our own before the source (or before the end) */
	int external; /* 1 when a hop outside our own servers was found */
	int dkim_pass;
	int csa_pass; /* our csa=pass about the source (only when it is the topmost hop) */
	char ar_ip[64], ar_helo[256]; /* policy.iprev, smtp.helo of our A-R: the topmost hop */
	char signers[2][256];
	int nsigners;
	char from_domain[256]; /* from our AR's header.from, else the From field */
	char message_id[REP_EVIDENCE_MAX - 12 + 1]; /* room for "Message-ID: " */
};

/* Read the header section of msg (len octets) into *o (cleared first). */
void relay_rep_trace_read(const struct relay_rep_own *own, const char *msg, size_t len,
                          struct relay_rep_trace *o);

#endif
