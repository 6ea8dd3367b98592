// Package jsclient embeds the built JavaScript client (clients/js/dist) so that Herald
// can serve it, e.g. under /sdk/ in `herald dev`. The files are committed: run
// `npm ci && npm run build` in clients/js after changing src/.
package jsclient

import (
	"embed"
	"io/fs"
)

//go:embed dist/*.js dist/transports/*.js
var dist embed.FS

// Dist is the dist directory: herald.js at its root, the modules it imports beside it
// (transports/ included), as ES modules that import each other by relative path.
var Dist fs.FS

func init() {
	sub, err := fs.Sub(dist, "dist")
	if err != nil {
		panic(err) // the pattern above guarantees the directory
	}
	Dist = sub
}
