// Command instant is a mirroring connector that answers at once, for the
// engine's benchmarks through the real runtime: get-remote-data returns the
// remote id as the incident's name; get-modified-remote-data reports the ids
// listed in the integration context key "modified", and is not implemented
// while that key is absent (so the host polls every incident).
package main

import (
	"context"

	"github.com/connhost/connhost/abi"
	sdk "github.com/connhost/connhost/sdk-guest"
)

func main() {}

func init() {
	sdk.Register(sdk.Connector{
		GetRemoteData: func(_ context.Context, _ *sdk.Host, a abi.GetRemoteDataArgs) (abi.GetRemoteDataResponse, error) {
			return abi.GetRemoteDataResponse{MirroredObject: map[string]any{"name": "remote " + a.RemoteIncidentID}}, nil
		},
		GetModifiedRemoteData: func(ctx context.Context, h *sdk.Host, _ abi.GetModifiedRemoteDataArgs) (abi.GetModifiedRemoteDataResponse, error) {
			v, _, err := h.IntegrationContext(ctx)
			if err != nil {
				return abi.GetModifiedRemoteDataResponse{}, err
			}
			list, ok := v["modified"].([]any)
			if !ok {
				return abi.GetModifiedRemoteDataResponse{}, sdk.NotImplemented()
			}
			ids := []string{}
			for _, id := range list {
				if s, ok := id.(string); ok {
					ids = append(ids, s)
				}
			}
			return abi.GetModifiedRemoteDataResponse{ModifiedIncidentIDs: ids}, nil
		},
	})
}
