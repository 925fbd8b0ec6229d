package abi

import (
	"strconv"

	"github.com/connhost/connhost/abi/jsonwire"
)

// The AppendJSON methods write the hot wire types without reflection,
// byte for byte as encoding/json writes them (json.Marshal when escapeHTML
// is set, an Encoder with SetEscapeHTML(false) otherwise, without its
// newline); wire_json_test.go checks each against encoding/json. Values of
// interface type inside them (Contents, CustomFields, ...) go through
// jsonwire.AppendValue, which falls back to encoding/json for types it does
// not know.

// obj writes the members of one JSON object.
type obj struct {
	b    []byte
	html bool
	n    int
	err  error
}

func (o *obj) key(name string) {
	if o.n == 0 {
		o.b = append(o.b, '{')
	} else {
		o.b = append(o.b, ',')
	}
	o.n++
	o.b = append(o.b, '"')
	o.b = append(o.b, name...)
	o.b = append(o.b, '"', ':')
}

func (o *obj) str(name, v string, omitEmpty bool) {
	if omitEmpty && v == "" {
		return
	}
	o.key(name)
	o.b = jsonwire.AppendString(o.b, v, o.html)
}

func (o *obj) int(name string, v int64, omitEmpty bool) {
	if omitEmpty && v == 0 {
		return
	}
	o.key(name)
	o.b = strconv.AppendInt(o.b, v, 10)
}

func (o *obj) bool(name string, v, omitEmpty bool) {
	if omitEmpty && !v {
		return
	}
	o.key(name)
	o.b = strconv.AppendBool(o.b, v)
}

func (o *obj) float(name string, v float64, omitEmpty bool) {
	if omitEmpty && v == 0 || o.err != nil {
		return
	}
	o.key(name)
	o.b, o.err = jsonwire.AppendFloat(o.b, v)
}

func (o *obj) value(name string, v any) {
	if o.err != nil {
		return
	}
	o.key(name)
	o.b, o.err = jsonwire.AppendValue(o.b, v, o.html)
}

func (o *obj) strings(name string, v []string, omitEmpty bool) {
	if omitEmpty && len(v) == 0 {
		return
	}
	o.key(name)
	o.b = jsonwire.AppendStrings(o.b, v, o.html)
}

func (o *obj) anyMap(name string, v map[string]any, omitEmpty bool) {
	if omitEmpty && len(v) == 0 {
		return
	}
	o.value(name, v)
}

func (o *obj) headers(name string, v map[string][]string) {
	if len(v) == 0 || o.err != nil {
		return
	}
	o.key(name)
	o.b, o.err = jsonwire.AppendMap(o.b, v, o.html, func(b []byte, s []string, html bool) ([]byte, error) {
		return jsonwire.AppendStrings(b, s, html), nil
	})
}

func (o *obj) bytes(name string, v []byte) {
	if len(v) == 0 {
		return
	}
	o.key(name)
	o.b = jsonwire.AppendBytes(o.b, v)
}

func (o *obj) nested(name string, fn func([]byte, bool) ([]byte, error)) {
	if o.err != nil {
		return
	}
	o.key(name)
	o.b, o.err = fn(o.b, o.html)
}

func (o *obj) done() ([]byte, error) {
	if o.n == 0 {
		o.b = append(o.b, '{')
	}
	return append(o.b, '}'), o.err
}

// AppendJSON appends r as JSON.
func (r CommandResults) AppendJSON(dst []byte, escapeHTML bool) ([]byte, error) {
	o := obj{b: dst, html: escapeHTML}
	o.str("readable_output", r.ReadableOutput, true)
	o.str("outputs_prefix", r.OutputsPrefix, true)
	o.str("outputs_key_field", r.OutputsKeyField, true)
	if r.Outputs != nil {
		o.value("outputs", r.Outputs)
	}
	if r.RawResponse != nil {
		o.value("raw_response", r.RawResponse)
	}
	return o.done()
}

// AppendJSON appends l as JSON.
func (l Label) AppendJSON(dst []byte, escapeHTML bool) ([]byte, error) {
	o := obj{b: dst, html: escapeHTML}
	o.str("type", l.Type, false)
	o.str("value", l.Value, false)
	return o.done()
}

// AppendJSON appends inc as JSON.
func (inc *Incident) AppendJSON(dst []byte, escapeHTML bool) ([]byte, error) {
	o := obj{b: dst, html: escapeHTML}
	o.str("name", inc.Name, false)
	o.str("type", inc.Type, true)
	o.float("severity", inc.Severity, true)
	o.str("occurred", inc.Occurred, true)
	o.str("details", inc.Details, true)
	o.str("owner", inc.Owner, true)
	if len(inc.Labels) > 0 {
		o.nested("labels", func(b []byte, html bool) ([]byte, error) {
			b = append(b, '[')
			for i, l := range inc.Labels {
				if i > 0 {
					b = append(b, ',')
				}
				b, _ = l.AppendJSON(b, html) // a label is strings only
			}
			return append(b, ']'), nil
		})
	}
	o.str("rawJSON", inc.RawJSON, true)
	o.anyMap("CustomFields", inc.CustomFields, true)
	o.str("dbotMirrorId", inc.DbotMirrorID, true)
	o.str("dbotMirrorDirection", inc.DbotMirrorDirection, true)
	o.strings("dbotMirrorTags", inc.DbotMirrorTags, true)
	return o.done()
}

