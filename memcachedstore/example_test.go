package memcachedstore_test

import (
	"github.com/bradfitz/gomemcache/memcache"
	"github.com/seshgo/sesh/memcachedstore"
	"github.com/seshgo/sesh/memstore"
)

func ExampleNew() {
	client := memcache.New("127.0.0.1:11211")
	store := memcachedstore.New(client, memcachedstore.WithPrefix("myapp:"))
	_ = store // sesh.New(store, sesh.Config{...})
}

func ExampleNewIndexed() {
	// Records in memcached, the user index in another store: here a
	// memstore, which suits one process; several processes need a shared
	// store (SQL, Redis) for the index.
	records := memcachedstore.New(memcache.New("127.0.0.1:11211"))
	store := memcachedstore.NewIndexed(records, memstore.New())
	_ = store // sesh.New(store, sesh.Config{...}); store.UserRecords(ctx, user)
}
