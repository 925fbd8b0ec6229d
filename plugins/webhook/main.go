// Command webhook is connhost's generic webhook connector, after XSOAR's
// Generic Webhook: a long-running HTTP plugin that turns each POST into an
// incident. The host checks the credentials (params credentials_identifier
// and credentials_password) before a request reaches the plugin.
//
// Body: a JSON object becomes the incident's rawJSON as it is, unless it
// carries "raw_json" (any JSON object), which then is the rawJSON; "name",
// "type", "occurred" (RFC 3339) and "details" are taken from the body when
// present. Any other body (JSON that is not an object, or not JSON) is kept
// under "body" in rawJSON. The request headers are added under "headers"
// (the host has already removed the credential header).
//
// Optional params: name_template (body fields substituted into text, e.g.
// "{{.commonLabels.alertname}} ({{.status}})") and dedup_fields with dedup_window
// (docs/long-running.md, "Generic webhook").
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/abi/jsonwire"
	sdk "github.com/connhost/connhost/sdk-guest"
	"github.com/connhost/connhost/sdk-guest/cache"
)

func main() {}

func init() { sdk.Register(Connector()) }

// DefaultName names incidents whose body gives none (XSOAR's default).
const DefaultName = "Generic webhook triggered incident"

// Instance parameters besides the credentials, which the host checks.
const (
	ParamIncidentType = "incident_type"
	ParamNameTemplate = "name_template"
	ParamDedupFields  = "dedup_fields"
	ParamDedupWindow  = "dedup_window"
)

// DefaultDedupWindow is how long an incident absorbs repeats when
// dedup_window is empty.
const DefaultDedupWindow = 24 * time.Hour

// maxNameBytes caps a templated name: a field holding a large value must
// not make a megabyte-long incident name.
const maxNameBytes = 512

// dedupPrefix starts the integration-cache keys of deduplication records.
const dedupPrefix = "webhook/dedup/"

// Connector returns the webhook connector.
func Connector() sdk.Connector {
	return sdk.Connector{
		Configure: configure,
		LongRunningExecution: func(ctx context.Context, h *sdk.Host) error {
			// Requests are served by HTTP from the warm pool; the execution
			// only reports the instance healthy and waits.
			_ = h.SetHealthy(ctx)
			h.WaitForStop(ctx)
			return nil
		},
		HTTP: serve,
	}
}

// settings are the parsed optional params.
type settings struct {
	name   []namePart // nil: no template
	fields [][]string // dedup field paths; nil: no deduplication
	window time.Duration
}

// configure checks the optional params once per module instance, so a
// broken template or window shows when the instance starts.
func configure(_ context.Context, h *sdk.Host) error {
	_, err := parseSettings(h.Params())
	return err
}

func parseSettings(p sdk.Params) (settings, error) {
	var s settings
	if t := strings.TrimSpace(p.String(ParamNameTemplate)); t != "" {
		parts, err := parseNameTemplate(t)
		if err != nil {
			return s, sdk.BadRequest("parameter %s: %v", ParamNameTemplate, err)
		}
		s.name = parts
	}
	for _, f := range strings.Split(p.String(ParamDedupFields), ",") {
		if f = strings.TrimSpace(f); f != "" {
			s.fields = append(s.fields, strings.Split(f, "."))
		}
	}
	s.window = DefaultDedupWindow
	if w := strings.TrimSpace(p.String(ParamDedupWindow)); w != "" {
		d, err := time.ParseDuration(w)
		if err != nil || d < time.Second {
			return s, sdk.BadRequest("parameter %s: %q: want a Go duration of at least 1s, e.g. 4h", ParamDedupWindow, w)
		}
		s.window = d
	}
	return s, nil
}

func serve(ctx context.Context, h *sdk.Host, r *abi.HTTPRequest) (*abi.HTTPResponse, error) {
	if r.Method != "POST" {
		resp, err := sdk.JSONResponse(405, map[string]string{"error": "use POST"})
		if err != nil {
			return nil, err
		}
		resp.Headers["Allow"] = []string{"POST"}
		return resp, nil
	}
	s, err := parseSettings(h.Params())
	if err != nil {
		return nil, err
	}
	doc, err := parseBody(r.Body, sdk.Header(r.Headers).Get("Content-Type"))
	if err != nil {
		return sdk.JSONResponse(400, map[string]string{"error": err.Error()})
	}
	inc, err := incident(h, s, doc, r.Headers)
	if err != nil {
		return sdk.JSONResponse(400, map[string]string{"error": err.Error()})
	}
	key, dedup := dedupKey(s, doc)
	records := cache.New[string](h, dedupPrefix, s.window)
	if dedup {
		if id, ok, err := repeatOf(ctx, h, records, key, inc.Name); err != nil {
			h.Errorf("deduplication: %v", err)
			return sdk.JSONResponse(500, map[string]string{"error": "could not record the repeat"})
		} else if ok {
			return sdk.JSONResponse(200, map[string]any{"id": id, "name": inc.Name, "deduplicated": true})
		}
	}
	ids, err := h.CreateIncidents(ctx, abi.CreateIncidentsRequest{Incidents: []abi.Incident{inc}})
	if err != nil {
		h.Errorf("create incident: %v", err)
		_ = h.SetUnhealthy(ctx, fmt.Errorf("create incident: %w", err))
		return sdk.JSONResponse(500, map[string]string{"error": "could not create the incident"})
	}
	if dedup {
		if err := records.Set(ctx, key, ids[0]); err != nil {
			// The incident exists; only a later repeat may make a second.
			h.Warnf("deduplication record for incident %s: %v", ids[0], err)
		}
	}
	return sdk.JSONResponse(200, map[string]any{"id": ids[0], "name": inc.Name})
}

