package sdk

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/abi/jsonwire"
)

// Imports are the connhost_v1 host functions as the SDK calls them. In a
// wasip1 build the SDK binds them to the real imports; package sdktest
// implements them in memory for native tests.
type Imports interface {
	// RPC calls the RPC host function name (abi.Import*) with a JSON request
	// and returns the envelope it staged. The returned bytes are valid until
	// the next call on Imports.
	RPC(ctx context.Context, name string, req []byte) []byte
	// Log writes a message at an abi.Log* level.
	Log(level int32, msg []byte)
	// Sleep sleeps ms milliseconds and returns abi.SleepCompleted, or
	// abi.SleepInterrupted when the host interrupted it.
	Sleep(ctx context.Context, ms int64) int32
	// ShouldStop reports whether the host wants the current call to return.
	ShouldStop() bool
}

// retainLimit bounds the capacity of the buffers a Module keeps between
// calls, so that one huge result does not pin memory for the module's life.
const retainLimit = 64 << 10

// stage is the buffer staged input is read into: export inputs and RPC
// responses. Their contents are read afresh each time, so growing it never
// copies; it grows to at least twice its capacity, so a run of slowly
// growing responses reallocates a logarithmic number of times, and it is
// dropped past retainLimit.
type stage struct {
	buf    []byte
	allocs int // arrays allocated, for tests
}

// get returns the buffer with length n.
func (s *stage) get(n int) []byte {
	if cap(s.buf) > retainLimit {
		s.buf = nil
	}
	if cap(s.buf) < n {
		s.buf = make([]byte, max(n, min(2*cap(s.buf), retainLimit)))
		s.allocs++
	}
	return s.buf[:n]
}

// Module is one module instance of a connector bound to host imports: the
// three ABI entry points as Go methods. The wasm exports call the Module of
// the registered connector; sdktest calls one natively. A Module is not safe
// for concurrent use, like a module instance.
type Module struct {
	conn       *Connector
	host       Host
	configured bool

	out   []byte // envelope of the current call, reused
	grows int    // times out moved to a larger array; tests check it settles
}

// NewModule returns a Module serving c over imp. It panics if c is invalid,
// as Register does.
func NewModule(c Connector, imp Imports) *Module {
	if err := c.validate(); err != nil {
		panic(err)
	}
	m := &Module{conn: &c}
	m.host.imp = imp
	return m
}

// Configure handles connhost_configure: req is a ConfigureRequest. It
// returns the envelope to output, valid until the next call on m.
func (m *Module) Configure(ctx context.Context, req []byte) []byte {
	var cr abi.ConfigureRequest
	if err := json.Unmarshal(req, &cr); err != nil {
		return m.fail(BadRequest("configure request: %v", err))
	}
	if cr.ABIVersion != abi.Version {
		return m.fail(BadRequest("configure request: ABI version %d, this SDK speaks %d", cr.ABIVersion, abi.Version))
	}
	m.host.inst = cr.Instance
	m.host.pluginVersion = cr.PluginVersion
	m.host.params = Params{vals: cr.Params}
	m.host.limits = cr.Limits
	if m.conn.Configure != nil {
		if err := m.conn.Configure(ctx, &m.host); err != nil {
			return m.fail(err)
		}
	}
	m.configured = true
	return m.result(nil)
}

// Call handles connhost_call: the command name and its JSON arguments. It
// decodes args before running any handler, so the caller may reuse args once
// a handler makes a host call. It returns the envelope to output, valid
// until the next call on m.
func (m *Module) Call(ctx context.Context, cmd string, args []byte) []byte {
	if !m.configured {
		return m.fail(fmt.Errorf("command %s called before connhost_configure succeeded", cmd))
	}
	res, err := m.dispatch(ctx, cmd, args)
	if err != nil {
		return m.fail(err)
	}
	return m.result(res)
}

// HTTP handles connhost_http: req is an abi.HTTPRequest. It returns the
// envelope to output (result an abi.HTTPResponse), valid until the next
// call on m.
func (m *Module) HTTP(ctx context.Context, req []byte) []byte {
	if !m.configured {
		return m.fail(fmt.Errorf("connhost_http called before connhost_configure succeeded"))
	}
	if m.conn.HTTP == nil {
		return m.fail(abi.Errorf(abi.KindNotImplemented, "plugin %s has no HTTP handler", m.host.inst.Brand))
	}
	var hr abi.HTTPRequest
	if err := hr.DecodeJSON(req); err != nil {
		return m.fail(BadRequest("http request: %v", err))
	}
	resp, err := m.conn.HTTP(ctx, &m.host, &hr)
	if err != nil {
		return m.fail(err)
	}
	if resp == nil {
		resp = &abi.HTTPResponse{Status: 204}
	}
	if resp.Status == 0 {
		resp.Status = 200
	}
	return m.result(&httpResult{resp})
}

// httpResult encodes an HTTP handler's response by hand.
type httpResult struct{ r *abi.HTTPResponse }

// decodeArgs decodes the arguments of a reserved command; bad JSON is the
// host's fault or a test's, reported as bad_request naming the command.
func decodeArgs(args []byte, v any, cmd string) error {
	if err := json.Unmarshal(args, v); err != nil {
		return BadRequest("arguments of %s: %v", cmd, err)
	}
	return nil
}

