package sample

import (
	"errors"
	"math"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	nan := float32(math.NaN())
	inf := float32(math.Inf(1))
	valid := []Params{
		{},
		{Temperature: 0.7, TopK: 40, TopP: 0.95, MinP: 0.05, Seed: 1},
		{Temperature: 1, TopP: 1, MinP: 1},
		{RepetitionPenalty: 1.1, RepeatLastN: 64},
		{RepetitionPenalty: 0.9},
		{PresencePenalty: -2, FrequencyPenalty: 2},
		{LogitBias: map[int]float32{0: float32(math.Inf(-1)), 50256: 100, 7: -100}},
	}
	for _, p := range valid {
		if err := p.Validate(); err != nil {
			t.Errorf("%+v: unexpected error %v", p, err)
		}
	}
	invalid := []struct {
		p    Params
		want string // part of the message
	}{
		{Params{Temperature: -0.1}, "temperature"},
		{Params{Temperature: nan}, "temperature"},
		{Params{Temperature: inf}, "temperature"},
		{Params{TopK: -1}, "top_k"},
		{Params{TopP: -0.1}, "top_p"},
		{Params{TopP: 1.01}, "top_p"},
		{Params{TopP: nan}, "top_p"},
		{Params{MinP: -0.1}, "min_p"},
		{Params{MinP: 1.5}, "min_p"},
		{Params{MinP: inf}, "min_p"},
		{Params{RepetitionPenalty: -1}, "repetition_penalty"},
		{Params{RepetitionPenalty: 11}, "repetition_penalty"},
		{Params{RepetitionPenalty: nan}, "repetition_penalty"},
		{Params{RepeatLastN: -1}, "repeat_last_n"},
		{Params{PresencePenalty: 2.5}, "presence_penalty"},
		{Params{PresencePenalty: -inf}, "presence_penalty"},
		{Params{FrequencyPenalty: -2.01}, "frequency_penalty"},
		{Params{FrequencyPenalty: nan}, "frequency_penalty"},
		{Params{LogitBias: map[int]float32{-1: 1}}, "logit_bias token id -1"},
		{Params{LogitBias: map[int]float32{3: nan}}, "logit_bias for token 3"},
		{Params{LogitBias: map[int]float32{3: inf}}, "logit_bias for token 3"},
	}
	for _, tt := range invalid {
		err := tt.p.Validate()
		if !errors.Is(err, ErrInvalidParams) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: got %v, want an ErrInvalidParams mentioning %q", tt.p, err, tt.want)
		}
		if _, err := New(tt.p, nil); !errors.Is(err, ErrInvalidParams) {
			t.Errorf("New(%+v): got %v, want ErrInvalidParams", tt.p, err)
		}
	}
}
