/*
 * pow.c - proof-of-work stamps: hashcash version 1, as the Debian `hashcash`
 * tool makes them (`hashcash -m -b 20 bob@example.com`), carried in an
 * "X-Hashcash:" (or "Hashcash:") header field:
 *
 *   1:bits:date:resource:ext:rand:counter
 *
 * A stamp lifts a message for one recipient when the SHA-1 of its text has
 * at least `bits` leading zero bits, `bits` is at least the configured
 * difficulty, the resource is the recipient (any case), the date
 * (YYMMDD[hhmm[ss]], UTC) lies at most pow_window seconds in the past and at
 * most a day in the future, and the stamp was never spent here before.
 *
 * Spent stamps (their SHA-1) are appended to <dir>/spent, fsync'd before the
 * stamp counts, reloaded at open and forgotten once their date is out of the
 * window (the file is compacted then).  Thread-safe: one mutex.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "core/log.h"
#include "relay.h"

#define POW_STAMP_MAX 512 /* longer fields are not stamps */
#define POW_MAX_FIELDS 32 /* stamp fields looked at per message */
#define POW_FUTURE 86400  /* a stamp may be dated a day ahead (clocks, zones) */
#define POW_BUCKETS 65536
#define POW_MAX_SPENT 2000000   /* memory bound: ~100 MB at most */
#define POW_COMPACT_SLACK 10000 /* dead lines tolerated in the file before compaction */
#define POW_SHA1_LEN 20

struct spent {
	struct spent *next;
	long long expires; /* when the stamp would be refused as expired anyway */
	uint8_t id[POW_SHA1_LEN];
};

struct relay_pow {
	pthread_mutex_t mu;
	int dirfd;
	int fd; /* <dir>/spent, O_APPEND */
	unsigned bits;
	long long window;
	struct spent *buckets[POW_BUCKETS];
	size_t count; /* live entries */
	size_t lines; /* lines in the file */
};

/* ---- the spent set ---- */

static unsigned bucket_of(const uint8_t id[POW_SHA1_LEN])
{
	return ((unsigned)id[0] << 8 | id[1]) % POW_BUCKETS;
}

static int spent_has(const struct relay_pow *p, const uint8_t id[POW_SHA1_LEN])
{
	for (const struct spent *s = p->buckets[bucket_of(id)]; s != NULL; s = s->next)
		if (memcmp(s->id, id, POW_SHA1_LEN) == 0)
			return 1;
	return 0;
}

static int spent_add(struct relay_pow *p, const uint8_t id[POW_SHA1_LEN], long long expires)
{
	struct spent *s = malloc(sizeof(*s));
	unsigned b = bucket_of(id);

	if (s == NULL)
		return -1;
	memcpy(s->id, id, POW_SHA1_LEN);
	s->expires = expires;
	s->next = p->buckets[b];
	p->buckets[b] = s;
	p->count++;
	return 0;
}

static void spent_prune(struct relay_pow *p, long long now)
{
	for (size_t b = 0; b < POW_BUCKETS; b++) {
		struct spent **sp = &p->buckets[b];
		while (*sp != NULL) {
			if ((*sp)->expires < now) {
				struct spent *dead = *sp;
				*sp = dead->next;
				free(dead);
				p->count--;
			} else {
				sp = &(*sp)->next;
			}
		}
	}
}

/* ---- the file ---- */

static int write_all(int fd, const char *s, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, s, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		s += n;
		len -= (size_t)n;
	}
	return 0;
}

static void spent_line(const struct spent *s, char line[64])
{
	static const char hex[] = "0123456789abcdef";
	int n = snprintf(line, 64, "%lld ", s->expires);

	for (int i = 0; i < POW_SHA1_LEN; i++) {
		line[n++] = hex[s->id[i] >> 4];
		line[n++] = hex[s->id[i] & 15];
	}
	line[n++] = '\n';
	line[n] = '\0';
}

