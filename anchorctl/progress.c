/* progress.c - a progress bar or progress lines on standard error; see progress.h. */
#include "progress.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BAR_WIDTH 30
#define REDRAW_MS 100
#define LINE_EVERY_MIN 100 /* plain lines: at most one per tenth, at least this apart */

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void ctl_progress_bar(uint64_t done, uint64_t total, int width, char *buf, size_t len)
{
	uint64_t fill = total == 0      ? 0
	                : done >= total ? (uint64_t)width
	                                : done * (uint64_t)width / total;
	size_t j = 0;

	for (int i = 0; i < width && j + 1 < len; i++)
		buf[j++] = (uint64_t)i < fill ? '#' : '.';
	if (len > 0)
		buf[j] = '\0';
}

static uint64_t line_step(uint64_t total)
{
	uint64_t step = total / 10;

	return step < LINE_EVERY_MIN ? LINE_EVERY_MIN : step;
}

void ctl_progress_start(struct ctl_progress *p, FILE *out, const char *what, uint64_t total)
{
	const char *term = getenv("TERM");

	memset(p, 0, sizeof(*p));
	p->out = out;
	p->what = what;
	p->total = total;
	p->tty = isatty(fileno(out)) && (term == NULL || strcmp(term, "dumb") != 0);
	p->next_line = line_step(total);
}

static void draw(struct ctl_progress *p)
{
	char bar[BAR_WIDTH + 1];

	if (p->total > 0) {
		ctl_progress_bar(p->done, p->total, BAR_WIDTH, bar, sizeof(bar));
		fprintf(p->out, "\r%s [%s] %3d%% %llu/%llu, %llu failed\033[K", p->what, bar,
		        (int)(p->done * 100 / p->total), (unsigned long long)p->done,
		        (unsigned long long)p->total, (unsigned long long)p->failed);
	} else {
		fprintf(p->out, "\r%s: %llu done, %llu failed\033[K", p->what,
		        (unsigned long long)p->done, (unsigned long long)p->failed);
	}
	fflush(p->out);
	p->drawn = 1;
	p->last_ms = now_ms();
}

static void plain_line(struct ctl_progress *p)
{
	if (p->total > 0)
		fprintf(p->out, "anchorctl: %s: %llu/%llu done, %llu failed\n", p->what,
		        (unsigned long long)p->done, (unsigned long long)p->total,
		        (unsigned long long)p->failed);
	else
		fprintf(p->out, "anchorctl: %s: %llu done, %llu failed\n", p->what,
		        (unsigned long long)p->done, (unsigned long long)p->failed);
	fflush(p->out);
}

void ctl_progress_step(struct ctl_progress *p, int failed)
{
	p->done++;
	if (failed)
		p->failed++;
	if (p->tty) {
		if (p->done == p->total || now_ms() - p->last_ms >= REDRAW_MS)
			draw(p);
	} else if (p->done >= p->next_line) {
		plain_line(p);
		p->next_line = p->done + line_step(p->total);
	}
}

void ctl_progress_note(struct ctl_progress *p, const char *fmt, ...)
{
	va_list ap;

	if (p->tty && p->drawn)
		fputs("\r\033[K", p->out);
	va_start(ap, fmt);
	vfprintf(p->out, fmt, ap);
	va_end(ap);
	fputc('\n', p->out);
	if (p->tty && p->drawn)
		draw(p);
	fflush(p->out);
}

void ctl_progress_end(struct ctl_progress *p)
{
	if (p->tty) {
		draw(p);
		fputc('\n', p->out);
		p->drawn = 0;
	} else if (p->done + line_step(p->total) != p->next_line || p->done == 0) {
		plain_line(p); /* the last state, unless that line just went out */
	}
	fflush(p->out);
}
