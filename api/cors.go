package api

import (
	"net/http"

	"github.com/heraldhq/herald/internal/origin"
)

// cors answers browsers calling the API from another origin. Only origins
// the matcher accepts (internal/origin, the same rule as the gateway's
// WebSocket check) get the Access-Control headers; with no origin
// configured there are none. Credentials are bearer tokens, never cookies,
// so no Allow-Credentials.
func cors(allowed *origin.Matcher, next http.Handler) http.Handler {
	if !allowed.Configured() {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o := r.Header.Get("Origin")
		if !allowed.Match(o) {
			next.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		h.Add("Vary", "Origin")
		h.Set("Access-Control-Allow-Origin", o)
		h.Set("Access-Control-Expose-Headers", "Retry-After")
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE")
			h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
			h.Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		next.ServeHTTP(w, r)
	})
}
