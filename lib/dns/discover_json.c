/*
 * discover_json.c - a discovery result as the JSON document the DNS tools
 * print (dnstools/discover_cmd.c): the status, the DNSSEC verdict, the pins,
 * the targets and the trace; see discover.h.
 */
#include "dns/discover.h"

json_t *discover_result_json(const struct discover_result *r)
{
	json_t *o = json_object(), *pins = json_array(), *targets = json_array(),
	       *mx = json_array(), *tr = json_array();
	int i;

	json_object_set_new(o, "domain", json_string(r->domain));
	if (r->address[0])
		json_object_set_new(o, "address", json_string(r->address));
	json_object_set_new(o, "status", json_string(discover_status_name(r->status)));
	json_object_set_new(o, "dnssec", json_string(dns_sec_name(r->dnssec)));
	json_object_set_new(o, "dnssec_reason", json_string(r->dnssec_why));
	if (r->status == DISCOVER_ANCHORED || r->npins > 0) {
		json_object_set_new(o, "mode", json_string(dns_mode_name(r->mode)));
		for (i = 0; i < r->npins; i++)
			json_array_append_new(pins, json_string(r->pins[i]));
		if (r->id[0])
			json_object_set_new(o, "id", json_string(r->id));
	}
	json_object_set_new(o, "pins", pins);
	for (i = 0; i < r->ntargets; i++)
		json_array_append_new(
		    targets, json_pack("{s:s,s:i,s:i,s:i}", "target", r->targets[i].target, "port",
		                       r->targets[i].port, "priority", r->targets[i].priority,
		                       "weight", r->targets[i].weight));
	json_object_set_new(o, "targets", targets);
	if (r->used_target >= 0)
		json_object_set_new(o, "used_target",
		                    json_sprintf("%s:%u", r->targets[r->used_target].target,
		                                 r->targets[r->used_target].port));
	for (i = 0; i < r->nmx; i++)
		json_array_append_new(mx, json_pack("{s:i,s:s}", "preference", r->mx[i].preference,
		                                    "host", r->mx[i].host));
	json_object_set_new(o, "mx", mx);
	if (r->object != NULL) {
		json_object_set_new(o, "root_pin", json_string(r->root_pin));
		json_object_set(o, "object", r->object);
	}
	for (i = 0; i < r->ntrace; i++)
		json_array_append_new(tr, json_string(r->trace[i]));
	json_object_set_new(o, "trace", tr);
	if (r->status == DISCOVER_ERROR)
		json_object_set_new(
		    o, "error", json_pack("{s:s,s:s}", "code", r->err.code, "message", r->err.msg));
	json_object_set_new(o, "from_cache", json_boolean(r->from_cache));
	json_object_set_new(o, "ttl", json_integer(r->ttl));
	json_object_set_new(o, "dns_queries", json_integer(r->dns_queries));
	json_object_set_new(o, "https_requests", json_integer(r->https_requests));
	json_object_set_new(o, "elapsed_ms", json_real(r->elapsed_ms));
	return o;
}
