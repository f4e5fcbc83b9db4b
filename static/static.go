// Package static holds the dashboard's front-end files (CSS, JavaScript and
// the vendored htmx), embedded into the binary so warren ships as one file.
//
// htmx.min.js is htmx.org 2.0.11, copied unmodified from dist/htmx.min.js of
// the npm package (`npm pack htmx.org@2`); see README.md for how to update it.
package static

import (
	"embed"
	"io/fs"
)

//go:embed app.css app.js favicon.svg htmx.min.js
var files embed.FS

// FS returns the embedded front-end files, at the root of the returned file
// system (app.css, app.js, favicon.svg, htmx.min.js).
func FS() fs.FS {
	return files
}
