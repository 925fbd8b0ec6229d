package signing

import (
	"cmp"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

var semverRe = regexp.MustCompile(`^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$`)

// CompareVersions orders two semantic versions by semver 2.0 precedence
// (build metadata ignored): -1 when a < b, 0 when equal, +1 when a > b.
func CompareVersions(a, b string) (int, error) {
	pa, err := parseSemver(a)
	if err != nil {
		return 0, err
	}
	pb, err := parseSemver(b)
	if err != nil {
		return 0, err
	}
	for i := range 3 {
		if c := cmp.Compare(pa.core[i], pb.core[i]); c != 0 {
			return c, nil
		}
	}
	return comparePre(pa.pre, pb.pre), nil
}

type semver struct {
	core [3]uint64
	pre  []string
}

func parseSemver(v string) (semver, error) {
	m := semverRe.FindStringSubmatch(v)
	if m == nil {
		return semver{}, fmt.Errorf("version %q: not a semantic version", v)
	}
	var s semver
	for i := range 3 {
		n, err := strconv.ParseUint(m[i+1], 10, 64)
		if err != nil {
			return semver{}, fmt.Errorf("version %q: %w", v, err)
		}
		s.core[i] = n
	}
	if m[4] != "" {
		s.pre = strings.Split(m[4], ".")
	}
	return s, nil
}

// comparePre orders pre-release identifiers: a version without one ranks
// above any with one; numeric identifiers compare numerically and rank below
// alphanumeric ones; a shorter list that is a prefix ranks lower.
func comparePre(a, b []string) int {
	switch {
	case len(a) == 0 && len(b) == 0:
		return 0
	case len(a) == 0:
		return 1
	case len(b) == 0:
		return -1
	}
	for i := 0; i < len(a) && i < len(b); i++ {
		na, errA := strconv.ParseUint(a[i], 10, 64)
		nb, errB := strconv.ParseUint(b[i], 10, 64)
		var c int
		switch {
		case errA == nil && errB == nil:
			c = cmp.Compare(na, nb)
		case errA == nil:
			c = -1
		case errB == nil:
			c = 1
		default:
			c = strings.Compare(a[i], b[i])
		}
		if c != 0 {
			return c
		}
	}
	return cmp.Compare(len(a), len(b))
}
