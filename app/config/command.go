package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
)

// ErrHelp is returned by Parse for -h or --help, after the help was
// written: the caller exits 0.
var ErrHelp = flag.ErrHelp

// LookupEnv is how Parse reads the environment; os.LookupEnv in
// production, a map in tests.
type LookupEnv func(key string) (string, bool)

// Command is the settings of one subcommand: a flag set holding only the
// settings that role uses, plus the command's own flags (herald send's
// --user, say) that callers add to FlagSet before Parse.
type Command struct {
	role     string
	synopsis string
	fs       *flag.FlagSet
	cfg      *Config
	used     []*setting
	flags    map[string]*flagValue
	source   map[string]string // flag → where its value came from
}

// flagValue wraps a setting's value for the flag package, keeping the
// parse error so that Parse can report it in Herald's words.
type flagValue struct {
	value
	s   *setting
	set bool
	err error
	raw string
}

func (f *flagValue) Set(s string) error {
	if err := f.value.Set(s); err != nil {
		f.err, f.raw = err, s
		return err
	}
	f.set = true
	return nil
}

func (f *flagValue) IsBoolFlag() bool { return f.kind() == "bool" }

// New returns the settings of role, one of Roles, with their defaults.
// synopsis is the first line of -h, e.g. "herald token [flags] <user_id>";
// "" means "herald <role> [flags]".
func New(role, synopsis string) (*Command, error) {
	names, ok := roles[role]
	if !ok {
		return nil, fmt.Errorf("config: unknown role %q", role)
	}
	if synopsis == "" {
		synopsis = "herald " + role + " [flags]"
	}
	_, all := settings()
	c := &Command{
		role: role, synopsis: synopsis,
		fs:     flag.NewFlagSet(role, flag.ContinueOnError),
		cfg:    &Config{Role: role},
		flags:  map[string]*flagValue{},
		source: map[string]string{},
	}
	c.fs.SetOutput(io.Discard)
	c.fs.Usage = func() {}
	applyDefaults(c.cfg)
	for _, name := range append([]string{fConfig}, names...) {
		s := all[name]
		fv := &flagValue{value: s.bind(c.cfg), s: s}
		c.used = append(c.used, s)
		c.flags[name] = fv
		c.fs.Var(fv, name, s.usage)
	}
	return c, nil
}

// applyDefaults sets every field of cfg to its setting's default, so that a
// setting a role does not register still has its documented value.
func applyDefaults(cfg *Config) {
	table, _ := settings()
	for _, s := range table {
		if err := s.bind(cfg).Set(s.def); err != nil {
			panic(fmt.Sprintf("config: default of --%s: %v", s.flag, err))
		}
	}
}

// Defaults returns a Config with every setting at its default, for
// callers (tests, herald dev) that build one without parsing.
func Defaults(role string) *Config {
	c := &Config{Role: role}
	applyDefaults(c)
	return c
}

// FlagSet is where the command adds its own flags before Parse.
func (c *Command) FlagSet() *flag.FlagSet { return c.fs }

// Args are the arguments left after the flags.
func (c *Command) Args() []string { return c.fs.Args() }