static int hexval(int c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* "<expires> <40 hex>"; returns 0 or -1 for a line that is not one. */
static int parse_line(const char *line, long long *expires, uint8_t id[POW_SHA1_LEN])
{
	char *end;
	const char *h;

	errno = 0;
	*expires = strtoll(line, &end, 10);
	if (errno != 0 || end == line || *end != ' ')
		return -1;
	h = end + 1;
	for (int i = 0; i < POW_SHA1_LEN; i++) {
		int hi = hexval(h[2 * i]), lo = hi >= 0 ? hexval(h[2 * i + 1]) : -1;
		if (lo < 0)
			return -1;
		id[i] = (uint8_t)(hi << 4 | lo);
	}
	return h[2 * POW_SHA1_LEN] == '\0' ? 0 : -1;
}

/* Read <dir>/spent into the set, skipping expired and malformed lines (a torn last line). */
static int spent_load(struct relay_pow *p, long long now, struct err *e)
{
	int fd = openat(p->dirfd, "spent", O_RDONLY | O_CLOEXEC);
	FILE *f;
	char line[128];

	if (fd < 0 && errno == ENOENT)
		return 0;
	if (fd < 0 || (f = fdopen(fd, "r")) == NULL) {
		if (fd >= 0)
			close(fd);
		return err_set(e, ERR_INTERNAL, "pow_io", "cannot read the spent stamps: %s",
		               strerror(errno));
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		long long expires;
		uint8_t id[POW_SHA1_LEN];
		line[strcspn(line, "\n")] = '\0';
		if (parse_line(line, &expires, id) < 0 || expires < now || spent_has(p, id))
			continue;
		if (p->count >= POW_MAX_SPENT || spent_add(p, id, expires) < 0)
			break;
	}
	fclose(f);
	return 0;
}

/* Rewrite <dir>/spent with the live entries only, atomically; reopen it for appending. */
static int spent_compact(struct relay_pow *p, struct err *e)
{
	int fd = openat(p->dirfd, "spent.tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	char line[64];
	int ok = fd >= 0;

	for (size_t b = 0; ok && b < POW_BUCKETS; b++)
		for (const struct spent *s = p->buckets[b]; ok && s != NULL; s = s->next) {
			spent_line(s, line);
			ok = write_all(fd, line, strlen(line)) == 0;
		}
	ok = ok && fsync(fd) == 0;
	if (fd >= 0 && close(fd) < 0)
		ok = 0;
	if (!ok || renameat(p->dirfd, "spent.tmp", p->dirfd, "spent") < 0 || fsync(p->dirfd) < 0) {
		unlinkat(p->dirfd, "spent.tmp", 0);
		return err_set(e, ERR_INTERNAL, "pow_io", "cannot rewrite the spent stamps: %s",
		               strerror(errno));
	}
	if (p->fd >= 0)
		close(p->fd);
	p->fd = openat(p->dirfd, "spent", O_WRONLY | O_APPEND | O_CLOEXEC);
	if (p->fd < 0)
		return err_set(e, ERR_INTERNAL, "pow_io", "cannot open the spent stamps: %s",
		               strerror(errno));
	p->lines = p->count;
	return 0;
}

/* Remember a stamp as spent, on disk first. */
static int spend(struct relay_pow *p, const uint8_t id[POW_SHA1_LEN], long long expires,
                 long long now)
{
	struct spent s = {.expires = expires};
	char line[64];
	struct err e = {0};

	if (p->lines > 2 * p->count + POW_COMPACT_SLACK) {
		spent_prune(p, now);
		if (spent_compact(p, &e) < 0)
			log_err(NULL, "pow: %s", e.msg);
	}
	if (p->count >= POW_MAX_SPENT) {
		spent_prune(p, now);
		if (p->count >= POW_MAX_SPENT)
			return -1;
	}
	memcpy(s.id, id, POW_SHA1_LEN);
	spent_line(&s, line);
	if (p->fd < 0 || write_all(p->fd, line, strlen(line)) < 0 || fdatasync(p->fd) < 0) {
		log_err(NULL, "pow: cannot record a spent stamp: %s", strerror(errno));
		return -1;
	}
	p->lines++;
	return spent_add(p, id, expires);
}

/* ---- open, free ---- */

struct relay_pow *relay_pow_open(const char *dir, unsigned bits, long long window, struct err *e)
{
	struct relay_pow *p;

	if (dir == NULL || *dir == '\0' || bits > 160 || window <= 0) {
		err_set(e, ERR_INPUT, "bad_config",
		        "proof-of-work needs a directory, at most 160 bits and a positive window");
		return NULL;
	}
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		err_set(e, ERR_INTERNAL, "pow_io", "cannot make %s: %s", dir, strerror(errno));
		return NULL;
	}
	if ((p = calloc(1, sizeof(*p))) == NULL) {
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		return NULL;
	}
	pthread_mutex_init(&p->mu, NULL);
	p->fd = -1;
	p->bits = bits;
	p->window = window;
	p->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (p->dirfd < 0) {
		err_set(e, ERR_INTERNAL, "pow_io", "cannot open %s: %s", dir, strerror(errno));
		goto fail;
	}
	if (spent_load(p, (long long)time(NULL), e) < 0 || spent_compact(p, e) < 0)
		goto fail;
	return p;
fail:
	relay_pow_free(p);
	return NULL;
}

void relay_pow_free(struct relay_pow *p)
{
	if (p == NULL)
		return;
	spent_prune(p, (long long)1 << 62);
	if (p->fd >= 0)
		close(p->fd);
	if (p->dirfd >= 0)
		close(p->dirfd);
	pthread_mutex_destroy(&p->mu);
	free(p);
}

/* ---- stamps ---- */

struct stamp {
	unsigned bits;
	long long from, until; /* the period the date names, [from, until) */
	const char *resource;
	size_t resource_len;
};

static int digits(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!isdigit((unsigned char)s[i]))
			return 0;
	return 1;
}

