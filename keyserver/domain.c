/* domain.c - the domain resource: publish, register (operator), policy, renewal limits and
 * groups (admin). */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "cache.h"
#include "pki/cert.h"
#include "pki/name.h"
#include "pki/crl.h"
#include "pki/crypto.h"
#include "core/log.h"
#include "renew_policy.h"
#include "store.h"

void ks_domain_get(struct ks_req *r, const char *domain, const char *part)
{
	struct ks_domain *d = ks_load_domain(r, domain);

	if (d == NULL)
		return;
	if (part == NULL) {
		http_reply_json(r->resp, 200, ks_domain_json(d));
	} else {
		const char *pem = strcmp(part, "root.pem") == 0 ? d->root_pem : d->issuer_pem;
		http_reply_text(r->resp, 200, "application/x-pem-file", strdup(pem), strlen(pem));
	}
	ks_domain_free(d);
}

int ks_check_policy_words(const char *policy, const char *mode, struct err *e)
{
	if (policy != NULL && strcmp(policy, "isp") != 0 && strcmp(policy, "corporate") != 0 &&
	    strcmp(policy, "groups") != 0)
		return err_set(e, ERR_INPUT, "bad_policy",
		               "policy must be isp, corporate or groups, not \"%.40s\"", policy);
	if (mode != NULL && strcmp(mode, "enforce") != 0 && strcmp(mode, "testing") != 0)
		return err_set(e, ERR_INPUT, "bad_policy",
		               "mode must be enforce or testing, not \"%.40s\"", mode);
	return 0;
}

/* An address of the domain itself, well formed: the only kind a domain may speak for. */
static int check_own_address(const char *addr, const char *domain, struct err *e)
{
	if (name_check_address(addr, e) < 0)
		return -1;
	if (strcmp(ks_address_domain(addr), domain) != 0)
		return err_set(e, ERR_INPUT, "address_outside_domain", "%s is not an address of %s",
		               addr, domain);
	return 0;
}

/*
 * Registration: the shape is checked here; the issuer key is neither parsed nor
 * sealed in this process: the signer checks the set (root, issuer, key) and the
 * operator's token itself, seals the key and stores the domain.
 */
struct reg_input {
	const char *root_pem, *issuer_pem, *key_pem, *policy, *mode;
	char *domain;
};

static int reg_input_parse(json_t *body, struct reg_input *in, struct err *e)
{
	const char *domain;

	if ((domain = http_json_str(body, "domain", 1, e)) == NULL ||
	    (in->root_pem = http_json_str(body, "root", 1, e)) == NULL ||
	    (in->issuer_pem = http_json_str(body, "issuer", 1, e)) == NULL ||
	    (in->key_pem = http_json_str(body, "issuer_key", 1, e)) == NULL)
		return -1;
	in->policy = http_json_str(body, "policy", 0, e);
	in->mode = http_json_str(body, "mode", 0, e);
	if (e->kind != ERR_NONE || ks_check_policy_words(in->policy, in->mode, e) < 0)
		return -1;
	if (in->policy != NULL && strcmp(in->policy, "corporate") == 0)
		return err_set(e, ERR_INPUT, "bad_policy",
		               "register with isp or groups, then set the corporate policy "
		               "with its corporate_address");
	if (name_check_domain(domain, e) < 0)
		return -1;
	if ((in->domain = ks_lower_dup(domain)) == NULL)
		return err_set(e, ERR_INTERNAL, "internal", "out of memory");
	return 0;
}

void ks_domain_register(struct ks_req *r)
{
	struct reg_input in = {0};
	char pin[CRYPTO_PIN_MAX], token[CRYPTO_TOKEN_LEN];
	struct err e = {0};

	if (ks_auth_operator(r, &e) < 0 || reg_input_parse(r->http->json, &in, &e) < 0)
		goto fail;
	const char *pem[3] = {in.root_pem, in.issuer_pem, in.key_pem};
	if (ks_signer_register(r->ks, in.domain, pem, in.policy ? in.policy : "",
	                       in.mode ? in.mode : "", http_bearer_token(r->http), pin, token,
	                       &e) < 0)
		goto fail;
	ks_cache_invalidate(r->ks->cache);
	log_info(r->http->reqid, "registered domain %s pin=%s", in.domain, pin);
	http_reply_json(
	    r->resp, 201,
	    json_pack("{s:s, s:[s], s:s}", "domain", in.domain, "pins", pin, "admin_token", token));
	OPENSSL_cleanse(token, sizeof(token));
	free(in.domain);
	return;
fail:
	free(in.domain);
	ks_fail(r, &e);
}

