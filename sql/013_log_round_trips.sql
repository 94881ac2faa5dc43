-- 013: the key server's batches of changes and its head rounds open in one round trip
-- each (keyserver/group.c, keyserver/publish.c); most of PostgreSQL's time per log append
-- was spent per statement received, not in the statements themselves.
--
-- Both functions are VOLATILE PL/pgSQL: under READ COMMITTED each statement inside
-- takes a fresh snapshot, so what is read after the lock is read as of after the lock
-- was granted (one statement with the lock in a subquery would read an older snapshot).

-- A batch of changes of a domain: the domain's row locked FOR NO KEY UPDATE until the
-- transaction ends (one writer per domain at a time: log indexes without gaps or
-- races), the change notice other nodes listen for (delivered at the commit only; a
-- batch whose every change failed sends a spurious one, which merely empties caches),
-- and the size of the log, from which the batch's first entry is appended.
CREATE FUNCTION ks_log_batch_open(p_domain bigint, p_name text) RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
	PERFORM 1 FROM domains WHERE id = p_domain FOR NO KEY UPDATE;
	PERFORM pg_notify('anchor_change', p_name);
	RETURN (SELECT COALESCE(max(seq) + 1, 0) FROM log_entries WHERE domain_id = p_domain);
END $$;

-- A head round of a domain: its heads lock (the transaction-scoped advisory lock of
-- store_log.c, keys 1414022216 and the domain id modulo 2^31 - 1), then the log's size
-- and the newest head (head_size 0 and NULLs when there is none).
CREATE FUNCTION ks_heads_open(p_domain bigint, OUT log_size bigint, OUT head_size bigint,
                              OUT head_root text, OUT head_jws text)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
	PERFORM pg_advisory_xact_lock(1414022216, (p_domain % 2147483647)::int);
	SELECT COALESCE(max(seq) + 1, 0) INTO log_size FROM log_entries WHERE domain_id = p_domain;
	SELECT size, encode(root_hash, 'hex'), jws INTO head_size, head_root, head_jws
	  FROM tree_heads WHERE domain_id = p_domain ORDER BY size DESC LIMIT 1;
	head_size := COALESCE(head_size, 0);
END $$;

-- A log entry with the perfect-subtree nodes it completes and the webhook deliveries of
-- its key (salt and name NULL for an entry without a subject); returns its index.  The
-- statement that stores what the entry records calls it too (store_route.c,
-- store_cert.c): the entry and its subject in one round trip, and one statement, which
-- lands whole or not at all.
CREATE FUNCTION ks_log_append(p_domain bigint, p_seq bigint, p_type text, p_key_id uuid,
                              p_leaf text, p_hash text, p_salt text, p_name text,
                              p_levels int[], p_idxs bigint[], p_hashes text[]) RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
	INSERT INTO log_entries (domain_id, seq, type, key_id, leaf, leaf_hash, salt, name)
	VALUES (p_domain, p_seq, p_type, p_key_id, p_leaf, decode(p_hash, 'hex'), p_salt, p_name);
	INSERT INTO webhook_deliveries (webhook_id, domain_id, seq)
	SELECT id, domain_id, p_seq FROM webhooks
	 WHERE domain_id = p_domain AND p_key_id = ANY (key_ids);
	INSERT INTO log_nodes (domain_id, level, idx, hash)
	SELECT p_domain, n.level, n.idx, decode(n.hash, 'hex')
	  FROM unnest(p_levels, p_idxs, p_hashes) AS n (level, idx, hash);
	RETURN p_seq;
END $$;