// document is a parsed request body.
type document struct {
	obj map[string]any // the body when it is a JSON object
	raw any            // any other body: a JSON value, or the text
}

// parseBody reads the body: an empty body is an empty object, a JSON
// object is decoded, any other JSON value is kept as it is. A body that is
// not JSON is kept as text (invalid UTF-8 replaced), unless its
// Content-Type says JSON: then it is malformed.
func parseBody(b []byte, contentType string) (document, error) {
	text := strings.TrimSpace(string(b))
	if text == "" {
		return document{obj: map[string]any{}}, nil
	}
	v, err := decodeFirst([]byte(text))
	if err != nil {
		if isJSON(contentType) {
			return document{}, fmt.Errorf("body: Content-Type %s but not JSON: %w", contentType, err)
		}
		return document{raw: strings.ToValidUTF8(string(b), "\uFFFD")}, nil
	}
	if m, ok := v.(map[string]any); ok {
		return document{obj: m}, nil
	}
	return document{raw: v}, nil
}

// decodeFirst reads the body's JSON value without reflection, as a
// json.Decoder with UseNumber does (numbers kept exact: ids and counters
// must not round through float64). After the value only whitespace may
// follow, or a closing bracket, which the Decoder's More let through.
func decodeFirst(b []byte) (any, error) {
	v, rest, err := jsonwire.FirstValue(b)
	if err != nil {
		return nil, err
	}
	if rest = bytes.TrimLeft(rest, " \t\r\n"); len(rest) > 0 && rest[0] != '}' && rest[0] != ']' {
		return nil, errors.New("trailing data after the JSON value")
	}
	return jsonwire.DecodeAnyNumber(v)
}

// isJSON reports whether a Content-Type is application/json or a +json
// type.
func isJSON(contentType string) bool {
	mt, _, _ := strings.Cut(strings.ToLower(contentType), ";")
	mt = strings.TrimSpace(mt)
	return mt == "application/json" || strings.HasSuffix(mt, "+json")
}

// incident builds the incident of a request, or says why the body is bad.
func incident(h *sdk.Host, s settings, doc document, headers map[string][]string) (abi.Incident, error) {
	body := doc.obj
	inc := abi.Incident{Name: templatedName(h, s, body)}
	if inc.Name == "" {
		inc.Name = strings.TrimSpace(str(body["name"]))
	}
	if inc.Name == "" {
		inc.Name = DefaultName
	}
	if inc.Type = str(body["type"]); inc.Type == "" {
		inc.Type = h.Params().String(ParamIncidentType)
	}
	if occurred := str(body["occurred"]); occurred != "" {
		t, err := time.Parse(time.RFC3339Nano, occurred)
		if err != nil {
			return abi.Incident{}, fmt.Errorf("occurred %q: want RFC 3339", occurred)
		}
		inc.Occurred = t.UTC().Format(time.RFC3339Nano)
	}
	switch d := body["details"].(type) {
	case nil:
	case string:
		inc.Details = d
	default:
		b, err := jsonwire.AppendValue(nil, d, true)
		if err != nil {
			return abi.Incident{}, fmt.Errorf("details: %w", err)
		}
		inc.Details = string(b)
	}
	var rawJSON map[string]any
	switch rj := body["raw_json"].(type) {
	case map[string]any:
		rawJSON = rj
	case nil:
		rawJSON = body
		if rawJSON == nil {
			rawJSON = map[string]any{"body": doc.raw}
		}
	default:
		return abi.Incident{}, errors.New("raw_json: want a JSON object")
	}
	// map[string]any, not map[string]string: jsonwire writes the former
	// itself and hands other types to encoding/json's reflection.
	hd := make(map[string]any, len(headers))
	for k, v := range headers {
		hd[k] = strings.Join(v, ", ")
	}
	rawJSON["headers"] = hd
	enc, err := jsonwire.AppendValue(nil, rawJSON, true) // as json.Marshal writes it
	if err != nil {
		return abi.Incident{}, fmt.Errorf("rawJSON: %w", err)
	}
	inc.RawJSON = string(enc)
	return inc, nil
}

