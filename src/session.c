#include "session.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SHARDS 64

typedef struct pend {
    struct pend *next;
    size_t       server;
    char        *val;
    char         key[];
} pend;

typedef struct sev {
    struct sev *next;
    char        stream[24];
    uint64_t    seq;
    size_t      len;
    char        data[];
} sev;

typedef struct sess {
    struct sess *next;
    uint64_t     expires;
    uint64_t     last_used;
    int          revoked;
    char         level[12];  /* logging/setLevel of the client, "" = none */
    struct pend *pending;    /* see session_pending_put */
    size_t       n_pending;
    struct sev  *ev_head, *ev_tail;   /* event store, oldest first */
    size_t       ev_n, ev_bytes;
    int          get_worker;          /* current GET stream: worker index, -1 = none */
    uint64_t     get_token;
    int          subj_counted;        /* counted for subject in the table's per-subject map */
    uint8_t      subject[SESSION_SUBJECT_LEN];
    char       **up;        /* upstream session ids per server slot, n_up of them (grown on use) */
    size_t       n_up;
    uint32_t     shared_epoch;        /* shared store (redis.h): the epoch it was last loaded in, 0 = never */
    uint64_t     shared_t;            /* when its shared last use was last written */
    char         id[];
} sess;

typedef struct shard {
    pthread_mutex_t lock;
    sess          **buckets;
    size_t          n_buckets;
} shard;

/* Live (not revoked) sessions opened here per authenticated subject, for --max-sessions-per-subject. */
typedef struct subj {
    struct subj *next;
    size_t       n;
    uint8_t      key[SESSION_SUBJECT_LEN];
} subj;
#define SUBJ_BUCKETS 1024

struct session_table {
    shard    shards[SHARDS];
    pthread_mutex_t subj_lock;   /* taken inside a shard lock, never the other way */
    subj    *subj[SUBJ_BUCKETS];
    size_t   max_per_subject;    /* 0 = no per-subject cap */
    size_t   ev_max, ev_bytes;   /* event store per session (session_table_set_event_caps) */
    size_t   max;
    size_t   n_servers;
    uint64_t idle_s;
    int      shared;       /* a shared store holds the sessions: idle entries are forgotten, not revoked */
    size_t   count;        /* atomic */
};

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;   /* FNV-1a: ids are MACed, so not attacker-chosen */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

session_table *session_table_new(size_t max_sessions, size_t n_servers, uint64_t idle_s)
{
    session_table *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->max = max_sessions;
    t->n_servers = n_servers;
    t->idle_s = idle_s;
    t->ev_max = SESSION_EVENTS_MAX;
    t->ev_bytes = SESSION_EVENT_BYTES;
    pthread_mutex_init(&t->subj_lock, NULL);
    for (int i = 0; i < SHARDS; i++) {
        pthread_mutex_init(&t->shards[i].lock, NULL);
        t->shards[i].n_buckets = 1024;
        t->shards[i].buckets = calloc(1024, sizeof(sess *));
    }
    return t;
}

static void pend_free_all(sess *s)
{
    for (pend *p = s->pending, *n; p; p = n) { n = p->next; free(p->val); free(p); }
    s->pending = NULL;
    s->n_pending = 0;
}

static void ev_free_all(sess *s)
{
    for (sev *e = s->ev_head, *n; e; e = n) { n = e->next; free(e); }
    s->ev_head = s->ev_tail = NULL;
    s->ev_n = s->ev_bytes = 0;
}

void session_table_set_subject_cap(session_table *t, size_t max_per_subject) { t->max_per_subject = max_per_subject; }

void session_table_set_event_caps(session_table *t, size_t max_events, size_t max_bytes)
{
    t->ev_max = max_events;
    t->ev_bytes = max_bytes;
}

static subj **subj_slot(session_table *t, const uint8_t *key)
{
    uint32_t h;
    memcpy(&h, key, sizeof h);   /* a truncated SHA-256: already uniform */
    subj **pp = &t->subj[h % SUBJ_BUCKETS];
    while (*pp && memcmp((*pp)->key, key, SESSION_SUBJECT_LEN)) pp = &(*pp)->next;
    return pp;
}

