/* names.c - pure helpers over names and file names; see names.h. */
#include "names.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *ctl_name_lower(char *s)
{
	for (char *p = s; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	return s;
}

const char *ctl_name_domain_of(const char *address)
{
	const char *at = strrchr(address, '@');

	if (at == NULL || at == address || at[1] == '\0')
		return NULL;
	return at + 1;
}

int ctl_name_fingerprint(const char *text, char out[CERT_FPR_LEN])
{
	size_t i;

	if (strncasecmp(text, "sha256:", 7) == 0)
		text += 7;
	if (strlen(text) != 64)
		return -1;
	memcpy(out, "sha256:", 7);
	for (i = 0; i < 64; i++) {
		if (!isxdigit((unsigned char)text[i]))
			return -1;
		out[7 + i] = (char)tolower((unsigned char)text[i]);
	}
	out[7 + 64] = '\0';
	return 0;
}

static int path_safe(unsigned char c)
{
	return isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || c == '@' || c == ':';
}

char *ctl_name_path_escape(const char *component)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t len = strlen(component);
	char *out = malloc(3 * len + 1), *p = out;

	if (out == NULL)
		return NULL;
	for (const unsigned char *s = (const unsigned char *)component; *s != '\0'; s++) {
		if (path_safe(*s)) {
			*p++ = (char)*s;
		} else {
			*p++ = '%';
			*p++ = hex[*s >> 4];
			*p++ = hex[*s & 15];
		}
	}
	*p = '\0';
	return out;
}

char *ctl_name_file(const char *dir, const char *name, const char *suffix)
{
	char *out = NULL;
	size_t dlen;

	if (dir == NULL || *dir == '\0')
		dir = ".";
	dlen = strlen(dir);
	while (dlen > 1 && dir[dlen - 1] == '/')
		dlen--;
	if (asprintf(&out, "%.*s%s%s%s", (int)dlen, dir, dir[dlen - 1] == '/' ? "" : "/", name,
	             suffix != NULL ? suffix : "") < 0)
		return NULL;
	return out;
}

const char *ctl_name_admin_domain(const char *host, int (*exists)(const char *path, void *arg),
                                  void *arg)
{
	const char *suffix = host;

	while (suffix != NULL && *suffix != '\0') {
		char *path = ctl_name_file(suffix, "admin.token", NULL);
		int found;

		if (path == NULL)
			return NULL;
		found = exists(path, arg);
		free(path);
		if (found)
			return suffix;
		suffix = strchr(suffix, '.');
		if (suffix != NULL)
			suffix++;
	}
	return NULL;
}