static int log_policy(struct ks_req *r, const struct ks_domain *d, const struct ks_policy_set *p,
                      struct err *e)
{
	json_t *details = json_pack("{s:s, s:s, s:s}", "policy", p->policy ? p->policy : d->policy,
	                            "mode", p->mode ? p->mode : d->mode, "encryption",
	                            p->encryption ? p->encryption : d->encryption);
	struct ks_event ev = {.type = "policy", .name = p->corporate_address, .details = details};
	int rc = ks_log_append(r, d, &ev, NULL, e);

	json_decref(details);
	return rc;
}

void ks_domain_set_policy(struct ks_req *r, const char *domain)
{
	struct ks_domain *d = ks_load_domain(r, domain);
	struct err e = {0};
	const char *policy, *mode, *corp, *enc;
	char *corp_lc = NULL;

	if (d == NULL)
		return;
	if (ks_auth_domain_admin(r, d, &e) < 0)
		goto fail;
	policy = http_json_str(r->http->json, "policy", 0, &e);
	mode = http_json_str(r->http->json, "mode", 0, &e);
	corp = http_json_str(r->http->json, "corporate_address", 0, &e);
	enc = http_json_str(r->http->json, "encryption", 0, &e);
	if (e.kind != ERR_NONE || ks_check_policy_words(policy, mode, &e) < 0)
		goto fail;
	if (enc != NULL && strcmp(enc, "none") != 0 && strcmp(enc, "opportunistic") != 0 &&
	    strcmp(enc, "required") != 0)
		err_set(&e, ERR_INPUT, "bad_policy",
		        "encryption must be none, opportunistic or required, not \"%.40s\"", enc);
	else if (policy == NULL && mode == NULL && enc == NULL)
		err_set(&e, ERR_INPUT, "bad_request",
		        "give a policy, a mode, an encryption, or some");
	else if (policy != NULL && strcmp(policy, "corporate") == 0 && corp == NULL)
		err_set(&e, ERR_INPUT, "bad_request",
		        "the corporate policy needs a corporate_address");
	if (e.kind != ERR_NONE)
		goto fail;
	if (corp != NULL) {
		corp_lc = ks_lower_dup(corp);
		if (corp_lc == NULL || check_own_address(corp_lc, d->name, &e) < 0)
			goto fail;
	}

	struct ks_policy_set set = {policy, mode, corp_lc, enc};
	if (db_begin(r->db, &e) < 0)
		goto fail;
	if (ks_store_domain_set_policy(r->db, d->name, &set, &e) < 0 ||
	    log_policy(r, d, &set, &e) < 0 || ks_store_notify_change(r->db, d->name, &e) < 0 ||
	    db_commit(r->db, &e) < 0) {
		db_rollback(r->db);
		goto fail;
	}
	ks_cache_invalidate(r->ks->cache);
	ks_log_publish(r, d);
	ks_domain_free(d);
	log_info(r->http->reqid, "policy of %s: policy=%s mode=%s encryption=%s", domain,
	         policy ? policy : "(unchanged)", mode ? mode : "(unchanged)",
	         enc ? enc : "(unchanged)");
	free(corp_lc);
	ks_domain_get(r, domain, NULL);
	return;
fail:
	free(corp_lc);
	ks_domain_free(d);
	ks_fail(r, &e);
}

static int group_members_store(struct ks_req *r, const struct ks_domain *d, const char *group,
                               json_t *members, struct err *e)
{
	if (db_begin(r->db, e) < 0)
		return -1;
	/* The domain first, as every change of it: inserting the group's rows takes a key
	 * share on the domain row, and two such holders both waiting for the domain's lock
	 * at the log append would deadlock. */
	if (ks_store_domain_lock(r->db, d->id, e) < 0 ||
	    ks_store_group_replace(r->db, d->id, group, members, e) < 0)
		goto fail;
	json_t *details = json_pack("{s:I}", "members", (json_int_t)json_array_size(members));
	struct ks_event ev = {.type = "group", .name = group, .details = details};
	int logged = ks_log_append(r, d, &ev, NULL, e);
	json_decref(details);
	if (logged < 0 || ks_store_notify_change(r->db, d->name, e) < 0 || db_commit(r->db, e) < 0)
		goto fail;
	ks_log_publish(r, d);
	return 0;
fail:
	db_rollback(r->db);
	return -1;
}

static int check_members(json_t *members, const char *domain, struct err *e)
{
	size_t i;
	json_t *m;

	if (!json_is_array(members))
		return err_set(e, ERR_INPUT, "bad_request",
		               "\"members\" must be an array of addresses");
	if (json_array_size(members) > 10000)
		return err_set(e, ERR_INPUT, "bad_request", "a group has at most 10000 members");
	json_array_foreach(members, i, m)
	{
		char *lc;
		int rc;

		if (!json_is_string(m))
			return err_set(e, ERR_INPUT, "bad_request", "members[%zu] is not a string",
			               i);
		lc = ks_lower_dup(json_string_value(m));
		rc = lc == NULL ? err_set(e, ERR_INTERNAL, "internal", "out of memory")
		                : check_own_address(lc, domain, e);
		free(lc);
		if (rc < 0)
			return -1;
	}
	return 0;
}

