package service

import (
	"errors"
	"time"
)

// UnknownLabel stands, in what the observer is told, for an instance or
// command name a client made up: the names it reports come only from
// bounded sets (instances that exist, commands their plugins serve), so
// requests cannot grow the metrics labelled by them.
const UnknownLabel = "unknown"

// knownName is instance as the observer may see it: UnknownLabel when err
// says there is no such instance.
func knownName(instance string, err error) string {
	if errors.Is(err, ErrNotFound) {
		return UnknownLabel
	}
	return instance
}

// Triggers of command calls: what made the host run a command, the trigger
// label of the command metrics.
const (
	TriggerAPI         = "api"          // an API request (execute, test, fetch, remote schema)
	TriggerFetch       = "fetch"        // the fetch scheduler
	TriggerMirrorIn    = "mirror_in"    // incoming mirroring
	TriggerMirrorOut   = "mirror_out"   // the outbox, and chat delivery
	TriggerLongRunning = "long_running" // a supervised long-running execution
	TriggerHTTP        = "http"         // an HTTP request into a long-running plugin
)

// CommandObserver is told of every command call once it returns: the
// instance, the command, its trigger, its error (nil on success) and how
// long it took. Calls the API refuses before running (an unknown instance,
// bad arguments) are reported too, with their error; names a client made
// up are reported as UnknownLabel.
type CommandObserver func(instance, command, trigger string, err error, took time.Duration)

// SetCommandObserver sets the observer of command calls (the server's
// metrics); nil stops reporting.
func (s *Service) SetCommandObserver(fn CommandObserver) {
	if fn == nil {
		s.c.observer.Store(nil)
		return
	}
	s.c.observer.Store(&fn)
}

// observe reports a call that started at start to the observer, if any.
func (c *core) observe(instance, command, trigger string, start time.Time, err error) {
	if fn := c.observer.Load(); fn != nil {
		(*fn)(instance, command, trigger, err, time.Since(start))
	}
}
