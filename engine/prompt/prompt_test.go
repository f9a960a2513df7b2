package prompt

import (
	"errors"
	"slices"
	"testing"
)

func TestParse(t *testing.T) {
	for name, want := range map[string]Template{
		"instruct":   Instruct,
		"INSTRUCT":   Instruct,
		" qa ":       Instruct,
		"chat":       Chat,
		"Chat":       Chat,
		"raw":        Raw,
		"code":       Code,
		"\tcode\n":   Code,
		"Instruct\n": Instruct,
	} {
		got, err := Parse(name)
		if err != nil || got != want {
			t.Errorf("Parse(%q) = %q, %v; want %q, nil", name, got, err, want)
		}
	}
	for _, name := range []string{"", "alpaca", "chatml", "instruct chat"} {
		if got, err := Parse(name); !errors.Is(err, ErrUnknownTemplate) {
			t.Errorf("Parse(%q) = %q, %v; want ErrUnknownTemplate", name, got, err)
		}
	}
}

func TestRender(t *testing.T) {
	tests := []struct {
		t      Template
		prompt string
		want   string
	}{
		// The exact strings of the microsoft/phi-2 model card.
		{Instruct, "Write a detailed analogy between mathematics and a lighthouse.",
			"Instruct: Write a detailed analogy between mathematics and a lighthouse.\nOutput:"},
		{Chat, "I don't know why, I'm struggling to maintain focus while studying. Any suggestions?",
			"Alice: I don't know why, I'm struggling to maintain focus while studying. Any suggestions?\nBob:"},
		{Code, "def print_prime(n):\n   \"\"\"\n   Print all primes between 1 and n\n   \"\"\"",
			"def print_prime(n):\n   \"\"\"\n   Print all primes between 1 and n\n   \"\"\""},
		// Surrounding whitespace is trimmed in turn formats, inner newlines kept.
		{Instruct, "  two\nlines \n", "Instruct: two\nlines\nOutput:"},
		{Chat, "\nhi\n", "Alice: hi\nBob:"},
		{Instruct, "", "Instruct:\nOutput:"},
		// Raw keeps every byte.
		{Raw, "  x = 1\n", "  x = 1\n"},
		{Raw, "", ""},
		// Invalid values render like Raw.
		{Template("bogus"), " as is ", " as is "},
	}
	for _, tt := range tests {
		if got := Render(tt.t, tt.prompt); got != tt.want {
			t.Errorf("Render(%q, %q) = %q, want %q", tt.t, tt.prompt, got, tt.want)
		}
	}
}

func TestRenderMessagesChat(t *testing.T) {
	msgs := []Message{
		{RoleSystem, "Bob is a patient tutor."},
		{RoleUser, "I don't know why, I'm struggling to maintain focus while studying. Any suggestions?"},
		{RoleAssistant, "Well, have you tried creating a study schedule and sticking to it?"},
		{RoleUser, "Yes, I have, but it doesn't seem to help much.\n"},
	}
	got, err := RenderMessages(Chat, msgs)
	want := "Bob is a patient tutor.\n" +
		"Alice: I don't know why, I'm struggling to maintain focus while studying. Any suggestions?\n" +
		"Bob: Well, have you tried creating a study schedule and sticking to it?\n" +
		"Alice: Yes, I have, but it doesn't seem to help much.\n" +
		"Bob:"
	if err != nil || got != want {
		t.Errorf("RenderMessages(Chat) =\n%q, %v\nwant\n%q", got, err, want)
	}
}

func TestRenderMessagesInstruct(t *testing.T) {
	msgs := []Message{
		{RoleSystem, "Answer briefly."},
		{RoleUser, "What is 2+2?"},
		{RoleAssistant, "4"},
		{RoleUser, "And 3+3?"},
	}
	got, err := RenderMessages(Instruct, msgs)
	want := "Answer briefly.\nInstruct: What is 2+2?\nOutput: 4\nInstruct: And 3+3?\nOutput:"
	if err != nil || got != want {
		t.Errorf("RenderMessages(Instruct) = %q, %v; want %q", got, err, want)
	}
}

