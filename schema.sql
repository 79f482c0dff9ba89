-- boxoffice schema, version 4 (src/store/migrate.rs upgrades files of earlier versions).
--
-- Applied by the store when it opens a file whose `user_version` is 0 (src/store/mod.rs), in one
-- transaction. Times are integer milliseconds since the Unix epoch (UTC). Every table has an integer
-- `seq` that orders rows internally (join order, pagination); the random text `id` is the public name.
--
-- The event row carries live counters (confirmed, offered, waitlisted, checked_in). They are changed
-- only by the single writer, in the same transaction as the registration rows they count, and
-- `boxoffice check` recomputes them from the registrations to prove they agree.

CREATE TABLE events (
    seq               INTEGER PRIMARY KEY,
    id                TEXT    NOT NULL UNIQUE,
    name              TEXT    NOT NULL,
    venue             TEXT    NOT NULL,
    description       TEXT    NOT NULL DEFAULT '',
    starts_at         INTEGER NOT NULL,
    ends_at           INTEGER,
    capacity          INTEGER NOT NULL CHECK (capacity >= 0),
    status            TEXT    NOT NULL CHECK (status IN ('draft', 'published', 'cancelled', 'completed')),
    waitlist_enabled  INTEGER NOT NULL DEFAULT 1 CHECK (waitlist_enabled IN (0, 1)),
    promotion         TEXT    NOT NULL DEFAULT 'direct' CHECK (promotion IN ('direct', 'offer')),
    -- How long an offered seat is held for the head of the waitlist (promotion = 'offer').
    offer_minutes     INTEGER NOT NULL DEFAULT 1440 CHECK (offer_minutes BETWEEN 1 AND 43200),
    confirmed         INTEGER NOT NULL DEFAULT 0 CHECK (confirmed >= 0),
    offered           INTEGER NOT NULL DEFAULT 0 CHECK (offered >= 0),
    waitlisted        INTEGER NOT NULL DEFAULT 0 CHECK (waitlisted >= 0),
    checked_in        INTEGER NOT NULL DEFAULT 0 CHECK (checked_in >= 0),
    promotions        INTEGER NOT NULL DEFAULT 0 CHECK (promotions >= 0),
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    -- I1 as a last line of defence: the writer checks first, the file refuses anyway.
    CHECK (confirmed + offered <= capacity)
);
-- Listing events by date (keyset on starts_at, seq), optionally by status.
CREATE INDEX events_by_start ON events (starts_at, seq);
CREATE INDEX events_by_status_start ON events (status, starts_at, seq);

CREATE TABLE attendees (
    seq         INTEGER PRIMARY KEY,
    id          TEXT    NOT NULL UNIQUE,
    name        TEXT    NOT NULL,
    email       TEXT,
    -- Lower-cased email: uniqueness is case-insensitive (DESIGN.md section 2).
    email_key   TEXT,
    phone       TEXT,
    erased_at   INTEGER,
    created_at  INTEGER NOT NULL
);
CREATE UNIQUE INDEX attendees_email ON attendees (email_key) WHERE email_key IS NOT NULL;

CREATE TABLE registrations (
    seq               INTEGER PRIMARY KEY,
    id                TEXT    NOT NULL UNIQUE,
    event_seq         INTEGER NOT NULL REFERENCES events (seq),
    attendee_seq      INTEGER NOT NULL REFERENCES attendees (seq),
    status            TEXT    NOT NULL
                      CHECK (status = 'confirmed' OR status = 'waitlisted' OR status = 'offered' OR status = 'cancelled'),
    ticket_code       TEXT    UNIQUE,
    offer_expires_at  INTEGER,
    checked_in_at     INTEGER,
    promoted_at       INTEGER,
    -- When it joined the waitlist (NULL for a direct sale): kept through promotion and cancellation, so
    -- the waitlist-to-confirmed conversion of an event can be counted afterwards.
    waitlisted_at     INTEGER,
    -- A counter sale that took a seat while people waited, on the operator's audited override: the one
    -- sanctioned exception to first come, first served (I3).
    seated_by_override INTEGER NOT NULL DEFAULT 0 CHECK (seated_by_override IN (0, 1)),
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    cancelled_at      INTEGER
);
-- I2: one active registration per (event, attendee), enforced by the file itself.
CREATE UNIQUE INDEX registrations_one_active
    ON registrations (event_seq, attendee_seq) WHERE status <> 'cancelled';
