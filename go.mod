module github.com/seshgo/sesh

go 1.25.0
