/*
 * https_client.c - the HTTPS requests of every client of a key server or another
 * service (discovery, anchor-dns, anchorctl, the relay, federation, the key server's
 * webhooks), over libcurl.
 *
 * The TLS peer is verified against the system store or the configured CA
 * file, host name included; nothing turns that off.  Authenticity of what is
 * served does not rest on it (the objects verify against the DNS pin), but a
 * client should not talk to whoever answers.
 */
#include "http/https_client.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <jansson.h>

#define RESPONSE_MAX (4L * 1024 * 1024)
#define HOST_MAX 256 /* a DNS name (253) and its NUL, with room */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init_once(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int https_init(struct err *e)
{
	pthread_once(&curl_once, curl_init_once);
	if (curl_init_rc != CURLE_OK)
		return err_set(e, ERR_INTERNAL, "internal", "libcurl failed to initialise");
	return 0;
}

struct sink {
	char *buf;
	size_t len;
	size_t max;
	int too_big;
	char *request_id; /* the reply's, filled from the header */
};

static size_t sink_write(char *data, size_t size, size_t n, void *arg)
{
	struct sink *s = arg;
	size_t add = size * n;
	char *nb;

	if (s->len + add > s->max) {
		s->too_big = 1;
		return 0;
	}
	nb = realloc(s->buf, s->len + add + 1);
	if (nb == NULL)
		return 0;
	s->buf = nb;
	memcpy(s->buf + s->len, data, add);
	s->len += add;
	s->buf[s->len] = '\0';
	return add;
}

/* The X-Request-Id of the answer, for the caller to quote in a report. */
static size_t sink_header(char *data, size_t size, size_t n, void *arg)
{
	static const char name[] = "x-request-id:";
	struct sink *s = arg;
	size_t len = size * n, vlen;
	const char *v;

	if (len <= sizeof(name) - 1 || strncasecmp(data, name, sizeof(name) - 1) != 0)
		return len;
	v = data + sizeof(name) - 1;
	vlen = len - (sizeof(name) - 1);
	while (vlen > 0 && isspace((unsigned char)*v))
		v++, vlen--;
	while (vlen > 0 && isspace((unsigned char)v[vlen - 1]))
		vlen--;
	snprintf(s->request_id, sizeof(((struct https_reply *)0)->request_id), "%.*s", (int)vlen,
	         v);
	/* It comes from the network: keep terminal control bytes out. */
	for (char *p = s->request_id; *p != '\0'; p++)
		if ((unsigned char)*p < ' ' || *p == 0x7f)
			*p = '?';
	return len;
}

static void error_from_curl(CURLcode rc, const char *url, const char *detail, const struct sink *s,
                            struct err *e)
{
	const char *what = detail[0] ? detail : curl_easy_strerror(rc);

	switch (rc) {
	case CURLE_COULDNT_RESOLVE_HOST:
		err_set(e, ERR_TEMP, "fetch_resolve", "%s: cannot resolve the host: %s", url, what);
		break;
	case CURLE_COULDNT_CONNECT:
		err_set(e, ERR_TEMP, "fetch_connect", "%s: cannot connect: %s", url, what);
		break;
	case CURLE_OPERATION_TIMEDOUT:
		err_set(e, ERR_TEMP, "fetch_timeout", "%s: timed out: %s", url, what);
		break;
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
		err_set(e, ERR_TEMP, "fetch_tls", "%s: TLS failed: %s", url, what);
		break;
	default:
		if (s->too_big)
			err_set(e, ERR_UNPROC, "fetch_too_big", "%s: the answer exceeds %zu bytes",
			        url, s->max);
		else
			err_set(e, ERR_TEMP, "fetch_failed", "%s: %s", url, what);
	}
}

/* The error of a non-2xx answer: the server's {"error","message"} when it sent one. */
static void error_from_status(long status, const char *url, const struct sink *s, struct err *e)
{
	json_t *doc = s->buf ? json_loadb(s->buf, s->len, 0, NULL) : NULL;
	const char *code = doc ? json_string_value(json_object_get(doc, "error")) : NULL;
	const char *msg = doc ? json_string_value(json_object_get(doc, "message")) : NULL;

	err_set(e,
	        status == 404   ? ERR_NOTFOUND
	        : status >= 500 ? ERR_TEMP
	                        : ERR_UNPROC,
	        "fetch_status", "%s: HTTP %ld%s%s%s%s", url, status, code ? " " : "",
	        code ? code : "", msg ? ": " : "", msg ? msg : "");
	json_decref(doc);
}

