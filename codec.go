package sesh

import "encoding/json"

// Codec turns values into bytes and back. Values are encoded when they are
// set and decoded on demand into the caller's type, so no type needs
// registering. Decode must treat its input as untrusted: sealed records
// are authenticated, but a codec should still never instantiate types
// chosen by the data (encoding/gob is therefore not recommended).
type Codec interface {
	Encode(v any) ([]byte, error)
	Decode(data []byte, v any) error
}

// JSONCodec is the default [Codec], built on encoding/json.
type JSONCodec struct{}

// Encode implements [Codec].
func (JSONCodec) Encode(v any) ([]byte, error) { return json.Marshal(v) }

// Decode implements [Codec].
func (JSONCodec) Decode(data []byte, v any) error { return json.Unmarshal(data, v) }
