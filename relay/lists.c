/*
 * lists.c - each recipient's trust, block and subscription lists.
 *
 * One JSON file per recipient under the lists directory, named by the hex
 * SHA-256 of the lowercase address (addresses may hold characters a file
 * name should not), the address itself inside:
 *
 *   {"address": "bob@example.com", "trust": [...], "block": [...], "subscribe": [...]}
 *
 * A change is written to a temporary file, fsync'd, renamed over the old
 * file and the directory fsync'd before it is acknowledged.  Files are read
 * once and kept in memory; this process is their only writer.
 *
 * Entries are lowercase addresses or "@domain" (a bare "domain" is stored as
 * "@domain").  A domain entry matches that domain exactly, not its
 * subdomains: a subdomain is a separately anchored domain with its own keys
 * and its own standing, and a recipient can list it on its own.
 *
 * Locking: readers (relay_lists_check, relay_lists_json) take the cache's
 * read lock; a change is serialised by write_mu, written to disk without
 * holding the cache lock (an fsync must not stall every inbound message),
 * then swapped into the cache under the write lock.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "core/text.h"
#include "core/hash.h"
#include "pki/cert.h"
#include "pki/name.h"
#include "pki/crypto.h"
#include "core/log.h"
#include "relay.h"

#define LISTS_MAX_ENTRIES 10000
#define LISTS_BUCKETS 4096
#define LISTS_FILE_MAX (16 * 1024 * 1024)

enum { L_TRUST = 0, L_BLOCK, L_SUBSCRIBE, L_COUNT };
static const char *const list_names[L_COUNT] = {"trust", "block", "subscribe"};

/* A sorted array of distinct strings. */
struct strset {
	char **v;
	size_t n, cap;
};

struct rcpt_lists {
	struct rcpt_lists *next;
	char *addr;
	struct strset lists[L_COUNT];
};

struct relay_lists {
	char *dir;
	int dirfd;
	pthread_rwlock_t lock; /* the cache */
	pthread_mutex_t write_mu;
	struct rcpt_lists *buckets[LISTS_BUCKETS];
};

/* ---- sorted string sets ---- */

static int strset_find(const struct strset *s, const char *x, size_t *pos)
{
	size_t lo = 0, hi = s->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(s->v[mid], x);
		if (c == 0) {
			*pos = mid;
			return 1;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*pos = lo;
	return 0;
}

static int strset_has(const struct strset *s, const char *x)
{
	size_t pos;

	return x != NULL && *x != '\0' && strset_find(s, x, &pos);
}

/* 1 added, 0 already there, -1 out of memory. */
static int strset_add(struct strset *s, const char *x)
{
	size_t pos;
	char *copy;

	if (strset_find(s, x, &pos))
		return 0;
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 8;
		char **v = realloc(s->v, cap * sizeof(*v));
		if (v == NULL)
			return -1;
		s->v = v;
		s->cap = cap;
	}
	if ((copy = strdup(x)) == NULL)
		return -1;
	memmove(s->v + pos + 1, s->v + pos, (s->n - pos) * sizeof(*s->v));
	s->v[pos] = copy;
	s->n++;
	return 1;
}

static void strset_remove(struct strset *s, const char *x)
{
	size_t pos;

	if (!strset_find(s, x, &pos))
		return;
	free(s->v[pos]);
	memmove(s->v + pos, s->v + pos + 1, (s->n - pos - 1) * sizeof(*s->v));
	s->n--;
}

static void rcpt_lists_free(struct rcpt_lists *r)
{
	if (r == NULL)
		return;
	for (int k = 0; k < L_COUNT; k++) {
		for (size_t i = 0; i < r->lists[k].n; i++)
			free(r->lists[k].v[i]);
		free(r->lists[k].v);
	}
	free(r->addr);
	free(r);
}

static struct rcpt_lists *rcpt_lists_new(const char *addr)
{
	struct rcpt_lists *r = calloc(1, sizeof(*r));

	if (r == NULL || (r->addr = strdup(addr)) == NULL) {
		free(r);
		return NULL;
	}
	return r;
}

static int rcpt_norm(const char *rcpt, char out[RELAY_ADDR_MAX], struct err *e)
{
	if (rcpt == NULL || strlen(rcpt) >= RELAY_ADDR_MAX)
		return err_set(e, ERR_INPUT, "bad_name", "the recipient is not a mail address");
	text_lower_copy(out, RELAY_ADDR_MAX, rcpt);
	return name_check_address(out, e);
}

