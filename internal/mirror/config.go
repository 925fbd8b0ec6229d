package mirror

import (
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/internal/store"
)

// XSOAR's conventional instance params that drive the host's fetch
// scheduling and mirroring when a plugin's manifest declares them.
const (
	ParamIsFetch         = "isFetch"
	ParamFetchInterval   = "incidentFetchInterval"
	ParamMirrorDirection = "mirror_direction"
	ParamCloseIncident   = "close_incident"
	ParamCloseOut        = "close_out"
	ParamCommentTag      = "comment_tag"
	ParamWorkNotesTag    = "work_notes_tag"
	ParamFileTag         = "file_tag"
)

// ConventionalParams lists the conventional params in documentation order.
var ConventionalParams = []string{
	ParamIsFetch, ParamFetchInterval, ParamMirrorDirection, ParamCloseIncident,
	ParamCloseOut, ParamCommentTag, ParamWorkNotesTag, ParamFileTag,
}

// directionOptions maps XSOAR's mirror_direction options to the values of
// dbotMirrorDirection, as ServiceNow, Jira and XSOAR Mirroring do. The
// stored values themselves are accepted too.
var directionOptions = map[string]string{
	"None": abi.MirrorNone, "Incoming": abi.MirrorIn, "Outgoing": abi.MirrorOut, "Incoming And Outgoing": abi.MirrorBoth,
	abi.MirrorIn: abi.MirrorIn, abi.MirrorOut: abi.MirrorOut, abi.MirrorBoth: abi.MirrorBoth,
}

// DirectionOption is the mirror_direction option of a dbotMirrorDirection
// value ("Both" → "Incoming And Outgoing").
func DirectionOption(d string) string {
	switch d {
	case abi.MirrorIn:
		return "Incoming"
	case abi.MirrorOut:
		return "Outgoing"
	case abi.MirrorBoth:
		return "Incoming And Outgoing"
	}
	return "None"
}

// Config is how an instance fetches and mirrors. Each value comes from the
// instance's param when its plugin declares the conventional param, else
// from the instance's settings; Source says which, per param name.
type Config struct {
	Fetch bool
	// FetchInterval is at least a minute.
	FetchInterval time.Duration
	// Direction is None, In, Out or Both.
	Direction               string
	CloseIncident, CloseOut bool
	CommentTag              string
	WorkNotesTag            string
	FileTag                 string
	// Source names where each value came from, by conventional param name:
	// "param mirror_direction" or "settings.mirror_direction".
	Source map[string]string
}

// SettingName is the name of the instance setting that stands for a
// conventional param when the plugin does not declare it.
func SettingName(param string) string { return "settings." + param }

// SettingValue returns the value of the setting that stands for a
// conventional param, as the param would hold it (mirror_direction as an
// XSOAR option), and whether the setting is set.
func SettingValue(st store.Settings, param string) (any, bool) {
	switch param {
	case ParamIsFetch:
		return st.FetchEnabled, st.FetchEnabled
	case ParamFetchInterval:
		return float64(st.FetchIntervalMinutes), st.FetchIntervalMinutes != 0
	case ParamMirrorDirection:
		return DirectionOption(st.MirrorDirection), st.MirrorDirection != ""
	case ParamCloseIncident:
		return st.CloseIncident, st.CloseIncident
	case ParamCloseOut:
		return st.CloseOut, st.CloseOut
	case ParamCommentTag:
		return st.CommentTag, st.CommentTag != ""
	case ParamWorkNotesTag:
		return st.WorkNotesTag, st.WorkNotesTag != ""
	case ParamFileTag:
		return st.FileTag, st.FileTag != ""
	}
	return nil, false
}

// ClearSetting unsets the setting that stands for a conventional param.
func ClearSetting(st *store.Settings, param string) {
	switch param {
	case ParamIsFetch:
		st.FetchEnabled = false
	case ParamFetchInterval:
		st.FetchIntervalMinutes = 0
	case ParamMirrorDirection:
		st.MirrorDirection = ""
	case ParamCloseIncident:
		st.CloseIncident = false
	case ParamCloseOut:
		st.CloseOut = false
	case ParamCommentTag:
		st.CommentTag = ""
	case ParamWorkNotesTag:
		st.WorkNotesTag = ""
	case ParamFileTag:
		st.FileTag = ""
	}
}

// SameValue reports whether two values of a conventional param mean the
// same ("Both" and "Incoming And Outgoing", 5 and "5").
func SameValue(param string, a, b any) bool {
	x, err1 := normalize(param, a)
	y, err2 := normalize(param, b)
	return err1 == nil && err2 == nil && x == y
}