func (m *Module) dispatch(ctx context.Context, cmd string, args []byte) (any, error) {
	c, h := m.conn, &m.host
	switch cmd {
	case abi.CommandTestModule:
		if c.TestModule != nil {
			if err := c.TestModule(ctx, h); err != nil {
				return nil, err
			}
		}
		return okResult, nil
	case abi.CommandFetchIncidents:
		if c.FetchIncidents == nil {
			break
		}
		var a abi.FetchIncidentsArgs
		if err := decodeArgs(args, &a, cmd); err != nil {
			return nil, err
		}
		if a.LastRun == nil {
			a.LastRun = map[string]any{}
		}
		incs, next, err := c.FetchIncidents(ctx, h, a.LastRun)
		if err != nil {
			return nil, err
		}
		if incs == nil {
			incs = []abi.Incident{}
		}
		return abi.FetchIncidentsResult{Incidents: incs, LastRun: next}, nil
	case abi.CommandGetRemoteData:
		if c.GetRemoteData == nil {
			break
		}
		var a abi.GetRemoteDataArgs
		if err := decodeArgs(args, &a, cmd); err != nil {
			return nil, err
		}
		res, err := c.GetRemoteData(ctx, h, a)
		if err != nil {
			return nil, err
		}
		if res.Entries == nil {
			res.Entries = []abi.Entry{}
		}
		return res, nil
	case abi.CommandGetModifiedRemoteData:
		if c.GetModifiedRemoteData == nil {
			break
		}
		var a abi.GetModifiedRemoteDataArgs
		if err := decodeArgs(args, &a, cmd); err != nil {
			return nil, err
		}
		res, err := c.GetModifiedRemoteData(ctx, h, a)
		if err != nil {
			return nil, err
		}
		if res.ModifiedIncidentIDs == nil {
			res.ModifiedIncidentIDs = []string{}
		}
		return res, nil
	case abi.CommandUpdateRemoteSystem:
		if c.UpdateRemoteSystem == nil {
			break
		}
		var a abi.UpdateRemoteSystemArgs
		if err := decodeArgs(args, &a, cmd); err != nil {
			return nil, err
		}
		return c.UpdateRemoteSystem(ctx, h, a)
	case abi.CommandGetMappingFields:
		if c.GetMappingFields == nil {
			break
		}
		return c.GetMappingFields(ctx, h)
	case abi.CommandLongRunningExecution:
		if c.LongRunningExecution == nil {
			break
		}
		return nil, c.LongRunningExecution(ctx, h)
	case abi.CommandSendNotification:
		if c.SendNotification == nil {
			break
		}
		var a map[string]any
		if err := decodeArgs(args, &a, cmd); err != nil {
			return nil, err
		}
		return nil, c.SendNotification(ctx, h, a)
	default:
		fn := c.Commands[cmd]
		if fn == nil {
			break
		}
		a, err := parseArgs(args)
		if err != nil {
			return nil, err
		}
		return fn(ctx, h, a)
	}
	return nil, abi.Errorf(abi.KindNotImplemented, "command %s is not implemented by plugin %s", cmd, h.inst.Brand)
}

// okResult marks the test-module answer so result can write it without
// going through encoding/json.
var okResult = &struct{}{}

var (
	envOK   = []byte(`{"result":"ok"}`)
	envNull = []byte(`{"result":null}`)
)

// result encodes a success envelope into the reused output buffer, as an
// Encoder without HTML escaping wrote it, reflection-free for the types a
// handler usually returns (json.RawMessage, strings, maps and slices of
// JSON values, abi.CommandResults).
func (m *Module) result(v any) []byte {
	switch v {
	case okResult:
		return envOK
	case nil:
		return envNull
	}
	m.trim()
	out := append(m.out[:0], `{"result":`...)
	if raw, ok := v.(json.RawMessage); ok {
		out = m.reserve(out, len(raw)+1)
	}
	out, err := appendResult(out, v)
	if err != nil {
		return m.fail(fmt.Errorf("encode result: %w", err))
	}
	return m.keep(append(out, '}'))
}

// JSONAppender is the fast path for a command's own result types: a result
// that implements it is written by AppendJSON instead of by encoding/json's
// reflection. AppendJSON appends exactly one JSON value to dst (escapeHTML
// says whether <, > and & must be escaped; the SDK passes false) and
// returns the extended slice; package jsonwire (AppendString,
// AppendValue, ...) writes the parts as encoding/json would. The SDK checks
// that the value is valid JSON, so a mistake is a failed command rather
// than a broken envelope.
type JSONAppender interface {
	AppendJSON(dst []byte, escapeHTML bool) ([]byte, error)
}

// appendResult writes a handler's result, its known wire types by hand.
func appendResult(dst []byte, v any) ([]byte, error) {
	switch v := v.(type) {
	case abi.CommandResults:
		return v.AppendJSON(dst, false)
	case *abi.CommandResults:
		if v != nil {
			return v.AppendJSON(dst, false)
		}
	case *httpResult:
		return v.r.AppendJSON(dst, false)
	case JSONAppender:
		start := len(dst)
		out, err := v.AppendJSON(dst, false)
		if err == nil {
			err = jsonwire.Check(out[start:])
		}
		return out, err
	}
	return jsonwire.AppendValue(dst, v, false)
}

// reserve makes room for n more bytes in one step, at least doubling, so
// that a result of known size does not grow the buffer several times.
func (m *Module) reserve(b []byte, n int) []byte {
	if cap(b)-len(b) >= n {
		return b
	}
	nb := make([]byte, len(b), max(2*cap(b), len(b)+n))
	copy(nb, b)
	return nb
}

// keep stores the envelope's buffer for reuse and counts a growth.
func (m *Module) keep(out []byte) []byte {
	if cap(out) != cap(m.out) {
		m.grows++
	}
	m.out = out
	return out
}

func (m *Module) fail(err error) []byte {
	m.trim()
	return m.keep(abi.AppendFail(m.out[:0], toABIError(err)))
}

// trim drops an output buffer grown past retainLimit. The wasm exports call
// it as soon as output has returned, since the host has copied the bytes.
func (m *Module) trim() {
	if cap(m.out) > retainLimit {
		m.out = nil
	}
}
