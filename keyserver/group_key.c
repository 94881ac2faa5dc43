/*
 * group_key.c - group and corporate encryption keys, held only wrapped (PROTOCOL.md
 * §5.5).
 *
 * The admin's client makes the group's key pair, has its certificate issued for the
 * group address like any encryption certificate (§4.1, device "group"), and uploads
 * the private key once per member: a CMS EnvelopedData around the PKCS#8 DER, encrypted
 * to that member's current encryption certificates (lib/mail/smime_wrap.h).  Here a
 * wrap's shape is checked (so nothing else, a clear key least of all, is stored by
 * mistake) and stored; nothing can open it.  A member fetches what was wrapped to it
 * with a request it signs with its current key (user_request.c): every generation it
 * was given, while it is a member.  Removing a member leaves the newest generation
 * wrapped to someone outside the group: "rotation_needed" until the admin uploads a
 * new one (the removal does not carry it: §5.5 says why).
 */
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "mail/smime_wrap.h"
#include "pki/cert.h"
#include "pki/name.h"
#include "store.h"
#include "user_request.h"

#define GROUP_KEYS_TYPE "anchor-group-keys-request"

/* The domain and the group address (lowercased, the domain's own) of a request. */
static struct ks_domain *group_open(struct ks_req *r, const char *domain, const char *group,
                                    char **group_lc, struct err *e)
{
	struct ks_domain *d = ks_load_domain(r, domain);

	*group_lc = NULL;
	if (d == NULL)
		return NULL;
	if ((*group_lc = ks_lower_dup(group)) == NULL) {
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
	} else if (name_check_address(*group_lc, e) == 0 &&
	           strcmp(ks_address_domain(*group_lc), d->name) != 0) {
		err_set(e, ERR_INPUT, "address_outside_domain", "%s is not an address of %s",
		        *group_lc, d->name);
	}
	return d;
}

/* A member's current encryption certificates that can encrypt, as PEM strings. */
static json_t *member_certs(struct ks_req *r, const struct ks_domain *d, const char *member,
                            struct err *e)
{
	struct ks_cert_list *l = ks_store_certs_by_name(r->db, d->id, member, "encryption", 1, e);
	json_t *a = l ? json_array() : NULL;

	for (size_t i = 0; a != NULL && i < l->n; i++)
		if (l->v[i].pem != NULL && cert_pem_can_encrypt(l->v[i].pem))
			json_array_append_new(a, json_string(l->v[i].pem));
	ks_cert_list_free(l);
	if (l != NULL && a == NULL)
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
	return a;
}

static json_t *group_view(struct ks_req *r, const struct ks_domain *d, const char *group,
                          struct err *e)
{
	struct ks_group_key_state st;
	json_t *members = NULL, *out = NULL, *list = json_array(), *m;
	size_t i;

	if (list == NULL || ks_store_group_members(r->db, d->id, group, &members, e) < 0 ||
	    ks_store_group_key_state(r->db, d->id, group, &st, e) < 0)
		goto out;
	json_array_foreach(members, i, m)
	{
		json_t *certs = member_certs(r, d, json_string_value(m), e);
		if (certs == NULL)
			goto out;
		json_array_append_new(list,
		                      json_pack("{s:O, s:o}", "address", m, "certificates", certs));
	}
	out = json_pack("{s:s, s:O, s:i, s:s?, s:b}", "group", group, "members", list, "generation",
	                st.generation, "key_id", st.generation ? st.key_id : NULL,
	                "rotation_needed", st.rotation_needed);
out:
	json_decref(members);
	json_decref(list);
	return out;
}

void ks_group_get(struct ks_req *r, const char *domain, const char *group)
{
	struct err e = {0};
	char *g = NULL;
	struct ks_domain *d = group_open(r, domain, group, &g, &e);
	json_t *view = NULL;

	if (d == NULL)
		goto out;
	if (e.kind != ERR_NONE || ks_auth_domain_admin(r, d, &e) < 0 ||
	    (view = group_view(r, d, g, &e)) == NULL) {
		ks_fail(r, &e);
		goto out;
	}
	http_reply_json(r->resp, 200, view);
out:
	free(g);
	ks_domain_free(d);
}

/* ---- upload of a generation ---- */

