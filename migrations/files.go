package migrations

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

//go:embed *.cql
var embedded embed.FS

// Placeholder is replaced by the keyspace name in every statement.
const Placeholder = "${keyspace}"

// Files returns the migration files built into the binary.
func Files() fs.FS { return embedded }

// Migration is one parsed migration file.
type Migration struct {
	Version    int      // the NNNN prefix of the file name
	Name       string   // the file name, e.g. "0001_inbox.cql"; the key in schema_migrations
	Checksum   string   // hex SHA-256 of the file's bytes
	Statements []string // in file order, comments removed, Placeholder not substituted
}

// Bound returns the statements with Placeholder replaced by keyspace.
func (m Migration) Bound(keyspace string) []string {
	out := make([]string, len(m.Statements))
	for i, s := range m.Statements {
		out[i] = strings.ReplaceAll(s, Placeholder, keyspace)
	}
	return out
}

// ErrBadFile is wrapped by Load for a file that is misnamed, duplicated or
// cannot be parsed.
var ErrBadFile = errors.New("migrations: bad migration file")

var fileName = regexp.MustCompile(`^([0-9]{4})_[a-z0-9_]+\.cql$`)

// Load reads every *.cql file at the root of fsys and returns them ordered by
// version. Names must be NNNN_name.cql (lower case), versions unique, and each
// file must hold at least one statement.
func Load(fsys fs.FS) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("migrations: read files: %w", err)
	}
	var out []Migration
	seen := map[int]string{}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".cql") {
			continue
		}
		m := fileName.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("%w: %q: the name must be NNNN_name.cql (lower case, digits, underscores)", ErrBadFile, e.Name())
		}
		v, _ := strconv.Atoi(m[1])
		if v == 0 {
			return nil, fmt.Errorf("%w: %q: versions start at 0001", ErrBadFile, e.Name())
		}
		if other, dup := seen[v]; dup {
			return nil, fmt.Errorf("%w: %q and %q share version %04d", ErrBadFile, other, e.Name(), v)
		}
		seen[v] = e.Name()
		src, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return nil, fmt.Errorf("migrations: read %s: %w", e.Name(), err)
		}
		stmts, err := SplitStatements(string(src))
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrBadFile, e.Name(), err)
		}
		if len(stmts) == 0 {
			return nil, fmt.Errorf("%w: %s holds no statement", ErrBadFile, e.Name())
		}
		sum := sha256.Sum256(src)
		out = append(out, Migration{Version: v, Name: e.Name(), Checksum: hex.EncodeToString(sum[:]), Statements: stmts})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

// SplitStatements splits CQL source into statements at top-level semicolons.
// Comments (--, // to the end of the line, /* */) are dropped; semicolons
// inside 'strings', "quoted identifiers" and $$code blocks$$ do not split.
// Statements are trimmed; empty ones are dropped. A trailing statement
// without a semicolon is kept.
func SplitStatements(src string) ([]string, error) {
	var (
		out []string
		cur strings.Builder
	)
	flush := func() {
		if s := strings.TrimSpace(cur.String()); s != "" {
			out = append(out, s)
		}
		cur.Reset()
	}
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == ';':
			flush()
			i++
		case c == '\'' || c == '"':
			end, err := quotedEnd(src, i)
			if err != nil {
				return nil, err
			}
			cur.WriteString(src[i:end])
			i = end
		case strings.HasPrefix(src[i:], "$$"):
			j := strings.Index(src[i+2:], "$$")
			if j < 0 {
				return nil, fmt.Errorf("unterminated $$ block at byte %d", i)
			}
			end := i + 2 + j + 2
			cur.WriteString(src[i:end])
			i = end
		case strings.HasPrefix(src[i:], "--"), strings.HasPrefix(src[i:], "//"):
			j := strings.IndexByte(src[i:], '\n')
			if j < 0 {
				i = len(src)
			} else {
				i += j // keep the newline as a separator
			}
		case strings.HasPrefix(src[i:], "/*"):
			j := strings.Index(src[i+2:], "*/")
			if j < 0 {
				return nil, fmt.Errorf("unterminated /* comment at byte %d", i)
			}
			cur.WriteByte(' ')
			i += 2 + j + 2
		default:
			cur.WriteByte(c)
			i++
		}
	}
	flush()
	return out, nil
}

// quotedEnd returns the index just past the quoted run starting at src[i];
// a doubled quote character is an escaped one.
func quotedEnd(src string, i int) (int, error) {
	q := src[i]
	for j := i + 1; j < len(src); j++ {
		if src[j] != q {
			continue
		}
		if j+1 < len(src) && src[j+1] == q {
			j++
			continue
		}
		return j + 1, nil
	}
	return 0, fmt.Errorf("unterminated %c quote at byte %d", q, i)
}