/* After a change of members: whether the newest group key is wrapped to someone who left
 * (group_key.c, PROTOCOL.md §5.5).  A failure to tell says no: the change itself stands. */
static int group_rotation_needed(struct ks_req *r, const struct ks_domain *d, const char *group)
{
	struct ks_group_key_state st;
	struct err e = {0};

	return ks_store_group_key_state(r->db, d->id, group, &st, &e) == 0 && st.rotation_needed;
}

void ks_group_set(struct ks_req *r, const char *domain, const char *group)
{
	struct ks_domain *d = ks_load_domain(r, domain);
	char *group_lc = ks_lower_dup(group);
	json_t *members;
	struct err e = {0};

	if (d == NULL)
		goto out;
	members = json_object_get(r->http->json, "members");
	if (ks_auth_domain_admin(r, d, &e) < 0 || group_lc == NULL ||
	    check_own_address(group_lc, d->name, &e) < 0 ||
	    check_members(members, d->name, &e) < 0 ||
	    group_members_store(r, d, group_lc, members, &e) < 0) {
		ks_fail(r, &e);
		goto out;
	}
	ks_cache_invalidate(r->ks->cache);
	log_info(r->http->reqid, "group %s of %s: %zu members", group_lc, d->name,
	         json_array_size(members));
	http_reply_json(r->resp, 200,
	                json_pack("{s:s, s:O, s:b}", "group", group_lc, "members", members,
	                          "rotation_needed", group_rotation_needed(r, d, group_lc)));
out:
	free(group_lc);
	ks_domain_free(d);
}

void ks_group_delete(struct ks_req *r, const char *domain, const char *group)
{
	struct ks_domain *d = ks_load_domain(r, domain);
	char *group_lc = ks_lower_dup(group);
	json_t *none = json_array();
	struct err e = {0};

	if (d == NULL)
		goto out;
	if (ks_auth_domain_admin(r, d, &e) < 0 || group_lc == NULL ||
	    check_own_address(group_lc, d->name, &e) < 0 ||
	    group_members_store(r, d, group_lc, none, &e) < 0) {
		ks_fail(r, &e);
		goto out;
	}
	ks_cache_invalidate(r->ks->cache);
	log_info(r->http->reqid, "group %s of %s deleted", group_lc, d->name);
	http_reply_json(r->resp, 200,
	                json_pack("{s:s, s:b, s:b}", "group", group_lc, "deleted", 1,
	                          "rotation_needed", group_rotation_needed(r, d, group_lc)));
out:
	json_decref(none);
	free(group_lc);
	ks_domain_free(d);
}

/*
 * Erasure on a user's request (PROTOCOL.md §10.1): nothing the key server keeps or
 * serves ties anything to the address any more, and the CRL and the log stay whole.
 * Every certificate of the address not revoked yet (current or superseded) is revoked,
 * by the admin, as cessationOfOperation: once its owner is gone nobody may rely on it,
 * and the CRL must say so.  Then each certificate row loses the address and the
 * certificate itself (whose SAN names the address) and keeps key id, fingerprint,
 * serial, revocation and log sequence; log entries keep their leaves (which name the
 * address only through a salted hash) and lose salt and name; the address's routes,
 * group membership, group keys wrapped to it and enrollment tokens are deleted.
 */
static int erase_address(struct ks_req *r, const struct ks_domain *d, const char *addr,
                         struct ks_erasure *out, struct err *e)
{

	/* The domain object publishes the corporate address: erasing it would leave it there. */
	if (d->corporate_address != NULL && strcmp(d->corporate_address, addr) == 0)
		return err_set(e, ERR_CONFLICT, "corporate_address",
		               "%s is the domain's corporate address: set another policy first",
		               addr);
	if (db_begin(r->db, e) < 0)
		return -1;
	/* The revocations are logged under the address: they come before the unlinking. */
	if (ks_revoke_all_of(r, d, addr, CRL_CESSATION, &out->revoked, e) < 0 ||
	    ks_store_address_erase(r->db, d->id, addr, out, e) < 0 ||
	    ks_store_notify_change(r->db, d->name, e) < 0 || db_commit(r->db, e) < 0) {
		db_rollback(r->db);
		return -1;
	}
	return 0;
}