func TestRenderMessagesMatchesRender(t *testing.T) {
	for _, tmpl := range []Template{Instruct, Chat, Raw, Code} {
		prompt := "Write a poem.\n"
		got, err := RenderMessages(tmpl, []Message{{RoleUser, prompt}})
		if want := Render(tmpl, prompt); err != nil || got != want {
			t.Errorf("%s: RenderMessages = %q, %v; Render = %q", tmpl, got, err, want)
		}
	}
}

func TestRenderMessagesSystem(t *testing.T) {
	// A system message in the middle stays where it is; an empty one
	// leaves no blank line.
	msgs := []Message{
		{RoleSystem, "  "},
		{RoleUser, "hi"},
		{RoleAssistant, "hello"},
		{RoleSystem, "Be formal from now on."},
		{RoleUser, "bye"},
	}
	got, err := RenderMessages(Chat, msgs)
	want := "Alice: hi\nBob: hello\nBe formal from now on.\nAlice: bye\nBob:"
	if err != nil || got != want {
		t.Errorf("got %q, %v; want %q", got, err, want)
	}
}

func TestRenderMessagesRaw(t *testing.T) {
	msgs := []Message{
		{RoleSystem, "# utils.py\n"},
		{RoleUser, "def add(a, b):\n"},
		{RoleAssistant, "    return"},
	}
	for _, tmpl := range []Template{Raw, Code} {
		got, err := RenderMessages(tmpl, msgs)
		if want := "# utils.py\ndef add(a, b):\n    return"; err != nil || got != want {
			t.Errorf("%s: got %q, %v; want %q", tmpl, got, err, want)
		}
	}
}

func TestRenderMessagesErrors(t *testing.T) {
	tests := []struct {
		name string
		t    Template
		msgs []Message
		want error
	}{
		{"empty", Chat, nil, ErrBadMessages},
		{"empty raw", Raw, []Message{}, ErrBadMessages},
		{"unknown role", Chat, []Message{{"tool", "x"}, {RoleUser, "y"}}, ErrBadMessages},
		{"unknown role raw", Raw, []Message{{"User", "x"}}, ErrBadMessages},
		{"ends with assistant", Instruct, []Message{{RoleUser, "x"}, {RoleAssistant, "y"}}, ErrBadMessages},
		{"only system", Chat, []Message{{RoleSystem, "x"}}, ErrBadMessages},
		{"unknown template", Template("alpaca"), []Message{{RoleUser, "x"}}, ErrUnknownTemplate},
	}
	for _, tt := range tests {
		if got, err := RenderMessages(tt.t, tt.msgs); !errors.Is(err, tt.want) {
			t.Errorf("%s: got %q, %v; want %v", tt.name, got, err, tt.want)
		}
	}
}

func TestDefaultStops(t *testing.T) {
	tests := []struct {
		t    Template
		want []string
	}{
		{Instruct, []string{"\nInstruct:"}},
		{Chat, []string{"\nAlice:", "\nBob:"}},
		{Raw, nil},
		{Code, nil},
	}
	for _, tt := range tests {
		if got := DefaultStops(tt.t); !slices.Equal(got, tt.want) {
			t.Errorf("DefaultStops(%s) = %q, want %q", tt.t, got, tt.want)
		}
	}
	// Callers may modify the result without affecting the next call.
	DefaultStops(Chat)[0] = "changed"
	if got := DefaultStops(Chat)[0]; got != "\nAlice:" {
		t.Errorf("DefaultStops shares its slice: got %q", got)
	}
}

func TestValid(t *testing.T) {
	for _, tmpl := range []Template{Instruct, Chat, Raw, Code} {
		if !tmpl.Valid() {
			t.Errorf("%q.Valid() = false", tmpl)
		}
	}
	for _, tmpl := range []Template{"", "Instruct", "qa"} {
		if tmpl.Valid() {
			t.Errorf("%q.Valid() = true", tmpl)
		}
	}
}
