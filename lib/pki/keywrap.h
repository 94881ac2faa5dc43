/*
 * keywrap.h - private keys sealed for storage under a key-encryption key.
 *
 * The key server keeps each domain's issuer key in PostgreSQL, sealed with
 * AES-256-GCM under a 32-byte key-encryption key (KEK) that every node reads
 * from a local file: the nodes stay stateless, and the database alone (a
 * dump, a replica) reveals no issuer key.  The associated data binds a sealed
 * key to its owner's name, so a sealed key cannot be moved to another row.
 *
 * Text form: "v1:" base64(nonce[12] || ciphertext || tag[16]).
 */
#ifndef ANCHOR_KEYWRAP_H
#define ANCHOR_KEYWRAP_H

#include <stdint.h>

#include <openssl/evp.h>

#include "core/err.h"

#define KEYWRAP_KEK_LEN 32

/* Read a KEK file (exactly 32 bytes); with create set, make a new one (0600) when the
 * file does not exist, and say so through *created. */
int keywrap_kek_load(const char *path, int create, uint8_t kek[KEYWRAP_KEK_LEN], int *created,
                     struct err *e);

/* Seal key (PKCS#8) for owner; returns the malloc'd text form. */
char *keywrap_seal(const uint8_t kek[KEYWRAP_KEK_LEN], const char *owner, EVP_PKEY *key,
                   struct err *e);

/* Open a sealed key; ERR_INTERNAL "key_unsealable" when the KEK or the owner is wrong
 * or the text is damaged. */
EVP_PKEY *keywrap_open(const uint8_t kek[KEYWRAP_KEK_LEN], const char *owner, const char *text,
                       struct err *e);

#endif
