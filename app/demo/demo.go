// Package demo is the demo inbox `herald dev` serves at /: a page of plain
// HTML, CSS and JavaScript, embedded in the binary, that connects as a
// user with the JavaScript SDK (clients/js), lists the inbox with its
// unread badge, marks notifications read, sends events to any user and
// shows what the fake APNs and FCM received.
//
// It relies on herald dev's dev-only endpoints: POST /v1/dev/token for a
// user token, POST /v1/dev/events to send as the dev API key, and GET
// /v1/dev/pushes (docs/ARCHITECTURE.md). No production role mounts it.
package demo

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"hash/fnv"
	"io/fs"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"
)

// assets are the page and what it loads from /demo/.
//
//go:embed index.html demo.css demo.js
var assets embed.FS

// Config configures the Handler.
type Config struct {
	// SDK holds the SDK's built files (herald.js and the modules it
	// imports), served under /sdk/. Nil means no SDK: /sdk/… is a 404
	// and the page says that it cannot load it.
	SDK fs.FS
}

// Handler serves GET and HEAD of:
//   - / (exactly): the page, index.html;
//   - /demo/<file>: the page's stylesheet and script;
//   - /sdk/<file>: Config.SDK's files.
//
// Every other path is the API's JSON 404 ({"error":"no route for …"}),
// every other method on those paths a JSON 405 with Allow.
type Handler struct {
	sdk fs.FS
}

var _ http.Handler = (*Handler)(nil)

// New returns the Handler for cfg.
func New(cfg Config) *Handler { return &Handler{sdk: cfg.SDK} }

// contentTypes are the types served by extension, fixed here rather than
// taken from the system's MIME tables (which may say
// application/javascript, or nothing, depending on the machine).
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".mjs":  "text/javascript; charset=utf-8",
	".map":  "application/json",
	".ts":   "text/plain; charset=utf-8",
	".json": "application/json",
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	fsys, name := h.resolve(r.URL.Path)
	if fsys == nil {
		writeError(w, http.StatusNotFound, "no route for "+r.URL.Path)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, http.StatusMethodNotAllowed, r.Method+" is not allowed on "+r.URL.Path+"; allowed: GET, HEAD")
		return
	}
	b, err := fs.ReadFile(fsys, name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrInvalid) {
			writeError(w, http.StatusNotFound, "no route for "+r.URL.Path)
			return
		}
		writeError(w, http.StatusInternalServerError, "reading "+r.URL.Path+": "+err.Error())
		return
	}
	hd := w.Header()
	if ct, ok := contentTypes[path.Ext(name)]; ok {
		hd.Set("Content-Type", ct)
	}
	hd.Set("X-Content-Type-Options", "nosniff")
	// A development tool whose files change with the binary: always
	// revalidate (the ETag below makes that cheap).
	hd.Set("Cache-Control", "no-cache")
	hd.Set("ETag", etag(b))
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(b))
}

// resolve maps a URL path to the file system and file name that serve
// it; nil when no file system does.
func (h *Handler) resolve(p string) (fs.FS, string) {
	switch {
	case p == "/":
		return assets, "index.html"
	case strings.HasPrefix(p, "/demo/"):
		if name := strings.TrimPrefix(p, "/demo/"); name != "index.html" && fs.ValidPath(name) {
			return assets, name
		}
	case strings.HasPrefix(p, "/sdk/") && h.sdk != nil:
		if name := strings.TrimPrefix(p, "/sdk/"); fs.ValidPath(name) && name != "." {
			return h.sdk, name
		}
	}
	return nil, ""
}

// etag is a strong validator of b: its FNV-1a hash.
func etag(b []byte) string {
	h := fnv.New64a()
	_, _ = h.Write(b)
	return `"` + strconv.FormatUint(h.Sum64(), 16) + `"`
}

// writeError writes the API's error body, {"error":"…"}.
func writeError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}
