package console_test

import (
	"context"
	"flag"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/rs/zerolog"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/host/api/apitypes"
	"github.com/connhost/connhost/internal/mirror"
	"github.com/connhost/connhost/internal/service"
	"github.com/connhost/connhost/internal/signing"
	"github.com/connhost/connhost/internal/testenv"
	"github.com/connhost/connhost/internal/testenv/wait"
	"github.com/connhost/connhost/plugins/ticketdesk/tdserver"
)

var screenshots = flag.String("screenshots", "", "also write the browser test's screenshots to this directory (docs/ takes console.png from it)")

// stepTimeout bounds each browser step: headless chromium on a busy
// two-core machine takes seconds to lay out a page.
const stepTimeout = 60 * time.Second

const noChromium = "no chromium binary on PATH (apt-get install chromium; .ci/run installs it): skipping the browser tests"

// chromium returns the path of a Chromium or Chrome binary, or "".
func chromium() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// browser is one headless chromium tab and where its screenshots go.
type browser struct {
	t    *testing.T
	ctx  context.Context
	base string
	dir  string
}

func newBrowser(t *testing.T, base string) *browser {
	t.Helper()
	path := chromium()
	if path == "" {
		t.Skip(noChromium)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.WindowSize(1280, 900),
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.UserDataDir(t.TempDir()))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	b := &browser{t: t, ctx: ctx, base: base, dir: t.TempDir()}
	if err := chromedp.Do(ctx); err != nil { // the first run starts chromium, with no timeout (it would stop the browser)
		t.Fatalf("starting %s: %v", path, err)
	}
	return b
}

// step is one browser action that returns nothing.
type step = chromedp.Action[chromedp.Void]

// run runs actions as one step, within stepTimeout, failing the test with
// the step's name and the page's main element.
func (b *browser) run(name string, actions ...step) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		hctx, hcancel := context.WithTimeout(b.ctx, 10*time.Second)
		html, _ := chromedp.Run(hctx, chromedp.OuterHTML(chromedp.CSS("main")))
		hcancel()
		b.t.Fatalf("%s: %v\npage main:\n%s", name, err, html)
	}
}

// open loads a console path and waits for its heading.
func (b *browser) open(path string) step {
	return chromedp.Steps(chromedp.Navigate(b.base+path), chromedp.WaitVisible(chromedp.CSS("main h1")))
}

// failure waits until the page shows an error outcome containing want.
func failure(want string) step {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		js := fmt.Sprintf(`(() => { const f = document.querySelector('#flash.err'); return f && f.textContent.includes(%q) ? f.textContent : ''; })()`, want)
		if _, err := chromedp.Poll[string](js, chromedp.WithPollingInterval(100*time.Millisecond))(ctx, t); err != nil {
			return fmt.Errorf("waiting for an error saying %q: %w", want, err)
		}
		return nil
	})
}

// flash waits until the page shows an outcome containing want, and fails
// on an error outcome instead.
func flash(want string) step {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		js := fmt.Sprintf(`(() => { const f = document.querySelector('#flash'); if (!f) return '';
			if (f.classList.contains('err')) return 'ERROR ' + f.textContent; return f.textContent.includes(%q) ? f.textContent : ''; })()`, want)
		got, err := chromedp.Poll[string](js, chromedp.WithPollingInterval(100*time.Millisecond))(ctx, t)
		if err != nil {
			return fmt.Errorf("waiting for %q: %w", want, err)
		}
		if strings.HasPrefix(got, "ERROR ") {
			return fmt.Errorf("want %q, the page shows %s", want, strings.Join(strings.Fields(got), " "))
		}
		return nil
	})
}

// shot saves a full-page screenshot as name.png.
func (b *browser) shot(name string) step {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		png, err := chromedp.FullScreenshot(100)(ctx, t)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(b.dir, name+".png"), png, 0o644); err != nil {
			return err
		}
		if *screenshots != "" {
			return os.WriteFile(filepath.Join(*screenshots, "console-"+name+".png"), png, 0o644)
		}
		return nil
	})
}

