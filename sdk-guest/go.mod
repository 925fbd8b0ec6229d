module github.com/connhost/connhost/sdk-guest

go 1.26.0

require github.com/connhost/connhost/abi v0.0.0-00010101000000-000000000000

replace github.com/connhost/connhost/abi => ../abi