/* An address, "@domain" or "domain" as it is stored: lowercase, domains with '@'. */
static int entry_norm(const char *entry, char out[RELAY_ADDR_MAX], struct err *e)
{
	char buf[RELAY_ADDR_MAX];
	struct err ne = {0};

	if (entry == NULL || *entry == '\0' || strlen(entry) >= RELAY_ADDR_MAX - 1)
		return err_set(e, ERR_INPUT, "bad_entry",
		               "a list entry is an address, @domain or domain");
	text_lower_copy(buf, sizeof(buf), entry);
	if (buf[0] == '@' || strchr(buf, '@') == NULL) {
		const char *domain = buf[0] == '@' ? buf + 1 : buf;
		if (name_check_domain(domain, &ne) < 0)
			return err_set(e, ERR_INPUT, "bad_entry", "'%s' is not a domain: %s", entry,
			               ne.msg);
		out[0] = '@';
		memcpy(out + 1, domain, strlen(domain) + 1); /* checked: at most 253 octets */
		return 0;
	}
	if (name_check_address(buf, &ne) < 0)
		return err_set(e, ERR_INPUT, "bad_entry", "'%s' is not a mail address: %s", entry,
		               ne.msg);
	memcpy(out, buf, strlen(buf) + 1);
	return 0;
}

static int list_index(const char *list, struct err *e)
{
	for (int k = 0; k < L_COUNT; k++)
		if (list != NULL && strcmp(list, list_names[k]) == 0)
			return k;
	return err_set(e, ERR_INPUT, "bad_list", "no list '%s': use trust, block or subscribe",
	               list != NULL ? list : "");
}

static unsigned bucket_of(const char *addr)
{
	return (unsigned)(hash_str(addr) % LISTS_BUCKETS);
}

static struct rcpt_lists *cache_find(struct relay_lists *l, const char *addr)
{
	for (struct rcpt_lists *r = l->buckets[bucket_of(addr)]; r != NULL; r = r->next)
		if (strcmp(r->addr, addr) == 0)
			return r;
	return NULL;
}

/* Called with the write lock: r replaces any cached record of its address. */
static void cache_put(struct relay_lists *l, struct rcpt_lists *r)
{
	struct rcpt_lists **p = &l->buckets[bucket_of(r->addr)];

	for (; *p != NULL; p = &(*p)->next) {
		if (strcmp((*p)->addr, r->addr) == 0) {
			struct rcpt_lists *old = *p;
			r->next = old->next;
			*p = r;
			rcpt_lists_free(old);
			return;
		}
	}
	r->next = NULL;
	*p = r;
}

/* ---- files ---- */

static void file_name(const char *addr, const char *suffix, char out[CRYPTO_HEX256_LEN + 8])
{
	char hex[CRYPTO_HEX256_LEN];

	crypto_sha256_hex(addr, strlen(addr), hex);
	snprintf(out, CRYPTO_HEX256_LEN + 8, "%s%s", hex, suffix);
}

static json_t *record_json(const struct rcpt_lists *r)
{
	json_t *o = json_pack("{s:s}", "address", r->addr);

	for (int k = 0; o != NULL && k < L_COUNT; k++) {
		json_t *a = json_array();
		for (size_t i = 0; a != NULL && i < r->lists[k].n; i++)
			json_array_append_new(a, json_string(r->lists[k].v[i]));
		if (a == NULL || json_object_set_new(o, list_names[k], a) < 0) {
			json_decref(o);
			return NULL;
		}
	}
	return o;
}

static int parse_list(struct rcpt_lists *r, int k, json_t *arr, struct err *e)
{
	char norm[RELAY_ADDR_MAX];
	size_t i;
	json_t *v;

	if (arr == NULL)
		return 0;
	if (!json_is_array(arr) || json_array_size(arr) > LISTS_MAX_ENTRIES)
		return err_set(e, ERR_INTERNAL, "lists_corrupt", "%s list of %s is malformed",
		               list_names[k], r->addr);
	json_array_foreach(arr, i, v)
	{
		if (!json_is_string(v) || entry_norm(json_string_value(v), norm, e) < 0)
			return err_set(e, ERR_INTERNAL, "lists_corrupt",
			               "%s list of %s holds a malformed entry", list_names[k],
			               r->addr);
		if (strset_add(&r->lists[k], norm) < 0)
			return err_set(e, ERR_INTERNAL, "internal", "out of memory");
	}
	return 0;
}

