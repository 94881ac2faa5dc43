/*
 * text.h - small character and string helpers that several layers need the same way.
 */
#ifndef ANCHOR_TEXT_H
#define ANCHOR_TEXT_H

#include <stddef.h>

/* 1 when the n octets at p are all lower-case hexadecimal digits (0-9, a-f). */
int text_is_lower_hex(const char *p, size_t n);
/* RFC 5322 atext (3.2.3): ASCII letters (either case), digits and
 * "!#$%&'*+-/=?^_`{|}~".  c is an unsigned char value (or EOF, which is not atext). */
int text_is_atext(int c);

/* Copy in into out (size bytes, size > 0) with ASCII letters lowered, truncating; a NULL
 * in gives "".  Other octets are copied as they are (no locale). */
void text_lower_copy(char *out, size_t size, const char *in);

/* snprintf into buf (size bytes) for a bounded text whose truncation is intended (a long
 * name or reason cut short): no result to check, and no truncation warning to silence. */
void text_printf(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