static char *peer_cert(CURL *c)
{
	struct curl_certinfo *ci = NULL;
	struct curl_slist *s;

	if (curl_easy_getinfo(c, CURLINFO_CERTINFO, &ci) != CURLE_OK || ci == NULL ||
	    ci->num_of_certs < 1)
		return NULL;
	for (s = ci->certinfo[0]; s != NULL; s = s->next)
		if (strncmp(s->data, "Cert:", 5) == 0)
			return strdup(s->data + 5);
	return NULL;
}

void https_easy_setup(void *easy, const struct https_opts *o)
{
	CURL *c = easy;

	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, o->allow_http ? "https,http" : "https");
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
	                 (long)(o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 2000));
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)(o->timeout_ms > 0 ? o->timeout_ms : 10000));
	/* Never relaxed: there is no option for it. */
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(c, CURLOPT_USERAGENT,
	                 o->user_agent != NULL ? o->user_agent : "anchormail/1");
	if (o->cacert != NULL)
		curl_easy_setopt(c, CURLOPT_CAINFO, o->cacert);
	if (o->want_peer_cert)
		curl_easy_setopt(c, CURLOPT_CERTINFO, 1L);
}

/* What is sent: the method, and a body or none. */
struct send {
	const char *method;       /* NULL: GET, or POST with a body */
	const char *content_type; /* with body */
	const char *body;         /* NULL: none */
	size_t len;
};

/* The request's header lines (freed by free_headers); NULL when out of memory. */
static struct curl_slist *request_headers(const struct https_opts *o, const struct send *p)
{
	struct curl_slist *hdrs = NULL, *next;
	char line[512];
	int ok = 1;

#define ADD(text)                                                                                  \
	do {                                                                                       \
		if (ok && (next = curl_slist_append(hdrs, (text))) != NULL)                        \
			hdrs = next;                                                               \
		else                                                                               \
			ok = 0;                                                                    \
	} while (0)
	ADD("Accept: application/json");
	if (p->body != NULL) {
		snprintf(line, sizeof(line), "Content-Type: %s", p->content_type);
		ADD(line);
	}
	if (o->token != NULL) {
		snprintf(line, sizeof(line), "Authorization: Bearer %s", o->token);
		ADD(line);
		explicit_bzero(line, sizeof(line));
	}
	for (size_t i = 0; o->headers != NULL && o->headers[i] != NULL; i++)
		ADD(o->headers[i]);
#undef ADD
	if (!ok) {
		curl_slist_free_all(hdrs);
		return NULL;
	}
	return hdrs;
}

/* The list holds a copy of the bearer token: wiped before it is freed. */
static void free_headers(struct curl_slist *hdrs)
{
	for (struct curl_slist *p = hdrs; p != NULL; p = p->next)
		explicit_bzero(p->data, strlen(p->data));
	curl_slist_free_all(hdrs);
}

/* The method and body onto c.  A method other than GET without a body sends none. */
static void set_body(CURL *c, const struct send *p)
{
	if (p->method != NULL)
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, p->method);
	if (p->body != NULL) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, p->body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)p->len);
	} else if (p->method != NULL && strcmp(p->method, "GET") != 0) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, 0L);
	}
}

/* The --resolve entry for the request: the caller's, or the host's at resolve_ip. */
static struct curl_slist *resolve_list(const char *host, uint16_t port, const struct https_opts *o)
{
	char entry[HOST_MAX + 64];

	if (o->resolve != NULL)
		return curl_slist_append(NULL, o->resolve);
	if (o->resolve_ip == NULL || host == NULL)
		return NULL;
	snprintf(entry, sizeof(entry), "%s:%u:%s%s%s", host, port,
	         strchr(o->resolve_ip, ':') ? "[" : "", o->resolve_ip,
	         strchr(o->resolve_ip, ':') ? "]" : "");
	return curl_slist_append(NULL, entry);
}

/* The answer into out, or the error of a non-2xx one (unless any_status). */
static int take_answer(CURL *c, const char *url, const struct https_opts *o, struct sink *s,
                       struct https_reply *out, struct err *e)
{
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
	if ((out->status < 200 || out->status > 299) && !o->any_status) {
		error_from_status(out->status, url, s, e);
		return -1;
	}
	if (o->want_peer_cert)
		out->peer_cert_pem = peer_cert(c);
	out->body = s->buf ? s->buf : strdup("");
	out->len = s->len;
	s->buf = NULL;
	return 0;
}

