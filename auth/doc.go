// Package auth authenticates Herald's callers.
//
// Users present a JWT whose "sub" is their user id and which carries an
// "exp". A [Verifier] accepts HS256 tokens signed with one of the configured
// secrets and RS256/ES256 (also ES384/ES512) tokens signed by the holder of
// one of the configured public keys. Every key is pinned to exactly one
// algorithm, so a token cannot choose how it is checked: an HS256 token is
// never verified with an RSA public key as the HMAC secret, and "none" is
// never accepted.
//
// Upstream services present an API key; [APIKeys] checks it in constant
// time. [BearerToken] extracts a credential from a request, and [Mint] signs
// HS256 user tokens for `herald token` and tests.
package auth
