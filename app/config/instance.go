package config

// ValidInstanceID reports whether id is a valid Kafka group.instance.id:
// 1 to 249 of a-z, A-Z, 0-9, '.', '_' and '-' (the broker's rule, that of
// topic names).
func ValidInstanceID(id string) bool {
	if len(id) == 0 || len(id) > 249 {
		return false
	}
	for _, r := range id {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
		default:
			return false
		}
	}
	return true
}
