-- Sign-in for the web pages (SPEC "GET /login, POST /login, POST /logout"). Like tokens, the
-- session ids and one-time codes are random and only their SHA-256 hashes are stored, so a
-- copy of the database signs no one in. A session belongs to a token (by name): it ends when
-- that token is revoked or expires, which every page request checks against `tokens`.
CREATE TABLE web_sessions (
    hash        TEXT PRIMARY KEY,
    token_name  TEXT NOT NULL REFERENCES tokens(name),
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX web_sessions_token ON web_sessions (token_name);

-- One-time sign-in codes (the link `foodgate demo` prints): valid 10 minutes, used once.
CREATE TABLE signin_codes (
    hash        TEXT PRIMARY KEY,
    token_name  TEXT NOT NULL REFERENCES tokens(name),
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    used_at     TEXT
) WITHOUT ROWID;
