/*
 * anchorctl - the command line of Anchormail: domain owners make their root
 * and issuer offline, operators register domains with a key server, domain
 * admins issue enrollment tokens and server certificates, users enroll their
 * keys, and anybody looks certificates up.  See anchorctl(1).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "client.h"
#include "cmd.h"
#include "cmd_log.h"
#include "cmd_route.h"
#include "ctl.h"
#include "core/log.h"

static const struct ctl_cmd commands[] = {
    {"domain", "init", ctl_cmd_domain_init,
     "<domain> [--dir DIR] [--alg ALG] [--days N] [--issuer-days N]",
     "Make the domain's root (self-signed CA, name-constrained to the domain) and\n"
     "its issuer, offline: DIR/root.key (0600), DIR/root.pem, DIR/issuer.key (0600),\n"
     "DIR/issuer.pem. DIR defaults to ./<domain>; ALG is ed25519 (default), p256,\n"
     "rsa2048, rsa3072 or rsa4096; the root is valid N days (3650), the issuer 730.\n"
     "Prints the pin and the _anchor TXT record to publish. Never overwrites keys."},
    {"domain", "register", ctl_cmd_domain_register,
     "<domain> [--dir DIR] [--policy isp|corporate|groups] [--mode enforce|testing]\n"
     "       [--print-token]",
     "Operator: register the domain with the key server (POST /v1/admin/domains),\n"
     "sending DIR/root.pem, DIR/issuer.pem and DIR/issuer.key (never the root key).\n"
     "Needs the operator token (--token-file FILE or ANCHOR_OPERATOR_TOKEN). The\n"
     "domain's admin token is written to DIR/admin.token (0600); it is printed only\n"
     "with --print-token."},
    {"domain", "encryption", ctl_cmd_domain_encryption, "<domain> none|opportunistic|required",
     "Domain admin: the domain's encryption requirement, published in its domain\n"
     "object and logged (PROTOCOL.md 5.2): what relays sending it mail must do;\n"
     "none (the default), opportunistic (encrypt when the recipient has\n"
     "certificates) or required (never in the clear)."},
    {"domain", "renewal", ctl_cmd_domain_renewal,
     "<domain> [--window D] [--min-interval D] [--max-lifetime D]",
     "Domain admin: the domain's own limits on renewal by the current key\n"
     "(PUT /v1/domains/{d}/renewal): renewal opens D before expiry (--window), a\n"
     "certificate must have been current D before it is renewed (--min-interval),\n"
     "a renewed certificate lives at most D (--max-lifetime, whole days). D is a\n"
     "duration (30d, 12h, seconds) or \"default\" for the key server's own, which\n"
     "also bound the domain's: a domain can only be stricter."},
    {"key", "new", ctl_cmd_key_new, "<address> | --server <host>  [--dir DIR] [--alg ALG]",
     "Make a private key and a PKCS#10 request for an address (user) or, with\n"
     "--server, a host: DIR/<name>.key (0600) and DIR/<name>.csr. DIR defaults to\n"
     "the current directory. Never overwrites a key."},
    {"key", "enroll", ctl_cmd_key_enroll_any,
     "<address> --token TOKEN [--dir DIR]\n"
     "       | <address> --encryption [--alg x25519|p256|rsa] [--device NAME]\n"
     "         [--token TOKEN] [--dir DIR]",
     "Submit DIR/<address>.csr with the one-time enrollment token (or\n"
     "--token-file FILE). The issued certificate is checked against the returned\n"
     "chain and the local key, then written to DIR/<address>.pem and its chain\n"
     "(issuer, root) to DIR/<address>.chain.pem, and the revocation secret the\n"
     "server returns once to DIR/<address>.revoke (0600; never printed): it\n"
     "revokes the key when the key is lost. Prints the key id and fingerprint.\n"
     "With --encryption: a new encryption key for one device (default \"default\";\n"
     "--alg rsa, 3072 bits, by default) in DIR/<address>.<device>.enc.key, proved\n"
     "by the server's challenge and authorised by the token or, without one, by a\n"
     "request signed with DIR/<address>.key; the certificate goes to\n"
     "DIR/<address>.<device>.enc.pem (PROTOCOL.md 4.1)."},
    {"key", "renew", ctl_cmd_key_renew,
     "<address> | --server <host> --purpose mta|keyserver|signing  [--dir DIR]\n"
     "       [--rekey [--alg ALG]] [--if-expiring-within DURATION]",
     "Renew a certificate with a request signed by its current key (PROTOCOL.md\n"
     "5.3): no token, no admin. Reads DIR/<address>.key, .pem and .chain.pem (for\n"
     "a server, DIR/<host>.<purpose>.*, as server issue writes them) and replaces\n"
     "the certificate, its chain and, for an address, the .revoke file. With\n"
     "--rekey the new certificate is for a new key (ALG as in key new), written to\n"
     "<name>.key.new and moved over <name>.key once the certificate is saved. With\n"
     "--if-expiring-within DURATION (30d, 12h, seconds) it only renews when the\n"
     "certificate expires within DURATION, else prints why not and exits 0: run it\n"
     "from a timer. The server refuses too early (renew_too_early), too often\n"
     "(renew_too_often), and a revoked or superseded key."},
    {"key", "revoke", ctl_cmd_key_revoke,
     "<key-id> [--reason R] [--key FILE [--cert FILE] [--chain FILE] [--sign-only]\n"
     "       | --secret-file FILE | --request FILE]",
     "Revoke a key (PROTOCOL.md 9), one of three ways: with --key, a request\n"
     "signed by the key itself (its certificate: --cert, default KEY minus .key\n"
     "plus .pem; chain: --chain, default CERT.chain.pem, else the domain object);\n"
     "--sign-only prints that request instead of sending it, to keep offline, and\n"
     "--request FILE sends such a stored request later. With --secret-file, the\n"
     "revocation secret that key enroll stored in <address>.revoke (for a lost\n"
     "key). Otherwise as the domain admin (--token-file, ANCHOR_ADMIN_TOKEN or\n"
     "./<domain>/admin.token). REASON: unspecified (default), keyCompromise,\n"
     "affiliationChanged, superseded, cessationOfOperation, privilegeWithdrawn."},
    {"pin", NULL, ctl_cmd_pin, "<cert.pem>",
     "Print the pin of a certificate: sha256: and the base64 SHA-256 of its\n"
     "SubjectPublicKeyInfo, as published in the _anchor TXT record."},
    {"operator", "token", ctl_cmd_operator_token, "[--hash-only]",
     "Make an operator token: prints the token, then the configuration line\n"
     "\"operator_token_hash = <hex>\" for keyserver.conf. With --hash-only, read a\n"
     "token from standard input and print only its configuration line."},
    {"db", "migrate", ctl_cmd_db_migrate, "[--conninfo STR] [--sql-dir DIR]",
     "Apply the SQL migrations that have not been applied yet. The database and\n"
     "the migrations come from --conninfo/--sql-dir, else db_conninfo/sql_dir of\n"
     "the -c FILE, else ANCHOR_DB/ANCHOR_SQL_DIR, else dbname=anchor and\n"
     "/usr/local/share/anchor/sql."},
    {"token", "issue", ctl_cmd_token_issue,
     "<address> [--ttl SECONDS]\n"
     "       --from FILE|- --out OUT [--domain DOMAIN] [--ttl SECONDS]",
     "Domain admin: issue a one-time enrollment token for the address (60 seconds\n"
     "to 30 days; the server's default is 7 days) and print it. The admin token\n"
     "comes from --token-file, ANCHOR_ADMIN_TOKEN or ./<domain>/admin.token.\n"
     "With --from, one for every address of FILE (one a line, or CSV with an\n"
     "\"address\" column; - is stdin), all of one domain: bad lines are reported\n"
     "with their numbers, tokens are appended to OUT (0600, CSV address,token),\n"
     "and a rerun skips the addresses OUT holds. Progress on standard error; exit\n"
     "1 when any line failed."},
    {"server", "issue", ctl_cmd_server_issue,
     "<host> --purpose mta|keyserver|signing [--csr FILE] [--dir DIR]\n"
     "       [--domain DOMAIN] [--alg ALG]\n"
     "       <host> --purpose keyserver --offline [--domain-dir DIR] [--days N] ...",
     "Domain admin: get a server certificate for host. Without --csr, a key and\n"
     "request are made first as DIR/<host>.<purpose>.key and .csr. Writes\n"
     "DIR/<host>.<purpose>.pem and .chain.pem. The domain is --domain, else the\n"
     "longest parent of host that has ./<domain>/admin.token.\n"
     "--offline: the first key server's own TLS certificate, issued here from the\n"
     "domain's issuer key (--domain-dir, default ./<domain>, as domain init wrote)\n"
     "before any key server runs; valid N days (30, at most 90), in no log: replace\n"
     "it with a logged one once the key server runs (anchor-keyserver(8))."},
    {"policy", "set", ctl_cmd_policy_set,
     "<domain> isp|corporate|groups [--corporate-address ADDRESS]\n"
     "       [--mode enforce|testing]",
     "Domain admin: set the domain's encryption policy and, optionally, its mode.\n"
     "The corporate policy needs the address whose key reads all mail."},
    {"group", "set", ctl_cmd_group_set, "<group-address> <member-address>...",
     "Domain admin: set the members of a group (replacing the previous members)."},
    {"group", "delete", ctl_cmd_group_delete, "<group-address>", "Domain admin: delete a group."},
    {"group", "key", ctl_cmd_group_key,
     "create|rotate <group-address> [--alg rsa3072|p256|...] [--dir DIR]\n"
     "       | fetch <group-address> --as MEMBER [--device NAME] [--dir DIR]",
     "create|rotate (domain admin): make the group's (or the corporate address's)\n"
     "encryption key, enroll its certificate (device \"group\"), wrap the private key\n"
     "to each member's current encryption certificates and upload only the wraps;\n"
     "the clear key is written nowhere. Rotate after removing a member.\n"
     "fetch (a member): a request signed with DIR/MEMBER.key; every generation\n"
     "wrapped to MEMBER is unwrapped with DIR/MEMBER.DEVICE.enc.key and written as\n"
     "DIR/<group>.g<N>.enc.key (0600) and .pem, for mail decrypt --key."},
    {"lookup", "domain", ctl_cmd_lookup, "<domain> [--json | --pem] [--pin PIN] [--state FILE]",
     "Show the domain's policy, mode and pins, and its newest log head (verified\n"
     "and checked against the head remembered); --pem prints root and issuer."},
    {"lookup", "address", ctl_cmd_lookup, "<address> [--json | --pem] [--pin PIN] [--state FILE]",
     "Show the address's current certificates and where encryption goes under\n"
     "the domain's policy; --pem prints every usable certificate once. Revoked and\n"
     "superseded certificates are not current: they are never listed or offered\n"
     "here (an address left with none is not_found); lookup history and lookup key\n"
     "show them with their revocation. Every lookup of\n"
     "certificates verifies them: chain to the domain's root, log inclusion proof\n"
     "and signed tree head against the pins (--pin, else the domain object's), and\n"
     "consistency with the newest head remembered for the domain in the state file\n"
     "(--state, ANCHOR_STATE, default ~/.anchor/heads.json). A failure exits 1; a\n"
     "fork of the log (log_fork) is printed with both heads as evidence."},
    {"lookup", "history", ctl_cmd_lookup, "<address> [--json | --pem] [--pin PIN] [--state FILE]",
     "Show every certificate ever issued for the address, newest first."},
    {"lookup", "key", ctl_cmd_lookup, "<key-id> [--json | --pem] [--pin PIN] [--state FILE]",
     "Show the certificate with this key id (a revoked one with its revocation)."},
    {"lookup", "fingerprint", ctl_cmd_lookup,
     "<sha256:hex> [--json | --pem] [--pin PIN] [--state FILE]",
     "Show the certificate with this SHA-256 fingerprint."},
    {"mail", "encrypt", ctl_cmd_mail_encrypt,
     "<recipient>... [--in FILE] [--out FILE] [--self CERT | --from ADDRESS] "
     "[--sign --key FILE [--cert FILE] [--chain FILE]] [--state FILE]",
     "Encrypt a MIME entity as S/MIME 4.0 (PROTOCOL.md 14) to every encryption\n"
     "certificate of each recipient, looked up and checked as lookup address does\n"
     "(-s, else each domain's key server found in DNS), and to the sender's own\n"
     "(--self, --from, else --key's certificate) so the sent copy stays readable.\n"
     "AES-256-GCM AuthEnvelopedData when every key is EC, AES-256-CBC\n"
     "EnvelopedData when one is RSA. --sign signs first (multipart/signed)."},
    {"mail", "decrypt", ctl_cmd_mail_decrypt,
     "--key FILE [--cert FILE] [--in FILE] [--out FILE] [--ca FILE [--no-discover]]",
     "Decrypt an S/MIME message with your key; a signed content is verified and its\n"
     "signer's anchored identity reported (its certificate chains to its domain's\n"
     "root, is in the log, is not revoked), or checked against --ca only with\n"
     "--no-discover. Nothing is written unless everything succeeds."},
    {"mail", "sign", ctl_cmd_mail_sign,
     "--key FILE [--cert FILE] [--chain FILE] [--in FILE] [--out FILE]",
     "Sign a MIME entity as detached multipart/signed S/MIME (RSA or ECDSA keys)."},
    {"mail", "verify", ctl_cmd_mail_verify, "[--in FILE] [--out FILE] [--ca FILE [--no-discover]]",
     "Verify a signed S/MIME message and report the signer's anchored identity;\n"
     "--out writes the signed content."},
    {"audit", NULL, ctl_cmd_audit, "<domain> [--approved FILE] [--pin PIN] [--state FILE] [--json]",
     "Domain admin: audit the domain's transparency log. Fetches every entry,\n"
     "recomputes the Merkle tree and compares it with the newest signed head and\n"
     "with every other stored head (sizes up to 1000, a sample beyond; a head may\n"
     "cover several changes), each\n"
     "verified against the pins (--pin, else the domain object's); reports a\n"
     "truncated or rewritten log, lists every change with its time and name, and\n"
     "with --approved FILE (JSON lines or an array of records such as\n"
     "{\"type\": \"issued\", \"name\": ADDRESS} when a token is issued, {\"key_id\": ...},\n"
     "{\"fingerprint\": ...} or {\"type\": \"route_set\", \"name\": ...,\n"
     "\"route_sha256\": ...}; see docs/auditing.md) every issuance, route, policy or\n"
     "group change that no record approves. Exit 1 on any problem or unapproved change."},
    {"feed", NULL, ctl_cmd_feed, "<domain> [--since N] [--limit L] [--follow [--interval S]]",
     "Print the domain's change feed from cursor N (default 0), at most L entries\n"
     "(1..1000, default 100), then \"next: <cursor>\". With --follow, keep polling\n"
     "every S seconds (default 5) and print new entries as they come."},
    {"webhook", "add", ctl_cmd_webhook_add, "<domain> <url> <key-id>... [--secret-file FILE]",
     "Ask the key server to POST each event of these keys to url (https://).\n"
     "Prints the webhook's id and the secret that deletes it (or writes the\n"
     "secret to FILE, 0600)."},
    {"webhook", "delete", ctl_cmd_webhook_delete, "<domain> <id> --secret-file FILE",
     "Delete a webhook with the secret its creation returned."},
    {"route", "set", ctl_cmd_route_set,
     "<address|domain> --server HOST[:PORT[:PRIO[:WEIGHT]]]=PIN|@CERT...\n"
     "       [--ttl N]",
     "Domain admin: route mail for the address (or, for a bare domain, the\n"
     "domain's default) to a weighted set of receiving servers, each with the pin\n"
     "of the TLS certificate it must present: sha256:<b64>, or @FILE to take it\n"
     "from a PEM certificate. Port 25, priority 10 and weight 1 by default;\n"
     "--server repeats (1 to 32). TTL 60 to 86400 seconds (default 3600)."},
    {"route", "alias", ctl_cmd_route_alias,
     "<address|domain> <target> [--ttl N] [--key FILE [--cert FILE]\n"
     "       [--chain FILE]]",
     "Alias: mail for the address goes to the target address (for a domain's\n"
     "default route the target is a domain: local@old -> local@target). As the\n"
     "domain admin by default; with --key, as the address's own user: a request\n"
     "signed by the key (its current certificate: --cert, default KEY.pem; chain:\n"
     "--chain, default CERT.chain.pem, else the domain object)."},
    {"route", "remove", ctl_cmd_route_remove, "<address|domain>",
     "Domain admin: remove the address's own route (or the domain's default)."},
    {"route", "show", ctl_cmd_route_show, "<address|domain> [--pin PIN]... [--json]",
     "Show the signed route in force, verified: chain to a root whose pin is\n"
     "--pin, else one of the domain object's pins; without -s the key server and\n"
     "the pins come from DNS (ANCHOR_RESOLVER, ANCHOR_TRUST_ANCHOR). --json prints\n"
     "the verified payload."},
    {"direct", "register", ctl_cmd_direct_register,
     "<address> --host HOST --port N --pin PIN|@CERT [--ttl DURATION]\n"
     "       --key FILE [--cert FILE] [--chain FILE]",
     "As the address's own user: have senders' relays deliver its mail to HOST:PORT\n"
     "(your own daemon, over TLS with the key PIN names: sha256:<b64> or @FILE to\n"
     "take it from a PEM certificate) for DURATION (default 1h, at most the key\n"
     "server's direct_max_lifetime), falling back to the domain's servers. Signed\n"
     "by the key (its current certificate: --cert, default KEY.pem)."},
    {"direct", "show", ctl_cmd_direct_show, "<address> [--json]",
     "Show the address's direct endpoint in force (404 no_direct when none)."},
    {"direct", "remove", ctl_cmd_direct_remove,
     "<address> [--key FILE [--cert FILE] [--chain FILE]]",
     "End the address's direct endpoint: signed by its key, or as the domain admin."},
    {"route", "resolve", ctl_cmd_route_resolve, "<address> [--json] [--repeat N [--cold]]",
     "Resolve the address as a sender does: discover each domain in DNS, follow\n"
     "aliases across domains (each hop verified against its own domain's pins),\n"
     "and print every hop and the targets in the order to try. Exit 1 on loops,\n"
     "too many hops, no route, or an answer that does not verify or has expired.\n"
     "--repeat N (benchmarking) resolves N times and prints the rate; --cold\n"
     "flushes the caches before each resolution."},
    {"relay", "list", ctl_cmd_relay_list,
     "<rcpt> [--token-file FILE | --key FILE [--cert FILE] [--chain FILE]]",
     "Show the recipient's trust, block and subscribe lists on the relay (-s URL of\n"
     "its control API, else ANCHOR_RELAY_URL). As the relay's admin (--token-file,\n"
     "else ANCHOR_RELAY_TOKEN) or, with --key, as the recipient: a request signed\n"
     "by its own key (certificate: --cert, default KEY.pem; issuer and root: the\n"
     "--cert file, --chain, or CERT.chain.pem as key enroll writes it)."},
    {"relay", "trust", ctl_cmd_relay_entry,
     "add|remove <rcpt> <entry> [--token-file FILE | --key FILE ...]",
     "Add or remove an entry of the recipient's trust list: mail whose sender is\n"
     "verified as the entry (an address, or @domain / domain for the domain itself,\n"
     "not its subdomains) is delivered as trusted. Authentication as relay list."},
    {"relay", "block", ctl_cmd_relay_entry,
     "add|remove <rcpt> <entry> [--token-file FILE | --key FILE ...]",
     "Add or remove an entry of the recipient's block list: mail from the entry is\n"
     "sorted as unknown (delivered aside, never dropped), whatever else it has;\n"
     "block wins over trust. Authentication as relay list."},
    {"relay", "subscribe", ctl_cmd_relay_entry,
     "add|remove <rcpt> <entry> [--token-file FILE | --key FILE ...]",
     "Add or remove a subscription: mail verified from the entry is delivered as\n"
     "known. Authentication as relay list."},
    {"relay", "complain", ctl_cmd_relay_complain,
     "<rcpt> --spam|--not-spam <file> [--token-file FILE | --key FILE ...]",
     "Report the message in file (\"-\": standard input; bare LF become CRLF) as spam\n"
     "or not spam: the relay sends a signed report to its reputation service.\n"
     "Authentication as relay list."},
    {"relay", "fetch", ctl_cmd_relay_fetch, "<id> [<rcpt> --key FILE ...] [--json]",
     "Fetch the whole message of a partial view (its Anchor-Partial field's id=): the\n"
     "relay gets it from the sending relay, checks it against the view's SHA-256 and\n"
     "delivers it beside the view. As the relay's admin (--token-file) or as one of\n"
     "the view's recipients (--key, with rcpt)."},
    {"relay", "sign", ctl_cmd_relay_sign, "<address> <file> --password-file FILE [--json]",
     "Sign and give back: the relay (-s URL of its control API, else ANCHOR_RELAY_URL)\n"
     "signs the message in file (\"-\": standard input; bare LF become CRLF) as it\n"
     "signs submitted mail (the domain's key, and the user's when it holds it) and\n"
     "returns it without sending it; the signed message goes to standard output.\n"
     "As the submission user address (password: the first line of FILE); the\n"
     "message's From: must be that address."},
    {"relay", "status", ctl_cmd_relay_status,
     "<queue-id> [--token-file FILE | --key FILE [--cert F] [--chain F]] [--json]",
     "Each recipient of a message in the relay's queue (-s URL of its control API,\n"
     "else ANCHOR_RELAY_URL) and its state: sent, deferred-awaiting-decision with the\n"
     "receiving relay's retry window (ANCHOR-DEFER), accepted, refused and why,\n"
     "withdrawn, or pending/deferred/failed with the last reply. As the relay's\n"
     "admin (--token-file, else ANCHOR_RELAY_TOKEN), or as the user who sent it\n"
     "(--key: a request signed by its own key; only its own messages)."},
    {"relay", "withdraw", ctl_cmd_relay_withdraw,
     "<queue-id> <rcpt> [--token-file FILE | --key FILE [--cert F] [--chain F]] [--json]",
     "Give up a recipient of a message in the relay's queue (-s URL of its control\n"
     "API, else ANCHOR_RELAY_URL) that awaits the receiving relay's decision\n"
     "(ANCHOR-DEFER): the relay sends DEFER-WITHDRAW at once and the recipient ends\n"
     "withdrawn, failed without a bounce. Refused when the recipient is not awaiting\n"
     "a decision. As the relay's admin (--token-file, else ANCHOR_RELAY_TOKEN), or as\n"
     "the user who sent the message (--key)."},
    {"report", NULL, ctl_cmd_report,
     "[<subject>...] --key FILE [--cert FILE] [--chain FILE] [--category CAT]\n"
     "       [--reporter DOMAIN] [--id ID] [--observed TIME] [--verified]\n"
     "       [--evidence TEXT] [--arf FILE] [--sign-only]",
     "Send an abuse report to a reputation service (-s URL, else\n"
     "ANCHOR_REPUTATION_URL; PROTOCOL.md 11.3), signed with a key of your anchored\n"
     "domain: a user's (key enroll) or a host's (server issue --purpose signing).\n"
     "Certificate: --cert, default KEY minus .key plus .pem; chain: --chain, default\n"
     "CERT.chain.pem. Subjects are kind:value (ip, helo, domain, signer, key,\n"
     "address), 1 to 8. CAT: spam (default), phishing, malware, abuse, not-spam,\n"
     "auth-fail. The reporter is --reporter, else the domain the root is constrained\n"
     "to. The id defaults to anchorctl-<random>, the time to now; --verified says\n"
     "you verified the subjects' identity. --arf FILE takes all of these from an\n"
     "ARF (RFC 5965) message, as the service's ARF intake reads it. Prints what\n"
     "the service accepted; --sign-only prints the signed report instead."},
    {"delist", "request", ctl_cmd_delist_request,
     "<subject> (--key FILE [--cert FILE] [--chain FILE] [--domain DOMAIN]\n"
     "       [--sign-only] | --helo NAME) [--reason TEXT] [--contact TEXT]",
     "Ask a reputation service (-s URL, else ANCHOR_REPUTATION_URL; PROTOCOL.md\n"
     "11.6) to review a listing. Ownership is proven with --key: a request signed\n"
     "by a key of the anchored domain (--domain, else the root's) that holds the\n"
     "subject (domain, signer, helo, address; key: signed by that very key); or\n"
     "with --helo: sent from the subject's IP address, whose HELO name passes CSA.\n"
     "Prints the request's number, status and public trail."},
    {"delist", "show", ctl_cmd_delist_show, "<number>",
     "Show a delisting request's public trail: status, decision and events."},
    {NULL, NULL, NULL, NULL, NULL},
};

static void print_commands(FILE *out, const char *word)
{
	for (const struct ctl_cmd *c = commands; c->word != NULL; c++)
		if (word == NULL || strcmp(c->word, word) == 0)
			fprintf(out, "  anchorctl %s%s%s %s\n", c->word, c->sub != NULL ? " " : "",
			        c->sub != NULL ? c->sub : "", c->synopsis);
}

static int global_help(void)
{
	printf("usage: anchorctl [-s URL] [--cacert FILE] [--resolve HOST:PORT:ADDR] [-c FILE]\n"
	       "                 [--token-file FILE] [--json] <command> [arguments]\n\n"
	       "Commands:\n");
	print_commands(stdout, NULL);
	printf(
	    "\nGlobal options (also accepted after the command):\n"
	    "  -s URL            key server base URL (env ANCHOR_SERVER)\n"
	    "  --cacert FILE     CA certificate(s) for the key server's TLS (env ANCHOR_CACERT)\n"
	    "  --resolve HOST:PORT:ADDR\n"
	    "                    connect to ADDR for the URL's HOST:PORT; TLS still checks\n"
	    "                    HOST, as curl --resolve does\n"
	    "  -c FILE           keyserver.conf, for the db commands\n"
	    "  --token-file FILE read the operator, admin or enrollment token from FILE\n"
	    "  --json            print the server's JSON\n\n"
	    "'anchorctl <command> --help' describes one command; see anchorctl(1).\n"
	    "Exit status: 0 ok, 1 error, 2 usage error.\n");
	return CTL_OK;
}

static int word_known(const char *word)
{
	for (const struct ctl_cmd *c = commands; c->word != NULL; c++)
		if (strcmp(c->word, word) == 0)
			return 1;
	return 0;
}

/* The command named by words[0] (and words[1] for two-word commands), or NULL. */
static const struct ctl_cmd *find_command(int nwords, char **words)
{
	for (const struct ctl_cmd *c = commands; c->word != NULL; c++) {
		if (strcmp(c->word, words[0]) != 0)
			continue;
		if (c->sub == NULL)
			return c;
		if (nwords > 1 && strcmp(c->sub, words[1]) == 0)
			return c;
	}
	return NULL;
}

