package service_test

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"

	"github.com/connhost/connhost/internal/service"
	"github.com/connhost/connhost/internal/testenv/smallfs"
)

// TestChatPausesWhileDiskFull: with the store's disk filled below its
// reserve, a chat delivery pass sends nothing and says why (were the
// entry sent, the cursor that could not move would send it again on every
// pass); once space is freed the entry goes out exactly once.
func TestChatPausesWhileDiskFull(t *testing.T) {
	fs := smallfs.Mount(t, 64<<20)
	e := newEnvAt(t, filepath.Join(fs, "db"), smallfs.TinyTables)
	ctx := context.Background()
	if _, err := e.svc.Users.Create(ctx, service.UserInput{Username: "ann", Email: "ann@example.com"}); err != nil {
		t.Fatal(err)
	}
	e.install(chatbot(t))
	e.instance(service.InstanceInput{Name: "bot", Plugin: "chatbot", Enabled: ptr(true), Params: map[string]any{"user_email": "ann@example.com"}})
	inc := e.incident("mirrored")
	e.run("bot", "chatbot-mirror", map[string]any{"incident_id": inc.ID})
	if _, err := e.svc.Incidents.AddEntry(ctx, inc.ID, service.EntryInput{Contents: "hello"}); err != nil {
		t.Fatal(err)
	}

	release := smallfs.Fill(t, fs, 4<<20) // TinyTables keep an 8 MiB reserve
	for range 3 {
		if err := e.svc.LongRunning.DeliverChat(ctx); !errors.Is(err, service.ErrNoSpace) {
			t.Fatalf("delivery pass with the disk full: %v, want ErrNoSpace", err)
		}
	}
	release()
	if err := e.svc.LongRunning.DeliverChat(ctx); err != nil {
		t.Fatal(err)
	}
	var got []map[string]any
	if err := json.Unmarshal([]byte(e.run("bot", "chatbot-received", nil)), &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0]["message"] != "hello" {
		t.Errorf("the bot received %v, want hello once", got)
	}
}
