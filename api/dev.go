package api

import (
	"net"
	"net/http"
	"time"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/auth"
)

// DevTokenTTL is the lifetime of the user tokens POST /v1/dev/token mints.
const DevTokenTTL = time.Hour

// The dev endpoints exist only when herald dev configures them
// (Config.DevJWTSecret, Config.DevAPIKey): they hand out credentials, so
// they answer only requests from a loopback address, and a browser only
// from the server's own origin (or a configured one): the same-origin
// rule of the WebSocket handshake.

// devOnly wraps a dev endpoint with its caller checks.
func (s *Server) devOnly(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !loopback(r.RemoteAddr) {
			writeError(w, http.StatusForbidden, "", "dev endpoints answer only requests from a loopback address")
			return
		}
		if !s.origins.AllowedFor(r.Header.Get("Origin"), r.Host) {
			writeError(w, http.StatusForbidden, "", "origin not allowed: "+r.Header.Get("Origin"))
			return
		}
		h(w, r)
	}
}

// loopback reports whether addr (a RemoteAddr, host:port) is a loopback
// IP address.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// devTokenRequest is the body of POST /v1/dev/token.
type devTokenRequest struct {
	UserID string `json:"user_id"`
}

// devTokenReply is its answer.
type devTokenReply struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
}

// postDevToken mints a user token signed with the dev secret, valid for
// DevTokenTTL: what `herald token` prints, for the demo page.
func (s *Server) postDevToken(w http.ResponseWriter, r *http.Request) {
	var req devTokenRequest
	if !decodeBody(w, r, &req) {
		return
	}
	if err := herald.ValidateUserID(req.UserID); err != nil {
		ve, _ := herald.AsValidationError(err)
		writeError(w, http.StatusBadRequest, "user_id", ve.Error())
		return
	}
	tok, exp, err := auth.MintExpiry(s.cfg.DevJWTSecret, req.UserID, DevTokenTTL)
	if err != nil {
		s.log.Error("minting a dev token failed", "err", err)
		writeError(w, http.StatusInternalServerError, "", "could not mint a token")
		return
	}
	writeJSON(w, http.StatusOK, devTokenReply{Token: tok, ExpiresAt: exp.UTC()})
}

// postDevEvents is POST /v1/events authenticated as the dev API key, so
// that the demo page sends events without holding the key.
func (s *Server) postDevEvents(w http.ResponseWriter, r *http.Request) {
	s.acceptEvents(w, r, s.cfg.DevAPIKey)
}