// normalize turns a param value into the comparable value the host uses:
// a bool, minutes as float64, a direction (None/In/Out/Both) or a string.
func normalize(param string, v any) (any, error) {
	switch param {
	case ParamIsFetch, ParamCloseIncident, ParamCloseOut:
		if v == nil {
			return false, nil
		}
		return abi.Param{Type: abi.ParamBool}.Coerce(v)
	case ParamFetchInterval:
		switch x := v.(type) {
		case nil:
			return float64(0), nil
		case float64:
			return x, nil
		case string:
			f, err := strconv.ParseFloat(x, 64)
			if err != nil {
				return nil, fmt.Errorf("want minutes, got %q", x)
			}
			return f, nil
		}
		return nil, fmt.Errorf("want minutes, got %T", v)
	case ParamMirrorDirection:
		switch x := v.(type) {
		case nil:
			return abi.MirrorNone, nil
		case string:
			if x == "" {
				return abi.MirrorNone, nil
			}
			if d, ok := directionOptions[x]; ok {
				return d, nil
			}
			return nil, fmt.Errorf("want None, Incoming, Outgoing or Incoming And Outgoing, got %q", x)
		}
		return nil, fmt.Errorf("want a string, got %T", v)
	default:
		switch x := v.(type) {
		case nil:
			return "", nil
		case string:
			return x, nil
		}
		return nil, fmt.Errorf("want a string, got %T", v)
	}
}

// ConfigOf returns how an instance fetches and mirrors. For a param its
// plugin declares, the param's value (its default when unset) counts; a
// setting for the same thing stored before params took over counts until
// the instance is migrated (the service does that at start and on update).
// A value of the wrong type counts as unset.
func ConfigOf(inst store.Instance, m *abi.Manifest) Config {
	c := Config{Source: make(map[string]string, len(ConventionalParams))}
	for _, name := range ConventionalParams {
		v, set := SettingValue(inst.Settings, name)
		c.Source[name] = SettingName(name)
		if p, declared := paramOf(m, name); declared && !set {
			v, c.Source[name] = inst.Params[name], "param "+name
			if v == nil {
				v = p.Default
			}
		}
		n, err := normalize(name, v)
		if err != nil {
			continue
		}
		switch name {
		case ParamIsFetch:
			c.Fetch = n.(bool)
		case ParamFetchInterval:
			c.FetchInterval = time.Duration(math.Max(n.(float64), 1) * float64(time.Minute))
		case ParamMirrorDirection:
			c.Direction = n.(string)
		case ParamCloseIncident:
			c.CloseIncident = n.(bool)
		case ParamCloseOut:
			c.CloseOut = n.(bool)
		case ParamCommentTag:
			c.CommentTag = n.(string)
		case ParamWorkNotesTag:
			c.WorkNotesTag = n.(string)
		case ParamFileTag:
			c.FileTag = n.(string)
		}
	}
	if c.FetchInterval == 0 {
		c.FetchInterval = time.Minute
	}
	if c.Direction == "" {
		c.Direction = abi.MirrorNone
	}
	return c
}

func paramOf(m *abi.Manifest, name string) (abi.Param, bool) {
	if m == nil {
		return abi.Param{}, false
	}
	return m.Param(name)
}

// Declares reports whether a manifest declares the conventional param.
func Declares(m *abi.Manifest, param string) bool {
	_, ok := paramOf(m, param)
	return ok
}

// MirrorsIn reports whether the instance mirrors incoming; when it does
// not, why names what to change.
func (c Config) MirrorsIn(m *abi.Manifest) (ok bool, why string) {
	if !m.IsRemoteSyncIn {
		return false, fmt.Sprintf("plugin %s@%s does not declare isremotesyncin", m.Name, m.Version)
	}
	if c.Direction == abi.MirrorIn || c.Direction == abi.MirrorBoth {
		return true, ""
	}
	return false, fmt.Sprintf("%s is %q: set it to %s to mirror incoming", c.Source[ParamMirrorDirection], c.directionShown(), c.wantShown("Incoming", abi.MirrorIn))
}

// MirrorsOut reports whether the instance mirrors outgoing; when it does
// not, why names what to change.
func (c Config) MirrorsOut(m *abi.Manifest) (ok bool, why string) {
	if !m.IsRemoteSyncOut {
		return false, fmt.Sprintf("plugin %s@%s does not declare isremotesyncout", m.Name, m.Version)
	}
	if c.Direction == abi.MirrorOut || c.Direction == abi.MirrorBoth {
		return true, ""
	}
	return false, fmt.Sprintf("%s is %q: set it to %s to mirror outgoing", c.Source[ParamMirrorDirection], c.directionShown(), c.wantShown("Outgoing", abi.MirrorOut))
}

func (c Config) fromParam(name string) bool { return c.Source[name] == "param "+name }

func (c Config) directionShown() string {
	if c.fromParam(ParamMirrorDirection) {
		return DirectionOption(c.Direction)
	}
	return c.Direction
}

func (c Config) wantShown(option, value string) string {
	if c.fromParam(ParamMirrorDirection) {
		return fmt.Sprintf("%q or %q", option, "Incoming And Outgoing")
	}
	return fmt.Sprintf("%q or %q", value, abi.MirrorBoth)
}
