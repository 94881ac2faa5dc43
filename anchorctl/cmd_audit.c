/*
 * cmd_audit.c - `anchorctl audit <domain>`: the domain owner's check of their
 * own log (PROTOCOL.md §10).  With the admin token it fetches every entry,
 * rebuilds the Merkle tree in memory (lib/merkle), and compares it with the
 * newest signed head and with every other stored head (each size up to 1000 is
 * asked for, a sample beyond; a head covers a batch of entries, so sizes inside
 * a batch have none); a truncated log (a head larger than the entries)
 * or a rewritten one (a leaf that does not hash to its hash, a root that is
 * not the signed one) is reported.  It then lists every change with its time
 * and name and, given the owner's own record of what they approved, every
 * change they did not approve.  Any problem or unapproved change: exit 1.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "cmd_log.h"
#include "names.h"
#include "output.h"
#include "progress.h"

#define PAGE 1000
#define ALL_HEADS_UP_TO 1000
#define HEAD_SAMPLE 256

struct audit {
	const struct ctl *ctl;
	struct ctl_client c;
	const char *domain;
	const char *state;
	struct ctl_trust t;
	struct tlog_head head; /* the newest signed head, verified; size 0 for an empty log */
	json_t *entries;       /* as served, in order */
	struct merkle_mem tree;
	uint64_t heads_checked;
	json_t *problems; /* strings */
	json_t *changes;  /* objects */
	json_t *approved; /* the owner's records, or NULL */
	size_t unapproved;
	struct ctl_progress pg; /* shown for a log of more than a PAGE of entries */
};

