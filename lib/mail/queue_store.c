/*
 * queue_store.c - the spool directory: writing message files durably,
 * loading them back at open, and the in-memory index of committed messages.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "mail/queue_priv.h"

void queue_count(uint64_t *field)
{
	__atomic_fetch_add(field, 1, __ATOMIC_RELAXED);
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int queue_file_write_tmp(struct queue *q, const struct queue_msg *m, const char *body, size_t len,
                         struct err *e)
{
	char tmp[QUEUE_ID_MAX + 8];
	size_t hlen = 0;
	char *hdr = queue_record_format(m, &hlen, e);
	int fd = -1;

	if (hdr == NULL)
		return -1;
	snprintf(tmp, sizeof(tmp), "t.%s", m->id);
	fd = openat(q->dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		goto fail;
	if (write_all(fd, hdr, hlen) < 0 || write_all(fd, body, len) < 0)
		goto fail;
	if (fsync(fd) < 0)
		goto fail;
	queue_count(&q->st.file_fsyncs);
	if (close(fd) < 0) {
		fd = -1;
		goto fail;
	}
	free(hdr);
	return 0;
fail:
	err_set(e, ERR_TEMP, "queue_write", "writing %s/%s: %s", q->dir, tmp, strerror(errno));
	if (fd >= 0)
		close(fd);
	unlinkat(q->dirfd, tmp, 0);
	free(hdr);
	return -1;
}

int queue_file_publish(struct queue *q, const char *id, struct err *e)
{
	char tmp[QUEUE_ID_MAX + 8], name[QUEUE_ID_MAX + 8];

	snprintf(tmp, sizeof(tmp), "t.%s", id);
	snprintf(name, sizeof(name), "m.%s", id);
	if (renameat(q->dirfd, tmp, q->dirfd, name) == 0)
		return 0;
	err_set(e, ERR_TEMP, "queue_write", "renaming %s/%s: %s", q->dir, tmp, strerror(errno));
	unlinkat(q->dirfd, tmp, 0);
	return -1;
}

int queue_file_write(struct queue *q, const struct queue_msg *m, const char *body, size_t len,
                     struct err *e)
{
	if (queue_file_write_tmp(q, m, body, len, e) < 0)
		return -1;
	return queue_file_publish(q, m->id, e);
}

int queue_dir_sync(struct queue *q, struct err *e)
{
	if (fsync(q->dirfd) < 0)
		return err_set(e, ERR_TEMP, "queue_sync", "fsync %s: %s", q->dir, strerror(errno));
	queue_count(&q->st.dir_fsyncs);
	return 0;
}

int queue_index_add(struct queue *q, struct queue_msg *m, struct err *e)
{
	unsigned char *busy = calloc(m->nrcpt, 1);

	if (busy == NULL)
		goto oom;
	if (q->nents == q->capents) {
		size_t ncap = q->capents ? q->capents * 2 : 64;
		struct queue_entry *n = reallocarray(q->ents, ncap, sizeof(*n));
		if (n == NULL)
			goto oom;
		q->ents = n;
		q->capents = ncap;
	}
	q->ents[q->nents++] = (struct queue_entry){.m = m, .busy = busy};
	return 0;
oom:
	free(busy);
	queue_msg_free(m);
	return err_set(e, ERR_INTERNAL, "internal", "out of memory");
}

void queue_index_free(struct queue *q)
{
	for (size_t i = 0; i < q->nents; i++) {
		queue_msg_free(q->ents[i].m);
		free(q->ents[i].busy);
	}
	free(q->ents);
	q->ents = NULL;
	q->nents = q->capents = 0;
}

/* At most max bytes of file name in the spool, malloc'd; *total is its size.  Something
 * that is not a regular file is ERR_INPUT (to quarantine); an I/O error is ERR_TEMP (to
 * stop and retry). */
static char *read_file(struct queue *q, const char *name, size_t max, size_t *len, uint64_t *total,
                       struct err *e)
{
	int fd = openat(q->dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	struct stat st;
	char *buf = NULL;
	size_t got = 0;

	if (fd < 0 && errno == ELOOP) {
		err_set(e, ERR_INPUT, "queue_record", "%s is a symbolic link", name);
		return NULL;
	}
	if (fd < 0 || fstat(fd, &st) < 0)
		goto fail;
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		err_set(e, ERR_INPUT, "queue_record", "%s is not a regular file", name);
		return NULL;
	}
	*total = (uint64_t)st.st_size;
	if ((uint64_t)max > *total)
		max = (size_t)*total;
	if ((buf = malloc(max + 1)) == NULL)
		goto fail;
	while (got < max) {
		ssize_t r = read(fd, buf + got, max - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0)
			errno = EIO; /* shrank while we read it */
		if (r <= 0)
			goto fail;
		got += (size_t)r;
	}
	buf[got] = '\0';
	close(fd);
	*len = got;
	return buf;
fail:
	err_set(e, ERR_TEMP, "queue_read", "reading %s/%s: %s", q->dir, name, strerror(errno));
	free(buf);
	if (fd >= 0)
		close(fd);
	return NULL;
}

