// Command typedecho is the benchmark guest of the SDK's fast JSON path for
// an author's own types: two commands take a ticket and return it with its
// tags counted, one through encoding/json (Args.Decode and a struct result),
// one through package jsonwire (Args.Raw walked with Members, a result
// implementing sdk.JSONAppender).
package main

import (
	"context"

	"github.com/connhost/connhost/abi/jsonwire"
	sdk "github.com/connhost/connhost/sdk-guest"
)

func main() {}

func init() {
	sdk.Register(sdk.Connector{Commands: map[string]sdk.CommandFunc{
		"ticket-reflect": func(_ context.Context, _ *sdk.Host, a sdk.Args) (any, error) {
			var t ticket
			if err := a.Decode(&t); err != nil {
				return nil, err
			}
			t.NTags = len(t.Tags)
			return t, nil
		},
		"ticket-fast": func(_ context.Context, _ *sdk.Host, a sdk.Args) (any, error) {
			var t ticket
			if err := t.decode(a.Raw()); err != nil {
				return nil, sdk.BadRequest("arguments: %v", err)
			}
			t.NTags = len(t.Tags)
			return &t, nil
		},
	}})
}

type ticket struct {
	ID    string   `json:"id"`
	Title string   `json:"title"`
	Body  string   `json:"body"`
	Tags  []string `json:"tags"`
	NTags int      `json:"ntags"`
}

// decode reads the members it knows from the arguments object, which the
// SDK has checked.
func (t *ticket) decode(raw []byte) error {
	return jsonwire.Members(raw, func(k, v []byte) (err error) {
		switch {
		case jsonwire.KeyIs(k, "id"):
			t.ID, _, err = jsonwire.DecodeString(v)
		case jsonwire.KeyIs(k, "title"):
			t.Title, _, err = jsonwire.DecodeString(v)
		case jsonwire.KeyIs(k, "body"):
			t.Body, _, err = jsonwire.DecodeString(v)
		case jsonwire.KeyIs(k, "tags"):
			t.Tags, err = jsonwire.DecodeStrings(v)
		}
		return err
	})
}

// AppendJSON implements sdk.JSONAppender.
func (t *ticket) AppendJSON(b []byte, html bool) ([]byte, error) {
	b = append(b, `{"id":`...)
	b = jsonwire.AppendString(b, t.ID, html)
	b = append(b, `,"title":`...)
	b = jsonwire.AppendString(b, t.Title, html)
	b = append(b, `,"body":`...)
	b = jsonwire.AppendString(b, t.Body, html)
	b = append(b, `,"tags":`...)
	b = jsonwire.AppendStrings(b, t.Tags, html)
	b = append(b, `,"ntags":`...)
	b = jsonwire.AppendInt(b, int64(t.NTags))
	return append(b, '}'), nil
}
