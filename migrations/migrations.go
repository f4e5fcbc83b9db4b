// Package migrations holds warren's numbered SQL migrations (0001_init.sql,
// ...), embedded in the binary so the store can apply them at start. Never edit
// a migration that has been applied somewhere; add the next number instead.
package migrations

import (
	"embed"
	"io/fs"
)

//go:embed *.sql
var files embed.FS

// Files returns the migration files, named NNNN_description.sql, at the root
// of the returned file system.
func Files() fs.FS {
	return files
}
