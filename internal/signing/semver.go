package signing

import (
	"fmt"

	"github.com/connhost/connhost/internal/version"
)

// CompareVersions orders two semantic versions by semver 2.0 precedence
// (build metadata ignored): -1 when a < b, 0 when equal, +1 when a > b. It
// fails on a version that is not MAJOR.MINOR.PATCH[-pre][+build].
func CompareVersions(a, b string) (int, error) {
	for _, v := range []string{a, b} {
		if !version.Valid(v) {
			return 0, fmt.Errorf("version %q: not a semantic version", v)
		}
	}
	return version.Compare(a, b), nil
}
