/*
 * store_log.c - the transparency log's tables: log_entries (leaf, salt and
 * name beside it), log_nodes (the perfect-subtree hashes, read by
 * lib/pki/merkle.c through ks_log_node) and tree_heads (the signed heads).
 * Used by both processes: the HTTPS process appends and reads, the signer
 * checks and signs (publish.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pki/crypto.h"
#include "pki/merkle.h"
#include "log_edge.h"
#include "store.h"

static int hex_nibble(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int ks_hex_decode32(const char *hex, uint8_t out[32])
{
	if (strlen(hex) != 64)
		return -1;
	for (int i = 0; i < 32; i++) {
		int hi = hex_nibble(hex[2 * i]), lo = hex_nibble(hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

static struct ks_log_memo *memo_find(struct ks_log_nodes *ctx, unsigned level, uint64_t index)
{
	for (int i = 0; i < ctx->n; i++)
		if (ctx->memo[i].level == level && ctx->memo[i].index == index)
			return &ctx->memo[i];
	return NULL;
}

/* A node of the edge into the memo (known from now on); 1 when the edge had it. */
static int from_edge(struct ks_log_nodes *ctx, unsigned level, uint64_t index,
                     uint8_t out[MERKLE_HASH_LEN])
{
	if (ctx->edge == NULL ||
	    !ks_log_edge_get(ctx->edge, strtoll(ctx->domain_id, NULL, 10), level, index, out))
		return 0;
	if (ctx->n < KS_LOG_MEMO) {
		ctx->memo[ctx->n] = (struct ks_log_memo){.level = level, .index = index, .have = 1};
		memcpy(ctx->memo[ctx->n++].hash, out, MERKLE_HASH_LEN);
	}
	return 1;
}

/* merkle_node_fn over log_nodes: from the memo, else the edge, else one query. */
int ks_log_node(void *arg, unsigned level, uint64_t index, uint8_t out[MERKLE_HASH_LEN],
                struct err *e)
{
	struct ks_log_nodes *ctx = arg;
	struct ks_log_memo *m = memo_find(ctx, level, index);
	char lv[8], ix[24];
	const char *params[3] = {ctx->domain_id, lv, ix};
	PGresult *res;
	int rc;

	if (ctx->recording) {
		if (m == NULL && !from_edge(ctx, level, index, out) && ctx->n < KS_LOG_MEMO)
			ctx->memo[ctx->n++] = (struct ks_log_memo){.level = level, .index = index};
		memset(out, 0, MERKLE_HASH_LEN);
		return 0;
	}
	if (m != NULL && m->have) {
		memcpy(out, m->hash, MERKLE_HASH_LEN);
		return 0;
	}
	if (m == NULL && from_edge(ctx, level, index, out))
		return 0;
	snprintf(lv, sizeof(lv), "%u", level);
	snprintf(ix, sizeof(ix), "%llu", (unsigned long long)index);
	res = db_exec(ctx->db,
	              "SELECT encode(hash, 'hex') FROM log_nodes"
	              " WHERE domain_id = $1 AND level = $2 AND idx = $3",
	              3, params, e);
	if (res == NULL)
		return -1;
	rc = PQntuples(res) == 1 ? ks_hex_decode32(PQgetvalue(res, 0, 0), out) : -1;
	PQclear(res);
	return rc < 0 ? err_set(e, ERR_NOTFOUND, "log_incomplete", "the log lacks node (%u, %llu)",
	                        level, (unsigned long long)index)
	              : 0;
}

/* "{a,b,...}" of the recorded levels (which 0) or indexes (1) not yet known. */
static char *memo_array(const struct ks_log_nodes *ctx, int which)
{
	size_t cap = (size_t)ctx->n * 22 + 3, len = 0;
	char *out = malloc(cap);

	if (out == NULL)
		return NULL;
	out[len++] = '{';
	for (int i = 0; i < ctx->n; i++) {
		if (ctx->memo[i].have)
			continue;
		len += (size_t)snprintf(out + len, cap - len, "%s%llu", len > 1 ? "," : "",
		                        which ? (unsigned long long)ctx->memo[i].index
		                              : (unsigned long long)ctx->memo[i].level);
	}
	snprintf(out + len, cap - len, "}");
	return out;
}