static int help_command(int argc, char **argv)
{
	const struct ctl_cmd *cmd;

	if (argc == 0)
		return global_help();
	cmd = find_command(argc, argv);
	if (cmd != NULL)
		return ctl_help(cmd);
	if (word_known(argv[0])) {
		printf("usage:\n");
		print_commands(stdout, argv[0]);
		return CTL_OK;
	}
	return ctl_usage(NULL, "unknown command '%s'", argv[0]);
}

static int has_help_flag(int argc, char **argv)
{
	for (int i = 0; i < argc; i++)
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
			return 1;
	return 0;
}

static int dispatch(struct ctl *ctl, int argc, char **argv)
{
	const struct ctl_cmd *cmd;

	if (strcmp(argv[0], "help") == 0)
		return help_command(argc - 1, argv + 1);
	cmd = find_command(argc, argv);
	if (cmd == NULL && !word_known(argv[0]))
		return ctl_usage(NULL, "unknown command '%s'", argv[0]);
	if (cmd == NULL) {
		if (has_help_flag(argc, argv))
			return help_command(1, argv);
		fprintf(stderr, "anchorctl: %s '%s %s'\nusage:\n",
		        argc > 1 ? "unknown command" : "incomplete command", argv[0],
		        argc > 1 ? argv[1] : "...");
		print_commands(stderr, argv[0]);
		return CTL_USAGE;
	}
	/* The command sees its last word as argv[0]. */
	if (cmd->sub != NULL)
		return cmd->run(ctl, cmd, argc - 1, argv + 1);
	return cmd->run(ctl, cmd, argc, argv);
}

