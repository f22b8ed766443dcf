DROP TABLE api_tokens;
DROP TABLE sign_in_attempts;
DROP TABLE identity_bindings;