// labelled fails when a control on the page has no label: no <label>
// the browser associates with it, no aria-label, and (for a button) no
// text.
func labelled() step {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		bare, err := chromedp.Evaluate[[]string](`[...document.querySelectorAll('input:not([type=hidden]), select, textarea, button')]
			.filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !(e.tagName === 'BUTTON' && e.textContent.trim()))
			.map(e => e.outerHTML)`)(ctx, t)
		if err != nil {
			return err
		}
		if len(bare) > 0 {
			return fmt.Errorf("controls without a label: %v", bare)
		}
		return nil
	})
}

// page opens path, checks its controls are labelled and saves a
// screenshot as name.
func (b *browser) page(name, path string) step {
	return chromedp.Steps(b.open(path), labelled(), b.shot(name))
}

// eval evaluates a JavaScript expression into out, awaiting a promise.
func eval[T any](js string, out *T) step {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		v, err := chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise)(ctx, t)
		*out = v
		return err
	})
}

// text reads the text of the element sel selects into out.
func text(sel string, out *string) step {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		v, err := chromedp.Text(chromedp.CSS(sel))(ctx, t)
		*out = v
		return err
	})
}

// signIn signs in with key and waits for the overview.
func (b *browser) signIn(key string) step {
	return chromedp.Steps(
		b.open("/login"),
		chromedp.SendKeys(chromedp.CSS("#key"), key),
		chromedp.Click(chromedp.CSS("#signin")),
		chromedp.WaitVisible(chromedp.CSS("#who")),
	)
}