/* The body {"key_id", "wraps": [{"member", "envelope"}]}: shape and wraps checked. */
static int upload_parse(const json_t *body, const char **key_id, json_t **wraps, struct err *e)
{
	size_t i;
	json_t *w;

	*key_id = json_string_value(json_object_get(body, "key_id"));
	*wraps = json_object_get(body, "wraps");
	if (*key_id == NULL || !ks_is_uuid(*key_id) || !json_is_array(*wraps) ||
	    json_array_size(*wraps) == 0 || json_array_size(*wraps) > 10000)
		return err_set(e, ERR_INPUT, "bad_request",
		               "give \"key_id\" (the group's current encryption certificate) and "
		               "\"wraps\": [{\"member\", \"envelope\"}, ...], one per member");
	json_array_foreach(*wraps, i, w)
	{
		const char *m = json_string_value(json_object_get(w, "member"));
		const char *env = json_string_value(json_object_get(w, "envelope"));

		if (!json_is_object(w) || json_object_size(w) != 2 || m == NULL || env == NULL)
			return err_set(e, ERR_INPUT, "bad_request",
			               "wraps[%zu] is not {\"member\", \"envelope\"}", i);
		/* The check's own message is generic: say which wrap instead. */
		if (smime_wrap_check(env, strlen(env), e) < 0)
			return err_set(
			    e, ERR_INPUT, "bad_wrap",
			    "wraps[%zu] (%.80s) is not base64 of a DER CMS EnvelopedData "
			    "or AuthEnvelopedData with recipients (at most %u characters): "
			    "a private key is uploaded only wrapped",
			    i, m, SMIME_WRAP_MAX);
	}
	return 0;
}

/* The wraps name exactly the group's current members, each once (members is sorted). */
static int wraps_cover(const json_t *wraps, const json_t *members, struct err *e)
{
	size_t i, n = json_array_size(members);
	json_t *w;
	char *seen = calloc(n + 1, 1);

	if (seen == NULL)
		return err_set(e, ERR_INTERNAL, "internal", "out of memory");
	json_array_foreach(wraps, i, w)
	{
		const char *m = json_string_value(json_object_get(w, "member"));
		size_t k = 0;

		while (k < n && strcmp(json_string_value(json_array_get(members, k)), m) != 0)
			k++;
		if (k == n || seen[k]) {
			free(seen);
			return err_set(e, ERR_INPUT, "wraps_mismatch",
			               "%.80s is %s: give one wrap for each current member", m,
			               k == n ? "not a member of the group" : "wrapped to twice");
		}
		seen[k] = 1;
	}
	for (i = 0; i < n && seen[i]; i++)
		;
	free(seen);
	if (i < n)
		return err_set(e, ERR_INPUT, "wraps_mismatch",
		               "%s has no wrap: give one wrap for each current member",
		               json_string_value(json_array_get(members, i)));
	return 0;
}

/* key_id is a current encryption certificate of the group. */
static int key_is_groups(struct ks_req *r, const struct ks_domain *d, const char *group,
                         const char *key_id, struct err *e)
{
	struct ks_cert_list *l = ks_store_certs_by_name(r->db, d->id, group, "encryption", 1, e);
	int found = 0;

	for (size_t i = 0; l != NULL && i < l->n; i++)
		found |= strcmp(l->v[i].key_id, key_id) == 0;
	ks_cert_list_free(l);
	if (l == NULL)
		return -1;
	return found ? 0
	             : err_set(e, ERR_CONFLICT, "not_group_key",
	                       "%s is not a current encryption certificate of %s: enroll the "
	                       "group's key first (§4.1)",
	                       key_id, group);
}

/* In one transaction, under the domain's lock (as group changes take it). */
static int upload_store(struct ks_req *r, const struct ks_domain *d, const char *group,
                        const char *key_id, const json_t *wraps, int *gen, struct err *e)
{
	json_t *members = NULL;

	if (db_begin(r->db, e) < 0)
		return -1;
	if (ks_store_domain_lock(r->db, d->id, e) < 0 ||
	    ks_store_group_members(r->db, d->id, group, &members, e) < 0)
		goto fail;
	if (json_array_size(members) == 0) {
		err_set(e, ERR_CONFLICT, "no_members", "%s has no members to wrap a key to", group);
		goto fail;
	}
	if (wraps_cover(wraps, members, e) < 0 || key_is_groups(r, d, group, key_id, e) < 0 ||
	    ks_store_group_key_add(r->db, d->id, group, key_id, wraps, gen, e) < 0 ||
	    db_commit(r->db, e) < 0)
		goto fail;
	json_decref(members);
	return 0;
fail:
	json_decref(members);
	db_rollback(r->db);
	return -1;
}

