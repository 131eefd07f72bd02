/* Checks the hashing C API through include/phsync.h and the cdylib, as a C caller would.
 * Usage: hash_abi_test VECTORS_FILE MALFORMED_FILE
 *   VECTORS_FILE lines:  nt<TAB>password<TAB>NT_HEX
 *                        digest<TAB>password<TAB>salt_hex<TAB>iterations<TAB>digest_string
 *                        wrong<TAB>password<TAB>digest_string     (must NOT verify)
 *   MALFORMED_FILE: one malformed digest per line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uchar.h>

#include "phsync.h"

static int passed, failed;

#define CHECK(cond, ...)                                     \
    do {                                                     \
        if (cond) {                                          \
            passed++;                                        \
        } else {                                             \
            failed++;                                        \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
            fprintf(stderr, __VA_ARGS__);                    \
            fprintf(stderr, "\n");                           \
        }                                                    \
    } while (0)

static void check_status(phs_status got, phs_status want, const char *what) {
    CHECK(got == want, "%s: got %s (%d), want %s (%d)", what, phs_status_name(got), got,
          phs_status_name(want), want);
    if (got != PHS_OK) {
        char msg[256];
        size_t need = phs_last_error_message(msg, sizeof msg);
        CHECK(need > 1 && strlen(msg) > 0, "%s: no error message", what);
    }
}

static void hex_upper(const uint8_t *b, size_t n, char *out) {
    for (size_t i = 0; i < n; i++) sprintf(out + 2 * i, "%02X", b[i]);
}

static int unhex(const char *s, uint8_t *out, size_t n) {
    if (strlen(s) != 2 * n) return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        if (sscanf(s + 2 * i, "%2x", &v) != 1) return -1;
        out[i] = (uint8_t)v;
    }
    return 0;
}

/* UTF-8 to UTF-16 for the test's own inputs (BMP and astral). */
static size_t to_utf16(const char *s, uint16_t *out) {
    size_t n = 0;
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        uint32_t c;
        if (*p < 0x80) c = *p++;
        else if ((*p & 0xE0) == 0xC0) { c = (*p & 0x1F) << 6 | (p[1] & 0x3F); p += 2; }
        else if ((*p & 0xF0) == 0xE0) { c = (*p & 0x0F) << 12 | (p[1] & 0x3F) << 6 | (p[2] & 0x3F); p += 3; }
        else { c = (*p & 0x07) << 18 | (p[1] & 0x3F) << 12 | (p[2] & 0x3F) << 6 | (p[3] & 0x3F); p += 4; }
        if (c >= 0x10000) { c -= 0x10000; out[n++] = 0xD800 | (c >> 10); out[n++] = 0xDC00 | (c & 0x3FF); }
        else out[n++] = (uint16_t)c;
    }
    return n;
}

static char *field(char **cursor) {
    char *start = *cursor, *tab = strchr(start, '\t');
    if (tab) { *tab = 0; *cursor = tab + 1; } else { *cursor = start + strlen(start); }
    return start;
}

