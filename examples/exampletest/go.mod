module github.com/seshgo/sesh/examples/exampletest

go 1.25.0
