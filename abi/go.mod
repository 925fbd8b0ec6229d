module github.com/connhost/connhost/abi

go 1.26.0