static int num2(const char *s)
{
	return (s[0] - '0') * 10 + (s[1] - '0');
}

/* YYMMDD[hhmm[ss]] (UTC) as the period it names. */
static int parse_date(const char *s, size_t n, long long *from, long long *until)
{
	struct tm tm = {0};
	time_t t;
	long long span;

	if ((n != 6 && n != 10 && n != 12) || !digits(s, n))
		return -1;
	tm.tm_year = 100 + num2(s);
	tm.tm_mon = num2(s + 2) - 1;
	tm.tm_mday = num2(s + 4);
	tm.tm_hour = n >= 10 ? num2(s + 6) : 0;
	tm.tm_min = n >= 10 ? num2(s + 8) : 0;
	tm.tm_sec = n == 12 ? num2(s + 10) : 0;
	if (tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 ||
	    tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 59)
		return -1;
	t = timegm(&tm);
	if (t == (time_t)-1 || tm.tm_mday != num2(s + 4)) /* Feb 30 would have moved */
		return -1;
	span = n == 6 ? 86400 : n == 10 ? 60 : 1;
	*from = (long long)t;
	*until = (long long)t + span;
	return 0;
}

/* Split "1:bits:date:resource:ext:rand:counter"; -1 when it is not a version 1 stamp. */
static int parse_stamp(const char *text, size_t len, struct stamp *st)
{
	const char *f[7];
	size_t flen[7];
	size_t start = 0;
	int n = 0;

	for (size_t i = 0; i <= len; i++) {
		if (i < len && text[i] != ':')
			continue;
		if (n == 7)
			return -1;
		f[n] = text + start;
		flen[n++] = i - start;
		start = i + 1;
	}
	if (n != 7 || flen[0] != 1 || f[0][0] != '1' || flen[1] == 0 || flen[1] > 3 ||
	    !digits(f[1], flen[1]) || flen[3] == 0 || flen[5] == 0 || flen[6] == 0)
		return -1;
	st->bits = (unsigned)strtoul(f[1], NULL, 10);
	if (st->bits > 160 || parse_date(f[2], flen[2], &st->from, &st->until) < 0)
		return -1;
	st->resource = f[3];
	st->resource_len = flen[3];
	return 0;
}

static unsigned leading_zero_bits(const uint8_t *h, size_t n)
{
	unsigned z = 0;

	for (size_t i = 0; i < n; i++) {
		if (h[i] == 0) {
			z += 8;
			continue;
		}
		for (uint8_t m = 0x80; (h[i] & m) == 0; m >>= 1)
			z++;
		break;
	}
	return z;
}

static int sha1(const char *text, size_t len, uint8_t out[POW_SHA1_LEN])
{
	unsigned n = 0;

	return EVP_Digest(text, len, out, &n, EVP_sha1(), NULL) == 1 && n == POW_SHA1_LEN ? 0 : -1;
}

/* Verdict on one stamp for rcpt.  1 valid and now spent, 0 not (why set), with a rank
 * telling how close it came (a stamp for this recipient explains more than another's). */
