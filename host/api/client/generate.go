package client

// The client is generated from the API's document by the oapi-codegen
// release go.mod pins; TestGeneratedClientUpToDate fails while it is stale.
// After regenerating, record the inputs it was made from:
// go test ./host/api/client -run TestGeneratedClientUpToDate -update
//go:generate go tool oapi-codegen -config oapi-codegen.yaml ../../../internal/api/openapi.json
