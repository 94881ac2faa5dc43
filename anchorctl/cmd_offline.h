/* cmd_offline.h - server issue --offline (cmd_offline.c): the key server's own TLS
 * certificate, issued before any key server runs. */
#ifndef ANCHORCTL_CMD_OFFLINE_H
#define ANCHORCTL_CMD_OFFLINE_H

#include "ctl.h"

struct ctl_offline_issue {
	const char *host;       /* the key server's name, under domain */
	const char *domain;     /* NULL: the longest parent of host with <domain>/issuer.key */
	const char *domain_dir; /* NULL: ./<domain>, where domain init wrote */
	const char *purpose;    /* "keyserver" only */
	const char *csr_file;   /* NULL: a new key and CSR in dir */
	const char *dir;
	const char *alg;
	int days;
};

int ctl_server_issue_offline(struct ctl *ctl, const struct ctl_cmd *cmd,
                             const struct ctl_offline_issue *r);

#endif
