package seal_test

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"log"

	"github.com/seshgo/sesh/seal"
)

func Example() {
	// Generate a key once and store its String form in the SESH_KEYS
	// environment variable (here: a local string).
	k1, err := seal.GenerateKey(1)
	if err != nil {
		log.Fatal(err)
	}
	seshKeys := k1.Encode() // "1:<43 base64url characters>"

	ring, err := seal.ParseRing(seshKeys)
	if err != nil {
		log.Fatal(err)
	}
	box := ring.Box("session")

	// Bind the record to its store key, the SHA-256 of the session ID.
	storeKey := sha256.Sum256([]byte("session-id-from-cookie"))
	env, err := box.Seal(nil, []byte(`{"user":42}`), storeKey[:])
	if err != nil {
		log.Fatal(err)
	}
	pt, current, err := box.Open(nil, env, storeKey[:])
	fmt.Printf("%s current=%v err=%v\n", pt, current, err)

	// The same envelope under another store key does not open.
	other := sha256.Sum256([]byte("another-session-id"))
	_, _, err = box.Open(nil, env, other[:])
	fmt.Println("other store key:", errors.Is(err, seal.ErrInvalid))

	// Rotation. Step 1: add key 2 at the end, on every server.
	// Step 2: make it current.
	k2, err := seal.GenerateKey(2)
	if err != nil {
		log.Fatal(err)
	}
	ring, err = seal.ParseRing(k2.Encode() + ", " + seshKeys)
	if err != nil {
		log.Fatal(err)
	}
	box = ring.Box("session")
	pt, current, err = box.Open(nil, env, storeKey[:])
	fmt.Printf("after rotation: %s current=%v err=%v\n", pt, current, err)
	if !current {
		// Re-seal under the current key on the next write.
		env, err = box.Seal(nil, pt, storeKey[:])
		if err != nil {
			log.Fatal(err)
		}
	}
	id, _ := seal.KeyID(env)
	fmt.Println("re-sealed with key", id, "of", ring.IDs())

	// Step 3, after the maximum session lifetime: drop key 1.
	ring, err = seal.ParseRing(k2.Encode())
	if err != nil {
		log.Fatal(err)
	}
	_, current, err = ring.Box("session").Open(nil, env, storeKey[:])
	fmt.Printf("after retiring key 1: current=%v err=%v\n", current, err)

	// Output:
	// {"user":42} current=true err=<nil>
	// other store key: true
	// after rotation: {"user":42} current=false err=<nil>
	// re-sealed with key 2 of [2 1]
	// after retiring key 1: current=true err=<nil>
}

func ExampleParseRing_weakKey() {
	_, err := seal.ParseRing(seal.ExampleKey)
	fmt.Println(err)
	fmt.Println(errors.Is(err, seal.ErrWeakKey))

	_, err = seal.ParseRing("2:c2hvcnQ")
	fmt.Println(err)
	// Output:
	// seal: key 1: secret is a published example key; generate one with seal.GenerateKey
	// true
	// seal: key 2: secret is 5 bytes, want 32
}

func ExampleBox_SealBound() {
	k, err := seal.GenerateKey(1)
	if err != nil {
		log.Fatal(err)
	}
	ring, err := seal.NewRing(k)
	if err != nil {
		log.Fatal(err)
	}
	box := ring.Box("session")

	sessionID := []byte("session-id-from-cookie") // never stored
	storeKey := sha256.Sum256(sessionID)          // the store's key
	env, err := box.SealBound(nil, []byte(`{"user":42}`), storeKey[:], sessionID)
	if err != nil {
		log.Fatal(err)
	}
	pt, _, err := box.OpenBound(nil, env, storeKey[:], sessionID)
	fmt.Printf("%s %v\n", pt, err)
	_, _, err = box.OpenBound(nil, env, storeKey[:], []byte("guessed-id"))
	fmt.Println(errors.Is(err, seal.ErrInvalid))
	// Output:
	// {"user":42} <nil>
	// true
}
