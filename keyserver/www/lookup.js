// lookup.js - the key server's public lookup page (PROTOCOL.md §3.6).
//
// Fetches GET /v1/addresses/{a} and GET /v1/domains/{d} from this origin and checks
// the answer here, in the browser, with WebCrypto: the root against the domain's pins,
// root -> issuer -> certificate signatures, each certificate's fingerprint, name and
// validity, the signed tree head (issuer-signed JWS) and each certificate's log entry
// and RFC 9162 inclusion proof.  Every check is a row of the result: "ok", "FAILED",
// or "not checked" with the reason (an algorithm this browser lacks, or something a
// page cannot know).  Any FAILED row refuses the whole answer.
//
// The address may be given as the URL fragment (/lookup#alice@example.com) or typed.
'use strict';

(function () {
	const enc = new TextEncoder();

	// ------------------------------------------------------------------ bytes

	function b64decode(s) {
		const bin = atob(s);
		const out = new Uint8Array(bin.length);
		for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
		return out;
	}

	function b64urlDecode(s) {
		if (!/^[A-Za-z0-9_-]*$/.test(s)) throw new Error('not base64url');
		s = s.replace(/-/g, '+').replace(/_/g, '/');
		while (s.length % 4) s += '=';
		return b64decode(s);
	}

	function b64encode(bytes) {
		let bin = '';
		for (const b of bytes) bin += String.fromCharCode(b);
		return btoa(bin);
	}

	function hex(bytes) {
		return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
	}

	function equalBytes(a, b) {
		if (a.length !== b.length) return false;
		for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
		return true;
	}

	function concat(...parts) {
		const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
		let o = 0;
		for (const p of parts) {
			out.set(p, o);
			o += p.length;
		}
		return out;
	}

	async function sha256(bytes) {
		return new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
	}

	function pemToDer(pem) {
		const m = /-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+)-----END CERTIFICATE-----/.exec(
			pem || '');
		if (!m) throw new Error('not a PEM certificate');
		return b64decode(m[1].replace(/\s+/g, ''));
	}

	// ------------------------------------------------------------------ DER

	// One TLV at p: {tag, start, body, end}; lengths of at most 3 octets (16 MB).
	function tlv(b, p, limit) {
		if (p + 2 > limit) throw new Error('DER: truncated');
		const tag = b[p];
		let len = b[p + 1];
		let q = p + 2;
		if (len & 0x80) {
			const n = len & 0x7f;
			if (n < 1 || n > 3 || q + n > limit) throw new Error('DER: bad length');
			len = 0;
			for (let i = 0; i < n; i++) len = len * 256 + b[q++];
		}
		if (q + len > limit) throw new Error('DER: truncated');
		return {tag: tag, start: p, body: q, end: q + len};
	}

	function children(b, t) {
		const out = [];
		for (let p = t.body; p < t.end;) {
			const c = tlv(b, p, t.end);
			out.push(c);
			p = c.end;
		}
		return out;
	}

	function expect(t, tag, what) {
		if (!t || t.tag !== tag) throw new Error('DER: ' + what + ' expected');
		return t;
	}

	function oid(b, t) {
		const v = b.subarray(t.body, t.end);
		const parts = [Math.floor(v[0] / 40), v[0] % 40];
		let n = 0;
		for (let i = 1; i < v.length; i++) {
			n = n * 128 + (v[i] & 0x7f);
			if (!(v[i] & 0x80)) {
				parts.push(n);
				n = 0;
			}
		}
		return parts.join('.');
	}

	function derTime(b, t) {
		const s = new TextDecoder().decode(b.subarray(t.body, t.end));
		let m;
		if (t.tag === 0x17 && (m = /^(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)Z$/.exec(s)))
			m[1] = (Number(m[1]) < 50 ? '20' : '19') + m[1];
		else if (t.tag !== 0x18 || !(m = /^(\d{4})(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)Z$/.exec(s)))
			throw new Error('DER: bad time');
		return new Date(Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]));
	}

	// The parts of a certificate the checks need.
	function parseCert(der) {
		const top = expect(tlv(der, 0, der.length), 0x30, 'certificate');
		if (top.end !== der.length) throw new Error('DER: trailing bytes');
		const [tbs, sigAlg, sigVal] = children(der, top);
		expect(tbs, 0x30, 'tbsCertificate');
		expect(sigVal, 0x03, 'signature');
		const f = children(der, tbs);
		let i = f[0] && f[0].tag === 0xa0 ? 1 : 0;
		const issuer = f[i + 2], validity = f[i + 3], subject = f[i + 4];
		const spki = expect(f[i + 5], 0x30, 'subjectPublicKeyInfo');
		const [nb, na] = children(der, expect(validity, 0x30, 'validity'));
		const spkiAlg = children(der, children(der, spki)[0]);
		const cert = {
			der: der,
			tbs: der.subarray(tbs.start, tbs.end),
			sigAlg: oid(der, children(der, expect(sigAlg, 0x30, 'algorithm'))[0]),
			sig: der.subarray(sigVal.body + 1, sigVal.end),
			issuer: der.subarray(issuer.start, issuer.end),
			subject: der.subarray(subject.start, subject.end),
			notBefore: derTime(der, nb),
			notAfter: derTime(der, na),
			spki: der.subarray(spki.start, spki.end),
			keyAlg: oid(der, spkiAlg[0]),
			curve: spkiAlg[1] && spkiAlg[1].tag === 0x06 ? oid(der, spkiAlg[1]) : null,
			emails: [],
			dnsNames: [],
		};
		for (const ext of f.slice(i + 6)) {
			if (ext.tag === 0xa3) readExtensions(der, children(der, ext)[0], cert);
		}
		return cert;
	}

	// An address in the key server's canonical form (PROTOCOL.md §1.3): the local part
	// NFC and lowercase, the domain in A-labels (the browser's IDNA, UTS #46).
	function canonAddress(a) {
		const at = a.lastIndexOf('@');
		let host = a.slice(at + 1).toLowerCase();
		if (at <= 0) return a.toLowerCase();
		if (/^[^/\\:?#@\s]+$/.test(host)) {
			try {
				host = new URL('http://' + host + '/').hostname;
			} catch (e) {
				// not a host name: the key server's answer says so
			}
		}
		return a.slice(0, at).normalize('NFC').toLowerCase() + '@' + host;
	}

	// The address of an otherName id-on-SmtpUTF8Mailbox (RFC 9598: a UTF8String, the
	// domain in U-labels), canonical; null for another otherName or a malformed one.
	function smtpUtf8Mailbox(der, n) {
		try {
			const [type, value] = children(der, n);
			if (!type || !value || oid(der, type) !== '1.3.6.1.5.5.7.8.9') return null;
			const s = children(der, value)[0];
			if (!s || s.tag !== 0x0c) return null;
			const text = new TextDecoder('utf-8', {fatal: true}).decode(
				der.subarray(s.body, s.end));
			return text.includes('\0') ? null : canonAddress(text);
		} catch (e) {
			return null;
		}
	}

	function readExtensions(der, seq, cert) {
		for (const e of children(der, expect(seq, 0x30, 'extensions'))) {
			const parts = children(der, e);
			if (oid(der, parts[0]) !== '2.5.29.17') continue; // subjectAltName
			const os = expect(parts[parts.length - 1], 0x04, 'extension value');
			const names = tlv(der, os.body, os.end);
			for (const n of children(der, expect(names, 0x30, 'GeneralNames'))) {
				const v = new TextDecoder().decode(der.subarray(n.body, n.end));
				if (n.tag === 0x81) cert.emails.push(v);
				else if (n.tag === 0x82) cert.dnsNames.push(v);
				else if (n.tag === 0xa0 && smtpUtf8Mailbox(der, n)) {
					cert.emails.push(smtpUtf8Mailbox(der, n));
				}
			}
		}
	}

	// ------------------------------------------------------------------ signatures

	const HASHES = {
		'1.2.840.10045.4.3.2': 'SHA-256', '1.2.840.10045.4.3.3': 'SHA-384',
		'1.2.840.10045.4.3.4': 'SHA-512', '1.2.840.113549.1.1.11': 'SHA-256',
		'1.2.840.113549.1.1.12': 'SHA-384', '1.2.840.113549.1.1.13': 'SHA-512',
	};
	const CURVES = {'1.2.840.10045.3.1.7': ['P-256', 32], '1.3.132.0.34': ['P-384', 48]};

	// The WebCrypto algorithm of key (an SPKI's algorithm) for a signature with hash.
	function keyAlgorithm(cert, hash) {
		if (cert.keyAlg === '1.3.101.112') return {name: 'Ed25519'};
		if (cert.keyAlg === '1.2.840.113549.1.1.1')
			return {name: 'RSASSA-PKCS1-v1_5', hash: hash};
		if (cert.keyAlg === '1.2.840.10045.2.1' && CURVES[cert.curve])
			return {name: 'ECDSA', namedCurve: CURVES[cert.curve][0], hash: hash,
				size: CURVES[cert.curve][1]};
		return null;
	}

	// DER SEQUENCE {r, s} -> r || s of size octets each, as WebCrypto wants ECDSA.
	function ecdsaRaw(der, size) {
		const seq = expect(tlv(der, 0, der.length), 0x30, 'ECDSA signature');
		const out = new Uint8Array(2 * size);
		children(der, seq).forEach((t, k) => {
			let v = der.subarray(expect(t, 0x02, 'INTEGER').body, t.end);
			while (v.length > size && v[0] === 0) v = v.subarray(1);
			if (v.length > size) throw new Error('ECDSA: integer too long');
			out.set(v, (k + 1) * size - v.length);
		});
		return out;
	}

	class Unsupported extends Error {}

	// Verify sig over data with signer's key: true, false, or throws Unsupported.
	async function verifyWith(signer, alg, sig, data) {
		let key;
		try {
			key = await crypto.subtle.importKey('spki', signer.spki, alg, false, ['verify']);
		} catch (e) {
			throw new Unsupported('this browser cannot use a ' + alg.name +
				(alg.namedCurve ? ' ' + alg.namedCurve : '') + ' key (' + e.name + ')');
		}
		return crypto.subtle.verify(alg, key, sig, data);
	}

	// Is cert's signature made by signer's key?
	async function certSignedBy(cert, signer) {
		const ed = cert.sigAlg === '1.3.101.112';
		if (!ed && !HASHES[cert.sigAlg])
			throw new Unsupported('signature algorithm ' + cert.sigAlg + ' is not known here');
		const alg = keyAlgorithm(signer, ed ? undefined : HASHES[cert.sigAlg]);
		if (!alg || (ed !== (alg.name === 'Ed25519')))
			throw new Unsupported('key algorithm ' + signer.keyAlg + ' is not known here');
		const sig = alg.name === 'ECDSA' ? ecdsaRaw(cert.sig, alg.size) : cert.sig;
		return verifyWith(signer, alg, sig, cert.tbs);
	}

	// A flattened JWS (PROTOCOL.md §2.1) signed by signer: its payload, or an Error.
	async function jwsVerify(jws, signer) {
		const header = JSON.parse(new TextDecoder().decode(b64urlDecode(jws.protected)));
		const sig = b64urlDecode(jws.signature);
		const algs = {EdDSA: [undefined, 'Ed25519'], ES256: ['SHA-256', 'ECDSA'],
			RS256: ['SHA-256', 'RSASSA-PKCS1-v1_5']};
		const want = algs[header.alg];
		if (!want) throw new Unsupported('JWS algorithm ' + header.alg + ' is not known here');
		const alg = keyAlgorithm(signer, want[0]);
		if (!alg || alg.name !== want[1])
			throw new Error('the JWS algorithm ' + header.alg + ' does not fit the issuer key');
		const data = enc.encode(jws.protected + '.' + jws.payload);
		return {header: header, ok: await verifyWith(signer, alg, sig, data),
			payload: JSON.parse(new TextDecoder().decode(b64urlDecode(jws.payload)))};
	}

	// ------------------------------------------------------------------ Merkle (RFC 9162)

	async function nodeHash(l, r) {
		return sha256(concat(Uint8Array.of(1), l, r));
	}

	// RFC 9162 §2.1.3.2: the root that proof leads to from leafHash at index of size.
	async function inclusionRoot(index, size, leafHash, proof) {
		if (!(index >= 0 && index < size)) throw new Error('index outside the tree');
		let fn = index, sn = size - 1, r = leafHash;
		for (const p of proof) {
			if (sn === 0) throw new Error('proof longer than the tree');
			if (fn % 2 === 1 || fn === sn) {
				r = await nodeHash(p, r);
				if (fn % 2 === 0)
					while (fn % 2 === 0 && fn !== 0) {
						fn = Math.floor(fn / 2);
						sn = Math.floor(sn / 2);
					}
			} else {
				r = await nodeHash(r, p);
			}
			fn = Math.floor(fn / 2);
			sn = Math.floor(sn / 2);
		}
		if (sn !== 0) throw new Error('proof shorter than the tree');
		return r;
	}

	// ------------------------------------------------------------------ checks

	// A list of rows {what, state: ok|failed|unchecked, detail}.
	class Checks {
		constructor(title) {
			this.title = title;
			this.rows = [];
		}

		add(what, state, detail) {
			this.rows.push({what: what, state: state, detail: detail || ''});
		}

		// Run fn; true -> ok, false -> failed(detail), Unsupported -> unchecked.
		async run(what, fn, okDetail, badDetail) {
			try {
				const ok = await fn();
				this.add(what, ok ? 'ok' : 'failed', ok ? okDetail : badDetail);
				return ok;
			} catch (e) {
				this.add(what, e instanceof Unsupported ? 'unchecked' : 'failed', e.message);
				return false;
			}
		}
	}

	async function checkDomain(dom, head, out) {
		const c = new Checks('Domain ' + dom.domain);
		out.push(c);
		const root = parseCert(pemToDer(dom.root));
		const issuer = parseCert(pemToDer(dom.issuer));
		const pin = 'sha256:' + b64encode(await sha256(root.spki));
		c.add('root key matches a pin of the domain',
			(dom.pins || []).includes(pin) ? 'ok' : 'failed',
			pin + ' (the pins came from this key server; compare them with the ' +
			'domain\'s DNS record: dig TXT _anchor.' + dom.domain + ')');
		await c.run('root is self-signed', () => certSignedBy(root, root));
		await c.run('issuer is signed by the root', async () =>
			equalBytes(issuer.issuer, root.subject) && certSignedBy(issuer, root));
		const th = await checkHead(c, dom, head, root, issuer);
		return {root: root, issuer: issuer, head: th};
	}

	// The tree head: signed by the domain's issuer (x5c [issuer, root]), for this domain.
	async function checkHead(c, dom, head, root, issuer) {
		// Lookups carry the head's flattened JWS as a JSON text (§10.3); the compact
		// serialization means the same (§2.1).
		if (typeof head === 'string') {
			const p = head.split('.');
			try {
				head = p.length === 3 ? {protected: p[0], payload: p[1], signature: p[2]}
					: JSON.parse(head);
			} catch (e) {
				head = null;
			}
		}
		if (!head || typeof head !== 'object') {
			c.add('signed tree head', 'failed', 'the answer carries no tree head');
			return null;
		}
		let payload = null;
		await c.run('tree head is signed by the issuer', async () => {
			const x5c = (JSON.parse(new TextDecoder().decode(
				b64urlDecode(head.protected))).x5c || []).map(b64decode);
			if (x5c.length !== 2 || !equalBytes(x5c[0], issuer.der) ||
			    !equalBytes(x5c[1], root.der))
				throw new Error('its x5c is not [issuer, root] of the domain');
			const r = await jwsVerify(head, issuer);
			if (r.header.typ !== 'anchor-tree-head+jws' || r.payload.type !== 'anchor-tree-head' ||
			    r.payload.domain !== dom.domain)
				throw new Error('not a tree head of ' + dom.domain);
			if (r.ok) payload = r.payload;
			return r.ok;
		}, '', 'the signature does not verify');
		if (payload)
			c.add('tree head', 'ok', 'size ' + payload.size + ', ' + payload.timestamp);
		return payload;
	}

	async function checkCert(obj, address, d, out) {
		const c = new Checks('Certificate ' + obj.key_id);
		out.push(c);
		let cert;
		try {
			cert = parseCert(pemToDer(obj.certificate));
		} catch (e) {
			c.add('certificate is readable', 'failed', e.message);
			return;
		}
		const fp = 'sha256:' + hex(await sha256(cert.der));
		c.add('fingerprint', fp === obj.fingerprint ? 'ok' : 'failed', fp);
		await c.run('signed by the domain\'s issuer', async () =>
			equalBytes(cert.issuer, d.issuer.subject) && certSignedBy(cert, d.issuer));
		const names = cert.emails.map((e) => e.toLowerCase());
		c.add('names the address', obj.name === address && names.includes(address) ? 'ok'
			: 'failed', 'subjectAltName: ' + (cert.emails.join(', ') || 'none'));
		const now = new Date();
		c.add('valid now', cert.notBefore <= now && now <= cert.notAfter ? 'ok' : 'failed',
			cert.notBefore.toISOString() + ' to ' + cert.notAfter.toISOString());
		await checkLog(c, obj, fp, d);
	}

	// The log entry that recorded the issuance, and its inclusion proof to the head.
	async function checkLog(c, obj, fp, d) {
		const log = obj.log;
		if (!log || typeof log.leaf !== 'string' || !Array.isArray(log.proof)) {
			c.add('log entry', 'failed', 'the certificate carries no log proof');
			return;
		}
		let leaf;
		try {
			leaf = JSON.parse(log.leaf);
		} catch (e) {
			c.add('log entry', 'failed', 'the leaf is not JSON');
			return;
		}
		const subject = hex(await sha256(enc.encode(log.salt + ':' + obj.name)));
		const same = leaf.type === 'issued' && leaf.key_id === obj.key_id &&
			leaf.fingerprint === fp && leaf.subject === subject && leaf.seq === log.seq &&
			leaf.domain === d.domain;
		c.add('log entry records this issuance', same ? 'ok' : 'failed',
			'entry ' + log.seq + ': ' + log.leaf);
		await c.run('inclusion proof leads to the signed head', async () => {
			if (!d.head) throw new Error('no verified tree head');
			if (log.tree_size !== d.head.size)
				throw new Error('the proof is for size ' + log.tree_size + ', the head ' +
					d.head.size);
			const leafHash = await sha256(concat(Uint8Array.of(0), enc.encode(log.leaf)));
			const root = await inclusionRoot(log.seq, log.tree_size, leafHash,
				log.proof.map(b64decode));
			return equalBytes(root, b64decode(d.head.root_hash));
		}, 'to the root of size ' + (d.head ? d.head.size : '?'),
		'the proof leads to another root');
	}

	// What this page does not check, whatever the answer.
	function notChecked(out) {
		const c = new Checks('Not checked in this browser');
		c.add('the pin against DNS', 'unchecked',
			'a web page cannot read the _anchor TXT record; the pins shown came from this ' +
			'key server');
		c.add('name constraints, key usage', 'unchecked',
			'the root\'s nameConstraints and the certificates\' key usages are not ' +
			'interpreted here (anchorctl and openssl verify do)');
		c.add('revocation', 'unchecked', 'the CRL is not fetched; the certificates listed ' +
			'are those the key server calls current');
		c.add('consistency with earlier heads', 'unchecked', 'this page remembers no earlier ' +
			'head of the domain; anchorctl audit does');
		out.push(c);
	}

	async function getJson(path) {
		const r = await fetch(path, {credentials: 'omit', cache: 'no-store',
			redirect: 'error'});
		let body = null;
		try {
			body = await r.json();
		} catch (e) {
			throw new Error(path + ': answer is not JSON (HTTP ' + r.status + ')');
		}
		if (!r.ok)
			throw new Error((body && body.message) || (path + ': HTTP ' + r.status));
		return body;
	}

	async function lookup(address) {
		const out = [];
		const ans = await getJson('/v1/addresses/' + encodeURIComponent(address));
		const dom = await getJson('/v1/domains/' + encodeURIComponent(ans.domain));
		if (ans.address !== address || dom.domain !== ans.domain ||
		    address.slice(address.lastIndexOf('@') + 1) !== dom.domain)
			throw new Error('the answer is about another address or domain');
		const d = await checkDomain(dom, ans.tree_head, out);
		d.domain = dom.domain;
		// The address's own certificates, then those an encrypting sender uses (the same
		// ones, or the corporate or group address's: PROTOCOL.md §3.3).
		const encr = ans.encryption || {};
		const lists = [[ans.certificates || [], address],
			[encr.certificates || [], encr.address]];
		const seen = new Set();
		for (const [list, name] of lists) {
			for (const obj of list) {
				if (seen.has(obj.key_id)) continue;
				seen.add(obj.key_id);
				await checkCert(obj, name, d, out);
			}
		}
		if (seen.size === 0)
			throw new Error('the answer lists no certificate');
		notChecked(out);
		return {ans: ans, checks: out};
	}

	// ------------------------------------------------------------------ display

	function el(tag, cls, text) {
		const e = document.createElement(tag);
		if (cls) e.className = cls;
		if (text !== undefined) e.textContent = text;
		return e;
	}

	function verdictOf(checks) {
		const states = checks.slice(0, -1).flatMap((c) => c.rows.map((r) => r.state));
		if (states.includes('failed')) return 'refused';
		return states.includes('unchecked') ? 'partial' : 'verified';
	}

	const VERDICT_TEXT = {
		verified: 'Verified: every check below passed in this browser.',
		partial: 'Partly verified: nothing failed, but this browser could not run every check.',
		refused: 'REFUSED: the key server\'s answer failed a check. Do not use these keys.',
	};

	function show(result, address, res, error) {
		result.replaceChildren();
		const verdict = error ? 'error' : verdictOf(res.checks);
		const v = el('p', 'verdict ' + verdict,
			error ? 'Lookup failed: ' + error.message : VERDICT_TEXT[verdict]);
		v.id = 'verdict';
		result.append(el('h2', '', address), v);
		result.dataset.state = 'done';
		result.dataset.verdict = verdict;
		if (error) return;
		for (const c of res.checks) {
			result.append(el('h3', '', c.title));
			const t = el('table');
			for (const r of c.rows) {
				const tr = el('tr');
				tr.append(el('td', '', r.what),
					el('td', r.state, {ok: 'ok', failed: 'FAILED', unchecked: 'not checked'}[r.state]),
					el('td', 'detail', r.detail));
				t.append(tr);
			}
			result.append(t);
		}
		for (const obj of res.ans.certificates || []) {
			result.append(el('h3', '', obj.key_id + ' (' + obj.algorithm + ', ' +
				obj.status + ')'), el('pre', '', obj.certificate));
		}
	}

	async function run(address) {
		const result = document.getElementById('result');
		address = canonAddress(address.trim());
		result.dataset.state = 'running';
		result.replaceChildren(el('p', '', 'Checking ' + address + '…'));
		try {
			show(result, address, await lookup(address), null);
		} catch (e) {
			show(result, address, null, e);
		}
	}

	document.addEventListener('DOMContentLoaded', () => {
		const form = document.getElementById('form');
		const input = document.getElementById('address');
		form.addEventListener('submit', (ev) => {
			ev.preventDefault();
			history.replaceState(null, '', '#' + encodeURIComponent(input.value.trim()));
			run(input.value);
		});
		const a = decodeURIComponent(location.hash.slice(1));
		if (a) {
			input.value = a;
			run(a);
		}
	});
})();