/* Counts one more session for key; -1 (nothing counted) at the cap or out of memory. */
static int subj_add(session_table *t, const uint8_t *key)
{
    pthread_mutex_lock(&t->subj_lock);
    subj **pp = subj_slot(t, key);
    int rc = 0;
    if (*pp && t->max_per_subject && (*pp)->n >= t->max_per_subject) rc = -1;
    else if (*pp) (*pp)->n++;
    else if ((*pp = calloc(1, sizeof **pp))) { memcpy((*pp)->key, key, SESSION_SUBJECT_LEN); (*pp)->n = 1; }
    else rc = -1;
    pthread_mutex_unlock(&t->subj_lock);
    return rc;
}

static void subj_del(session_table *t, const uint8_t *key)
{
    pthread_mutex_lock(&t->subj_lock);
    subj **pp = subj_slot(t, key);
    if (*pp && --(*pp)->n == 0) { subj *d = *pp; *pp = d->next; free(d); }
    pthread_mutex_unlock(&t->subj_lock);
}

/* The session stops counting for its subject (revoked or freed). */
static void subj_release(session_table *t, sess *s)
{
    if (!s->subj_counted) return;
    s->subj_counted = 0;
    subj_del(t, s->subject);
}

size_t session_subject_count(session_table *t, const uint8_t subject[SESSION_SUBJECT_LEN])
{
    pthread_mutex_lock(&t->subj_lock);
    subj **pp = subj_slot(t, subject);
    size_t n = *pp ? (*pp)->n : 0;
    pthread_mutex_unlock(&t->subj_lock);
    return n;
}

static void sess_free(session_table *t, sess *s)
{
    subj_release(t, s);
    pend_free_all(s);
    ev_free_all(s);
    for (size_t i = 0; i < s->n_up; i++) free(s->up[i]);
    free(s->up);
    free(s);
}

void session_table_free(session_table *t)
{
    if (!t) return;
    for (int i = 0; i < SHARDS; i++) {
        shard *sh = &t->shards[i];
        for (size_t b = 0; b < sh->n_buckets; b++)
            for (sess *s = sh->buckets[b], *n; s; s = n) { n = s->next; sess_free(t, s); }
        free(sh->buckets);
        pthread_mutex_destroy(&sh->lock);
    }
    for (size_t b = 0; b < SUBJ_BUCKETS; b++)
        for (subj *x = t->subj[b], *n; x; x = n) { n = x->next; free(x); }
    pthread_mutex_destroy(&t->subj_lock);
    free(t);
}

/* Locks the shard of id and returns the bucket head pointer. */
static sess **slot(session_table *t, const char *id, shard **out)
{
    uint64_t h = hash(id);
    shard *sh = &t->shards[h % SHARDS];
    pthread_mutex_lock(&sh->lock);
    *out = sh;
    return &sh->buckets[(h / SHARDS) % sh->n_buckets];
}

static sess *find(sess **head, const char *id)
{
    for (sess *s = *head; s; s = s->next)
        if (strcmp(s->id, id) == 0) return s;
    return NULL;
}

static void grow(shard *sh)
{
    size_t nb = sh->n_buckets * 2;
    sess **b = calloc(nb, sizeof *b);
    if (!b) return;
    for (size_t i = 0; i < sh->n_buckets; i++)
        for (sess *s = sh->buckets[i], *n; s; s = n) {
            n = s->next;
            size_t k = (hash(s->id) / SHARDS) % nb;
            s->next = b[k];
            b[k] = s;
        }
    free(sh->buckets);
    sh->buckets = b;
    sh->n_buckets = nb;
}

