// Package version compares plugin versions: semantic versions as semver.org
// writes them, MAJOR.MINOR.PATCH with an optional -pre-release and +build
// and no "v". The comparison is golang.org/x/mod/semver's; this package
// adds the "v" it wants and refuses the shorthands it also accepts (v1,
// v1.2), which a plugin version may not use.
package version

import (
	"strings"

	"golang.org/x/mod/semver"
)

// Valid reports whether v is a full semantic version.
func Valid(v string) bool {
	gv := "v" + v
	return semver.IsValid(gv) && semver.Canonical(gv) == strings.TrimSuffix(gv, semver.Build(gv))
}

// Compare orders two valid versions by semver precedence (build metadata
// ignored): -1 when a < b, 0 when equal, +1 when a > b. An invalid version
// ranks below every valid one, and two invalid ones are equal.
func Compare(a, b string) int {
	return semver.Compare("v"+a, "v"+b)
}
