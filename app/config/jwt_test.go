package config

import (
	"strings"
	"testing"
	"time"
)

func TestJWTMaxLifetime(t *testing.T) {
	env := map[string]string{"HERALD_JWT_SECRET": "s"}
	if cfg := mustParse(t, "api", nil, env); cfg.JWTMaxLifetime != 0 {
		t.Errorf("default %s, want 0 (no limit)", cfg.JWTMaxLifetime)
	}
	for _, role := range []string{"api", "gateway", "dev"} {
		if cfg := mustParse(t, role, []string{"--jwt-max-lifetime", "24h"}, env); cfg.JWTMaxLifetime != 24*time.Hour {
			t.Errorf("%s: --jwt-max-lifetime 24h gave %s", role, cfg.JWTMaxLifetime)
		}
	}
	env["HERALD_JWT_MAX_LIFETIME"] = "15m"
	if cfg := mustParse(t, "gateway", nil, env); cfg.JWTMaxLifetime != 15*time.Minute {
		t.Errorf("$HERALD_JWT_MAX_LIFETIME 15m gave %s", cfg.JWTMaxLifetime)
	}
	_, err := parse(t, "api", []string{"--jwt-max-lifetime=-1s"}, map[string]string{"HERALD_JWT_SECRET": "s"})
	if err == nil || !strings.Contains(err.Error(), "--jwt-max-lifetime: -1s: must be 0 (no limit) or more") {
		t.Errorf("negative lifetime: err = %v", err)
	}
}
