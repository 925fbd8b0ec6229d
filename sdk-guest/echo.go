package sdk

import (
	"strings"

	"github.com/connhost/connhost/abi"
)

// DefaultEchoMarker is the marker EchoMarker uses when none is configured.
const DefaultEchoMarker = "Mirrored from connhost"

// EchoMarker keeps two-way mirroring from echoing notes back when the remote
// system has no tags or metadata to tell its own notes from the ones the
// connector posted (Redmine journal notes, plain comment threads): the
// connector marks every note it posts out (update-remote-system) with a
// line of text, and drops notes that carry it when mirroring in
// (get-remote-data). This is the string marker XSOAR integrations use
// ("Mirrored from Cortex XSOAR"); the host's own loop prevention (entry
// origins) covers the connhost side, the marker the remote side.
//
// The marker must be text the remote keeps as written and people do not
// type: it is matched as a substring.
type EchoMarker struct {
	// Text is the marker; empty means DefaultEchoMarker.
	Text string
}

// EchoMarkerParam returns the EchoMarker configured by the named param
// (a string param, typically "mirror_marker"), or the default marker when
// it is unset. A connector that declares the param lets operators change
// the marker, for instance when two connhost servers mirror the same
// remote and each must skip only its own notes.
func (p Params) EchoMarkerParam(name string) EchoMarker {
	return EchoMarker{Text: strings.TrimSpace(p.String(name))}
}

func (m EchoMarker) text() string {
	if m.Text == "" {
		return DefaultEchoMarker
	}
	return m.Text
}

// Mark returns body with the marker on a line of its own at the end,
// unless it already carries the marker.
func (m EchoMarker) Mark(body string) string {
	if m.Marked(body) {
		return body
	}
	return strings.TrimRight(body, "\n") + "\n\n" + m.text()
}

// Marked reports whether body carries the marker: a note the connector
// posted itself.
func (m EchoMarker) Marked(body string) bool {
	return strings.Contains(body, m.text())
}

// Filter returns entries without those whose text contents carry the
// marker: what get-remote-data returns after mapping remote notes to
// entries. Entries with non-text contents (close and reopen entries,
// JSON) are kept.
func (m EchoMarker) Filter(entries []abi.Entry) []abi.Entry {
	out := entries[:0:0]
	for _, e := range entries {
		if s, ok := e.Contents.(string); ok && m.Marked(s) {
			continue
		}
		out = append(out, e)
	}
	return out
}
