/*
 * files.h - the files anchorctl reads and writes: PEM files, keys, tokens,
 * and the two settings of keyserver.conf the db commands need.
 */
#ifndef ANCHORCTL_FILES_H
#define ANCHORCTL_FILES_H

#include <stddef.h>
#include <sys/types.h>

#include <openssl/x509.h>

#include "core/err.h"

#define CTL_FILE_MAX (1024 * 1024) /* nothing we read is larger */
#define CTL_TOKEN_MAX 512

/* Read a whole file ("-" is stdin) as a NUL-terminated malloc'd string. */
char *ctl_file_read(const char *path, size_t *len, struct err *e);
/* The same with another limit (a mail message may be larger than any file of ours). */
char *ctl_file_read_max(const char *path, size_t max, size_t *len, struct err *e);

/*
 * Write data to path with the given mode, fsync'd.  With replace unset an
 * existing file is an error (ERR_CONFLICT "exists"); with it set the new
 * file replaces the old one atomically (rename).
 */
int ctl_file_write(const char *path, const void *data, size_t len, mode_t mode, int replace,
                   struct err *e);

int ctl_file_exists(const char *path);

/* "<path minus from><to>" when path ends in from, else NULL; malloc'd.  How a key's
 * certificate and a certificate's chain file are named next to it. */
char *ctl_path_swap_suffix(const char *path, const char *from, const char *to);

/* The PEM certificates of path appended to chain[n..max); returns the new count, or -1
 * (ERR_INPUT "bad_certificate" when the file holds none). */
int ctl_certs_read(const char *path, X509 **chain, int n, int max, struct err *e);

/* Make dir (0700) unless it exists. */
int ctl_dir_make(const char *dir, struct err *e);

/*
 * Strip trailing blanks and newlines from a token in place.  Returns its
 * length, or -1 when it is empty or holds anything but printable ASCII.
 */
int ctl_token_strip(char *token);

/* Read a token from a file ("-" is stdin) into out; stripped as above. */
int ctl_token_read(const char *path, char out[CTL_TOKEN_MAX], struct err *e);

/*
 * The value of one "name = value" setting in keyserver.conf text (last one
 * wins, '#' comment lines skipped, blank-led continuation lines appended
 * with a space as in Postfix).  Returns malloc'd or NULL when absent.
 */
char *ctl_conf_pick(const char *text, const char *name);

#endif
