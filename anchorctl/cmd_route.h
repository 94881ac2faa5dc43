/* cmd_route.h - the route commands (cmd_route.c, PROTOCOL.md §6), dispatched by main.c. */
#ifndef ANCHORCTL_CMD_ROUTE_H
#define ANCHORCTL_CMD_ROUTE_H

#include "ctl.h"

int ctl_cmd_route_set(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv);
int ctl_cmd_route_alias(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv);
int ctl_cmd_route_remove(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv);
int ctl_cmd_route_show(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv);
int ctl_cmd_route_resolve(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv);

#endif