/* A group key only where the policy gives mail to one: groups, or the corporate address. */
static int policy_allows(const struct ks_domain *d, const char *group, struct err *e)
{
	if (strcmp(d->policy, "groups") == 0 ||
	    (strcmp(d->policy, "corporate") == 0 && d->corporate_address != NULL &&
	     strcmp(d->corporate_address, group) == 0))
		return 0;
	return err_set(e, ERR_CONFLICT, "not_group_policy",
	               "%s has policy %s: a group key is for the groups policy or the "
	               "corporate address",
	               d->name, d->policy);
}

void ks_group_key_put(struct ks_req *r, const char *domain, const char *group)
{
	struct err e = {0};
	char *g = NULL;
	struct ks_domain *d = group_open(r, domain, group, &g, &e);
	const char *key_id = NULL;
	json_t *wraps = NULL;
	int gen = 0;

	if (d == NULL)
		goto out;
	if (e.kind != ERR_NONE || ks_auth_domain_admin(r, d, &e) < 0 ||
	    policy_allows(d, g, &e) < 0 || upload_parse(r->http->json, &key_id, &wraps, &e) < 0 ||
	    upload_store(r, d, g, key_id, wraps, &gen, &e) < 0) {
		ks_fail(r, &e);
		goto out;
	}
	log_info(r->http->reqid, "group key of %s generation %d: %zu members", g, gen,
	         json_array_size(wraps));
	http_reply_json(r->resp, 201,
	                json_pack("{s:s, s:i, s:s, s:I}", "group", g, "generation", gen, "key_id",
	                          key_id, "members", (json_int_t)json_array_size(wraps)));
out:
	free(g);
	ks_domain_free(d);
}

/* ---- a member's fetch ---- */

static int fetch_check(struct ks_req *r, const struct ks_domain *d, const char *group,
                       const char *member, struct err *e)
{
	char key_id[CRYPTO_UUID_LEN];
	json_t *p = NULL;
	char *in = NULL;
	const char *named;
	int rc = -1;

	if (name_check_address(member, e) < 0 ||
	    ks_user_request_open(r, d, member, GROUP_KEYS_TYPE, &p, key_id, e) < 0)
		return -1;
	named = json_string_value(json_object_get(p, "group"));
	if (named == NULL || strcmp(named, group) != 0) {
		err_set(e, ERR_INPUT, "request_mismatch",
		        "the signed request names another group than the URL's");
		goto out;
	}
	if (ks_store_group_of(r->db, d->id, member, &in, e) < 0)
		goto out;
	if (in == NULL || strcmp(in, group) != 0) {
		err_set(e, ERR_FORBIDDEN, "not_a_member",
		        "%s is not a member of %s: only current members get its keys", member,
		        group);
		goto out;
	}
	rc = 0;
out:
	free(in);
	json_decref(p);
	return rc;
}

void ks_group_key_fetch(struct ks_req *r, const char *domain, const char *group, const char *member)
{
	struct err e = {0};
	char *g = NULL, *m = ks_lower_dup(member);
	struct ks_domain *d = group_open(r, domain, group, &g, &e);
	struct ks_group_key_state st;
	json_t *keys = NULL;

	if (d == NULL)
		goto out;
	if (m == NULL && e.kind == ERR_NONE)
		err_set(&e, ERR_INTERNAL, "internal", "out of memory");
	if (e.kind != ERR_NONE || fetch_check(r, d, g, m, &e) < 0 ||
	    ks_store_group_key_wraps(r->db, d->id, g, m, &keys, &e) < 0 ||
	    ks_store_group_key_state(r->db, d->id, g, &st, &e) < 0) {
		ks_fail(r, &e);
		goto out;
	}
	log_info(r->http->reqid, "group keys of %s fetched by a member: %zu generations", g,
	         json_array_size(keys));
	http_reply_json(r->resp, 200,
	                json_pack("{s:s, s:s, s:o, s:b}", "group", g, "member", m, "keys", keys,
	                          "rotation_needed", st.rotation_needed));
out:
	free(m);
	free(g);
	ks_domain_free(d);
}
