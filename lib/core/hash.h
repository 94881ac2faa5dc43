/*
 * hash.h - the one string hash of the tree: FNV-1a, 64 bits.
 *
 * The keys hashed here (addresses, names, paths) are short; a table that peers can fill
 * must bound its chains or its entries itself (core/ttlcache does), since FNV is not
 * keyed and colliding keys can be chosen.
 */
#ifndef ANCHOR_HASH_H
#define ANCHOR_HASH_H

#include <stdint.h>

uint64_t hash_str(const char *s);

#endif
