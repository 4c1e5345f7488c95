package redisstore_test

import (
	"github.com/redis/go-redis/v9"
	"github.com/seshgo/sesh/redisstore"
)

func ExampleNew() {
	// Standalone; for Sentinel use redis.NewFailoverClient, for a cluster
	// redis.NewClusterClient: the store works the same on each.
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer client.Close()
	store := redisstore.New(client, redisstore.WithPrefix("myapp:sesh:"))
	_ = store // sesh.New(store, sesh.Config{...})
}
