-- Sign-in with the trust's identity provider (OpenID Connect) and personal API tokens.

-- A person's account at the provider (issuer + subject), bound to their staff record on
-- their first sign-in; later sign-ins match by it.
CREATE TABLE identity_bindings (
    issuer TEXT NOT NULL,
    subject TEXT NOT NULL,
    staff_id TEXT NOT NULL REFERENCES staff (id),
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (issuer, subject)
);
CREATE INDEX identity_bindings_by_staff ON identity_bindings (staff_id);

-- A sign-in on its way through the provider: the browser holds `state` in a cookie, the
-- row holds the nonce and the PKCE verifier. Used once, and only for a few minutes.
CREATE TABLE sign_in_attempts (
    state_hash TEXT PRIMARY KEY NOT NULL,
    nonce TEXT NOT NULL,
    pkce_verifier TEXT NOT NULL,
    next_path TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);

-- Personal API tokens: a name, an expiry, revocable by their owner. Only the hash is kept.
CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY NOT NULL,
    staff_id TEXT NOT NULL REFERENCES staff (id),
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    last_used_at TIMESTAMP,
    revoked_at TIMESTAMP
);
CREATE INDEX api_tokens_by_staff ON api_tokens (staff_id);
