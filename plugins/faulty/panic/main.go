//go:build wasip1

// Command panic is a fault guest: command "panic" panics in Go; "ok" succeeds.
package main

import (
	"encoding/json"

	"github.com/connhost/connhost/plugins/faulty/rawabi"
)

func init() {
	rawabi.Serve(func(cmd string, _ json.RawMessage) (any, error) {
		if cmd == "panic" {
			panic("deliberate panic from the panic guest")
		}
		return "ok", nil
	})
}

func main() {}
