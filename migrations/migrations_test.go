package migrations

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"
)

func TestSplitStatements(t *testing.T) {
	cases := []struct {
		name, src string
		want      []string
	}{
		{"empty", "", nil},
		{"comments only", "-- a\n// b\n/* c; */\n", nil},
		{"one without semicolon", "SELECT 1", []string{"SELECT 1"}},
		{"two", "CREATE TABLE a (k int PRIMARY KEY);\n\nCREATE TABLE b (k int PRIMARY KEY);", []string{
			"CREATE TABLE a (k int PRIMARY KEY)", "CREATE TABLE b (k int PRIMARY KEY)",
		}},
		{"semicolon in string", "ALTER TABLE t WITH comment = 'a;b''c;';", []string{"ALTER TABLE t WITH comment = 'a;b''c;'"}},
		{"semicolon in quoted identifier", `SELECT "we;ird" FROM t;`, []string{`SELECT "we;ird" FROM t`}},
		{"semicolon in $$", "CREATE FUNCTION f() RETURNS NULL ON NULL INPUT RETURNS int LANGUAGE java AS $$ return 1; $$;",
			[]string{"CREATE FUNCTION f() RETURNS NULL ON NULL INPUT RETURNS int LANGUAGE java AS $$ return 1; $$"}},
		{"comments removed", "CREATE TABLE t ( -- the key; really\n k int PRIMARY KEY /* ; */ ) // end;\n;", []string{
			"CREATE TABLE t ( \n k int PRIMARY KEY   )",
		}},
		{"empty statements dropped", ";;  ;\nSELECT 1;;", []string{"SELECT 1"}},
		{"dash inside string kept", "INSERT INTO t (k, v) VALUES (1, '-- not a comment');", []string{"INSERT INTO t (k, v) VALUES (1, '-- not a comment')"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := SplitStatements(c.src)
			if err != nil {
				t.Fatalf("SplitStatements: %v", err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got %q, want %q", got, c.want)
			}
		})
	}
	for _, bad := range []string{"SELECT 'x", `SELECT "x`, "/* x", "AS $$ x"} {
		if _, err := SplitStatements(bad); err == nil {
			t.Errorf("SplitStatements(%q): no error for unterminated input", bad)
		}
	}
}

func TestEmbeddedFiles(t *testing.T) {
	migs, err := Load(Files())
	if err != nil {
		t.Fatalf("Load(embedded): %v", err)
	}
	if len(migs) == 0 {
		t.Fatal("no embedded migrations")
	}
	tables := map[string]bool{}
	for i, m := range migs {
		if i > 0 && m.Version <= migs[i-1].Version {
			t.Fatalf("not ordered: %s after %s", m.Name, migs[i-1].Name)
		}
		if len(m.Checksum) != 64 {
			t.Fatalf("%s: checksum %q", m.Name, m.Checksum)
		}
		for _, s := range m.Statements {
			up := strings.ToUpper(s)
			// Every statement must be idempotent and keyspace-qualified.
			if !strings.Contains(up, "IF NOT EXISTS") && !strings.Contains(up, "IF EXISTS") {
				t.Errorf("%s: statement is not idempotent: %s", m.Name, s)
			}
			if !strings.Contains(s, Placeholder+".") {
				t.Errorf("%s: statement does not name ${keyspace}.table: %s", m.Name, s)
			}
			if strings.HasPrefix(up, "CREATE TABLE IF NOT EXISTS ") {
				name := strings.Fields(s)[5]
				tables[strings.TrimPrefix(name, Placeholder+".")] = true
			}
		}
		bound := m.Bound("ks_x")
		for _, s := range bound {
			if strings.Contains(s, Placeholder) {
				t.Fatalf("Bound left the placeholder in %s", s)
			}
		}
	}
	for _, want := range []string{"inbox", "claims", "preferences", "devices", "device_owner", "push_progress", "writer_epochs",
		"policy_state", "policy_due", "policy_cursor",
		"subscriptions_by_user", "subscriptions_by_topic", "subscription_counts",
		"feed_items", "feed_events", "feed_heads", "feed_cursors"} {
		if !tables[want] {
			t.Errorf("no migration creates table %s (have %v)", want, tables)
		}
	}
}

func TestLoadOrderAndErrors(t *testing.T) {
	ok := fstest.MapFS{
		"0010_later.cql":  {Data: []byte("CREATE TABLE IF NOT EXISTS ${keyspace}.b (k int PRIMARY KEY);")},
		"0002_first.cql":  {Data: []byte("CREATE TABLE IF NOT EXISTS ${keyspace}.a (k int PRIMARY KEY);")},
		"README.md":       {Data: []byte("not a migration")},
		"sub/0003_no.cql": {Data: []byte("ignored: not at the root")},
	}
	migs, err := Load(ok)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if len(migs) != 2 || migs[0].Name != "0002_first.cql" || migs[1].Name != "0010_later.cql" || migs[0].Version != 2 || migs[1].Version != 10 {
		t.Fatalf("Load order: %+v", migs)
	}
	// The checksum covers the bytes, comments included.
	a, _ := Load(fstest.MapFS{"0001_a.cql": {Data: []byte("SELECT 1;")}})
	b, _ := Load(fstest.MapFS{"0001_a.cql": {Data: []byte("-- changed\nSELECT 1;")}})
	if a[0].Checksum == b[0].Checksum {
		t.Fatal("checksum ignores a changed comment")
	}

	bad := map[string]fstest.MapFS{
		"bad name":      {"1_x.cql": {Data: []byte("SELECT 1;")}},
		"upper case":    {"0001_Inbox.cql": {Data: []byte("SELECT 1;")}},
		"version zero":  {"0000_x.cql": {Data: []byte("SELECT 1;")}},
		"duplicate":     {"0001_a.cql": {Data: []byte("SELECT 1;")}, "0001_b.cql": {Data: []byte("SELECT 1;")}},
		"empty":         {"0001_a.cql": {Data: []byte("-- nothing\n")}},
		"unterminated":  {"0001_a.cql": {Data: []byte("ALTER TABLE t WITH comment = 'x;")}},
		"space in name": {"0001_a b.cql": {Data: []byte("SELECT 1;")}},
	}
	for name, fsys := range bad {
		if _, err := Load(fsys); !errors.Is(err, ErrBadFile) {
			t.Errorf("%s: Load = %v, want ErrBadFile", name, err)
		}
	}
}

func TestReplication(t *testing.T) {
	cases := []struct {
		in, cql string
	}{
		{"", "{'class': 'SimpleStrategy', 'replication_factor': 1}"},
		{"3", "{'class': 'SimpleStrategy', 'replication_factor': 3}"},
		{"simple:2", "{'class': 'SimpleStrategy', 'replication_factor': 2}"},
		{"SimpleStrategy:1", "{'class': 'SimpleStrategy', 'replication_factor': 1}"},
		{"dc2=2, dc1=3", "{'class': 'NetworkTopologyStrategy', 'dc1': 3, 'dc2': 2}"},
		{"NetworkTopologyStrategy:eu-west=3", "{'class': 'NetworkTopologyStrategy', 'eu-west': 3}"},
		{"nts:dc1=3", "{'class': 'NetworkTopologyStrategy', 'dc1': 3}"},
	}
	for _, c := range cases {
		r, err := ParseReplication(c.in)
		if err != nil {
			t.Fatalf("ParseReplication(%q): %v", c.in, err)
		}
		got, err := r.CQL()
		if err != nil || got != c.cql {
			t.Fatalf("ParseReplication(%q).CQL() = %q, %v; want %q", c.in, got, err, c.cql)
		}
		// String round-trips.
		again, err := ParseReplication(r.String())
		if err != nil {
			t.Fatalf("ParseReplication(%q.String() = %q): %v", c.in, r.String(), err)
		}
		if cql, _ := again.CQL(); cql != c.cql {
			t.Fatalf("%q: String round trip gives %q", c.in, cql)
		}
	}
	for _, bad := range []string{"0", "simple:x", "simple:-1", "weird:3", "dc1", "dc1=x", "dc'1=3", "dc1=3,dc1=2", "nts:"} {
		if _, err := ParseReplication(bad); !errors.Is(err, ErrBadReplication) {
			t.Errorf("ParseReplication(%q) = %v, want ErrBadReplication", bad, err)
		}
	}
	if _, err := (Replication{Class: NetworkTopologyStrategy}).CQL(); !errors.Is(err, ErrBadReplication) {
		t.Errorf("NTS without datacenters: %v", err)
	}
	if _, err := (Replication{Class: SimpleStrategy, DataCenters: map[string]int{"dc1": 1}}).CQL(); !errors.Is(err, ErrBadReplication) {
		t.Errorf("SimpleStrategy with datacenters: %v", err)
	}

	simple1 := map[string]string{"class": "org.apache.cassandra.locator.SimpleStrategy", "replication_factor": "1"}
	nts := map[string]string{"class": "org.apache.cassandra.locator.NetworkTopologyStrategy", "dc1": "3", "dc2": "2"}
	checks := []struct {
		r    Replication
		got  map[string]string
		want bool
	}{
		{Replication{}, simple1, true},
		{Replication{Factor: 3}, simple1, false},
		{Replication{DataCenters: map[string]int{"dc1": 3, "dc2": 2}}, nts, true},
		{Replication{DataCenters: map[string]int{"dc1": 3}}, nts, false},
		{Replication{}, nts, false},
	}
	for i, c := range checks {
		if got := c.r.matches(c.got); got != c.want {
			t.Errorf("check %d: %v.matches(%v) = %v", i, c.r, c.got, got)
		}
	}
}

func TestValidKeyspace(t *testing.T) {
	for _, ok := range []string{"herald", "herald_test_0a1b", "H1"} {
		if err := ValidKeyspace(ok); err != nil {
			t.Errorf("ValidKeyspace(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "1herald", "her-ald", "herald; DROP KEYSPACE x", strings.Repeat("a", 49), `"quoted"`} {
		if err := ValidKeyspace(bad); !errors.Is(err, ErrBadKeyspace) {
			t.Errorf("ValidKeyspace(%q) = %v, want ErrBadKeyspace", bad, err)
		}
	}
}
