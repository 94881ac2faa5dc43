/*
 * text.h - small character and string helpers that several layers need the same way.
 */
#ifndef ANCHOR_TEXT_H
#define ANCHOR_TEXT_H

#include <stddef.h>

/* RFC 5322 atext (3.2.3): ASCII letters (either case), digits and
 * "!#$%&'*+-/=?^_`{|}~".  c is an unsigned char value (or EOF, which is not atext). */
int text_is_atext(int c);

/* Copy in into out (size bytes, size > 0) with ASCII letters lowered, truncating; a NULL
 * in gives "".  Other octets are copied as they are (no locale). */
void text_lower_copy(char *out, size_t size, const char *in);

#endif
