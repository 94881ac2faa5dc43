/* files.c - reading and writing anchorctl's files; see files.h. */
#include "files.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pki/cert.h"

static int read_fd(int fd, const char *path, size_t max, char **out, size_t *len, struct err *e)
{
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap);

	if (buf == NULL)
		return err_set(e, ERR_INTERNAL, "internal", "out of memory");
	for (;;) {
		ssize_t r;

		if (n + 1 == cap) {
			char *bigger;

			if (cap >= max) {
				free(buf);
				return err_set(e, ERR_INPUT, "too_large",
				               "%s: larger than %zu bytes", path, max);
			}
			bigger = realloc(buf, cap * 2);
			if (bigger == NULL) {
				free(buf);
				return err_set(e, ERR_INTERNAL, "internal", "out of memory");
			}
			buf = bigger;
			cap *= 2;
		}
		r = read(fd, buf + n, cap - n - 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			free(buf);
			return err_set(e, ERR_INPUT, "read", "%s: %s", path, strerror(errno));
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	buf[n] = '\0';
	*out = buf;
	if (len != NULL)
		*len = n;
	return 0;
}

char *ctl_file_read_max(const char *path, size_t max, size_t *len, struct err *e)
{
	char *buf = NULL;
	int fd;

	if (strcmp(path, "-") == 0)
		return read_fd(STDIN_FILENO, "stdin", max, &buf, len, e) < 0 ? NULL : buf;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		err_set(e, ERR_INPUT, "read", "%s: %s", path, strerror(errno));
		return NULL;
	}
	if (read_fd(fd, path, max, &buf, len, e) < 0)
		buf = NULL;
	close(fd);
	return buf;
}

char *ctl_file_read(const char *path, size_t *len, struct err *e)
{
	return ctl_file_read_max(path, CTL_FILE_MAX, len, e);
}

static int write_fd(int fd, const char *path, const void *data, size_t len, struct err *e)
{
	const char *p = data;

	while (len > 0) {
		ssize_t w = write(fd, p, len);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return err_set(e, ERR_INTERNAL, "write", "%s: %s", path, strerror(errno));
		p += w;
		len -= (size_t)w;
	}
	if (fsync(fd) < 0)
		return err_set(e, ERR_INTERNAL, "write", "%s: %s", path, strerror(errno));
	return 0;
}

static int write_new(const char *path, const void *data, size_t len, mode_t mode, struct err *e)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);

	if (fd < 0 && errno == EEXIST)
		return err_set(e, ERR_CONFLICT, "exists", "%s already exists; not overwriting it",
		               path);
	if (fd < 0)
		return err_set(e, ERR_INTERNAL, "write", "%s: %s", path, strerror(errno));
	/* The umask may have narrowed the mode; a public file should be readable as asked. */
	if (fchmod(fd, mode) < 0) {
		err_set(e, ERR_INTERNAL, "write", "%s: %s", path, strerror(errno));
		goto fail;
	}
	if (write_fd(fd, path, data, len, e) < 0)
		goto fail;
	if (close(fd) < 0) {
		fd = -1;
		err_set(e, ERR_INTERNAL, "write", "%s: %s", path, strerror(errno));
		goto fail;
	}
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	unlink(path);
	return -1;
}

int ctl_file_write(const char *path, const void *data, size_t len, mode_t mode, int replace,
                   struct err *e)
{
	char *tmp = NULL;
	int rc;

	if (!replace)
		return write_new(path, data, len, mode, e);
	if (asprintf(&tmp, "%s.tmp%ld", path, (long)getpid()) < 0)
		return err_set(e, ERR_INTERNAL, "internal", "out of memory");
	unlink(tmp);
	rc = write_new(tmp, data, len, mode, e);
	if (rc == 0 && rename(tmp, path) < 0) {
		rc = err_set(e, ERR_INTERNAL, "write", "%s: %s", path, strerror(errno));
		unlink(tmp);
	}
	free(tmp);
	return rc;
}

char *ctl_path_swap_suffix(const char *path, const char *from, const char *to)
{
	size_t len = strlen(path), flen = strlen(from);
	char *out = NULL;

	if (len > flen && strcmp(path + len - flen, from) == 0 &&
	    asprintf(&out, "%.*s%s", (int)(len - flen), path, to) < 0)
		out = NULL;
	return out;
}

int ctl_file_exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

int ctl_dir_make(const char *dir, struct err *e)
{
	struct stat st;

	if (mkdir(dir, 0700) == 0)
		return 0;
	if (errno == EEXIST && stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
		return 0;
	return err_set(e, ERR_INPUT, "mkdir", "%s: %s", dir,
	               errno == EEXIST ? "exists and is not a directory" : strerror(errno));
}

int ctl_token_strip(char *token)
{
	size_t len = strlen(token);

	while (len > 0 && (token[len - 1] == '\n' || token[len - 1] == '\r' ||
	                   token[len - 1] == ' ' || token[len - 1] == '\t'))
		token[--len] = '\0';
	if (len == 0)
		return -1;
	for (size_t i = 0; i < len; i++)
		if (token[i] <= ' ' || token[i] > '~')
			return -1;
	return (int)len;
}

int ctl_token_read(const char *path, char out[CTL_TOKEN_MAX], struct err *e)
{
	size_t len = 0;
	char *text = ctl_file_read(path, &len, e);
	int rc = 0;

	if (text == NULL)
		return -1;
	if (len >= CTL_TOKEN_MAX || ctl_token_strip(text) < 0)
		rc =
		    err_set(e, ERR_INPUT, "bad_token", "%s does not hold a token (one line)", path);
	else
		snprintf(out, CTL_TOKEN_MAX, "%s", text);
	explicit_bzero(text, len);
	free(text);
	return rc;
}

/* Copy [s, end) without surrounding blanks. */
static char *trimmed(const char *s, const char *end)
{
	while (s < end && (*s == ' ' || *s == '\t'))
		s++;
	while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
		end--;
	return strndup(s, (size_t)(end - s));
}

char *ctl_conf_pick(const char *text, const char *name)
{
	size_t nlen = strlen(name);
	char *value = NULL;
	int in_ours = 0; /* the previous logical line set our value: continuations extend it */

	for (const char *line = text; *line != '\0';) {
		const char *end = strchrnul(line, '\n');
		const char *p = line;

		if (*p == ' ' || *p == '\t') {
			char *more = trimmed(p, end), *joined = NULL;

			if (in_ours && more != NULL && *more != '\0' && *more != '#' &&
			    asprintf(&joined, "%s %s", value, more) >= 0) {
				free(value);
				value = joined;
			}
			free(more);
		} else {
			in_ours = 0;
			if (strncmp(p, name, nlen) == 0) {
				const char *q = p + nlen;

				while (*q == ' ' || *q == '\t')
					q++;
				if (*q == '=') {
					free(value);
					value = trimmed(q + 1, end);
					in_ours = value != NULL;
				}
			}
		}
		line = *end == '\n' ? end + 1 : end;
	}
	return value;
}

int ctl_certs_read(const char *path, X509 **chain, int n, int max, struct err *e)
{
	size_t len;
	char *pem = ctl_file_read(path, &len, e);
	int got;

	if (pem == NULL)
		return -1;
	got = n < max ? cert_list_from_pem(pem, len, chain + n, max - n) : 0;
	free(pem);
	if (got == 0)
		return err_set(e, ERR_INPUT, "bad_certificate", "%s holds no PEM certificate",
		               path);
	return n + got;
}
