package service

import (
	"context"
	"testing"

	"github.com/connhost/connhost/abi"
)

// TestChatValidation: malformed chat requests are bad_request before any
// state is touched.
func TestChatValidation(t *testing.T) {
	var h hostServices
	ctx := context.Background()
	inst := abi.InstanceInfo{ID: "i", Name: "bot"}
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"mirror without incident", func() error {
			return h.MirrorInvestigation(ctx, inst, abi.MirrorInvestigationRequest{MirrorType: "all"})
		}},
		{"mirror bad type", func() error {
			return h.MirrorInvestigation(ctx, inst, abi.MirrorInvestigationRequest{IncidentID: "1", MirrorType: "some"})
		}},
		{"mirror bad direction", func() error {
			return h.MirrorInvestigation(ctx, inst, abi.MirrorInvestigationRequest{IncidentID: "1", MirrorType: "all:sideways"})
		}},
		{"entitlement without guid", func() error {
			return h.HandleEntitlement(ctx, inst, abi.EntitlementRequest{IncidentID: "1", Content: "yes"})
		}},
		{"entitlement bad guid", func() error {
			return h.HandleEntitlement(ctx, inst, abi.EntitlementRequest{IncidentID: "1", GUID: "a b", Content: "yes"})
		}},
		{"entitlement without content", func() error {
			return h.HandleEntitlement(ctx, inst, abi.EntitlementRequest{IncidentID: "1", GUID: "g"})
		}},
		{"dm without message", func() error {
			_, err := h.DirectMessage(ctx, inst, abi.DirectMessageRequest{Username: "u"})
			return err
		}},
		{"dm without user", func() error {
			_, err := h.DirectMessage(ctx, inst, abi.DirectMessageRequest{Message: "hi"})
			return err
		}},
	} {
		if err := tc.call(); abi.KindOf(err) != abi.KindBadRequest {
			t.Errorf("%s: err = %v, want bad_request", tc.name, err)
		}
	}
}

func TestParseMirrorType(t *testing.T) {
	for _, tc := range []struct{ in, typ, dir string }{
		{"all", "all", "both"},
		{"chat:FromDemisto", "chat", "FromDemisto"},
		{"All:todemisto", "all", "ToDemisto"},
		{"none:both", "none", "both"},
	} {
		typ, dir, err := parseMirrorType(tc.in)
		if err != nil || typ != tc.typ || dir != tc.dir {
			t.Errorf("parseMirrorType(%q) = %q, %q, %v", tc.in, typ, dir, err)
		}
	}
}

func TestParseKeyValues(t *testing.T) {
	kv, err := parseKeyValues(` name="disk full" type=Ops severity=2`)
	if err != nil || kv["name"] != "disk full" || kv["type"] != "Ops" || kv["severity"] != "2" {
		t.Errorf("parseKeyValues = %v, %v", kv, err)
	}
	if _, err := parseKeyValues(`name="open`); err == nil {
		t.Error("unterminated quote accepted")
	}
}