// Parse reads args, then the environment, then the --config file, fills
// the Config, and validates it. For -h it writes the help to help and
// returns ErrHelp.
func (c *Command) Parse(args []string, env LookupEnv, help io.Writer) (*Config, error) {
	if err := c.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			c.Usage(help)
			return nil, ErrHelp
		}
		for _, fv := range c.flags {
			if fv.err != nil {
				return nil, fmt.Errorf("--%s=%s: %w", fv.s.flag, quote(fv.s, fv.raw), fv.err)
			}
		}
		return nil, fmt.Errorf("%w (see herald %s -h)", err, c.role)
	}
	// The file's path comes from the flag or the environment only.
	if !c.flags[fConfig].set {
		if v, ok := env("HERALD_CONFIG"); ok {
			c.cfg.File = v
		}
	}
	var file *fileValues
	if c.cfg.File != "" {
		var err error
		if file, err = loadFile(c.cfg.File, &c.cfg.Sections); err != nil {
			return nil, err
		}
	}
	for _, s := range c.used {
		fv := c.flags[s.flag]
		switch {
		case s.flag == fConfig:
			c.source[s.flag] = "--" + s.flag
		case fv.set:
			c.source[s.flag] = "--" + s.flag
		case s.env != "" && has(env, s.env):
			raw, _ := env(s.env)
			if err := fv.value.Set(raw); err != nil {
				return nil, fmt.Errorf("$%s=%s: %w", s.env, quote(s, raw), err)
			}
			c.source[s.flag] = "$" + s.env
		case file != nil && file.has(s.yamlKey()):
			if err := file.apply(s, fv.value); err != nil {
				return nil, err
			}
			c.source[s.flag] = fmt.Sprintf("%s (in %s)", s.yamlKey(), c.cfg.File)
		}
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	return c.cfg, nil
}

func has(env LookupEnv, key string) bool {
	_, ok := env(key)
	return ok
}

// quote shows a value in an error, unless it is a secret.
func quote(s *setting, raw string) string {
	if s.secret {
		return "<secret>"
	}
	return fmt.Sprintf("%q", raw)
}

// name is how an error names a setting: where its value came from, or
// both the flag and the variable when it has its default.
func (c *Command) name(flagName string) string {
	if src, ok := c.source[flagName]; ok {
		return src
	}
	_, all := settings()
	if s := all[flagName]; s != nil && s.env != "" {
		return "--" + flagName + " ($" + s.env + ")"
	}
	return "--" + flagName
}

// Usage writes the help: the synopsis, then each setting with its
// variable and default (never a secret's), then the command's own flags.
func (c *Command) Usage(w io.Writer) {
	if w == nil {
		return
	}
	// Built in memory, written once: a failed write of help has no remedy.
	var b strings.Builder
	defer func() { _, _ = io.WriteString(w, b.String()) }()
	fmt.Fprintf(&b, "usage: %s\n\n", c.synopsis)
	fmt.Fprintln(&b, "Settings (a flag wins over its environment variable, which wins over the --config file):")
	for _, s := range c.used {
		writeFlag(&b, s.flag, c.flags[s.flag].kind(), s.usage, defaultText(s), s.env)
	}
	var own []*flag.Flag
	c.fs.VisitAll(func(f *flag.Flag) {
		if _, ok := c.flags[f.Name]; !ok {
			own = append(own, f)
		}
	})
	if len(own) > 0 {
		sort.Slice(own, func(i, j int) bool { return own[i].Name < own[j].Name })
		fmt.Fprintf(&b, "\nFlags of herald %s:\n", c.role)
		for _, f := range own {
			typ, usage := flag.UnquoteUsage(f)
			if typ == "" {
				typ = "bool"
			}
			writeFlag(&b, f.Name, typ, usage, f.DefValue, "")
		}
	}
	fmt.Fprintln(&b, "\nAll settings: docs/CONFIGURATION.md")
}

func writeFlag(w *strings.Builder, name, typ, usage, def, env string) {
	fmt.Fprintf(w, "  --%s %s\n        %s", name, typ, usage)
	var extra []string
	if def != "" && def != "false" {
		extra = append(extra, "default "+def)
	}
	if env != "" {
		extra = append(extra, "$"+env)
	}
	if len(extra) > 0 {
		fmt.Fprintf(w, " (%s)", strings.Join(extra, "; "))
	}
	fmt.Fprintln(w)
}

// defaultText is the default as -h and the documentation show it: never
// a secret's, and the documented form of machine-dependent ones.
func defaultText(s *setting) string {
	switch {
	case s.secret:
		return ""
	case s.docDef != "":
		return s.docDef
	}
	return s.def
}
