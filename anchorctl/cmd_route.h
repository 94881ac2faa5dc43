/*
 * cmd_route.h - the route commands (PROTOCOL.md §6), dispatched by main.c:
 * show in cmd_route.c, set/alias/remove in cmd_route_change.c, resolve in
 * cmd_route_resolve.c; and what those files share (cmd_route.c).
 */
#ifndef ANCHORCTL_CMD_ROUTE_H
#define ANCHORCTL_CMD_ROUTE_H

#include <jansson.h>

#include "client.h"
#include "core/err.h"
#include "ctl.h"

struct discover_ctx;

int ctl_cmd_route_set(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv);
int ctl_cmd_route_alias(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv);
int ctl_cmd_route_remove(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv);
int ctl_cmd_route_show(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv);
int ctl_cmd_route_resolve(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv);

/* cmd_direct.c: a user's direct endpoint (PROTOCOL.md §6.5). */
int ctl_cmd_direct_register(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv);
int ctl_cmd_direct_show(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv);
int ctl_cmd_direct_remove(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv);

/* An address or a bare domain (the domain's default route), lowercased and checked. */
int ctl_route_name(const struct ctl_cmd *cmd, char *arg, int *is_domain, int *status);
/* The domain a route name belongs to. */
const char *ctl_route_domain_of(const char *name, int is_domain);
/* "/v1/routes/<address>" or "/v1/domains/<domain>/route"; malloc'd or NULL. */
char *ctl_route_path(const char *name, int is_domain);
/* After a change: show the server's signed answer, checked against the domain's pins. */
int ctl_route_show_answer(const struct ctl *ctl, const struct ctl_client *c, const char *name,
                          int is_domain, const json_t *answer);
/* Discovery as anchorctl does it: --cacert and the ANCHOR_* environment. */
struct discover_ctx *ctl_route_discovery(const struct ctl *ctl, struct err *e);

#endif