int session_touch(session_table *t, const char *id, uint64_t expires, uint64_t now)
{
    shard *sh;
    sess **head = slot(t, id, &sh);
    sess *s = find(head, id);
    int rc = SESS_OK;
    if (s) {
        if (s->revoked) rc = SESS_REVOKED;
        else s->last_used = now;
    } else if (__atomic_load_n(&t->count, __ATOMIC_RELAXED) >= t->max) {
        rc = SESS_FULL;
    } else {
        size_t l = strlen(id);
        s = calloc(1, sizeof *s + l + 1);
        if (!s) rc = SESS_FULL;
        else {
            memcpy(s->id, id, l + 1);
            s->expires = expires;
            s->last_used = now;
            s->get_worker = -1;
            s->next = *head;
            *head = s;
            size_t n = __atomic_add_fetch(&t->count, 1, __ATOMIC_RELAXED);
            if (n / SHARDS > sh->n_buckets * 2) grow(sh);
        }
    }
    pthread_mutex_unlock(&sh->lock);
    return rc;
}

int session_open(session_table *t, const char *id, uint64_t expires, uint64_t now,
                 const uint8_t subject[SESSION_SUBJECT_LEN])
{
    static const uint8_t anonymous[SESSION_SUBJECT_LEN];
    if (!memcmp(subject, anonymous, SESSION_SUBJECT_LEN)) return session_touch(t, id, expires, now);
    if (subj_add(t, subject)) return SESS_SUBJECT_FULL;
    int rc = session_touch(t, id, expires, now), kept = 0;
    if (rc == SESS_OK) {
        shard *sh;
        sess *s = find(slot(t, id, &sh), id);
        if (s && !s->subj_counted) {   /* the entry holds the count from here on */
            memcpy(s->subject, subject, SESSION_SUBJECT_LEN);
            s->subj_counted = kept = 1;
        }
        pthread_mutex_unlock(&sh->lock);
    }
    if (!kept) subj_del(t, subject);
    return rc;
}

int session_get_upstream(session_table *t, const char *id, size_t server, char *out, size_t cap)
{
    shard *sh;
    sess *s = find(slot(t, id, &sh), id);
    int rc = -1;
    if (s && !s->revoked && server < s->n_up && s->up[server] && strlen(s->up[server]) < cap) {
        strcpy(out, s->up[server]);
        rc = 0;
    }
    pthread_mutex_unlock(&sh->lock);
    return rc;
}

void session_set_upstream(session_table *t, const char *id, size_t server, const char *up_sid)
{
    shard *sh;
    sess *s = find(slot(t, id, &sh), id);
    if (s && !s->revoked && server < t->n_servers && server >= s->n_up && up_sid) {   /* room for the slot */
        char **up = realloc(s->up, (server + 1) * sizeof *up);
        if (up) {
            memset(up + s->n_up, 0, (server + 1 - s->n_up) * sizeof *up);
            s->up = up;
            s->n_up = server + 1;
        }
    }
    if (s && !s->revoked && server < s->n_up) {
        free(s->up[server]);
        s->up[server] = up_sid ? strdup(up_sid) : NULL;
    }
    pthread_mutex_unlock(&sh->lock);
}

char **session_revoke(session_table *t, const char *id, uint64_t now)
{
    shard *sh;
    sess **head = slot(t, id, &sh);
    sess *s = find(head, id);
    char **up = NULL;
    if (!s) {  /* not seen here yet: keep a tombstone so that it stays dead in this process */
        size_t l = strlen(id);
        s = calloc(1, sizeof *s + l + 1);
        if (s) {
            memcpy(s->id, id, l + 1);
            s->expires = now + 86400 * 365;   /* bounded by the id's own expiry when known */
            s->next = *head;
            *head = s;
            __atomic_add_fetch(&t->count, 1, __ATOMIC_RELAXED);
        }
    } else if ((up = calloc(t->n_servers ? t->n_servers : 1, sizeof *up))) {   /* n_servers long, as promised */
        if (s->n_up) memcpy(up, s->up, s->n_up * sizeof *up);
        free(s->up);
        s->up = NULL;
        s->n_up = 0;
    }
    if (s) {
        s->revoked = 1;
        subj_release(t, s);
        pend_free_all(s);
        ev_free_all(s);
        s->get_worker = -1;
    }
    pthread_mutex_unlock(&sh->lock);
    return up;
}