int ks_log_nodes_fetch(struct ks_log_nodes *ctx, struct err *e)
{
	char *levels = memo_array(ctx, 0), *idxs = memo_array(ctx, 1);
	const char *params[3] = {ctx->domain_id, levels, idxs};
	PGresult *res = NULL;

	ctx->recording = 0;
	if (levels == NULL || idxs == NULL) {
		free(levels);
		free(idxs);
		return err_set(e, ERR_INTERNAL, "internal", "out of memory");
	}
	if (strcmp(levels, "{}") != 0)
		res = db_exec(ctx->db,
		              "SELECT n.level, n.idx, encode(n.hash, 'hex') FROM log_nodes n"
		              " JOIN unnest($2::int[], $3::bigint[]) AS w (level, idx)"
		              " ON n.level = w.level AND n.idx = w.idx WHERE n.domain_id = $1",
		              3, params, e);
	free(levels);
	free(idxs);
	for (int i = 0; res != NULL && i < PQntuples(res); i++) {
		struct ks_log_memo *m =
		    memo_find(ctx, (unsigned)strtoul(PQgetvalue(res, i, 0), NULL, 10),
		              strtoull(PQgetvalue(res, i, 1), NULL, 10));
		/* A node missing or malformed stays unknown: its own query reports it. */
		if (m != NULL && ks_hex_decode32(PQgetvalue(res, i, 2), m->hash) == 0)
			m->have = 1;
	}
	PQclear(res);
	return e->kind == ERR_NONE ? 0 : -1;
}

void ks_log_nodes_init(struct ks_log_nodes *ctx, struct db *db, long long domain_id)
{
	ctx->db = db;
	ctx->edge = NULL;
	ctx->recording = 0;
	ctx->n = 0;
	snprintf(ctx->domain_id, sizeof(ctx->domain_id), "%lld", domain_id);
}

void ks_log_nodes_edge(struct ks_log_nodes *ctx, struct ks_log_edge *edge)
{
	ctx->edge = edge;
}

long long ks_log_size(struct db *db, long long domain_id, struct err *e)
{
	char idbuf[24];
	const char *params[1] = {idbuf};
	PGresult *res;
	long long n;

	snprintf(idbuf, sizeof(idbuf), "%lld", domain_id);
	res = db_exec(db, "SELECT COALESCE(max(seq) + 1, 0) FROM log_entries WHERE domain_id = $1",
	              1, params, e);

	if (res == NULL)
		return -1;
	n = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return n;
}

/*
 * A batch of changes of the domain opens (migration 013, ks_log_batch_open): its row
 * locked until the transaction ends, the change notice other nodes listen for (sent at
 * the commit), and the log's size, in one round trip.
 */
long long ks_store_log_batch_open(struct db *db, long long domain_id, const char *name,
                                  struct err *e)
{
	char idbuf[24];
	const char *params[2] = {idbuf, name};
	PGresult *res;
	long long n;

	snprintf(idbuf, sizeof(idbuf), "%lld", domain_id);
	res = db_exec(db, "SELECT ks_log_batch_open($1, $2)", 2, params, e);
	if (res == NULL)
		return -1;
	n = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return n;
}

/* "{a,b,...}" of the nodes' levels (which 0), indexes (1) or hashes in hex (2). */
static char *nodes_array(const struct merkle_node *nodes, int n, int which)
{
	size_t cap = (size_t)n * 68 + 3, len = 0;
	char *out = malloc(cap);

	if (out == NULL)
		return NULL;
	out[len++] = '{';
	for (int i = 0; i < n; i++) {
		char item[65];

		if (which == 0)
			snprintf(item, sizeof(item), "%u", nodes[i].level);
		else if (which == 1)
			snprintf(item, sizeof(item), "%llu", (unsigned long long)nodes[i].index);
		else
			crypto_hex(nodes[i].hash, MERKLE_HASH_LEN, item);
		len += (size_t)snprintf(out + len, cap - len, "%s%s", i > 0 ? "," : "", item);
	}
	snprintf(out + len, cap - len, "}");
	return out;
}