// AppendJSON appends e as JSON.
func (e *Entry) AppendJSON(dst []byte, escapeHTML bool) ([]byte, error) {
	o := obj{b: dst, html: escapeHTML}
	o.str("ID", e.ID, true)
	o.int("Type", int64(e.Type), false)
	o.value("Contents", e.Contents)
	o.str("ContentsFormat", e.ContentsFormat, true)
	o.strings("Tags", e.Tags, true)
	o.bool("Note", e.Note, true)
	o.anyMap("EntryContext", e.EntryContext, true)
	return o.done()
}

// AppendJSON appends r as JSON.
func (r *AddEntryRequest) AppendJSON(dst []byte, escapeHTML bool) ([]byte, error) {
	o := obj{b: dst, html: escapeHTML}
	o.str("incident_id", r.IncidentID, false)
	o.nested("entry", r.Entry.AppendJSON)
	o.str("username", r.Username, true)
	o.str("email", r.Email, true)
	o.str("footer", r.Footer, true)
	return o.done()
}

// AppendJSON appends r as JSON.
func (r *CreateIncidentsRequest) AppendJSON(dst []byte, escapeHTML bool) ([]byte, error) {
	o := obj{b: dst, html: escapeHTML}
	o.nested("incidents", func(b []byte, html bool) ([]byte, error) {
		if r.Incidents == nil {
			return append(b, "null"...), nil
		}
		b = append(b, '[')
		for i := range r.Incidents {
			if i > 0 {
				b = append(b, ',')
			}
			var err error
			if b, err = r.Incidents[i].AppendJSON(b, html); err != nil {
				return b, err
			}
		}
		return append(b, ']'), nil
	})
	o.anyMap("last_run", r.LastRun, true)
	o.str("user_id", r.UserID, true)
	return o.done()
}

// AppendJSON appends r as JSON.
func (r CacheGetRequest) AppendJSON(dst []byte, escapeHTML bool) ([]byte, error) {
	o := obj{b: dst, html: escapeHTML}
	o.str("key", r.Key, false)
	return o.done()
}

// AppendJSON appends r as JSON.
func (r CacheDeleteRequest) AppendJSON(dst []byte, escapeHTML bool) ([]byte, error) {
	return CacheGetRequest(r).AppendJSON(dst, escapeHTML)
}

// AppendJSON appends r as JSON.
func (r *CacheSetRequest) AppendJSON(dst []byte, escapeHTML bool) ([]byte, error) {
	o := obj{b: dst, html: escapeHTML}
	o.str("key", r.Key, false)
	o.value("value", r.Value)
	o.float("ttl_seconds", r.TTLSeconds, true)
	return o.done()
}

// AppendJSON appends r as JSON.
func (r *RunValue) AppendJSON(dst []byte, escapeHTML bool) ([]byte, error) {
	o := obj{b: dst, html: escapeHTML}
	o.value("value", r.Value)
	return o.done()
}

// AppendJSON appends r as JSON.
func (r *ContextSetRequest) AppendJSON(dst []byte, escapeHTML bool) ([]byte, error) {
	o := obj{b: dst, html: escapeHTML}
	o.value("context", r.Context)
	o.int("version", r.Version, false)
	return o.done()
}

// AppendJSON appends h as JSON.
func (h ModuleHealth) AppendJSON(dst []byte, escapeHTML bool) ([]byte, error) {
	o := obj{b: dst, html: escapeHTML}
	o.str("message", h.Message, false)
	o.bool("is_error", h.IsError, false)
	return o.done()
}

// AppendJSON appends r as JSON.
func (r *HTTPRequest) AppendJSON(dst []byte, escapeHTML bool) ([]byte, error) {
	o := obj{b: dst, html: escapeHTML}
	o.str("method", r.Method, false)
	o.str("url", r.URL, true)
	o.str("path", r.Path, true)
	o.str("query", r.Query, true)
	o.headers("headers", r.Headers)
	o.bytes("body", r.Body)
	o.int("timeout_ms", r.TimeoutMS, true)
	return o.done()
}

// AppendJSON appends r as JSON.
func (r *HTTPResponse) AppendJSON(dst []byte, escapeHTML bool) ([]byte, error) {
	o := obj{b: dst, html: escapeHTML}
	o.int("status", int64(r.Status), false)
	o.headers("headers", r.Headers)
	o.bytes("body", r.Body)
	return o.done()
}