static void run_vectors(const char *path) {
    FILE *f = fopen(path, "r");
    CHECK(f != NULL, "cannot open %s", path);
    if (!f) return;
    char line[1024];
    int seen = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        char *cur = line, *kind = field(&cur), *pw = field(&cur);
        uint16_t u16[600];
        size_t u16len = to_utf16(pw, u16);
        bool match = false;
        seen++;
        if (strcmp(kind, "nt") == 0) {
            const char *want = field(&cur);
            uint8_t h8[16], h16[16];
            char hex[33];
            check_status(phs_nt_hash_utf8(pw, strlen(pw), h8), PHS_OK, "nt utf8");
            hex_upper(h8, 16, hex);
            CHECK(strcmp(hex, want) == 0, "nt_hash_utf8(%s) = %s, want %s", pw, hex, want);
            check_status(phs_nt_hash_utf16(u16, u16len, h16), PHS_OK, "nt utf16");
            CHECK(memcmp(h8, h16, 16) == 0, "utf8 and utf16 NT hash differ for %s", pw);
        } else if (strcmp(kind, "digest") == 0) {
            const char *salt_hex = field(&cur);
            unsigned iterations = (unsigned)atoi(field(&cur));
            const char *want = field(&cur);
            uint8_t nt[16], salt[10];
            char out[PHS_DIGEST_STRING_CAPACITY];
            CHECK(unhex(salt_hex, salt, 10) == 0, "bad salt in vectors");
            check_status(phs_nt_hash_utf8(pw, strlen(pw), nt), PHS_OK, "nt for digest");
            check_status(phs_digest_from_nt_hash(nt, salt, iterations, out, sizeof out), PHS_OK, "digest");
            size_t wl = strlen(want);
            CHECK(strncmp(out, want, wl) == 0 && (want[wl - 1] == ';' ? out[wl] == 0 : strcmp(out + wl, ";") == 0),
                  "digest(%s) = %s, want %s", pw, out, want);
            check_status(phs_verify_utf8(want, pw, strlen(pw), &match), PHS_OK, "verify utf8");
            CHECK(match, "published digest does not verify %s (utf8)", pw);
            match = false;
            check_status(phs_verify_utf16(want, u16, u16len, &match), PHS_OK, "verify utf16");
            CHECK(match, "published digest does not verify %s (utf16)", pw);
            match = false;
            check_status(phs_verify_nt_hash(want, nt, &match), PHS_OK, "verify nt");
            CHECK(match, "published digest does not verify the NT hash of %s", pw);
            match = true;
            check_status(phs_verify_utf8(want, "wrong", 5, &match), PHS_OK, "verify wrong");
            CHECK(!match, "a wrong password verified against %s", want);
        } else if (strcmp(kind, "wrong") == 0) {
            const char *digest = field(&cur);
            match = true;
            check_status(phs_verify_utf8(digest, pw, strlen(pw), &match), PHS_OK, "verify control");
            CHECK(!match, "negative control matched: %s", digest);
            match = true;
            check_status(phs_verify_utf16(digest, u16, u16len, &match), PHS_OK, "verify control utf16");
            CHECK(!match, "negative control matched (utf16): %s", digest);
        } else {
            CHECK(0, "unknown vector kind %s", kind);
        }
    }
    fclose(f);
    CHECK(seen >= 15, "only %d vectors read", seen);
}

static void run_malformed(const char *path) {
    FILE *f = fopen(path, "r");
    CHECK(f != NULL, "cannot open %s", path);
    if (!f) return;
    char line[1024];
    int seen = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        bool match = true;
        uint16_t pw16[1] = {'x'};
        uint8_t nt[16] = {0};
        seen++;
        check_status(phs_verify_utf8(line, "x", 1, &match), PHS_E_MALFORMED_DIGEST, line);
        check_status(phs_verify_utf16(line, pw16, 1, &match), PHS_E_MALFORMED_DIGEST, line);
        check_status(phs_verify_nt_hash(line, nt, &match), PHS_E_MALFORMED_DIGEST, line);
    }
    fclose(f);
    CHECK(seen >= 20, "only %d malformed digests read", seen);
}

