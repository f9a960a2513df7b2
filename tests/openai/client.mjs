// Drives a Phalanx coordinator with the official OpenAI SDK and prints one
// JSON object with what each call returned. Used by tests/openai_test.go:
//   OPENAI_BASE_URL=http://127.0.0.1:PORT/v1 OPENAI_API_KEY=KEY node client.mjs
import OpenAI from "openai";

const client = new OpenAI();
const out = {};
const models = await client.models.list();
out.models = models.data.map((m) => m.id);
const model = out.models[0];

const chat = await client.chat.completions.create({
  model, messages: [{ role: "user", content: "Say hello." }], max_tokens: 12, temperature: 0, seed: 1,
});
out.chat = { text: chat.choices[0].message.content, finish: chat.choices[0].finish_reason, usage: chat.usage, object: chat.object };

const stream = await client.chat.completions.create({
  model, messages: [{ role: "user", content: "Say hello." }], max_tokens: 12, temperature: 0, seed: 1,
  stream: true, stream_options: { include_usage: true },
});
let text = "", chunks = 0, finish = null, usage = null, role = null;
for await (const chunk of stream) {
  chunks++;
  if (chunk.usage) usage = chunk.usage;
  for (const c of chunk.choices) {
    if (c.delta.role) role = c.delta.role;
    if (c.delta.content) text += c.delta.content;
    if (c.finish_reason) finish = c.finish_reason;
  }
}
out.chatStream = { text, chunks, finish, usage, role };

const cmpl = await client.completions.create({ model, prompt: "def add(a, b):", max_tokens: 10, temperature: 0, stop: ["\n\n"] });
out.completion = { text: cmpl.choices[0].text, finish: cmpl.choices[0].finish_reason, usage: cmpl.usage };

const cstream = await client.completions.create({ model, prompt: "def add(a, b):", max_tokens: 10, temperature: 0, stop: ["\n\n"], stream: true });
let ctext = "", cfinish = null;
for await (const chunk of cstream) {
  for (const c of chunk.choices) { ctext += c.text; if (c.finish_reason) cfinish = c.finish_reason; }
}
out.completionStream = { text: ctext, finish: cfinish };

const sampled = [];
for (let i = 0; i < 2; i++) {
  const r = await client.completions.create({ model, prompt: "Once upon a time", max_tokens: 16, temperature: 0.9, top_p: 0.95, seed: 42, frequency_penalty: 0.5, presence_penalty: 0.2 });
  sampled.push(r.choices[0].text);
}
out.sampled = sampled;

try {
  await client.chat.completions.create({ model, messages: [], max_tokens: 4 });
  out.badRequest = "accepted";
} catch (e) {
  out.badRequest = { status: e.status, message: e.message, type: e.error?.type ?? e.type };
}
const bad = new OpenAI({ apiKey: "wrong-key" });
try {
  await bad.models.list();
  out.unauthorized = "accepted";
} catch (e) {
  out.unauthorized = { status: e.status, code: e.code ?? e.error?.code };
}
console.log(JSON.stringify(out));
