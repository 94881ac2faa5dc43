/*
 * page.c - the public lookup page (GET /lookup, PROTOCOL.md §3.6): one HTML page, its
 * script and its style sheet, compiled into the binary from keyserver/www/.
 *
 * The page fetches only the public JSON API of this same origin and checks the answer
 * in the browser (certificate chain, pin, tree head, inclusion proof), so it holds no
 * state and needs nothing from the server but these three constant files.  They are
 * served with a Content-Security-Policy that allows script, style and fetches from this
 * origin only and no inline script: an address typed into the page is only ever text.
 */
#include <stdlib.h>
#include <string.h>

#include "ks.h"

/* The files, placed in .rodata by the assembler (.incbin), so that the binary needs no
 * data directory; the Makefile makes this object depend on keyserver/www/. */
#define PAGE_ASSET(sym, file)                                                                      \
	__asm__(".section .rodata\n"                                                               \
	        ".global " #sym "\n" #sym ":\n"                                                    \
	        ".incbin \"" file "\"\n"                                                           \
	        ".global " #sym "_end\n" #sym "_end:\n"                                            \
	        ".byte 0\n"                                                                        \
	        ".previous\n")

PAGE_ASSET(ks_page_html, "keyserver/www/lookup.html");
PAGE_ASSET(ks_page_js, "keyserver/www/lookup.js");
PAGE_ASSET(ks_page_css, "keyserver/www/lookup.css");

extern const char ks_page_html[], ks_page_html_end[];
extern const char ks_page_js[], ks_page_js_end[];
extern const char ks_page_css[], ks_page_css_end[];

struct page_asset {
	const char *name; /* the last path segment; "" for the page itself */
	const char *content_type;
	const char *start, *end;
};

static const struct page_asset page_assets[] = {
    {"", "text/html; charset=utf-8", ks_page_html, ks_page_html_end},
    {"lookup.js", "text/javascript; charset=utf-8", ks_page_js, ks_page_js_end},
    {"lookup.css", "text/css; charset=utf-8", ks_page_css, ks_page_css_end},
};

/* Script, style and fetches from this origin only; no inline script or style, no
 * plug-ins, no framing, forms post nowhere. */
#define PAGE_CSP                                                                                   \
	"default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "            \
	"img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

void ks_page_get(struct ks_req *r, const char *name)
{
	const struct page_asset *a = NULL;

	for (size_t i = 0; i < sizeof(page_assets) / sizeof(page_assets[0]); i++)
		if (strcmp(page_assets[i].name, name) == 0)
			a = &page_assets[i];
	if (a == NULL) {
		http_reply_errorf(r->resp, ERR_NOTFOUND, "not_found", "no file /lookup/%s", name);
		return;
	}
	size_t len = (size_t)(a->end - a->start);
	char *body = malloc(len + 1);

	if (body == NULL) {
		http_reply_errorf(r->resp, ERR_INTERNAL, "internal", "out of memory");
		return;
	}
	memcpy(body, a->start, len);
	body[len] = '\0';
	http_reply_text(r->resp, 200, a->content_type, body, len);
	http_add_header(r->resp, "Content-Security-Policy", "%s", PAGE_CSP);
	http_add_header(r->resp, "X-Content-Type-Options", "nosniff");
	http_add_header(r->resp, "X-Frame-Options", "DENY");
	http_add_header(r->resp, "Referrer-Policy", "no-referrer");
	http_add_header(r->resp, "Cache-Control", "public, max-age=%lld", r->cache_max_age);
}
