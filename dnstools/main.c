/*
 * anchor-dns - the DNS side of Anchormail (anchor-dns(1)):
 *
 *   anchor-dns [options] records <domain>    the records to publish, master-file syntax
 *   anchor-dns [options] discover <domain|address>
 *   anchor-dns [options] check <domain>      diagnostics, one line per finding
 *   anchor-dns [options] validate <name>     one query and its DNSSEC verdict from the anchor
 *
 * Exit status: 0 ok, 1 error, 2 usage.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dnstools.h"
#include "core/log.h"

static void usage(FILE *out)
{
	fputs("usage: anchor-dns [options] records <domain>\n"
	      "       anchor-dns [options] discover <domain|address>\n"
	      "       anchor-dns [options] check <domain>\n"
	      "       anchor-dns [options] validate <name> [--type TYPE]\n"
	      "options:\n"
	      "  -s URL              key server to read the domain's objects from (ANCHOR_SERVER)\n"
	      "  --cacert FILE       CA for the key servers' TLS (ANCHOR_CACERT)\n"
	      "  --resolver A[:P]    DNS resolver address (ANCHOR_RESOLVER; default resolv.conf)\n"
	      "  --trust-anchor FILE DS/DNSKEY trust anchors, the root's or a zone's\n"
	      "                      (ANCHOR_TRUST_ANCHOR; e.g. /usr/share/dns/root.key)\n"
	      "  --token-file FILE   domain admin token (ANCHOR_ADMIN_TOKEN)\n"
	      "  --timeout MS        per DNS query / TCP connect (default 2000)\n"
	      "  --json              machine-readable output\n"
	      "records:\n"
	      "  --keyserver HOST:PORT[:PRIO:WEIGHT]  an SRV target (repeatable)\n"
	      "  --mode enforce|testing   --pin sha256:... (extra pin, repeatable)\n"
	      "  --smimea ADDRESS (repeatable)   --tlsa | --tls-cert FILE   --ttl SECONDS\n"
	      "discover:\n"
	      "  --count N           discover N times in one process (shows the warm cache)\n"
	      "validate:\n"
	      "  --type TYPE         record type to ask for (default TXT)\n",
	      out);
}

enum {
	OPT_CACERT = 256,
	OPT_RESOLVER,
	OPT_ANCHOR,
	OPT_TOKEN_FILE,
	OPT_TIMEOUT,
	OPT_JSON,
	OPT_KEYSERVER,
	OPT_MODE,
	OPT_PIN,
	OPT_SMIMEA,
	OPT_TLSA,
	OPT_TLS_CERT,
	OPT_TTL,
	OPT_COUNT,
	OPT_TYPE,
};

static const struct option long_opts[] = {
    {"server", required_argument, NULL, 's'},
    {"cacert", required_argument, NULL, OPT_CACERT},
    {"resolver", required_argument, NULL, OPT_RESOLVER},
    {"trust-anchor", required_argument, NULL, OPT_ANCHOR},
    {"token-file", required_argument, NULL, OPT_TOKEN_FILE},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"json", no_argument, NULL, OPT_JSON},
    {"keyserver", required_argument, NULL, OPT_KEYSERVER},
    {"mode", required_argument, NULL, OPT_MODE},
    {"pin", required_argument, NULL, OPT_PIN},
    {"smimea", required_argument, NULL, OPT_SMIMEA},
    {"tlsa", no_argument, NULL, OPT_TLSA},
    {"tls-cert", required_argument, NULL, OPT_TLS_CERT},
    {"ttl", required_argument, NULL, OPT_TTL},
    {"count", required_argument, NULL, OPT_COUNT},
    {"type", required_argument, NULL, OPT_TYPE},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static int push_list(const char **list, int *n, int max, const char *v, const char *what)
{
	if (*n >= max) {
		fprintf(stderr, "anchor-dns: at most %d %s\n", max, what);
		return -1;
	}
	list[(*n)++] = v;
	return 0;
}

static int parse_long(const char *s, long min, long max, long *out)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (*s == '\0' || *end != '\0' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

/* The admin token: --token-file, else ANCHOR_ADMIN_TOKEN.  Kept out of every message. */
static char *read_token(const char *file)
{
	char buf[512];
	FILE *f;
	size_t n;

	if (file == NULL) {
		const char *env = getenv("ANCHOR_ADMIN_TOKEN");

		return env && env[0] ? strdup(env) : NULL;
	}
	f = fopen(file, "r");
	if (f == NULL) {
		fprintf(stderr, "anchor-dns: cannot read the token file %s\n", file);
		return NULL;
	}
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	buf[strcspn(buf, "\r\n \t")] = '\0';
	return buf[0] ? strdup(buf) : NULL;
}