size_t session_reap(session_table *t, uint64_t now)
{
    size_t dropped = 0;
    for (int i = 0; i < SHARDS; i++) {
        shard *sh = &t->shards[i];
        pthread_mutex_lock(&sh->lock);
        for (size_t b = 0; b < sh->n_buckets; b++) {
            sess **pp = &sh->buckets[b];
            while (*pp) {
                sess *s = *pp;
                if (s->expires <= now) {
                    *pp = s->next;
                    sess_free(t, s);
                    __atomic_sub_fetch(&t->count, 1, __ATOMIC_RELAXED);
                    dropped++;
                    continue;
                }
                if (!s->revoked && t->idle_s && s->last_used + t->idle_s <= now && t->shared) {
                    *pp = s->next;   /* idle here only: another replica may serve it (redis.h decides) */
                    sess_free(t, s);
                    __atomic_sub_fetch(&t->count, 1, __ATOMIC_RELAXED);
                    dropped++;
                    continue;
                }
                if (!s->revoked && t->idle_s && s->last_used + t->idle_s <= now) {
                    s->revoked = 1;   /* idle: the id is dead here, the tombstone lives to expiry */
                    subj_release(t, s);
                    pend_free_all(s);
                    ev_free_all(s);
                    for (size_t k = 0; k < s->n_up; k++) { free(s->up[k]); s->up[k] = NULL; }
                    dropped++;
                }
                pp = &s->next;
            }
        }
        pthread_mutex_unlock(&sh->lock);
    }
    return dropped;
}

void session_set_level(session_table *t, const char *id, const char *level)
{
    shard *sh;
    sess *s = find(slot(t, id, &sh), id);
    if (s) snprintf(s->level, sizeof s->level, "%s", level);
    pthread_mutex_unlock(&sh->lock);
}

int session_get_level(session_table *t, const char *id, char *out, size_t cap)
{
    shard *sh;
    sess *s = find(slot(t, id, &sh), id);
    int rc = -1;
    if (s && s->level[0]) {
        snprintf(out, cap, "%s", s->level);
        rc = 0;
    }
    pthread_mutex_unlock(&sh->lock);
    return rc;
}

int session_pending_put(session_table *t, const char *id, const char *key, size_t server, const char *val)
{
    shard *sh;
    sess *s = find(slot(t, id, &sh), id);
    int rc = -1;
    if (s && !s->revoked && s->n_pending < SESSION_PENDING_MAX) {
        size_t kl = strlen(key);
        pend *p = malloc(sizeof *p + kl + 1);
        if (p && (p->val = strdup(val))) {
            memcpy(p->key, key, kl + 1);
            p->server = server;
            p->next = s->pending;
            s->pending = p;
            s->n_pending++;
            rc = 0;
        } else {
            free(p);
        }
    }
    pthread_mutex_unlock(&sh->lock);
    return rc;
}

int session_pending_get(session_table *t, const char *id, const char *key, size_t *server, char *val, size_t cap,
                        int take)
{
    shard *sh;
    sess *s = find(slot(t, id, &sh), id);
    int rc = -1;
    for (pend **pp = s && !s->revoked ? &s->pending : NULL; pp && *pp; pp = &(*pp)->next) {
        pend *p = *pp;
        if (strcmp(p->key, key) != 0) continue;
        if (server) *server = p->server;
        if (val) snprintf(val, cap, "%s", p->val);
        if (take) {
            *pp = p->next;
            free(p->val);
            free(p);
            s->n_pending--;
        }
        rc = 0;
        break;
    }
    pthread_mutex_unlock(&sh->lock);
    return rc;
}

