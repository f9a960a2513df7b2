package prompt

import (
	"errors"
	"fmt"
	"strings"
)

// Template names one of Phi-2's prompt formats.
type Template string

// The templates. Code behaves exactly like Raw; it exists because clients
// call it by the model card's name.
const (
	Instruct Template = "instruct"
	Chat     Template = "chat"
	Raw      Template = "raw"
	Code     Template = "code"
)

var (
	// ErrUnknownTemplate is returned for a template name or value that is
	// not one of the constants.
	ErrUnknownTemplate = errors.New("prompt: unknown template")
	// ErrBadMessages is returned when a conversation cannot be rendered:
	// no messages, an unknown role, or a last message not from the user.
	ErrBadMessages = errors.New("prompt: invalid messages")
)

// Roles of a [Message], as in the OpenAI API.
const (
	RoleSystem    = "system"
	RoleUser      = "user"
	RoleAssistant = "assistant"
)

// Message is one turn of a conversation.
type Message struct {
	Role    string // RoleSystem, RoleUser or RoleAssistant
	Content string
}

// Parse returns the template named name. Names are case-insensitive and
// surrounding spaces are ignored; "qa", the model card's name for the
// instruct format, is accepted too. An empty name is an error: the caller
// chooses the default.
func Parse(name string) (Template, error) {
	switch strings.ToLower(strings.TrimSpace(name)) {
	case "instruct", "qa":
		return Instruct, nil
	case "chat":
		return Chat, nil
	case "raw":
		return Raw, nil
	case "code":
		return Code, nil
	}
	return "", fmt.Errorf("%w %q (want instruct, chat, raw or code)", ErrUnknownTemplate, name)
}

// labels returns the user and assistant labels of a turn-based template.
func (t Template) labels() (user, assistant string, ok bool) {
	switch t {
	case Instruct:
		return "Instruct:", "Output:", true
	case Chat:
		return "Alice:", "Bob:", true
	}
	return "", "", false
}

// Valid reports whether t is one of the template constants.
func (t Template) Valid() bool {
	switch t {
	case Instruct, Chat, Raw, Code:
		return true
	}
	return false
}

// Render wraps a single prompt in template t: "Instruct: {prompt}\nOutput:"
// for Instruct, "Alice: {prompt}\nBob:" for Chat, and the prompt unchanged
// for Raw and Code. A value of t that is not a template constant renders
// like Raw; use [Parse] or [Template.Valid] to reject it first.
func Render(t Template, prompt string) string {
	user, assistant, ok := t.labels()
	if !ok {
		return prompt
	}
	return turn(user, prompt) + "\n" + assistant
}

// turn writes one labelled line, without a trailing space when the content
// is empty.
func turn(label, content string) string {
	content = strings.TrimSpace(content)
	if content == "" {
		return label
	}
	return label + " " + content
}

// RenderMessages renders a conversation in template t, as described in the
// package documentation. It returns [ErrBadMessages] for an empty
// conversation, an unknown role, or (in Instruct and Chat) a conversation
// whose last message is not from the user, and [ErrUnknownTemplate] for a t
// that is not a template constant.
func RenderMessages(t Template, msgs []Message) (string, error) {
	if !t.Valid() {
		return "", fmt.Errorf("%w %q", ErrUnknownTemplate, string(t))
	}
	if len(msgs) == 0 {
		return "", fmt.Errorf("%w: no messages", ErrBadMessages)
	}
	for i, m := range msgs {
		switch m.Role {
		case RoleSystem, RoleUser, RoleAssistant:
		default:
			return "", fmt.Errorf("%w: message %d has unknown role %q", ErrBadMessages, i, m.Role)
		}
	}
	user, assistant, turns := t.labels()
	if !turns {
		var b strings.Builder
		for _, m := range msgs {
			b.WriteString(m.Content)
		}
		return b.String(), nil
	}
	if last := msgs[len(msgs)-1]; last.Role != RoleUser {
		return "", fmt.Errorf("%w: the last message must have role %q, got %q",
			ErrBadMessages, RoleUser, last.Role)
	}
	var b strings.Builder
	for _, m := range msgs {
		switch m.Role {
		case RoleSystem:
			content := strings.TrimSpace(m.Content)
			if content == "" {
				continue
			}
			b.WriteString(content)
		case RoleUser:
			b.WriteString(turn(user, m.Content))
		case RoleAssistant:
			b.WriteString(turn(assistant, m.Content))
		}
		b.WriteByte('\n')
	}
	b.WriteString(assistant)
	return b.String(), nil
}

// DefaultStops returns the stop strings that end the model's answer in
// template t; the result is a new slice the caller may modify.
//
//   - Instruct stops at "\nInstruct:", where Phi-2 starts inventing the next
//     exercise. It does not stop at "\nOutput:": answers about programs
//     often show sample runs as "Input: …\nOutput: …" lines, and cutting
//     there would truncate good answers.
//   - Chat stops at "\nAlice:", the next user turn, and at "\nBob:", a
//     second reply in a row, which only happens when the model has lost
//     track of the dialogue.
//   - Raw and Code have none: completion runs to the end-of-text token or
//     the length limit.
func DefaultStops(t Template) []string {
	switch t {
	case Instruct:
		return []string{"\nInstruct:"}
	case Chat:
		return []string{"\nAlice:", "\nBob:"}
	}
	return nil
}