-- I3: the waitlist in join order; the head is the first row, a position is a count over this index.
CREATE INDEX registrations_waitlist ON registrations (event_seq, seq) WHERE status = 'waitlisted';
-- The event's registration list, all or by status.
CREATE INDEX registrations_by_event_status ON registrations (event_seq, status, seq);
CREATE INDEX registrations_by_event ON registrations (event_seq, seq);
-- An attendee's tickets.
CREATE INDEX registrations_by_attendee ON registrations (attendee_seq, seq);
-- Open offers by expiry: the next expiry is the first entry, expired offers a range scan.
CREATE INDEX registrations_offers ON registrations (offer_expires_at) WHERE status = 'offered';


-- Transactional outbox (I5): written in the same transaction as the change it describes.
CREATE TABLE outbox (
    seq              INTEGER PRIMARY KEY,
    id               TEXT    NOT NULL UNIQUE,
    type             TEXT    NOT NULL,
    aggregate_id     TEXT    NOT NULL,
    payload          TEXT    NOT NULL,
    created_at       INTEGER NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER,
    last_error       TEXT,
    state            TEXT    NOT NULL DEFAULT 'pending'
                     CHECK (state = 'pending' OR state = 'delivered' OR state = 'dead')
);
-- The processor's queue and the operators' view of trouble: the messages not settled yet and those an
-- endpoint gave up on, in outbox order. Delivered messages, nearly all of them, stay out of it: a message
-- nobody subscribes to is stored delivered and never enters it, one that is delivered leaves it; both
-- are found by `seq` when listed or pruned.
CREATE INDEX outbox_unsettled ON outbox (state, seq) WHERE state = 'pending' OR state = 'dead';
CREATE INDEX outbox_by_aggregate ON outbox (aggregate_id, seq);

-- API tokens: only a SHA-256 of the secret is stored; the secret is shown once.
CREATE TABLE tokens (
    seq         INTEGER PRIMARY KEY,
    id          TEXT    NOT NULL UNIQUE,
    name        TEXT    NOT NULL,
    role        TEXT    NOT NULL CHECK (role IN ('admin', 'operator', 'kiosk')),
    secret_hash TEXT    NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);
CREATE UNIQUE INDEX tokens_active_name ON tokens (name) WHERE revoked_at IS NULL;

-- Stored first responses of creating writes, per (token, Idempotency-Key), kept 24 hours.
-- `attendee_id` names the attendee a stored response is about (it may hold their name, email or
-- phone), so erasing the attendee finds and blanks it (DESIGN.md section 7).
CREATE TABLE idempotency (
    token_seq     INTEGER NOT NULL REFERENCES tokens (seq),
    key           TEXT    NOT NULL,
    fingerprint   TEXT    NOT NULL,
    status        INTEGER NOT NULL,
    content_type  TEXT    NOT NULL,
    body          BLOB    NOT NULL,
    created_at    INTEGER NOT NULL,
    attendee_id   TEXT,
    PRIMARY KEY (token_seq, key)
) WITHOUT ROWID;
CREATE INDEX idempotency_by_age ON idempotency (created_at);
CREATE INDEX idempotency_by_attendee ON idempotency (attendee_id) WHERE attendee_id IS NOT NULL;

