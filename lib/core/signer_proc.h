/*
 * signer_proc.h - the signer process as its parent sees it: this very binary,
 * executed again as "SELF --signer FD SOCKET ARGS..." (ARGS are the parent's own
 * arguments), which serves frames on the UNIX socket SOCKET and exits when the
 * read end FD of a pipe from its parent reaches end of file.
 *
 * Re-executed rather than forked and left running: the child starts from a clean
 * image, never from a fork of a threaded process, and holds no copy of the parent's
 * memory; the pipe ends it however the parent dies.  The daemons keep what is theirs
 * (where the socket lives, their settings, their signal handling) and call this for
 * the start, the wait until ready, the restart after a death and the stop.
 */
#ifndef ANCHOR_SIGNER_PROC_H
#define ANCHOR_SIGNER_PROC_H

#include "core/err.h"

struct signer_proc;

struct signer_proc_opts {
	const char *socket;  /* the path the signer creates once it is ready */
	int start_wait_ms;   /* signer_proc_wait_ready gives up after this */
	int stop_grace_ms;   /* signer_proc_stop lets it finish this long; 0: SIGTERM at once */
	int restart_pause_s; /* a signer that died within this of its start waits this long
	                      * before the restart (one that dies at start is not restarted
	                      * in a tight loop); 0: no pause */
};

/* Prepare (nothing is started): argv is main's, kept by pointer for the process's life. */
struct signer_proc *signer_proc_new(const struct signer_proc_opts *o, int argc, char **argv,
                                    struct err *e);
/* Stops the signer if it runs (signer_proc_stop), then frees; accepts NULL. */
void signer_proc_free(struct signer_proc *sp);

/* The socket path the signer serves (for the daemon's client). */
const char *signer_proc_socket(const struct signer_proc *sp);

/* Start the signer (fork + exec); safe from a threaded process. */
int signer_proc_spawn(struct signer_proc *sp, struct err *e);
/* Wait until the signer's socket exists; ERR_INPUT when it exited at start (its own
 * log line says why), ERR_INTERNAL when it did not start in time. */
int signer_proc_wait_ready(struct signer_proc *sp, struct err *e);
/* On SIGCHLD: when the signer has died, log it and start another (the daemon's client
 * reconnects).  0 when nothing died or the restart began, -1 when it could not. */
int signer_proc_reap(struct signer_proc *sp, struct err *e);
/* Close the pipe so that the signer exits by itself, then make sure it is gone. */
void signer_proc_stop(struct signer_proc *sp);

#endif