static void problem(struct audit *au, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void problem(struct audit *au, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	json_array_append_new(au->problems, json_string(buf));
}

static void hash_b64(const uint8_t h[MERKLE_HASH_LEN], char out[TLOG_ROOT_B64_MAX])
{
	char *b = crypto_b64_encode(h, MERKLE_HASH_LEN);

	snprintf(out, TLOG_ROOT_B64_MAX, "%s", b != NULL ? b : "?");
	free(b);
}

/* ---- the signed heads ---- */

/* The head for size (0: the newest), verified; 1 when the log has none, -1 on error. */
static int fetch_head(struct audit *au, uint64_t size, struct tlog_head *h, struct err *e)
{
	char rest[64], *path, *text = NULL;
	json_t *jws = NULL;
	int rc = -1;

	if (size > 0)
		snprintf(rest, sizeof(rest), "/log/head?size=%" PRIu64, size);
	else
		snprintf(rest, sizeof(rest), "/log/head");
	if ((path = ctl_api_path("domains", au->domain, rest)) == NULL)
		return err_set(e, ERR_INTERNAL, "internal", "out of memory");
	if (ctl_client_call(&au->c, "GET", path, NULL, &jws, e) < 0) {
		if (strcmp(e->code, "not_found") == 0)
			rc = 1;
		goto out;
	}
	if ((text = json_dumps(jws, JSON_COMPACT)) == NULL) {
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		goto out;
	}
	rc = tlog_head_verify(text, strlen(text), au->domain, au->t.pinv, au->t.npins, h, e);
	if (rc == 0 && size > 0 && h->size != size) {
		rc = err_set(e, ERR_UNPROC, "bad_tree_head",
		             "asked for the head of size %" PRIu64 ", got one of size %" PRIu64,
		             size, h->size);
		tlog_head_clear(h);
	}
out:
	free(text);
	json_decref(jws);
	free(path);
	return rc;
}

/* ---- the entries ---- */

static void check_entry(struct audit *au, uint64_t want, const json_t *entry)
{
	const char *text = json_string_value(json_object_get(entry, "leaf"));
	const char *name = json_string_value(json_object_get(entry, "name"));
	const char *salt = json_string_value(json_object_get(entry, "salt"));
	json_int_t seq = json_integer_value(json_object_get(entry, "seq"));
	uint8_t lh[MERKLE_HASH_LEN], served[MERKLE_HASH_LEN];
	struct err e = {0};
	json_t *leaf;

	if (text == NULL) {
		problem(au, "entry %" PRIu64 " has no leaf", want);
		text = "";
	}
	if (seq != (json_int_t)want)
		problem(au,
		        "entry %" PRIu64 " is missing: the log serves entry %" JSON_INTEGER_FORMAT
		        " in its place",
		        want, seq);
	if (merkle_leaf_hash(text, strlen(text), lh, &e) < 0 ||
	    merkle_mem_append_hash(&au->tree, lh, &e) < 0) {
		problem(au, "entry %" PRIu64 ": %s", want, e.msg);
		return;
	}
	if (merkle_hash_from_json(json_object_get(entry, "leaf_hash"), served, &e) < 0 ||
	    memcmp(served, lh, MERKLE_HASH_LEN) != 0)
		problem(au,
		        "entry %" PRIu64 " was rewritten: its leaf does not hash to its "
		        "leaf_hash",
		        want);
	leaf = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
	if (!json_is_object(leaf)) {
		problem(au, "entry %" PRIu64 ": the leaf is not a JSON object", want);
	} else {
		const char *dom = json_string_value(json_object_get(leaf, "domain"));
		const char *subject = json_string_value(json_object_get(leaf, "subject"));
		if (json_integer_value(json_object_get(leaf, "seq")) != (json_int_t)want)
			problem(au,
			        "entry %" PRIu64
			        ": the leaf says it is entry %" JSON_INTEGER_FORMAT,
			        want, json_integer_value(json_object_get(leaf, "seq")));
		if (dom == NULL || strcmp(dom, au->domain) != 0)
			problem(au, "entry %" PRIu64 ": the leaf is of the domain %s", want,
			        dom ? dom : "(none)");
		if (subject != NULL && name != NULL && salt != NULL) {
			char *salted = NULL, hex[CRYPTO_HEX256_LEN];
			if (asprintf(&salted, "%s:%s", salt, name) > 0) {
				crypto_sha256_hex(salted, strlen(salted), hex);
				if (strcmp(hex, subject) != 0)
					problem(au,
					        "entry %" PRIu64 ": the leaf is not about %s, the "
					        "name stored beside it",
					        want, name);
			}
			free(salted);
		}
	}
	json_decref(leaf);
}

/* A large log takes a while: progress on standard error, lines when it is no terminal. */
static int large_log(const struct audit *au)
{
	return au->head.size > PAGE;
}

static int fetch_entries(struct audit *au, struct err *e)
{
	uint64_t start = 0;

	if (large_log(au))
		ctl_progress_start(&au->pg, stderr, "fetching log entries", au->head.size);

	for (;;) {
		char rest[96], *path;
		json_t *answer = NULL, *page, *entry;
		size_t i, n;

		snprintf(rest, sizeof(rest), "/log/entries?start=%" PRIu64 "&end=%" PRIu64, start,
		         start + PAGE);
		if ((path = ctl_api_path("domains", au->domain, rest)) == NULL)
			return err_set(e, ERR_INTERNAL, "internal", "out of memory");
		if (ctl_client_call(&au->c, "GET", path, NULL, &answer, e) < 0) {
			free(path);
			return -1;
		}
		free(path);
		page = json_object_get(answer, "entries");
		n = json_array_size(page);
		json_array_foreach(page, i, entry)
		{
			size_t before = json_array_size(au->problems);

			check_entry(au, start + i, entry);
			json_array_append(au->entries, entry);
			if (large_log(au))
				ctl_progress_step(&au->pg, json_array_size(au->problems) > before);
		}
		json_decref(answer);
		if (n == 0) {
			if (large_log(au))
				ctl_progress_end(&au->pg);
			return 0;
		}
		start += n;
	}
}

/* ---- the tree against the heads ---- */

static void compare_head(struct audit *au, const struct tlog_head *h, const char *what)
{
	uint8_t root[MERKLE_HASH_LEN];
	char a[TLOG_ROOT_B64_MAX], b[TLOG_ROOT_B64_MAX];
	struct err e = {0};

	if (h->size > au->tree.size) {
		problem(au,
		        "the log is truncated: %s has size %" PRIu64
		        " but the log serves only %" PRIu64 " entries",
		        what, h->size, au->tree.size);
		return;
	}
	if (merkle_root(h->size, merkle_mem_get, &au->tree, root, &e) < 0) {
		problem(au, "%s: %s", what, e.msg);
		return;
	}
	if (memcmp(root, h->root, MERKLE_HASH_LEN) != 0) {
		hash_b64(root, a);
		hash_b64(h->root, b);
		problem(au,
		        "the log was rewritten: the first %" PRIu64 " entries hash to %s, "
		        "%s signed %s",
		        h->size, a, what, b);
	}
}

/* Sizes to check: all up to ALL_HEADS_UP_TO, else the powers of two, a spread, the last. */
static int size_wanted(uint64_t k, uint64_t n)
{
	if (n <= ALL_HEADS_UP_TO || k == n || (k & (k - 1)) == 0)
		return 1;
	return k % (n / HEAD_SAMPLE + 1) == 0;
}

static int check_stored_heads(struct audit *au, struct err *e)
{
	uint64_t wanted = 0;

	for (uint64_t k = 1; large_log(au) && k <= au->head.size; k++)
		wanted += (uint64_t)size_wanted(k, au->head.size);
	if (large_log(au))
		ctl_progress_start(&au->pg, stderr, "checking signed heads", wanted);
	for (uint64_t k = 1; k <= au->head.size; k++) {
		size_t before = json_array_size(au->problems);
		struct tlog_head h = {0};
		char what[64];
		int rc;

		if (!size_wanted(k, au->head.size))
			continue;
		rc = fetch_head(au, k, &h, e);
		if (rc < 0 && e->kind != ERR_UNPROC && e->kind != ERR_INPUT) {
			if (large_log(au))
				ctl_progress_end(&au->pg);
			return -1; /* network or server trouble: no verdict */
		}
		/* A head covers a batch of entries (a group commit): sizes inside a batch
		 * have none.  The newest head, which must exist, is checked apart. */
		if (rc == 1) {
			err_clear(e);
		} else {
			au->heads_checked++;
			if (rc < 0) {
				problem(au, "the signed head of size %" PRIu64 ": %s: %s", k,
				        e->code, e->msg);
			} else {
				snprintf(what, sizeof(what), "the head of size %" PRIu64, k);
				compare_head(au, &h, what);
			}
			err_clear(e);
			tlog_head_clear(&h);
		}
		if (large_log(au))
			ctl_progress_step(&au->pg, json_array_size(au->problems) > before);
	}
	if (large_log(au))
		ctl_progress_end(&au->pg);
	return 0;
}

/* The head this client remembers must be a prefix of what the log holds now. */
static void check_remembered(struct audit *au)
{
	struct err e = {0};
	struct tlog_store *s = ctl_state_open(au->state, &e);
	const struct tlog_head *old = s != NULL ? tlog_store_get(s, au->domain) : NULL;
	char what[200], desc[128];

	if (s == NULL) {
		problem(au, "the state file: %s", e.msg);
		return;
	}
	if (old != NULL) {
		tlog_head_describe(old, desc, sizeof(desc));
		snprintf(what, sizeof(what), "the head remembered from earlier (%s)", desc);
		compare_head(au, old, what);
	}
	if (json_array_size(au->problems) == 0 && au->head.size > 0 &&
	    tlog_store_observe(s, &au->head, ctl_log_fetch_consistency, &au->c, &e) < 0)
		problem(au, "%s: %s", e.code, e.msg);
	tlog_store_free(s);
}

/* ---- changes and approvals ---- */

/* What an approval record is matched against: the leaf's members, the name, the key id. */
static json_t *entry_view(const json_t *entry)
{
	json_t *v = json_loads(ctl_out_str(entry, "leaf"), 0, NULL);

	if (!json_is_object(v)) {
		json_decref(v);
		v = json_object();
	}
	if (json_is_string(json_object_get(entry, "name")))
		json_object_set(v, "name", json_object_get(entry, "name"));
	if (json_is_string(json_object_get(entry, "key_id")))
		json_object_set(v, "key_id", json_object_get(entry, "key_id"));
	return v;
}

static int record_matches(const json_t *record, const json_t *view)
{
	const char *k;
	json_t *want;

	if (!json_is_object(record) || json_object_size(record) == 0)
		return 0;
	json_object_foreach((json_t *)record, k, want)
	{
		if (!json_equal(want, json_object_get(view, k)))
			return 0;
	}
	return 1;
}

/* Changes the owner must have approved: new keys and where mail goes. */
static int needs_approval(const char *type)
{
	static const char *const types[] = {
	    "issued",         "route_set", "route_removed", "direct_set",
	    "direct_removed", "policy",    "group",         NULL};

	for (int i = 0; types[i] != NULL; i++)
		if (strcmp(type, types[i]) == 0)
			return 1;
	return 0;
}

/*
 * Who a change is about.  An entry whose leaf has no subject (registered, a policy
 * without a corporate address) is about the domain itself; one with a subject but no
 * name had its name erased (PROTOCOL.md §10.1): "name_erased" says so.
 */
static void set_name(const struct audit *au, const json_t *entry, const json_t *view,
                     json_t *change)
{
	const json_t *name = json_object_get(entry, "name");

	if (json_is_string(name)) {
		json_object_set(change, "name", (json_t *)name);
	} else if (json_object_get(view, "subject") == NULL) {
		json_object_set_new(change, "name", json_string(au->domain));
	} else {
		json_object_set_new(change, "name", json_null());
		json_object_set_new(change, "name_erased", json_true());
	}
}

static void list_changes(struct audit *au)
{
	static const char *const keep[] = {
	    "time",    "type",         "key_id", "fingerprint", "reason",
	    "method",  "route_sha256", "policy", "mode",        "superseded_by",
	    "purpose", "renewal_of",   "device", "encryption",  NULL};
	const json_t *entry;
	size_t i;

	json_array_foreach(au->entries, i, entry)
	{
		json_t *view = entry_view(entry), *change = json_object(), *r;
		const char *type = ctl_out_str(view, "type");
		int approved = 1;
		size_t j;

		json_object_set(change, "seq", json_object_get(entry, "seq"));
		for (int k = 0; keep[k] != NULL; k++)
			if (json_object_get(view, keep[k]) != NULL)
				json_object_set(change, keep[k], json_object_get(view, keep[k]));
		set_name(au, entry, view, change);
		if (au->approved != NULL && needs_approval(type)) {
			approved = 0;
			json_array_foreach(au->approved, j, r)
			{
				if (record_matches(r, view)) {
					approved = 1;
					break;
				}
			}
			au->unapproved += !approved;
		}
		json_object_set_new(change, "approved", json_boolean(approved));
		json_array_append_new(au->changes, change);
		json_decref(view);
	}
}

/* The owner's records: a JSON array, or one JSON object per line. */
static json_t *load_approved(const char *path, struct err *e)
{
	char *text = ctl_file_read(path, NULL, e), *line, *save = NULL;
	json_t *all;
	int lineno = 0;

	if (text == NULL)
		return NULL;
	all = json_loads(text, 0, NULL);
	if (json_is_array(all) || (json_is_object(all) && (all = json_pack("[o]", all)) != NULL)) {
		free(text);
		return all;
	}
	json_decref(all);
	all = json_array();
	for (line = strtok_r(text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
		json_t *r;
		lineno++;
		if (strspn(line, " \t\r") == strlen(line))
			continue;
		r = json_loads(line, 0, NULL); /* json_is_object() evaluates its argument twice */
		if (!json_is_object(r)) {
			json_decref(r);
			json_decref(all);
			free(text);
			err_set(e, ERR_INPUT, "bad_approved",
			        "%s line %d is not a JSON object (use JSON lines or one array)",
			        path, lineno);
			return NULL;
		}
		json_array_append_new(all, r);
	}
	free(text);
	return all;
}

/* ---- output ---- */

static void print_change(const json_t *c)
{
	static const char *const extra[] = {"fingerprint",  "reason", "method",
	                                    "route_sha256", "policy", "mode",
	                                    "encryption",   "device", NULL};
	const json_t *name = json_object_get(c, "name");

	printf("  %6" JSON_INTEGER_FORMAT " %s %-13s %s",
	       json_integer_value(json_object_get(c, "seq")), ctl_out_str(c, "time"),
	       ctl_out_str(c, "type"),
	       json_is_string(name) ? json_string_value(name) : "(name erased)");
	if (json_is_string(json_object_get(c, "key_id")))
		printf(" key %s", ctl_out_str(c, "key_id"));
	for (int i = 0; extra[i] != NULL; i++)
		if (json_is_string(json_object_get(c, extra[i])))
			printf(" %s %s", extra[i], ctl_out_str(c, extra[i]));
	putchar('\n');
}

static void report_text(const struct audit *au)
{
	char desc[128];
	const json_t *c, *p;
	size_t i;

	printf("audit of %s\n", au->domain);
	if (au->head.size > 0) {
		tlog_head_describe(&au->head, desc, sizeof(desc));
		printf("head:     %s at %s (signature verified)\n", desc, au->head.timestamp);
	} else {
		printf("head:     none (the log is empty)\n");
	}
	printf("entries:  %" PRIu64 "\n", au->tree.size);
	printf("heads:    %" PRIu64 " signed heads checked against the entries\n",
	       au->heads_checked);
	printf("changes:\n");
	json_array_foreach(au->changes, i, c) print_change(c);
	if (au->approved != NULL) {
		printf("not approved:%s\n", au->unapproved ? "" : " none");
		json_array_foreach(au->changes, i, c)
		{
			if (!json_is_true(json_object_get(c, "approved")))
				print_change(c);
		}
	}
	if (json_array_size(au->problems) > 0) {
		printf("problems:\n");
		json_array_foreach(au->problems, i, p) printf("  - %s\n", json_string_value(p));
	}
	if (json_array_size(au->problems) == 0 && au->unapproved == 0)
		printf("result:   OK\n");
	else
		printf("result:   FAILED: %zu problem(s), %zu change(s) not approved\n",
		       json_array_size(au->problems), au->unapproved);
}

static void report_json(const struct audit *au)
{
	char root[TLOG_ROOT_B64_MAX];
	json_t *doc;

	hash_b64(au->head.root, root);
	doc = json_pack("{s:s, s:b, s:{s:I, s:s, s:s}, s:I, s:I, s:O, s:O, s:I}", "domain",
	                au->domain, "ok", json_array_size(au->problems) == 0 && au->unapproved == 0,
	                "head", "size", (json_int_t)au->head.size, "root_hash", root, "timestamp",
	                au->head.timestamp, "entries", (json_int_t)au->tree.size, "heads_checked",
	                (json_int_t)au->heads_checked, "problems", au->problems, "changes",
	                au->changes, "unapproved", (json_int_t)au->unapproved);
	ctl_out_json(stdout, doc);
	json_decref(doc);
}

/* ---- the command ---- */

static int audit_run(struct audit *au, const char *pin, struct err *e)
{
	int rc;

	if (ctl_trust_load(&au->c, au->domain, pin, &au->t, e) < 0)
		return -1;
	rc = fetch_head(au, 0, &au->head, e);
	if (rc < 0)
		return -1;
	if (rc == 1) {
		err_clear(e);
		memset(&au->head, 0, sizeof(au->head));
	}
	if (fetch_entries(au, e) < 0)
		return -1;
	if (au->head.size > 0)
		compare_head(au, &au->head, "the newest signed head");
	else if (au->tree.size > 0)
		problem(au, "the log serves %" PRIu64 " entries but no signed head", au->tree.size);
	if (au->tree.size > au->head.size && au->head.size > 0)
		problem(au, "the log serves %" PRIu64 " entries beyond its newest signed head",
		        au->tree.size - au->head.size);
	if (check_stored_heads(au, e) < 0)
		return -1;
	check_remembered(au);
	list_changes(au);
	return 0;
}

int ctl_cmd_audit(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	const char *approved = NULL, *pin = NULL, *state = NULL;
	const struct ctl_opt opts[] = {
	    {"--approved", &approved, NULL},
	    {"--pin", &pin, NULL},
	    {"--state", &state, NULL},
	    CTL_COMMON_OPTS(ctl),
	    {NULL, NULL, NULL},
	};
	struct audit au = {.ctl = ctl, .state = NULL};
	char token[CTL_TOKEN_MAX] = "", *fallback = NULL;
	struct ctl_args a;
	struct err e = {0};
	int status = CTL_FAIL;

	if (ctl_parse(cmd, opts, argc, argv, 1, 1, &a, &status) < 0 ||
	    ctl_arg_domain(cmd, a.pos[0], &status) < 0)
		return status;
	au.domain = a.pos[0];
	au.state = state;
	if (ctl_server(ctl, cmd, NULL, &au.c, &status) < 0)
		return status;
	merkle_mem_init(&au.tree);
	au.entries = json_array();
	au.problems = json_array();
	au.changes = json_array();
	if ((fallback = ctl_name_file(au.domain, "admin.token", NULL)) == NULL ||
	    ctl_token(ctl, "ANCHOR_ADMIN_TOKEN", fallback, "admin", token, &e) < 0)
		goto fail;
	au.c.token = token;
	if (approved != NULL && (au.approved = load_approved(approved, &e)) == NULL)
		goto fail;
	if (audit_run(&au, pin, &e) < 0)
		goto fail;
	if (ctl->json)
		report_json(&au);
	else
		report_text(&au);
	status = json_array_size(au.problems) == 0 && au.unapproved == 0 ? CTL_OK : CTL_FAIL;
	goto out;
fail:
	status = ctl_fail(&e);
out:
	explicit_bzero(token, sizeof(token));
	free(fallback);
	ctl_trust_free(&au.t);
	tlog_head_clear(&au.head);
	merkle_mem_free(&au.tree);
	json_decref(au.entries);
	json_decref(au.problems);
	json_decref(au.changes);
	json_decref(au.approved);
	return status;
}
