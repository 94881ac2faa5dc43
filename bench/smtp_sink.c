/*
 * smtp_sink.c - the TLS mail sink of bench/relay_tls.sh: an SMTP server on 127.0.0.1:PORT
 * that offers STARTTLS (CERT, KEY), refuses MAIL before it (530), takes every message
 * and throws it away, counting the ones that ended with a 250.
 *
 * Postfix's smtp-sink cannot speak TLS, and a Python sink (aiosmtpd) costs more CPU per
 * message than the servers it measures; this one is a single libevent loop with OpenSSL
 * bufferevents, the same build as bench/smtp_load.c, with which it shares CPU 1.
 *
 * Controlled by lines on stdin, each answered by one line on stdout:
 *   count   -> the number of messages received since the last reset
 *   reset   -> "ok"; the count goes back to 0, and the next message is written to
 *              DUMP_FILE (its content with CRLF line ends, dot-stuffing undone)
 * End of stdin ends the sink.  "ready" is printed once it listens.
 *
 * Usage: smtp_sink PORT CERT KEY DUMP_FILE
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

struct sconn;

struct sink {
	struct event_base *base;
	struct sconn *conns; /* the open connections, freed at the end too */
	SSL_CTX *ctx;
	const char *dump_path;
	long count;
	int dump_armed;
};

struct sconn {
	struct sink *k;
	struct sconn *prev, *next;
	struct bufferevent *bev;
	int tls, in_data, mail, quitting;
	struct evbuffer *dump; /* the message's content while it is being dumped */
};

static void sc_free(struct sconn *c)
{
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		c->k->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	if (c->bev != NULL)
		bufferevent_free(c->bev);
	if (c->dump != NULL)
		evbuffer_free(c->dump);
	free(c);
}

static void reply(struct sconn *c, const char *text)
{
	evbuffer_add(bufferevent_get_output(c->bev), text, strlen(text));
}

static void on_read(struct bufferevent *bev, void *arg);
static void on_event(struct bufferevent *bev, short what, void *arg);

static void on_write(struct bufferevent *bev, void *arg)
{
	struct sconn *c = arg;

	if (c->quitting && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		sc_free(c);
}

/* "220" to STARTTLS goes out on the plain socket; then the socket is under TLS. */
static int start_tls(struct sconn *c)
{
	evutil_socket_t fd = bufferevent_getfd(c->bev);
	static const char ready[] = "220 2.0.0 go ahead\r\n";
	SSL *ssl = SSL_new(c->k->ctx);

	if (ssl == NULL || send(fd, ready, sizeof(ready) - 1, 0) != (ssize_t)(sizeof(ready) - 1)) {
		SSL_free(ssl);
		return -1;
	}
	bufferevent_setfd(c->bev, -1); /* so that freeing it leaves the socket open */
	bufferevent_free(c->bev);
	c->bev = bufferevent_openssl_socket_new(c->k->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
	                                        BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL) {
		SSL_free(ssl);
		close(fd);
		sc_free(c);
		return 1;
	}
	c->tls = 1;
	bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
	bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	return 0;
}

static void data_line(struct sconn *c, const char *line, size_t n)
{
	struct sink *k = c->k;

	if (n == 1 && line[0] == '.') {
		c->in_data = 0;
		c->mail = 0;
		k->count++;
		if (c->dump != NULL) {
			FILE *f = fopen(k->dump_path, "wb");

			if (f != NULL) {
				evbuffer_write(c->dump, fileno(f));
				fclose(f);
			}
			evbuffer_free(c->dump);
			c->dump = NULL;
		}
		reply(c, "250 2.0.0 OK\r\n");
		return;
	}
	if (c->dump != NULL) {
		evbuffer_add(c->dump, line + (line[0] == '.'), n - (line[0] == '.'));
		evbuffer_add(c->dump, "\r\n", 2);
	}
}

/* One command line; 1 when the connection is gone (c freed or handed over). */
static int command(struct sconn *c, const char *line)
{
	if (!strncasecmp(line, "EHLO", 4)) {
		reply(c, c->tls ? "250-sink.test\r\n250-SIZE 52428800\r\n250 8BITMIME\r\n"
		                : "250-sink.test\r\n250-SIZE 52428800\r\n250-8BITMIME\r\n"
		                  "250 STARTTLS\r\n");
	} else if (!strncasecmp(line, "HELO", 4) || !strncasecmp(line, "NOOP", 4)) {
		reply(c, "250 sink.test\r\n");
	} else if (!strncasecmp(line, "STARTTLS", 8) && !c->tls) {
		int rc = start_tls(c);

		if (rc < 0)
			reply(c, "454 4.7.0 TLS not available\r\n");
		return rc != 0 ? rc > 0 : 1;
	} else if (!strncasecmp(line, "MAIL", 4)) {
		c->mail = c->tls;
		reply(c, c->tls ? "250 2.1.0 OK\r\n" : "530 5.7.0 STARTTLS first\r\n");
	} else if (!strncasecmp(line, "RCPT", 4)) {
		reply(c, c->mail ? "250 2.1.5 OK\r\n" : "503 5.5.1 MAIL first\r\n");
	} else if (!strncasecmp(line, "DATA", 4) && c->mail) {
		c->in_data = 1;
		if (c->k->dump_armed) {
			c->k->dump_armed = 0;
			c->dump = evbuffer_new();
		}
		reply(c, "354 go ahead\r\n");
	} else if (!strncasecmp(line, "RSET", 4)) {
		c->mail = 0;
		reply(c, "250 2.0.0 OK\r\n");
	} else if (!strncasecmp(line, "QUIT", 4)) {
		c->quitting = 1;
		bufferevent_disable(c->bev, EV_READ);
		reply(c, "221 2.0.0 bye\r\n");
		return 1;
	} else {
		reply(c, "500 5.5.2 what?\r\n");
	}
	return 0;
}

static void on_read(struct bufferevent *bev, void *arg)
{
	struct sconn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t n;
	char *line;

	while ((line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF)) != NULL) {
		int gone = 0;

		if (c->in_data)
			data_line(c, line, n);
		else
			gone = command(c, line);
		free(line);
		if (gone)
			return;
	}
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT))
		sc_free(arg);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len,
                      void *arg)
{
	struct sconn *c = calloc(1, sizeof(*c));
	int one = 1;

	/* every reply is a small write the client waits for: no Nagle delay */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (c == NULL) {
		close(fd);
		return;
	}
	c->k = arg;
	c->bev = bufferevent_socket_new(c->k->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL) {
		close(fd);
		free(c);
		return;
	}
	c->next = c->k->conns;
	if (c->next != NULL)
		c->next->prev = c;
	c->k->conns = c;
	bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
	bufferevent_set_timeouts(c->bev, &(struct timeval){60, 0}, NULL);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	reply(c, "220 sink.test ESMTP\r\n");
}

