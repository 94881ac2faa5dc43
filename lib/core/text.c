/* text.c - character and string helpers; see text.h. */
#include "core/text.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int text_is_atext(int c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return 1;
	return c > 0 && c < 0x80 && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

void text_lower_copy(char *out, size_t size, const char *in)
{
	size_t i = 0;

	if (size == 0)
		return;
	for (; in != NULL && in[i] != '\0' && i + 1 < size; i++)
		out[i] = (char)(in[i] >= 'A' && in[i] <= 'Z' ? in[i] + ('a' - 'A') : in[i]);
	out[i] = '\0';
}

void text_printf(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, size, fmt, ap);
	va_end(ap);
}

int text_is_lower_hex(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
			return 0;
	return 1;
}