static int check_stamp(struct relay_pow *p, const char *text, size_t len, const char *rcpt,
                       long long now, char *why, size_t whylen, int *rank)
{
	struct stamp st;
	uint8_t h[POW_SHA1_LEN];
	unsigned zeros;
	int rc = 0;

	*rank = 1;
	if (len > POW_STAMP_MAX || parse_stamp(text, len, &st) < 0) {
		snprintf(why, whylen, "malformed stamp");
		return 0;
	}
	*rank = 2;
	if (st.resource_len != strlen(rcpt) ||
	    strncasecmp(st.resource, rcpt, st.resource_len) != 0) {
		snprintf(why, whylen, "stamp for another resource (%.*s)",
		         (int)(st.resource_len > 64 ? 64 : st.resource_len), st.resource);
		return 0;
	}
	*rank = 3;
	if (st.bits < p->bits) {
		snprintf(why, whylen, "too few bits (stamp claims %u, %u needed)", st.bits,
		         p->bits);
		return 0;
	}
	if (st.until <= now - p->window) {
		snprintf(why, whylen, "expired stamp (older than %lld seconds)", p->window);
		return 0;
	}
	if (st.from > now + POW_FUTURE) {
		snprintf(why, whylen, "stamp dated in the future");
		return 0;
	}
	if (sha1(text, len, h) < 0) {
		snprintf(why, whylen, "cannot hash the stamp");
		return 0;
	}
	zeros = leading_zero_bits(h, sizeof(h));
	if (zeros < st.bits) {
		snprintf(why, whylen, "too few bits (the stamp's hash has %u, it claims %u)", zeros,
		         st.bits);
		return 0;
	}
	*rank = 4;
	pthread_mutex_lock(&p->mu);
	if (spent_has(p, h)) {
		snprintf(why, whylen, "stamp already spent");
	} else if (spend(p, h, st.until + p->window, now) < 0) {
		snprintf(why, whylen, "cannot record the stamp as spent");
	} else {
		snprintf(why, whylen, "valid %u-bit stamp", st.bits);
		rc = 1;
	}
	pthread_mutex_unlock(&p->mu);
	return rc;
}

/* Is the field at line (length n) an X-Hashcash or Hashcash field?  Sets the value start. */
static int is_stamp_field(const char *line, size_t n, size_t *value)
{
	static const char *const names[] = {"X-Hashcash", "Hashcash"};

	for (size_t k = 0; k < 2; k++) {
		size_t nl = strlen(names[k]);
		size_t i = nl;
		if (n <= nl || strncasecmp(line, names[k], nl) != 0)
			continue;
		while (i < n && (line[i] == ' ' || line[i] == '\t'))
			i++;
		if (i < n && line[i] == ':') {
			*value = i + 1;
			return 1;
		}
	}
	return 0;
}

/* The end of the header line starting at i (index of its LF, or len). */
static size_t line_end(const char *msg, size_t len, size_t i)
{
	const char *nl = memchr(msg + i, '\n', len - i);

	return nl != NULL ? (size_t)(nl - msg) : len;
}

/*
 * Unfold the field starting at start (value at start+value) into buf, without
 * blanks (a stamp holds none); returns the index after the field's last line.
 */
static size_t field_value(const char *msg, size_t len, size_t start, size_t value, char *buf,
                          size_t bufsize, size_t *outlen)
{
	size_t i = start, o = 0;
	int first = 1;

	for (;;) {
		size_t end = line_end(msg, len, i);
		for (size_t j = first ? start + value : i; j < end; j++) {
			char c = msg[j];
			if (c == ' ' || c == '\t' || c == '\r')
				continue;
			if (o + 1 < bufsize)
				buf[o] = c;
			o++;
		}
		first = 0;
		i = end < len ? end + 1 : len;
		if (i >= len || (msg[i] != ' ' && msg[i] != '\t'))
			break;
	}
	*outlen = o; /* may exceed bufsize - 1: the caller refuses it as too long */
	if (bufsize > 0)
		buf[o < bufsize ? o : bufsize - 1] = '\0';
	return i;
}

int relay_pow_check(struct relay_pow *p, const char *msg, size_t len, const char *rcpt, time_t now,
                    char *why, size_t whylen)
{
	char buf[POW_STAMP_MAX + 2], best[160] = "no stamp";
	size_t i = 0;
	int fields = 0, best_rank = 0;

	if (p == NULL || msg == NULL || rcpt == NULL) {
		snprintf(why, whylen, "no stamp");
		return 0;
	}
	while (i < len && fields < POW_MAX_FIELDS) {
		size_t end = line_end(msg, len, i), value, vlen, next;
		char reason[160];
		int rank;

		if (end == i || (end == i + 1 && msg[i] == '\r'))
			break; /* the blank line: the header ends */
		if (!is_stamp_field(msg + i, end - i, &value)) {
			i = end < len ? end + 1 : len;
			continue;
		}
		fields++;
		next = field_value(msg, len, i, value, buf, sizeof(buf), &vlen);
		if (check_stamp(p, buf, vlen > POW_STAMP_MAX ? POW_STAMP_MAX + 1 : vlen, rcpt,
		                (long long)now, reason, sizeof(reason), &rank) == 1) {
			snprintf(why, whylen, "%s", reason);
			return 1;
		}
		if (rank > best_rank) {
			best_rank = rank;
			snprintf(best, sizeof(best), "%s", reason);
		}
		i = next;
	}
	snprintf(why, whylen, "%s", best);
	return 0;
}