static int do_request(const char *url, const char *host, uint16_t port, const struct https_opts *o,
                      const struct send *p, struct https_reply *out, struct err *e)
{
	const char *shown = o->hide_url ? "the request" : url;
	char errbuf[CURL_ERROR_SIZE] = "";
	struct curl_slist *res_list = NULL, *hdrs = NULL;
	struct sink s = {.max = o->max_response > 0 ? (size_t)o->max_response : RESPONSE_MAX,
	                 .request_id = out->request_id};
	CURL *c = NULL;
	CURLcode rc;
	int ret = -1;

	memset(out, 0, sizeof(*out));
	if (https_init(e) < 0)
		return -1;
	c = curl_easy_init();
	if (c == NULL)
		return err_set(e, ERR_INTERNAL, "internal", "curl_easy_init failed");
	https_easy_setup(c, o);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, sink_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, &s);
	if ((res_list = resolve_list(host, port, o)) != NULL)
		curl_easy_setopt(c, CURLOPT_RESOLVE, res_list);
	if ((hdrs = request_headers(o, p)) == NULL) {
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		goto out;
	}
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	set_body(c, p);
	rc = curl_easy_perform(c);
	if (rc != CURLE_OK)
		error_from_curl(rc, shown, errbuf, &s, e);
	else
		ret = take_answer(c, shown, o, &s, out, e);
out:
	if (s.buf != NULL)
		explicit_bzero(s.buf, s.len);
	free(s.buf);
	free_headers(hdrs);
	curl_slist_free_all(res_list);
	curl_easy_cleanup(c);
	return ret;
}

static int get_host(const char *scheme, const char *host, uint16_t port, const char *path,
                    const struct https_opts *o, struct https_reply *out, struct err *e)
{
	char url[HOST_MAX + 512];
	int v6;

	if (host == NULL || path == NULL)
		return err_set(e, ERR_INPUT, "bad_request", "no host to fetch from");
	v6 = strchr(host, ':') != NULL;
	if (snprintf(url, sizeof(url), "%s://%s%s%s:%u%s", scheme, v6 ? "[" : "", host,
	             v6 ? "]" : "", port, path) >= (int)sizeof(url))
		return err_set(e, ERR_INPUT, "bad_request", "URL too long");
	return do_request(url, host, port, o, &(struct send){0}, out, e);
}

int https_get(const char *host, uint16_t port, const char *path, const struct https_opts *o,
              struct https_reply *out, struct err *e)
{
	return get_host("https", host, port, path, o, out, e);
}

int https_get_plain(const char *host, uint16_t port, const char *path, const struct https_opts *o,
                    struct https_reply *out, struct err *e)
{
	if (!o->allow_http)
		return err_set(e, ERR_INTERNAL, "internal", "a plain-HTTP fetch needs allow_http");
	return get_host("http", host, port, path, o, out, e);
}

/* base_url + path, base_url being https:// (a trailing '/' dropped). */
static int url_join(const char *base_url, const char *path, char *url, size_t size, struct err *e)
{
	size_t blen = strlen(base_url);

	while (blen > 0 && base_url[blen - 1] == '/')
		blen--;
	if (strncmp(base_url, "https://", 8) != 0)
		return err_set(e, ERR_INPUT, "bad_url",
		               "the key server URL must start with https://");
	if (snprintf(url, size, "%.*s%s", (int)blen, base_url, path) >= (int)size)
		return err_set(e, ERR_INPUT, "bad_url", "URL too long");
	return 0;
}

int https_get_url(const char *base_url, const char *path, const struct https_opts *o,
                  struct https_reply *out, struct err *e)
{
	char url[1024];

	if (url_join(base_url, path, url, sizeof(url), e) < 0)
		return -1;
	return do_request(url, NULL, 0, o, &(struct send){0}, out, e);
}

int https_post_url(const char *base_url, const char *path, const struct https_opts *o,
                   const char *content_type, const char *body, size_t len, struct https_reply *out,
                   struct err *e)
{
	struct send p = {NULL, content_type != NULL ? content_type : "application/json", body, len};
	char url[1024];

	memset(out, 0, sizeof(*out));
	if (body == NULL)
		return err_set(e, ERR_INPUT, "bad_request", "nothing to POST");
	if (url_join(base_url, path, url, sizeof(url), e) < 0)
		return -1;
	return do_request(url, NULL, 0, o, &p, out, e);
}

int https_request(const char *method, const char *url, const struct https_opts *o,
                  const char *content_type, const char *body, size_t len, struct https_reply *out,
                  struct err *e)
{
	struct send p = {method, content_type != NULL ? content_type : "application/json", body,
	                 len};

	memset(out, 0, sizeof(*out));
	if (method == NULL || url == NULL)
		return err_set(e, ERR_INPUT, "bad_request", "no method or URL to request");
	return do_request(url, NULL, 0, o, &p, out, e);
}

void https_reply_clear(struct https_reply *r)
{
	if (r == NULL)
		return;
	if (r->body != NULL)
		explicit_bzero(r->body, r->len);
	free(r->body);
	free(r->peer_cert_pem);
	memset(r, 0, sizeof(*r));
}