static int read_all(int fd, char **out, size_t *len, struct err *e)
{
	struct stat st;
	char *buf;
	size_t got = 0;

	if (fstat(fd, &st) < 0 || st.st_size > LISTS_FILE_MAX)
		return err_set(e, ERR_INTERNAL, "lists_corrupt", "a lists file is too large");
	if ((buf = malloc((size_t)st.st_size + 1)) == NULL)
		return err_set(e, ERR_INTERNAL, "internal", "out of memory");
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			free(buf);
			return err_set(e, ERR_TEMP, "lists_io", "cannot read a lists file: %s",
			               n < 0 ? strerror(errno) : "short read");
		}
		got += (size_t)n;
	}
	buf[got] = '\0';
	*out = buf;
	*len = got;
	return 0;
}

/* The recipient's record from its file: 1 loaded, 0 no file, -1 error. */
static int record_load(struct relay_lists *l, const char *addr, struct rcpt_lists **out,
                       struct err *e)
{
	char name[CRYPTO_HEX256_LEN + 8];
	struct rcpt_lists *r = NULL;
	json_t *o = NULL;
	char *text = NULL;
	size_t len;
	int fd, rc = -1;

	*out = NULL;
	file_name(addr, ".json", name);
	fd = openat(l->dirfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT)
		return 0;
	if (fd < 0)
		return err_set(e, ERR_TEMP, "lists_io", "cannot open the lists of %s: %s", addr,
		               strerror(errno));
	if (read_all(fd, &text, &len, e) < 0)
		goto out;
	o = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
	if (!json_is_object(o) || !json_is_string(json_object_get(o, "address")) ||
	    strcmp(json_string_value(json_object_get(o, "address")), addr) != 0) {
		err_set(e, ERR_INTERNAL, "lists_corrupt", "the lists file of %s is malformed",
		        addr);
		goto out;
	}
	if ((r = rcpt_lists_new(addr)) == NULL) {
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		goto out;
	}
	for (int k = 0; k < L_COUNT; k++)
		if (parse_list(r, k, json_object_get(o, list_names[k]), e) < 0)
			goto out;
	*out = r;
	r = NULL;
	rc = 1;
out:
	rcpt_lists_free(r);
	json_decref(o);
	free(text);
	close(fd);
	return rc;
}

static int write_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Write json as addr's file: temporary file, fsync, rename, directory fsync. */
static int record_write(struct relay_lists *l, const char *addr, json_t *json, struct err *e)
{
	char tmp[CRYPTO_HEX256_LEN + 8], name[CRYPTO_HEX256_LEN + 8];
	char *text = json_dumps(json, JSON_COMPACT);
	int fd = -1, rc = -1;

	file_name(addr, ".tmp", tmp);
	file_name(addr, ".json", name);
	if (text == NULL)
		return err_set(e, ERR_INTERNAL, "internal", "out of memory");
	fd = openat(l->dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write_all(fd, text, strlen(text)) < 0 || write_all(fd, "\n", 1) < 0 ||
	    fsync(fd) < 0) {
		err_set(e, ERR_TEMP, "lists_io", "cannot write the lists of %s: %s", addr,
		        strerror(errno));
		goto out;
	}
	if (close(fd) < 0) {
		fd = -1;
		err_set(e, ERR_TEMP, "lists_io", "cannot write the lists of %s: %s", addr,
		        strerror(errno));
		goto out;
	}
	fd = -1;
	if (renameat(l->dirfd, tmp, l->dirfd, name) < 0 || fsync(l->dirfd) < 0) {
		err_set(e, ERR_TEMP, "lists_io", "cannot replace the lists of %s: %s", addr,
		        strerror(errno));
		goto out;
	}
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	if (rc < 0)
		unlinkat(l->dirfd, tmp, 0);
	free(text);
	return rc;
}

/* ---- the API ---- */

struct relay_lists *relay_lists_open(const char *dir, struct err *e)
{
	struct relay_lists *l;

	if (dir == NULL || *dir == '\0') {
		err_set(e, ERR_INPUT, "bad_config", "no directory for the recipients' lists");
		return NULL;
	}
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		err_set(e, ERR_INTERNAL, "lists_io", "cannot make %s: %s", dir, strerror(errno));
		return NULL;
	}
	if ((l = calloc(1, sizeof(*l))) == NULL || (l->dir = strdup(dir)) == NULL) {
		free(l);
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		return NULL;
	}
	l->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (l->dirfd < 0) {
		err_set(e, ERR_INTERNAL, "lists_io", "cannot open %s: %s", dir, strerror(errno));
		free(l->dir);
		free(l);
		return NULL;
	}
	pthread_rwlock_init(&l->lock, NULL);
	pthread_mutex_init(&l->write_mu, NULL);
	return l;
}

