/*
 * anchor-policyd - a Postfix policy delegation server (SMTPD_POLICY_README) that
 * asks anchor-reputation about each SMTP client and maps the verdict to an
 * action, with a local cache, a short timeout and an explicit fail-open or
 * fail-closed answer when the service cannot be reached.  See anchor-policyd(8).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <event2/event.h>

#include "core/log.h"
#include "policyd.h"

static void usage(void)
{
	fprintf(stderr, "usage: anchor-policyd [-c config] [-n] [-v] [-o name=value]...\n");
}

static int apply_override(struct policy_settings *s, const char *arg, struct err *e)
{
	const char *eq = strchr(arg, '=');
	char name[128];

	if (eq == NULL || (size_t)(eq - arg) >= sizeof(name))
		return err_set(e, ERR_INPUT, "bad_config", "-o %s: expected name=value", arg);
	memcpy(name, arg, (size_t)(eq - arg));
	name[eq - arg] = '\0';
	return conf_set(policy_settings_table, s, name, eq + 1, e);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	log_info(NULL, "signal %d: stopping", (int)sig);
	event_base_loopbreak(arg);
}

static int run(const struct policy_settings *s, const struct policy_actions *a, struct err *e)
{
	struct event_base *base = event_base_new();
	struct policy_client *client = NULL;
	struct policy_server *srv = NULL;
	struct event *sigint = NULL, *sigterm = NULL;
	int rc = -1;

	if (base == NULL) {
		err_set(e, ERR_INTERNAL, "internal", "cannot create the event loop");
		return -1;
	}
	client = policy_client_new(base, s, e);
	if (client == NULL)
		goto out;
	srv = policy_server_start(base, s, a, client, e);
	if (srv == NULL)
		goto out;
	sigint = evsignal_new(base, SIGINT, on_signal, base);
	sigterm = evsignal_new(base, SIGTERM, on_signal, base);
	if (sigint == NULL || sigterm == NULL) {
		err_set(e, ERR_INTERNAL, "internal", "cannot watch signals");
		goto out;
	}
	event_add(sigint, NULL);
	event_add(sigterm, NULL);
	log_info(NULL, "listening on %s (port %d); asking %s, timeout %lld ms, on_error %s",
	         s->listen, policy_server_port(srv), s->reputation_url, s->timeout_ms,
	         policy_act_name(a->on_error));
	event_base_dispatch(base);
	rc = 0;
out:
	if (sigint != NULL)
		event_free(sigint);
	if (sigterm != NULL)
		event_free(sigterm);
	policy_server_free(srv);
	policy_client_free(client);
	event_base_free(base);
	return rc;
}

int main(int argc, char **argv)
{
	struct policy_settings s;
	struct policy_actions a;
	const char *config = "/etc/anchor/policyd.conf";
	int check_only = 0, verbose = 0, ch, rc = 1;
	enum log_level lvl = LOG_LVL_INFO;
	char **overrides = calloc((size_t)argc + 1, sizeof(char *));
	int noverrides = 0, i;
	struct err e = {0};

	memset(&s, 0, sizeof(s));
	log_init("anchor-policyd", LOG_LVL_INFO, 0);
	if (overrides == NULL)
		return 1;
	while ((ch = getopt(argc, argv, "c:no:vh")) != -1) {
		switch (ch) {
		case 'c':
			config = optarg;
			break;
		case 'n':
			check_only = 1;
			break;
		case 'o':
			overrides[noverrides++] = optarg;
			break;
		case 'v':
			verbose = 1;
			break;
		default:
			usage();
			free(overrides);
			return 2;
		}
	}
	if (optind != argc) {
		usage();
		free(overrides);
		return 2;
	}
	if (conf_load(policy_settings_table, &s, config, &e) < 0)
		goto fail;
	for (i = 0; i < noverrides; i++)
		if (apply_override(&s, overrides[i], &e) < 0)
			goto fail;
	if (policy_settings_check(&s, &a, &e) < 0)
		goto fail;
	if (check_only) {
		conf_dump(policy_settings_table, &s, stdout);
		rc = 0;
		goto out;
	}
	log_level_parse(s.log_level, &lvl);
	log_init("anchor-policyd", verbose ? LOG_LVL_DEBUG : lvl, s.syslog);
	signal(SIGPIPE, SIG_IGN);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	rc = run(&s, &a, &e) < 0;
	curl_global_cleanup();
	if (rc == 0)
		goto out;
fail:
	log_err(NULL, "%s", e.msg);
	rc = 1;
out:
	conf_free(policy_settings_table, &s);
	free(overrides);
	return rc;
}
