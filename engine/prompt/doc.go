// Package prompt renders requests into the text formats Phi-2 was trained
// on, and says where generation in each format should stop.
//
// The microsoft/phi-2 model card names three formats. [Instruct], the
// card's "QA format":
//
//	Instruct: Write a haiku about rain.
//	Output:
//
// [Chat]:
//
//	Alice: I can't focus while studying. Any advice?
//	Bob: Have you tried a study schedule?
//	Alice: Yes, but it doesn't help much.
//	Bob:
//
// [Raw], and its alias [Code]: the text as it is, for completion. The card's
// "code format" is a function signature and docstring for the model to
// complete.
//
// Phi-2 is a base model with no chat tuning and no special turn tokens:
// these are plain-text conventions, and the model happily writes the next
// "Alice:" or "Instruct:" turn itself. [DefaultStops] gives the stop
// strings that end its answer at that point.
//
// # Messages
//
// [RenderMessages] renders an OpenAI-style conversation. In Chat, user
// turns are "Alice:" lines and assistant turns "Bob:" lines; Instruct does
// the same with "Instruct:" and "Output:", so earlier exchanges become
// worked examples before the last instruction. System messages have no
// speaker in Phi-2's formats, so their text is written as a plain line
// where it appears, which for the usual leading system message means a
// preamble before the first turn. The last message must come from the user,
// and the rendered prompt ends with the assistant's label so that the model
// writes the reply. Raw concatenates the contents with nothing in between.
//
// The user's text is trimmed of surrounding whitespace in Instruct and Chat
// (a trailing newline would otherwise put an empty line before "Output:"),
// and kept byte for byte in Raw and Code, where whitespace is part of the
// program being completed.
//
// The package only builds strings: it does not tokenize, and it never
// touches the network or the model.
package prompt
