package config

import (
	"fmt"
	"strings"
)

// Markdown is the settings table of docs/CONFIGURATION.md: flag,
// environment variable, YAML key, default and the roles that use each
// setting.
func Markdown() string {
	table, _ := settings()
	var b strings.Builder
	b.WriteString("| flag | environment | YAML key | default | roles | meaning |\n")
	b.WriteString("|---|---|---|---|---|---|\n")
	for _, s := range table {
		var used []string
		for _, r := range Roles {
			if Uses(r, s.flag) {
				used = append(used, r)
			}
		}
		if len(used) == len(Roles) {
			used = []string{"all"}
		}
		key := "`" + s.yamlKey() + "`"
		if s.flag == fConfig {
			key = "—"
		}
		def := defaultText(s)
		switch {
		case s.secret:
			def = "— (secret)"
		case def == "":
			def = "—"
		default:
			def = "`" + def + "`"
		}
		fmt.Fprintf(&b, "| `--%s` | `%s` | %s | %s | %s | %s |\n",
			s.flag, s.env, key, def, strings.Join(used, ", "), strings.ReplaceAll(s.usage, "|", "\\|"))
	}
	return b.String()
}
