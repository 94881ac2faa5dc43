/* http_settings.c - the server settings of a daemon's table as a struct http_config. */
#include "http/http_settings.h"

#include <string.h>

int http_config_from_settings(struct http_config *hc, const struct conf_param *table,
                              const void *settings, struct err *e)
{
	long long port, body, threads, conns, per_ip, idle, first, rotation, rate, burst;
	const void *s = settings;

	memset(hc, 0, sizeof(*hc));
	if (conf_get_str(table, s, "listen_address", &hc->listen_addr, e) < 0 ||
	    conf_get_num(table, s, "listen_port", &port, e) < 0 ||
	    conf_get_str(table, s, "tls_cert_file", &hc->tls_cert_file, e) < 0 ||
	    conf_get_str(table, s, "tls_key_file", &hc->tls_key_file, e) < 0 ||
	    conf_get_bool(table, s, "allow_plain_http", &hc->allow_plain_http, e) < 0 ||
	    conf_get_num(table, s, "max_body", &body, e) < 0 ||
	    conf_get_num(table, s, "http_threads", &threads, e) < 0 ||
	    conf_get_num(table, s, "max_connections", &conns, e) < 0 ||
	    conf_get_num(table, s, "max_connections_per_ip", &per_ip, e) < 0 ||
	    conf_get_num(table, s, "conn_timeout", &idle, e) < 0 ||
	    conf_get_num(table, s, "request_timeout", &first, e) < 0 ||
	    conf_get_num(table, s, "tls_ticket_rotation", &rotation, e) < 0 ||
	    conf_get_num(table, s, "rate_limit", &rate, e) < 0 ||
	    conf_get_num(table, s, "rate_burst", &burst, e) < 0)
		return -1;
	/* Each within its table's bounds, which fit these types. */
	hc->port = (int)port;
	hc->max_body = (size_t)body;
	hc->threads = (int)threads;
	hc->max_connections = (int)conns;
	hc->max_connections_per_ip = (int)per_ip;
	hc->conn_timeout = (int)idle;
	hc->request_timeout = (int)first;
	hc->tls_ticket_rotation = (long)rotation;
	hc->rate_per_sec = (double)rate;
	hc->rate_burst = (double)burst;
	return 0;
}
