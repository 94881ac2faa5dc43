/*
 * ipaddr.h - what kind of address an IP literal is.  A host a stranger names for us
 * to connect to (a user's direct endpoint, PROTOCOL.md §6.5) must not point the
 * connection back into the network behind us; both the key server (at registration)
 * and the relay (after resolving the name, at delivery) ask here.
 */
#ifndef ANCHOR_IPADDR_H
#define ANCHOR_IPADDR_H

/*
 * 1 when text is an IPv4 or IPv6 literal in a range that is not the public
 * Internet: unspecified, loopback, RFC 1918 private, shared (100.64/10), link-local,
 * multicast, reserved, IPv6 unique-local and the IPv4-mapped forms of these; 0 when
 * it is a public literal; -1 when text is not an IP literal at all.
 */
int ipaddr_is_private(const char *text);

#endif
