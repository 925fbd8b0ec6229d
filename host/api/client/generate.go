package client

// The client is generated from the API's document by the oapi-codegen
// release go.mod pins; TestGeneratedClientUpToDate fails while it is stale.
//go:generate go tool oapi-codegen -config oapi-codegen.yaml ../../../internal/api/openapi.json
