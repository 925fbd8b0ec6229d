package main

import (
	"context"
	"sync"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/host"
)

// recorder wraps the runner's services and remembers the side effects a
// command had, so the runner can show them after the result.
type recorder struct {
	host.Services

	mu        sync.Mutex
	incidents []createdIncident
	entries   []abi.AddEntryRequest
	health    []abi.ModuleHealth
	contexts  []int64 // versions written
	lastRuns  int
}

type createdIncident struct {
	ID   string
	Name string
}

func (r *recorder) SetIntegrationContext(ctx context.Context, inst abi.InstanceInfo, value map[string]any, version int64) (int64, error) {
	v, err := r.Services.SetIntegrationContext(ctx, inst, value, version)
	if err == nil {
		r.mu.Lock()
		r.contexts = append(r.contexts, v)
		r.mu.Unlock()
	}
	return v, err
}

func (r *recorder) SetLastRun(ctx context.Context, inst abi.InstanceInfo, value map[string]any) error {
	err := r.Services.SetLastRun(ctx, inst, value)
	if err == nil {
		r.mu.Lock()
		r.lastRuns++
		r.mu.Unlock()
	}
	return err
}

func (r *recorder) AddEntry(ctx context.Context, inst abi.InstanceInfo, req abi.AddEntryRequest) (string, error) {
	id, err := r.Services.AddEntry(ctx, inst, req)
	if err == nil {
		r.mu.Lock()
		r.entries = append(r.entries, req)
		r.mu.Unlock()
	}
	return id, err
}

func (r *recorder) CreateIncidents(ctx context.Context, inst abi.InstanceInfo, req abi.CreateIncidentsRequest) ([]string, error) {
	ids, err := r.Services.CreateIncidents(ctx, inst, req)
	if err == nil {
		r.mu.Lock()
		for i, inc := range req.Incidents {
			c := createdIncident{Name: inc.Name}
			if i < len(ids) {
				c.ID = ids[i]
			}
			r.incidents = append(r.incidents, c)
		}
		r.mu.Unlock()
	}
	return ids, err
}

func (r *recorder) UpdateModuleHealth(ctx context.Context, inst abi.InstanceInfo, h abi.ModuleHealth) error {
	err := r.Services.UpdateModuleHealth(ctx, inst, h)
	if err == nil {
		r.mu.Lock()
		r.health = append(r.health, h)
		r.mu.Unlock()
	}
	return err
}
