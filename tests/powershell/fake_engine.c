/* Test double of the sync-engine part of the phsync C ABI, with the signatures agreed for
 * include/phsync.h (phs_engine_open, phs_engine_free, phs_sync_cycle, phs_sync_user,
 * phs_user_status) and the few common exports the interop layer needs for errors and strings.
 * It lets tests/powershell/InteropTests.cs check the C# delegates' marshaling (flags, the
 * progress callback with UTF-8 stages and 64-bit counts, out_json, status codes) before the real
 * engine exports exist; the tests against the real engine and the AD lab run when
 * libphsync exports phs_engine_open. Not shipped: scripts/test-powershell builds it into a
 * scratch module folder only. */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int32_t phs_status;
typedef struct phs_engine { char config[512]; int freed; } phs_engine;
typedef void (*phs_progress_fn)(void *context, const char *stage, uint64_t done, uint64_t total);

static _Thread_local char last_error[512];

static phs_status fail(phs_status status, const char *message) {
    snprintf(last_error, sizeof last_error, "%s", message);
    return status;
}

static char *dup_string(const char *s) {
    char *copy = malloc(strlen(s) + 1);
    if (copy) strcpy(copy, s);
    return copy;
}

void phs_string_free(char *s) { free(s); }

size_t phs_last_error_message(char *buf, size_t capacity) {
    size_t n = strlen(last_error);
    if (buf && capacity > 0) {
        size_t k = n < capacity - 1 ? n : capacity - 1;
        memcpy(buf, last_error, k);
        buf[k] = 0;
    }
    return n + 1;
}

const char *phs_status_name(phs_status status) {
    switch (status) {
    case 0: return "PHS_OK";
    case -1: return "PHS_E_NULL_ARGUMENT";
    case -10: return "PHS_E_NOT_FOUND";
    case -20: return "PHS_E_CONFIG";
    case -21: return "PHS_E_DIRECTORY";
    default: return "PHS_E_UNKNOWN";
    }
}

phs_status phs_engine_open(const char *config_path, phs_engine **out) {
    if (!out) return fail(-1, "argument `out` is NULL");
    *out = NULL;
    if (!config_path) return fail(-1, "argument `config_path` is NULL");
    size_t n = strlen(config_path);
    if (n < 5 || strcmp(config_path + n - 5, ".toml") != 0 || n >= 512) {
        char m[600];
        snprintf(m, sizeof m, "config file %s: not a .toml file", config_path);
        return fail(-20, m);
    }
    phs_engine *e = calloc(1, sizeof *e);
    if (!e) return fail(-99, "out of memory");
    memcpy(e->config, config_path, n + 1);
    *out = e;
    return 0;
}

void phs_engine_free(phs_engine *engine) { free(engine); }

phs_status phs_sync_cycle(phs_engine *engine, uint32_t flags, phs_progress_fn progress,
                          void *context, char **out_json) {
    if (!engine) return fail(-1, "argument `engine` is NULL");
    if (!out_json) return fail(-1, "argument `out_json` is NULL");
    if (flags & ~1u) return fail(-6, "unknown flags");
    /* 64-bit counts and a non-ASCII stage check the callback's marshaling. */
    static const char *stages[] = {"scope", "replicate", "ov\xc4\x9b\xc5\x99" "en\xc3\xad"};
    static const uint64_t done[] = {0, 4294967297ull, 5000000000ull};
    if (progress) {
        for (int i = 0; i < 3; i++) progress(context, stages[i], done[i], 5000000000ull);
    }
    char json[1024];
    snprintf(json, sizeof json,
             "{\"mode\":\"%s\",\"progress\":%s,\"context_null\":%s,\"config\":\"%s\","
             "\"in_scope\":3,\"failed\":0,\"retry_queued\":0,\"users\":[],\"ok\":true}",
             (flags & 1) ? "full" : "incremental", progress ? "true" : "false",
             context ? "false" : "true", engine->config);
    *out_json = dup_string(json);
    return 0;
}

phs_status phs_sync_user(phs_engine *engine, const char *user, char **out_json) {
    if (!engine) return fail(-1, "argument `engine` is NULL");
    if (!user) return fail(-1, "argument `user` is NULL");
    if (!out_json) return fail(-1, "argument `out_json` is NULL");
    if (strlen(user) > 256) return fail(-6, "user name too long");
    char json[512];
    snprintf(json, sizeof json, "{\"sam_account_name\":\"%s\",\"status\":\"Success\"}", user);
    *out_json = dup_string(json);
    return 0;
}

phs_status phs_user_status(phs_engine *engine, const char *user, char **out_json) {
    if (!engine) return fail(-1, "argument `engine` is NULL");
    if (!user) return fail(-1, "argument `user` is NULL");
    if (!out_json) return fail(-1, "argument `out_json` is NULL");
    if (strcmp(user, "known") != 0) {
        char m[600];
        snprintf(m, sizeof m, "no user %s in the sync state", user);
        return fail(-10, m);
    }
    *out_json = dup_string("{\"sam_account_name\":\"known\",\"status\":\"Success\",\"history\":[]}");
    return 0;
}
