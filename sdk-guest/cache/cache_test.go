package cache_test

import (
	"context"
	"errors"
	"testing"
	"time"

	sdk "github.com/connhost/connhost/sdk-guest"
	"github.com/connhost/connhost/sdk-guest/cache"
	"github.com/connhost/connhost/sdk-guest/sdktest"
)

type entry struct {
	N int `json:"n"`
}

func TestCacheTTLAndLoad(t *testing.T) {
	ctx := context.Background()
	now := time.Unix(1_700_000_000, 0)
	loads := 0
	conn := sdk.Connector{Commands: map[string]sdk.CommandFunc{
		"load": func(ctx context.Context, h *sdk.Host, a sdk.Args) (any, error) {
			c := cache.New[entry](h, "t/", time.Minute)
			return c.GetOrLoad(ctx, "k", func(context.Context) (entry, time.Duration, error) {
				if a.String("fail") != "" {
					return entry{}, 0, errors.New("load failed")
				}
				loads++
				return entry{N: loads}, 0, nil
			})
		},
		"delete": func(ctx context.Context, h *sdk.Host, _ sdk.Args) (any, error) {
			return nil, cache.New[entry](h, "t/", 0).Delete(ctx, "k")
		},
	}}
	h := sdktest.New(conn, nil)
	h.Now = func() time.Time { return now }
	steps := []struct {
		name    string
		cmd     string
		args    map[string]string
		advance time.Duration
		want    string
		wantErr bool
	}{
		{name: "failed load stores nothing", cmd: "load", args: map[string]string{"fail": "1"}, wantErr: true},
		{name: "miss loads", cmd: "load", want: `{"n":1}`},
		{name: "hit within TTL", cmd: "load", advance: 59 * time.Second, want: `{"n":1}`},
		{name: "expired reloads", cmd: "load", advance: 2 * time.Second, want: `{"n":2}`},
		{name: "delete", cmd: "delete", want: `null`},
		{name: "deleted reloads", cmd: "load", want: `{"n":3}`},
	}
	for _, s := range steps {
		now = now.Add(s.advance)
		got, err := h.Command(ctx, s.cmd, s.args)
		if (err != nil) != s.wantErr || (err == nil && string(got) != s.want) {
			t.Errorf("%s: got %s, %v; want %s (error %v)", s.name, got, err, s.want, s.wantErr)
		}
	}
	if keys := h.CacheKeys(); len(keys) != 1 || keys[0] != "t/k" {
		t.Errorf("cache keys = %v, want [t/k]", keys)
	}
}
