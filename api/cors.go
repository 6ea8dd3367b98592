package api

import (
	"net/http"
	"slices"
	"strings"
)

// cors answers browsers calling the API from another origin. Only origins
// in allowed ("*" for any) get the Access-Control headers; credentials are
// bearer tokens, never cookies, so no Allow-Credentials.
func cors(allowed []string, next http.Handler) http.Handler {
	if len(allowed) == 0 {
		return next
	}
	any := slices.Contains(allowed, "*")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin == "" || (!any && !slices.Contains(allowed, origin)) {
			next.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		h.Add("Vary", "Origin")
		h.Set("Access-Control-Allow-Origin", origin)
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

// originList normalises configured origins (no trailing slash).
func originList(in []string) []string {
	out := make([]string, 0, len(in))
	for _, o := range in {
		out = append(out, strings.TrimRight(o, "/"))
	}
	return out
}