void ks_store_log_params_free(char *arrays[3])
{
	for (int i = 0; i < 3; i++) {
		free(arrays[i]);
		arrays[i] = NULL;
	}
}

int ks_store_log_params(const struct ks_log_append_row *a, const char *params[KS_LOG_PARAMS],
                        char *arrays[3], struct err *e)
{
	for (int i = 0; i < 3; i++)
		arrays[i] = nodes_array(a->nodes, a->nnodes, i);
	if (arrays[0] == NULL || arrays[1] == NULL || arrays[2] == NULL) {
		ks_store_log_params_free(arrays);
		return err_set(e, ERR_INTERNAL, "internal", "out of memory");
	}
	params[0] = a->domain_id;
	params[1] = a->seq;
	params[2] = a->ev->type;
	params[3] = a->ev->key_id;
	params[4] = a->leaf;
	params[5] = a->hash_hex;
	params[6] = a->ev->name ? a->salt : NULL;
	params[7] = a->ev->name;
	params[8] = arrays[0];
	params[9] = arrays[1];
	params[10] = arrays[2];
	return 0;
}

/* Entry seq of the log with the nodes it completes and the webhook deliveries of its key
 * (migration 013, ks_log_append): one round trip, one statement, whole or not at all. */
int ks_store_log_append(struct db *db, const struct ks_log_append_row *a, struct err *e)
{
	const char *params[KS_LOG_PARAMS];
	char *arrays[3];
	int rc;

	if (ks_store_log_params(a, params, arrays, e) < 0)
		return -1;
	rc = db_run(db, "SELECT " KS_SQL_LOG_APPEND, KS_LOG_PARAMS, params, e);
	ks_store_log_params_free(arrays);
	return rc;
}

/* The signed head for size (0: the newest); NULL with not_found for an empty log. */
char *ks_store_log_head_jws(struct db *db, long long domain_id, long long size, long long *size_out,
                            struct err *e)
{
	char idbuf[24], sizebuf[24];
	const char *params[2] = {idbuf, sizebuf};
	PGresult *res;
	char *jws = NULL;

	snprintf(idbuf, sizeof(idbuf), "%lld", domain_id);
	snprintf(sizebuf, sizeof(sizebuf), "%lld", size);
	res = db_exec(db,
	              "SELECT jws, size FROM tree_heads WHERE domain_id = $1"
	              " AND ($2::bigint = 0 OR size = $2) ORDER BY size DESC LIMIT 1",
	              2, params, e);
	if (res == NULL)
		return NULL;
	if (PQntuples(res) == 1) {
		jws = strdup(PQgetvalue(res, 0, 0));
		if (size_out != NULL)
			*size_out = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
	} else {
		err_set(e, ERR_NOTFOUND, "not_found",
		        size ? "the log never had that size" : "the log is empty");
	}
	PQclear(res);
	return jws;
}

void ks_log_page_free(struct ks_log_page *p)
{
	if (p == NULL)
		return;
	for (size_t i = 0; i < p->n; i++) {
		free(p->v[i].leaf);
		free(p->v[i].type);
		free(p->v[i].salt);
		free(p->v[i].name);
	}
	free(p->v);
	free(p);
}

/* Row i of res as an entry (elem); salt and name only with *with_secrets (arg) and when
 * kept. */
static int entry_fill(PGresult *res, int i, void *elem, void *arg)
{
	struct ks_log_entry *en = elem;
	int with_secrets = *(const int *)arg;

	en->seq = strtoll(PQgetvalue(res, i, 0), NULL, 10);
	snprintf(en->leaf_hash, sizeof(en->leaf_hash), "%s", PQgetvalue(res, i, 2));
	snprintf(en->key_id, sizeof(en->key_id), "%s", PQgetvalue(res, i, 6));
	if ((en->leaf = strdup(PQgetvalue(res, i, 1))) == NULL ||
	    (en->type = strdup(PQgetvalue(res, i, 5))) == NULL)
		return -1;
	if (!with_secrets || PQgetisnull(res, i, 3))
		return 0;
	return (en->salt = strdup(PQgetvalue(res, i, 3))) == NULL ||
	               (en->name = strdup(PQgetvalue(res, i, 4))) == NULL
	           ? -1
	           : 0;
}

