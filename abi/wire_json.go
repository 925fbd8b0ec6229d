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

// The DecodeJSON methods decode a document as json.Unmarshal decodes it
// into the type, without reflection: member names matched as encoding/json
// matches them, unknown members ignored, null leaving a field unchanged
// (or clearing a map, slice or pointer), the last of duplicate members
// winning (maps merge), and an error wherever encoding/json reports one;
// wire_json_test.go checks each against encoding/json. The receiver should
// be the zero value.

func decodeStringField(dst *string, v []byte) error {
	s, ok, err := jsonwire.DecodeString(v)
	if ok {
		*dst = s
	}
	return err
}

func decodeIntField(dst *int64, v []byte) error {
	n, ok, err := jsonwire.DecodeInt(v, 64)
	if ok {
		*dst = n
	}
	return err
}

func decodeBoolField(dst *bool, v []byte) error {
	b, ok, err := jsonwire.DecodeBool(v)
	if ok {
		*dst = b
	}
	return err
}

func decodeHeaders(dst *map[string][]string, v []byte) error {
	switch v[0] {
	case 'n':
		*dst = nil
		return nil
	case '{':
		if *dst == nil {
			*dst = map[string][]string{}
		}
	}
	return jsonwire.DecodeObject(v, "map[string][]string", func(k, e []byte) error {
		s, err := jsonwire.DecodeStrings(e)
		(*dst)[jsonwire.UnquoteString(k)] = s
		return err
	})
}

// DecodeJSON decodes b into r.
func (r *ContextGetResult) DecodeJSON(b []byte) error {
	return jsonwire.DecodeDocument(b, "abi.ContextGetResult", func(k, v []byte) (err error) {
		switch {
		case jsonwire.KeyIs(k, "context"):
			r.Context, err = jsonwire.DecodeMap(v, r.Context)
		case jsonwire.KeyIs(k, "version"):
			err = decodeIntField(&r.Version, v)
		}
		return err
	})
}

// DecodeJSON decodes b into r.
func (r *RunValue) DecodeJSON(b []byte) error {
	return jsonwire.DecodeDocument(b, "abi.RunValue", func(k, v []byte) (err error) {
		if jsonwire.KeyIs(k, "value") {
			r.Value, err = jsonwire.DecodeMap(v, r.Value)
		}
		return err
	})
}

// DecodeJSON decodes b into r. Value keeps the member's JSON text.
func (r *CacheGetResult) DecodeJSON(b []byte) error {
	return jsonwire.DecodeDocument(b, "abi.CacheGetResult", func(k, v []byte) error {
		switch {
		case jsonwire.KeyIs(k, "found"):
			return decodeBoolField(&r.Found, v)
		case jsonwire.KeyIs(k, "value"):
			r.Value = append(r.Value[:0], v...)
		}
		return nil
	})
}

// DecodeJSON decodes b into r.
func (r *AddEntryResult) DecodeJSON(b []byte) error {
	return jsonwire.DecodeDocument(b, "abi.AddEntryResult", func(k, v []byte) error {
		if jsonwire.KeyIs(k, "id") {
			return decodeStringField(&r.ID, v)
		}
		return nil
	})
}

// DecodeJSON decodes b into r.
func (r *CreateIncidentsResult) DecodeJSON(b []byte) error {
	return jsonwire.DecodeDocument(b, "abi.CreateIncidentsResult", func(k, v []byte) (err error) {
		if jsonwire.KeyIs(k, "ids") {
			r.IDs, err = jsonwire.DecodeStrings(v)
		}
		return err
	})
}

// DecodeJSON decodes b into r.
func (r *DirectMessageResult) DecodeJSON(b []byte) error {
	return jsonwire.DecodeDocument(b, "abi.DirectMessageResult", func(k, v []byte) error {
		if jsonwire.KeyIs(k, "reply") {
			return decodeStringField(&r.Reply, v)
		}
		return nil
	})
}

// DecodeJSON decodes b into r.
func (r *HTTPRequest) DecodeJSON(b []byte) error {
	return jsonwire.DecodeDocument(b, "abi.HTTPRequest", func(k, v []byte) (err error) {
		switch {
		case jsonwire.KeyIs(k, "method"):
			err = decodeStringField(&r.Method, v)
		case jsonwire.KeyIs(k, "url"):
			err = decodeStringField(&r.URL, v)
		case jsonwire.KeyIs(k, "path"):
			err = decodeStringField(&r.Path, v)
		case jsonwire.KeyIs(k, "query"):
			err = decodeStringField(&r.Query, v)
		case jsonwire.KeyIs(k, "headers"):
			err = decodeHeaders(&r.Headers, v)
		case jsonwire.KeyIs(k, "body"):
			r.Body, err = jsonwire.DecodeBytes(v)
		case jsonwire.KeyIs(k, "timeout_ms"):
			err = decodeIntField(&r.TimeoutMS, v)
		}
		return err
	})
}

// DecodeJSON decodes b into r.
func (r *HTTPResponse) DecodeJSON(b []byte) error {
	return jsonwire.DecodeDocument(b, "abi.HTTPResponse", func(k, v []byte) (err error) {
		switch {
		case jsonwire.KeyIs(k, "status"):
			n := int64(r.Status)
			err = decodeIntField(&n, v)
			r.Status = int(n)
		case jsonwire.KeyIs(k, "headers"):
			err = decodeHeaders(&r.Headers, v)
		case jsonwire.KeyIs(k, "body"):
			r.Body, err = jsonwire.DecodeBytes(v)
		}
		return err
	})
}
