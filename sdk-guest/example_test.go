package sdk_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"

	"github.com/connhost/connhost/abi"
	sdk "github.com/connhost/connhost/sdk-guest"
	"github.com/connhost/connhost/sdk-guest/sdktest"
)

// weather is a small connector: test-module checks the API answers, and
// weather-get returns the forecast for a city through the host's HTTP
// client. In a plugin, main.go would hold it and call sdk.Register(weather)
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
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.Params().String("url")+"/forecast?city="+city, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+h.Params().Secret("token"))
	resp, err := h.HTTPClient().Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusTooManyRequests {
		return "", sdk.RateLimited("weather API rate limit")
	}
	b, err := io.ReadAll(resp.Body)
	return string(b), err
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