int queue_file_load(struct queue *q, const char *name, struct queue_msg **out, char **body,
                    size_t *blen, struct err *e)
{
	size_t len = 0, off = 0;
	uint64_t total = 0;
	/* The envelope alone needs no more than the header record: recovery reads no bodies. */
	char *buf = read_file(q, name, body ? SIZE_MAX : QUEUE_HEADER_MAX, &len, &total, e);
	struct queue_msg *m = NULL;

	if (buf == NULL)
		return -1;
	if ((m = queue_record_parse_head(buf, len, total, &off, e)) == NULL)
		goto fail;
	if (strncmp(name, "m.", 2) != 0 || strcmp(name + 2, m->id) != 0) {
		err_set(e, ERR_INPUT, "queue_record", "file %s holds message %s", name, m->id);
		goto fail;
	}
	if (body != NULL) {
		memmove(buf, buf + off, len - off);
		buf[len - off] = '\0';
		*body = buf;
		*blen = len - off;
		buf = NULL;
	}
	free(buf);
	*out = m;
	return 0;
fail:
	free(buf);
	queue_msg_free(m);
	return -1;
}

static void quarantine(struct queue *q, const char *name, const struct err *why)
{
	char dst[300];

	snprintf(dst, sizeof(dst), "corrupt/%s", name);
	log_warn(NULL, "queue: %s/%s is unreadable (%s: %s), moved to corrupt/", q->dir, name,
	         why->code, why->msg);
	if (renameat(q->dirfd, name, q->dirfd, dst) < 0)
		log_err(NULL, "queue: moving %s/%s to corrupt/: %s", q->dir, name, strerror(errno));
	queue_count(&q->st.corrupt);
}

static int recover_one(struct queue *q, const char *name, int *changed, struct err *e)
{
	struct queue_msg *m = NULL;
	struct err why = {0};

	if (strncmp(name, "t.", 2) == 0) {
		if (unlinkat(q->dirfd, name, 0) < 0)
			return err_set(e, ERR_TEMP, "queue_recover", "removing %s/%s: %s", q->dir,
			               name, strerror(errno));
		queue_count(&q->st.tmp_removed);
		*changed = 1;
		return 0;
	}
	if (strncmp(name, "m.", 2) != 0)
		return 0; /* corrupt/ and anything an operator left there */
	if (queue_file_load(q, name, &m, NULL, NULL, &why) < 0) {
		if (why.kind != ERR_INPUT)
			return err_set(e, why.kind, why.code, "%s", why.msg);
		quarantine(q, name, &why);
		*changed = 1;
		return 0;
	}
	queue_count(&q->st.recovered);
	return queue_index_add(q, m, e);
}

int queue_recover(struct queue *q, struct err *e)
{
	int fd = dup(q->dirfd), changed = 0, rc = 0;
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;

	if (d == NULL) {
		if (fd >= 0)
			close(fd);
		return err_set(e, ERR_TEMP, "queue_open", "reading %s: %s", q->dir,
		               strerror(errno));
	}
	while (rc == 0 && (de = readdir(d)) != NULL)
		rc = recover_one(q, de->d_name, &changed, e);
	closedir(d);
	if (rc == 0 && changed)
		rc = queue_dir_sync(q, e);
	return rc;
}

/* A new spool directory must itself survive a crash. */
static void sync_parent(const char *dir)
{
	char *copy = strdup(dir);
	int fd = copy ? open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;

	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
	free(copy);
}

int queue_spool_open(struct queue *q, struct err *e)
{
	int cfd;

	if (mkdir(q->dir, 0700) == 0)
		sync_parent(q->dir);
	else if (errno != EEXIST)
		return err_set(e, ERR_TEMP, "queue_open", "mkdir %s: %s", q->dir, strerror(errno));
	q->dirfd = open(q->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (q->dirfd < 0)
		return err_set(e, ERR_TEMP, "queue_open", "open %s: %s", q->dir, strerror(errno));
	if (mkdirat(q->dirfd, "corrupt", 0700) < 0 && errno != EEXIST)
		return err_set(e, ERR_TEMP, "queue_open", "mkdir %s/corrupt: %s", q->dir,
		               strerror(errno));
	/* The spool and its parent must know about corrupt/ and the spool itself. */
	cfd = openat(q->dirfd, "corrupt", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cfd >= 0) {
		fsync(cfd);
		close(cfd);
	}
	return queue_dir_sync(q, e);
}

void queue_stats_get(struct queue *q, struct queue_stats *out)
{
	const uint64_t *src = (const uint64_t *)&q->st;
	uint64_t *dst = (uint64_t *)out;

	/* Every field is a counter bumped with queue_count(). */
	for (size_t i = 0; i < sizeof(*out) / sizeof(uint64_t); i++)
		dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
}