/* One or more control lines on stdin (see the top of the file). */
static void on_control(evutil_socket_t fd, short what, void *arg)
{
	struct sink *k = arg;
	char buf[256];
	ssize_t n = read(fd, buf, sizeof(buf) - 1);

	if (n <= 0) {
		event_base_loopbreak(k->base);
		return;
	}
	buf[n] = '\0';
	for (char *p = strtok(buf, "\n"); p != NULL; p = strtok(NULL, "\n")) {
		if (!strcmp(p, "reset")) {
			k->count = 0;
			k->dump_armed = 1;
			printf("ok\n");
		} else if (!strcmp(p, "count")) {
			printf("%ld\n", k->count);
		} else {
			printf("unknown command\n");
		}
	}
	fflush(stdout);
}

static SSL_CTX *server_ctx(const char *cert, const char *key)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (ctx == NULL || SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		ERR_print_errors_fp(stderr);
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	return ctx;
}

int main(int argc, char **argv)
{
	struct sink k = {0};
	struct sockaddr_in sin = {.sin_family = AF_INET};
	struct evconnlistener *l;
	struct event *ctl;

	if (argc != 5) {
		fprintf(stderr, "usage: smtp_sink PORT CERT KEY DUMP_FILE\n");
		return 2;
	}
	sin.sin_port = htons((unsigned short)strtol(argv[1], NULL, 10));
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	k.dump_path = argv[4];
	signal(SIGPIPE, SIG_IGN); /* a client that hangs up ends its connection, not the sink */
	k.base = event_base_new();
	k.ctx = server_ctx(argv[2], argv[3]);
	if (k.base == NULL || k.ctx == NULL)
		return 1;
	l = evconnlistener_new_bind(k.base, on_accept, &k,
	                            LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE |
	                                LEV_OPT_CLOSE_ON_EXEC,
	                            1024, (struct sockaddr *)&sin, sizeof(sin));
	ctl = event_new(k.base, 0, EV_READ | EV_PERSIST, on_control, &k);
	if (l == NULL || ctl == NULL || event_add(ctl, NULL) != 0) {
		perror("smtp_sink: listen");
		return 1;
	}
	printf("ready\n");
	fflush(stdout);
	event_base_dispatch(k.base);
	while (k.conns != NULL)
		sc_free(k.conns);
	event_free(ctl);
	evconnlistener_free(l);
	SSL_CTX_free(k.ctx);
	event_base_free(k.base);
	return 0;
}
