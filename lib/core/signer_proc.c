/*
 * signer_proc.c - start, watch, restart and stop the re-executed signer process
 * (signer_proc.h).
 */
#include "core/signer_proc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"

#define SIGNER_PROC_POLL_MS 20

struct signer_proc {
	pid_t pid;
	int fd; /* our end of the pipe: the signer exits when it closes */
	time_t started;
	struct signer_proc_opts o;
	char socket[4096];
	char self[4096];
	char **argv; /* the signer's: [0] ours, "--signer", FD, SOCKET, our arguments */
	char fdbuf[16];
};

struct signer_proc *signer_proc_new(const struct signer_proc_opts *o, int argc, char **argv,
                                    struct err *e)
{
	struct signer_proc *sp;
	ssize_t n;

	if (strlen(o->socket) >= sizeof(sp->socket)) {
		err_set(e, ERR_INPUT, "bad_config", "the signer socket path %s is too long",
		        o->socket);
		return NULL;
	}
	if ((sp = calloc(1, sizeof(*sp))) == NULL ||
	    (sp->argv = calloc((size_t)argc + 4, sizeof(char *))) == NULL) {
		free(sp);
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		return NULL;
	}
	sp->pid = -1;
	sp->fd = -1;
	sp->o = *o;
	snprintf(sp->socket, sizeof(sp->socket), "%s", o->socket);
	sp->o.socket = sp->socket;
	/* Our own binary, even when argv[0] is a bare name found on PATH. */
	n = readlink("/proc/self/exe", sp->self, sizeof(sp->self) - 1);
	if (n <= 0)
		snprintf(sp->self, sizeof(sp->self), "%s", argv[0]);
	/* Built before any fork: the child only execs (fdbuf is filled per spawn). */
	sp->argv[0] = argv[0];
	sp->argv[1] = "--signer";
	sp->argv[2] = sp->fdbuf;
	sp->argv[3] = sp->socket;
	for (int i = 1; i < argc; i++)
		sp->argv[i + 3] = argv[i];
	return sp;
}

void signer_proc_free(struct signer_proc *sp)
{
	if (sp == NULL)
		return;
	signer_proc_stop(sp);
	free(sp->argv);
	free(sp);
}

const char *signer_proc_socket(const struct signer_proc *sp)
{
	return sp->socket;
}

/* fork + exec from a possibly threaded process: the child calls only async-signal-safe
 * functions (its signal mask is cleared: the parent may block signals for sigwait). */
int signer_proc_spawn(struct signer_proc *sp, struct err *e)
{
	sigset_t none;
	int p[2];
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		return err_set(e, ERR_INTERNAL, "signer", "pipe: %s", strerror(errno));
	snprintf(sp->fdbuf, sizeof(sp->fdbuf), "%d", p[0]);
	sigemptyset(&none);
	unlink(sp->socket); /* its appearance is what says the new signer is ready */
	pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return err_set(e, ERR_INTERNAL, "signer", "fork: %s", strerror(errno));
	}
	if (pid == 0) {
		sigprocmask(SIG_SETMASK, &none, NULL);
		if (fcntl(p[0], F_SETFD, 0) < 0) /* the signer keeps its end */
			_exit(127);
		execv(sp->self, sp->argv);
		_exit(127);
	}
	close(p[0]);
	sp->pid = pid;
	sp->fd = p[1];
	sp->started = time(NULL);
	return 0;
}

int signer_proc_wait_ready(struct signer_proc *sp, struct err *e)
{
	struct timespec ts = {0, SIGNER_PROC_POLL_MS * 1000 * 1000};
	int status;

	for (int waited = 0; waited < sp->o.start_wait_ms; waited += SIGNER_PROC_POLL_MS) {
		if (access(sp->socket, F_OK) == 0)
			return 0;
		if (waitpid(sp->pid, &status, WNOHANG) == sp->pid) {
			sp->pid = -1;
			return err_set(
			    e, ERR_INPUT, "signer",
			    "the signer process exited at start (status %d): see its log "
			    "line above",
			    WIFEXITED(status) ? WEXITSTATUS(status) : -1);
		}
		nanosleep(&ts, NULL);
	}
	return err_set(e, ERR_INTERNAL, "signer", "the signer did not start within %d ms",
	               sp->o.start_wait_ms);
}

int signer_proc_reap(struct signer_proc *sp, struct err *e)
{
	int status;

	if (sp->pid <= 0 || waitpid(sp->pid, &status, WNOHANG) != sp->pid)
		return 0;
	log_err(NULL, "the signer process exited (%s %d): restarting it",
	        WIFSIGNALED(status) ? "signal" : "status",
	        WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
	close(sp->fd);
	sp->fd = -1;
	sp->pid = -1;
	if (sp->o.restart_pause_s > 0 && time(NULL) - sp->started < sp->o.restart_pause_s)
		sleep((unsigned)sp->o.restart_pause_s);
	return signer_proc_spawn(sp, e);
}

/* Waiting first lets the signer finish what it does (a few seconds at most); SIGTERM
 * only for one that does not end by itself. */
void signer_proc_stop(struct signer_proc *sp)
{
	struct timespec ts = {0, SIGNER_PROC_POLL_MS * 1000 * 1000};

	if (sp->fd >= 0)
		close(sp->fd);
	sp->fd = -1;
	if (sp->pid <= 0)
		return;
	for (int waited = 0; waited < sp->o.stop_grace_ms; waited += SIGNER_PROC_POLL_MS) {
		if (waitpid(sp->pid, NULL, WNOHANG) == sp->pid) {
			sp->pid = -1;
			return;
		}
		nanosleep(&ts, NULL);
	}
	kill(sp->pid, SIGTERM);
	waitpid(sp->pid, NULL, 0);
	sp->pid = -1;
}