/* Entries [start, end); the domain admin also sees salt and name. */
struct ks_log_page *ks_store_log_entries(struct db *db, long long domain_id, long long start,
                                         long long end, int with_secrets, struct err *e)
{
	char idbuf[24], sbuf[24], ebuf[24];
	const char *params[3] = {idbuf, sbuf, ebuf};
	struct ks_log_page *p;
	PGresult *res;
	void *v = NULL;

	snprintf(idbuf, sizeof(idbuf), "%lld", domain_id);
	snprintf(sbuf, sizeof(sbuf), "%lld", start);
	snprintf(ebuf, sizeof(ebuf), "%lld", end);
	res = db_exec(db,
	              "SELECT seq, leaf, encode(leaf_hash, 'base64'), salt, name, type,"
	              " key_id::text FROM log_entries WHERE domain_id = $1 AND seq >= $2"
	              " AND seq < $3 ORDER BY seq",
	              3, params, e);
	if (res == NULL)
		return NULL;
	if ((p = calloc(1, sizeof(*p))) == NULL)
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
	else if (ks_store_rows_fill(res, sizeof(*p->v), entry_fill, &with_secrets, &v, &p->n, e) <
	         0) {
		p->v = v;
		ks_log_page_free(p);
		p = NULL;
	} else {
		p->v = v;
	}
	PQclear(res);
	return p;
}

/* The newest signed head (JWS and size) and the leaf and salt of entry seq (NULL when there
 * is no such entry, or no salt), in one query, for an answer's first proof; not_found
 * for a log without a head. */
int ks_store_log_head_leaf(struct db *db, long long domain_id, long long seq, char **jws,
                           long long *size, char **leaf, char **salt, struct err *e)
{
	char idbuf[24], sbuf[24];
	const char *params[2] = {idbuf, sbuf};
	PGresult *res;
	int rc = 0;

	*jws = *leaf = *salt = NULL;
	snprintf(idbuf, sizeof(idbuf), "%lld", domain_id);
	snprintf(sbuf, sizeof(sbuf), "%lld", seq);
	res = db_exec(db,
	              "SELECT h.jws, h.size, e.leaf, e.salt FROM tree_heads h"
	              " LEFT JOIN log_entries e ON e.domain_id = h.domain_id AND e.seq = $2"
	              " WHERE h.domain_id = $1 ORDER BY h.size DESC LIMIT 1",
	              2, params, e);
	if (res == NULL)
		return -1;
	if (PQntuples(res) != 1) {
		PQclear(res);
		return err_set(e, ERR_NOTFOUND, "not_found", "the log is empty");
	}
	*size = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
	if ((*jws = strdup(PQgetvalue(res, 0, 0))) == NULL ||
	    (!PQgetisnull(res, 0, 2) && (*leaf = strdup(PQgetvalue(res, 0, 2))) == NULL) ||
	    (!PQgetisnull(res, 0, 3) && (*salt = strdup(PQgetvalue(res, 0, 3))) == NULL)) {
		free(*jws);
		free(*leaf);
		*jws = *leaf = NULL;
		rc = err_set(e, ERR_INTERNAL, "internal", "out of memory");
	}
	PQclear(res);
	return rc;
}

/* The leaf and salt of one entry, for a lookup's proof. */
int ks_store_log_entry_leaf(struct db *db, const char *domain_id, long long seq, char **leaf,
                            char **salt, struct err *e)
{
	char sbuf[24];
	const char *params[2] = {domain_id, sbuf};
	PGresult *res;
	int rc = 0;

	*leaf = *salt = NULL;
	snprintf(sbuf, sizeof(sbuf), "%lld", seq);
	res = db_exec(db, "SELECT leaf, salt FROM log_entries WHERE domain_id = $1 AND seq = $2", 2,
	              params, e);
	if (res == NULL)
		return -1;
	if (PQntuples(res) == 1 &&
	    ((*leaf = strdup(PQgetvalue(res, 0, 0))) == NULL ||
	     (!PQgetisnull(res, 0, 1) && (*salt = strdup(PQgetvalue(res, 0, 1))) == NULL))) {
		free(*leaf);
		*leaf = NULL;
		rc = err_set(e, ERR_INTERNAL, "internal", "out of memory");
	}
	PQclear(res);
	return rc;
}

