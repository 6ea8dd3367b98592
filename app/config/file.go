package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"go.yaml.in/yaml/v3"
)

// fileValues are the scalar settings of a --config file, by key.
type fileValues struct {
	path string
	keys map[string]*yaml.Node
}

func (f *fileValues) has(key string) bool { _, ok := f.keys[key]; return ok }

// apply sets v from the file's value of s: a scalar in the text form of
// flags, or a YAML sequence for a list.
func (f *fileValues) apply(s *setting, v value) error {
	n := f.keys[s.yamlKey()]
	where := fmt.Sprintf("config file %s: line %d: %s", f.path, n.Line, s.yamlKey())
	switch n.Kind {
	case yaml.ScalarNode:
		text := n.Value
		if n.Tag == "!!null" {
			text = ""
		}
		if err := v.Set(text); err != nil {
			return fmt.Errorf("%s: %s: %w", where, quote(s, text), err)
		}
		return nil
	case yaml.SequenceNode:
		if v.kind() != "list" {
			return fmt.Errorf("%s: want a single value, not a list", where)
		}
		items := make([]string, 0, len(n.Content))
		for _, item := range n.Content {
			if item.Kind != yaml.ScalarNode {
				return fmt.Errorf("%s: line %d: want a list of plain values", where, item.Line)
			}
			items = append(items, item.Value)
		}
		return v.Set(strings.Join(items, ","))
	}
	return fmt.Errorf("%s: want a value, not a mapping", where)
}

// loadFile reads a --config file: a YAML mapping whose keys are the
// settings' flag names (any role's: one file may serve every role) and
// the sections of Sections, decoded strictly into sections. Any other key
// is an error naming it.
func loadFile(path string, sections *Sections) (*fileValues, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	return parseFile(path, raw, sections)
}

func parseFile(path string, raw []byte, sections *Sections) (*fileValues, error) {
	f := &fileValues{path: path, keys: map[string]*yaml.Node{}}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return f, nil // an empty file sets nothing
		}
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("config file %s: want one YAML document", path)
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return f, nil
	}
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("config file %s: line %d: want a mapping of settings", path, root.Line)
	}
	_, all := settings()
	section := map[string]any{"push": &sections.Push, "policy": &sections.Policy}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		key := k.Value
		if _, dup := f.keys[key]; dup {
			return nil, fmt.Errorf("config file %s: line %d: %s is set twice", path, k.Line, key)
		}
		if target, ok := section[key]; ok {
			if err := decodeStrict(v, target); err != nil {
				return nil, fmt.Errorf("config file %s: line %d: %s: %w", path, k.Line, key, err)
			}
			f.keys[key] = v
			continue
		}
		s, ok := all[key]
		if !ok || s.flag == fConfig {
			return nil, fmt.Errorf("config file %s: line %d: unknown key %q (see docs/CONFIGURATION.md)", path, k.Line, key)
		}
		f.keys[key] = v
	}
	return f, nil
}

// decodeStrict decodes n into target refusing unknown fields (Node.Decode
// has no such option, hence the round trip).
func decodeStrict(n *yaml.Node, target any) error {
	raw, err := yaml.Marshal(n)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(target); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}