void ks_domain_erase(struct ks_req *r, const char *domain)
{
	struct ks_domain *d = ks_load_domain(r, domain);
	struct err e = {0};
	const char *raw;
	char *addr = NULL;
	struct ks_erasure done = {0};

	if (d == NULL)
		return;
	if (ks_auth_domain_admin(r, d, &e) < 0 ||
	    (raw = http_json_str(r->http->json, "address", 1, &e)) == NULL)
		goto fail;
	if ((addr = ks_address_canon(raw, &e)) == NULL ||
	    check_own_address(addr, d->name, &e) < 0 || erase_address(r, d, addr, &done, &e) < 0)
		goto fail;
	ks_cache_invalidate(r->ks->cache);
	/* The address itself is what is being erased: the log line names only the count. */
	log_info(r->http->reqid,
	         "erased an address of %s (%lld certificates, %lld of them revoked now;"
	         " %lld log entries unlinked)",
	         d->name, done.certificates, done.revoked, done.entries);
	http_reply_json(r->resp, 200,
	                json_pack("{s:b, s:I, s:I, s:I}", "erased", 1, "log_entries_unlinked",
	                          (json_int_t)done.entries, "certificates_erased",
	                          (json_int_t)done.certificates, "certificates_revoked",
	                          (json_int_t)done.revoked));
	free(addr);
	ks_domain_free(d);
	return;
fail:
	if (e.kind == ERR_NONE)
		err_set(&e, ERR_INTERNAL, "internal", "out of memory");
	free(addr);
	ks_domain_free(d);
	ks_fail(r, &e);
}

/* One member of a renewal-limits body: absent keeps *v, null gives it back to the key
 * server (-1), else a whole number of seconds. */
static int renewal_member(json_t *body, const char *k, long long *v, struct err *e)
{
	json_t *x = json_object_get(body, k);

	if (x == NULL)
		return 0;
	if (json_is_null(x)) {
		*v = KS_RENEW_UNSET;
		return 0;
	}
	if (!json_is_integer(x) || json_integer_value(x) < 0)
		return err_set(e, ERR_INPUT, "bad_request",
		               "%s: a whole number of seconds, or null for the key server's", k);
	*v = (long long)json_integer_value(x);
	return 0;
}

/* The body's limits over the domain's current ones, checked against the server's. */
static int renewal_limits_parse(struct ks_req *r, const struct ks_domain *d, long long v[3],
                                struct err *e)
{
	static const char *const keys[3] = {"window", "min_interval", "max_lifetime"};
	const struct ks_settings *cfg = &r->ks->cfg;
	const struct ks_renew_policy server = {.window = cfg->renew_window,
	                                       .min_interval = cfg->renew_min_interval,
	                                       .max_lifetime = cfg->renew_max_lifetime,
	                                       .cert_days = cfg->cert_days};
	json_t *body = r->http->json, *value;
	const char *key;

	if (!json_is_object(body) || json_object_size(body) == 0)
		return err_set(e, ERR_INPUT, "bad_request",
		               "give window, min_interval or max_lifetime (seconds, or null)");
	json_object_foreach(body, key, value)
	{
		if (strcmp(key, keys[0]) != 0 && strcmp(key, keys[1]) != 0 &&
		    strcmp(key, keys[2]) != 0)
			return err_set(
			    e, ERR_INPUT, "bad_request",
			    "unknown member %.64s: only window, min_interval, max_lifetime", key);
	}
	v[0] = d->renew_window;
	v[1] = d->renew_min_interval;
	v[2] = d->renew_max_lifetime;
	for (int i = 0; i < 3; i++)
		if (renewal_member(body, keys[i], &v[i], e) < 0)
			return -1;
	const struct ks_renew_limits lim = {v[0], v[1], v[2]};
	return ks_renew_limits_check(&server, &lim, e);
}

void ks_domain_set_renewal(struct ks_req *r, const char *domain)
{
	struct ks_domain *d = ks_load_domain(r, domain);
	struct err e = {0};
	long long v[3];

	if (d == NULL)
		return;
	if (ks_auth_domain_admin(r, d, &e) < 0 || renewal_limits_parse(r, d, v, &e) < 0)
		goto fail;
	if (db_begin(r->db, &e) < 0)
		goto fail;
	if (ks_store_domain_lock(r->db, d->id, &e) < 0 ||
	    ks_store_domain_set_renewal(r->db, d->name, v, &e) < 0 ||
	    ks_store_notify_change(r->db, d->name, &e) < 0 || db_commit(r->db, &e) < 0) {
		db_rollback(r->db);
		goto fail;
	}
	ks_cache_invalidate(r->ks->cache);
	log_info(r->http->reqid,
	         "renewal limits of %s: window=%lld min_interval=%lld "
	         "max_lifetime=%lld (-1: the server's)",
	         d->name, v[0], v[1], v[2]);
	ks_domain_free(d);
	ks_domain_get(r, domain, NULL);
	return;
fail:
	ks_domain_free(d);
	ks_fail(r, &e);
}