static int parse_args(int argc, char **argv, struct dt_opts *o)
{
	long v;
	int c;

	while ((c = getopt_long(argc, argv, "+s:h", long_opts, NULL)) != -1) {
		switch (c) {
		case 's':
			o->server = optarg;
			break;
		case OPT_CACERT:
			o->cacert = optarg;
			break;
		case OPT_RESOLVER:
			o->resolver = optarg;
			break;
		case OPT_ANCHOR:
			o->trust_anchor = optarg;
			break;
		case OPT_TOKEN_FILE:
			o->token_file = optarg;
			break;
		case OPT_TIMEOUT:
			if (parse_long(optarg, 100, 600000, &v) < 0)
				goto bad;
			o->timeout_ms = (int)v;
			break;
		case OPT_JSON:
			o->json = 1;
			break;
		case OPT_KEYSERVER:
			if (push_list(o->keyservers, &o->nkeyservers, DT_MAX_LIST, optarg,
			              "--keyserver") < 0)
				return -1;
			break;
		case OPT_MODE:
			o->mode = optarg;
			break;
		case OPT_PIN:
			if (push_list(o->extra_pins, &o->nextra_pins, DNS_MAX_PINS - 1, optarg,
			              "--pin") < 0)
				return -1;
			break;
		case OPT_SMIMEA:
			if (push_list(o->smimea, &o->nsmimea, DT_MAX_LIST, optarg, "--smimea") < 0)
				return -1;
			break;
		case OPT_TLSA:
			o->tlsa = 1;
			break;
		case OPT_TLS_CERT:
			o->tls_cert = optarg;
			break;
		case OPT_TTL:
			if (parse_long(optarg, 0, 2147483647L, &v) < 0)
				goto bad;
			o->ttl = v;
			break;
		case OPT_COUNT:
			if (parse_long(optarg, 1, 100000, &v) < 0)
				goto bad;
			o->count = (int)v;
			break;
		case OPT_TYPE:
			o->qtype = optarg;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			return -1;
		}
	}
	return 0;
bad:
	fprintf(stderr, "anchor-dns: bad value \"%s\" for an option\n", optarg);
	return -1;
}

int main(int argc, char **argv)
{
	struct dt_opts o = {.ttl = 3600, .count = 1};
	const char *cmd, *arg;
	char *token = NULL;
	int rc;

	log_init("anchor-dns", LOG_LVL_WARN, 0);
	/* Options may come before or after the command: parse both runs. */
	if (parse_args(argc, argv, &o) < 0)
		goto usage;
	if (optind + 2 > argc)
		goto usage;
	cmd = argv[optind];
	arg = argv[optind + 1];
	{
		/* Restart getopt on what follows the command (optind = 0 reinitialises it). */
		int first = optind + 2, sub_argc = argc - first + 1;
		char **sub_argv = argv + first - 1;

		optind = 0;
		if (parse_args(sub_argc, sub_argv, &o) < 0 || optind != sub_argc)
			goto usage;
	}
	if (o.server == NULL)
		o.server = getenv("ANCHOR_SERVER");
	token = read_token(o.token_file);
	if (o.token_file != NULL && token == NULL)
		return 1;
	o.token = token;
	if (strcmp(cmd, "records") == 0)
		rc = dt_cmd_records(&o, arg);
	else if (strcmp(cmd, "discover") == 0)
		rc = dt_cmd_discover(&o, arg);
	else if (strcmp(cmd, "check") == 0)
		rc = dt_cmd_check(&o, arg);
	else if (strcmp(cmd, "validate") == 0)
		rc = dt_cmd_validate(&o, arg);
	else
		goto usage;
	if (token != NULL) {
		memset(token, 0, strlen(token));
		free(token);
	}
	return rc;
usage:
	free(token);
	usage(stderr);
	return 2;
}
