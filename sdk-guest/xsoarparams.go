package sdk

import (
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/connhost/connhost/abi"
)

// URL returns an http(s) URL parameter without a trailing slash, or a
// bad_request error naming the parameter.
func (p Params) URL(name string) (*url.URL, error) {
	raw := p.String(name)
	u, err := url.Parse(strings.TrimRight(raw, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, BadRequest("param %s: want an http(s) URL, got %q", name, raw)
	}
	return u, nil
}

// Age returns a parameter written as XSOAR's relative times ("3 days",
// "12 hours", "1 week", "30 minutes"), or def when the parameter is unset.
// A malformed value is a bad_request error naming the parameter.
func (p Params) Age(name, def string) (time.Duration, error) {
	s := p.String(name)
	if s == "" {
		s = def
	}
	d, err := ParseAge(s)
	if err != nil {
		return 0, BadRequest("param %s: %v", name, err)
	}
	return d, nil
}

// ParseAge parses "N minutes|hours|days|weeks" (singular or plural).
func ParseAge(s string) (time.Duration, error) {
	f := strings.Fields(strings.ToLower(s))
	if len(f) != 2 {
		return 0, Errorf(abi.KindBadRequest, "want \"N minutes|hours|days|weeks\", got %q", s)
	}
	n, err := strconv.Atoi(f[0])
	if err != nil || n < 0 {
		return 0, Errorf(abi.KindBadRequest, "want a non-negative count, got %q", f[0])
	}
	unit := map[string]time.Duration{
		"minute": time.Minute, "hour": time.Hour, "day": 24 * time.Hour, "week": 7 * 24 * time.Hour,
	}[strings.TrimSuffix(f[1], "s")]
	if unit == 0 {
		return 0, Errorf(abi.KindBadRequest, "unknown unit %q", f[1])
	}
	return time.Duration(n) * unit, nil
}

// mirrorDirections maps XSOAR's mirror_direction options to the values of
// dbotMirrorDirection, as ServiceNow, Jira and XSOAR Mirroring do.
var mirrorDirections = map[string]string{
	"None": abi.MirrorNone, "Incoming": abi.MirrorIn, "Outgoing": abi.MirrorOut, "Incoming And Outgoing": abi.MirrorBoth,
}

// MirrorDirection returns a mirror_direction select parameter ("None",
// "Incoming", "Outgoing", "Incoming And Outgoing", or def when unset) as the
// dbotMirrorDirection value ("None", "In", "Out", "Both").
func (p Params) MirrorDirection(name, def string) (string, error) {
	opt := p.String(name)
	if opt == "" {
		opt = def
	}
	d, ok := mirrorDirections[opt]
	if !ok {
		return "", BadRequest("param %s: unknown option %q", name, opt)
	}
	return d, nil
}
