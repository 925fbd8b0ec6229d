package sdk_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"

	"github.com/connhost/connhost/abi"
	sdk "github.com/connhost/connhost/sdk-guest"
	"github.com/connhost/connhost/sdk-guest/sdktest"
)

// weather is a small connector: test-module checks the API answers, and
// weather-get returns the forecast for a city through Host.HTTP. In a plugin, main.go would hold it and call sdk.Register(weather)
// from init.
var weather = sdk.Connector{
	TestModule: func(ctx context.Context, h *sdk.Host) error {
		_, err := forecast(ctx, h, "test")
		return err
	},
	Commands: map[string]sdk.CommandFunc{
		"weather-get": func(ctx context.Context, h *sdk.Host, args sdk.Args) (any, error) {
			city, err := args.Required("city")
			if err != nil {
				return nil, err
			}
			f, err := forecast(ctx, h, city)
			if err != nil {
				return nil, err
			}
			return abi.CommandResults{ReadableOutput: city + ": " + f, Outputs: f, OutputsPrefix: "Weather"}, nil
		},
	},
}

func forecast(ctx context.Context, h *sdk.Host, city string) (string, error) {
	resp, err := h.HTTP(ctx, abi.HTTPRequest{
		Method:  "GET",
		URL:     h.Params().String("url") + "/forecast?city=" + url.QueryEscape(city),
		Headers: sdk.Header{"Authorization": {"Bearer " + h.Params().Secret("token")}},
	})
	if err != nil {
		return "", err
	}
	if resp.Status == http.StatusTooManyRequests {
		return "", sdk.RateLimited("weather API rate limit")
	}
	return string(resp.Body), nil
}

// Example tests the weather connector natively against a fake weather API.
func Example() {
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "sunny in ", r.URL.Query().Get("city"))
	}))
	defer api.Close()

	h := sdktest.New(weather, map[string]any{"url": api.URL, "token": "t0ken"})
	ctx := context.Background()
	fmt.Println("test-module:", h.TestModule(ctx))
	res, err := h.Command(ctx, "weather-get", map[string]string{"city": "Oslo"})
	fmt.Println(string(res), err)
	_, err = h.Command(ctx, "weather-get", nil)
	fmt.Println(abi.KindOf(err))
	// Output:
	// test-module: <nil>
	// {"readable_output":"Oslo: sunny in Oslo","outputs_prefix":"Weather","outputs":"sunny in Oslo"} <nil>
	// bad_request
}

// notes is a remote system whose notes carry no tags: only their text.
type notes struct{ list []string }

// desk mirrors notes both ways; the EchoMarker, configurable through the
// mirror_marker param, keeps the notes it posts from coming back in.
var desk = sdk.Connector{
	UpdateRemoteSystem: func(ctx context.Context, h *sdk.Host, args abi.UpdateRemoteSystemArgs) (string, error) {
		marker := h.Params().EchoMarkerParam("mirror_marker")
		for _, e := range args.Entries {
			if s, ok := e.Contents.(string); ok {
				remote.list = append(remote.list, marker.Mark(s))
			}
		}
		return args.RemoteIncidentID, nil
	},
	GetRemoteData: func(ctx context.Context, h *sdk.Host, args abi.GetRemoteDataArgs) (abi.GetRemoteDataResponse, error) {
		var res abi.GetRemoteDataResponse
		for _, n := range remote.list {
			res.Entries = append(res.Entries, abi.Entry{Type: abi.EntryNote, Contents: n, Note: true})
		}
		res.Entries = h.Params().EchoMarkerParam("mirror_marker").Filter(res.Entries)
		return res, nil
	},
}

var remote = &notes{}

// ExampleEchoMarker mirrors a note out and back in: the remote shows it
// with the marker, and only the note written on the remote comes back.
func ExampleEchoMarker() {
	h := sdktest.New(desk, map[string]any{"mirror_marker": "-- sent by connhost"})
	ctx := context.Background()
	_, _ = h.UpdateRemoteSystem(ctx, abi.UpdateRemoteSystemArgs{RemoteIncidentID: "R1",
		Entries: []abi.ServerEntry{{Contents: "checked the firewall"}}})
	remote.list = append(remote.list, "written on the remote")
	fmt.Printf("%q\n", remote.list)
	res, _ := h.GetRemoteData(ctx, abi.GetRemoteDataArgs{RemoteIncidentID: "R1", LastUpdate: "2026-01-01T00:00:00Z"})
	for _, e := range res.Entries {
		fmt.Println(e.Contents)
	}
	// Output:
	// ["checked the firewall\n\n-- sent by connhost" "written on the remote"]
	// written on the remote
}
