/*
 * http_settings.h - a daemon's HTTPS server settings as the struct http_config
 * http_server_start() takes (http_settings.c).
 *
 * Every daemon that serves HTTPS (anchor-keyserver, anchor-reputation) has the same
 * server settings in its configuration table, under the same names: listen_address,
 * listen_port, tls_cert_file, tls_key_file, allow_plain_http, max_body, http_threads,
 * max_connections, max_connections_per_ip, conn_timeout, request_timeout,
 * tls_ticket_rotation, rate_limit, rate_burst.  This reads them from the table, so
 * that the mapping is written once.
 */
#ifndef ANCHOR_HTTP_SETTINGS_H
#define ANCHOR_HTTP_SETTINGS_H

#include "core/conf.h"
#include "http/http.h"

/* Fill hc's listening, TLS and limit members from settings (loaded with table); the
 * caller sets dispatch, metrics, health and app.  -1 (ERR_INTERNAL) when the table
 * lacks one of the settings. */
int http_config_from_settings(struct http_config *hc, const struct conf_param *table,
                              const void *settings, struct err *e);

#endif