static void run_errors(void) {
    uint8_t nt[16] = {0}, salt[10] = {0};
    char out[PHS_DIGEST_STRING_CAPACITY];
    bool match;
    const char *good = "v1;PPH1_MD4,181a3024085fcee2f70e,1000,b39525c3bc72a1136fcf7c8a338e0c14313d0450d1a4c98ef0a6ddada3bc5b0a;";
    uint16_t pw16[4] = {'a', 'b', 'c', 'd'};

    CHECK(phs_abi_version() == PHS_ABI_VERSION, "abi version %u", phs_abi_version());

    /* NULL arguments */
    check_status(phs_nt_hash_utf8(NULL, 0, nt), PHS_E_NULL_ARGUMENT, "nt utf8 NULL password");
    check_status(phs_nt_hash_utf8("a", 1, NULL), PHS_E_NULL_ARGUMENT, "nt utf8 NULL out");
    check_status(phs_nt_hash_utf16(NULL, 0, nt), PHS_E_NULL_ARGUMENT, "nt utf16 NULL password");
    check_status(phs_nt_hash_utf16(pw16, 4, NULL), PHS_E_NULL_ARGUMENT, "nt utf16 NULL out");
    check_status(phs_digest_from_nt_hash(NULL, salt, 0, out, sizeof out), PHS_E_NULL_ARGUMENT, "digest NULL nt");
    check_status(phs_digest_from_nt_hash(nt, salt, 0, NULL, sizeof out), PHS_E_NULL_ARGUMENT, "digest NULL out");
    check_status(phs_verify_utf8(NULL, "a", 1, &match), PHS_E_NULL_ARGUMENT, "verify NULL digest");
    check_status(phs_verify_utf8(good, NULL, 1, &match), PHS_E_NULL_ARGUMENT, "verify NULL password");
    check_status(phs_verify_utf8(good, "a", 1, NULL), PHS_E_NULL_ARGUMENT, "verify NULL out");
    check_status(phs_verify_utf16(NULL, pw16, 1, &match), PHS_E_NULL_ARGUMENT, "verify16 NULL digest");
    check_status(phs_verify_utf16(good, NULL, 1, &match), PHS_E_NULL_ARGUMENT, "verify16 NULL password");
    check_status(phs_verify_utf16(good, pw16, 1, NULL), PHS_E_NULL_ARGUMENT, "verify16 NULL out");
    check_status(phs_verify_nt_hash(good, NULL, &match), PHS_E_NULL_ARGUMENT, "verify nt NULL hash");
    char msg[256];
    phs_nt_hash_utf8(NULL, 0, nt);
    phs_last_error_message(msg, sizeof msg);
    CHECK(strstr(msg, "password") != NULL, "NULL message names the argument: %s", msg);

    /* invalid UTF-8: in a password, and in the digest string */
    check_status(phs_nt_hash_utf8("\xff\xfe", 2, nt), PHS_E_INVALID_UTF8, "nt invalid utf8");
    check_status(phs_nt_hash_utf8("ab\xc3", 3, nt), PHS_E_INVALID_UTF8, "nt truncated utf8");
    check_status(phs_verify_utf8(good, "\xc0\xaf", 2, &match), PHS_E_INVALID_UTF8, "verify overlong utf8");
    check_status(phs_verify_utf8("v1;PPH1_MD4,\xff", "a", 1, &match), PHS_E_INVALID_UTF8, "digest invalid utf8");

    /* buffer sizes: exactly enough works, one byte less fails */
    check_status(phs_digest_from_nt_hash(nt, salt, 1000, out, sizeof out), PHS_OK, "digest");
    size_t exact = strlen(out) + 1;
    char exact_buf[PHS_DIGEST_STRING_CAPACITY];
    check_status(phs_digest_from_nt_hash(nt, salt, 1000, exact_buf, exact), PHS_OK, "digest exact buffer");
    CHECK(strcmp(exact_buf, out) == 0, "exact-buffer digest differs");
    check_status(phs_digest_from_nt_hash(nt, salt, 1000, exact_buf, exact - 1), PHS_E_BUFFER_TOO_SMALL, "digest buffer one byte too small");
    check_status(phs_digest_from_nt_hash(nt, salt, 1000, exact_buf, 0), PHS_E_BUFFER_TOO_SMALL, "digest zero buffer");
    check_status(phs_digest_from_nt_hash(nt, salt, 1000000, out, sizeof out), PHS_OK, "digest 1e6 iterations fits");
    CHECK(strlen(out) < PHS_DIGEST_STRING_CAPACITY, "capacity constant too small");

    /* iterations: 0 means 1000, above the cap is refused */
    char d0[PHS_DIGEST_STRING_CAPACITY], d1000[PHS_DIGEST_STRING_CAPACITY];
    phs_digest_from_nt_hash(nt, salt, 0, d0, sizeof d0);
    phs_digest_from_nt_hash(nt, salt, 1000, d1000, sizeof d1000);
    CHECK(strcmp(d0, d1000) == 0, "iterations 0 is not 1000: %s", d0);
    check_status(phs_digest_from_nt_hash(nt, salt, 1000001, out, sizeof out), PHS_E_INVALID_ARGUMENT, "too many iterations");

    /* random salt */
    char r1[PHS_DIGEST_STRING_CAPACITY], r2[PHS_DIGEST_STRING_CAPACITY];
    uint8_t pwnt[16];
    phs_nt_hash_utf8("Pa$$w0rd", 8, pwnt);
    check_status(phs_digest_from_nt_hash(pwnt, NULL, 0, r1, sizeof r1), PHS_OK, "random salt 1");
    check_status(phs_digest_from_nt_hash(pwnt, NULL, 0, r2, sizeof r2), PHS_OK, "random salt 2");
    CHECK(strcmp(r1, r2) != 0, "two random-salt digests are equal");
    match = false;
    phs_verify_utf8(r1, "Pa$$w0rd", 8, &match);
    CHECK(match, "random-salt digest does not verify");

    /* password length: 512 UTF-16 units fine, 513 too long (both entry points) */
    static uint16_t long16[513];
    static char long8[514];
    for (int i = 0; i < 513; i++) { long16[i] = 'A'; long8[i] = 'A'; }
    check_status(phs_nt_hash_utf16(long16, 512, nt), PHS_OK, "512 units");
    check_status(phs_nt_hash_utf16(long16, 513, nt), PHS_E_PASSWORD_TOO_LONG, "513 units");
    check_status(phs_nt_hash_utf8(long8, 513, nt), PHS_E_PASSWORD_TOO_LONG, "513 bytes utf8");
    check_status(phs_verify_utf16(good, long16, 513, &match), PHS_E_PASSWORD_TOO_LONG, "verify 513 units");
    check_status(phs_verify_utf8(good, long8, 513, &match), PHS_E_PASSWORD_TOO_LONG, "verify 513 bytes");

    /* every verify error leaves *out_match false, whatever the caller pre-set */
    static const char *malformed = "v1;PPH1_MD4,zz,1000,00;";
    match = true;
    check_status(phs_verify_utf8(NULL, "a", 1, &match), PHS_E_NULL_ARGUMENT, "verify NULL digest (match)");
    CHECK(!match, "verify utf8 NULL digest left match true");
    match = true;
    check_status(phs_verify_utf8(good, NULL, 1, &match), PHS_E_NULL_ARGUMENT, "verify NULL password (match)");
    CHECK(!match, "verify utf8 NULL password left match true");
    match = true;
    check_status(phs_verify_utf8(malformed, "a", 1, &match), PHS_E_MALFORMED_DIGEST, "verify malformed (match)");
    CHECK(!match, "verify utf8 malformed digest left match true");
    match = true;
    check_status(phs_verify_utf8(good, "\xff", 1, &match), PHS_E_INVALID_UTF8, "verify invalid utf8 (match)");
    CHECK(!match, "verify utf8 invalid UTF-8 left match true");
    match = true;
    check_status(phs_verify_utf8(good, long8, 513, &match), PHS_E_PASSWORD_TOO_LONG, "verify too long (match)");
    CHECK(!match, "verify utf8 too long left match true");
    match = true;
    check_status(phs_verify_utf16(NULL, pw16, 1, &match), PHS_E_NULL_ARGUMENT, "verify16 NULL digest (match)");
    CHECK(!match, "verify utf16 NULL digest left match true");
    match = true;
    check_status(phs_verify_utf16(malformed, pw16, 1, &match), PHS_E_MALFORMED_DIGEST, "verify16 malformed (match)");
    CHECK(!match, "verify utf16 malformed digest left match true");
    match = true;
    check_status(phs_verify_utf16(good, long16, 513, &match), PHS_E_PASSWORD_TOO_LONG, "verify16 too long (match)");
    CHECK(!match, "verify utf16 too long left match true");
    match = true;
    check_status(phs_verify_nt_hash(good, NULL, &match), PHS_E_NULL_ARGUMENT, "verify nt NULL hash (match)");
    CHECK(!match, "verify nt NULL hash left match true");
    match = true;
    check_status(phs_verify_nt_hash(malformed, nt, &match), PHS_E_MALFORMED_DIGEST, "verify nt malformed (match)");
    CHECK(!match, "verify nt malformed digest left match true");
    match = true;
    check_status(phs_verify_nt_hash(NULL, nt, &match), PHS_E_NULL_ARGUMENT, "verify nt NULL digest (match)");
    CHECK(!match, "verify nt NULL digest left match true");

    /* ABI version 2: the status of a stopped cycle has a name */
    CHECK(PHS_ABI_VERSION == 2 && phs_abi_version() == 2, "abi version %u", phs_abi_version());
    CHECK(strcmp(phs_status_name(PHS_E_CANCELLED), "PHS_E_CANCELLED") == 0 && PHS_E_CANCELLED == -25,
          "PHS_E_CANCELLED name");

    /* lone surrogate is hashed, not refused */
    uint16_t lone[3] = {'a', 0xD800, 'b'};
    check_status(phs_nt_hash_utf16(lone, 3, nt), PHS_OK, "lone surrogate");

    /* last error message sizing */
    phs_verify_utf8("nonsense", "a", 1, &match);
    size_t need = phs_last_error_message(NULL, 0);
    char tiny[8];
    size_t again = phs_last_error_message(tiny, sizeof tiny);
    CHECK(need > 8 && need == again, "message size %zu vs %zu", need, again);
    CHECK(strlen(tiny) == 7, "truncated message not NUL-terminated at capacity");
    CHECK(strcmp(phs_status_name(PHS_E_MALFORMED_DIGEST), "PHS_E_MALFORMED_DIGEST") == 0, "status name");
    CHECK(strcmp(phs_status_name(12345), "PHS_E_UNKNOWN") == 0, "unknown status name");
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s VECTORS_FILE MALFORMED_FILE\n", argv[0]);
        return 2;
    }
    run_vectors(argv[1]);
    run_malformed(argv[2]);
    run_errors();
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
