package version

import "testing"

func TestValid(t *testing.T) {
	tests := []struct {
		v    string
		want bool
	}{
		{"1.2.3", true},
		{"0.0.0", true},
		{"1.0.0-rc.1", true},
		{"1.0.0-alpha.beta+build.7", true},
		{"1.0.0+build", true},
		{"1.2", false},      // x/mod's shorthand v1.2
		{"1", false},        // and v1
		{"v1.2.3", false},   // no "v" in a plugin version
		{"01.2.3", false},   // leading zero
		{"1.0.0-01", false}, // leading zero in a numeric pre-release
		{"1.0.0-a..b", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := Valid(tt.v); got != tt.want {
			t.Errorf("Valid(%q) = %v, want %v", tt.v, got, tt.want)
		}
	}
}

func TestCompare(t *testing.T) {
	// Ascending by semver 2.0 precedence: its own example list.
	order := []string{"1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2",
		"1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.0.1", "1.2.0", "1.10.0", "2.0.0", "18446744073709551616.0.0"}
	for i, a := range order {
		for j, b := range order {
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got := Compare(a, b); got != want {
				t.Errorf("Compare(%s, %s) = %d, want %d", a, b, got, want)
			}
		}
	}
	if got := Compare("1.0.0+build.1", "1.0.0"); got != 0 {
		t.Errorf("build metadata: Compare = %d, want 0", got)
	}
}
