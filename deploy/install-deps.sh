#!/usr/bin/env bash
# install-deps.sh - install the Debian 12 packages Anchormail needs to build,
# run and test.  Idempotent and fast: dpkg-query decides what is missing and
# apt-get runs only when something is.  As a non-root user it prints what to
# install and fails.
#
# The packages bring system services (nginx, nsd, PostgreSQL's "main"
# cluster, Postfix, OpenDKIM) that Anchormail does not use: it runs its own
# instances on private sockets and random ports.  Postfix is preseeded to
# "No configuration" so that installing it writes no main.cf and never
# listens on port 25.  When this script installs packages it
# keeps those services from starting (policy-rc.d without systemd,
# `systemctl disable --now` with it) so that they hold no ports.
set -euo pipefail

PACKAGES=(
	# build
	build-essential pkg-config make git clang libclang-rt-14-dev
	# libraries
	libldns-dev libssl-dev libmicrohttpd-dev libgnutls28-dev libpq-dev libjansson-dev
	libcurl4-openssl-dev libevent-dev libcmocka-dev libcrypt-dev
	# UTF-8 addresses (docs/PROTOCOL.md "Names"): IDNA2008 A-/U-labels, NFC and case mapping
	libidn2-dev libunistring-dev
	# runtime tools
	openssl ca-certificates curl ldnsutils postgresql util-linux procps iproute2
	# the DNS root's trust anchor, /usr/share/dns/root.key: DNSSEC validation from the root
	dns-root-data
	# tests
	python3 python3-pytest python3-jwcrypto python3-dkim python3-cryptography
	# tests/run-integration.sh runs the integration tests on pytest-xdist workers
	python3-pytest-xdist
	python3-requests knot-dnsutils nsd bind9-utils nginx-light postgresql-client
	# swaks speaks STARTTLS and TLS-wrapped AUTH only through Net::SSLeay, which
	# Debian merely recommends (tests/integration/toolcheck.py checks each feature)
	swaks libnet-ssleay-perl
	# relay tests and bench: smtp-sink/smtp-source and throwaway Postfix instances,
	# OpenDKIM as a milter and its tools, hashcash stamps, a Python SMTP server
	postfix opendkim opendkim-tools hashcash python3-aiosmtpd
	# ACME: Debian's certbot against the key server, its RFC 2136 plugin for dns-01,
	# and Knot as the DNS server it updates (tests/integration/test_acme_certbot.py)
	certbot python3-certbot-dns-rfc2136 knot
	# the lookup page (GET /lookup) in a headless browser: tests/integration/test_lookup_page.py
	chromium
	# monitoring: promtool checks deploy/prometheus/ (tests/integration/test_monitoring.py)
	prometheus
	# TLS scans of every listener (tests/integration/test_tls_policy.py): testssl.sh
	# and what it runs (hexdump from bsdextrautils, dig from bind9-dnsutils, procps)
	testssl.sh bsdextrautils bind9-dnsutils
	# S/MIME interop with an RSA key (tests/integration/test_anchorctl_mail.py): gpgsm,
	# and gnupg (its Recommends) for gpg-agent, which holds gpgsm's private keys
	gpgsm gnupg gpg-agent
	# bench and lint
	wrk cppcheck clang-tidy clang-format dnsperf rbldnsd
)

# Services the packages may start; we never need the system instances.
SERVICES=(nginx nsd knot postgresql rbldnsd postfix opendkim)

# One dpkg-query for all packages; a package it does not know prints no line.
missing_packages() {
	local -A installed=()
	local status pkg p
	while read -r status pkg; do
		[[ $status == ii ]] && installed[${pkg%%:*}]=1
	done < <(dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' "${PACKAGES[@]}" 2>/dev/null || true)
	for p in "${PACKAGES[@]}"; do
		[[ -n ${installed[$p]:-} ]] || echo "$p"
	done
}

have_systemd() {
	[[ -d /run/systemd/system ]] && pidof systemd >/dev/null 2>&1
}

# Without systemd, Debian maintainer scripts start services through
# invoke-rc.d, which asks /usr/sbin/policy-rc.d first; exit 101 = "don't".
POLICY=/usr/sbin/policy-rc.d
policy_created=0

block_service_starts() {
	have_systemd && return 0
	[[ -e $POLICY ]] && return 0
	printf '#!/bin/sh\n# temporary, from anchormail deploy/install-deps.sh\nexit 101\n' >"$POLICY"
	chmod 0755 "$POLICY"
	policy_created=1
}

unblock_service_starts() {
	if ((policy_created)); then
		rm -f "$POLICY"
		policy_created=0
	fi
}

# Stop whatever the packages did start anyway.
quiet_system_services() {
	local s
	if have_systemd; then
		for s in "${SERVICES[@]}"; do
			systemctl disable --now "$s" >/dev/null 2>&1 || true
		done
		return 0
	fi
	for s in nginx nsd opendkim; do
		if pidof "$s" >/dev/null 2>&1 && [[ -x /etc/init.d/$s ]]; then
			echo "install-deps: stopping the system $s service (not needed)"
			"/etc/init.d/$s" stop >/dev/null 2>&1 || true
		fi
	done
	quiet_system_postfix
	if command -v pg_lsclusters >/dev/null 2>&1; then
		pg_lsclusters --no-header 2>/dev/null | while read -r ver name _port status _rest; do
			if [[ $status == online* ]]; then
				echo "install-deps: stopping the system PostgreSQL cluster $ver/$name (not needed)"
				pg_ctlcluster "$ver" "$name" stop || true
			fi
		done
	fi
}

# The system Postfix (config /etc/postfix), when something started it: the
# tests run their own instances (postfix -c DIR) and need port 25 free of it.
quiet_system_postfix() {
	command -v postfix >/dev/null 2>&1 || return 0
	if postfix status >/dev/null 2>&1; then
		echo "install-deps: stopping the system Postfix (not needed)"
		postfix stop >/dev/null 2>&1 || true
	fi
}

# Answer Postfix's debconf question before apt-get asks it.
preseed_postfix() {
	command -v debconf-set-selections >/dev/null 2>&1 || return 0
	echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
}

main() {
	local missing
	mapfile -t missing < <(missing_packages)
	if ((${#missing[@]} == 0)); then
		echo "install-deps: all ${#PACKAGES[@]} packages present"
		((EUID == 0)) && quiet_system_postfix
		return 0
	fi
	if ((EUID != 0)); then
		echo "install-deps: missing packages: ${missing[*]}" >&2
		echo "install-deps: as root run: apt-get install ${missing[*]}" >&2
		return 1
	fi
	echo "install-deps: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	trap unblock_service_starts EXIT
	block_service_starts
	preseed_postfix
	apt-get update -q
	apt-get install -y -q --no-install-recommends "${missing[@]}"
	unblock_service_starts
	trap - EXIT
	quiet_system_services

	mapfile -t missing < <(missing_packages)
	if ((${#missing[@]} != 0)); then
		echo "install-deps: still missing after apt-get: ${missing[*]}" >&2
		return 1
	fi
	echo "install-deps: done"
}

main "$@"