void session_event_add(session_table *t, const char *id, const char *stream, uint64_t seq, const char *data,
                       size_t len, int *worker, uint64_t *token)
{
    shard *sh;
    sess *s = find(slot(t, id, &sh), id);
    *worker = -1;
    *token = 0;
    if (s && !s->revoked) {
        /* kept for resumption within the caps; delivered either way */
        sev *e = len <= t->ev_bytes && t->ev_max ? malloc(sizeof *e + len) : NULL;
        if (e) {
            snprintf(e->stream, sizeof e->stream, "%s", stream);
            e->seq = seq;
            e->len = len;
            memcpy(e->data, data, len);
            e->next = NULL;
            if (s->ev_tail) s->ev_tail->next = e; else s->ev_head = e;
            s->ev_tail = e;
            s->ev_n++;
            s->ev_bytes += len;
            while (s->ev_head && (s->ev_n > t->ev_max || s->ev_bytes > t->ev_bytes)) {
                sev *o = s->ev_head;
                s->ev_head = o->next;
                if (!s->ev_head) s->ev_tail = NULL;
                s->ev_n--;
                s->ev_bytes -= o->len;
                free(o);
            }
        }
        *worker = s->get_worker;
        *token = s->get_token;
    }
    pthread_mutex_unlock(&sh->lock);
}

size_t session_event_replay(session_table *t, const char *id, const char *stream, uint64_t after, buf *out,
                            int worker, uint64_t token)
{
    shard *sh;
    sess *s = find(slot(t, id, &sh), id);
    size_t n = 0;
    if (s && !s->revoked) { s->get_worker = worker; s->get_token = token; }
    for (sev *e = s && !s->revoked && stream ? s->ev_head : NULL; e; e = e->next) {
        if (e->seq <= after || strcmp(e->stream, stream) != 0) continue;
        if (buf_printf(out, "id: %s/%llu\ndata: ", e->stream, (unsigned long long)e->seq) ||
            buf_append(out, e->data, e->len) || buf_append(out, "\n\n", 2))
            break;
        n++;
    }
    pthread_mutex_unlock(&sh->lock);
    return n;
}

void session_set_get(session_table *t, const char *id, int worker, uint64_t token)
{
    shard *sh;
    sess *s = find(slot(t, id, &sh), id);
    if (s) { s->get_worker = worker; s->get_token = token; }
    pthread_mutex_unlock(&sh->lock);
}

void session_clear_get(session_table *t, const char *id, uint64_t token)
{
    shard *sh;
    sess *s = find(slot(t, id, &sh), id);
    if (s && s->get_token == token) { s->get_worker = -1; s->get_token = 0; }
    pthread_mutex_unlock(&sh->lock);
}

int session_get_get(session_table *t, const char *id, int *worker, uint64_t *token)
{
    shard *sh;
    sess *s = find(slot(t, id, &sh), id);
    int rc = -1;
    if (s && !s->revoked && s->get_worker >= 0) { *worker = s->get_worker; *token = s->get_token; rc = 0; }
    pthread_mutex_unlock(&sh->lock);
    return rc;
}

size_t session_count(session_table *t) { return __atomic_load_n(&t->count, __ATOMIC_RELAXED); }

/* ---- the shared store (redis.h) ------------------------------------------------------------------ */

void session_table_set_shared(session_table *t, int shared) { t->shared = shared; }

void session_shared_state(session_table *t, const char *id, uint32_t epoch, uint64_t now, uint64_t every,
                          int *load, int *touch)
{
    shard *sh;
    sess *s = find(slot(t, id, &sh), id);
    *load = *touch = 0;
    if (s && !s->revoked) {
        *load = s->shared_epoch != epoch || !epoch;
        if (every && s->shared_t + every <= now) { s->shared_t = now; *touch = 1; }
    }
    pthread_mutex_unlock(&sh->lock);
}

void session_shared_loaded(session_table *t, const char *id, uint32_t epoch)
{
    shard *sh;
    sess *s = find(slot(t, id, &sh), id);
    if (s) s->shared_epoch = epoch;
    pthread_mutex_unlock(&sh->lock);
}

int session_exists(session_table *t, const char *id)
{
    shard *sh;
    int found = find(slot(t, id, &sh), id) != NULL;
    pthread_mutex_unlock(&sh->lock);
    return found;
}

int session_has_stream(session_table *t, const char *id, const char *stream)
{
    shard *sh;
    sess *s = find(slot(t, id, &sh), id);
    int found = 0;
    for (sev *e = s && !s->revoked ? s->ev_head : NULL; e && !found; e = e->next) found = !strcmp(e->stream, stream);
    pthread_mutex_unlock(&sh->lock);
    return found;
}