// TestBrowser drives the console in headless chromium as an admin, then
// as a read-only key: sign in, upload the ticketdesk plugin, create an
// instance from its params form, test it, fetch tickets from a TicketDesk
// server, open an incident, add a tagged entry and see it reach the
// ticket, mirror now, sign out; a read key sees no mutating control and a
// forged POST with its session is refused.
func TestBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("slow (a real browser) and exercises no concurrency: skipped under -short")
	}
	if chromium() == "" {
		t.Skip(noChromium)
	}
	const secret = "td-secret-browser"
	td := tdserver.New(secret)
	td.CreateTicket(tdserver.Ticket{Title: "Phishing report", Severity: 3})
	td.CreateTicket(tdserver.Ticket{Title: "Malware alert", Severity: 4})
	tds := httptest.NewServer(td)
	t.Cleanup(tds.Close)

	signer, err := signing.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	s := testenv.NewServer(t, testenv.ServerOptions{KeyName: "alice", Service: func(o *service.Options) {
		o.Policy = signing.NewPolicy([]signing.PublicKey{signer.Public()}, true) // unsigned uploads are refused
	}})
	eng := mirror.New(mirror.Options{Store: s.Store, Instances: s.Service.Mirroring, Logger: zerolog.Nop(),
		OutboxPoll: 100 * time.Millisecond, RetryBase: 100 * time.Millisecond, RetryMax: time.Second})
	s.Service.Mirroring.SetEngine(eng)
	eng.Start(context.Background())
	t.Cleanup(func() { eng.Stop(context.Background()) })
	readKey, _, err := s.Service.APIKeys.Issue(t.Context(), service.APIKeySpec{Name: "auditor", Role: service.RoleRead})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	wasm, minisig := filepath.Join(dir, "ticketdesk.wasm"), filepath.Join(dir, "ticketdesk.wasm.minisig")
	code := testenv.Plugin(t, "ticketdesk")
	sig, err := signing.SignPlugin(signer, code)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(wasm, code, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(minisig, sig, 0o644); err != nil {
		t.Fatal(err)
	}
	wasm2, minisig2 := filepath.Join(dir, "ticketdesk-2.wasm"), filepath.Join(dir, "ticketdesk-2.wasm.minisig")
	code2 := testenv.PluginWithManifest(t, "ticketdesk", func(m *abi.Manifest) { m.Version = "2.0.0" })
	sig2, err := signing.SignPlugin(signer, code2)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(wasm2, code2, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(minisig2, sig2, 0o644); err != nil {
		t.Fatal(err)
	}

	b := newBrowser(t, s.URL)
	b.run("an anonymous visit gets the sign-in page", b.open("/"), chromedp.WaitVisible(chromedp.CSS("#signin")), labelled(), b.shot("login"))
	b.run("sign in", b.signIn(s.Key), b.shot("overview-empty"))

	b.run("an unsigned upload is refused with the API's error",
		b.open("/plugins"),
		chromedp.SetUploadFiles(chromedp.CSS("#wasm"), []string{wasm}),
		chromedp.Click(chromedp.CSS("#upload-submit")),
		failure(string(apitypes.CodeUntrustedPlugin)))
	b.run("upload the plugin with its signature",
		b.open("/plugins"),
		chromedp.SetUploadFiles(chromedp.CSS("#wasm"), []string{wasm}),
		chromedp.SetUploadFiles(chromedp.CSS("#minisig"), []string{minisig}),
		chromedp.Click(chromedp.CSS("#upload-submit")),
		flash("signed by trusted key "+signer.ID.String()),
		chromedp.WaitVisible(chromedp.Search(`//td[contains(., "signed by key")]`)),
		b.shot("plugins"))

	b.run("create an instance from the params form",
		b.open("/instances?plugin=ticketdesk"),
		chromedp.SendKeys(chromedp.CSS("#name"), "td"),
		chromedp.SendKeys(chromedp.CSS("#p-url"), tds.URL),
		chromedp.SendKeys(chromedp.CSS("#p-api_key"), secret),
		chromedp.SetValue(chromedp.CSS("#p-mirror_direction"), "Incoming And Outgoing"),
		b.shot("instance-new"),
		chromedp.Click(chromedp.CSS("#create-submit")),
		flash("Instance created"))
	v, err := s.Service.Instances.Get(t.Context(), "td")
	if err != nil || !v.Enabled || v.Params["url"] != tds.URL || len(v.SecretsSet) != 1 ||
		v.Params["mirror_direction"] != "Incoming And Outgoing" || v.Params["comment_tag"] != "comment" {
		t.Fatalf("instance after the form: %+v, %v", v, err)
	}

	b.run("test-module", chromedp.Click(chromedp.CSS("#test")), flash("Test passed"))
	b.run("fetch incidents", chromedp.Click(chromedp.CSS("#fetch")), flash("2 new"), b.shot("instance"))
	b.run("run a command from its arguments form",
		b.open("/instances/td?command=ticketdesk-get-ticket"),
		chromedp.SendKeys(chromedp.CSS("#a-id"), "TD-2"),
		chromedp.Click(chromedp.CSS("#run-submit")),
		flash("Command done"))
	var result string
	b.run("read the command's result", text("#flash pre", &result))
	if !strings.Contains(result, "Malware alert") {
		t.Fatalf("command result %q", result)
	}
	b.run("a failing command shows the API's error and detail",
		b.open("/instances/td?command=ticketdesk-get-ticket"),
		chromedp.SendKeys(chromedp.CSS("#a-id"), "TD-99"),
		chromedp.Click(chromedp.CSS("#run-submit")),
		failure(string(apitypes.CodeCommandFailed)), failure("TD-99"))

	b.run("list and open an incident",
		b.open("/incidents?q=phishing"), b.shot("incidents"),
		chromedp.Click(chromedp.Search(`//table[@id="incidents"]//a[contains(., "Phishing report")]`)),
		chromedp.WaitVisible(chromedp.CSS("#fields")))
	const note = "Escalated from the console."
	b.run("add a tagged entry",
		chromedp.SendKeys(chromedp.CSS("#contents"), note),
		chromedp.SendKeys(chromedp.CSS("#tags"), "comment"),
		chromedp.Click(chromedp.CSS("#add-entry-submit")),
		flash("tagged comment"))
	wait.For(t, 30*time.Second, "the tagged entry as a comment on the ticket", func() bool {
		tk, _ := td.Ticket("TD-1")
		for _, c := range tk.Comments {
			if strings.Contains(c.Body, note) {
				return true
			}
		}
		return false
	})
	b.run("mirror now shows its steps",
		chromedp.Click(chromedp.CSS("#mirror-now")), flash("steps in"),
		chromedp.WaitVisible(chromedp.CSS("#flash .steps li")), b.shot("incident"))

	b.run("a new version switches the instance",
		b.open("/plugins"),
		chromedp.SetUploadFiles(chromedp.CSS("#wasm"), []string{wasm2}),
		chromedp.SetUploadFiles(chromedp.CSS("#minisig"), []string{minisig2}),
		chromedp.Click(chromedp.CSS("#upload-submit")),
		flash("Switched instances: td"))
	b.run("make the old version current again",
		b.open("/plugins/ticketdesk"),
		chromedp.Click(chromedp.Search(`//form[@action="/plugins/ticketdesk/current"]//button`)),
		flash("ticketdesk@1.0.0 is current"))
	if v, err := s.Service.Instances.Get(t.Context(), "td"); err != nil || v.Version != "1.0.0" {
		t.Fatalf("after make current: %+v, %v", v, err)
	}

	b.run("the overview shows the instance and the failed command",
		b.page("overview", "/"), chromedp.WaitVisible(chromedp.Search(`//td/a[text()="td"]`)),
		chromedp.WaitVisible(chromedp.Search(`//table[@id="failures"]//td[contains(., "TD-99")]`)))
	b.run("the other pages", b.page("plugin", "/plugins/ticketdesk"), b.page("instances", "/instances?plugin=ticketdesk"),
		b.page("instance-command", "/instances/td?command=ticketdesk-add-comment"), b.page("keys", "/keys"),
		chromedp.WaitVisible(chromedp.CSS("#create-key")))

	b.run("phone width", chromedp.EmulateViewport(390, 844))
	for _, path := range []string{"/", "/plugins/ticketdesk", "/instances/td", "/incidents", "/keys"} {
		var overflow bool
		b.run("phone width "+path, b.open(path), eval(`document.documentElement.scrollWidth > window.innerWidth + 1`, &overflow))
		if overflow {
			t.Errorf("%s scrolls sideways at 390 px", path)
		}
	}
	b.run("phone screenshot", b.open("/instances/td"), b.shot("phone-instance"), chromedp.EmulateViewport(1280, 900))

	b.run("sign out", chromedp.Click(chromedp.CSS("#signout")), chromedp.WaitVisible(chromedp.CSS("#signin")),
		b.open("/plugins"), chromedp.WaitVisible(chromedp.CSS("#signin")))

	// A read key: every page, no mutating control, and the server refuses
	// what the page does not offer.
	b.run("sign in with a read key, by keyboard only", b.open("/login"),
		chromedp.SendKeys(chromedp.CSS("#key"), readKey+kb.Enter), // the field has focus on load; Enter submits
		chromedp.WaitVisible(chromedp.CSS("#who")))
	incs, _, err := s.Service.Incidents.Search(t.Context(), service.IncidentQuery{Text: "phishing"})
	if err != nil || len(incs) != 1 {
		t.Fatalf("incidents: %v %v", incs, err)
	}
	for _, path := range []string{"/", "/plugins", "/plugins/ticketdesk", "/instances", "/instances/td", "/incidents", "/incidents/" + incs[0].ID} {
		var forms []string
		b.run("read key on "+path, b.open(path),
			eval(`[...document.querySelectorAll('form')].filter(f => f.method === 'post' && f.getAttribute('action') !== '/logout').map(f => f.getAttribute('action'))`, &forms))
		if len(forms) != 0 {
			t.Errorf("a read key sees mutating forms on %s: %v", path, forms)
		}
	}
	var keysLink bool
	b.run("no API keys link", eval(`!!document.querySelector('nav a[href="/keys"]')`, &keysLink), b.shot("read-incident"))
	if keysLink {
		t.Error("a read key sees the API keys link")
	}
	var status int
	b.run("a forged POST with the read session",
		b.open("/instances/td"),
		eval(`(async () => { const h = JSON.parse(document.body.getAttribute('hx-headers'));
			const r = await fetch('/instances/td/disable', {method: 'POST', headers: h}); return r.status; })()`, &status))
	if status != 403 {
		t.Errorf("read key disabling an instance: status %d, want 403", status)
	}
	if v, _ := s.Service.Instances.Get(t.Context(), "td"); !v.Enabled {
		t.Error("the read key's forged POST disabled the instance")
	}
	t.Logf("screenshots in %s", b.dir)
}