static const char *env(const char *name)
{
	const char *v = getenv(name);

	return v != NULL && *v != '\0' ? v : NULL;
}

int main(int argc, char **argv)
{
	struct ctl ctl = {.server = env("ANCHOR_SERVER"), .cacert = env("ANCHOR_CACERT")};
	int version = 0;
	const struct ctl_opt opts[] = {
	    {"-s", &ctl.server, NULL},         {"--cacert", &ctl.cacert, NULL},
	    {"-c", &ctl.conf, NULL},           {"--token-file", &ctl.token_file, NULL},
	    {"--resolve", &ctl.resolve, NULL}, {"--json", NULL, &ctl.json},
	    {"--version", NULL, &version},     {NULL, NULL, NULL},
	};
	struct ctl_args a;
	struct err e = {0};
	char msg[200];
	int status;

	log_init("anchorctl", LOG_LVL_WARN, 0);
	if (ctl_args_parse(opts, argc - 1, argv + 1, 1, &a, msg, sizeof(msg)) < 0)
		return ctl_usage(NULL, "%s", msg);
	if (version) {
		printf("anchorctl 1\n");
		return CTL_OK;
	}
	if (a.help)
		return global_help();
	if (a.next >= argc - 1)
		return ctl_usage(NULL, "no command given");
	if (ctl_client_init(&e) < 0)
		return ctl_fail(&e);
	status = dispatch(&ctl, argc - 1 - a.next, argv + 1 + a.next);
	return status;
}