// namePart is a piece of a name template: literal text, or the path of a
// body field whose value replaces it.
type namePart struct {
	text string
	path []string // nil: text is literal
}

// parseNameTemplate splits a template into literal text and {{.a.b}}
// placeholders. It is deliberately not text/template: a field lookup is all
// a name needs, and text/template adds 2 MB to the plugin and loops
// (range) over sender-controlled bodies.
func parseNameTemplate(t string) ([]namePart, error) {
	var parts []namePart
	for t != "" {
		open := strings.Index(t, "{{")
		if open < 0 {
			parts = append(parts, namePart{text: t})
			break
		}
		if open > 0 {
			parts = append(parts, namePart{text: t[:open]})
		}
		end := strings.Index(t[open:], "}}")
		if end < 0 {
			return nil, fmt.Errorf("%q: unclosed {{", t[open:])
		}
		field := strings.TrimSpace(t[open+2 : open+end])
		path := strings.Split(strings.TrimPrefix(field, "."), ".")
		if !strings.HasPrefix(field, ".") || slices.Contains(path, "") {
			return nil, fmt.Errorf("{{%s}}: want a body field such as {{.commonLabels.alertname}}", field)
		}
		parts = append(parts, namePart{path: path})
		t = t[open+end+2:]
	}
	return parts, nil
}

// templatedName fills name_template from the body. A missing field, a
// non-object body or a result of only spaces gives "", so the caller falls
// back to the body's name or DefaultName: a sender that changes its payload
// must not lose its incidents. Strings are used as they are, other values as
// JSON.
func templatedName(h *sdk.Host, s settings, body map[string]any) string {
	if s.name == nil || body == nil {
		return ""
	}
	var b strings.Builder
	for _, p := range s.name {
		if p.path == nil {
			b.WriteString(p.text)
			continue
		}
		v, ok := lookup(body, p.path)
		if !ok {
			h.Warnf("%s: the body has no field .%s; using the default name", ParamNameTemplate, strings.Join(p.path, "."))
			return ""
		}
		if str, isStr := v.(string); isStr {
			b.WriteString(str)
		} else if enc, err := jsonwire.AppendValue(nil, v, true); err == nil {
			b.Write(enc)
		}
		if b.Len() > maxNameBytes {
			break
		}
	}
	name := b.String()
	if len(name) > maxNameBytes {
		name = name[:maxNameBytes]
	}
	return strings.TrimSpace(strings.ToValidUTF8(name, ""))
}

// dedupKey derives the deduplication key of a body from dedup_fields: the
// hash of the fields' JSON values. A body lacking any of the fields is not
// deduplicated.
func dedupKey(s settings, doc document) (string, bool) {
	if len(s.fields) == 0 || doc.obj == nil {
		return "", false
	}
	hash := sha256.New()
	for _, path := range s.fields {
		v, ok := lookup(doc.obj, path)
		if !ok {
			return "", false
		}
		b, err := jsonwire.AppendValue(nil, v, true)
		if err != nil {
			return "", false
		}
		fmt.Fprintf(hash, "%d:%s\n", len(b), b)
	}
	return hex.EncodeToString(hash.Sum(nil)), true
}

// lookup follows a dot-separated path through nested objects.
func lookup(m map[string]any, path []string) (any, bool) {
	var cur any = m
	for _, p := range path {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = obj[p]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// repeatOf reports whether the request repeats one whose incident is still
// open: a record for key exists (younger than dedup_window) and its
// incident still exists, which the note recording the repeat on it proves.
// A deleted incident drops the record.
func repeatOf(ctx context.Context, h *sdk.Host, records cache.Cache[string], key, name string) (string, bool, error) {
	id, ok, err := records.Get(ctx, key)
	if err != nil || !ok {
		return "", false, err
	}
	_, err = h.AddEntry(ctx, abi.AddEntryRequest{IncidentID: id, Entry: abi.Entry{
		Type: abi.EntryNote, ContentsFormat: abi.FormatText,
		Contents: fmt.Sprintf("Repeated webhook request deduplicated into this incident: %s", name),
		Tags:     []string{"webhook-repeat"},
	}})
	if abi.KindOf(err) == abi.KindNotFound {
		return "", false, records.Delete(ctx, key)
	}
	if err != nil {
		return "", false, fmt.Errorf("note the repeat on incident %s: %w", id, err)
	}
	return id, true, nil
}

// str returns v when it is a string, else "".
func str(v any) string {
	s, _ := v.(string)
	return s
}
