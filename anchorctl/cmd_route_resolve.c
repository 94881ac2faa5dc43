/*
 * cmd_route_resolve.c - `route resolve`: walk an address across domains
 * with lib/dns/resolve, as a sending relay would, and print each hop and the
 * targets in the order to try; --repeat times it (a benchmarking aid).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmd.h"
#include "cmd_route.h"
#include "dns/resolve.h"
#include "output.h"

#define ROUTE_REPEAT_MAX 10000000LL

/* ---- route resolve ---- */

static const char *hop_kind(enum resolve_hop_kind k)
{
	return k == RESOLVE_HOP_ALIAS ? "alias" : k == RESOLVE_HOP_SERVERS ? "servers" : "legacy";
}

static void print_result(const struct resolve_result *r)
{
	for (int i = 0; i < r->nhops; i++) {
		const struct resolve_hop *h = &r->hops[i];
		printf("hop %d: %s (domain %s, dnssec %s, %s)", i + 1, h->address, h->domain,
		       dns_sec_name(h->dnssec),
		       h->kind == RESOLVE_HOP_LEGACY ? "no anchor"
		       : h->from_cache               ? "cached"
		                                     : "fetched");
		if (h->kind == RESOLVE_HOP_ALIAS && h->alias[0])
			printf(": alias -> %s", h->alias);
		else if (h->kind != RESOLVE_HOP_ALIAS || h->expires[0])
			printf(": %s", hop_kind(h->kind));
		if (h->kind != RESOLVE_HOP_LEGACY && h->expires[0])
			printf(" [scope %s, ttl %d, expires %s]", h->scope, h->ttl, h->expires);
		printf("\n");
	}
	if (r->ntargets > 0 || r->final_address[0]) {
		printf("final: %s%s\n", r->final_address,
		       r->legacy ? " (legacy: MX, no pins)" : "");
		printf("targets, in the order to try:\n");
	}
	for (int i = 0; i < r->ntargets; i++) {
		const struct resolve_target *t = &r->targets[i];
		printf("  %d. %s:%u priority %u weight %u%s%s\n", i + 1, t->host, t->port,
		       t->priority, t->weight, t->pin[0] ? " pin " : "", t->pin);
	}
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Count how often each host came first: the load a sender would put on each server. */
static void count_first(json_t *firsts, const struct resolve_result *r)
{
	const char *host = r->ntargets > 0 ? r->targets[0].host : "(none)";
	json_t *n = json_object_get(firsts, host);

	json_object_set_new(firsts, host, json_integer(n != NULL ? json_integer_value(n) + 1 : 1));
}

/* A benchmarking aid: resolve n times (caches flushed each time when cold). */
static int resolve_repeat(const struct ctl *ctl, struct discover_ctx *dctx,
                          struct resolve_ctx *rctx, const char *address, long long n, int cold,
                          struct err *e)
{
	struct resolve_result *r = calloc(1, sizeof(*r));
	json_t *firsts = json_object();
	unsigned long long fetches = 0;
	double start = now_ms(), elapsed, worst = 0;
	int rc = -1;

	if (r == NULL || firsts == NULL) {
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		goto out;
	}
	for (long long i = 0; i < n; i++) {
		double t0 = now_ms(), dt;
		if (cold) {
			resolve_cache_flush(rctx);
			discover_cache_flush(dctx);
		}
		if (resolve_address(rctx, address, r, e) < 0)
			goto out;
		dt = now_ms() - t0;
		worst = dt > worst ? dt : worst;
		fetches += r->network_fetches;
		count_first(firsts, r);
	}
	elapsed = now_ms() - start;
	if (ctl->json) {
		json_t *o = json_pack("{s:s, s:s, s:I, s:I, s:f, s:f, s:f, s:f, s:i, s:O}",
		                      "address", address, "mode", cold ? "cold" : "warm",
		                      "resolutions", (json_int_t)n, "route_fetches",
		                      (json_int_t)fetches, "elapsed_ms", elapsed, "per_second",
		                      (double)n * 1e3 / elapsed, "mean_ms", elapsed / (double)n,
		                      "max_ms", worst, "hops", r->nhops, "first_targets", firsts);
		ctl_out_json(stdout, o);
		json_decref(o);
	} else {
		printf(
		    "%s: %lld %s resolutions (%d hops) in %.1f ms: %.1f per second, mean %.3f ms, "
		    "max %.3f ms, %llu route fetches\n",
		    address, n, cold ? "cold" : "warm", r->nhops, elapsed,
		    (double)n * 1e3 / elapsed, elapsed / (double)n, worst, fetches);
	}
	rc = 0;
out:
	json_decref(firsts);
	free(r);
	return rc;
}

int ctl_cmd_route_resolve(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	const char *repeat_s = NULL;
	int cold = 0;
	const struct ctl_opt opts[] = {{"--repeat", &repeat_s, NULL},
	                               {"--cold", NULL, &cold},
	                               CTL_COMMON_OPTS(ctl),
	                               {NULL, NULL, NULL}};
	struct discover_ctx *dctx = NULL;
	struct resolve_ctx *rctx = NULL;
	struct resolve_result *r = NULL;
	struct ctl_args a;
	struct err e = {0};
	long long repeat = 0;
	int status = CTL_FAIL;

	if (ctl_parse(cmd, opts, argc, argv, 1, 1, &a, &status) < 0 ||
	    ctl_arg_address(cmd, a.pos[0], &status) < 0)
		return status;
	if (repeat_s != NULL && ctl_args_int(repeat_s, 1, ROUTE_REPEAT_MAX, &repeat) < 0)
		return ctl_usage(cmd, "--repeat must be 1 to %lld", ROUTE_REPEAT_MAX);
	if (cold && repeat_s == NULL)
		return ctl_usage(cmd, "--cold goes with --repeat N");
	if ((dctx = ctl_route_discovery(ctl, &e)) == NULL ||
	    (rctx = resolve_new(dctx, &e)) == NULL) {
		status = ctl_fail(&e);
		goto out;
	}
	if (repeat_s != NULL) {
		status = resolve_repeat(ctl, dctx, rctx, a.pos[0], repeat, cold, &e) < 0
		             ? ctl_fail(&e)
		             : CTL_OK;
		goto out;
	}
	if ((r = calloc(1, sizeof(*r))) == NULL) {
		status = ctl_fail(&(struct err){ERR_INTERNAL, "internal", "out of memory"});
		goto out;
	}
	status = resolve_address(rctx, a.pos[0], r, &e) < 0 ? CTL_FAIL : CTL_OK;
	if (ctl->json) {
		json_t *o = resolve_result_json(r);
		if (status != CTL_OK) {
			json_object_set_new(o, "error", json_string(e.code));
			json_object_set_new(o, "message", json_string(e.msg));
		}
		ctl_out_json(stdout, o);
		json_decref(o);
	} else {
		print_result(r);
	}
	if (status != CTL_OK)
		ctl_fail(&e);
out:
	free(r);
	resolve_free(rctx);
	discover_free(dctx);
	return status;
}