-- Who did what, when, from where (DESIGN.md section 6). An action is `noun` or `noun.verb`
-- (`checkin`, `event.capacity`); `noun` is its first part, so `?action=event` finds every event action
-- through one index. The log is read newest first by (at, seq): each filter has an index that starts
-- with its column and goes on with `at` (SQLite appends the rowid, `seq`), so a filtered page, with or
-- without a time window, is one index range read in order, never a scan of the whole log. Door
-- check-ins write one row each, so these five indexes are the whole cost the log adds to a scan.
CREATE TABLE audit (
    seq          INTEGER PRIMARY KEY,
    at           INTEGER NOT NULL,
    actor        TEXT    NOT NULL,
    action       TEXT    NOT NULL,
    target       TEXT,
    remote_addr  TEXT,
    request_id   TEXT,
    detail       TEXT,
    noun         TEXT    GENERATED ALWAYS AS (substr(action, 1, instr(action || '.', '.') - 1)) VIRTUAL
);
CREATE INDEX audit_by_at ON audit (at);
CREATE INDEX audit_by_actor ON audit (actor, at);
CREATE INDEX audit_by_action ON audit (action, at);
CREATE INDEX audit_by_noun ON audit (noun, at);
CREATE INDEX audit_by_target ON audit (target, at);

-- Webhook subscriptions (DESIGN.md section 4). The secret is kept in the clear because the box signs
-- with it (HMAC); it is shown once at creation and never returned by a read. `cursor` is the outbox
-- seq up to which every message has been handled for this endpoint: delivered, or recorded in
-- `deliveries`. A new subscription starts at the newest message: it receives what happens after it.
CREATE TABLE webhooks (
    seq          INTEGER PRIMARY KEY,
    id           TEXT    NOT NULL UNIQUE,
    url          TEXT    NOT NULL,
    -- Space-separated event types, or '*' for every type.
    event_types  TEXT    NOT NULL,
    secret       TEXT    NOT NULL,
    description  TEXT    NOT NULL DEFAULT '',
    enabled      INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    timeout_ms   INTEGER,
    cursor       INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);

-- With webhooks, the outbox columns attempts, last_error and next_attempt_at summarise failures over all
-- endpoints (failed attempts, the latest error, its next retry); the per-endpoint truth is below.
--
-- Per (message, endpoint) delivery state, kept only off the happy path: a message delivered on its
-- first attempt leaves no row here (the endpoint's cursor passed it). A row exists for a message that
-- failed at least once, that waits behind a failing message of the same aggregate (attempts 0), or that
-- an operator sent back for a retry. Pending rows of one aggregate go out in outbox order.
CREATE TABLE deliveries (
    outbox_seq       INTEGER NOT NULL REFERENCES outbox (seq) ON DELETE CASCADE,
    webhook_seq      INTEGER NOT NULL REFERENCES webhooks (seq) ON DELETE CASCADE,
    aggregate_id     TEXT    NOT NULL,
    state            TEXT    NOT NULL CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL,
    last_error       TEXT,
    last_status      INTEGER,
    delivered_at     INTEGER,
    PRIMARY KEY (outbox_seq, webhook_seq)
) WITHOUT ROWID;
-- Due retries of one endpoint, and the per-aggregate hold: is an earlier message of this aggregate
-- still pending for this endpoint?
CREATE INDEX deliveries_due ON deliveries (webhook_seq, next_attempt_at) WHERE state = 'pending';
CREATE INDEX deliveries_hold ON deliveries (webhook_seq, aggregate_id, outbox_seq) WHERE state = 'pending';
CREATE INDEX deliveries_by_webhook ON deliveries (webhook_seq, outbox_seq);

-- How far `outbox.state` has been summarised: every message up to `summarised_seq` is past every
-- endpoint's cursor, so its state says delivered or dead once no delivery of it is pending.
CREATE TABLE outbox_progress (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    summarised_seq  INTEGER NOT NULL
);
INSERT INTO outbox_progress (id, summarised_seq) VALUES (1, 0);
