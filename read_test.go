package herald_test

import (
	"testing"

	herald "github.com/heraldhq/herald"
)

func TestValidateRead(t *testing.T) {
	many := make([]uint64, herald.MaxReadSeqs+1)
	for i := range many {
		many[i] = uint64(i + 1)
	}
	for _, tc := range []struct {
		name  string
		seqs  []uint64
		all   bool
		field string // "" → valid
	}{
		{"seqs", []uint64{1, 2, 3}, false, ""},
		{"all", nil, true, ""},
		{"all with empty seqs", []uint64{}, true, ""},
		{"max seqs", many[:herald.MaxReadSeqs], false, ""},
		{"both", []uint64{1}, true, "seqs"},
		{"neither", nil, false, "seqs"},
		{"empty list", []uint64{}, false, "seqs"},
		{"seq 0 first", []uint64{0}, false, "seqs[0]"},
		{"seq 0 later", []uint64{4, 5, 0}, false, "seqs[2]"},
		{"too many", many, false, "seqs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := herald.ValidateRead(tc.seqs, tc.all)
			if tc.field == "" {
				if err != nil {
					t.Fatalf("ValidateRead = %v, want nil", err)
				}
				return
			}
			ve, ok := herald.AsValidationError(err)
			if !ok {
				t.Fatalf("ValidateRead = %v, want a *ValidationError", err)
			}
			if ve.Field != tc.field || ve.Reason == "" {
				t.Fatalf("ValidateRead = field %q reason %q, want field %q with a reason", ve.Field, ve.Reason, tc.field)
			}
		})
	}
}
