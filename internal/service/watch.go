package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/internal/signing"
)

// watchSettle is how long a plugin file must see no new write before it is
// installed, so a file copied in several writes is read whole.
const watchSettle = 150 * time.Millisecond

// Plugin files in a watched directory.
const (
	wasmExt = ".wasm"
	sigExt  = ".minisig"
)

// watcher installs plugin files dropped into a directory.
type watcher struct {
	fs     *fsnotify.Watcher
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

// close stops watching and waits for an install in progress.
func (w *watcher) close() {
	w.once.Do(func() {
		w.cancel()
		_ = w.fs.Close()
		<-w.done
	})
}

// watchDir watches dir (created if missing) for FILE.wasm files, with an
// optional FILE.wasm.minisig beside them, and installs each new or changed
// file as Install does (trust policy, downgrade check, swap). Files already
// there are installed once at start unless their version is installed with
// the same content.
func (ps *Plugins) watchDir(ctx context.Context, dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("plugins.watch_dir %s: %w", dir, err)
	}
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("plugins.watch_dir %s: %w", dir, err)
	}
	if err := fw.Add(dir); err != nil {
		_ = fw.Close()
		return fmt.Errorf("plugins.watch_dir %s: %w", dir, err)
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	w := &watcher{fs: fw, cancel: cancel, done: make(chan struct{})}
	ps.watch = w
	go ps.watchLoop(ctx, w, dir)
	ps.c.log.Info().Str("dir", dir).Msg("watching for plugin files")
	return nil
}

// stopWatching stops the watched directory, if any, waiting for an install
// in progress.
func (ps *Plugins) stopWatching() {
	if ps.watch != nil {
		ps.watch.close()
	}
}

func (ps *Plugins) watchLoop(ctx context.Context, w *watcher, dir string) {
	defer close(w.done)
	seen := map[string]string{} // file → signing.SHA256Hex of wasm and signature last handled
	if entries, err := os.ReadDir(dir); err == nil {
		for _, e := range entries {
			if strings.HasSuffix(e.Name(), wasmExt) && !e.IsDir() {
				ps.installWatched(ctx, filepath.Join(dir, e.Name()), seen, true)
			}
		}
	}
	pending := map[string]time.Time{}
	tick := time.NewTicker(watchSettle / 3)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-w.fs.Events:
			if !ok {
				return
			}
			if !ev.Has(fsnotify.Create) && !ev.Has(fsnotify.Write) && !ev.Has(fsnotify.Rename) {
				continue
			}
			// A signature written after its plugin retries the plugin.
			name := strings.TrimSuffix(ev.Name, sigExt)
			if strings.HasSuffix(name, wasmExt) {
				pending[name] = time.Now()
			}
		case err, ok := <-w.fs.Errors:
			if !ok {
				return
			}
			ps.c.log.Warn().Err(err).Str("dir", dir).Msg("plugin directory watch error")
		case now := <-tick.C:
			for file, last := range pending {
				if now.Sub(last) >= watchSettle {
					delete(pending, file)
					ps.installWatched(ctx, file, seen, false)
				}
			}
		}
	}
}

// installWatched installs one watched file, logging the outcome. At start
// (initial) a file whose version is installed with the same content is
// skipped, so a restart does not undo a rollback.
func (ps *Plugins) installWatched(ctx context.Context, file string, seen map[string]string, initial bool) {
	wasm, err := readWatched(file)
	if errors.Is(err, os.ErrNotExist) {
		return // renamed away or deleted before it settled
	}
	log := ps.c.log.With().Str("file", file).Logger()
	if err != nil {
		log.Error().Err(err).Msg("watched plugin file not read")
		return
	}
	sig, err := readWatched(file + sigExt)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		log.Error().Err(err).Msg("watched plugin signature not read")
		return
	}
	id := signing.SHA256Hex(wasm) + signing.SHA256Hex(sig)
	if seen[file] == id {
		return
	}
	seen[file] = id
	if initial {
		if m, err := abi.ReadManifest(wasm); err == nil {
			if pv, err := ps.c.st.GetPluginVersion(ctx, m.Name, m.Version); err == nil && pv.SHA256 == signing.SHA256Hex(wasm) {
				if pv.Minisig == nil && sig != nil {
					// The signature is kept without making the version current.
					if err := ps.keepSignature(ctx, pv, wasm, sig, "watch:"+filepath.Base(file)); err != nil {
						log.Error().Err(err).Msg("watched plugin signature not kept")
					}
				}
				return
			}
		}
	}
	res, err := ps.Install(ctx, InstallRequest{Wasm: wasm, Signature: sig, By: "watch:" + filepath.Base(file)})
	if err != nil {
		log.Error().Err(err).Msg("watched plugin file not installed")
		return
	}
	log.Info().Str("plugin", res.Name+"@"+res.Version).Bool("signed", res.Signed).
		Strs("switched", res.Switched).Msg("watched plugin file installed")
}

// errNotRegular marks a watched path that is a symlink, directory or other
// non-regular file.
var errNotRegular = errors.New("not a regular file; symlinks are not followed")

// readWatched reads a regular file of the watched directory without
// following a symlink: a link dropped there must not make the server read
// a file elsewhere. The file opened is checked to be the one looked at, so
// swapping in a link between the two fails too.
func readWatched(path string) ([]byte, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: %w (%s)", path, errNotRegular, fi.Mode().Type())
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	opened, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !os.SameFile(fi, opened) {
		return nil, fmt.Errorf("%s: %w (replaced while being opened)", path, errNotRegular)
	}
	return io.ReadAll(f)
}
