#!/usr/bin/env python3
"""port-free.py PORT [ADDRESS] - exit 0 when a TCP server could listen on ADDRESS:PORT now
(default 127.0.0.1), 1 when something else is bound there.

The probe binds as the daemons do, with SO_REUSEADDR (libmicrohttpd, libevent's
LEV_OPT_REUSEABLE, the reputation DNS zone's TCP socket): connections left in TIME_WAIT
by a daemon that was killed do not make its port taken, a listening socket does.
Used by run-stack.sh (`make run`), which keeps the configured port when this says so."""
import socket
import sys


def main():
    if len(sys.argv) not in (2, 3) or not sys.argv[1].isdigit():
        print("usage: port-free.py PORT [ADDRESS]", file=sys.stderr)
        return 2
    addr = sys.argv[2] if len(sys.argv) == 3 else "127.0.0.1"
    s = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        # Linux refuses this bind beside a listening socket, SO_REUSEADDR or not.
        s.bind((addr, int(sys.argv[1])))
    except OSError:
        return 1
    finally:
        s.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
