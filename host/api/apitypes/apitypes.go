// Package apitypes holds the request and response bodies of the connhost
// HTTP API (/api/v1): the public contract that servers, clients and the web
// console share. The server maps its service and store types into these by
// explicit functions, so a change of storage layout cannot change the API.
//
// The component schemas of internal/api/openapi.json are generated from these
// types (go generate ./internal/api); their doc comments become the schemas'
// descriptions. Conventions the generator relies on: a field without
// omitempty or omitzero is always present (required), an optional field is
// left out rather than sent as null, and times are RFC 3339 strings.
//
// The package depends only on abi, whose manifest and enumerations (error
// kinds, entry types, incident statuses) are part of the contract.
package apitypes
