package service

import (
	"context"
	"runtime"
	"sync"

	"github.com/connhost/connhost/internal/store"
)

// startConcurrency bounds the instances starting at once. A start is
// mostly one core's work (instantiating and configuring a module
// instance), so a few per core keep the cores busy while one waits for the
// store, and more would only add memory.
func startConcurrency() int { return min(runtime.GOMAXPROCS(0)*2, 8) }

// startAll starts the enabled instances of insts, startConcurrency at a
// time, in the background, and closes c.started when all are done. Once
// the service is closing, the instances not started yet are skipped.
func (c *core) startAll(ctx context.Context, insts []store.Instance) {
	for _, rec := range insts {
		if rec.Enabled {
			c.startTotal++
		}
	}
	c.startLeft.Store(int64(c.startTotal))
	jobs := make(chan store.Instance)
	var wg sync.WaitGroup
	for range min(startConcurrency(), len(insts)) {
		wg.Go(func() {
			for rec := range jobs {
				c.startOne(ctx, rec)
			}
		})
	}
	go func() {
		for _, rec := range insts {
			if c.closing.Load() {
				break
			}
			jobs <- rec
		}
		close(jobs)
		wg.Wait()
		c.startLeft.Store(0)
		close(c.started)
	}()
}

// startOne brings a stored instance's settings up to date and starts it
// if enabled, logging (and recording as its health) why it did not start.
func (c *core) startOne(ctx context.Context, rec store.Instance) {
	enabled := rec.Enabled
	defer func() {
		if enabled {
			c.startLeft.Add(-1)
		}
	}()
	rec, err := c.migrateInstance(ctx, rec)
	if err != nil {
		c.log.Error().Err(err).Str("instance", rec.Name).Str("plugin", c.pluginLabel(ctx, rec)).Msg("instance settings not migrated; they still apply")
	}
	if !rec.Enabled {
		return
	}
	if c.onStart != nil {
		defer c.onStart(rec.Name)()
	}
	// An instance whose pool idles out starts cold: warming it would cost a
	// module instance (megabytes, tens of ms of CPU) per instance at every
	// restart, most of them closed unused after limits.pool_idle.
	// Long-running instances run at once and keep a warm pool.
	warm := c.limitsFor(rec.Settings).PoolIdle <= 0
	if err := c.startOrRecordWarm(ctx, rec, warm); err != nil {
		c.log.Error().Err(err).Str("instance", rec.Name).Str("plugin", c.pluginLabel(ctx, rec)).Msg("instance did not start")
	}
}