void relay_lists_free(struct relay_lists *l)
{
	if (l == NULL)
		return;
	for (size_t b = 0; b < LISTS_BUCKETS; b++) {
		struct rcpt_lists *r = l->buckets[b], *next;
		for (; r != NULL; r = next) {
			next = r->next;
			rcpt_lists_free(r);
		}
	}
	pthread_rwlock_destroy(&l->lock);
	pthread_mutex_destroy(&l->write_mu);
	close(l->dirfd);
	free(l->dir);
	free(l);
}

/* What one recipient's lists say about the candidate entries (block first). */
static enum relay_list_hit record_check(const struct rcpt_lists *r, const char *const *cand, int n)
{
	static const struct {
		int list;
		enum relay_list_hit hit;
	} order[] = {{L_BLOCK, RELAY_LIST_BLOCK},
	             {L_TRUST, RELAY_LIST_TRUST},
	             {L_SUBSCRIBE, RELAY_LIST_SUBSCRIBED}};

	for (size_t k = 0; k < sizeof(order) / sizeof(order[0]); k++)
		for (int i = 0; i < n; i++)
			if (strset_has(&r->lists[order[k].list], cand[i]))
				return order[k].hit;
	return RELAY_LIST_NONE;
}

/*
 * The cached record of addr, loaded when it is not cached yet.  Returns with
 * the cache's read lock held and *r set (NULL: the recipient has no lists), or
 * -1 without the lock.
 */
static int record_get_locked(struct relay_lists *l, const char *addr, struct rcpt_lists **r,
                             struct err *e)
{
	struct rcpt_lists *loaded = NULL;
	int rc;

	pthread_rwlock_rdlock(&l->lock);
	if ((*r = cache_find(l, addr)) != NULL)
		return 0;
	pthread_rwlock_unlock(&l->lock);
	/* Load outside the lock; a concurrent change wins (insert only when still absent). */
	rc = record_load(l, addr, &loaded, e);
	if (rc < 0)
		return -1;
	if (rc == 1) {
		pthread_rwlock_wrlock(&l->lock);
		if (cache_find(l, addr) == NULL)
			cache_put(l, loaded);
		else
			rcpt_lists_free(loaded);
		pthread_rwlock_unlock(&l->lock);
	}
	pthread_rwlock_rdlock(&l->lock);
	*r = cache_find(l, addr);
	return 0;
}

enum relay_list_hit relay_lists_check(struct relay_lists *l, const char *rcpt,
                                      const char *sender_addr, const char *sender_domain)
{
	char addr[RELAY_ADDR_MAX], sa[RELAY_ADDR_MAX] = "", sd[RELAY_ADDR_MAX] = "",
	                           sad[RELAY_ADDR_MAX] = "";
	const char *cand[3];
	struct rcpt_lists *r;
	enum relay_list_hit hit;
	struct err e = {0};
	int n = 0;

	if (l == NULL || rcpt_norm(rcpt, addr, &e) < 0)
		return RELAY_LIST_NONE;
	if (sender_addr != NULL && *sender_addr != '\0' && strlen(sender_addr) < sizeof(sa)) {
		const char *at;
		text_lower_copy(sa, sizeof(sa), sender_addr);
		cand[n++] = sa;
		/* A verified address is also verified as one of its domain's. */
		if ((at = strrchr(sa, '@')) != NULL && at[1] != '\0') {
			snprintf(sad, sizeof(sad), "%s", at);
			cand[n++] = sad;
		}
	}
	if (sender_domain != NULL && *sender_domain != '\0' &&
	    strlen(sender_domain) < sizeof(sd) - 1) {
		sd[0] = '@';
		text_lower_copy(sd + 1, sizeof(sd) - 1, sender_domain);
		cand[n++] = sd;
	}
	if (n == 0)
		return RELAY_LIST_NONE;
	if (record_get_locked(l, addr, &r, &e) < 0) {
		log_warn(NULL, "lists: %s: %s (the message is sorted as if %s had no lists)",
		         e.code, e.msg, addr);
		return RELAY_LIST_NONE;
	}
	hit = r != NULL ? record_check(r, cand, n) : RELAY_LIST_NONE;
	pthread_rwlock_unlock(&l->lock);
	return hit;
}

