package engine

import (
	"errors"
	"strings"
	"testing"
)

func TestConfigDefaults(t *testing.T) {
	c, err := ParseConfig([]byte(`{"model_type":"phi"}`))
	if err != nil {
		t.Fatal(err)
	}
	// PhiConfig's defaults.
	if c.VocabSize != 51200 || c.HiddenSize != 2048 || c.IntermediateSize != 8192 || c.NumLayers != 24 ||
		c.NumHeads != 32 || c.NumKVHeads != 32 || c.PartialRotaryFactor != 0.5 || c.RopeTheta != 10000 ||
		c.LayerNormEps != 1e-5 || c.MaxPositionEmbeddings != 2048 || c.HiddenAct != "gelu_new" ||
		c.QKLayerNorm || c.TieWordEmbeddings || c.BOSTokenID != 1 || !c.IsEOS(2) {
		t.Errorf("defaults: %+v", c)
	}
	if c.HeadDim != 64 || c.RotaryDim != 32 {
		t.Errorf("head %d rotary %d, want 64 32", c.HeadDim, c.RotaryDim)
	}
}

func TestConfigPhi2(t *testing.T) {
	c, err := ParseConfig([]byte(`{"model_type":"phi","hidden_size":2560,"intermediate_size":10240,
		"num_hidden_layers":32,"num_attention_heads":32,"num_key_value_heads":null,"partial_rotary_factor":0.4,
		"bos_token_id":50256,"eos_token_id":50256,"rope_scaling":null,"vocab_size":51200}`))
	if err != nil {
		t.Fatal(err)
	}
	// int(80 * 0.4) = int(32.000000000000004) = 32
	if c.HeadDim != 80 || c.RotaryDim != 32 || c.NumKVHeads != 32 || !c.IsEOS(50256) {
		t.Errorf("phi-2: %+v", c)
	}
}

func TestConfigRopeParameters(t *testing.T) {
	c, err := ParseConfig([]byte(`{"hidden_size":64,"num_attention_heads":4,
		"rope_parameters":{"rope_type":"default","rope_theta":500000.0,"partial_rotary_factor":0.75}}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.RopeTheta != 500000 || c.PartialRotaryFactor != 0.75 || c.RotaryDim != 12 {
		t.Errorf("rope_parameters: theta %v factor %v rotary %d", c.RopeTheta, c.PartialRotaryFactor, c.RotaryDim)
	}
	// A top-level value wins, as in transformers' standardization.
	c, err = ParseConfig([]byte(`{"hidden_size":64,"num_attention_heads":4,"rope_theta":20000,
		"rope_parameters":{"rope_theta":500000.0}}`))
	if err != nil || c.RopeTheta != 20000 {
		t.Errorf("top-level rope_theta: %v, %v", c, err)
	}
}

func TestConfigTruncatesRotaryWidth(t *testing.T) {
	// head_dim 24 × 0.35 = 8.4 → 8
	c, err := ParseConfig([]byte(`{"hidden_size":96,"num_attention_heads":4,"partial_rotary_factor":0.35}`))
	if err != nil || c.RotaryDim != 8 {
		t.Fatalf("rotary %v, %v", c, err)
	}
}

func TestConfigRejects(t *testing.T) {
	for _, tc := range []struct{ json, want string }{
		{`{"model_type":"llama"}`, "model_type"},
		{`{"hidden_act":"gelu"}`, "hidden_act"},
		{`{"hidden_size":80,"num_attention_heads":4,"partial_rotary_factor":0.25}`, "odd"}, // 20 × 0.25 = 5
		{`{"rope_scaling":{"type":"linear","factor":2.0}}`, "rope_scaling"},
		{`{"rope_scaling":{"rope_type":"dynamic","factor":2.0}}`, "rope_scaling"},
		{`{"rope_parameters":{"rope_type":"yarn"}}`, "rope_type"},
		{`{"hidden_size":65,"num_attention_heads":4}`, "multiple"},
		{`{"num_attention_heads":32,"num_key_value_heads":5}`, "multiple"},
		{`{"hidden_size":0}`, "hidden_size"},
		{`{"vocab_size":-3}`, "vocab_size"},
		{`{"num_hidden_layers":100000000}`, "num_hidden_layers"},
		{`{"partial_rotary_factor":1.5}`, "partial_rotary_factor"},
		{`{"rope_theta":0}`, "rope_theta"},
		{`{"layer_norm_eps":-1}`, "layer_norm_eps"},
		{`{"head_dim":128}`, "head_dim"},
		{`{"eos_token_id":"x"}`, "eos_token_id"},
		{`not json`, "config"},
	} {
		_, err := ParseConfig([]byte(tc.json))
		if err == nil || !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one mentioning %q", tc.json, err, tc.want)
		}
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(`{"model_type":"phi","hidden_size":64,"num_attention_heads":4}`))
	f.Add([]byte(`{"rope_parameters":{"rope_theta":1e30,"partial_rotary_factor":1}}`))
	f.Add([]byte(`{"eos_token_id":[1,2,3],"num_key_value_heads":0}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseConfig(b)
		if err != nil {
			return
		}
		if c.HeadDim*c.NumHeads != c.HiddenSize || c.RotaryDim > c.HeadDim || c.RotaryDim%2 != 0 || c.NumHeads%c.NumKVHeads != 0 {
			t.Fatalf("accepted an inconsistent config: %+v", c)
		}
	})
}
