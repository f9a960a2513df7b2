package engine

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
)

// ErrConfig reports a config.json the engine cannot run.
var ErrConfig = errors.New("engine: config")

// Config is a Phi model's configuration, resolved from a Hugging Face
// config.json with PhiConfig's defaults.
type Config struct {
	VocabSize             int     `json:"vocab_size"`
	HiddenSize            int     `json:"hidden_size"`
	IntermediateSize      int     `json:"intermediate_size"`
	NumLayers             int     `json:"num_hidden_layers"`
	NumHeads              int     `json:"num_attention_heads"`
	NumKVHeads            int     `json:"num_key_value_heads"`
	HeadDim               int     `json:"head_dim"`
	PartialRotaryFactor   float64 `json:"partial_rotary_factor"`
	RotaryDim             int     `json:"rotary_dim"`
	RopeTheta             float64 `json:"rope_theta"`
	LayerNormEps          float64 `json:"layer_norm_eps"`
	MaxPositionEmbeddings int     `json:"max_position_embeddings"`
	HiddenAct             string  `json:"hidden_act"`
	QKLayerNorm           bool    `json:"qk_layernorm"`
	TieWordEmbeddings     bool    `json:"tie_word_embeddings"`
	BOSTokenID            int     `json:"bos_token_id"`
	EOSTokenIDs           []int   `json:"eos_token_ids"`
	// ModelType is "phi" for every config this package accepts.
	ModelType string `json:"model_type"`
}

// Limits on sizes a config may ask for; far above any Phi model, they keep
// arithmetic on hostile configs from overflowing.
const (
	maxDim    = 1 << 17
	maxVocab  = 1 << 22
	maxLayers = 4096
	maxPos    = 1 << 22
)