/*
 * One change: add (add=1) or remove entry on list k of addr.  Runs under
 * write_mu: the record is read without the cache lock (only this path
 * changes records), the new state written durably, then swapped in.
 */
static int change(struct relay_lists *l, const char *addr, int k, const char *entry, int add,
                  struct err *e)
{
	struct rcpt_lists *cur, *fresh = NULL;
	json_t *json = NULL, *arr;
	size_t pos;
	int rc = -1;

	pthread_mutex_lock(&l->write_mu);
	if (record_get_locked(l, addr, &cur, e) < 0)
		goto out;
	pthread_rwlock_unlock(&l->lock);
	if (cur == NULL && (cur = fresh = rcpt_lists_new(addr)) == NULL) {
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		goto out;
	}
	if (add && strset_find(&cur->lists[k], entry, &pos)) {
		rc = 0; /* already there: nothing to write */
		goto out;
	}
	if (!add && !strset_find(&cur->lists[k], entry, &pos)) {
		err_set(e, ERR_NOTFOUND, "not_listed", "%s is not on the %s list of %s", entry,
		        list_names[k], addr);
		goto out;
	}
	if (add && cur->lists[k].n >= LISTS_MAX_ENTRIES) {
		err_set(e, ERR_INPUT, "too_many_entries",
		        "the %s list of %s already holds %d entries, the most allowed; "
		        "remove some first",
		        list_names[k], addr, LISTS_MAX_ENTRIES);
		goto out;
	}
	if ((json = record_json(cur)) == NULL) {
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		goto out;
	}
	arr = json_object_get(json, list_names[k]);
	if (add)
		json_array_append_new(arr, json_string(entry));
	else
		json_array_remove(arr, pos);
	if (record_write(l, addr, json, e) < 0)
		goto out;
	/* On disk: now in memory, where only a change under write_mu looks at it. */
	pthread_rwlock_wrlock(&l->lock);
	if (add && strset_add(&cur->lists[k], entry) < 0)
		log_err(NULL, "lists: out of memory adding to the cached lists of %s", addr);
	else if (!add)
		strset_remove(&cur->lists[k], entry);
	if (fresh != NULL)
		cache_put(l, fresh);
	fresh = NULL;
	pthread_rwlock_unlock(&l->lock);
	rc = 0;
out:
	rcpt_lists_free(fresh);
	json_decref(json);
	pthread_mutex_unlock(&l->write_mu);
	return rc;
}

static int change_args(const char *rcpt, const char *list, const char *entry,
                       char addr[RELAY_ADDR_MAX], int *k, char norm[RELAY_ADDR_MAX], struct err *e)
{
	if (rcpt_norm(rcpt, addr, e) < 0 || (*k = list_index(list, e)) < 0)
		return -1;
	return entry_norm(entry, norm, e);
}

int relay_lists_add(struct relay_lists *l, const char *rcpt, const char *list, const char *entry,
                    struct err *e)
{
	char addr[RELAY_ADDR_MAX], norm[RELAY_ADDR_MAX];
	int k;

	if (change_args(rcpt, list, entry, addr, &k, norm, e) < 0)
		return -1;
	return change(l, addr, k, norm, 1, e);
}

int relay_lists_remove(struct relay_lists *l, const char *rcpt, const char *list, const char *entry,
                       struct err *e)
{
	char addr[RELAY_ADDR_MAX], norm[RELAY_ADDR_MAX];
	int k;

	if (change_args(rcpt, list, entry, addr, &k, norm, e) < 0)
		return -1;
	return change(l, addr, k, norm, 0, e);
}

char *relay_lists_json(struct relay_lists *l, const char *rcpt, struct err *e)
{
	char addr[RELAY_ADDR_MAX];
	struct rcpt_lists *r, empty = {0};
	json_t *json;
	char *text;

	if (rcpt_norm(rcpt, addr, e) < 0 || record_get_locked(l, addr, &r, e) < 0)
		return NULL;
	if (r == NULL) {
		empty.addr = addr;
		r = &empty;
	}
	json = record_json(r);
	pthread_rwlock_unlock(&l->lock);
	text = json != NULL ? json_dumps(json, JSON_COMPACT) : NULL;
	json_decref(json);
	if (text == NULL)
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
	return text;
}
