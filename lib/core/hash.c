/* hash.c - FNV-1a, 64 bits; see hash.h. */
#include "core/hash.h"

#define FNV_OFFSET 14695981039346656037ULL
#define FNV_PRIME 1099511628211ULL

uint64_t hash_str(const char *s)
{
	uint64_t h = FNV_OFFSET;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * FNV_PRIME;
	return h;
}
