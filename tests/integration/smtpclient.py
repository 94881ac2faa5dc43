"""A raw SMTP client for the tests that speak to anchor-relay line by line (what swaks
and smtp-source cannot: pipelined or malformed input, reply lines one by one, a TLS
client certificate, a connection the server should close).

    SmtpClient(port, src=None, greet=True, timeout=15)
                                 connect to 127.0.0.1:port (from src when given) and
                                 read the greeting (.greeting) unless greet is False
    .reply(lines=None)           one whole reply: its last line (code, enhanced status,
                                 text); every line kept in .lines, and appended to
                                 lines when given
    .cmd(line, lines=None)       send one command line, return its reply
    .send(data)                  send bytes (or text) as they are
    .line()                      one line as received (without CRLF)
    .starttls(ca, cert=None)     STARTTLS, then TLS trusting ca, with cert=(cert, key)
                                 as the client certificate when given
    .closed(timeout=5)           whether the server closes the connection within timeout
    .close()                     close the socket (no QUIT)

Subclasses add a test's own verbs (a whole envelope, BDAT): cmd and reply use only
the socket, never those.
"""

import re
import socket
import ssl

REPLY_LINE = re.compile(r"^\d{3}[ -]")


class SmtpClient:
    def __init__(self, port, src=None, greet=True, timeout=15):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                          source_address=(src, 0) if src else None)
        self.buf = b""
        self.lines = []
        self.greeting = self.reply() if greet else None

    def line(self):
        while b"\r\n" not in self.buf:
            data = self.s.recv(65536)
            if not data:
                raise EOFError(f"connection closed; unread: {self.buf!r}")
            self.buf += data
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode("utf-8", errors="replace")

    def reply(self, lines=None):
        self.lines = []
        while True:
            line = self.line()
            assert REPLY_LINE.match(line), f"not a reply line: {line!r}"
            self.lines.append(line)
            if lines is not None:
                lines.append(line)
            if line[3] == " ":
                return line

    def send(self, data):
        self.s.sendall(data if isinstance(data, bytes) else data.encode())

    def cmd(self, line, lines=None):
        self.s.sendall(line.encode() + b"\r\n")
        return self.reply(lines)

    def starttls(self, ca, cert=None, server_hostname="relay.test"):
        assert self.cmd("STARTTLS").startswith("220 ")
        ctx = ssl.create_default_context(cafile=str(ca))
        ctx.check_hostname = False
        if cert is not None:
            ctx.load_cert_chain(str(cert[0]), str(cert[1]))
        self.s = ctx.wrap_socket(self.s, server_hostname=server_hostname)

    def closed(self, timeout=5):
        self.s.settimeout(timeout)
        try:
            while True:
                data = self.s.recv(65536)
                if not data:
                    return True
                self.buf += data
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False

    def close(self):
        self.s.close()
