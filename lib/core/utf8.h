/*
 * utf8.h - well-formed UTF-8 (RFC 3629 table 3.1): no overlong forms, no
 * surrogates, nothing past U+10FFFF.
 */
#ifndef ANCHOR_UTF8_H
#define ANCHOR_UTF8_H

#include <stddef.h>

/* An incremental validator: need is the number of continuation bytes still
 * expected, lo/hi the range the next one must fall in (narrower than 80..BF
 * right after E0, ED, F0 and F4, which keeps out overlong forms, surrogates and
 * code points past U+10FFFF). */
struct utf8_state {
	int need;
	unsigned char lo, hi;
};
#define UTF8_STATE_INIT                                                                            \
	{                                                                                          \
		0, 0x80, 0xbf                                                                      \
	}

/* 1 when byte c continues or starts a well-formed sequence (u updated), else 0. */
int utf8_step(struct utf8_state *u, unsigned char c);

/* 1 when s[0..len) is well-formed UTF-8, else 0. */
int utf8_valid(const unsigned char *s, size_t len);

/* The length (1..4) of the well-formed UTF-8 sequence that starts s[0..len), or 0 when
 * none does (an ASCII byte, control bytes included, is a sequence of 1). */
size_t utf8_seq(const unsigned char *s, size_t len);

/* Replace, in place, every byte of s that is not part of well-formed UTF-8 with '?'. */
void utf8_sanitize(char *s);

#endif