// LoadConfig reads dir/config.json.
func LoadConfig(dir string) (*Config, error) {
	path := filepath.Join(dir, "config.json")
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	c, err := ParseConfig(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// rawConfig is config.json as HF writes it; pointers tell absent from zero.
type rawConfig struct {
	ModelType             *string          `json:"model_type"`
	VocabSize             *int             `json:"vocab_size"`
	HiddenSize            *int             `json:"hidden_size"`
	IntermediateSize      *int             `json:"intermediate_size"`
	NumLayers             *int             `json:"num_hidden_layers"`
	NumHeads              *int             `json:"num_attention_heads"`
	NumKVHeads            *int             `json:"num_key_value_heads"`
	HeadDim               *int             `json:"head_dim"`
	PartialRotaryFactor   *float64         `json:"partial_rotary_factor"`
	RopeTheta             *float64         `json:"rope_theta"`
	RopeScaling           *json.RawMessage `json:"rope_scaling"`
	RopeParameters        *json.RawMessage `json:"rope_parameters"`
	LayerNormEps          *float64         `json:"layer_norm_eps"`
	MaxPositionEmbeddings *int             `json:"max_position_embeddings"`
	HiddenAct             *string          `json:"hidden_act"`
	QKLayerNorm           *bool            `json:"qk_layernorm"`
	TieWordEmbeddings     *bool            `json:"tie_word_embeddings"`
	BOSTokenID            *json.RawMessage `json:"bos_token_id"`
	EOSTokenID            *json.RawMessage `json:"eos_token_id"`
}

type ropeParams struct {
	RopeType            *string  `json:"rope_type"`
	Type                *string  `json:"type"`
	RopeTheta           *float64 `json:"rope_theta"`
	PartialRotaryFactor *float64 `json:"partial_rotary_factor"`
}

func intOr(p *int, d int) int {
	if p == nil {
		return d
	}
	return *p
}

func floatOr(p *float64, d float64) float64 {
	if p == nil {
		return d
	}
	return *p
}

// ParseConfig resolves a Phi config.json. Absent fields take the defaults of
// Hugging Face's PhiConfig; rope_theta and partial_rotary_factor may sit at
// the top level or inside rope_parameters (newer transformers).
func ParseConfig(b []byte) (*Config, error) {
	var r rawConfig
	if err := json.Unmarshal(bytes.TrimSpace(b), &r); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	mt := "phi"
	if r.ModelType != nil {
		mt = *r.ModelType
	}
	if mt != "phi" {
		return nil, fmt.Errorf("%w: model_type %q is not supported (only \"phi\")", ErrConfig, mt)
	}
	c := &Config{
		ModelType:             mt,
		VocabSize:             intOr(r.VocabSize, 51200),
		HiddenSize:            intOr(r.HiddenSize, 2048),
		IntermediateSize:      intOr(r.IntermediateSize, 8192),
		NumLayers:             intOr(r.NumLayers, 24),
		NumHeads:              intOr(r.NumHeads, 32),
		LayerNormEps:          floatOr(r.LayerNormEps, 1e-5),
		MaxPositionEmbeddings: intOr(r.MaxPositionEmbeddings, 2048),
		HiddenAct:             "gelu_new",
	}
	c.NumKVHeads = c.NumHeads
	if r.NumKVHeads != nil && *r.NumKVHeads != 0 { // HF: None means "= heads"
		c.NumKVHeads = *r.NumKVHeads
	}
	if r.HiddenAct != nil {
		c.HiddenAct = *r.HiddenAct
	}
	if r.QKLayerNorm != nil {
		c.QKLayerNorm = *r.QKLayerNorm
	}
	if r.TieWordEmbeddings != nil {
		c.TieWordEmbeddings = *r.TieWordEmbeddings
	}

	var rp ropeParams
	if r.RopeParameters != nil && string(*r.RopeParameters) != "null" {
		if err := json.Unmarshal(*r.RopeParameters, &rp); err != nil {
			return nil, fmt.Errorf("%w: rope_parameters: %v", ErrConfig, err)
		}
	}
	c.RopeTheta = floatOr(r.RopeTheta, floatOr(rp.RopeTheta, 10000))
	c.PartialRotaryFactor = floatOr(r.PartialRotaryFactor, floatOr(rp.PartialRotaryFactor, 0.5))
	if t := ropeType(rp); t != "default" {
		return nil, fmt.Errorf("%w: rope_parameters.rope_type %q is not supported (only default rotary embeddings)", ErrConfig, t)
	}
	if r.RopeScaling != nil && string(*r.RopeScaling) != "null" {
		var rs ropeParams
		if err := json.Unmarshal(*r.RopeScaling, &rs); err != nil {
			return nil, fmt.Errorf("%w: rope_scaling: %v", ErrConfig, err)
		}
		if t := ropeType(rs); t != "default" {
			return nil, fmt.Errorf("%w: rope_scaling of type %q is not supported (only default rotary embeddings)", ErrConfig, t)
		}
	}

	var err error
	if c.BOSTokenID, err = firstTokenID(r.BOSTokenID, 1); err != nil {
		return nil, fmt.Errorf("%w: bos_token_id: %v", ErrConfig, err)
	}
	if c.EOSTokenIDs, err = tokenIDs(r.EOSTokenID, 2); err != nil {
		return nil, fmt.Errorf("%w: eos_token_id: %v", ErrConfig, err)
	}
	if err := c.resolve(r.HeadDim); err != nil {
		return nil, err
	}
	return c, nil
}

func ropeType(p ropeParams) string {
	switch {
	case p.RopeType != nil:
		return *p.RopeType
	case p.Type != nil:
		return *p.Type
	}
	return "default"
}

func tokenIDs(raw *json.RawMessage, def int) ([]int, error) {
	if raw == nil || string(*raw) == "null" {
		return []int{def}, nil
	}
	var one int
	if err := json.Unmarshal(*raw, &one); err == nil {
		return []int{one}, nil
	}
	var many []int
	if err := json.Unmarshal(*raw, &many); err != nil {
		return nil, fmt.Errorf("want an integer or a list of integers, got %s", *raw)
	}
	if len(many) > 64 {
		return nil, fmt.Errorf("%d ids is too many", len(many))
	}
	return many, nil
}

func firstTokenID(raw *json.RawMessage, def int) (int, error) {
	ids, err := tokenIDs(raw, def)
	if err != nil {
		return 0, err
	}
	if len(ids) == 0 {
		return -1, nil
	}
	return ids[0], nil
}

// resolve derives head and rotary widths and checks that the engine can run
// the configuration.
func (c *Config) resolve(headDim *int) error {
	check := func(name string, v, lo, hi int) error {
		if v < lo || v > hi {
			return fmt.Errorf("%w: %s = %d is outside [%d, %d]", ErrConfig, name, v, lo, hi)
		}
		return nil
	}
	for _, e := range []error{
		check("vocab_size", c.VocabSize, 1, maxVocab),
		check("hidden_size", c.HiddenSize, 1, maxDim),
		check("intermediate_size", c.IntermediateSize, 1, 4*maxDim),
		check("num_hidden_layers", c.NumLayers, 1, maxLayers),
		check("num_attention_heads", c.NumHeads, 1, maxDim),
		check("num_key_value_heads", c.NumKVHeads, 1, maxDim),
		check("max_position_embeddings", c.MaxPositionEmbeddings, 1, maxPos),
	} {
		if e != nil {
			return e
		}
	}
	if c.HiddenAct != "gelu_new" {
		return fmt.Errorf("%w: hidden_act %q is not supported (only gelu_new)", ErrConfig, c.HiddenAct)
	}
	if c.HiddenSize%c.NumHeads != 0 {
		return fmt.Errorf("%w: hidden_size %d is not a multiple of num_attention_heads %d", ErrConfig, c.HiddenSize, c.NumHeads)
	}
	if c.NumHeads%c.NumKVHeads != 0 {
		return fmt.Errorf("%w: num_attention_heads %d is not a multiple of num_key_value_heads %d", ErrConfig, c.NumHeads, c.NumKVHeads)
	}
	c.HeadDim = c.HiddenSize / c.NumHeads
	if headDim != nil && *headDim != c.HeadDim {
		return fmt.Errorf("%w: head_dim %d differs from hidden_size/num_attention_heads = %d, which Phi uses", ErrConfig, *headDim, c.HeadDim)
	}
	if math.IsNaN(c.PartialRotaryFactor) || c.PartialRotaryFactor < 0 || c.PartialRotaryFactor > 1 {
		return fmt.Errorf("%w: partial_rotary_factor %v is outside [0, 1]", ErrConfig, c.PartialRotaryFactor)
	}
	// HF: int(head_dim * partial_rotary_factor), a truncation of a float product.
	c.RotaryDim = int(float64(c.HeadDim) * c.PartialRotaryFactor)
	if c.RotaryDim%2 != 0 {
		return fmt.Errorf("%w: rotary width int(%d × %v) = %d is odd; rotate-half needs an even width", ErrConfig, c.HeadDim, c.PartialRotaryFactor, c.RotaryDim)
	}
	if !(c.RopeTheta > 0) || math.IsInf(c.RopeTheta, 0) {
		return fmt.Errorf("%w: rope_theta %v must be a positive number", ErrConfig, c.RopeTheta)
	}
	if !(c.LayerNormEps > 0) || math.IsInf(c.LayerNormEps, 0) {
		return fmt.Errorf("%w: layer_norm_eps %v must be a positive number", ErrConfig, c.LayerNormEps)
	}
	return nil
}

// KVDim is the width of one position's keys (or values) across kv heads.
func (c *Config) KVDim() int { return c.NumKVHeads * c.HeadDim }

// IsEOS reports whether id ends generation.
func (c *Config) IsEOS(id int) bool {
	for _, e := range c.EOSTokenIDs {
		if e == id {
			return true
		}
	}
	return false
}
