//go:build wasip1

// Command probe is the host's test guest: a raw-ABI Go plugin whose commands
// exercise the host functions.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/plugins/faulty/rawabi"
)

type args struct {
	Name    string          `json:"name"`
	Req     json.RawMessage `json:"req"`
	N       int             `json:"n"`
	Msg     string          `json:"msg"`
	MS      int64           `json:"ms"`
	Param   string          `json:"param"`
	Fail    bool            `json:"fail"`
	Cursor  float64         `json:"cursor"`
	LastRun map[string]any  `json:"last_run"`
}

var garbage []byte

func handle(cmd string, raw json.RawMessage) (any, error) {
	var a args
	if err := json.Unmarshal(raw, &a); err != nil {
		return nil, &abi.Error{Kind: abi.KindBadRequest, Message: err.Error()}
	}
	switch cmd {
	case abi.CommandTestModule:
		return "ok", nil
	case "echo":
		return raw, nil
	case "rpc":
		// Calls one RPC host function and returns its result.
		return rawabi.RPC(a.Name, a.Req)
	case "ctx-incr":
		// Read-modify-write of the integration context with its version.
		res, err := rawabi.RPC(abi.ImportIntegrationContextGet, json.RawMessage(`{}`))
		if err != nil {
			return nil, err
		}
		var got abi.ContextGetResult
		if err := json.Unmarshal(res, &got); err != nil {
			return nil, err
		}
		n, _ := got.Context["n"].(float64)
		req, _ := json.Marshal(abi.ContextSetRequest{Context: map[string]any{"n": n + 1}, Version: got.Version})
		return rawabi.RPC(abi.ImportIntegrationContextSet, req)
	case "log":
		for range a.N {
			rawabi.Log(abi.LogInfo, a.Msg)
		}
		fmt.Println("stdout: " + a.Msg)
		return nil, nil
	case "param-is":
		// Reports whether a parameter arrived with the given value, without
		// echoing it.
		return rawabi.Params[a.Param] == a.Msg, nil
	case "limits":
		return rawabi.Limits, nil
	case "alloc":
		garbage = make([]byte, a.N)
		garbage[len(garbage)-1] = 1
		return len(garbage), nil
	case "big":
		return strings.Repeat("x", a.N), nil
	case "sleep":
		return rawabi.Sleep(a.MS), nil
	case "wait-stop":
		for !rawabi.ShouldStop() {
			rawabi.Sleep(1000)
		}
		return "stopped", nil
	case abi.CommandFetchIncidents:
		next := map[string]any{"cursor": a.Cursor + 1}
		b, _ := json.Marshal(abi.RunValue{Value: next})
		if _, err := rawabi.RPC(abi.ImportLastRunSet, b); err != nil {
			return nil, err
		}
		if a.Fail {
			return nil, errors.New("fetch failed after last_run_set")
		}
		return abi.FetchIncidentsResult{Incidents: []abi.Incident{{Name: "incident", Severity: abi.SeverityHigh}}, LastRun: a.LastRun}, nil
	case "fail":
		return nil, errors.New(a.Msg)
	}
	return nil, &abi.Error{Kind: abi.KindNotImplemented, Message: "probe: no command " + cmd}
}

func init() {
	rawabi.Serve(handle)
	rawabi.ServeHTTP(func(req abi.HTTPRequest) (abi.HTTPResponse, error) {
		return abi.HTTPResponse{Status: 200, Headers: map[string][]string{"X-Path": {req.Path}}, Body: append([]byte("echo:"), req.Body...)}, nil
	})
}

func main() {}
