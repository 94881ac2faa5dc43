/*
 * merkle_bench.c - lib/merkle on a generated log held in memory.
 *
 *   merkle_bench SIZE OUT.json [SAMPLES]
 *
 * Appends SIZE leaves (64-byte entries) to a struct merkle_mem, recomputing
 * the tree head after every append as the key server does; then makes and
 * verifies SAMPLES inclusion proofs (random leaves, tree of SIZE) and SAMPLES
 * consistency proofs (random older size, tree of SIZE).  Prints "key value"
 * lines for bench/merkle.sh and writes the first 2000 proofs of each kind to
 * OUT.json so that the Python reference can verify the very same proofs.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "pki/merkle.h"

#define H MERKLE_HASH_LEN
#define EXPORT_MAX 2000

struct sample {
	uint64_t a, n; /* index or old size; tree size */
	uint8_t proof[MERKLE_MAX_PROOF][H];
	int len;
	uint8_t leaf_or_root_a[H], root_n[H];
};

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void) /* xorshift64*: reproducible, not for secrets */
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dull;
}

static void die(const char *what, const struct err *e)
{
	fprintf(stderr, "merkle_bench: %s: %s\n", what, e->msg);
	exit(1);
}

static double build_log(struct merkle_mem *t, uint64_t size, uint8_t root[H])
{
	uint8_t entry[64];
	struct err e = {0};
	uint64_t i;
	double t0;

	merkle_mem_init(t);
	if (merkle_mem_reserve(t, size, &e) < 0)
		die("reserve", &e);
	memset(entry, 0x5a, sizeof(entry));
	t0 = now();
	for (i = 0; i < size; i++) {
		memcpy(entry, &i, sizeof(i));
		if (merkle_mem_append(t, entry, sizeof(entry), &e) < 0)
			die("append", &e);
		if (merkle_root(t->size, merkle_mem_get, t, root, &e) < 0)
			die("root", &e);
	}
	return (double)size / (now() - t0);
}

/* Seconds to verify every sample, the best of three passes (as the Python peer). */
static double best_of(struct sample *s, int count, int consistency)
{
	struct err e = {0};
	double best = 0, t0, dt;
	int pass, i, rc;

	for (pass = 0; pass < 3; pass++) {
		t0 = now();
		for (i = 0; i < count; i++) {
			if (consistency)
				rc = merkle_verify_consistency(
				    s[i].a, s[i].n, s[i].leaf_or_root_a, s[i].root_n,
				    (const uint8_t(*)[H])s[i].proof, s[i].len, &e);
			else
				rc = merkle_verify_inclusion(s[i].a, s[i].n, s[i].leaf_or_root_a,
							     (const uint8_t(*)[H])s[i].proof,
							     s[i].len, s[i].root_n, &e);
			if (rc < 0)
				die("verify", &e);
		}
		dt = now() - t0;
		best = pass == 0 || dt < best ? dt : best;
	}
	return best;
}

static void report(const char *kind, struct sample *s, int count, double gen_s, double ver_s)
{
	long total = 0;
	int i, max = 0;

	for (i = 0; i < count; i++) {
		total += s[i].len;
		max = s[i].len > max ? s[i].len : max;
	}
	printf("%s_hashes_avg %.2f\n", kind, (double)total / count);
	printf("%s_bytes_avg %.1f\n", kind, (double)total * H / count);
	printf("%s_bytes_max %d\n", kind, max * H);
	printf("%s_gen_us %.3f\n", kind, gen_s / count * 1e6);
	printf("%s_verify_us %.3f\n", kind, ver_s / count * 1e6);
}

static json_t *export(struct sample *s, int count, int consistency)
{
	json_t *arr = json_array();
	struct err e = {0};
	int i;

	for (i = 0; i < count && i < EXPORT_MAX; i++) {
		json_t *p = merkle_proof_to_json((const uint8_t(*)[H])s[i].proof, s[i].len, &e);
		json_t *o;

		if (consistency)
			o = json_pack("{s:I,s:I,s:o,s:o,s:o}", "m", (json_int_t)s[i].a, "n",
				      (json_int_t)s[i].n, "root_m",
				      merkle_hash_to_json(s[i].leaf_or_root_a, &e), "root_n",
				      merkle_hash_to_json(s[i].root_n, &e), "proof", p);
		else
			o = json_pack("{s:I,s:I,s:o,s:o,s:o}", "index", (json_int_t)s[i].a, "size",
				      (json_int_t)s[i].n, "leaf",
				      merkle_hash_to_json(s[i].leaf_or_root_a, &e), "root",
				      merkle_hash_to_json(s[i].root_n, &e), "proof", p);
		if (o == NULL || json_array_append_new(arr, o) < 0) {
			fprintf(stderr, "merkle_bench: out of memory\n");
			exit(1);
		}
	}
	return arr;
}

int main(int argc, char **argv)
{
	struct merkle_mem t;
	struct sample *inc, *con;
	uint8_t root[H];
	struct err e = {0};
	uint64_t size;
	int samples, i;
	double rate, t0, gen, ver;
	json_t *doc;

	if (argc < 3) {
		fprintf(stderr, "usage: merkle_bench SIZE OUT.json [SAMPLES]\n");
		return 2;
	}
	size = strtoull(argv[1], NULL, 10);
	samples = argc > 3 ? atoi(argv[3]) : 20000;
	if (size < 2 || samples < 1)
		return 2;
	inc = calloc((size_t)samples, sizeof(*inc));
	con = calloc((size_t)samples, sizeof(*con));
	if (inc == NULL || con == NULL)
		return 1;

	rate = build_log(&t, size, root);
	printf("size %" PRIu64 "\n", size);
	printf("append_per_s %.0f\n", rate);

	t0 = now();
	for (i = 0; i < samples; i++) {
		struct sample *s = &inc[i];

		s->a = rng() % size;
		s->n = size;
		if (merkle_inclusion_proof(s->a, s->n, merkle_mem_get, &t, s->proof, &s->len, &e) <
		    0)
			die("inclusion proof", &e);
	}
	gen = now() - t0;
	for (i = 0; i < samples; i++) {
		memcpy(inc[i].leaf_or_root_a, t.level[0][inc[i].a], H);
		memcpy(inc[i].root_n, root, H);
	}
	ver = best_of(inc, samples, 0);
	report("inclusion", inc, samples, gen, ver);

	t0 = now();
	for (i = 0; i < samples; i++) {
		struct sample *s = &con[i];

		s->a = 1 + rng() % (size - 1);
		s->n = size;
		if (merkle_consistency_proof(s->a, s->n, merkle_mem_get, &t, s->proof, &s->len,
					     &e) < 0)
			die("consistency proof", &e);
	}
	gen = now() - t0;
	for (i = 0; i < samples; i++) {
		if (merkle_root(con[i].a, merkle_mem_get, &t, con[i].leaf_or_root_a, &e) < 0)
			die("root", &e);
		memcpy(con[i].root_n, root, H);
	}
	ver = best_of(con, samples, 1);
	report("consistency", con, samples, gen, ver);

	doc = json_pack("{s:o,s:o}", "inclusion", export(inc, samples, 0), "consistency",
			export(con, samples, 1));
	if (doc == NULL || json_dump_file(doc, argv[2], JSON_COMPACT) < 0) {
		fprintf(stderr, "merkle_bench: cannot write %s\n", argv[2]);
		return 1;
	}
	json_decref(doc);
	merkle_mem_free(&t);
	free(inc);
	free(con);
	return 0;
}