/*
 * A head round's opening (migration 013, ks_heads_open): the domain's heads lock until
 * the transaction ends (a transaction-scoped advisory lock, not the domain row's, so
 * that appends go on while a head is checked and signed), then the log's size and the
 * newest signed head, in one round trip.  Returns 1 with the head's size, root (hex)
 * and JWS (malloc'd), 0 when there is no head yet (*head_size 0), -1 on error.
 */
int ks_store_log_heads_open(struct db *db, long long domain_id, long long *log_size,
                            long long *head_size, char root_hex[65], char **jws, struct err *e)
{
	char idbuf[24];
	const char *params[1] = {idbuf};
	PGresult *res;
	int found;

	*jws = NULL;
	*head_size = 0;
	snprintf(idbuf, sizeof(idbuf), "%lld", domain_id);
	res = db_exec(db, "SELECT log_size, head_size, head_root, head_jws FROM ks_heads_open($1)",
	              1, params, e);
	if (res == NULL)
		return -1;
	if (PQntuples(res) != 1) {
		PQclear(res);
		return err_set(e, ERR_INTERNAL, "internal", "ks_heads_open returned no row");
	}
	*log_size = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	found = !PQgetisnull(res, 0, 3);
	if (found) {
		*head_size = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
		snprintf(root_hex, 65, "%s", PQgetvalue(res, 0, 2));
		if ((*jws = strdup(PQgetvalue(res, 0, 3))) == NULL)
			found = err_set(e, ERR_INTERNAL, "internal", "out of memory");
	}
	PQclear(res);
	return found;
}

/* Call fn for each entry [from, to) in order, with its leaf, its stored hash and its
 * level-0 node (hex; "" when the node is missing); stops at fn's first failure.
 * Returns how many entries there were, or -1. */
int ks_store_log_each_leaf(struct db *db, const char *domain_id, long long from, long long to,
                           ks_store_leaf_fn fn, void *ctx, struct err *e)
{
	char fbuf[24], tbuf[24];
	const char *params[3] = {domain_id, fbuf, tbuf};
	PGresult *res;
	int n, rc = 0;

	snprintf(fbuf, sizeof(fbuf), "%lld", from);
	snprintf(tbuf, sizeof(tbuf), "%lld", to);
	res = db_exec(db,
	              "SELECT e.seq, e.leaf, encode(e.leaf_hash, 'hex'),"
	              " COALESCE(encode(n.hash, 'hex'), '') FROM log_entries e"
	              " LEFT JOIN log_nodes n ON n.domain_id = e.domain_id AND n.level = 0"
	              " AND n.idx = e.seq"
	              " WHERE e.domain_id = $1 AND e.seq >= $2 AND e.seq < $3 ORDER BY e.seq",
	              3, params, e);
	if (res == NULL)
		return -1;
	n = PQntuples(res);
	for (int i = 0; rc == 0 && i < n; i++)
		rc = fn(ctx, i, strtoll(PQgetvalue(res, i, 0), NULL, 10), PQgetvalue(res, i, 1),
		        PQgetvalue(res, i, 2), PQgetvalue(res, i, 3), e);
	PQclear(res);
	return rc < 0 ? -1 : n;
}

int ks_store_log_head_put(struct db *db, const char *domain_id, long long size,
                          const char *root_hex, const char *jws, struct err *e)
{
	char sizebuf[24];
	const char *params[4] = {domain_id, sizebuf, root_hex, jws};

	snprintf(sizebuf, sizeof(sizebuf), "%lld", size);
	return db_run(db,
	              "INSERT INTO tree_heads (domain_id, size, root_hash, jws)"
	              " VALUES ($1, $2, decode($3, 'hex'), $4)",
	              4, params, e);
}
